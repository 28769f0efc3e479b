// `GET /placement` and `GET /placement?key=<url-encoded key>` on the metrics port: the placement view
// (server/placement/placement-view.ts) as JSON, or the slot and shard of one key. A query it does not
// understand is a 400 with a JSON {"error": "..."} saying what is wrong, never a guess.
import { buildPlacementView, keyLocationView, type KeyLocation, type PlacementObservation, type PlacementView } from '../placement/placement-view.ts';

export type PlacementQuery = { kind: 'view' } | { kind: 'key'; key: Buffer } | { kind: 'error'; message: string };

const HEX_PAIR = /^[0-9a-fA-F]{2}$/;

/** Percent-decodes to bytes (`+` is a space, as in forms); null when a `%` is not followed by two hex digits. */
function percentDecode(text: string): Buffer | null {
  const out: number[] = [];
  const raw = Buffer.from(text, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b === 0x25 /* % */) {
      const pair = raw.subarray(i + 1, i + 3).toString('latin1');
      if (!HEX_PAIR.test(pair)) return null;
      out.push(parseInt(pair, 16));
      i += 2;
    } else out.push(b === 0x2b /* + */ ? 0x20 : b);
  }
  return Buffer.from(out);
}

/** Parses the query string (without `?`): nothing, or exactly one non-empty `key`. */
export function parsePlacementQuery(search: string): PlacementQuery {
  if (search === '') return { kind: 'view' };
  let key: Buffer | null = null;
  for (const part of search.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    if (name !== 'key') return { kind: 'error', message: `unknown query parameter ${JSON.stringify(name)}; /placement takes only key=<url-encoded key>` };
    if (key !== null) return { kind: 'error', message: 'key given more than once; ask for one key per request' };
    const decoded = percentDecode(eq < 0 ? '' : part.slice(eq + 1));
    if (decoded === null) return { kind: 'error', message: 'key is not valid percent-encoding (a % must be followed by two hex digits)' };
    if (decoded.length === 0) return { kind: 'error', message: 'key is empty; etcd keys are never empty' };
    // The JSON answer shows the key as text: a key that is not UTF-8 would come back altered.
    if (!Buffer.from(decoded.toString('utf8'), 'utf8').equals(decoded)) {
      return { kind: 'error', message: 'key is not UTF-8 once decoded; locate binary keys with gRPC synod.v1.Placement/LocateKey' };
    }
    key = decoded;
  }
  return key === null ? { kind: 'view' } : { kind: 'key', key };
}

export interface PlacementHttpAnswer {
  status: number;
  body: PlacementView | KeyLocation | { error: string };
}

/** The answer to `/placement?<search>` from what this member observes now. */
export function answerPlacement(search: string, observe: () => PlacementObservation): PlacementHttpAnswer {
  const q = parsePlacementQuery(search);
  if (q.kind === 'error') return { status: 400, body: { error: q.message } };
  if (q.kind === 'key') return { status: 200, body: keyLocationView(observe().slotMap, q.key) };
  return { status: 200, body: buildPlacementView(observe()) };
}

// Watch delivery: what one watcher received must be exactly the store's history over the keys it
// watched, from its start revision on: ordered by revision, no duplicates, no gaps, no event that
// never happened. The reference history comes from the store itself (a full-history watch from
// revision 1 at the end of a run, with no compaction), cross-checked against the client history.

export interface WatchEvent {
  revision: number;
  key: string;
  type: 'PUT' | 'DELETE';
  /** The value put ('' for a delete). */
  value: string;
}

export interface WatchCheckOptions {
  /** The watch's start_revision: events before it are not expected. */
  startRevision: number;
  /** Events are expected up to here (the watcher caught up); default: the last event received. */
  untilRevision?: number;
  /** Which keys the watcher watched; default all. */
  watches?: (key: string) => boolean;
}

const show = (e: WatchEvent | undefined): string =>
  e ? `${e.type} ${e.key}${e.type === 'PUT' ? `=${e.value}` : ''} @${e.revision}` : 'nothing';

/** Returns violations (empty when delivery was exact). */
export function checkWatchDelivery(name: string, received: ReadonlyArray<WatchEvent>, reference: ReadonlyArray<WatchEvent>, opts: WatchCheckOptions): string[] {
  const violations: string[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < received.length; i++) {
    const e = received[i];
    const id = `${e.revision}/${e.key}`;
    if (seen.has(id)) violations.push(`${name}: duplicate event ${show(e)} (position ${i})`);
    seen.add(id);
    const before = received[i - 1];
    if (before && (e.revision < before.revision || (e.revision === before.revision && e.key <= before.key))) {
      violations.push(`${name}: out of order: ${show(e)} after ${show(before)} (position ${i})`);
    }
    if (e.revision < opts.startRevision) violations.push(`${name}: ${show(e)} precedes the start revision ${opts.startRevision}`);
  }
  const until = opts.untilRevision ?? received.at(-1)?.revision ?? 0;
  const watches = opts.watches ?? (() => true);
  const expected = reference.filter((e) => e.revision >= opts.startRevision && e.revision <= until && watches(e.key));
  const got = received.filter((e) => e.revision <= until);
  const n = Math.max(expected.length, got.length);
  for (let i = 0; i < n; i++) {
    const a = expected[i];
    const b = got[i];
    if (a && b && a.revision === b.revision && a.key === b.key && a.type === b.type && a.value === b.value) continue;
    if (a && (!b || b.revision > a.revision)) violations.push(`${name}: gap: missed ${show(a)} (got ${show(b)} instead)`);
    else violations.push(`${name}: delivered ${show(b)} where the history has ${show(a)}`);
    break;
  }
  return violations;
}

// Kubernetes' two wire formats for instants, and the values that make @kubernetes/client-node 2.x
// send them. metav1.MicroTime (Lease acquireTime/renewTime, Event eventTime) must carry exactly six
// fractional digits: the API server parses it with the layout "2006-01-02T15:04:05.000000Z07:00" and
// answers 400 to anything else. metav1.Time (creationTimestamp, Event first/lastTimestamp) is RFC 3339
// in whole seconds, as the API server itself writes it.
//
// client-node serializes both as plain JSON: its ObjectSerializer passes a field typed V1MicroTime
// through untouched and JSON.stringify calls Date#toJSON → toISOString(), which for a plain Date has
// three digits (".004Z"). So the values here are Date subclasses whose toISOString() is the exact
// Kubernetes text; client-node's own V1MicroTime does the same for MicroTime.
//
// What the server sends back is not turned into Dates by client-node for MicroTime fields (the
// serializer does not know the type and leaves the string): parseKubeInstant reads either form.

import { V1MicroTime } from '@kubernetes/client-node';

/** The exact wire form of a MicroTime: six fractional digits, UTC. */
export const MICRO_TIME_PATTERN = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;
/** The wire form of a Time as the API server writes it: whole seconds, UTC. */
export const TIME_PATTERN = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

/** A MicroTime that serializes to exactly `text` (six fractional digits), keeping sub-millisecond digits. */
class ExactMicroTime extends V1MicroTime {
  readonly #text: string;
  constructor(ms: number, text: string) {
    super(ms);
    this.#text = text;
  }

  override toISOString(): string {
    return this.#text;
  }
}

/** A metav1.Time: serializes in whole seconds ("2026-12-02T21:25:54Z"). */
export class KubeTime extends Date {
  override toISOString(): string {
    return `${super.toISOString().slice(0, 19)}Z`;
  }
}

/**
 * A MicroTime for an instant given as epoch milliseconds, a Date, or the text the server sent
 * (whose microseconds are kept as they were).
 */
export function microTime(value: number | Date | string): V1MicroTime {
  if (typeof value === 'string') {
    const ms = parseKubeInstant(value);
    if (ms === undefined) throw new Error(`not a Kubernetes time: ${JSON.stringify(value)}`);
    const exact = sixDigitUtc(value);
    return exact === undefined ? new V1MicroTime(ms) : new ExactMicroTime(ms, exact);
  }
  const ms = typeof value === 'number' ? value : value.getTime();
  // V1MicroTime's toISOString pads milliseconds to six digits ("...54.004000Z").
  return new V1MicroTime(ms);
}

/** A metav1.Time (whole seconds) for an instant, or for a time the server sent. */
export function kubeTime(value: number | Date | string): KubeTime {
  if (typeof value === 'string') {
    const ms = parseKubeInstant(value);
    if (ms === undefined) throw new Error(`not a Kubernetes time: ${JSON.stringify(value)}`);
    return new KubeTime(ms);
  }
  return new KubeTime(typeof value === 'number' ? value : value.getTime());
}

/**
 * Epoch milliseconds of a Time or MicroTime as client-node hands it over: a Date, or the string the
 * server sent (any number of fractional digits, "Z" or an offset). undefined when absent or unparsable.
 */
export function parseKubeInstant(value: Date | string | undefined | null): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.getTime();
  const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/i.exec(value);
  if (match === null) return undefined;
  const [, seconds, fraction = '', zone] = match;
  const base = Date.parse(`${seconds}${zone?.toUpperCase() === 'Z' ? 'Z' : zone}`);
  if (Number.isNaN(base)) return undefined;
  // Milliseconds from the first three fractional digits; finer digits cannot live in a JS number of ms.
  return base + Number(fraction.padEnd(3, '0').slice(0, 3));
}

/** The six-digit UTC text for a server-sent MicroTime already in UTC, or undefined. */
function sixDigitUtc(text: string): string | undefined {
  const match = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/i.exec(text);
  if (match === null) return undefined;
  const [, seconds, fraction = ''] = match;
  return `${seconds}.${fraction.padEnd(6, '0').slice(0, 6)}Z`;
}

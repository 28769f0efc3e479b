// The keys a cross-shard transaction's share on one shard may read or write, as half-open byte ranges,
// and whether two shares' keys meet (docs/transactions.md, "Several transactions prepared on a shard at once").
// Two transactions prepared at once on a shard must touch disjoint keys: each was checked, and its
// responses computed, on a store that lacks the other's writes, which is the state it meets at its
// commit only if the other never writes what it reads. Reads count like writes (a range, a compare), and
// a lease sweep counts as every key (which keys it deletes is decided at its commit).
//
// Pure: no I/O. Ranges follow etcd's rules for `key`/`range_end`: an empty end is the one key, an end of
// [0x00] is every key from `key` on, and key = end = [0x00] is every key.
import type { TxnRequest, WireCompare, WireRequestOp } from '../etcd/wire-types.ts';
import { compareBytes } from '../routing/slots.ts';

/** [start, end); end null: to the end of the keyspace. */
export interface KeyRange {
  readonly start: Uint8Array;
  readonly end: Uint8Array | null;
}

/** The keys of a share: ranges sorted by start and merged, or 'all' (a lease sweep, or a whole keyspace). */
export type ShareKeys = readonly KeyRange[] | 'all';

/** The range etcd means by (key, range_end). */
export function keyRangeOf(key: Uint8Array | undefined, rangeEnd: Uint8Array | undefined): KeyRange {
  const start = key ?? new Uint8Array(0);
  const end = rangeEnd ?? new Uint8Array(0);
  if (end.length === 0) return { start, end: successor(start) };
  if (end.length === 1 && end[0] === 0) return { start: start.length === 1 && start[0] === 0 ? new Uint8Array(0) : start, end: null };
  return { start, end };
}

/** The smallest key above `key`: key + 0x00. */
function successor(key: Uint8Array): Uint8Array {
  const out = new Uint8Array(key.length + 1);
  out.set(key);
  return out;
}

/** The keys `ops` (a share: compares and either branch's ops, nested txns included) may touch. */
export function shareKeysOf(ops: TxnRequest, leaseSweep: boolean): ShareKeys {
  if (leaseSweep) return 'all';
  const ranges: KeyRange[] = [];
  collect(ops, ranges);
  return normalize(ranges);
}

function collect(ops: TxnRequest, into: KeyRange[]): void {
  for (const c of ops.compare ?? []) into.push(compareRange(c));
  for (const op of [...(ops.success ?? []), ...(ops.failure ?? [])]) opRanges(op, into);
}

function compareRange(c: WireCompare): KeyRange {
  return keyRangeOf(c.key, c.range_end);
}

function opRanges(op: WireRequestOp, into: KeyRange[]): void {
  if (op.request_put) into.push(keyRangeOf(op.request_put.key, undefined));
  else if (op.request_range) into.push(keyRangeOf(op.request_range.key, op.request_range.range_end));
  else if (op.request_delete_range) into.push(keyRangeOf(op.request_delete_range.key, op.request_delete_range.range_end));
  else if (op.request_txn) collect(op.request_txn, into);
}

/** Sorted by start, overlapping or touching ranges merged; an empty range dropped. */
function normalize(ranges: KeyRange[]): ShareKeys {
  const live = ranges.filter((r) => r.end === null || compareBytes(r.start, r.end) < 0);
  live.sort((a, b) => compareBytes(a.start, b.start));
  const out: KeyRange[] = [];
  for (const r of live) {
    const last = out[out.length - 1];
    if (last !== undefined && (last.end === null || compareBytes(r.start, last.end) <= 0)) {
      const end = last.end === null || r.end === null ? null : compareBytes(r.end, last.end) > 0 ? r.end : last.end;
      out[out.length - 1] = { start: last.start, end };
    } else out.push(r);
  }
  if (out.length === 1 && out[0].start.length === 0 && out[0].end === null) return 'all';
  return out;
}

/** Whether two shares may touch a common key. */
export function shareKeysMeet(a: ShareKeys, b: ShareKeys): boolean {
  if (a === 'all') return b === 'all' || b.length > 0;
  if (b === 'all') return a.length > 0;
  // Both sorted and merged: one pass, as a merge of two sorted lists.
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i];
    const y = b[j];
    if (rangesMeet(x, y)) return true;
    // The range that ends first cannot meet anything later in the other list.
    if (endsBefore(x, y)) i++;
    else j++;
  }
  return false;
}

function rangesMeet(x: KeyRange, y: KeyRange): boolean {
  const xBeforeY = x.end !== null && compareBytes(x.end, y.start) <= 0;
  const yBeforeX = y.end !== null && compareBytes(y.end, x.start) <= 0;
  return !xBeforeY && !yBeforeX;
}

function endsBefore(x: KeyRange, y: KeyRange): boolean {
  if (x.end === null) return false;
  if (y.end === null) return true;
  return compareBytes(x.end, y.end) < 0;
}

/** For messages and tests: the ranges as [start, end) with keys in UTF-8. */
export function describeShareKeys(keys: ShareKeys): string {
  if (keys === 'all') return 'every key';
  const text = (k: Uint8Array): string => Buffer.from(k).toString('utf8');
  return keys.map((r) => `[${text(r.start)}, ${r.end === null ? '∞' : text(r.end)})`).join(' ');
}

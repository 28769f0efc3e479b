// One consistent Range over several shards: what each shard is asked, and how their answers merge into
// exactly what one store holding every key would answer at the same revision R.
//
// Why it is exact. A single store answers a Range by (1) taking every key in the range visible at R,
// (2) counting them (`count` ignores the revision filters, as etcd's does), (3) dropping keys outside
// the min/max mod/create revision filters, (4) ordering what is left by a total order — the sort
// target in the requested direction, ties broken by key ascending (the store scans in key order and
// sorts stably, for DESCEND too), plain key order when the order is NONE; etcd's defaults apply: a
// target other than KEY with order NONE sorts ASCEND, and KEY ASCEND is key order — and (5) keeping
// the first `limit`, with `more` = whether anything was cut. Steps 1-3 are per key, and the shards
// partition the keys, so counts add up and the filtered sets are disjoint. Asked the same request at
// the same R, each shard returns the first `limit` of its own filtered keys under the same total order;
// the first `limit` of the union are all among those (any key in the global top `limit` is in its own
// shard's top `limit`), so sorting the union by the total order and cutting at `limit` gives the single
// store's kvs. The union has more than `limit` filtered keys iff some shard reported `more` (it alone
// had more than `limit`) or the returned ones number more than `limit`.
//
// What each shard is asked (shardRangeRequest): the client's request at revision R, unchanged except
// that keys_only is lifted when sorting by VALUE — the merge must compare values across shards — and
// the merge blanks the values afterwards. count_only is passed through (only counts come back).
//
// Pure: no I/O, no clocks; it imports only the MVCC store's request and result types.

import type { KeyValue, RangeOp, RangeResult, SortTarget } from '../mvcc/types.ts';

const EMPTY = Buffer.alloc(0);

/** The request each shard evaluates, at `readRevision` R (the oracle's, or the client's own revision). */
export function shardRangeRequest(op: RangeOp, readRevision: number): RangeOp {
  checkReadRevision(op, readRevision);
  const keysOnly = op.keysOnly && op.sortTarget !== 'VALUE';
  return { ...op, revision: readRevision, keysOnly };
}

export interface MergedRange {
  /** The header revision: R, the one revision every shard was read at. */
  revision: number;
  result: RangeResult;
}

/**
 * Merges the shards' answers to shardRangeRequest(op, R) (one per shard that owns part of the range,
 * in any order) into the answer of one store at R. Throws if an answer reflects a write after R: a
 * shard read at the wrong revision would break the snapshot.
 */
export function mergeShardRanges(op: RangeOp, readRevision: number, answers: readonly RangeResult[]): MergedRange {
  checkReadRevision(op, readRevision);
  let count = 0;
  let anyMore = false;
  const all: KeyValue[] = [];
  for (const a of answers) {
    count += a.count;
    anyMore ||= a.more;
    for (const kv of a.kvs) {
      if (kv.modRevision > readRevision) throw new Error(`range merge: a shard answered with mod_revision ${kv.modRevision} above the read revision ${readRevision}`);
      all.push(kv);
    }
  }
  if (op.countOnly) return { revision: readRevision, result: { kvs: [], more: false, count } };
  all.sort(totalOrder(op));
  const limit = op.limit > 0 ? op.limit : Infinity;
  const more = anyMore || all.length > limit;
  const kept = all.length > limit ? all.slice(0, limit) : all;
  const kvs = op.keysOnly && op.sortTarget === 'VALUE' ? kept.map((kv) => ({ ...kv, value: EMPTY })) : kept;
  return { revision: readRevision, result: { kvs, more, count } };
}

function checkReadRevision(op: RangeOp, readRevision: number): void {
  if (!Number.isSafeInteger(readRevision) || readRevision <= 0 || (op.revision > 0 && op.revision !== readRevision)) {
    throw new Error(`range merge: read revision ${readRevision} is not the request's (${op.revision})`);
  }
}

type Order = 'KEY_ASCEND' | 'ASCEND' | 'DESCEND';

/** etcd's effective order: NONE with a non-KEY target sorts ASCEND; KEY with NONE or ASCEND is key order. */
function effectiveOrder(op: RangeOp): Order {
  if (op.sortTarget === 'KEY') return op.sortOrder === 'DESCEND' ? 'DESCEND' : 'KEY_ASCEND';
  return op.sortOrder === 'DESCEND' ? 'DESCEND' : 'ASCEND';
}

function targetCompare(target: SortTarget): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case 'KEY':
      return (a, b) => Buffer.compare(a.key, b.key);
    case 'VERSION':
      return (a, b) => a.version - b.version;
    case 'CREATE':
      return (a, b) => a.createRevision - b.createRevision;
    case 'MOD':
      return (a, b) => a.modRevision - b.modRevision;
    case 'VALUE':
      return (a, b) => Buffer.compare(a.value, b.value);
  }
}

/** The single store's total order: the target in the effective direction, ties by key ascending. */
function totalOrder(op: RangeOp): (a: KeyValue, b: KeyValue) => number {
  const byKey = (a: KeyValue, b: KeyValue): number => Buffer.compare(a.key, b.key);
  const order = effectiveOrder(op);
  if (order === 'KEY_ASCEND') return byKey;
  const cmp = targetCompare(op.sortTarget);
  return order === 'DESCEND' ? (a, b) => cmp(b, a) || byKey(a, b) : (a, b) => cmp(a, b) || byKey(a, b);
}

// A read at revision R on another member whose answer is larger than one peer message: it travels in
// pages, each the same request over a first part of what is left of its key range, and the pages merge
// into the one answer as the shards of a multi-shard read do (server/routing/range-merge.ts).
//
// Why the merge is exact: a page answers the request on [start, pageEnd) at R, with its sort, filters and
// limit, so the pages are the request's answers on disjoint key ranges that cover the whole, like shards
// partitioning the keys; mergeShardRanges combines such answers into the single store's, counts included.
// History at R never changes, so pages read at different moments are one snapshot (a compaction past R in
// between fails the next page as compacted, as a read at R would).
//
// Serving side (firstPage): the whole answer was computed and is too large. The page ends where the range's
// keys in key order, values included, would pass the budget, and its answer is computed on that narrower
// range: a sorted, filtered or limited answer on a part holds some of those keys at most, so it fits. A
// page holds at least one key, so paging always ends. Calling side (readPaged): asks
// from the start, then from each page's end, and stops early for key-ordered answers with a limit once it
// holds enough keys (what is left is then only counted).
import type { RangeOp, RangeResult } from '../mvcc/types.ts';
import { mergeShardRanges } from '../routing/range-merge.ts';
import { kvWireBytes, rangeResultWireBytes } from './shard-peer-wire.ts';

/** One page: the request's answer on the keys below `pageEnd` (null: on the whole rest). */
export interface RangePage {
  readonly result: RangeResult;
  readonly pageEnd: Buffer | null;
}

/** Keys read at a time while looking for where a page ends. */
const SCAN_KEYS = 256;

/**
 * The first page of `op`'s answer (whose whole answer is over `budgetBytes`): its answer on
 * [op.key, pageEnd), read through `read`. The page ends at the first key at which the range's keys, in key
 * order and whatever the request's filters, sort and limit, would pass the budget: the page's answer holds
 * some of those keys at most, so it fits. Null when the range's first key alone does not fit.
 */
export async function firstPage(op: RangeOp, budgetBytes: number, read: (sub: RangeOp) => Promise<RangeResult>): Promise<RangePage | null> {
  if (op.rangeEnd.length === 0) return null; // one key: nothing to split
  const scan: RangeOp = { ...op, sortTarget: 'KEY', sortOrder: 'NONE', limit: SCAN_KEYS, keysOnly: false, countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0 };
  let bytes = 32;
  let from = op.key;
  let scanned = 0;
  for (;;) {
    const part = await read({ ...scan, key: from });
    for (const kv of part.kvs) {
      bytes += kvWireBytes(kv);
      if (bytes > budgetBytes) {
        if (scanned === 0) return null;
        return { result: await read({ ...op, rangeEnd: kv.key }), pageEnd: kv.key };
      }
      scanned++;
    }
    // The whole range within the budget: not a page's to answer (its whole answer did not fit).
    if (!part.more || part.kvs.length === 0) return null;
    from = Buffer.concat([part.kvs[part.kvs.length - 1].key, Buffer.from([0])]);
  }
}

/** Whether `op`'s answer is in key order (etcd's default), so its first `limit` keys come first. */
function keyOrdered(op: RangeOp): boolean {
  return op.sortTarget === 'KEY' && op.sortOrder !== 'DESCEND';
}

/**
 * `op` at `revision` (op.revision is 0 or `revision`), read in pages through `read` (the request on a
 * key range; a page or the whole rest), merged into one answer.
 */
export async function readPaged(op: RangeOp, revision: number, read: (sub: RangeOp) => Promise<RangePage>): Promise<RangeResult> {
  const first = await read(op);
  if (first.pageEnd === null) return first.result;
  const pages: RangeResult[] = [first.result];
  let held = first.result.kvs.length;
  let from = first.pageEnd;
  const limit = op.limit > 0 ? op.limit : Infinity;
  for (;;) {
    if (keyOrdered(op) && !op.countOnly && held >= limit) {
      // Enough keys in key order: the rest only adds to count, and to `more` if a key of it passes the
      // filters. Its one key sorts after every key held, so the merge's cut at `limit` drops it.
      const rest = await read({ ...op, key: from, limit: 1, keysOnly: true });
      pages.push(rest.result);
      break;
    }
    const page = await read({ ...op, key: from });
    pages.push(page.result);
    held += page.result.kvs.length;
    if (page.pageEnd === null) break;
    from = page.pageEnd;
  }
  return mergeShardRanges(op, revision, pages).result;
}

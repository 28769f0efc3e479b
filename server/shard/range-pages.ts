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
// Serving side (pageOf): the page ends where the range's keys in key order, values included, would pass the
// budget, and its answer is computed on that narrower range: a sorted, filtered or limited answer on a part
// holds some of those keys at most, so it fits. A page holds at least one key, so paging always ends. A
// first request is answered whole when it fits (one read, the common case); the pages after it are looked
// for first, so a read of N bytes costs about N more, not N per page. Calling side (readPaged): asks from
// the start, then from each page's end, and stops early for key-ordered answers with a limit once it holds
// enough keys (what is left is then only counted).
import type { RangeOp, RangeResult } from '../mvcc/types.ts';
import { mergeShardRanges } from '../routing/range-merge.ts';
import { kvWireBytes, rangeResultWireBytes } from './shard-peer-wire.ts';

/** One page: the request's answer on the keys below `pageEnd` (null: on the whole rest). */
export interface RangePage {
  readonly result: RangeResult;
  readonly pageEnd: Buffer | null;
}

/** Keys read at a time while looking for where a page ends: at first (then as many as the budget left seems to hold), and at most. */
const SCAN_FIRST_KEYS = 8;
const SCAN_MAX_KEYS = 4_096;

/**
 * `op`'s answer within `budgetBytes`, read through `read`: the whole answer when the range's keys fit the
 * budget, else its answer on [op.key, pageEnd), where pageEnd is the first key at which the range's keys in
 * key order (values too, unless keys only), whatever the request's filters, sort and limit, would pass the
 * budget: the page's answer holds some of those keys at most, so it fits. The keys are looked at in
 * batches sized by what the budget left seems to hold, so a page costs about its own size to find. Null when the range's first key alone does
 * not fit.
 */
export async function pageOf(op: RangeOp, budgetBytes: number, read: (sub: RangeOp) => Promise<RangeResult>): Promise<RangePage | null> {
  if (op.rangeEnd.length === 0 || op.countOnly) {
    const whole = await read(op); // one key, or only a count
    return rangeResultWireBytes(whole) <= budgetBytes ? { result: whole, pageEnd: null } : null;
  }
  const scan: RangeOp = { ...op, sortTarget: 'KEY', sortOrder: 'NONE', countOnly: false, minModRevision: 0, maxModRevision: 0, minCreateRevision: 0, maxCreateRevision: 0 };
  let bytes = 32;
  let from = op.key;
  let scanned = 0;
  for (let limit = SCAN_FIRST_KEYS; ; ) {
    const part = await read({ ...scan, key: from, limit });
    for (const kv of part.kvs) {
      bytes += kvWireBytes(kv);
      if (bytes > budgetBytes) {
        if (scanned === 0) return null;
        return { result: await read({ ...op, rangeEnd: kv.key }), pageEnd: kv.key };
      }
      scanned++;
    }
    // Every key of the range within the budget: so is the whole answer.
    if (!part.more || part.kvs.length === 0) return { result: await read(op), pageEnd: null };
    from = Buffer.concat([part.kvs[part.kvs.length - 1].key, Buffer.from([0])]);
    const perKey = (bytes - 32) / scanned;
    limit = Math.max(SCAN_FIRST_KEYS, Math.min(SCAN_MAX_KEYS, Math.ceil((budgetBytes - bytes) / perKey) + 1));
  }
}

/** Whether `op`'s answer is in key order (etcd's default), so its first `limit` keys come first. */
function keyOrdered(op: RangeOp): boolean {
  return op.sortTarget === 'KEY' && op.sortOrder !== 'DESCEND';
}

/** Whether `op` keeps only some of its range's keys (etcd's revision filters). */
function filtered(op: RangeOp): boolean {
  return op.minModRevision > 0 || op.maxModRevision > 0 || op.minCreateRevision > 0 || op.maxCreateRevision > 0;
}

/** Whether a key of `op`'s range from `from` on passes its filters, asked one key at a time, page by page. */
async function anyPasses(op: RangeOp, from: Buffer, read: (sub: RangeOp, continued: boolean) => Promise<RangePage>): Promise<boolean> {
  for (let key = from; ; ) {
    const page = await read({ ...op, key, limit: 1, keysOnly: true }, true);
    if (page.result.kvs.length > 0) return true;
    if (page.pageEnd === null) return false;
    key = page.pageEnd;
  }
}

/**
 * `op` at `revision` (op.revision is 0 or `revision`), read in pages through `read` (the request on a
 * key range; a page or the whole rest; `continued` for every page after the first, which the serving
 * side looks for before computing, as the read is known to be large), merged into one answer.
 */
export async function readPaged(op: RangeOp, revision: number, read: (sub: RangeOp, continued: boolean) => Promise<RangePage>): Promise<RangeResult> {
  const first = await read(op, false);
  if (first.pageEnd === null) return first.result;
  const pages: RangeResult[] = [first.result];
  let held = first.result.kvs.length;
  let from = first.pageEnd;
  const limit = op.limit > 0 ? op.limit : Infinity;
  for (;;) {
    if (keyOrdered(op) && !op.countOnly && held >= limit) {
      // Enough keys in key order: the rest only adds to count, and to `more` if a key of it passes the
      // filters (a count is never paged; a key that passes is looked for page by page).
      const counted = await read({ ...op, key: from, countOnly: true }, true);
      pages.push({ kvs: [], more: counted.result.count > 0 && (!filtered(op) || (await anyPasses(op, from, read))), count: counted.result.count });
      break;
    }
    const page = await read({ ...op, key: from }, true);
    pages.push(page.result);
    held += page.result.kvs.length;
    if (page.pageEnd === null) break;
    from = page.pageEnd;
  }
  return mergeShardRanges(op, revision, pages).result;
}

// A Txn whose writes are all on one shard but whose reads (compares, ranges) touch other shards too —
// etcd's concurrency package writes `<name>/<lease>` and, in the same Txn, ranges over `<name>/` (every
// shard) — served serializably in one Raft entry of the write shard. Pure: no I/O, no clocks.
//
//   planTxnReads     which compares and range ops touch shards other than the write shard, and which;
//   comparePart      a compare's part on those shards, from what they answered;
//   txnReadsToWire   what the write shard's leader read, in the entry's wire form (internal.proto);
//   readsForStore    at apply, on every replica: the entry's foreign answers as the store's
//                    TxnReadsElsewhere, combined with the write shard's own part (mvcc/store.ts).
//
// Why it is serializable: the write shard's leader stamps the entry with oracle revision R (R is this
// entry's alone, no other shard writes at R) and, before proposing it, reads every other shard the txn
// touches at R − 1 on its leader (ShardWritePath.readAt: that shard then never writes at or below R − 1
// again). Later writes of the write shard wait behind the entry, so the shard's state before the entry
// is its state through R − 1. The txn thus reads every shard's state at R − 1 = its state "just before
// R" and writes at R: as if run alone at R on one store. Apply is deterministic: the foreign answers are
// in the entry; only the write shard's own part is evaluated, at apply, against its own store (which is
// what lets a range see the txn's own earlier puts, as `lock`'s getOwner must).
//
// Only the top-level txn's compares and ranges may touch other shards (etcd's concurrency package nests
// nothing); a nested txn reaching another shard is refused by the API as a cross-shard request.
import { compareKeyValue, type ComparePart, type TxnReadsElsewhere } from '../mvcc/store.ts';
import { MvccError, rangeOf, type Compare, type KeyValue, type RangeOp, type RangeResult, type TxnOp } from '../mvcc/types.ts';
import { mergeShardRanges } from '../routing/range-merge.ts';
import type { TxnReadsWire } from './request-codec.ts';
import { rangeResultFromWire, rangeResultToWire } from './shard-peer-wire.ts';

/** One read the write shard's leader makes on other shards before proposing the txn. */
export interface ForeignRead {
  kind: 'compare' | 'range';
  /** For a range op: which branch it is in (compares: false). */
  failure: boolean;
  /** Index in the compare list, or in the branch's op list. */
  index: number;
  /** The other shards' groups it touches (never the write shard's). */
  groups: number[];
  /** What each of those shards is asked; `revision` 0 means "at R − 1". */
  op: RangeOp;
}

/** What a foreign read answered: one result per group of `groups`, in order, or the compacted refusal. */
export type ForeignAnswer = RangeResult[] | 'compacted';

/** The groups (shards) a key range touches. */
export type GroupsOfRange = (key: Buffer, rangeEnd: Buffer) => number[];

/**
 * The reads of `t` on shards other than `ownGroup`, in a fixed order (compares, then success, then
 * failure ops). Empty when the txn touches only its own shard (today's single-shard txn, unchanged).
 */
export function planTxnReads(t: TxnOp, ownGroup: number, groupsOf: GroupsOfRange): ForeignRead[] {
  const out: ForeignRead[] = [];
  t.compare.forEach((c, index) => {
    const groups = groupsOf(c.key, c.rangeEnd).filter((g) => g !== ownGroup);
    if (groups.length > 0) out.push({ kind: 'compare', failure: false, index, groups, op: rangeOf(c.key, c.rangeEnd) });
  });
  for (const failure of [false, true]) {
    (failure ? t.failure : t.success).forEach((r, index) => {
      if (r.type !== 'range') return;
      const groups = groupsOf(r.range.key, r.range.rangeEnd).filter((g) => g !== ownGroup);
      if (groups.length > 0) out.push({ kind: 'range', failure, index, groups, op: perShardOp(r.range) });
    });
  }
  return out;
}

/** What each shard is asked for a range op (as range-merge.ts's shardRangeRequest, revision left as asked). */
function perShardOp(op: RangeOp): RangeOp {
  return { ...op, keysOnly: op.keysOnly && op.sortTarget !== 'VALUE' };
}

/**
 * The revision a foreign read is made at, for an entry at `revision`: the client's own revision when it
 * gave one (null when that is not below `revision`: a future revision, refused at apply), else R − 1.
 */
export function foreignReadRevision(read: ForeignRead, revision: number): number | null {
  if (read.op.revision > 0) return read.op.revision < revision ? read.op.revision : null;
  return revision - 1;
}

/** A compare's part on other shards, from the keys they hold in its range. */
export function comparePart(c: Compare, kvs: readonly KeyValue[]): ComparePart {
  let ok = true;
  for (const kv of kvs) {
    if (!compareKeyValue(c, kv)) {
      ok = false;
      break;
    }
  }
  return { any: kvs.length > 0, ok };
}

/** The entry's `txn_reads`: `answers[i]` answers `plan[i]` (null: not read, a future revision). */
export function txnReadsToWire(t: TxnOp, plan: readonly ForeignRead[], answers: ReadonlyArray<ForeignAnswer | null>): TxnReadsWire {
  const wire: TxnReadsWire = { compares: [], ranges: [] };
  plan.forEach((read, i) => {
    const answer = answers[i];
    if (read.kind === 'compare') {
      // A compare reads the latest state (no revision), so it is never compacted.
      const kvs = answer === null || answer === 'compacted' ? [] : answer.flatMap((a) => a.kvs);
      const part = comparePart(t.compare[read.index], kvs);
      wire.compares.push({ index: read.index, any: part.any, ok: part.ok });
    } else {
      const parts = answer === null || answer === 'compacted' ? [] : answer;
      wire.ranges.push({ failure: read.failure, index: read.index, compacted: answer === 'compacted', parts: parts.map(rangeResultToWire) });
    }
  });
  return wire;
}

/**
 * The entry's foreign answers for MvccStore.txn, on `t` as decoded from the entry, applied at `at`.
 * A range's answer is the merge of the write shard's part (read in the txn's view: it sees the txn's
 * own earlier writes) with the other shards' parts, exactly as one store would answer it at `at`.
 */
export function readsForStore(t: TxnOp, wire: TxnReadsWire, at: number): TxnReadsElsewhere {
  const compares = new Map<Compare, ComparePart>();
  for (const c of wire.compares ?? []) {
    const compare = t.compare[c.index];
    if (compare !== undefined) compares.set(compare, { any: c.any, ok: c.ok });
  }
  const ranges = new Map<RangeOp, { compacted: boolean; parts: RangeResult[] }>();
  for (const r of wire.ranges ?? []) {
    const op = (r.failure ? t.failure : t.success)[r.index];
    if (op?.type === 'range') ranges.set(op.range, { compacted: r.compacted === true, parts: (r.parts ?? []).map(rangeResultFromWire) });
  }
  return {
    compare: (c) => compares.get(c),
    range: (op, local) => {
      const found = ranges.get(op);
      if (found === undefined) return undefined;
      // The own part first: it refuses a future or compacted revision exactly as a one-shard txn would.
      const own = local(perShardOp(op));
      if (found.compacted) throw new MvccError('compacted', 'mvcc: required revision has been compacted');
      const readRevision = op.revision > 0 ? op.revision : at;
      return mergeShardRanges(op, readRevision, [own, ...found.parts]).result;
    },
  };
}

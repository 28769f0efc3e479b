// etcdserverpb.KV on a sharded cluster (ctx.shards set): each request goes to the shard that holds its
// keys. A request within one shard is exactly etcd's, on that shard's Raft group: a write is proposed to
// the group (its leader stamps it with an oracle revision, server/shard/shard-write-path.ts, whether it was
// made there or forwarded by a follower's Raft), a linearizable read waits on the shard's ReadIndex. A
// Range over several shards is one consistent snapshot: R is a fresh oracle revision, every shard is read at
// R on its leader (which then never writes at or below R) and the answers are merged exactly
// (server/routing/range-merge.ts). A Txn whose writes are on one shard but whose reads (compares,
// ranges) touch others is proposed to the write shard, whose leader reads the others at the entry's
// revision − 1 and carries the answers in the entry (server/shard/txn-reads.ts). Any other Txn over several
// shards is a cross-shard transaction (server/txn/coordinator.ts): read-only at one oracle revision, else
// two-phase commit at one revision, nested txns and lease puts included. A put with a lease names the lease's generation, read in the cluster group where leases
// live (docs/sharding.md, "Leases on a sharded cluster"). Compact compacts every shard at one revision.
// A shard this member's API does not serve (ShardedKeyspace.hosts) is served by a member that does: a
// one-shard read or read-only txn is forwarded (server/shard/shard-forwarder.ts), and so is every write
// (ApiContext.proposeWrite); the client sees what that member answers, under this member's id.
import * as grpc from '@grpc/grpc-js';
import { DATA_GROUP_ID, type ApiContext, type GroupTarget, type ShardedKeyspace, type WriteOutcome } from './context.ts';
import { ETCD_ERRORS, grpcError } from '../etcd/errors.ts';
import { rangeOpFromWire, txnIsReadOnly, txnOpFromWire } from '../etcd/convert.ts';
import type { CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, ResponseHeader, TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';
import { rangeOf, type RangeOp, type RangeResult, type TxnResult } from '../mvcc/types.ts';
import { mergeShardRanges, shardRangeRequest } from '../routing/range-merge.ts';
import type { LeaseGeneration } from '../shard/request-codec.ts';
import { DeadlineError } from '../member/member.ts';
import { crossShardCoordinator } from './cross-shard-txn.ts';
import type { TxnCoordinator } from '../txn/coordinator.ts';

/** How often a put waits for an earlier generation of its lease to be swept (a re-granted lease id). */
const SWEEP_WAIT_POLL_MS = 20;

/**
 * The revision a read of `target`'s replica here answers at. A linearizable read first waits for every
 * cross-shard transaction prepared there when it began to be resolved (it may be decided on its primary
 * already, and its writes must then be seen); a serializable one reads just below them (docs/transactions.md).
 */
export async function replicaReadRevision(target: GroupTarget, linearizable: boolean, deadlineMs: number): Promise<number> {
  if (linearizable) await target.sm.txnsPreparedNowSettled(deadlineMs, () => new DeadlineError('cross-shard transaction'));
  return target.sm.readableRevision();
}

/** The one shard every key of `keys` (and range) is on, or a FailedPrecondition. */
/** The distinct shards the keys and ranges of `ranges` touch, in order, stopping at two. */
function firstShards(shards: ShardedKeyspace, ranges: Array<[Buffer, Buffer]>): GroupTarget[] {
  const found: GroupTarget[] = [];
  for (const [key, rangeEnd] of ranges) {
    for (const t of shards.shardsOfRange(key, rangeEnd)) {
      if (found.length === 0 || found[0].groupId !== t.groupId) found.push(t);
      if (found.length === 2) return found;
    }
  }
  return found;
}

function oneShard(shards: ShardedKeyspace, ranges: Array<[Buffer, Buffer]>): GroupTarget {
  const found = firstShards(shards, ranges);
  // Nothing touched (an empty txn): any shard answers it, the empty key's.
  if (found.length === 0) return shards.shardOf(Buffer.alloc(0));
  if (found.length > 1) throw new Error('invariant: a request over several shards reached a one-shard path');
  return found[0];
}

/** Whether the keys and ranges of `ranges` lie on more than one shard. */
function spansShards(shards: ShardedKeyspace, ranges: Array<[Buffer, Buffer]>): boolean {
  return firstShards(shards, ranges).length > 1;
}

/** What a txn touches: the keys it writes, the ranges it reads at top level and nested, its leases. */
interface TxnKeys {
  writes: Array<[Buffer, Buffer]>;
  topReads: Array<[Buffer, Buffer]>;
  nestedReads: Array<[Buffer, Buffer]>;
  leases: Set<string>;
}

function txnKeys(t: TxnRequest, nested = false, out: TxnKeys = { writes: [], topReads: [], nestedReads: [], leases: new Set() }): TxnKeys {
  const reads = nested ? out.nestedReads : out.topReads;
  for (const c of t.compare ?? []) reads.push([c.key, c.range_end ?? Buffer.alloc(0)]);
  const ops = (list: WireRequestOp[]): void => {
    for (const op of list ?? []) {
      if (op.request_range) reads.push([op.request_range.key, op.request_range.range_end ?? Buffer.alloc(0)]);
      else if (op.request_put) {
        const lease = String(op.request_put.lease ?? '0');
        if (lease !== '0' && lease !== '') out.leases.add(lease);
        out.writes.push([op.request_put.key, Buffer.alloc(0)]);
      } else if (op.request_delete_range) out.writes.push([op.request_delete_range.key, op.request_delete_range.range_end ?? Buffer.alloc(0)]);
      else if (op.request_txn) txnKeys(op.request_txn, true, out);
    }
  };
  ops(t.success);
  ops(t.failure);
  return out;
}

export class ShardedKv {
  private readonly ctx: ApiContext;
  private readonly shards: ShardedKeyspace;
  /** Txns whose writes span shards (two-phase commit), and recovery of those a coordinator left. */
  readonly crossShard: TxnCoordinator;

  constructor(ctx: ApiContext, shards: ShardedKeyspace) {
    this.ctx = ctx;
    this.shards = shards;
    this.crossShard = crossShardCoordinator(ctx, shards);
    // The shards this member leads recover, through this member's coordinator, what others left prepared.
    shards.txnRecoverer = (p, groupId) => this.crossShard.recoverPrepared(p, groupId);
    // …and finish committed transactions whose coordinator vanished before its forgets.
    shards.txnFinisher = (d) => this.crossShard.finishCommitted(d.txnId, d.revision, d.participantGroups ?? [], d.failureBranch === true);
    // …and drop the fences of transactions long gone.
    shards.txnFenceHorizon = (groupId, horizonMs) => this.crossShard.advanceFenceHorizon(groupId, horizonMs);
  }

  /** A single-shard range from this member's replica; several shards at one oracle revision R. */
  range(req: RangeRequest): Promise<{ header: ReturnType<ApiContext['header']>; result: RangeResult }> {
    return this.rangeOp(rangeOpFromWire(req), req.serializable === true);
  }

  /** `range` for a RangeOp (the server's own reads: the Lock and Election services'). */
  async rangeOp(op: RangeOp, serializable: boolean): Promise<{ header: ReturnType<ApiContext['header']>; result: RangeResult }> {
    const touched = this.shards.shardsOfRange(op.key, op.rangeEnd);
    if (touched.length === 1 && !this.shards.hosts(touched[0].groupId)) {
      // Served by a member hosting the shard, as below; one that has not applied `revision` yet says so
      // and the read is made at R on the shard's leader, as for several shards.
      if (!serializable && this.ctx.isLearner()) throw grpcError(ETCD_ERRORS.NOT_SUPPORTED_FOR_LEARNER);
      const answer = await this.shards.forwardKv(touched[0].groupId, { kind: 'range', op, serializable }, this.ctx.deadlineMs()).catch((err: unknown) => {
        // An answer the host could not send (past 2 GiB, or over 64 MiB from an older member): read at R
        // below instead, where it comes in pages.
        if ((err as { code?: number }).code === grpc.status.RESOURCE_EXHAUSTED) return null;
        throw err;
      });
      if (answer !== null && answer.kind === 'done') {
        if (answer.payload.kind !== 'range') throw new Error(`shard group ${touched[0].groupId}: a forwarded range answered ${answer.payload.kind}`);
        return { header: this.ctx.header(answer.revision, touched[0], answer.raftTerm), result: answer.payload.result };
      }
    }
    // One shard answers alone, unless asked at a revision past what it has applied: other shards used the
    // revisions in between, so that read is a read at R on the shard's leader, as for several shards. Its
    // header is the shard's applied revision, which counts the revisions its writes that changed nothing
    // used up: their answers carried them, and a later read of the shard must not go below them.
    if (touched.length === 1 && this.shards.hosts(touched[0].groupId) && op.revision <= touched[0].sm.readableRevision()) {
      const target = touched[0];
      if (!serializable) await this.ctx.readBarrier(target);
      const through = await replicaReadRevision(target, !serializable, this.ctx.deadlineMs());
      return { header: this.ctx.header(through, target), result: target.sm.store.range(op, through) };
    }
    const deadlineMs = this.ctx.deadlineMs();
    // R: at or above every revision handed out before this read began (a given `revision` is used as is,
    // and checked by every shard against its own compaction).
    const fresh = await this.shards.freshRevision(deadlineMs);
    if (op.revision > fresh) throw grpcError(ETCD_ERRORS.FUTURE_REV);
    const readRevision = op.revision > 0 ? op.revision : fresh;
    const perShard = shardRangeRequest(op, readRevision);
    const answers = await Promise.all(touched.map((t) => this.shards.rangeAt(t, perShard, readRevision, deadlineMs)));
    const merged = mergeShardRanges(op, readRevision, answers);
    return { header: this.ctx.header(merged.revision), result: merged.result };
  }

  async put(req: PutRequest): Promise<{ header: ResponseHeader; out: WriteOutcome }> {
    const target = this.shards.shardOf(req.key);
    const lease = String(req.lease ?? '0');
    if (lease === '0' || lease === '' || req.ignore_lease) return this.answered(target, await this.ctx.proposeWrite({ put: req }, { target }));
    const generations = await this.leaseGenerations([lease]);
    if (generations.length === 0) throw grpcError(ETCD_ERRORS.LEASE_NOT_FOUND);
    return this.answered(target, await this.ctx.proposeWrite({ put: req, lease_generations: generations }, { target }));
  }

  /** A write's answer with its header: the shard's revision, and its raft term where it was proposed. */
  private answered(target: GroupTarget, out: WriteOutcome): { header: ResponseHeader; out: WriteOutcome } {
    return { header: this.ctx.header(out.revision, target, out.raftTerm), out };
  }

  /**
   * The generations of those of `ids` that exist, read in the cluster group after its ReadIndex (a lease
   * missing there is missing: etcd's "requested lease not found" at apply). A lease id re-granted while
   * the keys of its previous generation are still being swept waits for that sweep (helping it along):
   * a put of the new generation must not reach a shard before the old generation's sweep, or that sweep
   * would delete it (docs/sharding.md, "Leases on a sharded cluster").
   */
  private async leaseGenerations(ids: Iterable<string>): Promise<LeaseGeneration[]> {
    const deadlineMs = this.ctx.deadlineMs();
    await this.ctx.readBarrier();
    const out: LeaseGeneration[] = [];
    for (const id of ids) {
      for (;;) {
        const now = this.ctx.sm.leases.attachable(id);
        if (now.kind === 'missing') break;
        if (now.kind === 'alive') {
          // Read now, in the same turn as the lease: the state this generation was found alive in.
          out.push({ ID: id, generation: String(now.generation), checked_at: String(this.ctx.member.status(DATA_GROUP_ID).applied) });
          break;
        }
        if (Date.now() >= deadlineMs) throw new DeadlineError('lease sweep');
        const sweeper = this.ctx.leaseSweeper;
        if (sweeper !== null) await sweeper.sweepBy(id, now.generation, deadlineMs).catch(() => undefined);
        await new Promise((r) => setTimeout(r, SWEEP_WAIT_POLL_MS));
      }
    }
    return out;
  }

  async deleteRange(req: DeleteRangeRequest): Promise<{ header: ResponseHeader; out: WriteOutcome }> {
    if (spansShards(this.shards, [[req.key, req.range_end ?? Buffer.alloc(0)]])) {
      // Over several shards: one cross-shard transaction, so every key goes at one revision.
      const out = await this.crossShard.run({ compare: [], success: [{ request_delete_range: req }], failure: [] });
      const only = (out.result as TxnResult).responses[0];
      if (only?.type !== 'deleteRange') throw new Error('a cross-shard delete answered no delete');
      return { header: this.ctx.header(out.revision), out: { revision: out.revision, result: only.deleteRange } };
    }
    const target = oneShard(this.shards, [[req.key, req.range_end ?? Buffer.alloc(0)]]);
    return this.answered(target, await this.ctx.proposeWrite({ delete_range: req }, { target }));
  }

  /**
   * A txn whose keys are all on one shard (read-only ones need no log entry: a ReadIndex suffices), or
   * whose writes are on one shard and whose top-level compares and ranges touch others: proposed to the
   * write shard, whose leader reads the others at the entry's revision − 1 (server/shard/txn-reads.ts).
   */
  async txn(req: TxnRequest, serializable: boolean): Promise<{ header: ResponseHeader; out: WriteOutcome }> {
    const keys = txnKeys(req);
    const readOnly = txnIsReadOnly(req);
    // Over several shards: a cross-shard transaction (server/txn/coordinator.ts) — read-only ones read
    // every shard at one oracle revision; writes on several shards, or reads of a nested txn on shards
    // other than its one write shard (only top-level reads are carried in a one-shard entry), commit by
    // two-phase commit at one revision.
    if (readOnly ? spansShards(this.shards, [...keys.topReads, ...keys.nestedReads]) : spansShards(this.shards, [...keys.writes, ...keys.nestedReads])) {
      const generations = keys.leases.size > 0 ? await this.leaseGenerations(keys.leases) : [];
      const out = await this.crossShard.run(req, generations);
      return { header: this.ctx.header(out.revision), out };
    }
    if (readOnly) {
      const target = oneShard(this.shards, [...keys.topReads, ...keys.nestedReads]);
      if (!this.shards.hosts(target.groupId)) {
        if (!serializable && this.ctx.isLearner()) throw grpcError(ETCD_ERRORS.NOT_SUPPORTED_FOR_LEARNER);
        const answer = await this.shards.forwardKv(target.groupId, { kind: 'read-txn', txn: req, serializable }, this.ctx.deadlineMs());
        if (answer.kind !== 'done' || answer.payload.kind !== 'response' || answer.payload.response.type !== 'txn') throw new Error(`shard group ${target.groupId}: a forwarded read-only txn answered ${answer.kind}`);
        return this.answered(target, { revision: answer.revision, raftTerm: answer.raftTerm, result: answer.payload.response.txn });
      }
      if (!serializable) await this.ctx.readBarrier(target);
      await replicaReadRevision(target, !serializable, this.ctx.deadlineMs());
      return this.answered(target, target.sm.store.txn(txnOpFromWire(req)));
    }
    // Writes and nested reads on one shard; top-level reads may touch others (txn-reads.ts).
    const target = oneShard(this.shards, [...keys.writes, ...keys.nestedReads]);
    const generations = keys.leases.size > 0 ? await this.leaseGenerations(keys.leases) : [];
    const body = generations.length > 0 ? { txn: req, lease_generations: generations } : { txn: req };
    return this.answered(target, await this.ctx.proposeWrite(body, { target }));
  }

  /**
   * Compact(C) on every shard. C must not be above a fresh oracle revision (else a future revision). Each
   * shard is first read at C on its leader, which raises its floor: no write at or below C can follow, so
   * a shard that wrote nothing up to C compacts at its applied revision, whose state is its state at C.
   * The header revision is C's snapshot point.
   */
  async compact(req: CompactionRequest): Promise<{ revision: number }> {
    const asked = Number(req.revision ?? 0);
    const deadlineMs = this.ctx.deadlineMs();
    const fresh = await this.shards.freshRevision(deadlineMs);
    if (asked > fresh) throw grpcError(ETCD_ERRORS.FUTURE_REV);
    const targets = this.shards.targets();
    if (asked > 0) {
      const probe = rangeOf(Buffer.alloc(0), Buffer.alloc(0), { countOnly: true });
      await Promise.all(targets.map((t) => this.shards.rangeAt(t, probe, asked, deadlineMs)));
    }
    await Promise.all(targets.map((target) => this.ctx.proposeWrite({ compaction: req }, { target })));
    return { revision: fresh };
  }
}

/** The member's ShardedKv, one per API context: the KV service and the Lock and Election services share it. */
const shardedKvs = new WeakMap<ApiContext, ShardedKv>();

export function shardedKvOf(ctx: ApiContext, shards: ShardedKeyspace): ShardedKv {
  let kv = shardedKvs.get(ctx);
  if (kv === undefined) shardedKvs.set(ctx, (kv = new ShardedKv(ctx, shards)));
  return kv;
}

// The coordinator of a Txn whose writes span shards (docs/transactions.md): the member the client
// reached runs it, and recovers, for the shards it leads, transactions whose coordinator vanished.
//
//   1. C: a revision of its own from the oracle (no other write anywhere is at C).
//   2. The compares, read at C − 1 on the shards holding their keys (each such shard then never writes at
//      or below C − 1); the branch is chosen; its ops are split by shard.
//   3. Prepare: one txn_intent per shard with writes (a participant), stamped at C by that shard's
//      leader if C is above its floor, applied as a dry run of the share (its responses come back) and
//      laid as prepared. A shard with a prepared transaction writes nothing else until it is resolved.
//   4. Decide: txn_resolve commit on the primary (the shard of the branch's first written key): applied
//      only if the transaction is still prepared there (a recoverer may have aborted it), it runs the
//      primary's share at C and keeps the decision. The client is answered now.
//   5. Resolve the other participants (each runs its share at C), then let the primary forget.
//
// Any failure before the decision aborts the attempt through the primary (txn_recover, which fences C
// there) and the participants; a refused prepare (C not above a shard's floor: some read or write got
// there first) or a lost decision starts a new attempt at a fresh C, until the client's deadline.
import * as grpc from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import type { ApiContext, GroupTarget, ShardedKeyspace, WriteOutcome } from './context.ts';
import { grpcError, ETCD_ERRORS } from '../etcd/errors.ts';
import { rangeOpFromWire, txnOpFromWire } from '../etcd/convert.ts';
import type { TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';
import { compareKeyValue } from '../mvcc/store.ts';
import { rangeOf, type Compare, type DeleteRangeResult, type KeyValue, type RangeResult, type ResponseOp, type TxnResult } from '../mvcc/types.ts';
import { mergeShardRanges } from '../routing/range-merge.ts';
import { DeadlineError } from '../member/member.ts';
import type { PreparedTxn } from '../txn/shard-txn-table.ts';

/** Attempts at fresh revisions before the client is told to retry. */
const MAX_ATTEMPTS = 8;
/**
 * How long a prepared transaction stays out of recoverers' reach. Short: a coordinator killed between
 * prepare and decision holds its participants' writes and reads this long (plus the recoverers' grace
 * and check period, under 2 s in all); a slow live coordinator whose transaction a recoverer aborted
 * only loses that attempt and tries again.
 */
const INTENT_TTL_MS = 1_000;
/** How long the resolves after the answer, and an abort, may take. */
const RESOLVE_TIMEOUT_MS = 5_000;

const UNSUPPORTED_NESTED = { code: grpc.status.FAILED_PRECONDITION, message: 'synod: a nested txn in a transaction whose writes span shards is not supported (hash-tag its keys with {tag} to keep them on one shard)' };
const UNSUPPORTED_LEASE = { code: grpc.status.FAILED_PRECONDITION, message: 'synod: a put with a lease in a transaction whose writes span shards is not supported yet (hash-tag its keys with {tag} to keep them on one shard)' };
const GAVE_UP = { code: grpc.status.UNAVAILABLE, message: 'synod: the transaction met concurrent writes on every attempt; retry it' };

/** Whether `err` says the attempt is dead but a new one may succeed (ABORTED: refused prepare, lost decision). */
function isRetryable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === grpc.status.ABORTED;
}

/** Where each op of the chosen branch went: its index in each participant's share, or a read at C − 1. */
interface OpPlacement {
  shares: Array<{ groupId: number; index: number }>;
  readsAt: GroupTarget[];
}

export class CrossShardTxns {
  private readonly ctx: ApiContext;
  private readonly shards: ShardedKeyspace;
  readonly stats = { txns: 0, attempts: 0, retries: 0, aborts: 0, recoveries: 0 };

  constructor(ctx: ApiContext, shards: ShardedKeyspace) {
    this.ctx = ctx;
    this.shards = shards;
    if (ctx.testTxnPauseBeforeDecisionMs > 0) ctx.logger.warn({ pauseMs: ctx.testTxnPauseBeforeDecisionMs }, 'TEST ONLY: cross-shard transactions coordinated here pause between prepare and decision (--test-txn-pause-before-decision-ms)');
  }

  /** Refuses what the protocol does not carry (nested txns, leases) with a clear FailedPrecondition. */
  static check(req: TxnRequest): void {
    for (const op of [...(req.success ?? []), ...(req.failure ?? [])]) {
      if (op.request_txn) throw grpcError(UNSUPPORTED_NESTED);
      const lease = op.request_put ? String(op.request_put.lease ?? '0') : '0';
      if (lease !== '0' && lease !== '' && !op.request_put?.ignore_lease) throw grpcError(UNSUPPORTED_LEASE);
    }
  }

  async run(req: TxnRequest): Promise<WriteOutcome> {
    CrossShardTxns.check(req);
    this.stats.txns++;
    const deadlineMs = this.ctx.deadlineMs();
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (Date.now() >= deadlineMs) throw new DeadlineError('cross-shard transaction');
      this.stats.attempts++;
      try {
        return await this.attempt(req, deadlineMs);
      } catch (err) {
        if (!isRetryable(err)) throw err;
        this.stats.retries++;
      }
    }
    throw grpcError(GAVE_UP);
  }

  private targetOf(groupId: number): GroupTarget {
    const t = this.shards.targets().find((x) => x.groupId === groupId);
    if (t === undefined) throw new Error(`cross-shard txn: no shard group ${groupId}`);
    return t;
  }

  /** A compare evaluated over every shard its range touches, read at `at` (as one store compares). */
  private async compareAt(c: Compare, at: number, deadlineMs: number): Promise<boolean> {
    const parts = await Promise.all(this.shards.shardsOfRange(c.key, c.rangeEnd).map((t) => this.shards.rangeAt(t, rangeOf(c.key, c.rangeEnd), at, deadlineMs)));
    const kvs: KeyValue[] = parts.flatMap((p) => p.kvs);
    if (kvs.length === 0) return c.target === 'VALUE' ? false : compareKeyValue(c, null);
    return kvs.every((kv) => compareKeyValue(c, kv));
  }

  private async attempt(req: TxnRequest, deadlineMs: number): Promise<WriteOutcome> {
    const C = await this.shards.freshRevision(deadlineMs);
    const op = txnOpFromWire(req);
    const verdicts = await Promise.all(op.compare.map((c) => this.compareAt(c, C - 1, deadlineMs)));
    const succeeded = verdicts.every(Boolean);
    const wireOps: WireRequestOp[] = (succeeded ? req.success : req.failure) ?? [];

    // Split the branch: writes make their shards participants; ranges go to participants' shares where
    // they overlap them (so they see the txn's own writes), and are read at C − 1 elsewhere.
    const shares = new Map<number, WireRequestOp[]>();
    const order: number[] = [];
    const share = (groupId: number): WireRequestOp[] => {
      let list = shares.get(groupId);
      if (list === undefined) {
        list = [];
        shares.set(groupId, list);
        order.push(groupId);
      }
      return list;
    };
    for (const w of wireOps) {
      if (w.request_put) share(this.shards.shardOf(w.request_put.key).groupId);
      else if (w.request_delete_range) for (const t of this.shards.shardsOfRange(w.request_delete_range.key, w.request_delete_range.range_end ?? Buffer.alloc(0))) share(t.groupId);
    }
    const placements: OpPlacement[] = wireOps.map((w) => {
      const placement: OpPlacement = { shares: [], readsAt: [] };
      let touched: GroupTarget[];
      let shareOp: WireRequestOp = w;
      if (w.request_put) touched = [this.shards.shardOf(w.request_put.key)];
      else if (w.request_delete_range) touched = this.shards.shardsOfRange(w.request_delete_range.key, w.request_delete_range.range_end ?? Buffer.alloc(0));
      else if (w.request_range) {
        touched = this.shards.shardsOfRange(w.request_range.key, w.request_range.range_end ?? Buffer.alloc(0));
        // As shardRangeRequest: a value sort needs the values, even for a keys-only answer.
        if (w.request_range.keys_only && String(w.request_range.sort_target) === 'VALUE') shareOp = { request_range: { ...w.request_range, keys_only: false } };
      } else throw grpcError(ETCD_ERRORS.KEY_NOT_FOUND); // an empty RequestOp (validate.ts refuses it first)
      for (const t of touched) {
        const list = shares.get(t.groupId);
        if (list !== undefined) placement.shares.push({ groupId: t.groupId, index: list.push(shareOp) - 1 });
        else placement.readsAt.push(t);
      }
      return placement;
    });

    if (order.length === 0) return this.readOnlyAnswer(wireOps, placements, succeeded, C - 1, deadlineMs);

    const txnId = `${this.ctx.member.memberId.toString(16)}-${randomUUID()}`;
    const primary = order[0];
    const intentDeadline = Math.min(deadlineMs, Date.now() + INTENT_TTL_MS);
    const prepared = await Promise.allSettled(
      order.map((groupId) =>
        this.ctx.proposeWrite(
          {
            txn_intent: {
              txn_id: txnId,
              primary_group: String(primary),
              participant_groups: order.map(String),
              ops: { compare: [], success: shares.get(groupId)!, failure: [] },
              deadline_unix_ms: String(intentDeadline),
              revision: String(C),
            },
          },
          { target: this.targetOf(groupId), timeoutMs: Math.max(1, deadlineMs - Date.now()) },
        ),
      ),
    );
    const failed = prepared.find((p): p is PromiseRejectedResult => p.status === 'rejected');
    if (failed !== undefined) {
      await this.abort(txnId, C, primary, order);
      throw failed.reason;
    }
    // Range parts read at C − 1 on shards without writes, while the decision is made.
    if (this.ctx.testTxnPauseBeforeDecisionMs > 0) await new Promise((r) => setTimeout(r, this.ctx.testTxnPauseBeforeDecisionMs));
    const readsAt = Promise.all(placements.map((p, i) => Promise.all(p.readsAt.map((t) => this.readPart(t, wireOps[i], C - 1, deadlineMs)))));
    readsAt.catch(() => undefined);
    let decided: WriteOutcome;
    try {
      decided = await this.ctx.proposeWrite({ txn_resolve: { txn_id: txnId, commit: true } }, { target: this.targetOf(primary), timeoutMs: Math.max(1, deadlineMs - Date.now()) });
    } catch (err) {
      // Lost, refused (a recoverer aborted it) or unknown: the primary's answer to a recoverer settles it.
      const outcome = await this.recoverAt(txnId, C, primary);
      if (outcome !== 'committed') {
        await this.resolveAll(txnId, false, order.filter((g) => g !== primary));
        throw isRetryable(err) ? err : grpcError({ code: grpc.status.ABORTED, message: `synod: transaction aborted (${err instanceof Error ? err.message : String(err)})` });
      }
      decided = { revision: C, result: (prepared[0] as PromiseFulfilledResult<WriteOutcome>).value.result };
    }
    // Committed. The others resolve off the client's path; a reader there waits for them meanwhile.
    void this.resolveAll(txnId, true, order.filter((g) => g !== primary)).then(() =>
      this.ctx.proposeWrite({ txn_resolve: { txn_id: txnId, commit: true, forget: true } }, { target: this.targetOf(primary), internal: true, timeoutMs: RESOLVE_TIMEOUT_MS }).catch(() => undefined),
    );
    const shareResults = new Map<number, TxnResult>();
    order.forEach((groupId, i) => {
      const r = i === 0 ? decided.result : (prepared[i] as PromiseFulfilledResult<WriteOutcome>).value.result;
      shareResults.set(groupId, r as TxnResult);
    });
    const elsewhere = await readsAt;
    const responses = wireOps.map((w, i) => this.stitch(w, placements[i], shareResults, elsewhere[i], C));
    return { revision: C, result: { succeeded, responses } satisfies TxnResult };
  }

  /** A branch without writes: its ranges read at `at` (every shard's state through C − 1). */
  private async readOnlyAnswer(wireOps: WireRequestOp[], placements: OpPlacement[], succeeded: boolean, at: number, deadlineMs: number): Promise<WriteOutcome> {
    const parts = await Promise.all(placements.map((p, i) => Promise.all(p.readsAt.map((t) => this.readPart(t, wireOps[i], at, deadlineMs)))));
    const responses = wireOps.map((w, i) => this.stitch(w, placements[i], new Map(), parts[i], at));
    return { revision: at, result: { succeeded, responses } satisfies TxnResult };
  }

  /** A range op's part on a shard without writes: at the client's revision, else at `at`. */
  private readPart(t: GroupTarget, w: WireRequestOp, at: number, deadlineMs: number): Promise<RangeResult> {
    const op = perShardRange(w);
    if (op.revision > at + 1) throw grpcError(ETCD_ERRORS.FUTURE_REV);
    return this.shards.rangeAt(t, op, op.revision > 0 ? op.revision : at, deadlineMs);
  }

  /** One op's response, from the shares that ran it and the shards read for it. */
  private stitch(w: WireRequestOp, placement: OpPlacement, shareResults: Map<number, TxnResult>, readParts: RangeResult[], at: number): ResponseOp {
    const fromShares = placement.shares.map(({ groupId, index }) => shareResults.get(groupId)!.responses[index]);
    if (w.request_put) {
      const r = fromShares[0];
      if (r?.type !== 'put') throw new Error('cross-shard txn: a put share answered no put');
      return r;
    }
    if (w.request_delete_range) {
      const merged: DeleteRangeResult = { deleted: 0, prevKvs: [] };
      for (const r of fromShares) {
        if (r.type !== 'deleteRange') throw new Error('cross-shard txn: a delete share answered no delete');
        merged.deleted += r.deleteRange.deleted;
        merged.prevKvs.push(...r.deleteRange.prevKvs);
      }
      merged.prevKvs.sort((a, b) => Buffer.compare(a.key, b.key));
      return { type: 'deleteRange', deleteRange: merged };
    }
    const op = rangeOpFromWire(w.request_range!);
    const parts: RangeResult[] = [...readParts];
    for (const r of fromShares) {
      if (r.type !== 'range') throw new Error('cross-shard txn: a range share answered no range');
      parts.push(r.range);
    }
    return { type: 'range', range: mergeShardRanges(op, op.revision > 0 ? op.revision : at, parts).result };
  }

  /** The primary's answer to a recoverer: C fenced there, then committed or aborted (a pending one is aborted). */
  private async recoverAt(txnId: string, revision: number, primary: number): Promise<'committed' | 'aborted'> {
    this.stats.recoveries++;
    const out = await this.ctx.proposeWrite({ txn_recover: { txn_id: txnId, revision: String(revision), abort_pending: true } }, { target: this.targetOf(primary), internal: true, timeoutMs: RESOLVE_TIMEOUT_MS });
    return (out.result as TxnResult | null)?.succeeded === true ? 'committed' : 'aborted';
  }

  /** An attempt that will not commit: aborted on the primary first (the decision), then everywhere. */
  private async abort(txnId: string, revision: number, primary: number, participants: number[]): Promise<void> {
    this.stats.aborts++;
    try {
      const outcome = await this.recoverAt(txnId, revision, primary);
      if (outcome === 'committed') throw new Error(`invariant: txn ${txnId} committed on its primary without a decision`);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('invariant')) throw err;
      // The primary did not answer: its participants' recoverers settle it after the deadline.
      return;
    }
    await this.resolveAll(txnId, false, participants.filter((g) => g !== primary));
  }

  private async resolveAll(txnId: string, commit: boolean, groups: number[]): Promise<void> {
    await Promise.all(groups.map((g) => this.ctx.proposeWrite({ txn_resolve: { txn_id: txnId, commit } }, { target: this.targetOf(g), internal: true, timeoutMs: RESOLVE_TIMEOUT_MS }).catch(() => undefined)));
  }

  /**
   * Resolves a transaction prepared on shard `groupId` whose deadline passed undecided (a write path's
   * recoverTxn): the primary decides (fencing C there), then this shard follows.
   */
  async recoverPrepared(p: PreparedTxn, groupId: number): Promise<void> {
    const outcome = await this.recoverAt(p.txnId, p.revision, p.primaryGroup);
    await this.ctx.proposeWrite({ txn_resolve: { txn_id: p.txnId, commit: outcome === 'committed' } }, { target: this.targetOf(groupId), internal: true, timeoutMs: RESOLVE_TIMEOUT_MS });
  }
}

/** A range op as each shard is asked it (a value sort needs the values, as shardRangeRequest does). */
function perShardRange(w: WireRequestOp): ReturnType<typeof rangeOpFromWire> {
  const op = rangeOpFromWire(w.request_range!);
  return { ...op, keysOnly: op.keysOnly && op.sortTarget !== 'VALUE' };
}

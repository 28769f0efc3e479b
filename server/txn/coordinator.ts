// The coordinator of a Txn whose writes span shards (docs/transactions.md): the member the client
// reached runs it, and recovers, for the shards it leads, transactions whose coordinator vanished.
// It reaches the shards only through CoordinatorDeps (the server's API context, or the seeded shard
// simulation's leaders), so the same protocol code runs in both.
//
//   1. Branch: the compares read at a fresh oracle revision R0 on the shards holding their keys (none
//      without compares: the branch is the success one).
//   2. Prepare: one txn_intent to every shard the transaction touches (writes first: the first is the
//      primary; then shards it only reads). Each is stamped like any write at its own revision P, checks
//      its compares still evaluate as at R0, dry-runs its share (its responses come back) and is laid as
//      prepared: the shard is frozen until the transaction is resolved.
//   3. C: the highest P (the transaction's own revision, above every other P; no participant wrote
//      since its prepare, so each applies the commit at C).
//   4. Decide: txn_resolve {commit, C} on the primary: applied only if the transaction is still prepared
//      there (a recoverer may have aborted it), it runs the primary's share at C and keeps the decision.
//      The client is answered now.
//   5. Resolve the other participants (each runs its share at C), then let the primary forget.
//
// Any failure before the decision aborts the attempt through the primary first (txn_recover, a
// compare-and-set there) and then the participants; a refused prepare (a shard is held by an older
// transaction: wait-die, by the age of the first attempt, which every retry keeps) or a lost decision
// starts a new attempt after a jittered pause, until the deadline.
import * as grpc from '@grpc/grpc-js';
import { grpcError, ETCD_ERRORS } from '../etcd/errors.ts';
import { rangeOpFromWire, txnOpFromWire } from '../etcd/convert.ts';
import type { TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';
import type { InternalRequestBody, TxnIntentWire } from '../shard/request-codec.ts';
import { compareVerdict, type ComparePart } from '../mvcc/store.ts';
import { comparePart } from '../shard/txn-reads.ts';
import { rangeOf, type Compare, type DeleteRangeResult, type KeyValue, type RangeOp, type RangeResult, type ResponseOp, type TxnResult } from '../mvcc/types.ts';
import { mergeShardRanges } from '../routing/range-merge.ts';
import { DeadlineError } from '../member/member.ts';
import type { PreparedTxn } from './shard-txn-table.ts';

/** What a write's apply answered: its revision and result. */
export interface TxnWriteOutcome {
  revision: number;
  result: unknown;
}

/** How the coordinator reaches the shards (the server's API context, or the simulation). */
export interface CoordinatorDeps {
  /** A revision of the caller's own from the oracle, above everything handed out before. */
  freshRevision(deadlineMs: number): Promise<number>;
  /** The shard group holding `key`. */
  groupOfKey(key: Buffer): number;
  /** The shard groups a key range touches, in shard order. */
  groupsOfRange(key: Buffer, rangeEnd: Buffer): number[];
  /** `op` read at `revision` on the shard's leader (which then never writes at or below it). */
  rangeAt(groupId: number, op: RangeOp, revision: number, deadlineMs: number): Promise<RangeResult>;
  /** Proposes `body` to the shard group (its leader stamps a prepare at its revision) and waits for its apply. */
  propose(groupId: number, body: InternalRequestBody, timeoutMs: number, internal: boolean): Promise<TxnWriteOutcome>;
  /** The client's deadline for a request starting now. */
  deadlineMs(): number;
  /** A transaction id no other attempt anywhere uses. */
  newTxnId(): string;
  /** TEST ONLY: a pause between the prepares and the decision (0: none). */
  pauseBeforeDecisionMs: number;
  /** Uniform in [0, 1): the jitter of retries after a conflict. */
  random(): number;
}

/** Attempts before the client is told to retry (each is also bounded by the client's deadline). */
const MAX_ATTEMPTS = 30;
/** Upper bound of the jittered pause before attempt n (× n, capped): conflicting coordinators drift apart. */
const RETRY_JITTER_MS = 4;
const MAX_RETRY_PAUSE_MS = 50;
/**
 * How long a prepared transaction stays out of recoverers' reach. Short: a coordinator killed between
 * prepare and decision holds its participants' writes and reads this long (plus the recoverers' grace
 * and check period, under 2 s in all); a slow live coordinator whose transaction a recoverer aborted
 * only loses that attempt and tries again.
 */
const INTENT_TTL_MS = 1_000;
/**
 * How long one resolve, abort or recovery proposal may take. Short: one lost in a leadership handover
 * is tried again (the recoverers look every 50 ms) instead of holding a frozen shard for its whole wait.
 */
const RESOLVE_TIMEOUT_MS = 1_000;

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
  readsAt: number[];
}

/** What coordinators did (one object may be shared by a member's coordinators: its metrics). */
export interface TxnCoordinatorStats {
  txns: number;
  attempts: number;
  retries: number;
  aborts: number;
  recoveries: number;
  committed: number;
}

export function newTxnCoordinatorStats(): TxnCoordinatorStats {
  return { txns: 0, attempts: 0, retries: 0, aborts: 0, recoveries: 0, committed: 0 };
}

export class TxnCoordinator {
  private readonly deps: CoordinatorDeps;
  readonly stats: TxnCoordinatorStats;

  constructor(deps: CoordinatorDeps, stats: TxnCoordinatorStats = newTxnCoordinatorStats()) {
    this.deps = deps;
    this.stats = stats;
  }

  /** Refuses what the protocol does not carry (nested txns, leases) with a clear FailedPrecondition. */
  static check(req: TxnRequest): void {
    for (const op of [...(req.success ?? []), ...(req.failure ?? [])]) {
      if (op.request_txn) throw grpcError(UNSUPPORTED_NESTED);
      const lease = op.request_put ? String(op.request_put.lease ?? '0') : '0';
      if (lease !== '0' && lease !== '' && !op.request_put?.ignore_lease) throw grpcError(UNSUPPORTED_LEASE);
    }
  }

  async run(req: TxnRequest): Promise<TxnWriteOutcome> {
    TxnCoordinator.check(req);
    this.stats.txns++;
    const deadlineMs = this.deps.deadlineMs();
    // Its age, kept over its attempts: an older transaction's prepare waits where a younger one holds a shard.
    const priority = Date.now();
    return this.retrying(deadlineMs, () => this.attempt(req, deadlineMs, priority));
  }

  /** Each compare's part on every shard its range touches, read at `at` (that shard then never writes at or below it). */
  private compareParts(compares: readonly Compare[], at: number, deadlineMs: number): Promise<Array<Map<number, ComparePart>>> {
    return Promise.all(
      compares.map(async (c) => {
        const groups = this.deps.groupsOfRange(c.key, c.rangeEnd);
        const results = await Promise.all(groups.map((g) => this.deps.rangeAt(g, rangeOf(c.key, c.rangeEnd), at, deadlineMs)));
        return new Map(groups.map((g, i) => [g, comparePart(c, results[i].kvs)]));
      }),
    );
  }

  private async attempt(req: TxnRequest, deadlineMs: number, priority: number): Promise<TxnWriteOutcome> {
    const op = txnOpFromWire(req);
    // The branch, from the compares read at a fresh R0; each participant checks at its prepare that its
    // part still evaluates the same (and then stays as it is until the transaction is resolved). Without
    // compares the branch is the success one, and R0 is needed only if it writes nothing.
    const R0 = op.compare.length > 0 ? await this.deps.freshRevision(deadlineMs) : 0;
    const parts0 = await this.compareParts(op.compare, R0, deadlineMs);
    const succeeded = op.compare.every((c, i) => verdict(c, parts0[i]));
    const wireOps: WireRequestOp[] = (succeeded ? req.success : req.failure) ?? [];

    // Every shard the transaction touches is a participant: those it writes first (the primary is the
    // first of them), then those it only reads (compares, ranges). A participant is frozen from its
    // prepare to its resolution, so the coordinator never waits on another shard while holding one —
    // two coordinators each holding a shard the other reads would otherwise deadlock.
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
      if (w.request_put) share(this.deps.groupOfKey(w.request_put.key));
      else if (w.request_delete_range) for (const g of this.deps.groupsOfRange(w.request_delete_range.key, w.request_delete_range.range_end ?? Buffer.alloc(0))) share(g);
    }
    const writers = order.length;
    if (writers > 0) {
      for (const w of wireOps) if (w.request_range) for (const g of this.deps.groupsOfRange(w.request_range.key, w.request_range.range_end ?? Buffer.alloc(0))) share(g);
      for (const parts of parts0) for (const g of parts.keys()) share(g);
    }
    const placements: OpPlacement[] = wireOps.map((w) => {
      const placement: OpPlacement = { shares: [], readsAt: [] };
      let touched: number[];
      let shareOp: WireRequestOp = w;
      if (w.request_put) touched = [this.deps.groupOfKey(w.request_put.key)];
      else if (w.request_delete_range) touched = this.deps.groupsOfRange(w.request_delete_range.key, w.request_delete_range.range_end ?? Buffer.alloc(0));
      else if (w.request_range) {
        touched = this.deps.groupsOfRange(w.request_range.key, w.request_range.range_end ?? Buffer.alloc(0));
        // As shardRangeRequest: a value sort needs the values, even for a keys-only answer.
        if (w.request_range.keys_only && String(w.request_range.sort_target) === 'VALUE') shareOp = { request_range: { ...w.request_range, keys_only: false } };
      } else throw grpcError(ETCD_ERRORS.KEY_NOT_FOUND); // an empty RequestOp (validate.ts refuses it first)
      for (const g of touched) {
        const list = shares.get(g);
        if (list !== undefined) placement.shares.push({ groupId: g, index: list.push(shareOp) - 1 });
        else placement.readsAt.push(g);
      }
      return placement;
    });

    // Nothing to write: the compares and ranges at R0 are one snapshot.
    if (writers === 0) return this.readOnlyAnswer(wireOps, placements, succeeded, R0 > 0 ? R0 : await this.deps.freshRevision(deadlineMs), deadlineMs);

    const outcome = await this.twoPhase(
      order,
      (groupId) => {
        // The compares touching this shard, with what they evaluated to here at R0.
        const mine = op.compare.flatMap((_, i) => (parts0[i].has(groupId) ? [i] : []));
        return { ops: { compare: mine.map((i) => req.compare[i]), success: shares.get(groupId)!, failure: [] }, expected: mine.map((i, index) => ({ index, ...parts0[i].get(groupId)! })) };
      },
      deadlineMs,
      priority,
      false,
    );
    const { C, prepared, decided } = outcome;
    const shareResults = new Map<number, TxnResult>();
    order.forEach((groupId, i) => {
      const p = prepared[i];
      // A share previewed at its prepare's revision P shows its own writes there: they are at C.
      shareResults.set(groupId, i === 0 ? (decided.result as TxnResult) : atRevision(p.result as TxnResult, p.revision, C));
    });
    const responses = wireOps.map((w, i) => this.stitch(w, placements[i], shareResults, [], C));
    return { revision: C, result: { succeeded, responses } satisfies TxnResult };
  }

  /**
   * A lease generation's sweep on `groups` as one transaction: every key attached to it there deleted at
   * one revision C (each shard also refuses that generation from then on, as a plain sweep does).
   * Resolves with C once every shard applied it.
   */
  async sweepLease(sweep: { ID: string; generation: string; revoked_at: string; horizon?: string }, groups: number[]): Promise<number> {
    const deadlineMs = this.deps.deadlineMs();
    const priority = Date.now();
    return this.retrying(deadlineMs, async () => (await this.twoPhase(groups, () => ({ ops: { compare: [], success: [], failure: [] }, lease_sweep: sweep }), deadlineMs, priority, true)).C);
  }

  /** `attempt` again after a retryable refusal (a jittered pause between), until `deadlineMs`. */
  private async retrying<T>(deadlineMs: number, attempt: () => Promise<T>): Promise<T> {
    for (let n = 0; n < MAX_ATTEMPTS; n++) {
      if (Date.now() >= deadlineMs) throw new DeadlineError('cross-shard transaction');
      this.stats.attempts++;
      try {
        return await attempt();
      } catch (err) {
        if (!isRetryable(err)) throw err;
        this.stats.retries++;
        const pauseMs = Math.min(MAX_RETRY_PAUSE_MS, this.deps.random() * RETRY_JITTER_MS * (n + 1));
        await new Promise((r) => setTimeout(r, pauseMs));
      }
    }
    throw grpcError(GAVE_UP);
  }

  /**
   * Prepare on every participant (`order[0]` is the primary), take C, decide in the primary, resolve the
   * others — in the background, or before resolving when `resolveAllFirst` — and let the primary forget.
   * Any failure before the decision aborts the attempt (and throws); a lost decision is settled by the
   * primary's answer to a recoverer.
   */
  private async twoPhase(
    order: number[],
    shareOf: (groupId: number) => Pick<TxnIntentWire, 'ops' | 'expected' | 'lease_sweep'>,
    deadlineMs: number,
    priority: number,
    resolveAllFirst: boolean,
  ): Promise<{ C: number; prepared: TxnWriteOutcome[]; decided: TxnWriteOutcome }> {
    const txnId = this.deps.newTxnId();
    const primary = order[0];
    const intentDeadline = Math.min(deadlineMs, Date.now() + INTENT_TTL_MS);
    const settled = await Promise.allSettled(
      order.map((groupId) =>
        this.deps.propose(
          groupId,
          { txn_intent: { txn_id: txnId, primary_group: String(primary), participant_groups: order.map(String), deadline_unix_ms: String(intentDeadline), priority: String(priority), ...shareOf(groupId) } },
          Math.max(1, deadlineMs - Date.now()),
          false,
        ),
      ),
    );
    const failed = settled.find((p): p is PromiseRejectedResult => p.status === 'rejected');
    if (failed !== undefined) {
      await this.abort(txnId, primary, order);
      throw failed.reason;
    }
    const prepared = settled.map((p) => (p as PromiseFulfilledResult<TxnWriteOutcome>).value);
    if (this.deps.pauseBeforeDecisionMs > 0) await new Promise((r) => setTimeout(r, this.deps.pauseBeforeDecisionMs));
    // C: the highest prepare's revision. It is the transaction's own (the oracle handed it to this
    // prepare alone), above every other participant's prepare, and every participant has written nothing
    // since its own: each can apply the commit at C, and no reader saw a state at or above its prepare
    // without waiting for the resolution. No oracle round on the client's path.
    const C = Math.max(...prepared.map((p) => p.revision));
    let decided: TxnWriteOutcome;
    try {
      decided = await this.deps.propose(primary, { txn_resolve: { txn_id: txnId, commit: true, revision: String(C) } }, Math.max(1, deadlineMs - Date.now()), false);
    } catch (err) {
      // Lost, refused (a recoverer aborted it) or unknown: the primary's answer to a recoverer settles it.
      const outcome = await this.recoverAt(txnId, primary);
      if (outcome.state !== 'committed') {
        await this.resolveAll(txnId, false, 0, order.filter((g) => g !== primary));
        throw isRetryable(err) ? err : grpcError({ code: grpc.status.ABORTED, message: `synod: transaction aborted (${err instanceof Error ? err.message : String(err)})` });
      }
      decided = { revision: C, result: atRevision(prepared[0].result as TxnResult, prepared[0].revision, C) };
    }
    this.stats.committed++;
    // Committed. The others resolve; a reader there waits for them meanwhile.
    const resolved = this.resolveAll(txnId, true, C, order.filter((g) => g !== primary)).then((all) => {
      // The primary's record may go only once every participant resolved (a recoverer still asks it).
      if (all) void this.deps.propose(primary, { txn_resolve: { txn_id: txnId, commit: true, forget: true } }, RESOLVE_TIMEOUT_MS, true).catch(() => undefined);
      return all;
    });
    if (resolveAllFirst && !(await resolved)) throw new DeadlineError('cross-shard resolution');
    return { C, prepared, decided };
  }

  /** A branch without writes: its ranges read at `at` (every shard's state through C − 1). */
  private async readOnlyAnswer(wireOps: WireRequestOp[], placements: OpPlacement[], succeeded: boolean, at: number, deadlineMs: number): Promise<TxnWriteOutcome> {
    const parts = await Promise.all(placements.map((p, i) => Promise.all(p.readsAt.map((t) => this.readPart(t, wireOps[i], at, deadlineMs)))));
    const responses = wireOps.map((w, i) => this.stitch(w, placements[i], new Map(), parts[i], at));
    return { revision: at, result: { succeeded, responses } satisfies TxnResult };
  }

  /** A range op's part on a shard without writes: at the client's revision, else at `at`. */
  private async readPart(groupId: number, w: WireRequestOp, at: number, deadlineMs: number): Promise<RangeResult> {
    const op = perShardRange(w);
    if (op.revision > at + 1) throw grpcError(ETCD_ERRORS.FUTURE_REV);
    return this.deps.rangeAt(groupId, op, op.revision > 0 ? op.revision : at, deadlineMs);
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

  /**
   * The primary's answer to a recoverer (a compare-and-set there): committed at C, or aborted — a
   * pending transaction is aborted, and one never prepared there is recorded aborted.
   */
  private async recoverAt(txnId: string, primary: number): Promise<{ state: 'committed' | 'aborted'; revision: number }> {
    this.stats.recoveries++;
    const out = await this.deps.propose(primary, { txn_recover: { txn_id: txnId, abort_pending: true } }, RESOLVE_TIMEOUT_MS, true);
    return (out.result as TxnResult | null)?.succeeded === true ? { state: 'committed', revision: out.revision } : { state: 'aborted', revision: 0 };
  }

  /** An attempt that will not commit: aborted on the primary first (the decision), then everywhere. */
  private async abort(txnId: string, primary: number, participants: number[]): Promise<void> {
    this.stats.aborts++;
    try {
      const outcome = await this.recoverAt(txnId, primary);
      if (outcome.state === 'committed') throw new Error(`invariant: txn ${txnId} committed on its primary without a decision`);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('invariant')) throw err;
      // The primary did not answer: its participants' recoverers settle it after the deadline.
      return;
    }
    await this.resolveAll(txnId, false, 0, participants.filter((g) => g !== primary));
  }

  /** Resolves the transaction on `groups` (commit: at revision C); whether every one answered. */
  private async resolveAll(txnId: string, commit: boolean, revision: number, groups: number[]): Promise<boolean> {
    const resolve = commit ? { txn_id: txnId, commit, revision: String(revision) } : { txn_id: txnId, commit };
    const answers = await Promise.all(groups.map((g) => this.deps.propose(g, { txn_resolve: resolve }, RESOLVE_TIMEOUT_MS, true).then(() => true, () => false)));
    return answers.every(Boolean);
  }

  /**
   * Resolves a transaction prepared on shard `groupId` whose deadline passed undecided (a write path's
   * recoverTxn): the primary decides (fencing C there), then this shard follows.
   */
  async recoverPrepared(p: PreparedTxn, groupId: number): Promise<void> {
    const outcome = await this.recoverAt(p.txnId, p.primaryGroup);
    const resolve = outcome.state === 'committed' ? { txn_id: p.txnId, commit: true, revision: String(outcome.revision) } : { txn_id: p.txnId, commit: false };
    await this.deps.propose(groupId, { txn_resolve: resolve }, RESOLVE_TIMEOUT_MS, true);
  }
}

/** A compare's verdict from its parts on every shard it touches (as one store compares, store.ts). */
function verdict(c: Compare, parts: Map<number, ComparePart>): boolean {
  let any = false;
  let ok = true;
  for (const p of parts.values()) {
    any ||= p.any;
    ok &&= p.ok;
  }
  return compareVerdict(c, { any, ok });
}

/** A share's result previewed at its prepare's revision `prepared`, with its own writes shown at `committed`. */
function atRevision(r: TxnResult, prepared: number, committed: number): TxnResult {
  const fix = (kv: KeyValue): KeyValue => (kv.modRevision === prepared || kv.createRevision === prepared ? { ...kv, modRevision: kv.modRevision === prepared ? committed : kv.modRevision, createRevision: kv.createRevision === prepared ? committed : kv.createRevision } : kv);
  return {
    succeeded: r.succeeded,
    responses: r.responses.map((op) => (op.type === 'range' ? { type: 'range', range: { ...op.range, kvs: op.range.kvs.map(fix) } } : op)),
  };
}

/** A range op as each shard is asked it (a value sort needs the values, as shardRangeRequest does). */
function perShardRange(w: WireRequestOp): ReturnType<typeof rangeOpFromWire> {
  const op = rangeOpFromWire(w.request_range!);
  return { ...op, keysOnly: op.keysOnly && op.sortTarget !== 'VALUE' };
}

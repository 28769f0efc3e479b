// The coordinator of a Txn whose writes span shards (docs/transactions.md): the member the client
// reached runs it, and recovers, for the shards it leads, transactions whose coordinator vanished.
// It reaches the shards only through CoordinatorDeps (the server's API context, or the seeded shard
// simulation's leaders), so the same protocol code runs in both.
//
//   1. Branch: the compares read at a fresh oracle revision R0 on the shards holding their keys (none
//      without compares: the branch is the success one), level by level down the nested txns of the
//      chosen branches; the chosen path's ops, unfolded in order, are what the participants share.
//      Or, for most txns with compares (attemptDecidingAtPrepare), no read: the prepares decide the
//      branch, each evaluating its shard's compares and dry-running its share of both branches.
//   2. Prepare: one txn_intent to every shard the transaction touches (writes first, then shards it
//      only reads). Each is stamped like any write at its own revision P, checks its compares still
//      evaluate as at R0, dry-runs its share (its responses come back) and is laid as prepared: the
//      shard is frozen until the transaction is resolved.
//   3. Committed once every prepare applied (parallel commits: no decision round), at C, the highest P
//      (the transaction's own revision, above every other P; no participant wrote since its prepare, so
//      each applies the commit at C). The client is answered now: one consensus round on its path.
//   4. Resolve every participant (each runs its share at C and keeps a record of the commit), then let
//      them all forget it.
//
// A prepare refused at apply (a shard held by an older transaction: wait-die, by the age of the first
// attempt, which every retry keeps; or compares changed) means the transaction can never commit: the
// prepared participants abort and a new attempt starts after a jittered pause, until the deadline. A
// participant that does not answer, or a coordinator that vanished, is settled by `settle`: every
// participant asked with txn_recover, a compare-and-set that fences one never prepared (recorded aborted,
// its late prepare refused); committed if all were prepared, else aborted.
import * as grpc from '@grpc/grpc-js';
import { grpcError, ETCD_ERRORS } from '../etcd/errors.ts';
import { compareFromWire, rangeOpFromWire } from '../etcd/convert.ts';
import type { TxnRequest, WireCompare, WireRequestOp } from '../etcd/wire-types.ts';
import type { InternalRequestBody, LeaseGeneration, TxnIntentWire } from '../shard/request-codec.ts';
import { compareVerdict, type ComparePart } from '../mvcc/store.ts';
import { comparePart } from '../shard/txn-reads.ts';
import { rangeOf, type Compare, type DeleteRangeResult, type KeyValue, type RangeOp, type RangeResult, type ResponseOp, type TxnResult } from '../mvcc/types.ts';
import { mergeShardRanges } from '../routing/range-merge.ts';
import { DeadlineError } from '../member/member.ts';
import { INTENT_TTL_MS, TXN_NOT_PREPARED, type PreparedTxn, type TxnRecoveryResult } from './shard-txn-table.ts';
import { ShardAdmission } from './shard-admission.ts';
import { shareKeysOf, type ShareKeys } from './share-keys.ts';
import { rankOf } from './wait-die.ts';
import { MAX_TXN_OP_POSITIONS } from '../mvcc/txn-op-position.ts';

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
  propose(groupId: number, body: InternalRequestBody & { lease_generations?: LeaseGeneration[] }, timeoutMs: number, internal: boolean): Promise<TxnWriteOutcome>;
  /** The client's deadline for a request starting now. */
  deadlineMs(): number;
  /** A transaction id no other attempt anywhere uses. */
  newTxnId(): string;
  /** TEST ONLY: a pause between the prepares and the decision (0: none). */
  pauseBeforeDecisionMs: number;
  /**
   * The member's admission queue its transactions take their shards through before their prepares (one
   * per member, shared by its coordinators); undefined: one of this coordinator's own; null: none. The
   * simulation has none on some members: it only delays prepares, and what the simulation must exercise
   * is the shards' own checks under as many concurrent prepares as it can make.
   */
  admission?: ShardAdmission | null;
  /** Uniform in [0, 1): the jitter of retries after a conflict. */
  random(): number;
  /**
   * Whether every replica of every shard applies prepares that decide their branch (TxnIntent.decide_here:
   * apply rules 2, member.ts). Absent: yes.
   */
  prepareMayDecide?(): boolean;
  /**
   * Whether every replica of every shard numbers a commit's changes by each op's place in the whole
   * transaction (TxnIntent.success_positions: apply rules 3, member.ts), so that a watch over several
   * shards sends its events in op order. Absent: yes.
   */
  txnOpPositions?(): boolean;
}

/** Attempts before the client is told to retry (each is also bounded by the client's deadline). */
const MAX_ATTEMPTS = 30;
/** Upper bound of the jittered pause before attempt n (× n, capped): conflicting coordinators drift apart. */
const RETRY_JITTER_MS = 4;
const MAX_RETRY_PAUSE_MS = 50;
/**
 * Longest a finished transaction's records wait for a later resolve to carry their forget to a shard
 * before one entry carries them all.
 */
const FORGET_FLUSH_MS = 200;
/** Most forgets kept per shard while its proposals fail; older ones are dropped (their records stay). */
const MAX_FORGETS_PER_SHARD = 10_000;
/**
 * How long one resolve, abort or recovery proposal may take. Short: one lost in a leadership handover
 * is tried again (the recoverers look every 50 ms) instead of holding a frozen shard for its whole wait.
 */
const RESOLVE_TIMEOUT_MS = 1_000;

const GAVE_UP = { code: grpc.status.UNAVAILABLE, message: 'synod: the transaction met concurrent writes on every attempt; retry it' };

/** Whether `err` says the attempt is dead but a new one may succeed (ABORTED: refused prepare, lost decision). */
function isRetryable(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === grpc.status.ABORTED;
}

/**
 * Whether `err` is a participant refusing the prepare itself (etcd's apply-time refusals: a lease not
 * found, a key not found for ignore_value, a compacted or future range revision, no space): the prepare
 * was never laid there, and the transaction fails with that error, as a one-shard txn would.
 */
function isRefusal(err: unknown): boolean {
  // Applied on this member, the store's refusals arrive as they were thrown (mvcc/types.ts MvccError: a
  // compacted or future revision, a key or lease not found); forwarded, as their gRPC statuses.
  if (err instanceof Error && err.name === 'MvccError') return true;
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return code === grpc.status.NOT_FOUND || code === grpc.status.INVALID_ARGUMENT || code === grpc.status.OUT_OF_RANGE || code === grpc.status.RESOURCE_EXHAUSTED;
}

/** A resolve refused because the shard neither holds the transaction prepared nor keeps a record of it. */
function isNotPrepared(err: unknown): boolean {
  if (typeof err !== 'object' || err === null || (err as { code?: unknown }).code !== grpc.status.ABORTED) return false;
  const text = `${String((err as { details?: unknown }).details ?? '')} ${String((err as { message?: unknown }).message ?? '')}`;
  return text.includes(TXN_NOT_PREPARED.message);
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
  /** Committed transactions a shard leader finished for a coordinator that vanished (finishCommitted). */
  finished: number;
  /** Committed transactions whose prepares decided their branch (no read before them). */
  decidedAtPrepare: number;
  /**
   * How far this member's wall clock is behind the shard leaders', as a fence horizon that refused one of
   * its prepares showed (0 until then). Transactions take their age from this member's clock plus it; one
   * per member, like these counters, so that every coordinator of the member learns it once.
   */
  clockBehindMs: number;
  /** When clockBehindMs was learnt (performance.now()): it is forgotten CLOCK_BEHIND_KEPT_MS later. */
  clockBehindLearntAtMs: number;
}

export function newTxnCoordinatorStats(): TxnCoordinatorStats {
  return { txns: 0, attempts: 0, retries: 0, aborts: 0, recoveries: 0, committed: 0, finished: 0, decidedAtPrepare: 0, clockBehindMs: 0, clockBehindLearntAtMs: 0 };
}

/**
 * How long a learnt clock offset is kept. Then it is forgotten: a member whose clock was fixed since
 * (an NTP correction) gives its transactions their true age again instead of a future one, which loses
 * every wait-die contest; one whose clock is still behind has one prepare refused and learns it again
 * (that attempt is retried, so it costs a round, not the transaction).
 */
export const CLOCK_BEHIND_KEPT_MS = 10 * 60_000;

/** The clock offset `stats` holds now: 0 once it was learnt CLOCK_BEHIND_KEPT_MS ago (it is forgotten then). */
export function clockBehindNowMs(stats: TxnCoordinatorStats): number {
  if (stats.clockBehindMs !== 0 && performance.now() - stats.clockBehindLearntAtMs >= CLOCK_BEHIND_KEPT_MS) stats.clockBehindMs = 0;
  return stats.clockBehindMs;
}

/**
 * How far past a fence horizon that refused it a coordinator moves its transactions' age: a shard leader
 * moves its horizon on about once a minute (shard-hosting.ts, FENCE_HORIZON_EVERY_MS), so an age this far
 * past the horizon it met stays past the later ones.
 */
const HORIZON_CATCH_UP_MS = 2 * 60_000;

/** The fence horizon a prepare's "older than this shard's fence horizon" refusal names (kv-state-machine.ts txnTooOld), or null. */
function fenceHorizonOf(err: unknown): number | null {
  if (!isRetryable(err)) return null;
  const text = `${String((err as { details?: unknown }).details ?? '')} ${String((err as { message?: unknown }).message ?? '')}`;
  const m = /fence horizon \((\d+)\)/.exec(text);
  return m === null ? null : Number(m[1]);
}

export class TxnCoordinator {
  private readonly deps: CoordinatorDeps;
  readonly stats: TxnCoordinatorStats;
  /** Per shard group: transactions resolved everywhere whose records there may go (piggybacked forgets). */
  /** `sinceMs`: when the oldest of them began to wait (performance.now(): a wall-clock step must not hold them). */
  private readonly forgets = new Map<number, { ids: string[]; sinceMs: number }>();
  private forgetTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly admission: ShardAdmission | null;
  private admissionSeq = 0;

  constructor(deps: CoordinatorDeps, stats: TxnCoordinatorStats = newTxnCoordinatorStats()) {
    this.deps = deps;
    this.stats = stats;
    this.admission = deps.admission === undefined ? new ShardAdmission() : deps.admission;
  }

  /**
   * Runs `req` over the shards it touches: read-only at one fresh revision, else by two-phase commit.
   * `leases`: the generations of the leases its puts name, read in the cluster group (as for a one-shard
   * put); a put naming another lease is refused at its prepare with etcd's "requested lease not found".
   */
  async run(req: TxnRequest, leases: readonly LeaseGeneration[] = []): Promise<TxnWriteOutcome> {
    this.stats.txns++;
    const deadlineMs = this.deps.deadlineMs();
    return this.retrying(deadlineMs, (priority) => this.attempt(req, leases, deadlineMs, priority));
  }

  /** The clock transactions take their age from: this member's, plus how far the shards showed it is behind. */
  private ageClockMs(): number {
    return Date.now() + clockBehindNowMs(this.stats);
  }

  /**
   * A prepare refused as older than a shard's fence horizon (minutes) though its transaction began a
   * moment ago: this member's wall clock is that far behind the shard leaders'. Its transactions' age
   * moves up past the horizon from now on. Returns whether it moved.
   */
  private learnFromRefusal(err: unknown, priority: number): boolean {
    const horizonMs = fenceHorizonOf(err);
    if (horizonMs === null || priority >= horizonMs) return false;
    const behindMs = horizonMs + HORIZON_CATCH_UP_MS - Date.now();
    if (!(behindMs > this.stats.clockBehindMs)) return false;
    this.stats.clockBehindMs = behindMs;
    this.stats.clockBehindLearntAtMs = performance.now();
    return true;
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

  /**
   * The branch taken at every level, as etcd chooses it: the compares of the txn and of each nested txn
   * on the chosen path, all read at R0 (the state before the transaction). Each compare evaluated is
   * added to `compares` with its parts, which its participants check again at their prepares.
   */
  private async choosePath(t: TxnRequest, at: number, deadlineMs: number, compares: EvaluatedCompare[]): Promise<PathNode> {
    const wire = t.compare ?? [];
    const ops = wire.map(compareFromWire);
    const parts = await this.compareParts(ops, at, deadlineMs);
    wire.forEach((w, i) => compares.push({ wire: w, parts: parts[i] }));
    const succeeded = ops.every((c, i) => verdict(c, parts[i]));
    const nested = new Map<number, PathNode>();
    const branch = (succeeded ? t.success : t.failure) ?? [];
    await Promise.all(branch.map(async (w, i) => {
      if (w.request_txn) nested.set(i, await this.choosePath(w.request_txn, at, deadlineMs, compares));
    }));
    return { txn: t, succeeded, nested };
  }

  private async attempt(req: TxnRequest, leases: readonly LeaseGeneration[], deadlineMs: number, priority: number, mayDecideAtPrepare = true): Promise<TxnWriteOutcome> {
    // The branches, from the compares read at a fresh R0; each participant checks at its prepare that its
    // parts still evaluate the same (and then stay as they are until the transaction is resolved). Without
    // compares the branch is the success one, and R0 is needed only if it writes nothing. The chosen path's
    // ops, nested txns unfolded, run in order as one flat list: the store runs a txn so (store.ts), the
    // compares of every level having been evaluated before any op.
    // With compares (and writes), this member's other transactions are kept off every shard the txn may
    // touch from before R0 is read: one admitted after its compares were read would often find them
    // changed by the very transaction it waited for, and spend an attempt (shard-admission.ts).
    const hasCompares = txnHasCompares(req);
    const admitted = hasCompares && txnMayWrite(req) ? await this.admit(this.groupsMaybeTouched(req), shareKeysOf(req, false), priority, `${priority}:${++this.admissionSeq}`, deadlineMs) : null;
    const decideAtPrepare = mayDecideAtPrepare && admitted !== null && this.prepareMayDecide(req);
    try {
      return decideAtPrepare ? await this.attemptDecidingAtPrepare(req, leases, deadlineMs, priority, admitted) : await this.attemptAdmitted(req, leases, deadlineMs, priority, hasCompares, admitted);
    } catch (err) {
      admitted?.();
      // One of etcd's refusals from a share of either branch: only the chosen branch's may answer the
      // client, so the branch is chosen first, as below, and the attempt made again.
      if (decideAtPrepare && isRefusal(err)) return this.attempt(req, leases, deadlineMs, priority, false);
      throw err;
    }
  }

  /**
   * Whether the prepares should decide `t`'s branch (attemptDecidingAtPrepare): no nested txns; each
   * compare wholly on one shard (that shard's prepare then evaluates it alone); one branch's shards
   * (with the compares') among the other's, so that holding both branches' shards holds no more than
   * one branch would (a compare-and-swap whose failure branch reads or writes the same keys; a txn whose
   * branches write different shards freezes fewer when its branch is chosen first); and every replica
   * applies such prepares.
   */
  private prepareMayDecide(t: TxnRequest): boolean {
    const success = t.success ?? [];
    const failure = t.failure ?? [];
    if ([...success, ...failure].some((w) => !!w.request_txn)) return false;
    const compareGroups = (t.compare ?? []).map((c) => this.deps.groupsOfRange(c.key, c.range_end ?? Buffer.alloc(0)));
    if (!compareGroups.every((groups) => groups.length === 1)) return false;
    const groupsOf = (ops: WireRequestOp[]): Set<number> => new Set([...compareGroups.flat(), ...ops.flatMap((w) => this.touchedGroups(w))]);
    const [s, f] = [groupsOf(success), groupsOf(failure)];
    if (![...s].every((g) => f.has(g)) && ![...f].every((g) => s.has(g))) return false;
    return this.deps.prepareMayDecide?.() ?? true;
  }

  /**
   * A txn with compares whose prepares decide its branch, with no read before them: each participant
   * evaluates the compares on its shard and dry-runs its share of both branches at its prepare, on the
   * state it keeps until the commit (a prepared shard writes nothing else). Every compare held → the
   * success branch, else the failure branch: evaluated on every participant's state at C − 1, one
   * snapshot, as `attemptAdmitted`'s reads at R0 and checks at P give, one read round sooner.
   * Participants: every shard either branch or a compare touches.
   */
  private async attemptDecidingAtPrepare(req: TxnRequest, leases: readonly LeaseGeneration[], deadlineMs: number, priority: number, admitted: () => void): Promise<TxnWriteOutcome> {
    const branches = { success: req.success ?? [], failure: req.failure ?? [] };
    const order: number[] = [];
    const add = (g: number): void => {
      if (!order.includes(g)) order.push(g);
    };
    // Shards written first (the primary is the first), then those only read, as attemptAdmitted.
    for (const w of [...branches.success, ...branches.failure]) for (const g of this.writtenGroups(w)) add(g);
    for (const w of [...branches.success, ...branches.failure]) for (const g of this.touchedGroups(w)) add(g);
    // Each compare lies on one shard (prepareMayDecide): the one its range touches.
    const compareGroup = (c: WireCompare): number => this.deps.groupsOfRange(c.key, c.range_end ?? Buffer.alloc(0))[0];
    for (const c of req.compare ?? []) add(compareGroup(c));
    const plan = (ops: WireRequestOp[]): { shares: Map<number, WireRequestOp[]>; placements: OpPlacement[] } => {
      const shares = new Map(order.map((g) => [g, [] as WireRequestOp[]]));
      return { shares, placements: this.placeOps(ops, shares) };
    };
    const success = plan(branches.success);
    const failure = plan(branches.failure);
    const { C, prepared, failureBranch } = await this.twoPhase(
      order,
      (groupId) => {
        const mine = success.shares.get(groupId)!;
        const theirs = failure.shares.get(groupId)!;
        const named = new Set([...mine, ...theirs].flatMap((w) => (w.request_put ? [String(w.request_put.lease ?? '0')] : [])));
        const generations = leases.filter((g) => named.has(g.ID));
        return {
          intent: {
            ops: { compare: (req.compare ?? []).filter((c) => compareGroup(c) === groupId), success: mine, failure: theirs },
            decide_here: true,
            ...this.positions('success_positions', success.placements, groupId),
            ...this.positions('failure_positions', failure.placements, groupId),
          },
          ...(generations.length > 0 ? { lease_generations: generations } : {}),
        };
      },
      { deadlineMs, priority, admitted, decideHere: true },
    );
    this.stats.decidedAtPrepare++;
    const chosen = failureBranch ? failure : success;
    const shareResults = new Map<number, TxnResult>();
    order.forEach((groupId, i) => {
      const p = prepared[i];
      const all = (p.result as TxnResult).responses;
      const successCount = success.shares.get(groupId)!.length;
      const responses = failureBranch ? all.slice(successCount) : all.slice(0, successCount);
      shareResults.set(groupId, atRevision({ succeeded: true, responses }, p.revision, C));
    });
    const ops = failureBranch ? branches.failure : branches.success;
    return { revision: C, result: { succeeded: !failureBranch, responses: ops.map((w, i) => this.stitch(w, chosen.placements[i], shareResults, [], C)) } };
  }

  /**
   * The place in the whole transaction of each op of `groupId`'s share (its ops in `placements`' order:
   * placeOps appends them so), as the intent's `field`; nothing when the cluster does not number commits
   * by them yet, or the transaction has more ops than sub-revisions can position.
   */
  private positions<F extends 'success_positions' | 'failure_positions'>(field: F, placements: readonly OpPlacement[], groupId: number): { [K in F]?: number[] } {
    if (!(this.deps.txnOpPositions?.() ?? true) || placements.length > MAX_TXN_OP_POSITIONS) return {};
    const out: number[] = [];
    placements.forEach((p, position) => {
      if (p.shares.some((s) => s.groupId === groupId)) out.push(position);
    });
    return { [field]: out } as { [K in F]?: number[] };
  }

  /** The shards a put or delete writes (none for a range). */
  private writtenGroups(w: WireRequestOp): number[] {
    if (w.request_put) return [this.deps.groupOfKey(w.request_put.key)];
    if (w.request_delete_range) return this.deps.groupsOfRange(w.request_delete_range.key, w.request_delete_range.range_end ?? Buffer.alloc(0));
    return [];
  }

  /** The shards an op touches. */
  private touchedGroups(w: WireRequestOp): number[] {
    if (w.request_range) return this.deps.groupsOfRange(w.request_range.key, w.request_range.range_end ?? Buffer.alloc(0));
    return this.writtenGroups(w);
  }

  /**
   * Each op of a flat list appended to the share of every shard it touches that has one in `shares`
   * (a participant); the shards without one are read at C − 1 instead (`readsAt`).
   */
  private placeOps(wireOps: readonly WireRequestOp[], shares: Map<number, WireRequestOp[]>): OpPlacement[] {
    return wireOps.map((w) => {
      const placement: OpPlacement = { shares: [], readsAt: [] };
      let shareOp: WireRequestOp = w;
      if (w.request_range) {
        // As shardRangeRequest: a value sort needs the values, even for a keys-only answer.
        if (w.request_range.keys_only && String(w.request_range.sort_target) === 'VALUE') shareOp = { request_range: { ...w.request_range, keys_only: false } };
      } else if (!w.request_put && !w.request_delete_range) throw grpcError(ETCD_ERRORS.KEY_NOT_FOUND); // an empty RequestOp (validate.ts refuses it first)
      for (const g of this.touchedGroups(w)) {
        const list = shares.get(g);
        if (list !== undefined) placement.shares.push({ groupId: g, index: list.push(shareOp) - 1 });
        else placement.readsAt.push(g);
      }
      return placement;
    });
  }

  /** Every shard a txn's compares or ops may touch, on either branch at every level. */
  private groupsMaybeTouched(t: TxnRequest, into: Set<number> = new Set()): number[] {
    for (const c of t.compare ?? []) for (const g of this.deps.groupsOfRange(c.key, c.range_end ?? Buffer.alloc(0))) into.add(g);
    for (const w of [...(t.success ?? []), ...(t.failure ?? [])]) {
      if (w.request_txn) this.groupsMaybeTouched(w.request_txn, into);
      else for (const g of this.touchedGroups(w)) into.add(g);
    }
    return [...into].sort((a, b) => a - b);
  }

  private admit(groups: readonly number[], keys: ShareKeys, priority: number, id: string, deadlineMs: number): Promise<() => void> {
    if (this.admission === null) return Promise.resolve(() => {});
    return this.admission.acquire(groups, keys, rankOf(priority, id), deadlineMs - Date.now(), () => new DeadlineError('cross-shard transaction waiting for its shards'));
  }

  private async attemptAdmitted(req: TxnRequest, leases: readonly LeaseGeneration[], deadlineMs: number, priority: number, hasCompares: boolean, admitted: (() => void) | null): Promise<TxnWriteOutcome> {
    const R0 = hasCompares ? await this.deps.freshRevision(deadlineMs) : 0;
    const compares: EvaluatedCompare[] = [];
    const path = await this.choosePath(req, R0, deadlineMs, compares);
    const wireOps: WireRequestOp[] = [];
    const shape = unfold(path, wireOps);

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
    for (const w of wireOps) for (const g of this.writtenGroups(w)) share(g);
    const writers = order.length;
    if (writers > 0) {
      for (const w of wireOps) for (const g of this.touchedGroups(w)) share(g);
      for (const c of compares) for (const g of c.parts.keys()) share(g);
    }
    const placements = this.placeOps(wireOps, shares);

    // Nothing to write: the compares and ranges at R0 are one snapshot.
    if (writers === 0) {
      admitted?.();
      return this.readOnlyAnswer(wireOps, placements, shape, R0 > 0 ? R0 : await this.deps.freshRevision(deadlineMs), deadlineMs);
    }

    const outcome = await this.twoPhase(
      order,
      (groupId) => {
        // The compares touching this shard, with what they evaluated to here at R0; the generations of
        // the leases its puts attach keys to (checked there, as a one-shard put's are).
        const mine = compares.filter((c) => c.parts.has(groupId));
        const named = new Set(shares.get(groupId)!.flatMap((w) => (w.request_put ? [String(w.request_put.lease ?? '0')] : [])));
        const generations = leases.filter((g) => named.has(g.ID));
        return {
          intent: {
            ops: { compare: mine.map((c) => c.wire), success: shares.get(groupId)!, failure: [] },
            expected: mine.map((c, index) => ({ index, ...c.parts.get(groupId)! })),
            ...this.positions('success_positions', placements, groupId),
          },
          ...(generations.length > 0 ? { lease_generations: generations } : {}),
        };
      },
      { deadlineMs, priority, admitted, admissionKeys: shareKeysOf(req, false) },
    );
    const { C, prepared } = outcome;
    const shareResults = new Map<number, TxnResult>();
    order.forEach((groupId, i) => {
      const p = prepared[i];
      // A share previewed at its prepare's revision P shows its own writes there: they are at C.
      shareResults.set(groupId, atRevision(p.result as TxnResult, p.revision, C));
    });
    const leaves = wireOps.map((w, i) => this.stitch(w, placements[i], shareResults, [], C));
    return { revision: C, result: refold(shape, leaves) };
  }

  /**
   * A lease generation's sweep on `groups` as one transaction: every key attached to it there deleted at
   * one revision C (each shard also refuses that generation from then on, as a plain sweep does).
   * Resolves with C once every shard applied it.
   */
  async sweepLease(sweep: { ID: string; generation: string; revoked_at: string; horizon?: string }, groups: number[]): Promise<number> {
    const deadlineMs = this.deps.deadlineMs();
    return this.retrying(deadlineMs, async (priority) => (await this.twoPhase(groups, () => ({ intent: { ops: { compare: [], success: [], failure: [] }, lease_sweep: sweep } }), { deadlineMs, priority, resolveAllFirst: true })).C);
  }

  /**
   * `attempt` again after a retryable refusal (a jittered pause between), until `deadlineMs`. Each attempt
   * gets the transaction's age (its priority), kept over its attempts: an older transaction's prepare waits
   * where a younger one holds a shard. It moves up only when a shard found it older than its fence horizon
   * (this member's clock behind the shard leaders').
   */
  private async retrying<T>(deadlineMs: number, attempt: (priority: number) => Promise<T>): Promise<T> {
    let priority = this.ageClockMs();
    for (let n = 0; n < MAX_ATTEMPTS; n++) {
      if (Date.now() >= deadlineMs) throw new DeadlineError('cross-shard transaction');
      this.stats.attempts++;
      try {
        return await attempt(priority);
      } catch (err) {
        if (!isRetryable(err)) throw err;
        if (this.learnFromRefusal(err, priority)) priority = Math.max(priority, this.ageClockMs());
        this.stats.retries++;
        const pauseMs = Math.min(MAX_RETRY_PAUSE_MS, this.deps.random() * RETRY_JITTER_MS * (n + 1));
        await new Promise((r) => setTimeout(r, pauseMs));
      }
    }
    throw grpcError(GAVE_UP);
  }

  /**
   * Prepare on every participant (parallel commits): once every prepare applied the transaction is
   * committed at C, the highest P — no decision round on the client's path. The participants then
   * resolve (each keeps a record of the commit until every one has), in the background or before
   * returning when `resolveAllFirst`, and forget. A failed prepare aborts the attempt (and throws).
   */
  private async twoPhase(order: number[], shareOf: (groupId: number) => ParticipantShare, attempt: TwoPhaseAttempt): Promise<Committed> {
    const { deadlineMs, priority, resolveAllFirst = false, admitted = null, decideHere = false, admissionKeys = 'all' } = attempt;
    const txnId = this.deps.newTxnId();
    // No prepare leaves while another transaction of this member holds one of these shards
    // (shard-admission.ts); `admitted` when the caller took them already (a superset of `order`).
    const release = admitted ?? (await this.admit(order, admissionKeys, priority, txnId, deadlineMs));
    try {
      return await this.prepareAndCommit(txnId, order, shareOf, deadlineMs, priority, resolveAllFirst, release, decideHere);
    } catch (err) {
      release();
      throw err;
    }
  }

  /** twoPhase once admitted; `release` gives the shards back to this member's other transactions once its resolves are sent. */
  private async prepareAndCommit(
    txnId: string,
    order: number[],
    shareOf: (groupId: number) => ParticipantShare,
    deadlineMs: number,
    priority: number,
    resolveAllFirst: boolean,
    release: () => void,
    decideHere: boolean,
  ): Promise<Committed> {
    // Whole milliseconds: int64 on the wire (a fraction would be misread, as digits, not refused).
    const intentDeadline = Math.floor(Math.min(deadlineMs, Date.now() + INTENT_TTL_MS));
    const settled = await Promise.allSettled(
      order.map((groupId) => {
        const { intent, lease_generations } = shareOf(groupId);
        return this.deps.propose(
          groupId,
          {
            txn_intent: {
              txn_id: txnId,
              primary_group: String(order[0]),
              participant_groups: order.map(String),
              deadline_unix_ms: String(intentDeadline),
              // The same deadline as time left: the leader that stamps the prepare sets it in its own clock.
              ttl_ms: String(Math.max(1, intentDeadline - Date.now())),
              priority: String(Math.floor(priority)),
              ...intent,
            },
            ...(lease_generations !== undefined ? { lease_generations } : {}),
          },
          Math.max(1, deadlineMs - Date.now()),
          false,
        );
      }),
    );
    if (settled.some((p) => p.status === 'rejected')) return this.failedPrepare(txnId, order, settled, priority, decideHere);
    const prepared = settled.map((p) => (p as PromiseFulfilledResult<TxnWriteOutcome>).value);
    // Prepares that decide the branch: the success branch only if every participant's compares held.
    const failureBranch = prepared.some((p) => preparedFailureBranch(p, decideHere));
    if (this.deps.pauseBeforeDecisionMs > 0) await new Promise((r) => setTimeout(r, this.deps.pauseBeforeDecisionMs));
    // Committed: every participant prepared. C: the highest prepare's revision. It is the transaction's
    // own (the oracle handed it to that prepare alone), above every other participant's prepare, and
    // every participant has written nothing since its own: each applies the commit at C, and no reader
    // saw a state at or above its prepare without waiting for the resolution.
    const C = Math.max(...prepared.map((p) => p.revision));
    this.stats.committed++;
    // The shards go back to this member's other transactions once the resolves are on their way: a
    // shard's leader proposes a resolution ahead of anything stamped after it arrived, and may hold it
    // back until then (shard-write-path.ts), so waiting here for it to apply would hold the next
    // transaction for nothing.
    const resolved = this.resolveAll(txnId, true, C, order, failureBranch).then((all) => {
      // The records may go only once every participant resolved (a recoverer may still ask any of them).
      if (all) this.forgetLater(txnId, order);
      return all;
    });
    release();
    if (resolveAllFirst && !(await resolved)) throw new DeadlineError('cross-shard resolution');
    return { C, prepared, failureBranch };
  }

  /**
   * Some prepare failed. One refused at apply (ABORTED: another transaction held the shard, or the
   * compares changed; or one of etcd's refusals, isRefusal) was never laid there and never will be, so
   * the transaction cannot commit: the prepared participants abort. An etcd refusal is the client's
   * answer; after ABORTED a new attempt follows. Without such a refusal (a prepare timed out, its fate unknown) the
   * transaction is settled as a recoverer would (`settle`): committed if every participant turns out
   * prepared — the client then hears that the outcome is unknown, as etcd's timeout says —, else aborted.
   */
  private async failedPrepare(txnId: string, order: number[], settled: Array<PromiseSettledResult<TxnWriteOutcome>>, priority: number, decideHere: boolean): Promise<never> {
    this.stats.aborts++;
    const failed = settled.find((p): p is PromiseRejectedResult => p.status === 'rejected')!;
    const rejected = settled.filter((p): p is PromiseRejectedResult => p.status === 'rejected');
    const refused = rejected.find((p) => isRefusal(p.reason)) ?? rejected.find((p) => isRetryable(p.reason));
    if (refused !== undefined) {
      await this.resolveAll(txnId, false, 0, order.filter((_, i) => settled[i].status === 'fulfilled'));
      throw refused.reason;
    }
    const prepared = new Map<number, KnownPrepared>();
    order.forEach((g, i) => {
      const p = settled[i];
      if (p.status === 'fulfilled') prepared.set(g, { revision: p.value.revision, failureBranch: preparedFailureBranch(p.value, decideHere) });
    });
    const outcome = await this.settle(txnId, order, prepared, priority).catch(() => null);
    if (outcome?.state === 'committed') throw grpcError(ETCD_ERRORS.TIMEOUT);
    throw failed.reason;
  }
  /** A branch without writes: its ranges read at `at` (every shard's state through C − 1). */
  private async readOnlyAnswer(wireOps: WireRequestOp[], placements: OpPlacement[], shape: TxnShape, at: number, deadlineMs: number): Promise<TxnWriteOutcome> {
    const parts = await Promise.all(placements.map((p, i) => Promise.all(p.readsAt.map((t) => this.readPart(t, wireOps[i], at, deadlineMs)))));
    const leaves = wireOps.map((w, i) => this.stitch(w, placements[i], new Map(), parts[i], at));
    return { revision: at, result: refold(shape, leaves) };
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
   * Settles a transaction whose coordinator cannot finish it (a recoverer's, or a prepare's fate unknown):
   * asks every participant not known prepared with txn_recover — a compare-and-set there: its record
   * (committed at C, or aborted), else prepared (its P), else it records the transaction aborted, so a
   * prepare arriving later is refused. Committed if one says so, or if every participant is prepared (at
   * the highest P, as the coordinator would); else aborted. Then resolves every participant that may
   * still hold it. `known`: participants known prepared, with their P.
   */
  private async settle(txnId: string, participants: number[], known: Map<number, KnownPrepared>, priority: number): Promise<{ state: 'committed' | 'aborted'; revision: number }> {
    this.stats.recoveries++;
    const asked = participants.filter((g) => !known.has(g));
    const answers = await Promise.all(
      asked.map(async (g) => {
        // The transaction's age goes with the fence this may lay (it goes once the shard's horizon passes it).
        const out = await this.deps.propose(g, { txn_recover: { txn_id: txnId, abort_pending: false, priority: String(Math.floor(priority)) } }, RESOLVE_TIMEOUT_MS, true);
        return { ...recoveryOf(out), revision: out.revision };
      }),
    );
    const committed = answers.find((a) => a.state === 'committed');
    let outcome: { state: 'committed' | 'aborted'; revision: number; failureBranch: boolean };
    if (committed !== undefined) outcome = { state: 'committed', revision: committed.revision, failureBranch: committed.failureBranch };
    else if (answers.every((a) => a.state === 'prepared')) {
      // As the coordinator would: at the highest P, the success branch only if every participant's compares held.
      const all = [...known.values(), ...answers];
      outcome = { state: 'committed', revision: Math.max(...all.map((a) => a.revision)), failureBranch: all.some((a) => a.failureBranch) };
    } else outcome = { state: 'aborted', revision: 0, failureBranch: false };
    // Those with a record (resolved, or fenced just now) hold nothing to resolve.
    const holding = participants.filter((g) => known.has(g) || answers[asked.indexOf(g)].state === 'prepared');
    const all = await this.resolveAll(txnId, outcome.state === 'committed', outcome.revision, holding, outcome.failureBranch);
    if (all && outcome.state === 'committed') this.forgetLater(txnId, participants);
    return outcome;
  }

  /**
   * Resolves the transaction on `groups` (commit: at revision C), each resolve carrying the forgets
   * waiting for its shard; whether every one answered.
   */
  private async resolveAll(txnId: string, commit: boolean, revision: number, groups: number[], failureBranch = false): Promise<boolean> {
    const answers = await Promise.all(
      groups.map((g) => {
        const forget = this.takeForgets(g);
        const resolve = {
          txn_id: txnId,
          commit,
          ...(commit ? { revision: String(revision) } : {}),
          ...(commit && failureBranch ? { failure_branch: true } : {}),
          ...(forget.length > 0 ? { forget_txn_ids: forget } : {}),
        };
        return this.deps.propose(g, { txn_resolve: resolve }, RESOLVE_TIMEOUT_MS, true).then(
          () => true,
          () => {
            this.forgetLater(null, [g], forget); // perhaps not applied: carried again
            return false;
          },
        );
      }),
    );
    return answers.every(Boolean);
  }

  /** Queues forgetting `txnId` (and `more`) on `groups`: carried by a later resolve there, or flushed soon. */
  private forgetLater(txnId: string | null, groups: number[], more: string[] = []): void {
    for (const g of groups) {
      const waiting = this.forgets.get(g) ?? { ids: [], sinceMs: performance.now() };
      const list = waiting.ids;
      if (txnId !== null) list.push(txnId);
      list.push(...more);
      if (list.length > MAX_FORGETS_PER_SHARD) list.splice(0, list.length - MAX_FORGETS_PER_SHARD);
      if (list.length > 0) this.forgets.set(g, waiting);
    }
    this.scheduleForgetFlush();
  }

  private takeForgets(groupId: number): string[] {
    const list = this.forgets.get(groupId)?.ids ?? [];
    this.forgets.delete(groupId);
    return list;
  }

  /** The flush timer, due when the shard whose forgets wait longest has waited FORGET_FLUSH_MS. */
  private scheduleForgetFlush(): void {
    if (this.forgetTimer !== null || this.forgets.size === 0) return;
    const oldestMs = Math.min(...[...this.forgets.values()].map((w) => w.sinceMs));
    this.forgetTimer = setTimeout(() => this.flushForgets(), Math.max(0, oldestMs + FORGET_FLUSH_MS - performance.now()));
    this.forgetTimer.unref?.();
  }

  /**
   * One forget entry per shard whose forgets waited FORGET_FLUSH_MS for a resolve to carry them (a lost
   * one is simply tried again later). Shards with younger forgets keep waiting: flushing every shard at
   * each tick cost one more Raft entry per shard every FORGET_FLUSH_MS under a steady trickle of transactions.
   */
  private flushForgets(): void {
    this.forgetTimer = null;
    const dueMs = performance.now() - FORGET_FLUSH_MS;
    for (const [g, { sinceMs }] of [...this.forgets]) {
      if (sinceMs > dueMs) continue;
      const [first, ...rest] = this.takeForgets(g);
      if (first === undefined) continue;
      void this.deps
        .propose(g, { txn_resolve: { txn_id: first, commit: true, forget: true, ...(rest.length > 0 ? { forget_txn_ids: rest } : {}) } }, RESOLVE_TIMEOUT_MS, true)
        .catch(() => this.forgetLater(first, [g], rest));
    }
    this.scheduleForgetFlush();
  }

  /**
   * Moves shard `groupId`'s fence horizon up to `horizonMs`: its fences of transactions older than that
   * go, and a prepare of such a transaction is refused from then on (kv-state-machine.ts).
   */
  async advanceFenceHorizon(groupId: number, horizonMs: number): Promise<void> {
    await this.deps.propose(groupId, { txn_resolve: { txn_id: '', commit: false, forget: true, fence_horizon_unix_ms: String(Math.floor(horizonMs)) } }, RESOLVE_TIMEOUT_MS, true);
  }

  /**
   * Finishes a committed transaction whose record stayed on a shard long after its commit (its
   * coordinator vanished between the resolves and the forgets, which wait up to FORGET_FLUSH_MS to travel
   * with a later resolve): resolves it at C on every participant — a participant still prepared commits,
   * one that resolved answers as before, one that forgot already answers "not prepared", which for a
   * committed transaction (every participant prepared) can only mean it resolved — then has them all
   * forget it. Whether every participant answered.
   */
  async finishCommitted(txnId: string, revision: number, participants: readonly number[], failureBranch = false): Promise<boolean> {
    const answers = await Promise.all(
      participants.map((g) =>
        this.deps.propose(g, { txn_resolve: { txn_id: txnId, commit: true, revision: String(revision), ...(failureBranch ? { failure_branch: true } : {}) } }, RESOLVE_TIMEOUT_MS, true).then(
          () => true,
          (err: unknown) => isNotPrepared(err),
        ),
      ),
    );
    const all = answers.every(Boolean);
    if (all) {
      this.stats.finished++;
      this.forgetLater(txnId, [...participants]);
    }
    return all;
  }

  /**
   * Resolves a transaction prepared on shard `groupId` whose deadline passed undecided (a write path's
   * recoverTxn): settled through every participant (this one is known prepared at `p.revision`).
   */
  async recoverPrepared(p: PreparedTxn, groupId: number): Promise<void> {
    const participants = p.participantGroups.includes(groupId) ? [...p.participantGroups] : [...p.participantGroups, groupId];
    await this.settle(p.txnId, participants, new Map([[groupId, { revision: p.revision, failureBranch: p.comparesHeld === false }]]), p.priority ?? 0);
  }
}

/** A committed transaction: its revision, each participant's prepare, and whether it took the failure branch. */
interface Committed {
  C: number;
  prepared: TxnWriteOutcome[];
  failureBranch: boolean;
}

/** A participant known prepared: its P, and whether its compares failed there (prepares that decide the branch). */
interface KnownPrepared {
  revision: number;
  failureBranch: boolean;
}

/** Whether a prepare that decides the branch found a compare of its shard failing (its result's `succeeded`). */
function preparedFailureBranch(p: TxnWriteOutcome, decideHere: boolean): boolean {
  return decideHere && (p.result as TxnResult | null)?.succeeded === false;
}

/**
 * A txn_recover's answer. A member built before TxnRecoveryResult answered as a txn whose `succeeded`
 * says committed, else prepared at a positive revision, else aborted; it never decides at prepares.
 */
function recoveryOf(out: TxnWriteOutcome): TxnRecoveryResult {
  const r = out.result as (Partial<TxnRecoveryResult> & { succeeded?: unknown }) | null;
  if (r !== null && typeof r.state === 'string') return { state: r.state, failureBranch: r.failureBranch === true };
  return { state: r?.succeeded === true ? 'committed' : out.revision > 0 ? 'prepared' : 'aborted', failureBranch: false };
}

/** A txn on the chosen path: the branch its compares chose, and the nested txns of that branch by op index. */
interface PathNode {
  txn: TxnRequest;
  succeeded: boolean;
  nested: Map<number, PathNode>;
}

/** A compare on the chosen path, with its part on every shard its range touches. */
interface EvaluatedCompare {
  wire: WireCompare;
  parts: Map<number, ComparePart>;
}

/** A txn's answer to be: its branch, and per op the index of its leaf response or a nested txn's shape. */
interface TxnShape {
  succeeded: boolean;
  items: Array<number | TxnShape>;
}

/** One attempt of a transaction's two phases (TxnCoordinator.twoPhase). */
interface TwoPhaseAttempt {
  readonly deadlineMs: number;
  /** The transaction's age (wait-die). */
  readonly priority: number;
  /** Resolve every participant before returning (a lease sweep's caller reads its result at once). */
  readonly resolveAllFirst?: boolean;
  /** Releases the caller's admission, when it took one already (a superset of the participants). */
  readonly admitted?: (() => void) | null;
  /** The prepares decide the branch (TxnIntent.decide_here). */
  readonly decideHere?: boolean;
  /** The keys this member's admission holds for the attempt ('all': whole shards). */
  readonly admissionKeys?: ShareKeys;
}

/** What one participant's prepare carries. */
interface ParticipantShare {
  intent: Pick<TxnIntentWire, 'ops' | 'expected' | 'lease_sweep' | 'decide_here' | 'success_positions' | 'failure_positions'>;
  lease_generations?: LeaseGeneration[];
}

/** Whether some branch, at some level, puts or deletes (a txn that only reads takes no shard). */
function txnMayWrite(t: TxnRequest): boolean {
  return [...(t.success ?? []), ...(t.failure ?? [])].some((w) => !!w.request_put || !!w.request_delete_range || (!!w.request_txn && txnMayWrite(w.request_txn)));
}

function txnHasCompares(t: TxnRequest): boolean {
  if ((t.compare ?? []).length > 0) return true;
  return [...(t.success ?? []), ...(t.failure ?? [])].some((w) => w.request_txn !== undefined && w.request_txn !== null && txnHasCompares(w.request_txn));
}

/** The chosen path's leaf ops, appended to `flat` in the order they run; returns where each answer goes. */
function unfold(node: PathNode, flat: WireRequestOp[]): TxnShape {
  const branch = (node.succeeded ? node.txn.success : node.txn.failure) ?? [];
  return {
    succeeded: node.succeeded,
    items: branch.map((w, i) => {
      const nested = node.nested.get(i);
      return nested !== undefined ? unfold(nested, flat) : flat.push(w) - 1;
    }),
  };
}

/** The txn's answer from its leaf ops' responses. */
function refold(shape: TxnShape, leaves: readonly ResponseOp[]): TxnResult {
  return {
    succeeded: shape.succeeded,
    responses: shape.items.map((item): ResponseOp => (typeof item === 'number' ? leaves[item] : { type: 'txn', txn: refold(item, leaves) })),
  };
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

/**
 * A share's result previewed at its prepare's revision `prepared`, with its own writes shown at `committed`.
 * The ops' own header revisions (the prepare's) go: a cross-shard txn's ops all name C, its header's.
 */
function atRevision(r: TxnResult, prepared: number, committed: number): TxnResult {
  const fix = (kv: KeyValue): KeyValue => (kv.modRevision === prepared || kv.createRevision === prepared ? { ...kv, modRevision: kv.modRevision === prepared ? committed : kv.modRevision, createRevision: kv.createRevision === prepared ? committed : kv.createRevision } : kv);
  const withoutRevision = (op: ResponseOp): ResponseOp => {
    if (op.type === 'txn' || op.revision === undefined) return op;
    const { revision: _prepareRevision, ...rest } = op;
    return rest as ResponseOp;
  };
  return {
    succeeded: r.succeeded,
    responses: r.responses.map((op) => withoutRevision(op.type === 'range' ? { type: 'range', range: { ...op.range, kvs: op.range.kvs.map(fix) } } : op)),
  };
}

/** A range op as each shard is asked it (a value sort needs the values, as shardRangeRequest does). */
function perShardRange(w: WireRequestOp): ReturnType<typeof rangeOpFromWire> {
  const op = rangeOpFromWire(w.request_range!);
  return { ...op, keysOnly: op.keysOnly && op.sortTarget !== 'VALUE' };
}

// What every gRPC service of a member shares: the member, the KV state machine, identity, limits,
// and the shared helpers that turn internal failures into etcd's statuses.
import type { DecidedTxn, PreparedTxn } from '../txn/shard-txn-table.ts';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { BadTransfereeError, DeadlineError, GroupRemovedError, LeaderUnreachableError, MemberStoppedError, NoLeaderError, NotLeaderError, TooManyRequestsError, type Member } from '../member/member.ts';
import type { KvStateMachine, ApplyOutcome } from '../shard/kv-state-machine.ts';
import { ETCD_ERRORS, grpcError } from '../etcd/errors.ts';
import { encodeInternalRequest, type InternalRequestBody, type LeaseGeneration } from '../shard/request-codec.ts';
import type { LeaseSweeper } from './lease-sweeper.ts';
import type { ResponseHeader } from '../etcd/wire-types.ts';
import type { RangeOp, RangeResult, ResponseOp } from '../mvcc/types.ts';
import type { SlotMap } from '../routing/slots.ts';
import type { ShardWatchSource } from '../shard/watch-source.ts';
import type { MemberInfo } from './cluster-info.ts';
import { currentCaller, takeFreshBarrier } from './caller-context.ts';
import { encodeForwardedEntry } from '../shard/forwarded-entry.ts';
import { isProposalLost } from '../shard/proposal-fence.ts';
import type { NodeId } from '../raft/types.ts';
import type { ShardKvOp } from '../shard/shard-kv-wire.ts';
import type { ForwardedAnswer } from '../shard/shard-forwarder.ts';
import type { AdmissionCounters } from './authority-repair.ts';
import type { ShardRemovalBlock } from '../shard/replica-decisions.ts';

export const DATA_GROUP_ID = 0;
/** Longest a shard write or read waits for its shard to have a leader before answering "no leader". */
const SHARD_LEADER_WAIT_MS = 1_500;
/**
 * Longest a data-group read or write waits for a leader before answering "no leader": long enough for a
 * transfer's handover (a heartbeat round and the transferee's election, ~100 ms here, several hundred ms
 * on a loaded 2-core machine running many clusters), short enough that a member cut off from its quorum
 * still answers "no leader" within a second, far sooner than a client's deadline.
 */
const DATA_LEADER_WAIT_MS = 1_000;
/** How often a read or write waiting for its group's leader looks again. */
const LEADER_WAIT_RETRY_MS = 20;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Longest a request waits for a leader that is named but out of reach (LeaderUnreachableError: this
 * member's stream to it has not come up since it started): it is coming into reach (a stream still being
 * dialled) or dead and about to be replaced, and with a 1 s election timeout that takes 1-2 s, longer than
 * the wait for a leader.
 */
const UNREACHABLE_LEADER_WAIT_MS = 2_000;

/**
 * `attempt` until it does not fail with NoLeaderError; gives up with its last error (a definite refusal:
 * nothing was proposed) at `deadlineMs`, once the group has had no leader for `leaderWaitMs`, or once its
 * named leader has been out of reach for UNREACHABLE_LEADER_WAIT_MS (or `leaderWaitMs`, if longer).
 */
export async function whileLeaderless(leaderWaitMs: number, deadlineMs: number, attempt: () => void | Promise<void>): Promise<void> {
  let leaderlessSinceMs: number | null = null;
  let unreachableSinceMs: number | null = null;
  for (;;) {
    try {
      await attempt();
      return;
    } catch (err) {
      if (!(err instanceof NoLeaderError)) throw err;
      const nowMs = Date.now();
      if (nowMs >= deadlineMs) throw err;
      if (err instanceof LeaderUnreachableError) {
        unreachableSinceMs ??= nowMs;
        if (nowMs - unreachableSinceMs >= Math.max(leaderWaitMs, UNREACHABLE_LEADER_WAIT_MS)) throw err;
      } else {
        leaderlessSinceMs ??= nowMs;
        if (nowMs - leaderlessSinceMs >= leaderWaitMs) throw err;
      }
    }
    await sleep(LEADER_WAIT_RETRY_MS);
  }
}

/** A Raft group a request goes to, and its state machine on this member (a shard of a sharded cluster). */
export interface GroupTarget {
  groupId: number;
  sm: KvStateMachine;
}

/**
 * The shards of a sharded cluster as the API uses them (server/cli/shard-hosting.ts builds it): which
 * group holds a key, every shard's group, a multi-shard read at one oracle revision.
 */
export interface ShardedKeyspace {
  readonly shardCount: number;
  readonly slotMap: SlotMap;
  /** Every shard, in shard order (shard i owns the slot map's range i). */
  targets(): readonly GroupTarget[];
  /** The newest revision applied on a shard replica this member hosts (0 when it hosts none). */
  appliedRevision(): number;
  /** Every group beside DATA_GROUP_ID that must have a leader for this member to be ready (metadata, shards; not a replica left behind). */
  readinessGroups(): number[];
  /**
   * Why removing voter `memberId` from the cluster now could leave a group unable to commit, or null:
   * with every member hosting every shard, until every group follows the cluster group's membership;
   * with placement on a subset, until every shard is settled and each it votes in keeps a quorum of
   * voters still in the cluster, and of started ones (server/shard/replica-decisions.ts).
   */
  removalBlock(memberId: number): ShardRemovalBlock | null;
  /** The revision oracle as this member hosts it, for /metrics. */
  oracleStatus(): { serving: boolean; requests: number; grants: number; revisionsGranted: number; persists: number; establishments: number; unavailable: number; deadlines: number };
  /** The shard holding `key`. */
  shardOf(key: Buffer): GroupTarget;
  /** The shards whose slots a key range [key, rangeEnd) may touch (one when the range is one shard's). */
  shardsOfRange(key: Buffer, rangeEnd: Buffer): GroupTarget[];
  /** A revision from the oracle above everything handed out before it (the R of a multi-shard read). */
  freshRevision(deadlineMs: number): Promise<number>;
  /** `op` read at `revision` on the shard's leader (here or on the peer that leads it). */
  rangeAt(target: GroupTarget, op: RangeOp, revision: number, deadlineMs: number): Promise<RangeResult>;
  /** Every shard replica on this member as a merged watch's source, by shard index (server/shard/replica-watch-source.ts). */
  watchSources(): ReadonlyMap<number, ShardWatchSource>;
  /** A merged watch opened: this member's closing rounds run until every hold is released (server/shard/shard-closer.ts). */
  holdClosingRounds(): ClosingHold;
  /**
   * Every shard as this member sees it: membership, leader and applied revision where it hosts a replica;
   * elsewhere the membership its leader last reported, and the leader and revision a hosting member
   * answered at the last refreshRemoteViews (within 10 s), else the leader last learned (or 0) and revision 0.
   */
  shardViews(): Array<{ shard: number; voters: readonly number[]; learners: readonly number[]; leader: number; revision: number }>;
  /**
   * Asks the members hosting the shards this member does not host for their leader and applied revision
   * (ShardStatus), so that shardViews() shows them; resolves by `deadlineMs` whatever they answer.
   */
  refreshRemoteViews(deadlineMs: number): Promise<void>;
  /**
   * Marks `memberId` draining (or up again with `cancel`) through the metadata group and waits for that
   * to apply; answers the replicas still on it. Throws when the member is not in the cluster.
   */
  drain(memberId: number, cancel: boolean, deadlineMs: number): Promise<{ draining: boolean; replicasRemaining: number }>;
  /** Placement moves as this member sees them, and the placement version (docs/sharding.md). */
  placementProgress(): { version: number; pending: number; inProgress: number; done: number };
  /**
   * Hands every shard and metadata group leadership this member holds to the caught-up, recently heard
   * voter of that group, and waits for each (by `deadlineMs`). Answers how many it handed over and how
   * many it still leads in groups that have another voter (0 once it is safe to stop this member
   * without costing a shard an election). The cluster group is not touched: Maintenance.MoveLeader moves it.
   */
  transferLeaderships(deadlineMs: number): Promise<{ transferred: number; remaining: number }>;
  /** The metadata group's leader as this member knows it (0: none known). */
  metadataLeaderId(): NodeId;
  /** This member's closing rounds, for /metrics: running now, and counts since start. */
  closingStatus(): { active: boolean; rounds: number; closes: number; closeFailures: number };
  /**
   * Whether this member's API serves shard group `groupId` from its own replica. When not, every KV
   * request on it is forwarded (forwardKv) to one of replicaCandidates(groupId).
   */
  hosts(groupId: number): boolean;
  /** The members believed to host `groupId`'s replicas (asked in turn by forwardKv). */
  replicaCandidates(groupId: number): NodeId[];
  /**
   * `op` executed on a member hosting `groupId` (server/shard/shard-forwarder.ts): its answer, or throws
   * the client's error (the host's etcd error, or etcd's timeouts when no host answered by `deadlineMs`).
   */
  forwardKv(groupId: number, op: ShardKvOp, deadlineMs: number): Promise<ForwardedAnswer>;
  /**
   * Set by the API: resolves a cross-shard transaction left prepared on shard `groupId` past its
   * deadline (server/api/cross-shard-txn.ts); the shards this member leads call it.
   */
  txnRecoverer: ((p: PreparedTxn, groupId: number) => Promise<void>) | null;
  /**
   * Set by the API: finishes a committed cross-shard transaction whose records outlived its coordinator
   * (resolve every participant, then forget); the leaders of shards holding such a record call it.
   */
  txnFinisher: ((d: DecidedTxn) => Promise<boolean>) | null;
  /** Set by the API: moves shard `groupId`'s fence horizon, dropping the fences of transactions older than it. */
  txnFenceHorizon: ((groupId: number, horizonMs: number) => Promise<void>) | null;
  /** Counts of forwarded KV requests since start, for /metrics. */
  forwardStatus(): { forwards: number; attempts: number; notHosted: number; unreachable: number; lost: number };
  /** Pages after the first of reads on other members larger than one peer message, since start, for /metrics. */
  readPagesStatus(): number;
  /**
   * The shard leaders' write paths here, for /metrics: counts since start (replicas that moved away
   * included), and the cross-shard transactions prepared on the replicas here now.
   */
  writePathStatus(): { writesProposed: number; writesLost: number; oracleRequests: number; txnPrepares: number; txnPreparesBeside: number; txnPreparesRefused: number; writesBesideTxns: number; writesParked: number; writesDeferred: number; writesAnsweredEarly: number; txnRecoveries: number; resolvesHeld: number; resolvesAlone: number; preparedNow: number };
}

/** A write's outcome; `raftTerm` is the shard group's term on the member that proposed it when that was another (a forward). */
export type WriteOutcome = ApplyOutcome & { raftTerm?: number };

/** A merged watch's hold on this member's closing rounds. */
export interface ClosingHold {
  release(): void;
  /** Resolves once every shard is resolved through a round started after the call (or after timeoutMs). */
  sync(timeoutMs: number): Promise<void>;
}

export interface ApiLimits {
  /** Largest request accepted into the log (etcd's --max-request-bytes, default 1.5 MiB). */
  maxRequestBytes: number;
  /** Most ops in one txn branch (etcd's --max-txn-ops, default 128). */
  maxTxnOps: number;
  /** How long a request may wait for Raft before it fails with "request timed out". */
  requestTimeoutMs: number;
  /** Interval of progress notifications to watchers that asked for them. */
  watchProgressNotifyIntervalMs: number;
}

export const DEFAULT_LIMITS: ApiLimits = {
  maxRequestBytes: 1.5 * 1024 * 1024,
  maxTxnOps: 128,
  requestTimeoutMs: 7_000,
  watchProgressNotifyIntervalMs: 10 * 60 * 1000,
};

export class ApiContext {
  readonly member: Member;
  readonly sm: KvStateMachine;
  readonly clusterId: string;
  readonly memberIdText: string;
  readonly limits: ApiLimits;
  readonly logger: Logger;
  readonly members: () => MemberInfo[];
  /** TEST-ONLY (--experimental-unsafe-stale-reads): linearizable reads skip ReadIndex. Breaks linearizability. */
  readonly unsafeStaleReads: boolean;
  /** TEST-ONLY (--test-txn-pause-before-decision-ms): a cross-shard coordinator's pause before deciding. */
  readonly testTxnPauseBeforeDecisionMs: number;
  /** The shards when the cluster has more than one (null: one shard, DATA_GROUP_ID, exactly today's etcd). */
  readonly shards: ShardedKeyspace | null;
  /** A sharded cluster's sweeper of revoked leases' keys (server/api/lease-sweeper.ts); null otherwise. */
  leaseSweeper: LeaseSweeper | null = null;
  /** Client connections whose requests named an :authority Node refuses, served repaired (authority-repair.ts). */
  readonly clientConnections: AdmissionCounters = { repaired: 0 };
  /** Writes proposed again because an attempt was known lost with a leadership (proposeFenced). */
  proposalsRetried = 0;
  /** currentRevision()'s high-water mark on a sharded cluster. */
  private newestRevisionNamed = 0;

  constructor(opts: {
    member: Member;
    sm: KvStateMachine;
    clusterId: string;
    limits: ApiLimits;
    logger: Logger;
    members: () => MemberInfo[];
    unsafeStaleReads?: boolean;
    testTxnPauseBeforeDecisionMs?: number;
    shards?: ShardedKeyspace | null;
  }) {
    this.member = opts.member;
    this.sm = opts.sm;
    this.clusterId = opts.clusterId;
    this.memberIdText = String(opts.member.memberId);
    this.limits = opts.limits;
    this.logger = opts.logger;
    this.members = opts.members;
    this.unsafeStaleReads = opts.unsafeStaleReads ?? false;
    this.testTxnPauseBeforeDecisionMs = opts.testTxnPauseBeforeDecisionMs ?? 0;
    this.shards = opts.shards ?? null;
  }

  /**
   * A response header; for a shard's answer, `target` gives the shard's store and Raft term, or
   * `raftTerm` when a member hosting the shard answered for this one (member_id stays this member's:
   * the member the client asked answers, as a member forwarding a write to its Raft leader does).
   */
  header(revision?: number, target?: GroupTarget, raftTerm?: number): ResponseHeader {
    return {
      cluster_id: this.clusterId,
      member_id: this.memberIdText,
      revision: String(revision ?? (target?.sm ?? this.sm).appliedRevision()),
      raft_term: String(raftTerm ?? this.member.term(target?.groupId ?? DATA_GROUP_ID)),
    };
  }

  /**
   * The store's revision as this member has applied it, which etcd names in Status and wherever a
   * header speaks of no particular key. On a sharded cluster, the newest applied on a shard hosted here
   * (the cluster group holds no keys), and never lower than one named before: a replica moving away must
   * not take it back.
   */
  currentRevision(): number {
    if (this.shards === null) return this.sm.appliedRevision();
    this.newestRevisionNamed = Math.max(this.newestRevisionNamed, this.shards.appliedRevision());
    return this.newestRevisionNamed > 0 ? this.newestRevisionNamed : this.sm.appliedRevision();
  }

  deadlineMs(): number {
    return Date.now() + this.limits.requestTimeoutMs;
  }

  /** A learner replicates the log but serves only serializable reads and status, as in etcd. */
  isLearner(): boolean {
    return this.member.isLearner(DATA_GROUP_ID);
  }

  /** Waits until this member has applied everything committed before now (linearizable read). */
  async readBarrier(target?: GroupTarget): Promise<void> {
    if (this.isLearner()) throw grpcError(ETCD_ERRORS.NOT_SUPPORTED_FOR_LEARNER);
    if (this.unsafeStaleReads) return; // the deliberately broken build the fault suite's checker must catch
    if (target !== undefined) {
      await this.shardReadBarrier(target.groupId, this.deadlineMs());
      return;
    }
    if (takeFreshBarrier()) return; // the auth guard passed one for this request a moment ago
    await this.readBarrierOnceLed(DATA_GROUP_ID, this.deadlineMs(), DATA_LEADER_WAIT_MS);
  }

  /**
   * Proposes a write through Raft and resolves with its outcome once this member applied it.
   * `internal` writes (the member publishing its own attributes) are allowed on a learner.
   */
  proposeWrite(body: InternalRequestBody & { lease_generations?: LeaseGeneration[] }, options: { internal?: boolean; target?: GroupTarget; timeoutMs?: number } = {}): Promise<WriteOutcome> {
    if (!options.internal && this.isLearner()) return Promise.reject(grpcError(ETCD_ERRORS.NOT_SUPPORTED_FOR_LEARNER));
    // A shard this member's API does not serve: a member hosting it proposes exactly this entry.
    if (options.target !== undefined && this.shards !== null && !this.shards.hosts(options.target.groupId)) return this.forwardWrite(body, options.target.groupId, options);
    // A sharded write goes to its shard's group and waits on that shard's state machine; the shard's
    // leader stamps it with an oracle revision (server/shard/shard-write-path.ts) before Raft sees it.
    const sm = options.target?.sm ?? this.sm;
    const groupId = options.target?.groupId ?? DATA_GROUP_ID;
    const noSpace = sm.admit(body); // the space quota (server/shard/quota.ts)
    if (noSpace) return Promise.reject(grpcError(noSpace));
    const caller = currentCaller(); // set by the auth guard for client requests
    const encode = (seq: string, proposalTerm: number): Uint8Array => {
      const data = encodeInternalRequest({ proposer: sm.proposer, seq, ...body, ...(caller ? { caller } : {}), ...(proposalTerm > 0 ? { proposal_term: String(proposalTerm) } : {}) });
      if (data.length > this.limits.maxRequestBytes) throw grpcError(ETCD_ERRORS.REQUEST_TOO_LARGE);
      return data;
    };
    const timeoutMs = options.timeoutMs ?? this.limits.requestTimeoutMs;
    const leaderWaitMs = Math.min(timeoutMs, options.target !== undefined && this.shards !== null ? SHARD_LEADER_WAIT_MS : DATA_LEADER_WAIT_MS);
    return this.proposeFenced(groupId, sm, encode, Date.now() + timeoutMs, leaderWaitMs);
  }

  /**
   * Proposes an entry (`encode(seq, proposalTerm)`) fenced to the term this member sees, and resolves with
   * its outcome once applied here. Proposed again, with a new seq and the new term, while an attempt is
   * known lost (server/shard/proposal-fence.ts: it can no longer apply anywhere) and the deadline allows:
   * a write forwarded to a leader that died, or lost with a leadership, then commits under the next leader
   * instead of waiting out its deadline. A group between two leaders is waited on for up to `leaderWaitMs`
   * (the proposal reached no log, so proposing again once a leader is known is safe, as etcd's proposals
   * wait for a leader rather than fail).
   */
  private async proposeFenced(groupId: number, sm: KvStateMachine, encode: (seq: string, proposalTerm: number) => Uint8Array, deadlineMs: number, leaderWaitMs: number): Promise<WriteOutcome> {
    for (;;) {
      const tracked = await this.proposeOnceLed(groupId, sm, encode, leaderWaitMs, deadlineMs);
      try {
        return await this.outcomeOf(tracked, Math.max(0, deadlineMs - Date.now()));
      } catch (err) {
        if (!isProposalLost(err) || Date.now() >= deadlineMs || !this.member.groupIds().includes(groupId)) throw err;
        this.proposalsRetried++;
      }
    }
  }

  /**
   * One attempt of proposeFenced: tracked on `sm` and proposed, fenced to the term this member sees now,
   * waiting for a leader as whileLeaderless does. The first try is made at once (synchronously).
   */
  private async proposeOnceLed(groupId: number, sm: KvStateMachine, encode: (seq: string, proposalTerm: number) => Uint8Array, leaderWaitMs: number, deadlineMs: number): Promise<ReturnType<KvStateMachine['track']>> {
    let tracked: ReturnType<KvStateMachine['track']> | null = null;
    let tries = 0;
    await whileLeaderless(leaderWaitMs, deadlineMs, () => {
      // The replica moved away while this waited: answered as a write waiting on a removed replica is.
      if (tries++ > 0 && !this.member.groupIds().includes(groupId)) throw new GroupRemovedError(groupId, this.member.memberId);
      const proposalTerm = this.member.proposalTerm(groupId);
      const attempt = sm.track(proposalTerm);
      try {
        this.member.propose(groupId, encode(attempt.seq, proposalTerm));
      } catch (err) {
        attempt.forget();
        throw err;
      }
      tracked = attempt;
    });
    if (tracked === null) throw new Error('invariant: a proposal attempt ended without a proposal or an error');
    return tracked;
  }

  /**
   * A ReadIndex on shard group `groupId`, waiting up to SHARD_LEADER_WAIT_MS for a leader when it has
   * none (a leadership handed over as a replica moves): a read changes nothing, so asking again is safe.
   * The data group waits DATA_LEADER_WAIT_MS the same way (readBarrier).
   */
  async shardReadBarrier(groupId: number, deadlineMs: number): Promise<void> {
    await this.readBarrierOnceLed(groupId, deadlineMs, SHARD_LEADER_WAIT_MS);
  }

  /** A ReadIndex on `groupId`, waiting up to `leaderWaitMs` for a leader when the group has none. */
  private readBarrierOnceLed(groupId: number, deadlineMs: number, leaderWaitMs: number): Promise<void> {
    return whileLeaderless(leaderWaitMs, deadlineMs, () => this.member.readBarrier(groupId, deadlineMs));
  }

  /** A proposed write's outcome, or DeadlineError after `timeoutMs`. */
  private outcomeOf(tracked: { outcome: Promise<ApplyOutcome>; forget: () => void }, timeoutMs: number): Promise<ApplyOutcome> {
    return new Promise<ApplyOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        tracked.forget();
        reject(new DeadlineError('proposal'));
      }, timeoutMs);
      tracked.outcome.then(
        (o) => {
          clearTimeout(timer);
          resolve(o);
        },
        (e: unknown) => {
          clearTimeout(timer);
          reject(e);
        },
      );
    });
  }

  /** proposeWrite on a member hosting shard `groupId`: the entry it would propose here, caller and all. */
  private async forwardWrite(body: InternalRequestBody & { lease_generations?: LeaseGeneration[] }, groupId: number, options: { internal?: boolean; timeoutMs?: number }): Promise<WriteOutcome> {
    const caller = currentCaller();
    // proposer and seq are the host's to set (0 here): the size is this entry's to within a few bytes,
    // and the host checks its own exactly.
    const entry = encodeForwardedEntry(body, caller);
    if (entry.length > this.limits.maxRequestBytes) throw grpcError(ETCD_ERRORS.REQUEST_TOO_LARGE);
    const deadlineMs = Date.now() + (options.timeoutMs ?? this.limits.requestTimeoutMs);
    const answer = await this.shards!.forwardKv(groupId, { kind: 'write', entry, internal: caller === undefined }, deadlineMs);
    if (answer.kind !== 'done') throw new Error(`shard group ${groupId}: a forwarded write answered ${answer.kind}`);
    const p = answer.payload;
    return { revision: answer.revision, raftTerm: answer.raftTerm, result: p.kind === 'response' ? resultOf(p.response) : p.kind === 'recovery' ? p.recovery : null };
  }
}

/** The in-memory result a hosting member's apply gives for a put, delete or txn (kv-state-machine.ts). */
function resultOf(op: ResponseOp): unknown {
  switch (op.type) {
    case 'put':
      return op.put;
    case 'deleteRange':
      return op.deleteRange;
    case 'txn':
      return op.txn;
    case 'range':
      return op.range;
  }
}

const MVCC_ERRORS: Record<string, typeof ETCD_ERRORS.COMPACTED> = {
  compacted: ETCD_ERRORS.COMPACTED,
  futureRev: ETCD_ERRORS.FUTURE_REV,
  keyNotFound: ETCD_ERRORS.KEY_NOT_FOUND,
  leaseNotFound: ETCD_ERRORS.LEASE_NOT_FOUND,
};

/** Maps any failure to the gRPC status a client sees, with etcd's text where etcd has one. */
export function toServiceError(err: unknown, logger: Logger): grpc.ServiceError {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'number') {
    return err as grpc.ServiceError;
  }
  if (err instanceof NoLeaderError) return grpcError(ETCD_ERRORS.NO_LEADER);
  // A shard replica removed from this member while a request waited on it (it moved away), or the member
  // itself stopping (removed from the cluster, shutting down): etcd's answer when the member serving a
  // request stops under it, whose outcome the client cannot know.
  if (err instanceof GroupRemovedError || err instanceof MemberStoppedError) return grpcError(ETCD_ERRORS.STOPPED);
  if (err instanceof DeadlineError) return grpcError(ETCD_ERRORS.TIMEOUT);
  if (err instanceof TooManyRequestsError) return grpcError(ETCD_ERRORS.REQUEST_TOO_MANY_REQUESTS);
  if (err instanceof NotLeaderError) return grpcError(ETCD_ERRORS.NOT_LEADER);
  if (err instanceof BadTransfereeError) return grpcError(ETCD_ERRORS.BAD_LEADER_TRANSFEREE);
  // A sharded cluster's shard or oracle that has no ready leader in time (server/shard/).
  if (err instanceof Error && (err.name === 'ShardDeadlineError' || err.name === 'OracleDeadlineError')) return grpcError(ETCD_ERRORS.TIMEOUT);
  if (err instanceof Error && err.name === 'ShardNotReadyError') return grpcError(ETCD_ERRORS.NO_LEADER);
  if (err instanceof Error && err.name === 'PlacementRefusedError') return grpcError({ code: grpc.status.FAILED_PRECONDITION, message: err.message });
  if (err instanceof Error && err.name === 'MvccError') {
    const spec = MVCC_ERRORS[(err as Error & { code: string }).code];
    if (spec) return grpcError(spec);
  }
  logger.error({ err }, 'request failed unexpectedly');
  const e = new Error(err instanceof Error ? err.message : String(err)) as grpc.ServiceError;
  e.code = grpc.status.INTERNAL;
  e.details = e.message;
  e.metadata = new grpc.Metadata();
  return e;
}

/** Adapts an async handler to grpc-js's unary callback style. */
export function unary<Req, Res>(
  ctx: ApiContext,
  fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    fn(call.request, call).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(err, ctx.logger)),
    );
  };
}

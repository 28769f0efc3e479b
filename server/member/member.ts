// The member: hosts every Raft group of this process and drives them with one loop. Each event-loop
// turn collects the Ready of every group, writes all their entries, hard states and applied state as
// ONE synced LevelDB batch (group commit), then sends the messages, applies committed entries and
// answers ReadIndex waiters. Nothing leaves before the batch it depends on is on disk.
//
// Idle cost (MemberOptions.quiesce): idle groups quiesce (server/raft/raft.ts) and stop ticking and
// heartbeating. What a quiesced group's heartbeats told its followers — the leader is alive — the
// member says once per peer instead: each heartbeat interval it sends every peer one liveness
// message (LIVENESS_GROUP_ID) unless it already sent that peer something in the interval, and it
// wakes quiesced groups whose leader's member (or a quorum of whose voters' members) went silent for
// an election timeout (server/raft/liveness-wake.ts). Safety never depends on this; liveness does.
//
// Membership and snapshots (see server/raft/README.md for the contract this follows): committed conf
// changes are applied to Raft and to the state machine in the same step, and the new membership is
// persisted with the applied index. Every `snapshotCount` applied entries the member takes a
// snapshot point (a LevelDB snapshot at exactly the applied index, so nothing is copied); the Raft
// log is then compacted up to the PREVIOUS point, which keeps at least `snapshotCount` entries for
// followers that are only a little behind. A follower further behind receives the retained point's
// records as a snapshot file (snapshot-file.ts), installs it, and continues from the log.
//
// Groups come and go at runtime (a shard replica placed on this member, then moved away): addGroup
// works before and after start(); removeGroup stops hosting a group, fails its waiters, and deletes
// its data once no turn can write its keys any more, leaving a tombstone of its last term and vote
// (member-db.ts) that a later replica of the same group here starts from.
import fs from 'node:fs';
import { AsyncResource } from 'node:async_hooks';
import path from 'node:path';
import type { Logger } from 'pino';
import { DEFAULT_REPLICATION_LIMITS, type ReplicationLimits } from '../raft/replication-limits.ts';
import { RawNode, decodeConfChange } from '../raft/raw-node.ts';
import { newMessage } from '../raft/raft.ts';
import type { ConfChange, ConfState, Entry, LeaseReads, Message, NodeId, Ready, Role, SnapshotMeta } from '../raft/types.ts';
import type { DbSnapshot, LoadedGroup } from '../storage/member-db.ts';
import type { MemberStore } from '../storage/member-store.ts';
import { TurnBatch } from '../storage/member-db.ts';
import { ByteArena } from '../storage/byte-arena.ts';
import { encodeSnapshot, pruneSnapshotFiles, readSnapshotFile, snapshotFileName } from '../storage/snapshot-file.ts';
import { LIVENESS_GROUP_ID, wakeIfPeersSilent } from '../raft/liveness-wake.ts';
import { leaseDurationMs } from './lease-reads.ts';
import { FORWARDED_PROPOSAL_HOLD_MS, FORWARDED_PROPOSAL_RETRY_MS, REMOVED_GROUP_FORWARD_MS, routeForwardedProposal } from './forwarded-proposal.ts';

export { LIVENESS_GROUP_ID };

/** What a Raft group's replicated state machine must offer the member. */
export interface GroupStateMachine {
  /** Applies one committed entry. Entries arrive once each, in index order. */
  apply(entry: Entry): void;
  /** Durable changes since the last call (store-relative keys), written with the applied index. */
  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }>;
  /** Applies a committed membership change; Raft has already applied it and `confState` is the result. */
  applyConfChange(entry: Entry, change: ConfChange, confState: ConfState): void;
  /** Replaces the whole state by a snapshot's records (store-relative keys, sorted). */
  restore(records: Array<[Buffer, Buffer]>): void;
  /** Fails every client waiting on an outcome here (a proposal's apply): the group is removed from this member. */
  failAll?(err: Error): void;
  /**
   * Every entry through `index` is applied, the last of them in Raft term `term` (told once per Ready
   * that applied any, empty entries included).
   */
  appliedThrough?(index: number, term: number): void;
}

/**
 * The cluster group (server/api/context.ts DATA_GROUP_ID): membership of the whole cluster. It is never
 * removed from a running member, and this member's removal from it means removal from the cluster.
 */
export const CLUSTER_GROUP_ID = 0;

/** A state-machine snapshot this member can send: the database as of `meta.index`. */
interface SnapshotPoint {
  meta: SnapshotMeta;
  db: DbSnapshot;
  /** Transfers reading it; closed once released and unused. */
  readers: number;
  released: boolean;
}

/**
 * A received snapshot's temp file untouched this long belongs to no live transfer (a chunk arrives far
 * more often, and the transport gives a transfer 10 minutes): an install removes only such temp files,
 * not those of another group's snapshot arriving meanwhile.
 */
const SNAPSHOT_TEMP_IDLE_MS = 15 * 60_000;

/**
 * What one turn gathered from every group before writing (Member.gatherReadies): the Readies, those
 * whose term and vote were already durable (their messages may leave before the fsync), the
 * compactions whose log entries may go once the batch is written, and what the batch needs.
 */
interface GatheredTurn {
  readies: Array<[RaftGroup, Ready]>;
  /** Readies whose term and vote were durable before this turn, none installing a snapshot. */
  earlyReadies: Array<{ group: RaftGroup; ready: Ready; leading: boolean }>;
  compactedThrough: Array<[RaftGroup, number]>;
  /** Entries, a term or vote, a membership change or a received snapshot: the batch is synced. */
  needsSync: boolean;
  /** Something must reach the disk now, though without an fsync (a compaction point). */
  mustWrite: boolean;
  termOrVoteChanged: boolean;
}

/** Longest a write that needs no fsync waits for a batch to ride with (see Member.pending). */
const LAZY_FLUSH_MS = 100;
/** Most ops held back before they are written anyway. */
const LAZY_FLUSH_OPS = 4096;
/**
 * How long after its start a member moves a new group's election timer forward once its peers are up
 * (etcd waits as long for its peers before its own initial election tick advance).
 */
const FRESH_ELECTION_WINDOW_MS = 5_000;
/** How long a leadership transfer waits for its target's stream to come back before it ends. */
const TRANSFER_TARGET_GONE_MS = 200;

export class SnapshotUnavailableError extends Error {
  constructor(groupId: number, index: number) {
    super(`group ${groupId} has no snapshot at index ${index}`);
    this.name = 'SnapshotUnavailableError';
  }
}

/** Where outgoing Raft messages go; PeerTransport implements it, tests may stub the network. */
export interface MessageSink {
  send(groupId: number, message: Message): void;
  flush(): void;
  /**
   * The replicated apply rules member `memberId` implements, as it last said (APPLY_RULES). Absent: every
   * member runs this build (the in-process harnesses and simulations).
   */
  peerApplyRules?(memberId: NodeId): number;
  /** Whether member `memberId` has said its hello (and so its apply rules) since this process started. */
  peerHasSaidHello?(memberId: NodeId): boolean;
  /** Whether the stream to member `memberId` is up now (absent: the network is not modelled; assume so). */
  isConnected?(memberId: NodeId): boolean;
  /** How far member `memberId`'s wall clock is ahead of this one's, as its hello said (absent, or 0: unknown). */
  peerClockAheadMs?(memberId: NodeId): number;
}

/**
 * The replicated apply rules this build implements, said to peers in every stream hello. Each level
 * includes those below it:
 *   1 (PROPOSAL_FENCE_RULES): an entry fenced to a proposal term (InternalRequest.proposal_term) is skipped
 *     at any other term (server/shard/proposal-fence.ts);
 *   2 (DECIDE_AT_PREPARE_RULES): a cross-shard transaction's prepares may decide its branch
 *     (TxnIntent.decide_here, TxnResolve.failure_branch; docs/transactions.md).
 *   3 (TXN_OP_POSITION_RULES): a cross-shard transaction's commit numbers each op's changes by the op's
 *     place in the whole transaction (TxnIntent.success_positions; server/mvcc/txn-op-position.ts).
 *   4 (BCRYPT_PASSWORD_RULES): a user's stored password may be a bcrypt hash, which Authenticate on this
 *     member checks (server/auth/password.ts). Not an apply rule, but replicated state every member must
 *     read alike: a user whose hash one member cannot check could log in on some members only.
 *   5 (CONCURRENT_PREPARE_RULES): a shard may hold several cross-shard transactions prepared at once, on
 *     disjoint keys, and makes their commits in C order (server/txn/shard-txn-table.ts); a prepare whose
 *     keys meet a prepared one's is refused at apply. An older replica takes a second prepare for a
 *     broken invariant, so a leader proposes one only once every member implements this.
 *   6 (DEFERRED_WRITE_RULES): an ordinary write (put, delete range, single-shard txn) applied while a
 *     transaction prepared on the shard is undecided is deferred, and made at its revision once every
 *     transaction prepared below it is decided (server/txn/shard-txn-table.ts); a prepare whose keys meet
 *     a deferred write's is refused. An older replica would run it at once, below a commit still to come,
 *     so a leader proposes writes beside a prepared transaction only once every member implements this.
 * Rules that decide what an entry does must hold on every replica, so a member uses one only once every
 * member of the group said it implements it.
 */
export const PROPOSAL_FENCE_RULES = 1;
export const DECIDE_AT_PREPARE_RULES = 2;
export const TXN_OP_POSITION_RULES = 3;
export const BCRYPT_PASSWORD_RULES = 4;
export const CONCURRENT_PREPARE_RULES = 5;
export const DEFERRED_WRITE_RULES = 6;
export const APPLY_RULES = DEFERRED_WRITE_RULES;

/** The leader holds too many uncommitted bytes (Raft's maxUncommittedEntriesBytes): back off and retry. */
export class TooManyRequestsError extends Error {
  constructor() {
    super('too many requests');
    this.name = 'TooManyRequestsError';
  }
}

export class NoLeaderError extends Error {
  constructor() {
    super('no leader');
    this.name = 'NoLeaderError';
  }
}

/**
 * A NoLeaderError for a follower whose stream to the leader it knows has not come up yet: a leader is
 * named (coming into reach, or dead and replaced within an election timeout), so a caller may wait longer
 * for it than for a group with no leader at all.
 */
export class LeaderUnreachableError extends NoLeaderError {
  constructor() {
    super();
    this.name = 'LeaderUnreachableError';
  }
}

export class NotLeaderError extends Error {
  constructor() {
    super('not leader');
    this.name = 'NotLeaderError';
  }
}

export class BadTransfereeError extends Error {
  constructor() {
    super('bad leader transferee');
    this.name = 'BadTransfereeError';
  }
}

/** The group is no longer hosted by this member (Member.removeGroup): ask a member that hosts it. */
export class GroupRemovedError extends Error {
  constructor(groupId: number, memberId: NodeId) {
    super(`group ${groupId} was removed from member ${memberId.toString(16)}`);
    this.name = 'GroupRemovedError';
  }
}

/**
 * This member is stopping (its process shutting down, or removed from the cluster): what waited on it
 * gets no answer from it. etcd's "server stopped" to a client, whose outcome it cannot know.
 */
export class MemberStoppedError extends Error {
  constructor(what: string) {
    super(`member ${what}`);
    this.name = 'MemberStoppedError';
  }
}

export class DeadlineError extends Error {
  constructor(what: string) {
    super(`${what} timed out`);
    this.name = 'DeadlineError';
  }
}

/**
 * A leadership transfer whose target's stream stayed down (TRANSFER_TARGET_GONE_MS): it cannot finish before
 * its deadline unless the target comes back, so it ends now. A DeadlineError to callers that map
 * errors (etcd answers a transfer that cannot finish with its timeout error).
 */
export class TransferTargetGoneError extends DeadlineError {
  constructor(targetId: NodeId) {
    super('leader transfer');
    this.message = `leader transfer: member ${targetId.toString(16)} cannot be reached`;
    this.name = 'TransferTargetGoneError';
  }
}

interface ReadWaiter {
  resolve: () => void;
  reject: (err: Error) => void;
  deadlineMs: number;
}

interface ReadRound {
  ctx: Buffer;
  waiters: ReadWaiter[];
  /** Read index granted by the leader; -1 until the ReadState arrives. */
  index: number;
  /** When the round was asked (ms): unanswered after half an election timeout, it is asked again. */
  askedAtMs: number;
  /** The leader this member knew when it asked: another one known since, the round is asked again at once. */
  askedLeaderId: NodeId;
  /** Its waiters were also put in a later round (once): whichever answers first serves them. */
  retried: boolean;
}

export interface GroupOptions {
  groupId: number;
  /** The group's membership at index 0 (before its first entry), used when nothing persisted says otherwise. */
  voters: NodeId[];
  learners?: NodeId[];
  stateMachine: GroupStateMachine;
  loaded: LoadedGroup;
  randomSeed: number;
}

class RaftGroup {
  readonly groupId: number;
  readonly node: RawNode;
  readonly sm: GroupStateMachine;
  applied: number;
  /** Applied index whose state-machine changes have been queued into the member's batch. */
  appliedQueued: number;
  /** Applied index written to LevelDB with its state-machine changes (a restart resumes here). */
  appliedPersisted: number;
  persistedLastIndex: number;
  /** Term and vote last written: only a change of these (or new entries) needs an fsync. */
  persistedTerm: number;
  persistedVote: NodeId;
  leaderId: NodeId = 0;
  role: Role = 'follower';
  /** Reads waiting to join the next ReadIndex round (batched: one round per turn). */
  queuedReads: ReadWaiter[] = [];
  readRounds = new Map<string, ReadRound>();
  /** waitApplied callers, until the group's applied index reaches theirs (checked after each apply). */
  appliedWaiters: Array<{ index: number; resolve(): void; reject(err: Error): void }> = [];
  /** Membership changed by an applied conf change and not yet persisted with the applied index. */
  confStateDirty = false;
  /** Snapshot points, oldest first: [compaction point, newest point] at most. */
  points: SnapshotPoint[] = [];
  /** A compaction point to persist in the next batch (after which older log entries are deleted). */
  pendingSnapshotMeta: SnapshotMeta | null = null;
  /** Received, verified snapshot files stepped into Raft, by index. */
  receivedSnapshots = new Map<number, string>();
  /** This member is a learner of the group (follows every applied membership change). */
  isLearner = false;
  /**
   * Takes the group's proposals in place of Raft while this member leads it (see
   * Member.interceptProposals): a sharded group's writes are stamped with oracle revisions first.
   */
  proposalInterceptor: ((data: Uint8Array) => void) | null = null;
  /** Told when a linearizable read of the group reaches this member as its leader (Member.onLeaderRead). */
  leaderReadListener: (() => void) | null = null;
  /** Member.removeGroup took it out: a turn that still holds it must not apply, install or take points. */
  removed = false;

  constructor(groupId: number, node: RawNode, sm: GroupStateMachine, applied: number, lastIndex: number, term: number, vote: NodeId) {
    this.groupId = groupId;
    this.persistedTerm = term;
    this.persistedVote = vote;
    this.node = node;
    this.sm = sm;
    this.applied = applied;
    this.appliedQueued = applied;
    this.appliedPersisted = applied;
    this.persistedLastIndex = lastIndex;
  }
}

/**
 * TEST-ONLY deliberate bugs. They exist only so the member simulation (server/member/sim) can prove
 * it would catch them; nothing outside server/member/sim may set one.
 *  - 'skip-leader-fsync': a member leading a group writes its turn's batch without sync;
 *  - 'no-write-barrier': a turn releases its Readies (sends, applies, advance: the leader's self-ack
 *    of its own append) before its batch is durable, and the next turn may start while the batch is
 *    still being written.
 */
export type UnsafeMutation = 'skip-leader-fsync' | 'no-write-barrier';

export interface MemberOptions {
  memberId: NodeId;
  db: MemberStore;
  tickMs: number;
  electionTimeoutTicks: number;
  heartbeatTicks: number;
  logger: Logger;
  /** Where received snapshot files rest until installed. */
  snapshotDir: string;
  /** Applied entries between snapshot points (etcd's --snapshot-count). */
  snapshotCount: number;
  /** Replication flow control (default DEFAULT_REPLICATION_LIMITS); the transport's frame budget derives from the same. */
  replicationLimits?: ReplicationLimits;
  /** Called when the loop fails (a failed write, a broken Raft invariant); default: log and exit(70). */
  onFatal?: (err: unknown) => void;
  /** TEST-ONLY: see UnsafeMutation. Never set in production. */
  unsafeMutation?: UnsafeMutation;
  /**
   * Quiesce idle groups and send member-level liveness instead of their heartbeats (see the header).
   * Default false: one group keeps exactly today's traffic; a member hosting many shards sets it.
   */
  quiesce?: boolean;
  /**
   * Answer linearizable reads on a leader lease instead of a heartbeat round each (default true; see
   * LeaseReads in server/raft/types.ts and lease-reads.ts). False: every read waits for a round.
   */
  leaseReads?: boolean;
}

export interface GroupStatus {
  groupId: number;
  term: number;
  leaderId: NodeId;
  role: Role;
  commit: number;
  applied: number;
  lastIndex: number;
  firstIndex: number;
  snapshotIndex: number;
}

/**
 * Which messages of a Ready whose term and vote were already durable may leave before this turn's
 * fsync: a leader's appends and heartbeats (it counts its own copy only once durable); from anyone,
 * the answers that confirm a term and nothing written this turn, and the requests a follower passes
 * on to its leader (a proposal or a ReadIndex, sent at term 0: they promise nothing).
 */
function sendsBeforeSync(type: Message['type'], leading: boolean): boolean {
  if (type === 'heartbeatResp' || type === 'readIndexResp' || type === 'prop' || type === 'readIndex') return true;
  return leading && (type === 'app' || type === 'heartbeat');
}

export class Member {
  private readonly opts: MemberOptions;
  private readonly groups = new Map<number, RaftGroup>();
  private sink: MessageSink | null = null;
  private turnScheduled = false;
  /** scheduleAtOnce's pass is due; `readRoundsWanted`: it also starts followers' read rounds. */
  private atOnceScheduled = false;
  private readRoundsWanted = false;
  /**
   * The loop's async context: the one the member was created in. A turn is often scheduled from a
   * client request (a proposal), and must not run in that request's context: everything the turn
   * starts (applies, listeners, their timers) would otherwise inherit request-scoped state such as
   * the caller an entry is proposed for.
   */
  private readonly loopScope = new AsyncResource('synod-member-loop');
  /**
   * When a message from each peer was last stepped (any group; performance.now()): who is "started" for
   * membership checks, and who is live for quiescence.
   */
  private readonly lastHeardMs = new Map<NodeId, number>();
  /** Quiescence: peers sent anything since the last liveness round (they need no liveness message). */
  private readonly sentSinceLiveness = new Set<NodeId>();
  private ticksSinceLiveness = 0;
  /**
   * When this member started ticking (performance.now(): liveness is measured on a clock that never
   * jumps): a peer never heard from counts as heard from then.
   */
  private startedMs = performance.now();
  /** See takeLeaderGapMaxMs. */
  private leaderGapMaxMs = 0;
  /** See declineLeadershipHandovers (performance.now() ms). */
  private declineHandoversUntilMs = 0;
  /** See takeBatchWriteMaxMs. */
  private batchWriteMaxMs = 0;
  /** The batch write in flight: when it started, and whether it makes a term or vote durable (see tick). */
  private writeInFlight: { sinceMs: number; termOrVote: boolean } | null = null;
  private writing = false;
  /**
   * Writes that need no fsync and that nothing waits on: state-machine changes with their applied
   * index, and commit-only hard states. They are held here and written with the next batch that
   * must be written anyway (entries, a term or vote change, membership, a snapshot point), or
   * after LAZY_FLUSH_MS without one. Losing them in a crash costs nothing: a restart resumes from
   * the persisted applied index, replays the durable Raft log from there (the log is compacted
   * only up to a snapshot point, which is taken only when the database holds exactly the applied
   * state), and learns the commit index from the leader.
   */
  private pending = new TurnBatch();
  private readonly entryArena = new ByteArena();
  private flushDue = false;
  private flushTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private started = false;
  /** Turns running now (a turn awaits its write and installs): what removeGroup waits out. */
  private readonly turnsInFlight = new Set<Promise<void>>();
  /** Removals under way, by group: such a group cannot be added again until its data is gone, and stop() waits for them. */
  private readonly removing = new Map<number, Promise<void>>();
  /** Quiescence counts of groups removed since start: the totals never go down (quiescenceCounts). */
  private readonly removedQuiescence = { quiesced: 0, woken: 0 };
  /** Reads the groups removed from here had answered on their leases (readsOnLease). */
  private removedReadsOnLease = 0;
  /** Intercepted groups removed lately: the leader each had here, and until when proposals are passed to it. */
  private readonly formerLeaders = new Map<number, { leaderId: NodeId; untilMs: number }>();
  private tickTimer: NodeJS.Timeout | null = null;
  private readSeq = 0;
  private readonly leaderListeners: Array<(groupId: number, leaderId: NodeId, term: number) => void> = [];
  /** Counters for /metrics. */
  readonly stats = {
    turns: 0,
    readIndexRetries: 0,
    syncedBatches: 0,
    entriesPersisted: 0,
    entriesApplied: 0,
    messagesSent: 0,
    /** Proposals and read requests a follower passed on, and read answers a leader gave on its lease, outside turns. */
    messagesSentAtOnce: 0,
    /** Answers to this member's read rounds taken as they arrived, outside turns. */
    readAnswersTakenOnArrival: 0,
    leaderChanges: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
    snapshotsSent: 0,
    livenessSent: 0,
    livenessWakes: 0,
    /** Forwarded shard proposals: routed again after a pause (no leader known), passed on for a removed group, dropped. */
    forwardedProposalRetries: 0,
    forwardedProposalsPassedOn: 0,
    forwardedProposalsDropped: 0,
    /** Proposal attempts refused (LeaderUnreachableError) because this member's stream to the leader had not come up yet. */
    proposalsToUnreachableLeader: 0,
  };
  private readonly removedListeners: Array<(groupId: number) => void> = [];
  private readonly confListeners: Array<(groupId: number, confState: ConfState) => void> = [];

  constructor(opts: MemberOptions) {
    this.opts = opts;
    const durationMs = leaseDurationMs(opts.tickMs, opts.electionTimeoutTicks);
    // performance.now(): monotonic (the member simulation's clock stands in for it).
    this.leaseReads = opts.leaseReads === false || durationMs === null ? null : { nowMs: () => performance.now(), durationMs };
  }

  /** What every group's Raft core gets as RaftConfig.leaseReads (null: off). */
  private readonly leaseReads: LeaseReads | null;

  get memberId(): NodeId {
    return this.opts.memberId;
  }

  setSink(sink: MessageSink): void {
    this.sink = sink;
  }

  onLeaderChange(listener: (groupId: number, leaderId: NodeId, term: number) => void): void {
    this.leaderListeners.push(listener);
  }

  /**
   * Called when this member applies its own removal from a group. Removal from the cluster group
   * (CLUSTER_GROUP_ID) means the member left the cluster (see onClusterRemoval); removal from any
   * other group (a shard replica moved elsewhere) only ends that replica: the member keeps running,
   * and whoever hosts the group here decides when to call removeGroup. Not a signal to drop a shard
   * replica on its own: a replica that returned to this member replays its predecessor's removal from
   * the log before its own addition (and a removed replica may never apply its removal at all).
   */
  onRemoved(listener: (groupId: number) => void): void {
    this.removedListeners.push(listener);
  }

  /**
   * Called when this member applies its own removal from the cluster group: the member is out of the
   * cluster and its process stops (server/cli/start-server.ts). Never called for other groups.
   */
  onClusterRemoval(listener: () => void): void {
    this.removedListeners.push((groupId) => {
      if (groupId === CLUSTER_GROUP_ID) listener();
    });
  }

  /** Called after every applied membership change. */
  onConfChange(listener: (groupId: number, confState: ConfState) => void): void {
    this.confListeners.push(listener);
  }

  /**
   * Finishes installing a received snapshot that a crash interrupted (its point is durable, the
   * state is not): run before the group's state machine is built. Returns the group as stored after.
   */
  static async recoverSnapshot(db: MemberStore, groupId: number, snapshotDir: string, loaded: LoadedGroup, logger: Logger): Promise<LoadedGroup> {
    const snap = loaded.snapshot;
    if (!snap || snap.index <= loaded.applied) return loaded;
    const file = path.join(snapshotDir, snapshotFileName(groupId, snap.index));
    logger.warn({ group: groupId, index: snap.index, applied: loaded.applied }, 'finishing an interrupted snapshot install');
    await installSnapshotRecords(db, groupId, snap, file);
    return db.loadGroup(groupId);
  }

  /**
   * Hosts a group, before or after start(). A replica created at runtime for a group that already runs
   * elsewhere (a learner being added) starts from `loaded = await db.loadGroup(groupId)` — empty, with
   * a dropped predecessor's term and vote if there was one — and, like every replica of the group, the
   * group's BOOTSTRAP voters (server/raft/README.md), not its current ones: if it catches up from the
   * log's start it replays every membership change from there (with the current voters it ended with a
   * wrong membership: the move simulation found it); if from the leader's snapshot, the snapshot's
   * membership replaces them. Refused while an earlier replica of the group is still being removed here
   * (await removeGroup, then load).
   */
  addGroup(g: GroupOptions): void {
    if (this.groups.has(g.groupId)) throw new Error(`group ${g.groupId} already hosted`);
    if (this.removing.has(g.groupId)) throw new Error(`group ${g.groupId} is still being removed from this member`);
    if (this.stopped) throw new MemberStoppedError('stopped');
    this.formerLeaders.delete(g.groupId);
    const { loaded } = g;
    // The log up to `applied` was left unread (too large to be worth holding, see
    // SKIP_APPLIED_LOG_ABOVE_BYTES): the log starts at a compaction point at `applied`, which the
    // database holds exactly; it is persisted below like any compaction point.
    const skipped = loaded.appliedLogSkipped;
    const startPoint: SnapshotMeta | undefined = skipped
      ? { index: skipped.index, term: skipped.term, confState: loaded.confState ?? loaded.snapshot?.confState ?? { voters: g.voters, learners: [] } }
      : loaded.snapshot;
    if (loaded.snapshot && loaded.snapshot.index > loaded.applied) {
      throw new Error(`group ${g.groupId}: snapshot ${loaded.snapshot.index} not installed (applied ${loaded.applied}); call recoverSnapshot first`);
    }
    const node = new RawNode(
      {
        id: this.opts.memberId,
        voters: g.voters,
        learners: g.learners ?? [],
        electionTimeoutTicks: this.opts.electionTimeoutTicks,
        heartbeatTicks: this.opts.heartbeatTicks,
        preVote: true,
        checkQuorum: true,
        ...(this.opts.replicationLimits ?? DEFAULT_REPLICATION_LIMITS),
        randomSeed: g.randomSeed,
        ...(this.opts.quiesce ? { quiesce: true } : {}),
        ...(this.leaseReads ? { leaseReads: this.leaseReads } : {}),
      },
      {
        hardState: loaded.hardState,
        entries: loaded.entries,
        firstIndex: loaded.firstIndex,
        applied: loaded.applied,
        ...(loaded.confState ? { confState: loaded.confState } : {}),
        ...(startPoint ? { snapshot: startPoint } : {}),
        ...(loaded.voteFloor ? { voteFloor: loaded.voteFloor } : {}),
      },
    );
    const lastIndex = loaded.entries.length > 0 ? loaded.entries[loaded.entries.length - 1].index : (startPoint?.index ?? 0);
    const group = new RaftGroup(g.groupId, node, g.stateMachine, loaded.applied, lastIndex, loaded.hardState.term, loaded.hardState.vote);
    group.isLearner = node.confState().learners.includes(this.opts.memberId);
    this.groups.set(g.groupId, group);
    // The stored state is exactly at `applied` now: that is the first snapshot point. The stored
    // compaction point (if older) has no data any more, so the log is compacted up to this one.
    if (loaded.applied > 0) {
      const point = this.takePoint(group);
      if (skipped) group.pendingSnapshotMeta = point.meta;
      else if (loaded.snapshot && loaded.snapshot.index < loaded.applied) {
        node.compact(point.meta.index, point.meta.confState);
        group.pendingSnapshotMeta = point.meta;
      }
    }
    // A group with this member as its only voter needs nobody's vote: lead at once instead of
    // waiting out an election timeout.
    if (g.voters.length === 1 && g.voters[0] === this.opts.memberId) node.campaign();
    // Added at runtime: the loop already ticks every hosted group; its first Ready is due now.
    if (this.started) this.scheduleTurn();
  }

  /**
   * Stops hosting a group while the member keeps running (a shard replica moved to another member).
   * Call it once this member's removal from the group is committed — this replica may never apply it
   * itself, since the leader stops contacting it — or for a replica never added to the group; never
   * for a voter still counted on (its data is gone). At once: the group gets no more ticks, steps or turns, its messages are
   * ignored, and every waiter on it — queued and in-flight reads, waitApplied callers, the state
   * machine's pending proposals (GroupStateMachine.failAll) — is rejected with GroupRemovedError. Then,
   * once every turn that still held the group is over (its batch written: nothing can re-create the
   * group's keys afterwards), its snapshot points are released and all its data — log, hard state,
   * applied index, membership, snapshot point, state records, snapshot files — is deleted, leaving a
   * tombstone of its last term and vote (MemberStore.dropGroup). Resolves once the deletion is durable.
   * The cluster group cannot be removed (this member leaving the cluster is onClusterRemoval's).
   */
  async removeGroup(groupId: number): Promise<void> {
    if (groupId === CLUSTER_GROUP_ID) throw new Error('the cluster group cannot be removed from a running member');
    if (this.stopped) throw new MemberStoppedError('stopped');
    const group = this.mustGroup(groupId);
    this.groups.delete(groupId);
    group.removed = true;
    const err = new GroupRemovedError(groupId, this.opts.memberId);
    for (const w of group.queuedReads) w.reject(err);
    group.queuedReads = [];
    for (const round of group.readRounds.values()) for (const w of round.waiters) w.reject(err);
    group.readRounds.clear();
    for (const w of group.appliedWaiters) w.reject(err);
    group.appliedWaiters = [];
    group.sm.failAll?.(err);
    if (group.proposalInterceptor !== null && group.leaderId !== 0 && group.leaderId !== this.opts.memberId) {
      this.formerLeaders.set(groupId, { leaderId: group.leaderId, untilMs: Date.now() + REMOVED_GROUP_FORWARD_MS });
    }
    group.proposalInterceptor = null;
    group.leaderReadListener = null;
    const counts = group.node.quiescenceCounts();
    this.removedQuiescence.quiesced += counts.quiesced;
    this.removedQuiescence.woken += counts.woken;
    this.removedReadsOnLease += group.node.readsOnLease();
    // Its lazily held writes (applied state, commit-only hard state) must never reach the disk.
    this.pending.dropGroup(groupId);
    // The term, vote and last log entry Raft holds now: never behind the persisted ones, and what only
    // an unwritten Ready holds was never acted on, so recording it is merely conservative.
    const { term, vote, lastIndex } = group.node.status();
    const lastTerm = group.node.termAt(lastIndex) ?? group.node.status().snapshot?.term ?? 0;
    const removal = (async () => {
      await Promise.allSettled([...this.turnsInFlight]);
      for (const p of group.points) await this.releasePoint(p);
      group.points = [];
      group.receivedSnapshots.clear();
      await this.opts.db.dropGroup(groupId, { term, vote, lastIndex, lastTerm });
      removeSnapshotFiles(this.opts.snapshotDir, groupId);
      this.opts.logger.info({ group: groupId, term, vote }, 'group removed from this member; its data is deleted');
    })();
    this.removing.set(groupId, removal);
    try {
      await removal;
    } finally {
      this.removing.delete(groupId);
    }
  }

  start(): void {
    this.started = true;
    this.startedMs = performance.now();
    this.tickTimer = setInterval(() => this.tick(), this.opts.tickMs);
    this.scheduleTurn();
  }

  /** Stops ticking and waits for the batch in flight, so nothing half-written is left behind. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    while (this.writing) await new Promise((r) => setTimeout(r, 5));
    await Promise.allSettled([...this.removing.values()]);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.pending.size > 0) {
      const batch = this.pending;
      this.pending = new TurnBatch();
      await this.opts.db.write(batch, true);
      for (const group of this.groups.values()) group.appliedPersisted = group.appliedQueued;
    }
    for (const group of this.groups.values()) {
      for (const w of group.queuedReads) w.reject(new MemberStoppedError('stopping'));
      for (const round of group.readRounds.values()) for (const w of round.waiters) w.reject(new MemberStoppedError('stopping'));
      for (const point of group.points) await this.releasePoint(point);
      group.points = [];
    }
  }

  /**
   * Longest time, in ms, between two messages stepped from the leader of a group this member follows,
   * since the previous call (which resets it). A follower starts an election after an election
   * timeout of silence, so this is the figure that must stay well below it (/metrics exports it).
   */
  takeLeaderGapMaxMs(): number {
    const max = this.leaderGapMaxMs;
    this.leaderGapMaxMs = 0;
    return max;
  }

  /** Longest batch write (with its fsync, if any) since the previous call, in ms: a turn waits for it. */
  takeBatchWriteMaxMs(): number {
    const max = this.batchWriteMaxMs;
    this.batchWriteMaxMs = 0;
    return max;
  }

  /** Steps messages from a peer into their groups. */
  step(messages: Array<{ groupId: number; message: Message }>): void {
    if (this.stopped) return;
    const nowMs = Date.now();
    // Who was heard when, on the monotonic clock: a wall clock stepped forward (NTP) must not make a live
    // leader look silent (a quiesced follower would then campaign and vote against it).
    const monoMs = performance.now();
    for (const { groupId, message } of messages) {
      if (groupId === LIVENESS_GROUP_ID) {
        this.lastHeardMs.set(message.from, monoMs);
        continue;
      }
      const group = this.groups.get(groupId);
      if (group && message.from === group.leaderId && group.role !== 'leader') {
        const gap = monoMs - (this.lastHeardMs.get(message.from) ?? monoMs);
        if (gap > this.leaderGapMaxMs) this.leaderGapMaxMs = gap;
      }
      this.lastHeardMs.set(message.from, monoMs);
      if (message.type === 'prop' && (group === undefined ? this.formerLeaders.has(groupId) : group.proposalInterceptor !== null)) {
        // Proposals a follower forwarded, for a shard: to the interceptor if this member leads, else on
        // towards the leader, never dropped merely because a leadership or a replica is moving.
        const untilMs = nowMs + FORWARDED_PROPOSAL_HOLD_MS;
        for (const e of message.entries) this.routeForwarded(groupId, e.data, message.from, untilMs);
        continue;
      }
      if (!group) continue; // a group this member no longer (or not yet) hosts
      // A declined handover: the leader's transfer runs out after an election timeout and it leads on.
      if (message.type === 'timeoutNow' && monoMs < this.declineHandoversUntilMs) continue;
      if (message.type === 'readIndex') {
        if (group.role === 'leader') group.leaderReadListener?.();
        if (this.answerReadOnLease(group, message)) continue;
      }
      if (message.type === 'readIndexResp' && this.takeReadAnswer(group, message)) continue;
      group.node.step(message);
    }
    this.scheduleTurn();
  }

  /**
   * For `durationMs`, this member takes no leadership handed over to it (it ignores Raft's TimeoutNow,
   * the leader's "campaign now"): it has just handed its own over because it is about to stop, and
   * the leader balancers of other members would hand them straight back. Elections are untouched: a
   * group whose leader fails may still elect this member, so no group loses a candidate it needs.
   */
  declineLeadershipHandovers(durationMs: number): void {
    this.declineHandoversUntilMs = performance.now() + durationMs;
  }

  /** One forwarded proposal for an intercepted group (or one removed lately): see forwarded-proposal.ts. */
  private routeForwarded(groupId: number, data: Uint8Array, from: NodeId, untilMs: number): void {
    if (this.stopped) return;
    const group = this.groups.get(groupId);
    const former = this.formerLeaders.get(groupId);
    const route = routeForwardedProposal({
      hosted: group !== undefined,
      role: group?.node.role() ?? 'follower',
      leaderId: group?.leaderId ?? 0,
      self: this.opts.memberId,
      from,
      formerLeaderId: former !== undefined && former.untilMs > Date.now() ? former.leaderId : 0,
      expired: Date.now() >= untilMs,
    });
    switch (route.kind) {
      case 'intercept':
        try {
          group!.proposalInterceptor?.(data);
        } catch (err) {
          // A peer's proposal this member could not take: its proposer answers its client at the deadline.
          // Never thrown on: this runs in the peer stream's handler, and would end the process.
          this.opts.logger.warn({ err, group: groupId, from }, 'forwarded proposal dropped: the shard could not take it');
        }
        return;
      case 'forward':
        try {
          this.proposeToRaft(group!, data);
          return;
        } catch {
          break; // Raft knows no leader after all (or too much is uncommitted): held below
        }
      case 'to-former-leader': {
        const m = newMessage('prop', this.opts.memberId, route.leaderId, 0);
        m.entries = [{ index: 0, term: 0, type: 'normal', data }];
        this.sendMessage(groupId, m);
        this.sink?.flush();
        this.stats.forwardedProposalsPassedOn++;
        return;
      }
      case 'hold':
        break;
      case 'drop':
        this.stats.forwardedProposalsDropped++;
        return;
    }
    this.stats.forwardedProposalRetries++;
    setTimeout(() => this.routeForwarded(groupId, data, from, untilMs), FORWARDED_PROPOSAL_RETRY_MS);
  }

  /** Proposes data to a group's log. Throws NoLeaderError at once when no leader is known. */
  /**
   * From now on, while this member leads `groupId`, every proposal for it — made here through
   * propose() or forwarded by a follower's Raft — goes to `interceptor` instead of Raft; the interceptor
   * proposes what it decides to through proposeDirect(). On followers proposals still go to Raft, which
   * forwards them to the leader, where they are intercepted; one that reaches a member not leading (any
   * more) is passed on or held there, not dropped (forwarded-proposal.ts). Used by sharded groups, whose
   * write entries must carry revisions only the shard's leader can assign.
   */
  interceptProposals(groupId: number, interceptor: (data: Uint8Array) => void): void {
    this.mustGroup(groupId).proposalInterceptor = interceptor;
  }

  /**
   * `listener` hears every linearizable read of `groupId` that reaches this member while it leads the
   * group — its own (readBarrier) and its followers' ReadIndex requests — before the read's index is
   * taken. A shard's leader proposes the transaction resolutions it holds back then (shard-write-path.ts):
   * the read waits for them, and should not wait for their timer.
   */
  onLeaderRead(groupId: number, listener: () => void): void {
    this.mustGroup(groupId).leaderReadListener = listener;
  }

  /** Proposes to Raft itself, past any interceptor (the interceptor's own proposals). */
  proposeDirect(groupId: number, data: Uint8Array): void {
    this.proposeToRaft(this.mustGroup(groupId), data);
  }

  propose(groupId: number, data: Uint8Array): void {
    const group = this.mustGroup(groupId);
    // Raft's own role, not group.role (updated at the next Ready): a leader elected in this turn must
    // not take an unstamped write into a sharded log.
    if (group.proposalInterceptor !== null && group.node.role() === 'leader') {
      group.proposalInterceptor(data);
      return;
    }
    this.proposeToRaft(group, data);
  }

  private proposeToRaft(group: RaftGroup, data: Uint8Array): void {
    if (group.leaderId === 0) throw new NoLeaderError();
    // A follower's proposal leaves on this member's stream to its leader, and while that stream has not
    // come up since this process started (its first dials failed while the others elected the leader it
    // now hears) the transport drops it: it reaches no log, no change of term ever decides it, and it is
    // not even fenced (the leader's hello, with its apply rules, has not come), so its client waited out
    // its deadline. Refused as with no leader, and proposed again by the caller's wait for a leader: it
    // was never sent. A stream that was up and went down (a leader killed) is left to the fence: the next
    // leader's term decides what was sent into it (refusing those too moved writes onto members that then
    // installed snapshots, which leaves their outcome unknown: docs/architecture.md).
    const leaderId = group.node.leaderId();
    if (leaderId !== this.opts.memberId && leaderId !== 0 && this.sink?.isConnected?.(leaderId) === false && this.sink.peerHasSaidHello?.(leaderId) === false) {
      this.stats.proposalsToUnreachableLeader++;
      throw new LeaderUnreachableError();
    }
    // A follower's Raft only passes a proposal on to its leader: sent now (followerPassingOnTo).
    const raftLeaderId = this.followerPassingOnTo(group);
    if (raftLeaderId !== 0) {
      const m = newMessage('prop', this.opts.memberId, raftLeaderId, 0);
      m.entries = [{ index: 0, term: 0, type: 'normal', data }];
      this.sendAtOnce(group.groupId, m);
      return;
    }
    try {
      group.node.propose(data);
    } catch (err) {
      if (err instanceof Error && err.name === 'UncommittedLimitError') throw new TooManyRequestsError();
      if (err instanceof Error && err.name === 'ProposalDroppedError') throw new NoLeaderError();
      throw err;
    }
    this.scheduleTurn();
  }

  /**
   * Proposes a membership change. Throws NoLeaderError without a leader; a ConfChangeInProgressError
   * from Raft (an earlier change is not applied yet) passes through for the caller to retry.
   */
  proposeConfChange(groupId: number, change: ConfChange): void {
    const group = this.mustGroup(groupId);
    if (group.leaderId === 0) throw new NoLeaderError();
    try {
      group.node.proposeConfChange(change);
    } catch (err) {
      if (err instanceof Error && err.name === 'UncommittedLimitError') throw new TooManyRequestsError();
      if (err instanceof Error && err.name === 'ProposalDroppedError') throw new NoLeaderError();
      throw err;
    }
    this.scheduleTurn();
  }

  /** Starts an election for the group now (pre-vote first): to place leaders, e.g. spread over members. */
  campaign(groupId: number): void {
    this.mustGroup(groupId).node.campaign();
    this.scheduleTurn();
  }

  /**
   * Whether an entry of the group's log after its applied index is a membership change naming `id`
   * (server/shard/replica-decisions.ts: a replica whose applied membership excludes it may be deleted
   * unless such an entry may add it back).
   */
  unappliedConfChangeNames(groupId: number, id: NodeId): boolean {
    const group = this.mustGroup(groupId);
    for (const entry of group.node.entries(group.applied + 1, group.node.status().lastIndex + 1)) {
      if (entry.type === 'confChange' && decodeConfChange(entry.data).nodeId === id) return true;
    }
    return false;
  }

  /** Leader only: is learner `id` caught up enough to be promoted (etcd's 90% rule)? */
  learnerReady(groupId: number, id: NodeId): boolean {
    return this.mustGroup(groupId).node.learnerReady(id);
  }

  /** The membership this member has applied. */
  confState(groupId: number): ConfState {
    return this.mustGroup(groupId).node.confState();
  }

  /** The group's current term, role and known leader: cheap reads for request paths (status() builds a snapshot). */
  term(groupId: number): number {
    return this.mustGroup(groupId).node.term();
  }

  /** The Raft core's role now (status().role), which the last handled Ready may not have reported yet. */
  role(groupId: number): RaftGroup['role'] {
    return this.mustGroup(groupId).node.role();
  }

  leaderId(groupId: number): NodeId {
    return this.mustGroup(groupId).leaderId;
  }

  /**
   * The term to fence a proposal made here now to (InternalRequest.proposal_term, proposal-fence.ts):
   * Raft's current term for the group, the term of the leader this member knows or of its own leadership.
   */
  proposalTerm(groupId: number): number {
    const group = this.mustGroup(groupId);
    return this.groupImplements(group, PROPOSAL_FENCE_RULES) ? group.node.term() : 0;
  }

  /**
   * Whether every member of the cluster said it implements apply rules `rules` (APPLY_RULES): then so
   * does every replica of every group, whose members are all the cluster group's.
   */
  clusterImplements(rules: number): boolean {
    return this.groupImplements(this.mustGroup(CLUSTER_GROUP_ID), rules);
  }

  /**
   * How far member `memberId`'s wall clock is ahead of this member's (ms; negative: behind), as its last
   * peer-stream hello said; 0 for this member, or one not heard from.
   */
  peerClockAheadMs(memberId: NodeId): number {
    if (memberId === this.opts.memberId) return 0;
    return this.sink?.peerClockAheadMs?.(memberId) ?? 0;
  }

  /**
   * Whether every other member of the cluster has said its hello since this process started: until then a
   * member's apply rules read as 0 though it may well be on this build (streams are still coming up).
   */
  heardFromEveryMember(): boolean {
    const sink = this.sink;
    if (sink?.peerHasSaidHello === undefined) return true;
    const group = this.mustGroup(CLUSTER_GROUP_ID);
    for (const ids of [group.node.voters(), group.node.learners()]) {
      for (const id of ids) if (id !== this.opts.memberId && !sink.peerHasSaidHello(id)) return false;
    }
    return true;
  }

  /** Whether every other member of the group said it implements apply rules `rules`. */
  private groupImplements(group: RaftGroup, rules: number): boolean {
    const sink = this.sink;
    if (sink?.peerApplyRules === undefined) return true;
    // On every write: Raft's own id lists, not confState()'s copies.
    for (const ids of [group.node.voters(), group.node.learners()]) {
      for (const id of ids) if (id !== this.opts.memberId && sink.peerApplyRules(id) < rules) return false;
    }
    return true;
  }

  /** Whether this member is a learner of the group (cheap: checked on every client request). */
  isLearner(groupId: number): boolean {
    return this.mustGroup(groupId).isLearner;
  }

  /** Leader only: ids of members it heard from within the last election timeout (itself included). */
  activeMembers(groupId: number): NodeId[] {
    const group = this.mustGroup(groupId);
    const progress = group.node.status().progress;
    if (!progress) return [];
    // Heard from within an election timeout, by any message (every live peer sends one at least every
    // heartbeat: Raft's answers, or liveness messages while groups are quiesced). Not Raft's recentActive:
    // check-quorum clears it for every follower once per election timeout (for a heartbeat after that every
    // healthy peer looked inactive), and a quiesced group never runs check-quorum, so there a member that
    // stopped stayed active for good and etcd's "not enough started members" check let removals through.
    return Object.keys(progress)
      .map(Number)
      .filter((id) => id === this.opts.memberId || this.heardRecently(id));
  }

  /** Whether any message came from member `id` within the last election timeout. */
  private heardRecently(id: NodeId): boolean {
    const sinceMs = performance.now() - this.opts.tickMs * this.opts.electionTimeoutTicks;
    return (this.lastHeardMs.get(id) ?? -Infinity) >= sinceMs;
  }

  /** How long since this member last heard from member `id`, in ms (null: never since it started). */
  silenceMs(id: NodeId): number | null {
    const heardMs = this.lastHeardMs.get(id);
    return heardMs === undefined ? null : Math.round(performance.now() - heardMs);
  }

  /**
   * Steps a 'snap' message whose snapshot file was received and verified at `filePath`. Raft may
   * ignore it (stale); if it accepts, the next Ready installs the file.
   */
  receiveSnapshot(groupId: number, message: Message, filePath: string): void {
    if (this.stopped) return;
    const group = this.groups.get(groupId);
    if (!group) {
      // Nobody will install it (a removed group, or one not hosted yet: its leader sends again).
      fs.rmSync(filePath, { force: true });
      return;
    }
    if (message.type !== 'snap' || !message.snapshot) return;
    group.receivedSnapshots.set(message.snapshot.index, filePath);
    group.node.step(message);
    this.scheduleTurn();
  }

  /** Leader: a snapshot transfer to `to` ended. */
  reportSnapshot(groupId: number, to: NodeId, status: 'finish' | 'failure'): void {
    const group = this.groups.get(groupId);
    if (!group) return;
    group.node.reportSnapshot(to, status);
    if (status === 'finish') this.stats.snapshotsSent++;
    this.scheduleTurn();
  }

  /** Sending to a peer failed: Raft stops pipelining to it until it answers again. */
  reportUnreachable(groupId: number, to: NodeId): void {
    this.groups.get(groupId)?.node.reportUnreachable(to);
  }

  /**
   * The bytes of the snapshot at `index` (the point a 'snap' message names), streamed from the
   * retained LevelDB snapshot. Throws SnapshotUnavailableError if that point is no longer retained
   * (the transfer fails and Raft retries with its newer point).
   */
  async *snapshotChunks(groupId: number, index: number): AsyncGenerator<Buffer> {
    const group = this.mustGroup(groupId);
    const point = group.points.find((p) => p.meta.index === index && !p.released);
    if (!point) throw new SnapshotUnavailableError(groupId, index);
    point.readers++;
    try {
      yield* encodeSnapshot({ groupId, ...point.meta }, this.opts.db.stateRecords(groupId, point.db));
    } finally {
      point.readers--;
      if (point.released && point.readers === 0) await point.db.close();
    }
  }

  /**
   * Resolves once this member's state machine reflects every write committed before the call
   * (ReadIndex). Reads queued in the same turn share one round of leader confirmation.
   */
  readBarrier(groupId: number, deadlineMs: number): Promise<void> {
    const group = this.mustGroup(groupId);
    if (group.leaderId === 0) return Promise.reject(new NoLeaderError());
    if (group.role === 'leader') group.leaderReadListener?.();
    // A leader whose lease serves answers now, as its next turn would (the same index, checked against
    // the clock at this moment): the read waits only for the apply, not for a turn and its write.
    const leaseIndex = this.stopped ? null : group.node.leaseReadIndex();
    if (leaseIndex !== null) return group.applied >= leaseIndex ? Promise.resolve() : this.waitApplied(groupId, leaseIndex, deadlineMs);
    return new Promise<void>((resolve, reject) => {
      group.queuedReads.push({ resolve, reject, deadlineMs });
      this.scheduleTurn();
      if (this.writing) {
        // Else the turn scheduled now starts the round.
        this.readRoundsWanted = true;
        this.scheduleAtOnce();
      }
    });
  }

  /**
   * Resolves once this member has applied the group's log through `index` (an index another replica
   * reported: the same entries, by log matching); rejects with DeadlineError at `deadlineMs`. A shard's
   * closed revision (server/shard/shard-closer.ts) waits here for the entries its leader applied.
   */
  waitApplied(groupId: number, index: number, deadlineMs: number): Promise<void> {
    const group = this.mustGroup(groupId);
    if (group.applied >= index) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        index,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        const i = group.appliedWaiters.indexOf(waiter);
        if (i >= 0) group.appliedWaiters.splice(i, 1);
        reject(new DeadlineError('applied index'));
      }, Math.max(0, deadlineMs - Date.now()));
      timer.unref();
      group.appliedWaiters.push(waiter);
    });
  }

  /** Settles the waitApplied callers the group's applied index has reached. */
  private settleAppliedWaiters(group: RaftGroup): void {
    if (group.appliedWaiters.length === 0) return;
    const still: RaftGroup['appliedWaiters'] = [];
    for (const w of group.appliedWaiters) {
      if (w.index <= group.applied) w.resolve();
      else still.push(w);
    }
    group.appliedWaiters = still;
  }

  /**
   * Moves a group's leadership to `targetId` (a voter that is caught up gets a TimeoutNow and wins the
   * next election at once). Resolves when the target leads; rejects on deadline.
   */
  async transferLeadership(groupId: number, targetId: NodeId, timeoutMs: number): Promise<void> {
    const group = this.mustGroup(groupId);
    if (group.role !== 'leader') throw new NotLeaderError();
    if (!group.node.voters().includes(targetId)) throw new BadTransfereeError();
    if (targetId === this.opts.memberId) return;
    group.node.transferLeader(targetId);
    this.scheduleTurn();
    const deadline = Date.now() + timeoutMs;
    let unreachableSinceMs: number | null = null;
    while (group.leaderId !== targetId) {
      const nowMs = Date.now();
      if (nowMs > deadline) throw new DeadlineError('leader transfer');
      // A target whose stream is down gets no TimeoutNow; one that stopped (a whole cluster stopping at
      // once) never will, and a stopping leader would wait out its deadline for it.
      if (this.sink?.isConnected?.(targetId) === false) {
        unreachableSinceMs ??= nowMs;
        if (nowMs - unreachableSinceMs >= TRANSFER_TARGET_GONE_MS) throw new TransferTargetGoneError(targetId);
      } else {
        unreachableSinceMs = null;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * The voter (other than this member) heard from recently, with its stream up, whose log matches the
   * leader's furthest, or 0.
   */
  bestTransferee(groupId: number): NodeId {
    const group = this.mustGroup(groupId);
    const progress = group.node.status().progress;
    if (!progress) return 0;
    let best: NodeId = 0;
    let bestMatch = -1;
    for (const id of group.node.voters()) {
      if (id === this.opts.memberId) continue;
      const p = progress[id];
      // Heard from, not Raft's recentActive: a quiesced group never clears it (activeMembers).
      if (p && this.heardRecently(id) && this.sink?.isConnected?.(id) !== false && p.match > bestMatch) {
        best = id;
        bestMatch = p.match;
      }
    }
    return best;
  }

  /** Times this member's groups quiesced and woke (any cause), summed over its groups, removed ones included. */
  quiescenceCounts(): { quiesced: number; woken: number } {
    let { quiesced, woken } = this.removedQuiescence;
    for (const group of this.groups.values()) {
      const c = group.node.quiescenceCounts();
      quiesced += c.quiesced;
      woken += c.woken;
    }
    return { quiesced, woken };
  }

  /** Linearizable reads this member's groups answered on a leader lease, removed ones included. */
  readsOnLease(): number {
    let n = this.removedReadsOnLease;
    for (const group of this.groups.values()) n += group.node.readsOnLease();
    return n;
  }

  /** Whether the group is quiescent here (idle, not ticking). */
  isQuiesced(groupId: number): boolean {
    return this.mustGroup(groupId).node.isQuiesced();
  }

  /**
   * Resolves once the database holds everything `groupId` had applied when asked: a batch held for a
   * lazy flush (see `pending`) is written now. What etcd's backend does before a snapshot (ForceCommit),
   * for a backup that must include every write this member has applied.
   */
  async persistApplied(groupId: number, deadlineMs: number): Promise<void> {
    const group = this.mustGroup(groupId);
    const target = group.applied;
    while (group.appliedPersisted < target && !group.removed) {
      if (Date.now() > deadlineMs) throw new Error(`group ${groupId}: applied state through ${target} not written by the deadline`);
      this.flushDue = true;
      this.scheduleTurn();
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  status(groupId: number): GroupStatus {
    const group = this.mustGroup(groupId);
    const s = group.node.status();
    return {
      groupId,
      term: s.term,
      leaderId: group.leaderId,
      role: group.role,
      commit: s.commit,
      applied: group.applied,
      lastIndex: s.lastIndex,
      firstIndex: s.firstIndex,
      snapshotIndex: s.snapshot?.index ?? 0,
    };
  }

  groupIds(): number[] {
    return [...this.groups.keys()];
  }

  /** Whether this member hosts group `groupId` now (a removed replica's group is gone). */
  hostsGroup(groupId: number): boolean {
    return this.groups.has(groupId);
  }

  private mustGroup(groupId: number): RaftGroup {
    const group = this.groups.get(groupId);
    if (!group) throw new Error(`group ${groupId} is not hosted by member ${this.opts.memberId}`);
    return group;
  }

  private tick(): void {
    if (this.stopped) return;
    const nowMs = Date.now();
    const monoMs = performance.now();
    for (const group of this.groups.values()) {
      // A silent leader is also seen here, before an election replaces it (after which its late
      // messages no longer come from the leader and step() would not count the gap).
      if (group.leaderId !== 0 && group.role !== 'leader') {
        const silence = monoMs - (this.lastHeardMs.get(group.leaderId) ?? monoMs);
        if (silence > this.leaderGapMaxMs) this.leaderGapMaxMs = silence;
      }
      group.node.tick();
      if (group.queuedReads.length > 0 || group.readRounds.size > 0) this.expireReads(group, nowMs);
    }
    if (monoMs - this.startedMs < FRESH_ELECTION_WINDOW_MS) this.advanceFreshElections();
    if (this.opts.quiesce) this.livenessTick(monoMs);
    const inFlight = this.writeInFlight;
    if (inFlight && !inFlight.termOrVote && performance.now() - inFlight.sinceMs >= this.opts.tickMs * this.opts.heartbeatTicks) {
      this.heartbeatDuringWrite();
    }
    this.scheduleTurn();
  }

  /**
   * A new cluster's first elections, sooner: once every member has said its hello, each group this member
   * hosts that never had a term moves its election timer near the timeout (Raft.advanceFreshElection,
   * once per replica). Restarted replicas are not moved: they have terms, and they refuse votes for an
   * election timeout after a restart anyway (lease reads), so a restarted cluster gains nothing from it.
   */
  private advanceFreshElections(): void {
    if (!this.groups.has(CLUSTER_GROUP_ID) || !this.heardFromEveryMember()) return;
    const advanced: number[] = [];
    for (const group of this.groups.values()) if (group.node.advanceFreshElection()) advanced.push(group.groupId);
    if (advanced.length > 0) this.opts.logger.info({ groups: advanced.length, groupIds: advanced }, 'new groups, every member up: election timers advanced');
  }

  /**
   * Quiescence, once per tick: wakes quiesced groups whose members went silent (liveness-wake.ts), and
   * once per heartbeat interval sends each peer a liveness message unless something else went to it.
   */
  private livenessTick(nowMs: number /* performance.now() */): void {
    const electionTimeoutMs = this.opts.tickMs * this.opts.electionTimeoutTicks;
    const isLive = (id: NodeId): boolean => nowMs - (this.lastHeardMs.get(id) ?? this.startedMs) <= electionTimeoutMs;
    for (const group of this.groups.values()) {
      if (!group.node.isQuiesced()) continue;
      if (wakeIfPeersSilent(group.node, this.opts.memberId, isLive) !== 'none') {
        this.stats.livenessWakes++;
        this.opts.logger.debug({ group: group.groupId, leader: group.leaderId }, 'quiesced group woken: members silent');
      }
    }
    if (++this.ticksSinceLiveness < this.opts.heartbeatTicks) return;
    this.ticksSinceLiveness = 0;
    const sink = this.sink;
    if (!sink) return;
    const peers = new Set<NodeId>();
    for (const group of this.groups.values()) {
      const cs = group.node.confState();
      for (const id of cs.voters) peers.add(id);
      for (const id of cs.learners) peers.add(id);
    }
    peers.delete(this.opts.memberId);
    let sent = false;
    for (const to of peers) {
      if (this.sentSinceLiveness.has(to)) continue;
      sink.send(LIVENESS_GROUP_ID, newMessage('heartbeat', this.opts.memberId, to, 0));
      this.stats.livenessSent++;
      sent = true;
    }
    this.sentSinceLiveness.clear();
    if (sent) sink.flush();
  }

  /** Every Raft message leaves through here: with quiescence on, it also counts as liveness to its peer. */
  private sendMessage(groupId: number, m: Message): void {
    this.sink?.send(groupId, m);
    if (this.opts.quiesce) this.sentSinceLiveness.add(m.to);
  }

  /**
   * A turn waits for its batch write, and so do the heartbeats Raft queues meanwhile (they leave with
   * the next Ready). A slow fsync — a busy shared disk, LevelDB compacting behind a 1 GiB fill — then
   * silenced the leader for up to 1.9 s while its event loop was idle. So while a write has been in
   * flight for a heartbeat interval, a leader sends each follower the heartbeat Raft would send
   * (bcastHeartbeat: the commit index capped at the follower's match, no read context) at once; the
   * next Ready repeats it, which is harmless. Not while the write makes a term or vote durable: nothing
   * of a term may leave before the term is on disk.
   */
  private heartbeatDuringWrite(): void {
    if (!this.sink) return;
    let sent = false;
    for (const group of this.groups.values()) {
      // A quiesced leader sends nothing: a heartbeat would wake its quiesced followers.
      if (group.node.role() !== 'leader' || group.node.isQuiesced()) continue;
      const s = group.node.status();
      if (!s.progress || s.term !== group.persistedTerm) continue;
      for (const [id, p] of Object.entries(s.progress)) {
        const to = Number(id);
        if (to === this.opts.memberId) continue;
        this.sendMessage(group.groupId, {
          type: 'heartbeat',
          from: this.opts.memberId,
          to,
          term: s.term,
          logTerm: 0,
          index: 0,
          entries: [],
          commit: Math.min(p.match, s.commit),
          reject: false,
          rejectHint: 0,
          context: new Uint8Array(0),
        });
        sent = true;
      }
    }
    if (sent) this.sink.flush();
  }

  private expireReads(group: RaftGroup, nowMs: number): void {
    const expired = (w: ReadWaiter): boolean => {
      if (w.deadlineMs > nowMs) return false;
      w.reject(new DeadlineError('read index'));
      return true;
    };
    group.queuedReads = group.queuedReads.filter((w) => !expired(w));
    // A round the leader never answers — it lost leadership (a transfer, an election) and dropped its
    // pending reads, or the request or answer was lost — is asked again, as etcd's read loop does every
    // 500 ms: its waiters also join the next turn's round, whose answer is as good for them (it started
    // after they arrived). The old round stays: on a loaded leader that is merely slow, its late answer
    // still serves them (settling a waiter twice is a no-op), so a retry never makes a read slower.
    // A round whose leader has been replaced is asked again as soon as the new one is known (etcd's read
    // loop retries on its leader-changed notice): its old leader dropped it, and waiting out half an
    // election timeout took a read through repeated transfers past the API's one-second wait for a leader.
    const retryAfterMs = (this.opts.tickMs * this.opts.electionTimeoutTicks) / 2;
    for (const [key, round] of group.readRounds) {
      round.waiters = round.waiters.filter((w) => !expired(w));
      const leaderReplaced = group.leaderId !== 0 && group.leaderId !== round.askedLeaderId;
      if (!round.retried && round.waiters.length > 0 && round.index < 0 && (leaderReplaced || nowMs - round.askedAtMs >= retryAfterMs)) {
        group.queuedReads.push(...round.waiters);
        round.retried = true;
        this.stats.readIndexRetries++;
      }
      if (round.waiters.length === 0) group.readRounds.delete(key);
    }
  }

  /**
   * The leader an awake follower's Raft would pass a proposal or a read request on to, unchanged
   * (stepFollower), or 0 when the request must go through Raft itself: a member that leads or
   * campaigns, knows no leader, or is quiesced (Raft wakes on the request). Such requests are sent
   * at once rather than with the next turn's Ready, which starts only once the write of the turn in
   * progress is on disk: they depend on nothing this member writes (sendsBeforeSync).
   */
  private followerPassingOnTo(group: RaftGroup): NodeId {
    if (this.sink === null || group.node.role() !== 'follower' || group.node.isQuiesced()) return 0;
    const leaderId = group.node.leaderId();
    return leaderId === this.opts.memberId ? 0 : leaderId;
  }

  /**
   * A leader whose lease serves answers a follower's read request as it receives it, with the index
   * its Raft would answer (Raft.leaseReadIndex), instead of with the next turn's Ready. True when
   * answered; otherwise the request goes to Raft.
   */
  private answerReadOnLease(group: RaftGroup, m: Message): boolean {
    if (this.sink === null || group.node.role() !== 'leader' || group.node.term() !== group.persistedTerm) return false;
    const index = group.node.leaseReadIndex();
    if (index === null) return false;
    const resp = newMessage('readIndexResp', this.opts.memberId, m.from, group.node.term());
    resp.index = index;
    resp.context = m.context;
    this.sendAtOnce(group.groupId, resp);
    return true;
  }

  /**
   * A follower's answer to one of its read rounds, taken as it arrives rather than from the next turn's
   * Ready: what its Raft would do with it (stepFollower: a ReadState, in the same term only) and what
   * that turn would then do (applyReady). True when taken; otherwise the answer goes to Raft.
   */
  private takeReadAnswer(group: RaftGroup, m: Message): boolean {
    if (group.node.role() !== 'follower' || group.node.isQuiesced() || m.term !== group.node.term()) return false;
    const key = Buffer.from(m.context).toString('hex');
    const round = group.readRounds.get(key);
    if (round === undefined) return false;
    round.index = m.index;
    this.stats.readAnswersTakenOnArrival++;
    this.settleReadRounds(group);
    return true;
  }

  /** Answers the read rounds whose index the group has applied. */
  private settleReadRounds(group: RaftGroup): void {
    for (const [key, round] of group.readRounds) {
      if (round.index >= 0 && round.index <= group.applied) {
        group.readRounds.delete(key);
        for (const w of round.waiters) w.resolve();
      }
    }
  }

  /** A message sent outside a turn (followerPassingOnTo, answerReadOnLease), flushed with this loop iteration's others. */
  private sendAtOnce(groupId: number, m: Message): void {
    this.sendMessage(groupId, m);
    this.stats.messagesSent++;
    this.stats.messagesSentAtOnce++;
    this.scheduleAtOnce();
  }

  /**
   * At the end of this loop iteration, once its handlers have added theirs: a follower's queued reads
   * start their round (when `readRoundsWanted`), then every message sent outside a turn leaves.
   */
  private scheduleAtOnce(): void {
    if (this.atOnceScheduled) return;
    this.atOnceScheduled = true;
    setImmediate(() => {
      try {
        if (this.readRoundsWanted && !this.stopped) {
          this.readRoundsWanted = false;
          for (const group of this.groups.values()) {
            if (group.queuedReads.length > 0 && this.followerPassingOnTo(group) !== 0) this.startReadRounds(group);
          }
        }
        this.sink?.flush();
      } finally {
        this.atOnceScheduled = false; // after the flush: what the read rounds sent left with it
      }
    });
  }

  private scheduleTurn(): void {
    if (this.turnScheduled || this.writing || this.stopped) return;
    this.turnScheduled = true;
    setImmediate(this.startTurn);
  }

  /** The turn callback, bound to the loop's scope once: binding per turn cost ~80 µs a put at c=1. */
  private readonly startTurn = this.loopScope.bind(() => {
    this.turnScheduled = false;
    // Registered before the turn runs: a removal started from inside it (an onRemoved listener) must
    // wait for it too.
    let turnOver!: () => void;
    const turn = new Promise<void>((resolve) => (turnOver = resolve));
    this.turnsInFlight.add(turn);
    this.runTurn().catch((err: unknown) => {
      // A failed disk write or a broken Raft invariant: continuing could acknowledge what is not
      // durable, so the process stops here.
      if (this.opts.onFatal) {
        this.stopped = true;
        this.opts.onFatal(err);
        return;
      }
      this.opts.logger.fatal({ err }, 'member loop failed; exiting');
      process.exit(70);
    }).finally(() => {
      this.turnsInFlight.delete(turn);
      turnOver();
    });
  });

  private startReadRounds(group: RaftGroup): void {
    if (group.queuedReads.length === 0) return;
    const waiters = group.queuedReads;
    group.queuedReads = [];
    const ctx = Buffer.allocUnsafe(8);
    ctx.writeBigUInt64BE(BigInt(++this.readSeq), 0);
    const to = this.followerPassingOnTo(group);
    if (to !== 0) {
      // What the follower's Raft would send (stepFollower): the request as it is, to the leader.
      const m = newMessage('readIndex', this.opts.memberId, to, 0);
      m.context = ctx;
      this.sendAtOnce(group.groupId, m);
    } else {
      try {
        group.node.readIndex(ctx);
      } catch {
        for (const w of waiters) w.reject(new NoLeaderError());
        return;
      }
    }
    group.readRounds.set(ctx.toString('hex'), { ctx, waiters, index: -1, askedAtMs: Date.now(), askedLeaderId: group.leaderId, retried: false });
  }

  /**
   * One turn of the loop: every group's Ready gathered into one batch, the messages that may leave
   * before the fsync sent, the batch written (synced when it holds anything Raft must not lose), and
   * the Readies handled — before the write when the turn needs no fsync, after it otherwise. Turns never
   * overlap (`writing`), so batches reach the disk in order.
   */
  private async runTurn(): Promise<void> {
    if (this.stopped) return;
    this.writing = true;
    this.stats.turns++;
    const batch = this.pending;
    const turn = this.gatherReadies(batch);
    this.sendBeforeSync(turn.earlyReadies);
    // A snapshot point needs the database to hold exactly the applied state: write everything now
    // and apply nothing of this turn before the point is taken.
    let pointDue = false;
    for (const group of this.groups.values()) if (this.snapshotPointDue(group)) pointDue = true;
    const writeNow = turn.needsSync || turn.mustWrite || pointDue || this.flushDue || batch.size >= LAZY_FLUSH_OPS;
    if (!writeNow && batch.size > 0) this.armLazyFlush();
    // A turn that needs no fsync (no entries, no term, vote or membership change, no snapshot)
    // holds nothing its messages or applies depend on: its committed entries were made durable by
    // earlier turns. It is handled before its batch is written, so answers leave without waiting
    // on the disk; the batch is still awaited before the next turn, keeping writes in order.
    const handleFirst =
      (!turn.needsSync && !pointDue) || (this.opts.unsafeMutation === 'no-write-barrier' && !turn.readies.some(([, r]) => r.snapshot));
    if (handleFirst) {
      // Every group's messages first, in one flush (one frame per peer for all groups: heartbeat
      // responses of many groups travel together), then the applies.
      for (const [group, ready] of turn.readies) this.sendReady(group, ready);
      this.sink?.flush();
      for (const [group, ready] of turn.readies) this.applyReady(group, ready);
    }
    // Applied state alone need not be synced: LevelDB's log is written in order, so the next synced
    // batch makes it durable too, and until then the Raft log replays it.
    if (writeNow && batch.size > 0) await this.writeTurnBatch(batch, turn);
    const compactions = this.takeDuePoints(turn.readies);
    if (!handleFirst) await this.handleReadiesAfterWrite(turn.readies);
    for (const [group, point] of compactions) if (!group.removed) this.compactTo(group, point);
    this.sink?.flush();
    this.writing = false;
    this.clearCompactedLogs(turn.compactedThrough);
    if (this.hasWorkForTurn()) this.scheduleTurn();
  }

  /**
   * A turn's first step: every group's applied state, snapshot point and Ready into `batch` (entries,
   * term and vote, a received snapshot replacing the log), and what the batch then needs.
   */
  private gatherReadies(batch: TurnBatch): GatheredTurn {
    const turn: GatheredTurn = { readies: [], earlyReadies: [], compactedThrough: [], needsSync: false, mustWrite: false, termOrVoteChanged: false };
    for (const group of this.groups.values()) {
      this.startReadRounds(group);
      this.queueAppliedState(group, batch, turn);
      if (!group.node.hasReady()) continue;
      const ready = group.node.ready();
      turn.readies.push([group, ready]);
      const leading = (ready.softState ? ready.softState.role : group.role) === 'leader';
      const termVoteDurable = ready.hardState === null || (ready.hardState.term === group.persistedTerm && ready.hardState.vote === group.persistedVote);
      if (termVoteDurable && ready.snapshot === null) turn.earlyReadies.push({ group, ready, leading });
      this.queueReady(group, ready, batch, turn);
    }
    return turn;
  }

  /** A group's state-machine writes, applied index, membership and compaction point, into `batch`. */
  private queueAppliedState(group: RaftGroup, batch: TurnBatch, turn: GatheredTurn): void {
    const smOps = group.sm.drainPersistOps();
    if (smOps.length > 0 || group.applied !== group.appliedQueued || group.confStateDirty) {
      batch.stateOps(group.groupId, smOps);
      batch.setApplied(group.groupId, group.applied);
      if (group.confStateDirty) {
        batch.setConfState(group.groupId, group.node.confState());
        group.confStateDirty = false;
        turn.needsSync = true;
      }
      group.appliedQueued = group.applied;
    }
    if (group.pendingSnapshotMeta) {
      turn.mustWrite = true; // the compacted entries are deleted once this is written
      batch.setSnapshotMeta(group.groupId, group.pendingSnapshotMeta);
      turn.compactedThrough.push([group, group.pendingSnapshotMeta.index]);
      group.pendingSnapshotMeta = null;
    }
  }

  /** What a Ready asks to be durable — a received snapshot, term and vote, entries — into `batch`. */
  private queueReady(group: RaftGroup, ready: Ready, batch: TurnBatch, turn: GatheredTurn): void {
    if (ready.snapshot) {
      // The received snapshot replaces the whole log: its point becomes the log's start, and any
      // stored entry after it belongs to the discarded log.
      if (!group.receivedSnapshots.has(ready.snapshot.index)) {
        throw new Error(`group ${group.groupId}: Raft installs snapshot ${ready.snapshot.index} that was never received`);
      }
      batch.setSnapshotMeta(group.groupId, ready.snapshot);
      batch.deleteLogRange(group.groupId, ready.snapshot.index + 1, group.persistedLastIndex);
      group.persistedLastIndex = ready.snapshot.index;
      turn.needsSync = true;
    }
    if (ready.hardState) {
      batch.setHardState(group.groupId, ready.hardState);
      // etcd's raft.MustSync: a HardState whose only change is the commit index rides along
      // unsynced. A member that loses it in a crash learns the commit index again from the
      // leader; the applied index is written in a later batch than the commit that allowed
      // it, and LevelDB's log only ever loses a suffix, so applied never outruns commit.
      const hs = ready.hardState;
      if (hs.term !== group.persistedTerm || hs.vote !== group.persistedVote) {
        group.persistedTerm = hs.term;
        group.persistedVote = hs.vote;
        turn.needsSync = true;
        turn.termOrVoteChanged = true;
      }
    }
    if (ready.entries.length > 0) {
      // These entry objects are the ones the Raft log keeps until compaction: give them payloads
      // that pin no larger buffer (see byte-arena.ts).
      for (const e of ready.entries) e.data = this.entryArena.copy(e.data);
      group.persistedLastIndex = batch.appendEntries(group.groupId, ready.entries, group.persistedLastIndex);
      this.stats.entriesPersisted += ready.entries.length;
      turn.needsSync = true;
    }
  }

  /**
   * The messages of `earlyReadies` that may leave before this turn's fsync, sent now (and taken out of
   * their Readies).
   *
   * A leader's appends and heartbeats leave BEFORE its own fsync (Raft thesis §10.2.1; etcd's
   * leader does the same), so the followers' disk writes overlap the leader's. This is safe
   * because the Raft core counts the leader's own copy toward commit only when advance() says
   * the batch holding it is durable (Raft.selfAck): until then a commit needs a quorum of other
   * members, who ack only after their own sync. Only a leader whose term and vote are already
   * durable sends early; every other message still waits for the batch.
   *
   * Answers that only confirm a term — heartbeat responses, and ReadIndex answers — also leave
   * early, from any member whose term and vote were durable before this turn: they promise
   * nothing about this turn's entries, and the term they carry is already on disk; so do the
   * proposals and ReadIndex requests a follower passes on to its leader. Otherwise
   * every ReadIndex round (a linearizable read, a shard's revision batch at the metadata leader)
   * waited out a follower's fsync of unrelated entries, which on a busy sharded member is nearly
   * every turn (docs/architecture.md, "Answers that leave before the fsync").
   */
  private sendBeforeSync(earlyReadies: GatheredTurn['earlyReadies']): void {
    if (!this.sink) return;
    let sentEarly = false;
    for (const { group, ready, leading } of earlyReadies) {
      const rest: Message[] = [];
      for (const m of ready.messages) {
        if (sendsBeforeSync(m.type, leading)) {
          this.sendMessage(group.groupId, m);
          this.stats.messagesSent++;
          sentEarly = true;
        } else rest.push(m);
      }
      ready.messages = rest;
    }
    if (sentEarly) this.sink.flush();
  }

  /** A batch that needs no fsync waits up to LAZY_FLUSH_MS for one to ride with (see Member.pending). */
  private armLazyFlush(): void {
    if (this.flushTimer !== null) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.flushDue = true;
      this.scheduleTurn();
    }, LAZY_FLUSH_MS);
  }

  /** Writes the turn's batch (synced when the turn needs it); the next turn gathers into a fresh one. */
  private async writeTurnBatch(batch: TurnBatch, turn: GatheredTurn): Promise<void> {
    this.pending = new TurnBatch();
    this.flushDue = false;
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    // Pairs, not positions: a group added or removed while the batch is written must not shift them.
    const queued = [...this.groups.values()].map((g) => [g, g.appliedQueued] as const);
    let sync = turn.needsSync;
    if (this.opts.unsafeMutation === 'skip-leader-fsync' && turn.earlyReadies.some((r) => r.leading)) sync = false;
    if (this.opts.unsafeMutation === 'no-write-barrier') {
      this.writing = false;
      this.scheduleTurn();
    }
    const writeStartMs = performance.now();
    this.writeInFlight = { sinceMs: writeStartMs, termOrVote: turn.termOrVoteChanged };
    try {
      await this.opts.db.write(batch, sync);
    } finally {
      this.writeInFlight = null;
    }
    this.batchWriteMaxMs = Math.max(this.batchWriteMaxMs, performance.now() - writeStartMs);
    if (turn.needsSync) this.stats.syncedBatches++;
    for (const [group, appliedQueued] of queued) group.appliedPersisted = appliedQueued;
  }

  /**
   * Snapshot points for the groups that are due one, taken now that the database holds exactly each
   * group's applied state; the previous point of each is what its log may then be compacted to.
   */
  private takeDuePoints(readies: Array<[RaftGroup, Ready]>): Array<[RaftGroup, SnapshotPoint]> {
    const compactions: Array<[RaftGroup, SnapshotPoint]> = [];
    const installing = new Set(readies.filter(([, ready]) => ready.snapshot !== null).map(([group]) => group));
    for (const group of this.groups.values()) {
      if (installing.has(group)) continue; // its database is about to be replaced
      if (this.snapshotPointDue(group) && group.appliedPersisted === group.applied && !this.snapshotArrivedPastApplied(group)) {
        const previous = group.points.at(-1);
        this.takePoint(group);
        if (previous) compactions.push([group, previous]);
      }
    }
    return compactions;
  }

  /**
   * The Readies of a turn that needed its fsync, handled once it is written: as in runTurn, one flush for
   * every group's messages, except that a Ready installing a snapshot sends (its acknowledgement) only
   * once the snapshot is installed. A group removed while the batch was written (or while a snapshot
   * installed) is left alone: its replica is gone, and what it would send or apply no longer matters.
   */
  private async handleReadiesAfterWrite(readies: Array<[RaftGroup, Ready]>): Promise<void> {
    for (const [group, ready] of readies) if (!ready.snapshot && !group.removed) this.sendReady(group, ready);
    this.sink?.flush();
    for (const [group, ready] of readies) {
      if (group.removed) continue;
      if (ready.snapshot) {
        await this.installReceivedSnapshot(group, ready.snapshot);
        if (group.removed) continue;
        this.sendReady(group, ready);
        this.sink?.flush();
      }
      this.applyReady(group, ready);
    }
  }

  /** Deletes the log entries that the compactions now on disk made unneeded (not awaited). */
  private clearCompactedLogs(compactedThrough: Array<[RaftGroup, number]>): void {
    for (const [group, index] of compactedThrough) {
      if (group.removed) continue;
      this.opts.db.clearLogThrough(group.groupId, index).catch((err: unknown) => {
        this.opts.logger.warn({ err, group: group.groupId }, 'deleting compacted log entries failed; retried at the next compaction');
      });
    }
  }

  /** Whether a group has something for another turn: a Ready, reads to start, state or a compaction to write. */
  private hasWorkForTurn(): boolean {
    for (const group of this.groups.values()) {
      if (group.node.hasReady() || group.queuedReads.length > 0 || group.applied !== group.appliedQueued || group.pendingSnapshotMeta) return true;
    }
    return false;
  }

  /** Whether `snapshotCount` entries were applied since the group's newest snapshot point. */
  private snapshotPointDue(group: RaftGroup): boolean {
    const newest = group.points.at(-1);
    return group.applied > 0 && group.applied - (newest?.meta.index ?? 0) >= this.opts.snapshotCount;
  }

  /**
   * Whether Raft took a leader's snapshot past the applied index while this turn's batch was written (a
   * message stepped meanwhile): its log then starts above the applied index, which has no term there any
   * more, and the next turn's Ready installs the snapshot. No point is taken before that.
   */
  private snapshotArrivedPastApplied(group: RaftGroup): boolean {
    return (group.node.status().snapshot?.index ?? 0) > group.applied;
  }

  /** A snapshot point at the group's applied index; the caller guarantees the database is exactly there. */
  private takePoint(group: RaftGroup, knownTerm?: number): SnapshotPoint {
    const index = group.applied;
    const term = knownTerm ?? (index === group.node.status().snapshot?.index ? group.node.status().snapshot!.term : group.node.termAt(index));
    if (term === undefined) throw new Error(`group ${group.groupId}: no term for applied index ${index}`);
    const point: SnapshotPoint = { meta: { index, term, confState: group.node.confState() }, db: this.opts.db.snapshot(), readers: 0, released: false };
    group.points.push(point);
    this.stats.snapshotsTaken++;
    return point;
  }

  /** Compacts the log up to `point` (after advance), keeping it and newer points only. */
  private compactTo(group: RaftGroup, point: SnapshotPoint): void {
    if (point.meta.index <= (group.node.status().snapshot?.index ?? 0)) return;
    group.node.compact(point.meta.index, point.meta.confState);
    group.pendingSnapshotMeta = point.meta;
    const keep = group.points.filter((p) => p.meta.index >= point.meta.index);
    for (const p of group.points) if (!keep.includes(p)) void this.releasePoint(p);
    group.points = keep;
    this.opts.logger.debug({ group: group.groupId, index: point.meta.index }, 'log compacted');
    this.scheduleTurn();
  }

  private async releasePoint(point: SnapshotPoint): Promise<void> {
    if (point.released) return;
    point.released = true;
    if (point.readers === 0) await point.db.close();
  }

  /** Installs a received snapshot (its point is durable already) and restarts the state machine on it. */
  private async installReceivedSnapshot(group: RaftGroup, meta: SnapshotMeta): Promise<void> {
    const file = group.receivedSnapshots.get(meta.index);
    if (!file) throw new Error(`group ${group.groupId}: snapshot file for ${meta.index} vanished`);
    const startedMs = Date.now();
    const records = await installSnapshotRecords(this.opts.db, group.groupId, meta, file);
    if (group.removed) return; // removeGroup deletes what was just written once this turn is over
    group.sm.restore(records);
    group.applied = meta.index;
    this.settleAppliedWaiters(group);
    group.appliedQueued = meta.index;
    group.appliedPersisted = meta.index;
    group.confStateDirty = false;
    group.isLearner = meta.confState.learners.includes(this.opts.memberId);
    for (const p of group.points) await this.releasePoint(p);
    group.points = [];
    // The installed snapshot's own term: Raft may have taken a newer snapshot during the awaits above, and
    // its log then no longer holds this index.
    this.takePoint(group, meta.term);
    group.receivedSnapshots.clear();
    pruneSnapshotFiles(this.opts.snapshotDir, group.groupId, -1, SNAPSHOT_TEMP_IDLE_MS);
    this.stats.snapshotsInstalled++;
    this.opts.logger.info({ group: group.groupId, index: meta.index, term: meta.term, records: records.length, ms: Date.now() - startedMs }, 'installed snapshot');
    for (const l of this.confListeners) l(group.groupId, meta.confState);
  }

  /** A Ready's first half: its leadership news and its messages (queued; the caller flushes before applying). */
  private sendReady(group: RaftGroup, ready: Ready): void {
    if (ready.softState) {
      const changed = ready.softState.leaderId !== group.leaderId;
      group.leaderId = ready.softState.leaderId;
      group.role = ready.softState.role;
      if (changed) {
        this.stats.leaderChanges++;
        const term = group.node.status().term;
        this.opts.logger.info({ group: group.groupId, leader: group.leaderId, term, role: group.role }, 'leader changed');
        for (const l of this.leaderListeners) l(group.groupId, group.leaderId, term);
      }
    }
    if (this.sink && ready.messages.length > 0) {
      // Out before the applies (the caller flushes): a leader's commit advance lets a follower apply
      // (and answer the client that proposed there) while this member is still applying.
      for (const m of ready.messages) this.sendMessage(group.groupId, m);
      this.stats.messagesSent += ready.messages.length;
    }
  }

  /** A Ready's second half, after its messages left: applies, read states, advance. */
  private applyReady(group: RaftGroup, ready: Ready): void {
    for (const entry of ready.committedEntries) {
      if (entry.index <= group.applied) continue;
      if (entry.index !== group.applied + 1) {
        throw new Error(`group ${group.groupId}: applying ${entry.index} after ${group.applied}`);
      }
      if (entry.type === 'confChange') {
        const change = decodeConfChange(entry.data);
        const confState = group.node.applyConfChange(change);
        group.sm.applyConfChange(entry, change, confState);
        group.confStateDirty = true;
        group.isLearner = confState.learners.includes(this.opts.memberId);
        this.opts.logger.info({ group: group.groupId, index: entry.index, change: change.type, node: change.nodeId.toString(16), voters: confState.voters.map((v) => v.toString(16)), learners: confState.learners.map((v) => v.toString(16)) }, 'membership changed');
        const self = this.opts.memberId;
        if (group.groupId !== CLUSTER_GROUP_ID && !confState.voters.includes(self) && !confState.learners.includes(self)) {
          // Out of the group: an entry this member proposed that it has not applied yet lands after its
          // removal, where this replica never applies it. Its waiters are answered now, not at their deadlines.
          group.sm.failAll?.(new GroupRemovedError(group.groupId, self));
        }
        for (const l of this.confListeners) l(group.groupId, confState);
        if (group.node.status().removed) for (const l of this.removedListeners) l(group.groupId);
      } else if (entry.data.length > 0) group.sm.apply(entry);
      group.applied = entry.index;
      this.stats.entriesApplied++;
    }
    const lastApplied = ready.committedEntries.at(-1);
    if (lastApplied !== undefined && lastApplied.index === group.applied) group.sm.appliedThrough?.(group.applied, lastApplied.term);
    for (const rs of ready.readStates) {
      const round = group.readRounds.get(Buffer.from(rs.requestCtx).toString('hex'));
      if (round) round.index = rs.index;
    }
    group.node.advance(ready);
    this.settleAppliedWaiters(group);
    this.settleReadRounds(group);
  }
}

/** Removes every snapshot file of a group (received, installed or not): the group is no longer hosted. */
function removeSnapshotFiles(dir: string, groupId: number): void {
  if (!fs.existsSync(dir)) return;
  const prefix = `${groupId.toString().padStart(4, '0')}-`;
  // Only this group's files: a temp file may belong to another group's transfer under way.
  for (const name of fs.readdirSync(dir)) if (name.startsWith(prefix) && name.endsWith('.snap')) fs.rmSync(path.join(dir, name), { force: true });
}

/**
 * Replaces a group's stored state by a snapshot file's records and records `applied` and membership
 * at its point (the last, synced write). Safe to repeat after a crash at any moment: the point is
 * durable before this starts, and applied stays below it until the end.
 */
async function installSnapshotRecords(db: MemberStore, groupId: number, meta: SnapshotMeta, file: string): Promise<Array<[Buffer, Buffer]>> {
  if (!fs.existsSync(file)) throw new Error(`group ${groupId}: snapshot file ${file} is missing; the member cannot recover`);
  await db.clearState(groupId);
  const all: Array<[Buffer, Buffer]> = [];
  let batch = new TurnBatch();
  const reader = readSnapshotFile(file);
  for (;;) {
    const next = await reader.next();
    if (next.done) {
      if (next.value.index !== meta.index || next.value.groupId !== groupId) {
        throw new Error(`group ${groupId}: snapshot file ${file} holds group ${next.value.groupId} index ${next.value.index}, expected ${meta.index}`);
      }
      break;
    }
    for (const [key, value] of next.value) {
      batch.putState(groupId, key, value);
      all.push([key, value]);
    }
    if (batch.size >= 4096) {
      await db.write(batch, false);
      batch = new TurnBatch();
    }
  }
  batch.setApplied(groupId, meta.index);
  batch.setConfState(groupId, meta.confState);
  await db.write(batch, true);
  return all;
}

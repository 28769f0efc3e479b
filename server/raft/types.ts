// Raft core data types shared with the storage, transport and server layers.
// This file owns the wire/persistence-neutral shapes only; no behaviour lives here.
// Other layers depend on these exact names and shapes: add optional fields, never rename.

/** Raft member id. 0 means "none" (no leader, no vote). */
export type NodeId = number;

/** 'normal' carries application commands; 'confChange' carries an encoded ConfChange. */
export type EntryType = 'normal' | 'confChange';

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** State that must be durable before any message depending on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

export type MessageType =
  | 'prop'
  | 'app'
  | 'appResp'
  | 'vote'
  | 'voteResp'
  | 'preVote'
  | 'preVoteResp'
  | 'heartbeat'
  | 'heartbeatResp'
  | 'readIndex'
  | 'readIndexResp'
  | 'timeoutNow'
  /** Leader -> follower whose needed entries were compacted away: install `snapshot`. */
  | 'snap';

export interface Message {
  type: MessageType;
  from: NodeId;
  to: NodeId;
  /** Sender's term; 0 for locally-originated/forwarded 'prop' and 'readIndex' (term-agnostic). */
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  reject: boolean;
  rejectHint: number;
  /** Opaque bytes: ReadIndex round/request context. */
  context: Uint8Array;
  /** 'snap' only: the snapshot point. The state-machine bytes travel beside it (transport's job). */
  snapshot?: SnapshotMeta;
  /**
   * Quiescence (raft.ts): on a 'heartbeat', the leader's last one before it goes silent (the group
   * is idle and every follower holds its whole log); on a 'heartbeatResp', the follower quiesced
   * too. Absent or false on every other message, so busy groups' bytes on the wire are unchanged.
   */
  quiesce?: boolean;
  /**
   * On an entry-less 'app' that only carries the leader's commit index to a follower it replicates to
   * (flushAppends): the follower does not answer it if it accepts it. The answer would repeat what the
   * follower's acks of those entries say, and it was a third of a busy sharded member's messages. A
   * follower that refuses it answers as always; and since acks can be lost, the appends a leader sends
   * for any other reason (probes, a heartbeat answer showing the follower behind) are all answered.
   */
  commitOnly?: boolean;
}

/** Membership change kinds (etcd ConfChange v1, one change at a time). 'promoteLearner' is
 *  addNode restricted to an existing learner; addNode of a learner also promotes it. */
export type ConfChangeType = 'addNode' | 'addLearner' | 'removeNode' | 'promoteLearner';

/** Payload of a 'confChange' entry (see conf-change.ts for the byte encoding). */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: NodeId;
  /** Opaque application data (e.g. the member's peer URLs). */
  context?: Uint8Array;
}

/** Membership in effect after applying some log prefix. Sorted, disjoint. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
}

/** Metadata of a state-machine snapshot: it covers every entry <= index. */
export interface SnapshotMeta {
  index: number;
  /** Term of the entry at index. */
  term: number;
  /** Membership in effect at index. */
  confState: ConfState;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** Volatile state, useful for logging/metrics; never needs persisting. */
export interface SoftState {
  leaderId: NodeId;
  role: Role;
}

export interface ReadState {
  /** Serve the read once the local applied index >= index. */
  index: number;
  requestCtx: Uint8Array;
}

export interface Ready {
  /** Non-null when changed since the last Ready. */
  softState: SoftState | null;
  /** Non-null when changed; must be persisted (synced) before messages are sent. */
  hardState: HardState | null;
  /** Unstable entries to persist (synced) before messages are sent. May overwrite a suffix:
   *  the storage must truncate its log at entries[0].index before appending. */
  entries: Entry[];
  /** Entries to apply, in order (always already committed; persist `entries` first). */
  committedEntries: Entry[];
  /** Messages to send after persisting. */
  messages: Message[];
  /** ReadIndex results: serve the read once applied index >= index. */
  readStates: ReadState[];
  /** Non-null when a snapshot from the leader must be installed: persist it (replacing the
   *  whole stored log) with `entries`/`hardState`, and install its data into the state machine
   *  before applying `committedEntries` (which then start at snapshot.index + 1). */
  snapshot: SnapshotMeta | null;
}

/**
 * Lease reads: a leader answers ReadIndex requests (its own and those followers forward) at once,
 * without a heartbeat round, while a lease holds. A lease starts when a heartbeat round that a quorum
 * acknowledged started, and lasts `durationMs`: each voter of that quorum refuses to vote in a higher
 * term for an election timeout after it heard the round (leader stickiness, checkQuorum), which
 * `durationMs` must stay below. What else ends it, and why (each has a TEST-ONLY mutation):
 *  - the clock: checked when a read is served, on `nowMs` (monotonic), never in ticks, since a paused
 *    leader keeps its tick count;
 *  - a restart: a voter restarted with state has forgotten whom it heard, so it refuses votes in higher
 *    terms for its first election timeout of ticks;
 *  - a transfer: TimeoutNow's campaign bypasses stickiness, so once sent no lease holds for the rest of
 *    the term (nor while a transfer is pending);
 *  - a membership change applied, a new term or role: two changes could leave a quorum disjoint from
 *    the one that confirmed the lease.
 * Only the first half of a lease serves reads: a read after that starts a round, which renews it.
 */
export interface LeaseReads {
  nowMs: () => number;
  durationMs: number;
  /** TEST-ONLY: breaks one rule above, for the simulation's mutation check. */
  unsafeMutation?: 'ignore-expiry' | 'no-restart-quiet' | 'keep-after-transfer';
}

export interface RaftConfig {
  id: NodeId;
  /** Bootstrap voter set: the membership at log index 0, used only when PersistedState has no
   *  confState/snapshot. Every member passes the same set, including members added later (a
   *  joining member is then not in it, and learns its membership from the log or a snapshot). */
  voters: NodeId[];
  /** Bootstrap learners (default none). */
  learners?: NodeId[];
  /** e.g. 10; each election timeout is randomized in [T, 2T). */
  electionTimeoutTicks: number;
  /** e.g. 1. */
  heartbeatTicks: number;
  preVote: boolean;
  checkQuorum: boolean;
  /** Pipelining window: max in-flight append messages per follower. */
  maxInflightMsgs: number;
  /** Batching: cap on entry payload bytes per append message (at least one entry is always sent). */
  maxSizePerMsgBytes: number;
  /**
   * Pipelining window in bytes (etcd's MaxInflightBytes): no new append to a follower while the
   * entry payload bytes it has in flight reach this. 0 or absent: the message count alone limits.
   * The window can overshoot by one message (at most maxSizePerMsgBytes, or one larger entry).
   */
  maxInflightBytes?: number;
  /**
   * Leader: refuse proposals while the payload bytes of its uncommitted entries exceed this
   * (etcd's MaxUncommittedEntriesSize; one proposal is always accepted when nothing is pending).
   * 0 or absent: no limit.
   */
  maxUncommittedEntriesBytes?: number;
  randomSeed: number;
  /**
   * Quiesce when idle (default false): a leader whose followers all hold its whole log, with nothing
   * proposed, read, transferred or reconfiguring, sends one heartbeat marked `quiesce` and stops
   * ticking; followers that take it stop their election timers. The application must then wake a
   * quiesced follower whose leader's member it stops hearing from (RawNode.wakeLeaderUnreachable;
   * see liveness-wake.ts), or the group would not elect a new leader when its leader dies.
   */
  quiesce?: boolean;
  /** See LeaseReads (absent: every read waits for a heartbeat round). Needs checkQuorum. */
  leaseReads?: LeaseReads;
}

export interface PersistedState {
  hardState: HardState;
  /** Contiguous, starting at firstIndex. */
  entries: Entry[];
  /** 1 normally; snapshot.index + 1 after compaction. */
  firstIndex: number;
  /** Highest index whose entry the state machine has durably applied (>= snapshot.index). */
  applied: number;
  /** Membership as of `applied` (the ConfState last returned by applyConfChange or carried by
   *  an installed snapshot). Absent: snapshot.confState, else the config's bootstrap sets. */
  confState?: ConfState;
  /** The compaction point (required when firstIndex > 1: index = firstIndex - 1). */
  snapshot?: SnapshotMeta;
  /**
   * The last log entry (index, term) of an earlier replica of this node in the group, whose data is
   * gone (a replica dropped from this member and re-created under the same id). Votes go only to
   * candidates at least as up to date as it AND as this log, and the node does not campaign until its
   * own log is: it acts as its predecessor would have, so its shorter log neither elects a candidate
   * the predecessor's log would have refused nor leads in place of that log (a stale-membership voter
   * would count it as the predecessor).
   */
  voteFloor?: LogPosition;
}

/** A log entry's position: its index and term. */
export interface LogPosition {
  index: number;
  term: number;
}

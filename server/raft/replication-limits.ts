// The replication limits of a member, in one place: how large one append message may be, how much a
// leader may have in flight to one follower, and how much it may hold uncommitted. The Raft core
// enforces them (raft.ts, progress.ts); the peer transport derives its frame budget from the same
// numbers (server/transport/frame-budget.ts) and refuses to start when they disagree, so a change
// here can never produce a frame the gRPC stream cannot carry.

/**
 * Upper bound of the bytes an entry adds on the wire beyond its payload (term, index, type and the
 * two length prefixes of frame-codec.ts, each at their widest). Raft counts it per entry when it
 * sizes an append, so a message's encoded size is bounded by its byte budget, even for many tiny
 * entries. frame-codec.test.ts checks the codec stays within it.
 */
export const ENTRY_OVERHEAD_BYTES = 32;

export interface ReplicationLimits {
  /** Entry bytes (payload + ENTRY_OVERHEAD_BYTES each) per append message; at least one entry is always sent. */
  maxSizePerMsgBytes: number;
  /** Append messages in flight to one follower. */
  maxInflightMsgs: number;
  /** Entry payload bytes in flight to one follower (the window can overshoot by one message). */
  maxInflightBytes: number;
  /** Leader: payload bytes appended and not yet applied before proposals are refused. */
  maxUncommittedEntriesBytes: number;
}

/**
 * 1 MiB per message as etcd; a 16 MiB window per follower keeps a catching-up follower's link and
 * disk busy (a few round trips of a loopback or LAN link) without letting one turn queue hundreds of
 * MiB for it; 64 MiB uncommitted is far above any healthy backlog and bounds a leader without quorum.
 */
export const DEFAULT_REPLICATION_LIMITS: Readonly<ReplicationLimits> = Object.freeze({
  maxSizePerMsgBytes: 1024 * 1024,
  maxInflightMsgs: 256,
  maxInflightBytes: 16 * 1024 * 1024,
  maxUncommittedEntriesBytes: 64 * 1024 * 1024,
});

// Raft core data types shared with the storage, transport and server layers.
// This file owns the wire/persistence-neutral shapes only; no behaviour lives here.
// Other layers depend on these exact names and shapes: add optional fields, never rename.

/** Raft member id. 0 means "none" (no leader, no vote). */
export type NodeId = number;

/** 'normal' carries application commands; 'confChange' is reserved for membership changes. */
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
  | 'timeoutNow';

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
}

export interface RaftConfig {
  id: NodeId;
  /** Initial voter set (includes id). */
  voters: NodeId[];
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
  randomSeed: number;
}

export interface PersistedState {
  hardState: HardState;
  /** Contiguous, starting at firstIndex. */
  entries: Entry[];
  /** 1 normally; > 1 once log compaction exists. */
  firstIndex: number;
  /** Highest index whose entry the state machine has durably applied. */
  applied: number;
}

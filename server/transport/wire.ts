// Conversion between the Raft core's Message and the peer transport's protobuf shape.
// Kept apart from the stream handling so both directions are testable without sockets.
// Used by the Snapshot RPC (proto-loader); the Stream RPC's frames go through frame-codec.ts.
import type { Entry, EntryType, Message, MessageType, SnapshotMeta } from '../raft/types.ts';

export interface WireEntry {
  term: number;
  index: number;
  type: string;
  data: Buffer;
}

export interface WireMessage {
  type: string;
  from: number;
  to: number;
  term: number;
  log_term: number;
  index: number;
  entries: WireEntry[];
  commit: number;
  reject: boolean;
  reject_hint: number;
  context: Buffer;
  snapshot?: WireSnapshotMeta | null;
}

export interface WireSnapshotMeta {
  index: number;
  term: number;
  conf_state: { voters: number[]; learners: number[] } | null;
}

export interface WireEnvelope {
  group_id: number;
  message: WireMessage;
}

export interface WireBatch {
  cluster_id: number;
  from_member: number;
  to_member: number;
  envelopes: WireEnvelope[];
}

const TO_WIRE_TYPE: Record<MessageType, string> = {
  prop: 'PROP',
  app: 'APP',
  appResp: 'APP_RESP',
  vote: 'VOTE',
  voteResp: 'VOTE_RESP',
  preVote: 'PRE_VOTE',
  preVoteResp: 'PRE_VOTE_RESP',
  heartbeat: 'HEARTBEAT',
  heartbeatResp: 'HEARTBEAT_RESP',
  readIndex: 'READ_INDEX',
  readIndexResp: 'READ_INDEX_RESP',
  timeoutNow: 'TIMEOUT_NOW',
  snap: 'SNAP',
};
const FROM_WIRE_TYPE = new Map<string, MessageType>(
  Object.entries(TO_WIRE_TYPE).map(([k, v]) => [v, k as MessageType]),
);

const TO_WIRE_ENTRY_TYPE: Record<EntryType, string> = { normal: 'NORMAL', confChange: 'CONF_CHANGE' };
const FROM_WIRE_ENTRY_TYPE = new Map<string, EntryType>([
  ['NORMAL', 'normal'],
  ['CONF_CHANGE', 'confChange'],
]);

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function messageToWire(m: Message): WireMessage {
  return {
    type: TO_WIRE_TYPE[m.type],
    from: m.from,
    to: m.to,
    term: m.term,
    log_term: m.logTerm,
    index: m.index,
    entries: m.entries.map((e) => ({
      term: e.term,
      index: e.index,
      type: TO_WIRE_ENTRY_TYPE[e.type],
      data: toBuffer(e.data),
    })),
    commit: m.commit,
    reject: m.reject,
    reject_hint: m.rejectHint,
    context: toBuffer(m.context),
    snapshot: m.snapshot
      ? {
          index: m.snapshot.index,
          term: m.snapshot.term,
          conf_state: { voters: m.snapshot.confState.voters, learners: m.snapshot.confState.learners },
        }
      : null,
  };
}

function snapshotFromWire(w: WireSnapshotMeta | null | undefined): SnapshotMeta | undefined {
  if (!w) return undefined;
  return {
    index: Number(w.index),
    term: Number(w.term),
    confState: {
      voters: (w.conf_state?.voters ?? []).map(Number),
      learners: (w.conf_state?.learners ?? []).map(Number),
    },
  };
}

export function messageFromWire(w: WireMessage): Message {
  const type = FROM_WIRE_TYPE.get(w.type);
  if (type === undefined) throw new Error(`unknown raft message type ${w.type}`);
  const entries: Entry[] = (w.entries ?? []).map((e) => {
    const entryType = FROM_WIRE_ENTRY_TYPE.get(e.type);
    if (entryType === undefined) throw new Error(`unknown entry type ${e.type}`);
    return { term: Number(e.term), index: Number(e.index), type: entryType, data: e.data };
  });
  const message: Message = {
    type,
    from: Number(w.from),
    to: Number(w.to),
    term: Number(w.term),
    logTerm: Number(w.log_term),
    index: Number(w.index),
    entries,
    commit: Number(w.commit),
    reject: w.reject,
    rejectHint: Number(w.reject_hint),
    context: w.context ?? Buffer.alloc(0),
  };
  const snapshot = snapshotFromWire(w.snapshot);
  if (snapshot) message.snapshot = snapshot;
  return message;
}

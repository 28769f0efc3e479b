// Hand-written protobuf codec for the peer Stream RPC: the Batch frames carrying Raft messages
// (Batch/Envelope/RaftMessage/Entry/SnapshotMeta/ConfState) and the calls and replies riding with
// them (StreamCall/StreamReply, opaque payloads), and the StreamHello answer, all as
// defined in proto/synod/transport.proto. It exists because going through @grpc/proto-loader was
// the cost: protobufjs's decode + toObject (a Long per uint64) and fromObject on send spent ~60 µs
// per frame, a large share of the leader's CPU per client write. The bytes are plain proto3, so
// members using either codec interoperate; Snapshot and ClusterInfo stay on proto-loader (rare).
//
// Encoding goes straight from the Raft core's Message: sizes first (kept in a reused scratch
// array), then one Buffer.allocUnsafe written in place. Decoding builds Message objects the way
// wire.ts messageFromWire does (same defaults); entry data and contexts are subarrays of the frame
// (the member copies entry payloads into its arena when it persists them).
// All integers are JS numbers: member/cluster ids are kept below 2^53 (server/api/cluster-info.ts)
// and Raft terms/indexes never get there, so a value that is not a safe non-negative integer is a
// bug and throws, on both sides.
import type { Entry, EntryType, Message, MessageType, SnapshotMeta } from '../raft/types.ts';
import { numberVarintBytes, writeNumberVarint } from '../protobuf/varint.ts';
import { ENTRY_OVERHEAD_BYTES } from '../raft/replication-limits.ts';

export interface FrameEnvelope {
  groupId: number;
  message: Message;
}

export interface FrameBatch {
  clusterId: number;
  fromMember: number;
  toMember: number;
  envelopes: FrameEnvelope[];
  /** Calls to a service the receiver serves on its streams (peer-transport.ts callOnStream); absent: none. */
  calls?: StreamCall[];
  /** Replies to calls the receiver made; absent: none. */
  replies?: StreamReply[];
}

export interface StreamCall {
  callId: number;
  /** The gRPC method path the call stands for, e.g. "/synod.shard.ShardPeer/Revisions". */
  method: string;
  payload: Buffer;
}

export interface StreamReply {
  callId: number;
  payload: Buffer;
  /** 0 (OK) or the gRPC status code of a failed call. */
  errorCode: number;
  errorDetails: string;
}

export interface StreamHello {
  clusterId: number;
  memberId: number;
  /** Services the member serves on its streams; absent or empty: none (an older member). */
  streamServices?: string[];
  /** The replicated apply rules the member implements (transport.proto); absent: 0 (an older member). */
  applyRules?: number;
  /** The sender's wall clock as it sent the hello (ms since the epoch); absent or 0: an older member. */
  unixMs?: number;
}

// Enum numbers from transport.proto (MessageType, EntryType).
const MESSAGE_TYPE_CODE: Record<MessageType, number> = {
  prop: 0,
  app: 1,
  appResp: 2,
  vote: 3,
  voteResp: 4,
  preVote: 5,
  preVoteResp: 6,
  heartbeat: 7,
  heartbeatResp: 8,
  readIndex: 9,
  readIndexResp: 10,
  timeoutNow: 11,
  snap: 12,
};
const MESSAGE_TYPE_BY_CODE: MessageType[] = [];
for (const [name, code] of Object.entries(MESSAGE_TYPE_CODE)) MESSAGE_TYPE_BY_CODE[code] = name as MessageType;
const ENTRY_TYPE_BY_CODE: EntryType[] = ['normal', 'confChange'];

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

const UINT32_MAX = 0xffffffff;

/** Shared by every decoded message without a context or entry without data (never written to). */
const EMPTY = Buffer.alloc(0);

// ---------------------------------------------------------------------------------------------
// Encoding

function checkUint(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new Error(`frame codec: ${what} is ${String(v)}, not a non-negative safe integer`);
  }
}

/** Size of a uint64 field with a one-byte tag, omitted when 0 (proto3 default). */
function uintFieldSize(v: number, what: string): number {
  checkUint(v, what);
  return v === 0 ? 0 : 1 + numberVarintBytes(v);
}

/** Size of a length-delimited field with a one-byte tag and a body of `len` bytes. */
function lenFieldSize(len: number): number {
  return 1 + numberVarintBytes(len) + len;
}

// Submessage sizes, in the order the writer meets them (pre-order), so nothing is sized twice.
// Reused across calls: encoding is synchronous and never re-entered.
const sizes: number[] = [];
let sizeCursor = 0;

function reserveSize(): number {
  const slot = sizeCursor++;
  if (slot === sizes.length) sizes.push(0);
  return slot;
}

function sizeEntry(e: Entry): number {
  const slot = reserveSize();
  let n = uintFieldSize(e.term, 'entry term') + uintFieldSize(e.index, 'entry index');
  if (e.type === 'confChange') n += 2;
  else if (e.type !== 'normal') throw new Error(`frame codec: unknown entry type ${String(e.type)}`);
  const len = e.data.byteLength;
  if (len > 0) n += lenFieldSize(len);
  sizes[slot] = n;
  return n;
}

function packedSize(ids: number[], what: string): number {
  let n = 0;
  for (let i = 0; i < ids.length; i++) {
    checkUint(ids[i], what);
    n += numberVarintBytes(ids[i]);
  }
  return n;
}

function sizeSnapshot(s: SnapshotMeta): number {
  const slot = reserveSize();
  let n = uintFieldSize(s.index, 'snapshot index') + uintFieldSize(s.term, 'snapshot term');
  // ConfState: voters and learners packed; their body sizes get slots too.
  const csSlot = reserveSize();
  const votersSlot = reserveSize();
  const learnersSlot = reserveSize();
  const voters = packedSize(s.confState.voters, 'voter id');
  const learners = packedSize(s.confState.learners, 'learner id');
  sizes[votersSlot] = voters;
  sizes[learnersSlot] = learners;
  const cs = (voters > 0 ? lenFieldSize(voters) : 0) + (learners > 0 ? lenFieldSize(learners) : 0);
  sizes[csSlot] = cs;
  n += lenFieldSize(cs); // written even when empty, as protobufjs does for a set submessage
  sizes[slot] = n;
  return n;
}

function sizeMessage(m: Message): number {
  const slot = reserveSize();
  const type = MESSAGE_TYPE_CODE[m.type];
  if (type === undefined) throw new Error(`frame codec: unknown raft message type ${String(m.type)}`);
  let n = type === 0 ? 0 : 2; // every code is < 128
  n += uintFieldSize(m.from, 'message from');
  n += uintFieldSize(m.to, 'message to');
  n += uintFieldSize(m.term, 'message term');
  n += uintFieldSize(m.logTerm, 'message logTerm');
  n += uintFieldSize(m.index, 'message index');
  const entries = m.entries;
  for (let i = 0; i < entries.length; i++) n += lenFieldSize(sizeEntry(entries[i]));
  n += uintFieldSize(m.commit, 'message commit');
  if (m.reject) n += 2;
  n += uintFieldSize(m.rejectHint, 'message rejectHint');
  const ctx = m.context.byteLength;
  if (ctx > 0) n += lenFieldSize(ctx);
  if (m.snapshot) n += lenFieldSize(sizeSnapshot(m.snapshot));
  if (m.quiesce === true) n += 2;
  if (m.commitOnly === true) n += 2;
  sizes[slot] = n;
  return n;
}

// The writer: each function writes at p in buf and returns the position after what it wrote.

function writeUintField(buf: Buffer, p: number, tag: number, v: number): number {
  if (v === 0) return p;
  buf[p++] = tag;
  return writeNumberVarint(buf, p, v);
}

function writeBytesField(buf: Buffer, p: number, tag: number, bytes: Uint8Array): number {
  const len = bytes.byteLength;
  if (len === 0) return p;
  buf[p++] = tag;
  p = writeNumberVarint(buf, p, len);
  buf.set(bytes, p);
  return p + len;
}

function writeEntry(buf: Buffer, p: number, e: Entry): number {
  p = writeUintField(buf, p, 0x08, e.term);
  p = writeUintField(buf, p, 0x10, e.index);
  if (e.type === 'confChange') {
    buf[p++] = 0x18;
    buf[p++] = 1;
  }
  return writeBytesField(buf, p, 0x22, e.data);
}

function writePacked(buf: Buffer, p: number, tag: number, ids: number[], len: number): number {
  if (len === 0) return p;
  buf[p++] = tag;
  p = writeNumberVarint(buf, p, len);
  for (let i = 0; i < ids.length; i++) p = writeNumberVarint(buf, p, ids[i]);
  return p;
}

function writeSnapshot(buf: Buffer, p: number, s: SnapshotMeta): number {
  p = writeUintField(buf, p, 0x08, s.index);
  p = writeUintField(buf, p, 0x10, s.term);
  const cs = sizes[sizeCursor++];
  const voters = sizes[sizeCursor++];
  const learners = sizes[sizeCursor++];
  buf[p++] = 0x1a;
  p = writeNumberVarint(buf, p, cs);
  p = writePacked(buf, p, 0x0a, s.confState.voters, voters);
  return writePacked(buf, p, 0x12, s.confState.learners, learners);
}

function writeMessage(buf: Buffer, p: number, m: Message): number {
  const type = MESSAGE_TYPE_CODE[m.type];
  if (type !== 0) {
    buf[p++] = 0x08;
    buf[p++] = type;
  }
  p = writeUintField(buf, p, 0x10, m.from);
  p = writeUintField(buf, p, 0x18, m.to);
  p = writeUintField(buf, p, 0x20, m.term);
  p = writeUintField(buf, p, 0x28, m.logTerm);
  p = writeUintField(buf, p, 0x30, m.index);
  const entries = m.entries;
  for (let i = 0; i < entries.length; i++) {
    buf[p++] = 0x3a;
    p = writeNumberVarint(buf, p, sizes[sizeCursor++]);
    p = writeEntry(buf, p, entries[i]);
  }
  p = writeUintField(buf, p, 0x40, m.commit);
  if (m.reject) {
    buf[p++] = 0x48;
    buf[p++] = 1;
  }
  p = writeUintField(buf, p, 0x50, m.rejectHint);
  p = writeBytesField(buf, p, 0x5a, m.context);
  if (m.snapshot) {
    buf[p++] = 0x62;
    p = writeNumberVarint(buf, p, sizes[sizeCursor++]);
    p = writeSnapshot(buf, p, m.snapshot);
  }
  if (m.quiesce === true) {
    // Field 13 (quiesce), only when set: every other message keeps its exact bytes.
    buf[p++] = 0x68;
    buf[p++] = 1;
  }
  if (m.commitOnly === true) {
    // Field 14 (commit_only), likewise only when set.
    buf[p++] = 0x70;
    buf[p++] = 1;
  }
  return p;
}

// Calls and replies (Batch fields 5 and 6). Small and few, so sized on the spot rather than through
// the scratch of submessage sizes.

function stringFieldSize(str: string): number {
  const len = Buffer.byteLength(str);
  return len === 0 ? 0 : lenFieldSize(len);
}

function bytesFieldSize(bytes: Uint8Array): number {
  return bytes.byteLength === 0 ? 0 : lenFieldSize(bytes.byteLength);
}

function callBodyBytes(c: StreamCall): number {
  return uintFieldSize(c.callId, 'call id') + stringFieldSize(c.method) + bytesFieldSize(c.payload);
}

function replyBodyBytes(r: StreamReply): number {
  if (!(Number.isInteger(r.errorCode) && r.errorCode >= 0 && r.errorCode <= UINT32_MAX)) throw new Error(`frame codec: error code ${r.errorCode} is not a uint32`);
  return uintFieldSize(r.callId, 'call id') + bytesFieldSize(r.payload) + uintFieldSize(r.errorCode, 'error code') + stringFieldSize(r.errorDetails);
}

/** Exact bytes one call adds to a Batch (tag, length and body). */
export function callFieldBytes(c: StreamCall): number {
  return lenFieldSize(callBodyBytes(c));
}

/** Exact bytes one reply adds to a Batch (tag, length and body). */
export function replyFieldBytes(r: StreamReply): number {
  return lenFieldSize(replyBodyBytes(r));
}

function writeStringField(buf: Buffer, p: number, tag: number, str: string): number {
  const len = Buffer.byteLength(str);
  if (len === 0) return p;
  buf[p++] = tag;
  p = writeNumberVarint(buf, p, len);
  return p + buf.write(str, p, 'utf8');
}

function writeCall(buf: Buffer, p: number, c: StreamCall): number {
  buf[p++] = 0x2a;
  p = writeNumberVarint(buf, p, callBodyBytes(c));
  p = writeUintField(buf, p, 0x08, c.callId);
  p = writeStringField(buf, p, 0x12, c.method);
  return writeBytesField(buf, p, 0x1a, c.payload);
}

function writeReply(buf: Buffer, p: number, r: StreamReply): number {
  buf[p++] = 0x32;
  p = writeNumberVarint(buf, p, replyBodyBytes(r));
  p = writeUintField(buf, p, 0x08, r.callId);
  p = writeBytesField(buf, p, 0x12, r.payload);
  p = writeUintField(buf, p, 0x18, r.errorCode);
  return writeStringField(buf, p, 0x22, r.errorDetails);
}

/** Shared by every frame without calls or replies (nearly all): never written to. */
const NO_CALLS: readonly StreamCall[] = [];
const NO_REPLIES: readonly StreamReply[] = [];

/** Encodes a Batch frame (transport.proto) from Raft messages. Throws on a value the wire cannot carry. */
export function encodeBatch(batch: FrameBatch): Buffer {
  sizeCursor = 0;
  let n = uintFieldSize(batch.clusterId, 'cluster id');
  n += uintFieldSize(batch.fromMember, 'from member');
  n += uintFieldSize(batch.toMember, 'to member');
  const envelopes = batch.envelopes;
  for (let i = 0; i < envelopes.length; i++) {
    const env = envelopes[i];
    const envSlot = reserveSize();
    checkUint(env.groupId, 'group id');
    if (env.groupId > UINT32_MAX) throw new Error(`frame codec: group id ${env.groupId} does not fit uint32`);
    const envSize = (env.groupId === 0 ? 0 : 1 + numberVarintBytes(env.groupId)) + lenFieldSize(sizeMessage(env.message));
    sizes[envSlot] = envSize;
    n += lenFieldSize(envSize);
  }
  if (batch.calls) for (const c of batch.calls) n += callFieldBytes(c);
  if (batch.replies) for (const r of batch.replies) n += replyFieldBytes(r);

  const buf = Buffer.allocUnsafe(n);
  sizeCursor = 0;
  let p = writeUintField(buf, 0, 0x08, batch.clusterId);
  p = writeUintField(buf, p, 0x10, batch.fromMember);
  p = writeUintField(buf, p, 0x18, batch.toMember);
  for (let i = 0; i < envelopes.length; i++) {
    const env = envelopes[i];
    buf[p++] = 0x22;
    p = writeNumberVarint(buf, p, sizes[sizeCursor++]);
    p = writeUintField(buf, p, 0x08, env.groupId);
    buf[p++] = 0x12;
    p = writeNumberVarint(buf, p, sizes[sizeCursor++]);
    p = writeMessage(buf, p, env.message);
  }
  if (batch.calls) for (const c of batch.calls) p = writeCall(buf, p, c);
  if (batch.replies) for (const r of batch.replies) p = writeReply(buf, p, r);
  if (sizes.length > 4096) sizes.length = 0; // do not keep a huge frame's scratch forever
  if (p !== n) throw new Error(`frame codec: wrote ${p} bytes of a ${n}-byte frame (bug)`);
  return buf;
}

/** A generous bound of one envelope's encoded bytes, from sizes alone (no varint arithmetic). */
function envelopeBoundBytes(m: Message): number {
  let n = 160 + m.context.byteLength;
  if (m.snapshot) n += 64 + 10 * (m.snapshot.confState.voters.length + m.snapshot.confState.learners.length);
  const entries = m.entries;
  for (let i = 0; i < entries.length; i++) n += entries[i].data.byteLength + ENTRY_OVERHEAD_BYTES;
  return n;
}

/** Exact bytes one envelope adds to a Batch (its field tag, length and body). */
function envelopeFieldBytes(env: FrameEnvelope): number {
  sizeCursor = 0; // the scratch is only borrowed: encodeBatch starts over
  const envSize = (env.groupId === 0 ? 0 : 1 + numberVarintBytes(env.groupId)) + lenFieldSize(sizeMessage(env.message));
  return lenFieldSize(envSize);
}

/**
 * Encodes a batch as frames of at most `maxFrameBytes` each (one frame unless it would be larger;
 * each frame is a complete Batch, delivered in order). Throws when a single message, call or reply
 * cannot fit: the frame budget must hold the largest message the replication limits allow
 * (frame-budget.ts), and the transport keeps calls and replies well below it (peer-transport.ts).
 */
export function encodeFrames(batch: FrameBatch, maxFrameBytes: number): Buffer[] {
  const envelopes = batch.envelopes;
  let bound = 64;
  for (let i = 0; i < envelopes.length; i++) bound += envelopeBoundBytes(envelopes[i].message);
  const calls = batch.calls ?? NO_CALLS;
  const replies = batch.replies ?? NO_REPLIES;
  for (const c of calls) bound += callFieldBytes(c);
  for (const r of replies) bound += replyFieldBytes(r);
  if (bound <= maxFrameBytes) return [encodeBatch(batch)];
  const headerBytes = uintFieldSize(batch.clusterId, 'cluster id') + uintFieldSize(batch.fromMember, 'from member') + uintFieldSize(batch.toMember, 'to member');
  const frames: Buffer[] = [];
  const header = { clusterId: batch.clusterId, fromMember: batch.fromMember, toMember: batch.toMember };
  // The Raft messages first, then the calls and replies in frames of their own.
  let start = 0;
  let frameBytes = headerBytes;
  for (let i = 0; i < envelopes.length; i++) {
    const bytes = envelopeFieldBytes(envelopes[i]);
    if (headerBytes + bytes > maxFrameBytes) {
      throw new Error(`frame codec: a ${envelopes[i].message.type} message of ${bytes} bytes exceeds the frame budget of ${maxFrameBytes} (replication limits and frame budget disagree)`);
    }
    if (frameBytes + bytes > maxFrameBytes) {
      frames.push(encodeBatch({ ...header, envelopes: envelopes.slice(start, i) }));
      start = i;
      frameBytes = headerBytes;
    }
    frameBytes += bytes;
  }
  if (envelopes.length > 0) frames.push(encodeBatch({ ...header, envelopes: envelopes.slice(start) }));
  let side: FrameBatch = { ...header, envelopes: [], calls: [], replies: [] };
  frameBytes = headerBytes;
  const add = (bytes: number, put: (b: FrameBatch) => void, what: string): void => {
    if (headerBytes + bytes > maxFrameBytes) throw new Error(`frame codec: a ${what} of ${bytes} bytes exceeds the frame budget of ${maxFrameBytes}`);
    if (frameBytes + bytes > maxFrameBytes) {
      frames.push(encodeBatch(side));
      side = { ...header, envelopes: [], calls: [], replies: [] };
      frameBytes = headerBytes;
    }
    put(side);
    frameBytes += bytes;
  };
  for (const c of calls) add(callFieldBytes(c), (b) => b.calls!.push(c), 'stream call');
  for (const r of replies) add(replyFieldBytes(r), (b) => b.replies!.push(r), 'stream reply');
  if (frameBytes > headerBytes) frames.push(encodeBatch(side));
  return frames;
}

/** Encodes the StreamHello a stream's receiver answers with. */
export function encodeStreamHello(hello: StreamHello): Buffer {
  const services = hello.streamServices ?? [];
  let n = uintFieldSize(hello.clusterId, 'cluster id') + uintFieldSize(hello.memberId, 'member id');
  for (const name of services) n += lenFieldSize(Buffer.byteLength(name));
  const applyRules = hello.applyRules ?? 0;
  if (applyRules !== 0) n += uintFieldSize(applyRules, 'apply rules');
  const unixMs = hello.unixMs ?? 0;
  if (unixMs !== 0) n += uintFieldSize(unixMs, 'hello clock');
  const buf = Buffer.allocUnsafe(n);
  let p = writeUintField(buf, 0, 0x08, hello.clusterId);
  p = writeUintField(buf, p, 0x10, hello.memberId);
  for (const name of services) {
    // Written even when empty: a repeated string keeps every element.
    buf[p++] = 0x1a;
    p = writeNumberVarint(buf, p, Buffer.byteLength(name));
    p += buf.write(name, p, 'utf8');
  }
  if (applyRules !== 0) p = writeUintField(buf, p, 0x20, applyRules);
  if (unixMs !== 0) p = writeUintField(buf, p, 0x28, unixMs);
  if (p !== n) throw new Error(`frame codec: wrote ${p} bytes of a ${n}-byte hello (bug)`);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function fail(reason: string): never {
  throw new Error(`malformed peer frame: ${reason}`);
}

/** Reads protobuf primitives from buf[pos, limit); every read is bounds-checked. */
class Reader {
  readonly buf: Buffer;
  pos = 0;

  constructor(buf: Buffer) {
    this.buf = buf;
  }

  /** An unsigned varint as a JS number; throws past `limit`, beyond 10 bytes, or at >= 2^53. */
  varint(limit: number): number {
    const buf = this.buf;
    let p = this.pos;
    if (p >= limit) fail('truncated varint');
    let b = buf[p++];
    if (b < 0x80) {
      this.pos = p;
      return b;
    }
    let value = b & 0x7f;
    let shift = 7;
    // Up to 28 bits with integer ops.
    for (; shift < 28; shift += 7) {
      if (p >= limit) fail('truncated varint');
      b = buf[p++];
      value |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = p;
        return value;
      }
    }
    // Beyond: float arithmetic (exact below 2^53, and monotone, so the range check holds).
    let scale = 2 ** 28;
    for (let i = 4; i < 10; i++) {
      if (p >= limit) fail('truncated varint');
      b = buf[p++];
      value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) fail(`integer ${value} is 2^53 or more (not a valid id, term or index)`);
        this.pos = p;
        return value;
      }
    }
    fail('varint longer than 10 bytes');
  }

  /** Reads a length prefix and returns the end of the length-delimited body (checked against limit). */
  lenEnd(limit: number): number {
    const len = this.varint(limit);
    const end = this.pos + len;
    if (end > limit) fail(`length ${len} runs past the end of its message`);
    return end;
  }

  /** Skips a field of an unknown number. */
  skip(wireType: number, limit: number): void {
    switch (wireType) {
      case WIRE_VARINT: {
        // Bounded scan: at most 10 bytes, must end before limit.
        const buf = this.buf;
        let p = this.pos;
        for (let i = 0; ; i++) {
          if (i === 10) fail('varint longer than 10 bytes');
          if (p >= limit) fail('truncated varint');
          if (buf[p++] < 0x80) break;
        }
        this.pos = p;
        return;
      }
      case WIRE_I64:
        if (this.pos + 8 > limit) fail('truncated 64-bit field');
        this.pos += 8;
        return;
      case WIRE_LEN:
        this.pos = this.lenEnd(limit);
        return;
      case WIRE_I32:
        if (this.pos + 4 > limit) fail('truncated 32-bit field');
        this.pos += 4;
        return;
      default:
        fail(`unsupported wire type ${wireType}`);
    }
  }
}

/** Reads a field key; returns field number * 8 + wire type, after checking both are sane. */
function readKey(r: Reader, limit: number): number {
  const key = r.varint(limit);
  if (key < 8) fail(`field number 0 (key ${key})`);
  if (key > UINT32_MAX) fail(`field number ${Math.floor(key / 8)} is beyond 2^29 - 1`);
  const wireType = key & 7;
  if (wireType !== WIRE_VARINT && wireType !== WIRE_I64 && wireType !== WIRE_LEN && wireType !== WIRE_I32) {
    fail(`unsupported wire type ${wireType}`);
  }
  return key;
}

function expectWire(key: number, wireType: number, what: string): void {
  if ((key & 7) !== wireType) fail(`${what} has wire type ${key & 7}, expected ${wireType}`);
}

function readUint32(r: Reader, limit: number, what: string): number {
  const v = r.varint(limit);
  if (v > UINT32_MAX) fail(`${what} ${v} does not fit uint32`);
  return v;
}

/** Repeated uint64: accepts both packed (one length-delimited run) and unpacked (one varint) forms. */
function readRepeatedUint(r: Reader, key: number, limit: number, into: number[]): void {
  if ((key & 7) === WIRE_VARINT) {
    into.push(r.varint(limit));
    return;
  }
  if ((key & 7) !== WIRE_LEN) fail(`repeated uint64 field ${key >>> 3} has wire type ${key & 7}`);
  const end = r.lenEnd(limit);
  while (r.pos < end) into.push(r.varint(end));
}

function readEntry(r: Reader, limit: number): Entry {
  const entry: Entry = { term: 0, index: 0, type: 'normal', data: EMPTY };
  while (r.pos < limit) {
    const key = readKey(r, limit);
    switch (key >>> 3) {
      case 1:
        expectWire(key, WIRE_VARINT, 'Entry.term');
        entry.term = r.varint(limit);
        break;
      case 2:
        expectWire(key, WIRE_VARINT, 'Entry.index');
        entry.index = r.varint(limit);
        break;
      case 3: {
        expectWire(key, WIRE_VARINT, 'Entry.type');
        const code = r.varint(limit);
        const type = ENTRY_TYPE_BY_CODE[code];
        if (type === undefined) fail(`unknown entry type ${code}`);
        entry.type = type;
        break;
      }
      case 4: {
        expectWire(key, WIRE_LEN, 'Entry.data');
        const end = r.lenEnd(limit);
        entry.data = end > r.pos ? r.buf.subarray(r.pos, end) : EMPTY;
        r.pos = end;
        break;
      }
      default:
        r.skip(key & 7, limit);
    }
  }
  return entry;
}

function readConfState(r: Reader, limit: number, snapshot: SnapshotMeta): void {
  while (r.pos < limit) {
    const key = readKey(r, limit);
    switch (key >>> 3) {
      case 1:
        readRepeatedUint(r, key, limit, snapshot.confState.voters);
        break;
      case 2:
        readRepeatedUint(r, key, limit, snapshot.confState.learners);
        break;
      default:
        r.skip(key & 7, limit);
    }
  }
}

function readSnapshot(r: Reader, limit: number, snapshot: SnapshotMeta): void {
  while (r.pos < limit) {
    const key = readKey(r, limit);
    switch (key >>> 3) {
      case 1:
        expectWire(key, WIRE_VARINT, 'SnapshotMeta.index');
        snapshot.index = r.varint(limit);
        break;
      case 2:
        expectWire(key, WIRE_VARINT, 'SnapshotMeta.term');
        snapshot.term = r.varint(limit);
        break;
      case 3: {
        expectWire(key, WIRE_LEN, 'SnapshotMeta.conf_state');
        const end = r.lenEnd(limit);
        readConfState(r, end, snapshot);
        break;
      }
      default:
        r.skip(key & 7, limit);
    }
  }
}

function newMessage(): Message {
  return {
    type: 'prop',
    from: 0,
    to: 0,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    context: EMPTY,
  };
}

/** Reads a RaftMessage body into m (a repeated occurrence merges, as protobuf specifies). */
function readMessage(r: Reader, limit: number, m: Message): void {
  while (r.pos < limit) {
    const key = readKey(r, limit);
    switch (key >>> 3) {
      case 1: {
        expectWire(key, WIRE_VARINT, 'RaftMessage.type');
        const code = r.varint(limit);
        const type = MESSAGE_TYPE_BY_CODE[code];
        if (type === undefined) fail(`unknown raft message type ${code}`);
        m.type = type;
        break;
      }
      case 2:
        expectWire(key, WIRE_VARINT, 'RaftMessage.from');
        m.from = r.varint(limit);
        break;
      case 3:
        expectWire(key, WIRE_VARINT, 'RaftMessage.to');
        m.to = r.varint(limit);
        break;
      case 4:
        expectWire(key, WIRE_VARINT, 'RaftMessage.term');
        m.term = r.varint(limit);
        break;
      case 5:
        expectWire(key, WIRE_VARINT, 'RaftMessage.log_term');
        m.logTerm = r.varint(limit);
        break;
      case 6:
        expectWire(key, WIRE_VARINT, 'RaftMessage.index');
        m.index = r.varint(limit);
        break;
      case 7: {
        expectWire(key, WIRE_LEN, 'RaftMessage.entries');
        const end = r.lenEnd(limit);
        m.entries.push(readEntry(r, end));
        break;
      }
      case 8:
        expectWire(key, WIRE_VARINT, 'RaftMessage.commit');
        m.commit = r.varint(limit);
        break;
      case 9:
        expectWire(key, WIRE_VARINT, 'RaftMessage.reject');
        m.reject = r.varint(limit) !== 0;
        break;
      case 10:
        expectWire(key, WIRE_VARINT, 'RaftMessage.reject_hint');
        m.rejectHint = r.varint(limit);
        break;
      case 11: {
        expectWire(key, WIRE_LEN, 'RaftMessage.context');
        const end = r.lenEnd(limit);
        m.context = end > r.pos ? r.buf.subarray(r.pos, end) : EMPTY;
        r.pos = end;
        break;
      }
      case 12: {
        expectWire(key, WIRE_LEN, 'RaftMessage.snapshot');
        const end = r.lenEnd(limit);
        m.snapshot ??= { index: 0, term: 0, confState: { voters: [], learners: [] } };
        readSnapshot(r, end, m.snapshot);
        break;
      }
      case 13:
        expectWire(key, WIRE_VARINT, 'RaftMessage.quiesce');
        if (r.varint(limit) !== 0) m.quiesce = true;
        break;
      case 14:
        expectWire(key, WIRE_VARINT, 'RaftMessage.commit_only');
        if (r.varint(limit) !== 0) m.commitOnly = true;
        break;
      default:
        r.skip(key & 7, limit);
    }
  }
}

function readEnvelope(r: Reader, limit: number): FrameEnvelope {
  let groupId = 0;
  let message: Message | null = null;
  while (r.pos < limit) {
    const key = readKey(r, limit);
    switch (key >>> 3) {
      case 1:
        expectWire(key, WIRE_VARINT, 'Envelope.group_id');
        groupId = readUint32(r, limit, 'group id');
        break;
      case 2: {
        expectWire(key, WIRE_LEN, 'Envelope.message');
        const end = r.lenEnd(limit);
        message ??= newMessage();
        readMessage(r, end, message);
        break;
      }
      default:
        r.skip(key & 7, limit);
    }
  }
  if (message === null) fail('envelope without a message');
  return { groupId, message };
}

/** Decodes a Batch frame (transport.proto). Throws an Error on malformed input. */
export function decodeBatch(buf: Buffer): FrameBatch {
  const r = new Reader(buf);
  const limit = buf.length;
  const batch: FrameBatch = { clusterId: 0, fromMember: 0, toMember: 0, envelopes: [] };
  while (r.pos < limit) {
    const key = readKey(r, limit);
    switch (key >>> 3) {
      case 1:
        expectWire(key, WIRE_VARINT, 'Batch.cluster_id');
        batch.clusterId = r.varint(limit);
        break;
      case 2:
        expectWire(key, WIRE_VARINT, 'Batch.from_member');
        batch.fromMember = r.varint(limit);
        break;
      case 3:
        expectWire(key, WIRE_VARINT, 'Batch.to_member');
        batch.toMember = r.varint(limit);
        break;
      case 4: {
        expectWire(key, WIRE_LEN, 'Batch.envelopes');
        const end = r.lenEnd(limit);
        batch.envelopes.push(readEnvelope(r, end));
        break;
      }
      case 5: {
        expectWire(key, WIRE_LEN, 'Batch.calls');
        const end = r.lenEnd(limit);
        (batch.calls ??= []).push(readCall(r, end));
        break;
      }
      case 6: {
        expectWire(key, WIRE_LEN, 'Batch.replies');
        const end = r.lenEnd(limit);
        (batch.replies ??= []).push(readReply(r, end));
        break;
      }
      default:
        r.skip(key & 7, limit);
    }
  }
  return batch;
}

function readString(r: Reader, limit: number): string {
  const end = r.lenEnd(limit);
  const str = r.buf.toString('utf8', r.pos, end);
  r.pos = end;
  return str;
}

function readBytes(r: Reader, limit: number): Buffer {
  const end = r.lenEnd(limit);
  const bytes = end > r.pos ? r.buf.subarray(r.pos, end) : EMPTY;
  r.pos = end;
  return bytes;
}

function readCall(r: Reader, limit: number): StreamCall {
  const call: StreamCall = { callId: 0, method: '', payload: EMPTY };
  while (r.pos < limit) {
    const key = readKey(r, limit);
    switch (key >>> 3) {
      case 1:
        expectWire(key, WIRE_VARINT, 'StreamCall.call_id');
        call.callId = r.varint(limit);
        break;
      case 2:
        expectWire(key, WIRE_LEN, 'StreamCall.method');
        call.method = readString(r, limit);
        break;
      case 3:
        expectWire(key, WIRE_LEN, 'StreamCall.payload');
        call.payload = readBytes(r, limit);
        break;
      default:
        r.skip(key & 7, limit);
    }
  }
  return call;
}

function readReply(r: Reader, limit: number): StreamReply {
  const reply: StreamReply = { callId: 0, payload: EMPTY, errorCode: 0, errorDetails: '' };
  while (r.pos < limit) {
    const key = readKey(r, limit);
    switch (key >>> 3) {
      case 1:
        expectWire(key, WIRE_VARINT, 'StreamReply.call_id');
        reply.callId = r.varint(limit);
        break;
      case 2:
        expectWire(key, WIRE_LEN, 'StreamReply.payload');
        reply.payload = readBytes(r, limit);
        break;
      case 3:
        expectWire(key, WIRE_VARINT, 'StreamReply.error_code');
        reply.errorCode = readUint32(r, limit, 'error code');
        break;
      case 4:
        expectWire(key, WIRE_LEN, 'StreamReply.error_details');
        reply.errorDetails = readString(r, limit);
        break;
      default:
        r.skip(key & 7, limit);
    }
  }
  return reply;
}

/** Decodes a StreamHello. */
export function decodeStreamHello(buf: Buffer): StreamHello {
  const r = new Reader(buf);
  const limit = buf.length;
  const hello: StreamHello = { clusterId: 0, memberId: 0 };
  while (r.pos < limit) {
    const key = readKey(r, limit);
    switch (key >>> 3) {
      case 1:
        expectWire(key, WIRE_VARINT, 'StreamHello.cluster_id');
        hello.clusterId = r.varint(limit);
        break;
      case 2:
        expectWire(key, WIRE_VARINT, 'StreamHello.member_id');
        hello.memberId = r.varint(limit);
        break;
      case 3:
        expectWire(key, WIRE_LEN, 'StreamHello.stream_services');
        (hello.streamServices ??= []).push(readString(r, limit));
        break;
      case 4:
        expectWire(key, WIRE_VARINT, 'StreamHello.apply_rules');
        hello.applyRules = r.varint(limit);
        break;
      case 5:
        expectWire(key, WIRE_VARINT, 'StreamHello.unix_ms');
        hello.unixMs = r.varint(limit);
        break;
      default:
        r.skip(key & 7, limit);
    }
  }
  return hello;
}

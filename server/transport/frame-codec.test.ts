// Checks the hand-written peer frame codec (frame-codec.ts): round trips of arbitrary batches,
// byte compatibility both ways with proto-loader (the codec it replaced, so members of either
// version interoperate) and with protobufjs encodings a conforming peer may send (unpacked repeated
// fields, unknown fields, any field order, merged repeats), and that malformed frames throw.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Entry, Message, MessageType, SnapshotMeta } from '../raft/types.ts';
import { decodeBatch, decodeStreamHello, encodeBatch, encodeFrames, encodeStreamHello, type FrameBatch } from './frame-codec.ts';
import { messageFromWire, messageToWire, type WireBatch } from './wire.ts';

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');
const PROTO_FILE = path.join(PROTO_ROOT, 'synod', 'transport.proto');
const PROTO_TEXT = fs.readFileSync(PROTO_FILE, 'utf8');

// ---------------------------------------------------------------------------------------------
// The old path: proto-loader with the options peer-transport.ts used before the codec.

const loaderDef = protoLoader.loadSync('synod/transport.proto', {
  keepCase: true,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  includeDirs: [PROTO_ROOT],
});
const streamMethod = (loaderDef['synod.transport.Peer'] as protoLoader.ServiceDefinition).Stream;
const loaderSerializeBatch = (b: WireBatch): Buffer => streamMethod.requestSerialize(b);
const loaderDeserializeBatch = (buf: Buffer): WireBatch => streamMethod.requestDeserialize(buf) as WireBatch;

function oldEncode(b: FrameBatch): Buffer {
  return loaderSerializeBatch({
    cluster_id: b.clusterId,
    from_member: b.fromMember,
    to_member: b.toMember,
    envelopes: b.envelopes.map((e) => ({ group_id: e.groupId, message: messageToWire(e.message) })),
  });
}

function oldDecode(buf: Buffer): FrameBatch {
  const w = loaderDeserializeBatch(buf);
  return {
    clusterId: Number(w.cluster_id),
    fromMember: Number(w.from_member),
    toMember: Number(w.to_member),
    envelopes: w.envelopes.map((e) => ({ groupId: e.group_id, message: messageFromWire(e.message) })),
  };
}

// protobufjs schemas a conforming peer might use: the same proto, with unpacked repeated fields,
// or with extra fields this version does not know (a newer peer).
function schema(text: string): protobuf.Type {
  return protobuf.parse(text, { keepCase: true }).root.lookupType('synod.transport.Batch');
}
const UNPACKED_TEXT = PROTO_TEXT.replace('repeated uint64 voters = 1;', 'repeated uint64 voters = 1 [packed = false];').replace(
  'repeated uint64 learners = 2;',
  'repeated uint64 learners = 2 [packed = false];',
);
const EXTRA_FIELDS = `
  fixed64 x_fixed64 = 100;
  fixed32 x_fixed32 = 101;
  string x_string = 102;
  uint64 x_varint = 103;
  ConfState x_message = 104;
  repeated sint64 x_packed = 105;
  double x_double = 106;
  float x_float = 107;
`;
const EXTENDED_TEXT = ['Entry', 'ConfState', 'SnapshotMeta', 'RaftMessage', 'Envelope', 'Batch'].reduce(
  (text, name) => text.replace(new RegExp(`message ${name} \\{`), `message ${name} {${EXTRA_FIELDS}`),
  UNPACKED_TEXT,
);
const PackedBatch = schema(PROTO_TEXT);
const UnpackedBatch = schema(UNPACKED_TEXT);
const ExtendedBatch = schema(EXTENDED_TEXT);

const EXTRA_VALUES = {
  x_fixed64: 123456789,
  x_fixed32: 7,
  x_string: 'from the future',
  x_varint: 2 ** 60, // an unknown field may hold any value; only known fields are range-checked
  x_message: { voters: [9, 8] },
  x_packed: [-1, 5],
  x_double: 1.5,
  x_float: 2.5,
};

/** A protobufjs plain object for a batch, optionally with unknown fields in every message. */
function toPlain(b: FrameBatch, extra: boolean): Record<string, unknown> {
  const x = extra ? EXTRA_VALUES : {};
  const snap = (s: SnapshotMeta): Record<string, unknown> => ({
    index: s.index,
    term: s.term,
    conf_state: { voters: s.confState.voters, learners: s.confState.learners, ...x },
    ...x,
  });
  const msg = (m: Message): Record<string, unknown> => ({
    type: TYPES.indexOf(m.type),
    from: m.from,
    to: m.to,
    term: m.term,
    log_term: m.logTerm,
    index: m.index,
    entries: m.entries.map((e) => ({ term: e.term, index: e.index, type: e.type === 'confChange' ? 1 : 0, data: e.data, ...x })),
    commit: m.commit,
    reject: m.reject,
    reject_hint: m.rejectHint,
    context: m.context,
    ...(m.snapshot ? { snapshot: snap(m.snapshot) } : {}),
    ...x,
  });
  return {
    cluster_id: b.clusterId,
    from_member: b.fromMember,
    to_member: b.toMember,
    envelopes: b.envelopes.map((e) => ({ group_id: e.groupId, message: msg(e.message), ...x })),
    ...x,
  };
}

function protobufjsEncode(type: protobuf.Type, b: FrameBatch, extra = false): Buffer {
  return Buffer.from(type.encode(type.fromObject(toPlain(b, extra))).finish());
}

// ---------------------------------------------------------------------------------------------
// Reordering fields of an encoding (keeping the order of a repeated field's elements).

/** Which fields hold submessages, by message: field number -> the submessage's name. */
const SUBMESSAGES: Record<string, Record<number, string>> = {
  Batch: { 4: 'Envelope' },
  Envelope: { 2: 'RaftMessage' },
  RaftMessage: { 7: 'Entry', 12: 'SnapshotMeta' },
  SnapshotMeta: { 3: 'ConfState' },
  Entry: {},
  ConfState: {},
};

function writeVarint(v: number): number[] {
  const out: number[] = [];
  while (v > 0x7f) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** Re-encodes `buf` (a `name` message) with its fields grouped in an order given by `rank`. */
function reorder(buf: Uint8Array, name: string, rank: (field: number) => number): Buffer {
  const reader = protobuf.Reader.create(buf);
  const fields: Array<{ field: number; bytes: Buffer }> = [];
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const key = reader.uint32();
    const field = key >>> 3;
    const sub = SUBMESSAGES[name][field];
    if (sub !== undefined && (key & 7) === 2) {
      const body = reader.bytes();
      const inner = reorder(body, sub, rank);
      fields.push({ field, bytes: Buffer.concat([Buffer.from(writeVarint(key)), Buffer.from(writeVarint(inner.length)), inner]) });
    } else {
      reader.skipType(key & 7);
      fields.push({ field, bytes: Buffer.from(buf.subarray(start, reader.pos)) });
    }
  }
  // Stable sort: elements of one repeated field keep their relative order.
  const sorted = fields.map((f, i) => ({ ...f, i })).sort((a, b) => rank(a.field) - rank(b.field) || a.i - b.i);
  return Buffer.concat(sorted.map((f) => f.bytes));
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const TYPES: MessageType[] = [
  'prop',
  'app',
  'appResp',
  'vote',
  'voteResp',
  'preVote',
  'preVoteResp',
  'heartbeat',
  'heartbeatResp',
  'readIndex',
  'readIndexResp',
  'timeoutNow',
  'snap',
];

/** Mostly small values (as in a running cluster), sometimes anything up to 2^53 - 1. */
const uint = fc.oneof(
  { weight: 2, arbitrary: fc.constant(0) },
  { weight: 4, arbitrary: fc.nat(1000) },
  { weight: 1, arbitrary: fc.integer({ min: 2 ** 31 - 2, max: 2 ** 32 + 2 }) },
  { weight: 1, arbitrary: fc.maxSafeNat() },
);
const bytes = fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 1, maxLength: 400 }));

const entryArb: fc.Arbitrary<Entry> = fc.record({
  term: uint,
  index: uint,
  type: fc.constantFrom('normal' as const, 'confChange' as const),
  data: bytes,
});

const snapshotArb: fc.Arbitrary<SnapshotMeta> = fc.record({
  index: uint,
  term: uint,
  confState: fc.record({ voters: fc.array(uint, { maxLength: 7 }), learners: fc.array(uint, { maxLength: 3 }) }),
});

const messageArb: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom(...TYPES),
    from: uint,
    to: uint,
    term: uint,
    logTerm: uint,
    index: uint,
    entries: fc.array(entryArb, { maxLength: 4 }),
    commit: uint,
    reject: fc.boolean(),
    rejectHint: uint,
    context: bytes,
    snapshot: fc.option(snapshotArb, { nil: undefined }),
  })
  .map((m) => {
    const { snapshot, ...rest } = m;
    return snapshot ? { ...rest, snapshot } : rest;
  });

const batchArb: fc.Arbitrary<FrameBatch> = fc.record({
  clusterId: uint,
  fromMember: uint,
  toMember: uint,
  envelopes: fc.array(
    fc.record({
      groupId: fc.oneof(fc.nat(3), fc.integer({ min: 0, max: 0xffffffff })),
      message: messageArb,
    }),
    { maxLength: 5 },
  ),
});

/** A comparable form: bytes as hex, and whether `snapshot` is present at all. */
function canon(b: FrameBatch): unknown {
  return {
    clusterId: b.clusterId,
    fromMember: b.fromMember,
    toMember: b.toMember,
    envelopes: b.envelopes.map(({ groupId, message: m }) => ({
      groupId,
      message: {
        ...m,
        entries: m.entries.map((e) => ({ ...e, data: Buffer.from(e.data).toString('hex') })),
        context: Buffer.from(m.context).toString('hex'),
        hasSnapshot: 'snapshot' in m,
      },
    })),
  };
}

/** A typical frame: an append with one ~300-byte entry. */
function appFrame(): FrameBatch {
  return {
    clusterId: 0x1234_5678_9abc,
    fromMember: 0x1f_ffff_ffff_fff0,
    toMember: 0x0a_bcde_f012_3456,
    envelopes: [
      {
        groupId: 0,
        message: {
          type: 'app',
          from: 0x1f_ffff_ffff_fff0,
          to: 0x0a_bcde_f012_3456,
          term: 3,
          logTerm: 3,
          index: 41_000,
          entries: [{ term: 3, index: 41_001, type: 'normal', data: Buffer.alloc(300, 7) }],
          commit: 40_999,
          reject: false,
          rejectHint: 0,
          context: new Uint8Array(0),
        },
      },
    ],
  };
}

const RUNS = { numRuns: 300 };

// ---------------------------------------------------------------------------------------------

describe('frame codec round trip', () => {
  it('decodes what it encodes, for arbitrary batches of every message type', () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        expect(canon(decodeBatch(encodeBatch(b)))).toEqual(canon(b));
      }),
      RUNS,
    );
  });

  it('keeps conf change entries, snapshots with voters and learners, reject hints and contexts', () => {
    const b: FrameBatch = {
      clusterId: 1,
      fromMember: 2,
      toMember: 3,
      envelopes: [
        {
          groupId: 0,
          message: {
            type: 'app',
            from: 2,
            to: 3,
            term: 5,
            logTerm: 4,
            index: 10,
            entries: [
              { term: 5, index: 11, type: 'confChange', data: Buffer.from('cc') },
              { term: 5, index: 12, type: 'normal', data: new Uint8Array(0) },
            ],
            commit: 9,
            reject: false,
            rejectHint: 0,
            context: new Uint8Array(0),
          },
        },
        {
          groupId: 7,
          message: {
            type: 'snap',
            from: 2,
            to: 3,
            term: 5,
            logTerm: 0,
            index: 0,
            entries: [],
            commit: 0,
            reject: false,
            rejectHint: 0,
            context: new Uint8Array(0),
            snapshot: { index: 100, term: 4, confState: { voters: [2, 3, 2 ** 52 + 1], learners: [9] } },
          },
        },
        {
          groupId: 1,
          message: {
            type: 'appResp',
            from: 3,
            to: 2,
            term: 5,
            logTerm: 0,
            index: 10,
            entries: [],
            commit: 0,
            reject: true,
            rejectHint: 8,
            context: Buffer.from([1, 2, 3]),
          },
        },
      ],
    };
    const decoded = decodeBatch(encodeBatch(b));
    expect(canon(decoded)).toEqual(canon(b));
    expect(decoded.envelopes[1].message.snapshot).toEqual({ index: 100, term: 4, confState: { voters: [2, 3, 2 ** 52 + 1], learners: [9] } });
    expect(decoded.envelopes[0].message.entries[1].data.byteLength).toBe(0);
    expect(Buffer.isBuffer(decoded.envelopes[0].message.context)).toBe(true);
  });

  it('encodes a batch without envelopes and a message with only defaults', () => {
    expect(encodeBatch({ clusterId: 0, fromMember: 0, toMember: 0, envelopes: [] }).length).toBe(0);
    const empty: Message = { type: 'prop', from: 0, to: 0, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0) };
    const b = { clusterId: 1, fromMember: 1, toMember: 2, envelopes: [{ groupId: 0, message: empty }] };
    expect(canon(decodeBatch(encodeBatch(b)))).toEqual(canon(b));
  });

  it('round-trips a StreamHello, and proto-loader reads it', () => {
    const hello = { clusterId: 2 ** 53 - 1, memberId: 42 };
    const buf = encodeStreamHello(hello);
    expect(decodeStreamHello(buf)).toEqual(hello);
    expect(streamMethod.responseDeserialize(buf)).toEqual({ cluster_id: 2 ** 53 - 1, member_id: 42, stream_services: [], apply_rules: 0, unix_ms: 0 });
    expect(decodeStreamHello(streamMethod.responseSerialize({ cluster_id: 7, member_id: 8 }))).toEqual({ clusterId: 7, memberId: 8 });
  });

  it('carries the apply rules a member implements in its StreamHello, as proto-loader encodes them; absent from an older member', () => {
    const hello = { clusterId: 3, memberId: 4, applyRules: 1 };
    const buf = encodeStreamHello(hello);
    expect(decodeStreamHello(buf)).toEqual(hello);
    expect(streamMethod.responseDeserialize(buf)).toMatchObject({ cluster_id: 3, member_id: 4, apply_rules: 1 });
    expect(decodeStreamHello(streamMethod.responseSerialize({ cluster_id: 3, member_id: 4, apply_rules: 1 }))).toEqual(hello);
    expect(decodeStreamHello(encodeStreamHello({ clusterId: 3, memberId: 4 })).applyRules).toBeUndefined();
  });

  it('carries the sender\'s wall clock in its StreamHello, as proto-loader encodes it; absent from an older member', () => {
    const hello = { clusterId: 3, memberId: 4, applyRules: 4, unixMs: 1_796_568_713_622 };
    const buf = encodeStreamHello(hello);
    expect(decodeStreamHello(buf)).toEqual(hello);
    expect(streamMethod.responseDeserialize(buf)).toMatchObject({ cluster_id: 3, member_id: 4, unix_ms: 1_796_568_713_622 });
    expect(decodeStreamHello(streamMethod.responseSerialize({ cluster_id: 3, member_id: 4, apply_rules: 4, unix_ms: 1_796_568_713_622 }))).toEqual(hello);
    expect(decodeStreamHello(encodeStreamHello({ clusterId: 3, memberId: 4 })).unixMs).toBeUndefined();
  });

  it('carries the services a member serves on its streams in its StreamHello, as proto-loader encodes them', () => {
    const hello = { clusterId: 3, memberId: 4, streamServices: ['synod.shard.ShardPeer', 'x.Ünïcode', ''] };
    const buf = encodeStreamHello(hello);
    expect(decodeStreamHello(buf)).toEqual(hello);
    expect(streamMethod.responseDeserialize(buf)).toEqual({ cluster_id: 3, member_id: 4, stream_services: ['synod.shard.ShardPeer', 'x.Ünïcode', ''], apply_rules: 0, unix_ms: 0 });
    expect(buf.equals(streamMethod.responseSerialize({ cluster_id: 3, member_id: 4, stream_services: hello.streamServices }))).toBe(true);
  });

  it('carries calls and replies beside the Raft messages, in the bytes proto-loader reads and writes', () => {
    const msg: Message = { type: 'heartbeat', from: 1, to: 2, term: 7, logTerm: 0, index: 0, entries: [], commit: 9, reject: false, rejectHint: 0, context: Buffer.from([1]) };
    const b: FrameBatch = {
      clusterId: 5,
      fromMember: 1,
      toMember: 2,
      envelopes: [{ groupId: 3, message: msg }],
      calls: [
        { callId: 1, method: '/synod.shard.ShardPeer/Revisions', payload: Buffer.from([0x0a, 0x01, 0x61]) },
        { callId: 2 ** 53 - 1, method: '/a/B', payload: Buffer.alloc(0) },
      ],
      replies: [
        { callId: 7, payload: Buffer.from('answer'), errorCode: 0, errorDetails: '' },
        { callId: 8, payload: Buffer.alloc(0), errorCode: 14, errorDetails: 'ünavailable' },
      ],
    };
    const buf = encodeBatch(b);
    const back = decodeBatch(buf);
    expect(canon(back)).toEqual(canon(b));
    expect(back.calls).toEqual(b.calls);
    expect(back.replies).toEqual(b.replies);
    const wire = loaderDeserializeBatch(buf) as WireBatch & { calls: unknown[]; replies: unknown[] };
    expect(wire.calls).toEqual([
      { call_id: 1, method: '/synod.shard.ShardPeer/Revisions', payload: Buffer.from([0x0a, 0x01, 0x61]) },
      { call_id: 2 ** 53 - 1, method: '/a/B', payload: Buffer.alloc(0) },
    ]);
    expect(wire.replies).toEqual([
      { call_id: 7, payload: Buffer.from('answer'), error_code: 0, error_details: '' },
      { call_id: 8, payload: Buffer.alloc(0), error_code: 14, error_details: 'ünavailable' },
    ]);
    // What proto-loader writes (it keeps explicit defaults) decodes to the same calls and replies.
    const fromLoader = decodeBatch(loaderSerializeBatch(wire));
    expect(fromLoader.calls).toEqual(b.calls);
    expect(fromLoader.replies).toEqual(b.replies);
    // A batch of calls alone (no Raft message this turn) decodes with no envelopes.
    const alone = decodeBatch(encodeBatch({ clusterId: 5, fromMember: 1, toMember: 2, envelopes: [], replies: b.replies }));
    expect(alone.envelopes).toEqual([]);
    expect(alone.calls).toBeUndefined();
    expect(alone.replies).toEqual(b.replies);
  });

  it('splits a turn too large for one frame: the Raft messages first, then the calls and replies, every frame within the budget', () => {
    const msg = (i: number): Message => ({ type: 'app', from: 1, to: 2, term: 1, logTerm: 1, index: i, entries: [{ term: 1, index: i + 1, type: 'normal', data: Buffer.alloc(3000, i) }], commit: 0, reject: false, rejectHint: 0, context: Buffer.alloc(0) });
    const b: FrameBatch = {
      clusterId: 5,
      fromMember: 1,
      toMember: 2,
      envelopes: Array.from({ length: 6 }, (_, i) => ({ groupId: i, message: msg(i) })),
      calls: Array.from({ length: 5 }, (_, i) => ({ callId: i + 1, method: '/s/M', payload: Buffer.alloc(2500, i) })),
      replies: Array.from({ length: 3 }, (_, i) => ({ callId: 100 + i, payload: Buffer.alloc(2500, i), errorCode: 0, errorDetails: '' })),
    };
    const frames = encodeFrames(b, 8 * 1024);
    expect(frames.length).toBeGreaterThan(2);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(8 * 1024);
    const decoded = frames.map(decodeBatch);
    expect(decoded.flatMap((d) => d.envelopes).map((e) => e.groupId)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(decoded.flatMap((d) => d.calls ?? [])).toEqual(b.calls);
    expect(decoded.flatMap((d) => d.replies ?? [])).toEqual(b.replies);
    const firstSide = decoded.findIndex((d) => (d.calls?.length ?? 0) + (d.replies?.length ?? 0) > 0);
    expect(decoded.slice(firstSide).every((d) => d.envelopes.length === 0)).toBe(true);
    expect(() => encodeFrames({ ...b, envelopes: [], calls: [{ callId: 1, method: '/s/M', payload: Buffer.alloc(9000) }], replies: [] }, 8 * 1024)).toThrow(/stream call of \d+ bytes exceeds the frame budget/);
  });
});

describe('frame codec compatibility with proto-loader (the previous codec)', () => {
  it('proto-loader decodes the codec frames to the same messages', () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        expect(canon(oldDecode(encodeBatch(b)))).toEqual(canon(b));
      }),
      RUNS,
    );
  });

  it('the codec decodes proto-loader frames to exactly what messageFromWire produced', () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        const bytes = oldEncode(b);
        expect(canon(decodeBatch(bytes))).toEqual(canon(oldDecode(bytes)));
        expect(canon(decodeBatch(bytes))).toEqual(canon(b));
      }),
      RUNS,
    );
  });

  it('decoded messages have the same properties as messageFromWire output', () => {
    const b = appFrame();
    b.envelopes.push({ groupId: 1, message: { ...b.envelopes[0].message, type: 'snap', entries: [], snapshot: { index: 5, term: 1, confState: { voters: [1], learners: [] } } } });
    const bytes = oldEncode(b);
    const mine = decodeBatch(bytes).envelopes.map((e) => e.message);
    const old = oldDecode(bytes).envelopes.map((e) => e.message);
    for (let i = 0; i < mine.length; i++) {
      expect(Object.keys(mine[i]).sort()).toEqual(Object.keys(old[i]).sort());
      expect(Object.keys(mine[i].entries[0] ?? {}).sort()).toEqual(Object.keys(old[i].entries[0] ?? {}).sort());
    }
  });
});

describe('frame codec accepts any conforming encoding', () => {
  it('reads protobufjs encodings, packed and unpacked', () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        expect(canon(decodeBatch(protobufjsEncode(PackedBatch, b)))).toEqual(canon(b));
        expect(canon(decodeBatch(protobufjsEncode(UnpackedBatch, b)))).toEqual(canon(b));
      }),
      RUNS,
    );
  });

  it('protobufjs decodes codec frames to the same values', () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        const decoded = PackedBatch.toObject(PackedBatch.decode(encodeBatch(b)), { longs: Number, enums: Number, bytes: Buffer, defaults: true, arrays: true });
        expect(decoded).toEqual(
          PackedBatch.toObject(PackedBatch.decode(protobufjsEncode(PackedBatch, b)), { longs: Number, enums: Number, bytes: Buffer, defaults: true, arrays: true }),
        );
      }),
      RUNS,
    );
  });

  it('skips unknown fields of every wire type in every message', () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        const bytes = protobufjsEncode(ExtendedBatch, b, true);
        expect(canon(decodeBatch(bytes))).toEqual(canon(b));
      }),
      { numRuns: 100 },
    );
  });

  it('reads fields in any order', () => {
    fc.assert(
      fc.property(batchArb, fc.array(fc.nat(1000), { minLength: 120, maxLength: 120 }), (b, ranks) => {
        const rank = (field: number): number => ranks[field % ranks.length];
        expect(canon(decodeBatch(reorder(encodeBatch(b), 'Batch', rank)))).toEqual(canon(b));
        expect(canon(decodeBatch(reorder(protobufjsEncode(ExtendedBatch, b, true), 'Batch', rank)))).toEqual(canon(b));
      }),
      { numRuns: 100 },
    );
  });

  it('merges a repeated occurrence of a message as protobuf does (concatenated frames)', () => {
    fc.assert(
      fc.property(batchArb, batchArb, (a, b) => {
        const merged = decodeBatch(Buffer.concat([encodeBatch(a), encodeBatch(b)]));
        expect(canon(merged)).toEqual(
          canon({
            clusterId: b.clusterId || a.clusterId,
            fromMember: b.fromMember || a.fromMember,
            toMember: b.toMember || a.toMember,
            envelopes: [...a.envelopes, ...b.envelopes],
          }),
        );
      }),
      { numRuns: 100 },
    );
    // Two occurrences of one RaftMessage field: scalars last-wins, entries appended, snapshot merged.
    const part1 = Buffer.from([0x08, 0x01, 0x20, 0x05, 0x3a, 0x02, 0x08, 0x02, 0x62, 0x04, 0x1a, 0x02, 0x08, 0x01]);
    const part2 = Buffer.from([0x20, 0x06, 0x3a, 0x02, 0x10, 0x03, 0x62, 0x06, 0x08, 0x09, 0x1a, 0x02, 0x08, 0x02]);
    const envelope = Buffer.concat([Buffer.from([0x12, part1.length]), part1, Buffer.from([0x12, part2.length]), part2]);
    const frame = Buffer.concat([Buffer.from([0x22, envelope.length]), envelope]);
    const m = decodeBatch(frame).envelopes[0].message;
    expect(m.type).toBe('app');
    expect(m.term).toBe(6);
    expect(m.entries.map((e) => [e.term, e.index])).toEqual([[2, 0], [0, 3]]);
    expect(m.snapshot).toEqual({ index: 9, term: 0, confState: { voters: [1, 2], learners: [] } });
  });

  it('reads non-minimal varints up to 10 bytes', () => {
    // cluster_id = 5 written in 10 bytes; from_member = 2^53 - 1.
    const frame = Buffer.from([0x08, 0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x10, ...writeVarint(2 ** 53 - 1)]);
    expect(decodeBatch(frame)).toEqual({ clusterId: 5, fromMember: 2 ** 53 - 1, toMember: 0, envelopes: [] });
  });
});

describe('frame codec rejects malformed frames', () => {
  const cases: Array<[string, number[], RegExp]> = [
    ['a truncated varint', [0x08, 0x80], /truncated varint/],
    ['a truncated key', [0x80], /truncated varint/],
    ['a length past the end', [0x22, 0x05, 0x08, 0x01], /past the end/],
    ['a nested length past its parent', [0x22, 0x04, 0x12, 0x05, 0x08, 0x01, 0x08, 0x01], /past the end/],
    ['wire type 3 (start group)', [0x0b], /wire type 3/],
    ['wire type 4 (end group)', [0x0c], /wire type 4/],
    ['wire type 6', [0x0e, 0x00], /wire type 6/],
    ['wire type 7', [0x0f, 0x00], /wire type 7/],
    ['field number 0', [0x00, 0x01], /field number 0/],
    ['a field number beyond 2^29 - 1 (that would alias field 1)', [...writeVarint(2 ** 32 + 0x08), 0x01], /beyond 2\^29 - 1/],
    ['a known field with the wrong wire type', [0x0a, 0x01, 0x00], /Batch.cluster_id has wire type 2/],
    ['an unknown message type', [0x22, 0x04, 0x12, 0x02, 0x08, 13], /unknown raft message type 13/],
    ['an unknown entry type', [0x22, 0x06, 0x12, 0x04, 0x3a, 0x02, 0x18, 0x02], /unknown entry type 2/],
    ['a negative (10-byte) message type', [0x22, 0x0d, 0x12, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /2\^53 or more/],
    ['a value of 2^53', [0x08, ...writeVarint(2 ** 53)], /2\^53 or more/],
    ['a varint longer than 10 bytes', [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /longer than 10 bytes/],
    ['an unknown varint field longer than 10 bytes', [0x78, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], /longer than 10 bytes/],
    ['a truncated unknown 64-bit field', [0x79, 1, 2, 3], /truncated 64-bit/],
    ['a truncated unknown 32-bit field', [0x7d, 1, 2], /truncated 32-bit/],
    ['a call with a bad wire type', [0x28, 0x01], /Batch.calls has wire type 0, expected 2/],
    ['a reply whose error code is beyond uint32', [0x32, 0x06, 0x18, ...writeVarint(2 ** 32)], /does not fit uint32/],
    ['an envelope without a message', [0x22, 0x02, 0x08, 0x01], /envelope without a message/],
    ['a group id beyond uint32', [0x22, 0x08, 0x08, ...writeVarint(2 ** 32), 0x12, 0x00], /does not fit uint32/],
    ['a packed run cut inside a varint', [0x22, 0x09, 0x12, 0x07, 0x62, 0x05, 0x1a, 0x03, 0x0a, 0x01, 0x80], /truncated varint/],
    ['a conf state whose repeated field has a bad wire type', [0x22, 0x0a, 0x12, 0x08, 0x62, 0x06, 0x1a, 0x04, 0x0d, 0, 0, 0], /repeated uint64 field 1 has wire type 5/],
  ];
  for (const [what, bytes, error] of cases) {
    it(`throws on ${what}`, () => {
      expect(() => decodeBatch(Buffer.from(bytes))).toThrow(error);
    });
  }

  it('throws a clear Error or returns a batch for any byte string, and never hangs', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          const b = decodeBatch(Buffer.from(bytes));
          expect(Array.isArray(b.envelopes)).toBe(true);
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          expect((err as Error).message).toMatch(/^malformed peer frame: /);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('throws or decodes cleanly on every truncation and byte flip of a valid frame', () => {
    fc.assert(
      fc.property(batchArb, fc.nat(), fc.nat(255), (b, at, value) => {
        const frame = encodeBatch(b);
        if (frame.length === 0) return;
        const cut = at % frame.length;
        const flipped = Buffer.from(frame);
        flipped[cut] = value;
        for (const bytes of [frame.subarray(0, cut), flipped]) {
          try {
            decodeBatch(bytes);
          } catch (err) {
            expect((err as Error).message).toMatch(/^malformed peer frame: /);
          }
        }
      }),
      RUNS,
    );
  });
});

describe('frame codec refuses to encode what the wire cannot carry', () => {
  const base = (): FrameBatch => appFrame();
  const bad: Array<[string, (b: FrameBatch) => void, RegExp]> = [
    ['a cluster id of 2^53', (b) => (b.clusterId = 2 ** 53), /cluster id is 9007199254740992/],
    ['a negative member id', (b) => (b.toMember = -1), /to member is -1/],
    ['a fractional term', (b) => (b.envelopes[0].message.term = 1.5), /message term is 1.5/],
    ['a NaN index', (b) => (b.envelopes[0].message.entries[0].index = Number.NaN), /entry index is NaN/],
    ['an unsafe voter id', (b) => (b.envelopes[0].message.snapshot = { index: 1, term: 1, confState: { voters: [2 ** 64], learners: [] } }), /voter id/],
    ['a group id beyond uint32', (b) => (b.envelopes[0].groupId = 2 ** 32), /does not fit uint32/],
    ['an unknown message type', (b) => (b.envelopes[0].message.type = 'bogus' as MessageType), /unknown raft message type bogus/],
  ];
  for (const [what, mutate, error] of bad) {
    it(`throws on ${what}`, () => {
      const b = base();
      mutate(b);
      expect(() => encodeBatch(b)).toThrow(error);
    });
  }

  it('still encodes correctly after a failed encode', () => {
    const b = base();
    b.envelopes[0].message.snapshot = { index: 1, term: 1, confState: { voters: [1, -2], learners: [] } };
    expect(() => encodeBatch(b)).toThrow();
    const good = appFrame();
    expect(canon(decodeBatch(encodeBatch(good)))).toEqual(canon(good));
  });
});

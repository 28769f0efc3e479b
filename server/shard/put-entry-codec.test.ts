// The hand-written put entry codec against protobufjs (the generic path and the older entries in
// every existing log): same decoded objects both ways, and null (fall back) for what it does not take.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePutEntry, encodePutEntry } from './put-entry-codec.ts';
import { decodeInternalRequest, decodeWithProtobufjs, encodeInternalRequest, encodeWithProtobufjs, internalProtoRoot, type InternalRequest } from './request-codec.ts';

const uint64Text = fc.oneof(
  fc.constantFrom('0', '1', '127', '128', '16384', '268435455', '268435456', '9007199254740991', '9007199254740993', '18446744073709551615'),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(String),
);
const int64Text = fc.oneof(
  fc.constantFrom('0', '1', '-1', '9223372036854775807', '-9223372036854775808', '7587865468917291531'),
  fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }).map(String),
);
const bytes = fc.oneof(fc.constant(Buffer.alloc(0)), fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)));
const putRequest = fc.record({
  key: bytes,
  value: bytes,
  lease: int64Text,
  prev_kv: fc.boolean(),
  ignore_value: fc.boolean(),
  ignore_lease: fc.boolean(),
});
const caller = fc.option(fc.record({ username: fc.oneof(fc.constant(''), fc.string({ maxLength: 20 }), fc.constant('röot ✓')) }), { nil: undefined });
const revision = fc.option(uint64Text.filter((v) => v !== '0'), { nil: undefined });
const proposalTerm = fc.option(uint64Text.filter((v) => v !== '0'), { nil: undefined });
const putEntry = fc.record({ proposer: uint64Text, seq: uint64Text, put: putRequest, caller, revision, proposalTerm }).map((r) => {
  const req = { proposer: r.proposer, seq: r.seq, put: r.put } as InternalRequest;
  if (r.caller !== undefined) req.caller = r.caller;
  if (r.revision !== undefined) req.revision = r.revision;
  if (r.proposalTerm !== undefined) req.proposal_term = r.proposalTerm;
  return req;
});

function plain(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && (x as { type?: string }).type === 'Buffer' ? Buffer.from((x as { data: number[] }).data).toString('hex') : x)));
}

describe('put entry codec', () => {
  it('decodes what protobufjs encodes to exactly what protobufjs decodes (entries already in logs)', () => {
    fc.assert(
      fc.property(putEntry, (req) => {
        const bytesFromProtobufjs = Buffer.from(encodeWithProtobufjs(req));
        const fast = decodePutEntry(bytesFromProtobufjs);
        expect(fast).not.toBeNull();
        expect(plain(fast)).toEqual(plain(decodeWithProtobufjs(bytesFromProtobufjs)));
      }),
      { numRuns: 500 },
    );
  });

  it('encodes what protobufjs decodes to the same request as its own encoding', () => {
    fc.assert(
      fc.property(putEntry, (req) => {
        const fast = encodePutEntry(req);
        expect(fast).not.toBeNull();
        expect(plain(decodeWithProtobufjs(fast!))).toEqual(plain(decodeWithProtobufjs(encodeWithProtobufjs(req))));
        expect(plain(decodeInternalRequest(encodeInternalRequest(req)))).toEqual(plain(decodeWithProtobufjs(encodeWithProtobufjs(req))));
      }),
      { numRuns: 500 },
    );
  });

  it('writes the oracle revision and the proposal term exactly as protobufjs does, and only when there is one', () => {
    fc.assert(
      fc.property(putEntry, (req) => {
        expect(Buffer.from(encodePutEntry(req)!).equals(Buffer.from(encodeWithProtobufjs(req)))).toBe(true);
        const decoded = decodeInternalRequest(encodeInternalRequest(req));
        expect(decoded.revision).toBe(req.revision);
        expect('revision' in decoded).toBe(req.revision !== undefined);
        expect(decoded.proposal_term).toBe(req.proposal_term);
        expect('proposal_term' in decoded).toBe(req.proposal_term !== undefined);
      }),
      { numRuns: 300 },
    );
  });

  it('takes numbers and missing fields as protobufjs fromObject does', () => {
    const req = { proposer: 7, seq: 9, put: { key: Buffer.from('k'), value: Buffer.from('v') } } as unknown as InternalRequest;
    expect(plain(decodeInternalRequest(encodePutEntry(req)!))).toEqual(plain(decodeWithProtobufjs(encodeWithProtobufjs(req))));
  });

  it('leaves every other request, and inputs it cannot represent exactly, to protobufjs', () => {
    const others: InternalRequest[] = [
      { proposer: '1', seq: '2', delete_range: { key: Buffer.from('a'), range_end: Buffer.alloc(0), prev_kv: false } } as unknown as InternalRequest,
      { proposer: '1', seq: '2', lease_grant: { ID: '5', TTL: '10' } },
      { proposer: '1', seq: '2', compaction: { revision: '3', physical: false } } as unknown as InternalRequest,
    ];
    for (const req of others) {
      expect(encodePutEntry(req)).toBeNull();
      const encoded = encodeInternalRequest(req);
      expect(decodePutEntry(encoded)).toBeNull();
      expect(plain(decodeInternalRequest(encoded))).toEqual(plain(decodeWithProtobufjs(encodeWithProtobufjs(req))));
    }
    const key = Buffer.from('k');
    expect(encodePutEntry({ proposer: '1', seq: '1', put: { key: 'base64?', value: key } })).toBeNull();
    expect(encodePutEntry({ proposer: '1', seq: '1', put: { key, value: key, lease: 1.5 } })).toBeNull();
    expect(encodePutEntry({ proposer: '-1', seq: '1', put: { key, value: key } })).toBeNull();
    expect(encodePutEntry({ proposer: '1', seq: '1', put: { key, value: key, lease: '9223372036854775808' } })).toBeNull();
  });

  it('returns null (never garbage) for truncated, repeated or unknown fields, so protobufjs decides', () => {
    const type = internalProtoRoot().lookupType('synod.internal.InternalRequest');
    const good = Buffer.from(encodeWithProtobufjs({ proposer: '300', seq: '70000', put: { key: Buffer.from('key'), value: Buffer.from('value'), lease: '5', prev_kv: true, ignore_value: false, ignore_lease: false }, caller: { username: 'u' } }));
    for (let cut = 1; cut < good.length; cut++) {
      const truncated = good.subarray(0, cut);
      const fast = decodePutEntry(truncated);
      let generic: unknown = null;
      try {
        generic = decodeWithProtobufjs(truncated);
      } catch {
        generic = null;
      }
      // Either the fast path declines, or both read the same prefix the same way.
      if (fast !== null) expect(plain(fast)).toEqual(plain(generic));
    }
    // Field 14: unknown (15 is the entry's oracle revision).
    const withUnknown = Buffer.concat([good, Buffer.from([(14 << 3) | 0, 1])]);
    expect(decodePutEntry(withUnknown)).toBeNull();
    const generic = type.toObject(type.decode(withUnknown), { longs: String, enums: String, bytes: Buffer, defaults: true, oneofs: true });
    delete generic.revision; // protobufjs's default for the absent revision; decoded entries have no such field
    delete generic.lease_generations; // the same for the other sharded-only fields (16, 17)
    delete generic.txn_reads;
    delete generic.proposal_term; // 21, absent when 0
    expect(plain(decodeInternalRequest(withUnknown))).toEqual(plain(generic));
  });

  it('declines every wrong wire type and field number 0 instead of misreading them', () => {
    const good = Buffer.from(encodeWithProtobufjs({ proposer: '3', seq: '7', put: { key: Buffer.from('k'), value: Buffer.from('v'), lease: '5', prev_kv: true, ignore_value: false, ignore_lease: false } }));
    expect(decodePutEntry(good)).not.toBeNull();
    // Every tag byte of the entry (top level and inside the put) with each other wire type, then field 0.
    const tagOffsets = [0, 2, 4, 6, 9, 12, 14];
    for (const at of tagOffsets) {
      const field = good[at] >> 3;
      for (let wire = 0; wire < 8; wire++) {
        if (wire === (good[at] & 7)) continue;
        const bad = Buffer.from(good);
        bad[at] = (field << 3) | wire;
        expect(decodePutEntry(bad), `tag at ${at} as wire type ${wire}`).toBeNull();
      }
      const zero = Buffer.from(good);
      zero[at] = good[at] & 7;
      expect(decodePutEntry(zero), `field 0 at ${at}`).toBeNull();
    }
  });
});

// wire-check.ts: gogoproto's Unmarshal errors word for word, no false alarm on anything a protobuf
// encoder writes, and canonical rewrites that make protobufjs (what proto-loader decodes requests
// with) read what Go reads. The same errors against a real etcd: test/protocol-strictness.test.ts.
import path from 'node:path';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import type * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { PROTO_FILES, PROTO_ROOT, SERVICE_NAMES, allowMessageNesting, etcdServices } from '../etcd/proto.ts';
import { canonicalRequest, checkWire, goCamelCase, messageRule, type MessageRule } from './wire-check.ts';

const root = new protobuf.Root();
root.resolvePath = (_o: string, t: string): string => (path.isAbsolute(t) ? t : path.join(PROTO_ROOT, t));
root.loadSync([...PROTO_FILES], { keepCase: true });
root.resolveAll();

const typeOf = (name: string): protobuf.Type => root.lookupType(name);
const ruleOf = (name: string): MessageRule => messageRule(typeOf(name));
const MAX_TXN_DEPTH = 129;
// What etcdWireStrictness() sets up in the server for the default --max-txn-ops.
allowMessageNesting(2 * MAX_TXN_DEPTH + 16);

function check(name: string, bytes: number[] | Buffer): string | null {
  return checkWire(ruleOf(name), Buffer.from(bytes), MAX_TXN_DEPTH).error;
}

/** Bytes as proto-loader's deserializer (what the services receive) reads them. */
function deserialize(service: keyof ReturnType<typeof etcdServices>, method: string, bytes: Buffer): Record<string, unknown> {
  const def = etcdServices()[service] as Record<string, grpc.MethodDefinition<unknown, unknown>>;
  return def[method].requestDeserialize(bytes) as Record<string, unknown>;
}

/** The bytes the services get: canonical when checkWire asks for it. */
function served(name: string, bytes: Buffer): Buffer {
  const rule = ruleOf(name);
  const v = checkWire(rule, bytes, MAX_TXN_DEPTH);
  expect(v.error).toBeNull();
  return v.rewrite ? canonicalRequest(rule, bytes, MAX_TXN_DEPTH) : bytes;
}

describe('goCamelCase', () => {
  it('names fields as protoc-gen-go does', () => {
    const cases: Record<string, string> = {
      TTL: 'TTL',
      ID: 'ID',
      key: 'Key',
      range_end: 'RangeEnd',
      min_mod_revision: 'MinModRevision',
      peerURLs: 'PeerURLs',
      isLearner: 'IsLearner',
      memberID: 'MemberID',
      no_password: 'NoPassword',
      hashedPassword: 'HashedPassword',
      request_delete_range: 'RequestDeleteRange',
    };
    for (const [proto, go] of Object.entries(cases)) expect(goCamelCase(proto)).toBe(go);
  });
});

describe('checkWire errors (gogoproto text)', () => {
  it('words each problem as etcd 3.4 does', () => {
    const G = '.etcdserverpb.LeaseGrantRequest';
    expect(check(G, [0x0d, 0xff, 0xff, 0xff, 0xff])).toBe('proto: wrong wireType = 5 for field TTL');
    expect(check(G, [0x00, 0x05])).toBe('proto: LeaseGrantRequest: illegal tag 0 (wire type 0)');
    expect(check(G, [0x02, 0x00])).toBe('proto: LeaseGrantRequest: illegal tag 0 (wire type 2)');
    expect(check(G, [0x0c])).toBe('proto: LeaseGrantRequest: wiretype end group for non-group');
    expect(check(G, [0x08])).toBe('unexpected EOF');
    expect(check(G, [0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])).toBe('proto: integer overflow');
    const R = '.etcdserverpb.RangeRequest';
    expect(check(R, [0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])).toBe('proto: negative length found during unmarshaling');
    expect(check(R, [0x0a, 0x05, 0x61])).toBe('unexpected EOF');
    expect(check(R, [0x0a, 0x01, 0x6b, 0x1b, 0x1c])).toBe('proto: wrong wireType = 3 for field Limit');
    // Unknown fields are skipped as gogoproto's skip does, groups included.
    expect(check(R, [0x0a, 0x01, 0x6b, 0x93, 0x03, 0x9b, 0x03, 0x9c, 0x03, 0x94, 0x03])).toBeNull();
    expect(check(R, [0x0a, 0x01, 0x6b, 0x93, 0x03, 0x08, 0x01])).toBe('unexpected EOF');
    expect(check(R, [0x0a, 0x01, 0x6b, 0x93, 0x03, 0x17, 0x94, 0x03])).toBe('proto: illegal wireType 7');
    // Errors deep inside a txn name the nested message's field.
    expect(check('.etcdserverpb.TxnRequest', [0x12, 0x04, 0x0a, 0x02, 0x2d, 0x01])).toBe('proto: wrong wireType = 5 for field SortOrder');
    expect(check('.etcdserverpb.TxnRequest', [0x12, 0x04, 0x0a, 0x02, 0x28, 0x81])).toBe('unexpected EOF');
    expect(check('.etcdserverpb.TxnRequest', [0x0a, 0x05, 0x0d, 0, 0, 0, 0])).toBe('proto: wrong wireType = 5 for field Result');
  });

  it('walks any depth without recursion', () => {
    // 100,000 nested txns (each level: success{request_txn{...}}): no stack overflow, and the depth
    // asks for a rewrite. Built outside in: only the length prefixes, the innermost txn is empty.
    const levels = 100_000;
    const prefixes: Buffer[] = [];
    let txnLen = 0;
    for (let i = 0; i < levels; i++) {
      const opLen = 1 + varint(txnLen).length + txnLen;
      prefixes.push(Buffer.concat([Buffer.from([0x22]), varint(txnLen)]), Buffer.concat([Buffer.from([0x12]), varint(opLen)]));
      txnLen = 1 + varint(opLen).length + opLen;
    }
    const body = Buffer.concat(prefixes.reverse());
    expect(body.length).toBe(txnLen);
    expect(checkWire(ruleOf('.etcdserverpb.TxnRequest'), body, MAX_TXN_DEPTH)).toEqual({ error: null, rewrite: true });
  });
});

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A random valid object of `type` (depth-limited), in protobufjs fromObject form. */
function objectOf(type: protobuf.Type, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  const oneofs = new Map<string, protobuf.Field[]>();
  for (const f of type.fieldsArray) {
    f.resolve();
    if (f.partOf) {
      oneofs.set(f.partOf.name, [...(oneofs.get(f.partOf.name) ?? []), f]);
      continue;
    }
    const v = valueOf(f, depth);
    if (v !== null) parts[f.name] = f.repeated ? fc.array(v, { maxLength: 3 }) : v;
  }
  const base = fc.record(parts, { requiredKeys: [] });
  const choices = [...oneofs.values()].map((members) =>
    fc.oneof(fc.constant({}), ...members.flatMap((m) => {
      const v = valueOf(m, depth);
      return v === null ? [] : [v.map((x) => ({ [m.name]: x }))];
    })),
  );
  return fc.tuple(base, ...choices).map(([b, ...cs]) => Object.assign({}, b, ...cs) as Record<string, unknown>);
}

function valueOf(f: protobuf.Field, depth: number): fc.Arbitrary<unknown> | null {
  const t = f.resolvedType;
  if (t instanceof protobuf.Enum) return fc.constantFrom(...Object.values(t.values));
  if (t instanceof protobuf.Type) return depth >= 3 ? null : objectOf(t, depth + 1);
  switch (f.type) {
    case 'string':
      return fc.string({ maxLength: 8 });
    case 'bytes':
      return fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b));
    case 'bool':
      return fc.boolean();
    case 'int64':
      return fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n }).map(String);
    case 'uint64':
      return fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(String);
    default:
      return fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
  }
}

const REQUEST_TYPES: protobuf.Type[] = (() => {
  const seen = new Map<string, protobuf.Type>();
  for (const service of Object.values(SERVICE_NAMES)) {
    for (const m of root.lookupService(service).methodsArray) {
      m.resolve();
      const t = m.resolvedRequestType as protobuf.Type;
      seen.set(t.fullName, t);
    }
  }
  return [...seen.values()];
})();

describe('checkWire on well-formed requests', () => {
  it('accepts, and leaves alone, whatever protobufjs encodes for every request type', () => {
    for (const type of REQUEST_TYPES) {
      fc.assert(
        fc.property(objectOf(type, 0), (obj) => {
          const bytes = Buffer.from(type.encode(type.fromObject(obj)).finish());
          expect(checkWire(messageRule(type), bytes, MAX_TXN_DEPTH), `${type.fullName} ${bytes.toString('hex')}`).toEqual({ error: null, rewrite: false });
        }),
        { numRuns: 60 },
      );
    }
  });
});

describe('canonicalRequest', () => {
  it('makes protobufjs read a bool whose set bits are all above 32 as Go does (true)', () => {
    // serializable (field 7) = 2^40
    const bytes = Buffer.concat([Buffer.from([0x0a, 0x01, 0x6b, 0x38]), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])]);
    expect(deserialize('KV', 'Range', bytes).serializable).toBe(false); // the misreading
    expect(deserialize('KV', 'Range', served('.etcdserverpb.RangeRequest', bytes)).serializable).toBe(true);
  });

  it('reads 6..9-byte varints of 32-bit fields as Go does', () => {
    // sort_order (field 5) = 1 written in 7 bytes, then limit (field 3) = 5
    const bytes = Buffer.from([0x0a, 0x01, 0x6b, 0x28, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x18, 0x05]);
    const req = deserialize('KV', 'Range', served('.etcdserverpb.RangeRequest', bytes));
    expect(req.sort_order).toBe('ASCEND');
    expect(req.limit).toBe('5');
  });

  it('keeps only the last member of a oneof, as Go does', () => {
    // RequestOp{request_range{key:a}, request_put{key:b}}
    const op = Buffer.from([0x0a, 0x03, 0x0a, 0x01, 0x61, 0x12, 0x03, 0x0a, 0x01, 0x62]);
    const txn = Buffer.concat([Buffer.from([0x12, op.length]), op]);
    const req = deserialize('KV', 'Txn', served('.etcdserverpb.TxnRequest', txn)) as { success: Array<Record<string, unknown>> };
    expect(req.success[0].request).toBe('request_put');
    expect(req.success[0].request_range ?? null).toBeNull();
  });

  it('merges a singular message sent twice, as Go does', () => {
    // ProclaimRequest{leader{name:a}, leader{key:b}}
    const bytes = Buffer.from([0x0a, 0x03, 0x0a, 0x01, 0x61, 0x0a, 0x03, 0x12, 0x01, 0x62]);
    const req = deserialize('Election', 'Proclaim', served('.v3electionpb.ProclaimRequest', bytes)) as { leader: { name: Buffer; key: Buffer } };
    expect(req.leader.name.toString()).toBe('a');
    expect(req.leader.key.toString()).toBe('b');
  });

  it('drops unknown fields, including ones protobufjs would alias onto known fields', () => {
    // key (1) = k, then field 2^29 + 1 (Go: unknown; protobufjs: field 1) = z
    const alias = [0x8a, 0x80, 0x80, 0x80, 0x10, 0x01, 0x7a];
    const bytes = Buffer.from([0x0a, 0x01, 0x6b, ...alias, 0x93, 0x03, 0x94, 0x03]);
    expect(deserialize('KV', 'Range', served('.etcdserverpb.RangeRequest', bytes)).key).toEqual(Buffer.from('k'));
  });

  it('empties txns nested deeper than the op budget allows, keeping everything above', () => {
    let txn = Buffer.alloc(0);
    for (let i = 0; i < 300; i++) {
      const op = Buffer.concat([Buffer.from([0x22]), varint(txn.length), txn]);
      txn = Buffer.concat([Buffer.from([0x12]), varint(op.length), op]);
    }
    const out = canonicalRequest(ruleOf('.etcdserverpb.TxnRequest'), txn, MAX_TXN_DEPTH);
    let req = deserialize('KV', 'Txn', out) as { success: Array<{ request_txn: unknown }> };
    let depth = 1;
    while (req.success.length > 0) {
      req = req.success[0].request_txn as typeof req;
      depth++;
    }
    expect(depth).toBe(MAX_TXN_DEPTH + 1);
  });

  it('is a fixed point: its output is accepted as is (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...REQUEST_TYPES), fc.uint8Array({ maxLength: 48 }), (type, raw) => {
        const rule = messageRule(type);
        const bytes = Buffer.from(raw);
        const v = checkWire(rule, bytes, MAX_TXN_DEPTH);
        if (v.error !== null || !v.rewrite) return;
        const once = canonicalRequest(rule, bytes, MAX_TXN_DEPTH);
        expect(checkWire(rule, once, MAX_TXN_DEPTH)).toEqual({ error: null, rewrite: false });
        expect(canonicalRequest(rule, once, MAX_TXN_DEPTH)).toEqual(once);
      }),
      { numRuns: 3000 },
    );
  });
});

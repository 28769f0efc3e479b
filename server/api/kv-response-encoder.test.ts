// The hand-written Range and DeleteRange responses against proto-loader's own serializer and
// deserializer (protobufjs also writes zero fields, etcd's Go encoder and ours leave them out, so the
// decoded messages are compared), and they yield to the event loop while encoding large values.
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { etcdClients, etcdServices } from '../etcd/proto.ts';
import { installPreframedResponses, preframedStats } from './preframed-response.ts';
import { kvToWire, txnResultToWire } from '../etcd/convert.ts';
import { encodeDeleteRangeResponse, encodeRangeResponse, encodeTxnResponse } from './kv-response-encoder.ts';
import { SLICE_MAX_BYTES, copySlicesRun } from './copy-slices.ts';
import type { KeyValue, ResponseOp, TxnResult } from '../mvcc/types.ts';

const uint64Text = fc.oneof(fc.constantFrom('0', '1', '127', '128', '9007199254740993'), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(String));
const header = fc.record({ cluster_id: uint64Text, member_id: uint64Text, revision: uint64Text, raft_term: uint64Text });
const revision = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
const kv: fc.Arbitrary<KeyValue> = fc.record({
  key: fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)),
  createRevision: revision,
  modRevision: revision,
  version: revision,
  value: fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 200, maxLength: 300 })).map((a) => Buffer.from(a)),
  lease: fc.oneof(fc.constant('0'), fc.bigInt({ min: 1n, max: (1n << 63n) - 1n }).map(String)),
});

describe('kv response encoder', () => {
  it('decodes RangeResponse exactly as the object path does', async () => {
    const method = etcdClients().KV.service.Range;
    await fc.assert(
      fc.asyncProperty(header, fc.array(kv, { maxLength: 8 }), fc.boolean(), fc.nat(), async (h, kvs, more, count) => {
        const viaObject = method.responseDeserialize(method.responseSerialize({ header: h, kvs: kvs.map(kvToWire), more, count }));
        expect(method.responseDeserialize(await encodeRangeResponse(h, kvs, more, count))).toEqual(viaObject);
      }),
      { numRuns: 300 },
    );
  });

  it('decodes RangeStreamResponse (the range reply wrapped as field 1) exactly as the object path does', async () => {
    const method = etcdClients().KV.service.RangeStream;
    await fc.assert(
      fc.asyncProperty(header, fc.array(kv, { maxLength: 8 }), fc.boolean(), fc.nat(), async (h, kvs, more, count) => {
        const viaObject = method.responseDeserialize(method.responseSerialize({ range_response: { header: h, kvs: kvs.map(kvToWire), more, count } }));
        expect(method.responseDeserialize(await encodeRangeResponse(h, kvs, more, count, 1))).toEqual(viaObject);
      }),
      { numRuns: 200 },
    );
  });

  it('decodes DeleteRangeResponse exactly as the object path does', async () => {
    const method = etcdClients().KV.service.DeleteRange;
    await fc.assert(
      fc.asyncProperty(header, fc.nat(), fc.array(kv, { maxLength: 8 }), async (h, deleted, kvs) => {
        const viaObject = method.responseDeserialize(method.responseSerialize({ header: h, deleted, prev_kvs: kvs.map(kvToWire) }));
        expect(method.responseDeserialize(await encodeDeleteRangeResponse(h, deleted, kvs))).toEqual(viaObject);
      }),
      { numRuns: 300 },
    );
  });

  it('decodes TxnResponse (nested, every kind of response) exactly as the object path does', async () => {
    const method = etcdClients().KV.service.Txn;
    const opRevision = fc.integer({ min: 1, max: 2 ** 40 });
    const { txn } = fc.letrec<{ txn: TxnResult; op: ResponseOp }>((tie) => ({
      txn: fc.record({ succeeded: fc.boolean(), responses: fc.array(tie('op'), { maxLength: 4 }) }),
      op: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        // Each op with its own header revision (the store's) or without one (the txn's then).
        fc.record(
          { type: fc.constant('range' as const), range: fc.record({ kvs: fc.array(kv, { maxLength: 3 }), more: fc.boolean(), count: fc.nat() }), revision: opRevision },
          { requiredKeys: ['type', 'range'] },
        ),
        fc.record({ type: fc.constant('put' as const), put: fc.record({ prevKv: fc.option(kv, { nil: null }) }), revision: opRevision }, { requiredKeys: ['type', 'put'] }),
        fc.record(
          { type: fc.constant('deleteRange' as const), deleteRange: fc.record({ deleted: fc.nat(), prevKvs: fc.array(kv, { maxLength: 3 }) }), revision: opRevision },
          { requiredKeys: ['type', 'deleteRange'] },
        ),
        tie('txn').map((t) => ({ type: 'txn' as const, txn: t as TxnResult })),
      ),
    }));
    await fc.assert(
      fc.asyncProperty(header, txn, async (h, t) => {
        const viaObject = method.responseDeserialize(method.responseSerialize({ header: h, ...txnResultToWire(t, h) }));
        expect(method.responseDeserialize(await encodeTxnResponse(h, t))).toEqual(viaObject);
      }),
      { numRuns: 300 },
    );
  });

  it('copies large values one slice per event-loop turn, shared by encodings running at once', async () => {
    const value = Buffer.alloc(1024 * 1024, 0x61);
    const kvs: KeyValue[] = Array.from({ length: 64 }, (_, i) => ({ key: Buffer.from(`k${i}`), createRevision: 2 + i, modRevision: 2 + i, version: 1, value, lease: '0' }));
    const h = { cluster_id: '1', member_id: '2', revision: '66', raft_term: '3' };
    // A probe in every turn: how many slices ran since its last look.
    const slicesPerTurn: number[] = [];
    let last = copySlicesRun();
    let probing = true;
    const probe = (): void => {
      const now = copySlicesRun();
      slicesPerTurn.push(now - last);
      last = now;
      if (probing) setImmediate(probe);
    };
    setImmediate(probe);
    const started = copySlicesRun();
    const [range, deleted] = await Promise.all([encodeRangeResponse(h, kvs, false, 64), encodeDeleteRangeResponse(h, 64, kvs)]);
    probing = false;
    expect(Math.max(...slicesPerTurn)).toBe(1);
    expect(copySlicesRun() - started).toBeGreaterThanOrEqual(Math.floor((2 * 64 * value.length) / SLICE_MAX_BYTES) - 2);
    const decoded = etcdClients().KV.service.Range.responseDeserialize(range) as { kvs: Array<{ value: Buffer }>; count: string };
    expect(decoded.kvs.length).toBe(64);
    expect(decoded.kvs[63].value.equals(value)).toBe(true);
    const decodedDelete = etcdClients().KV.service.DeleteRange.responseDeserialize(deleted) as { prev_kvs: Array<{ value: Buffer }> };
    expect(decodedDelete.prev_kvs.length).toBe(64);
    expect(decodedDelete.prev_kvs[17].value.equals(value)).toBe(true);
  });

  it('writes a small reply in the turn that asked for it', async () => {
    const kvs: KeyValue[] = [{ key: Buffer.from('a'), createRevision: 2, modRevision: 2, version: 1, value: Buffer.from('v'), lease: '0' }];
    const before = copySlicesRun();
    await encodeRangeResponse({ cluster_id: '1', member_id: '2', revision: '2', raft_term: '3' }, kvs, false, 1);
    expect(copySlicesRun()).toBe(before);
  });

  it('is sent by a grpc-js server without another copy, and decoded by a client', async () => {
    expect(installPreframedResponses()).toBe(true);
    const value = Buffer.alloc(256 * 1024, 0x7a);
    const kvs: KeyValue[] = Array.from({ length: 40 }, (_, i) => ({ key: Buffer.from(`k${i}`), createRevision: 2, modRevision: 2 + i, version: 1, value, lease: '7' }));
    const h = { cluster_id: '1', member_id: '2', revision: '42', raft_term: '3' };
    const server = new grpc.Server();
    server.addService(etcdServices().KV, {
      Range: (_call: unknown, cb: (err: null, res: Buffer) => void) => void encodeRangeResponse(h, kvs, true, 41).then((b) => cb(null, b)),
      RangeStream: (call: grpc.ServerWritableStream<unknown, Buffer>) =>
        void encodeRangeResponse(h, kvs, false, 40, 1).then((b) => {
          call.write(b);
          call.end();
        }),
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    const client = new (etcdClients().KV)(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
    try {
      const before = preframedStats.served;
      const reply = await new Promise<{ kvs: Array<{ key: Buffer; value: Buffer; lease: string }>; more: boolean; count: string }>((resolve, reject) =>
        (client as unknown as { Range: (req: object, cb: (err: Error | null, res: never) => void) => void }).Range({ key: Buffer.from('k') }, (err, res) => (err ? reject(err) : resolve(res))),
      );
      expect(preframedStats.served).toBe(before + 1);
      expect(reply.kvs.length).toBe(40);
      expect(reply.kvs[39].key.toString()).toBe('k39');
      expect(reply.kvs[39].value.equals(value)).toBe(true);
      expect(reply.kvs[0].lease).toBe('7');
      expect([reply.more, reply.count]).toEqual([true, '41']);
      // The streamed form (RangeStreamResponse) takes the same path.
      const streamed: Array<{ range_response: { kvs: Array<{ value: Buffer }>; count: string } }> = [];
      await new Promise<void>((resolve, reject) => {
        const stream = (client as unknown as { RangeStream: (req: object) => grpc.ClientReadableStream<never> }).RangeStream({ key: Buffer.from('k') });
        stream.on('data', (m) => streamed.push(m));
        stream.on('end', () => resolve());
        stream.on('error', reject);
      });
      expect(preframedStats.served).toBe(before + 2);
      expect(streamed.length).toBe(1);
      expect(streamed[0].range_response.count).toBe('40');
      expect(streamed[0].range_response.kvs[5].value.equals(value)).toBe(true);
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});

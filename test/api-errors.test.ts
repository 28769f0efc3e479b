// Bad input over real gRPC gets etcd's status codes and texts, and nothing is written.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { KvClient } from './support/kv-client.ts';

let cluster: ProcessCluster;
let client: KvClient;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 1, extraArgs: ['--max-request-bytes', String(64 * 1024), '--max-txn-ops', '4'] });
  client = new KvClient(cluster.endpointOf(0));
});

afterAll(async () => {
  client?.close();
  await cluster?.destroy();
});

const INVALID_ARGUMENT = 3;
const OUT_OF_RANGE = 11;

const put = (key: string, value = 'v'): object => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } });

describe('etcd error codes and texts for bad input', () => {
  it('empty keys', async () => {
    const empty = { code: INVALID_ARGUMENT, details: 'etcdserver: key is not provided' };
    await expect(client.put('', 'v')).rejects.toMatchObject(empty);
    await expect(client.range('')).rejects.toMatchObject(empty);
    await expect(client.deleteRange('')).rejects.toMatchObject(empty);
    await expect(client.txn({ compare: [{ key: Buffer.alloc(0), target: 'VERSION', result: 'EQUAL' }] })).rejects.toMatchObject(empty);
    await expect(client.txn({ success: [put('')] })).rejects.toMatchObject(empty);
  });

  it('ignore_value / ignore_lease misuse', async () => {
    await expect(client.put('k', 'v', { ignore_value: true })).rejects.toMatchObject({
      code: INVALID_ARGUMENT,
      details: 'etcdserver: value is provided',
    });
    await expect(client.put('k', '', { ignore_lease: true, lease: '5' })).rejects.toMatchObject({
      code: INVALID_ARGUMENT,
      details: 'etcdserver: lease is provided',
    });
    await expect(client.put('never-written', '', { ignore_value: true })).rejects.toMatchObject({
      code: INVALID_ARGUMENT,
      details: 'etcdserver: key not found',
    });
    const r = await client.put('iv', 'original');
    await client.put('iv', '', { ignore_value: true });
    const got = await client.range('iv');
    expect(got.kvs[0].value.toString()).toBe('original');
    expect(Number(got.kvs[0].version)).toBe(2);
    expect(Number(got.kvs[0].mod_revision)).toBeGreaterThan(Number(r.header.revision));
  });

  it('too many txn ops and duplicate keys in one txn', async () => {
    await expect(client.txn({ success: [put('a'), put('b'), put('c'), put('d'), put('e')] })).rejects.toMatchObject({
      code: INVALID_ARGUMENT,
      details: 'etcdserver: too many operations in txn request',
    });
    await expect(client.txn({ success: [put('a'), put('a')] })).rejects.toMatchObject({
      code: INVALID_ARGUMENT,
      details: 'etcdserver: duplicate key given in txn request',
    });
    await expect(
      client.txn({ success: [put('dup/x'), { request_delete_range: { key: Buffer.from('dup/'), range_end: Buffer.from('dup0') } }] }),
    ).rejects.toMatchObject({ code: INVALID_ARGUMENT, details: 'etcdserver: duplicate key given in txn request' });
    // The same key in different branches is fine.
    await expect(client.txn({ success: [put('a')], failure: [put('a')] })).resolves.toMatchObject({ succeeded: true });
  });

  it('request too large', async () => {
    await expect(client.put('big', 'x'.repeat(100 * 1024))).rejects.toMatchObject({
      code: INVALID_ARGUMENT,
      details: 'etcdserver: request is too large',
    });
    const r = await client.range('big');
    expect(r.kvs).toEqual([]);
  });

  it('compacted and future revisions', async () => {
    const a = await client.put('rv', '1');
    const b = await client.put('rv', '2');
    await client.compact(Number(b.header.revision));
    await expect(client.range('rv', { revision: a.header.revision })).rejects.toMatchObject({
      code: OUT_OF_RANGE,
      details: 'etcdserver: mvcc: required revision has been compacted',
    });
    await expect(client.range('rv', { revision: Number(b.header.revision) + 1000 })).rejects.toMatchObject({
      code: OUT_OF_RANGE,
      details: 'etcdserver: mvcc: required revision is a future revision',
    });
    await expect(client.compact(Number(a.header.revision))).rejects.toMatchObject({
      code: OUT_OF_RANGE,
      details: 'etcdserver: mvcc: required revision has been compacted',
    });
    await expect(client.compact(Number(b.header.revision) + 1000)).rejects.toMatchObject({
      code: OUT_OF_RANGE,
      details: 'etcdserver: mvcc: required revision is a future revision',
    });
    // A txn whose range reads a compacted revision fails as a whole and writes nothing.
    await expect(
      client.txn({
        success: [put('txn-side-effect'), { request_range: { key: Buffer.from('rv'), revision: a.header.revision } }],
      }),
    ).rejects.toMatchObject({ code: OUT_OF_RANGE, details: 'etcdserver: mvcc: required revision has been compacted' });
    expect((await client.range('txn-side-effect')).kvs).toEqual([]);
  });

  it('a txn writes at one revision and nested txns work', async () => {
    const res = await client.txn({
      compare: [{ key: Buffer.from('nx'), target: 'VERSION', result: 'EQUAL', version: 0 }],
      success: [
        put('t1'),
        put('t2'),
        {
          request_txn: {
            // As in etcd, every compare (nested ones too) sees the state before the txn began.
            compare: [{ key: Buffer.from('t1'), target: 'VERSION', result: 'EQUAL', version: 0 }],
            success: [put('t3')],
            failure: [],
          },
        },
      ],
    });
    expect(res.succeeded).toBe(true);
    const revs = new Set<string>();
    for (const k of ['t1', 't2', 't3']) revs.add((await client.range(k)).kvs[0].mod_revision);
    expect(revs.size).toBe(1);
    expect([...revs][0]).toBe(res.header.revision);
  });
});

describe('server-streaming calls end with a status, not at the deadline', () => {
  // grpc-js sends a stream's status only when it ends; a destroyed stream never sent it, and the client
  // waited for its deadline (server/api/stream-status.ts).
  it('RangeStream with an empty key fails at once with InvalidArgument', async () => {
    const grpc = await import('@grpc/grpc-js');
    const { etcdClients } = await import('../server/etcd/proto.ts');
    const kv = new (etcdClients().KV)(cluster.endpointOf(0), grpc.credentials.createInsecure());
    const started = Date.now();
    const err = await new Promise<{ code: number; details: string }>((resolve) => {
      const call = (kv as unknown as { RangeStream(req: object, opts: object): NodeJS.EventEmitter }).RangeStream({ key: Buffer.alloc(0) }, { deadline: Date.now() + 10_000 });
      call.on('data', () => undefined);
      call.on('error', resolve);
    });
    kv.close();
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: key is not provided' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

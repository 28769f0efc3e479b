// scratch: lock-pattern txn latency on a running cluster (not committed)
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from './server/etcd/proto.ts';
type Unary = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
const ep = process.argv[2];
const n = Number(process.argv[3] ?? 200);
const c = etcdClients();
const creds = grpc.credentials.createInsecure();
const kv = new c.KV(ep, creds);
const lease = new c.Lease(ep, creds);
const call = <T>(cl: grpc.Client, m: string, req: object): Promise<T> => new Promise((res, rej) => (cl as unknown as Record<string, Unary>)[m].bind(cl)(req, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e, r) => (e ? rej(e) : res(r as T))));
const pct = (xs: number[], p: number): number => xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];
async function measure(name: string, fn: (i: number) => Promise<void>): Promise<void> {
  for (let i = 0; i < 20; i++) await fn(-1 - i);
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await fn(i);
    t.push(performance.now() - s);
  }
  console.log(`${name}: p50 ${pct(t, 0.5).toFixed(2)} ms, p99 ${pct(t, 0.99).toFixed(2)} ms (${n} sequential)`);
}
const g = await call<{ ID: string }>(lease, 'LeaseGrant', { TTL: 600 });
const prefix = (name: string): [Buffer, Buffer] => [Buffer.from(`${name}/`), Buffer.from(`${name}0`)];
const lockTxn = (name: string, key: string, leaseId: string) => {
  const [p, e] = prefix(name);
  const k = Buffer.from(key);
  return {
    compare: [{ result: 'EQUAL', target: 'CREATE', key: k, create_revision: 0 }],
    success: [{ request_put: { key: k, value: Buffer.alloc(0), lease: leaseId } }, { request_range: { key: p, range_end: e, sort_order: 'ASCEND', sort_target: 'CREATE', limit: 1 } }],
    failure: [{ request_range: { key: k } }, { request_range: { key: p, range_end: e, sort_order: 'ASCEND', sort_target: 'CREATE', limit: 1 } }],
  };
};
await measure('put (one shard)', async (i) => { await call(kv, 'Put', { key: Buffer.from(`b/p${i}`), value: Buffer.from('x') }); });
await measure('put --lease (one shard)', async (i) => { await call(kv, 'Put', { key: Buffer.from(`b/l${i}`), value: Buffer.from('x'), lease: g.ID }); });
await measure('lock txn, prefix {tag} (one shard)', async (i) => {
  await call(kv, 'Txn', lockTxn(`{l${i}}`, `{l${i}}/${g.ID}`, g.ID));
  await call(kv, 'DeleteRange', { key: Buffer.from(`{l${i}}/${g.ID}`) });
});
await measure('lock txn + unlock (etcd concurrency: prefix on every shard)', async (i) => {
  await call(kv, 'Txn', lockTxn(`lk${i}`, `lk${i}/${g.ID}`, g.ID));
  await call(kv, 'DeleteRange', { key: Buffer.from(`lk${i}/${g.ID}`) });
});
await measure('lease grant + revoke (no keys)', async () => {
  const l = await call<{ ID: string }>(lease, 'LeaseGrant', { TTL: 60 });
  await call(lease, 'LeaseRevoke', { ID: l.ID });
});
await measure('lease grant, 1 key, revoke', async (i) => {
  const l = await call<{ ID: string }>(lease, 'LeaseGrant', { TTL: 60 });
  await call(kv, 'Put', { key: Buffer.from(`r/${i}`), value: Buffer.from('x'), lease: l.ID });
  await call(lease, 'LeaseRevoke', { ID: l.ID });
});
process.exit(0);

// Example: a worker that holds a Synod (or etcd) lock and protects its writes with the lock's
// fencing token, so a worker that was paused past its lease (GC pause, SIGSTOP, a partition) cannot
// clobber the work of the worker that holds the lock now.
//
//   node_modules/.bin/node examples/fenced-worker.ts --endpoint 127.0.0.1:2379 --name worker-a \
//     [--lock jobs] [--resource jobs/state] [--ttl 5] [--writes 3] [--pause-ms 0]
//
// --pause-ms simulates a stalled holder: after acquiring, it stops renewing its lease and sleeps.
import * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { etcdClients } from '../server/etcd/proto.ts';

const { values: args } = parseArgs({
  options: {
    endpoint: { type: 'string', default: '127.0.0.1:2379' },
    name: { type: 'string', default: 'worker' },
    lock: { type: 'string', default: 'jobs' },
    resource: { type: 'string', default: 'jobs/state' },
    ttl: { type: 'string', default: '5' },
    writes: { type: 'string', default: '3' },
    'pause-ms': { type: 'string', default: '0' },
  },
});

type Unary = (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
const clients = etcdClients();
const creds = grpc.credentials.createInsecure();
const kv = new clients.KV(args.endpoint, creds);
const leases = new clients.Lease(args.endpoint, creds);
const locks = new clients.Lock(args.endpoint, creds);

function call<T>(client: grpc.Client, method: string, req: object, timeoutMs = 30_000): Promise<T> {
  const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
  return new Promise((resolve, reject) => fn(req, { deadline: Date.now() + timeoutMs }, (e, r) => (e ? reject(e) : resolve(r as T))));
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// 1. A lease: the lock lives only as long as the worker keeps renewing it.
const { ID: lease } = await call<{ ID: string }>(leases, 'LeaseGrant', { TTL: Number(args.ttl) });
const keepAlive = (leases as unknown as { LeaseKeepAlive(): grpc.ClientDuplexStream<object, unknown> }).LeaseKeepAlive();
keepAlive.on('error', () => undefined);
const renew = setInterval(() => keepAlive.write({ ID: lease }), (Number(args.ttl) * 1000) / 3);

// 2. The lock. Its key's create revision is the fencing token: every later holder's is larger.
const { key } = await call<{ key: Buffer }>(locks, 'Lock', { name: Buffer.from(args.lock), lease });
const [mine] = (await call<{ kvs: Array<{ create_revision: string }> }>(kv, 'Range', { key })).kvs;
const token = mine.create_revision;
console.log(`${args.name}: acquired ${key.toString()} with fencing token ${token}`);

if (Number(args['pause-ms']) > 0) {
  clearInterval(renew); // a stalled process renews nothing
  await sleep(Number(args['pause-ms']));
}

// 3. Guarded writes: the write happens only if the lock key still carries this token, checked
//    atomically by the server in the same transaction.
for (let i = 0; i < Number(args.writes); i++) {
  const res = await call<{ succeeded: boolean }>(kv, 'Txn', {
    compare: [{ key, target: 'CREATE', result: 'EQUAL', create_revision: token }],
    success: [{ request_put: { key: Buffer.from(args.resource), value: Buffer.from(`${args.name}@${token}#${i}`) } }],
  });
  if (!res.succeeded) {
    console.log(`${args.name}: fenced off (token ${token} no longer holds the lock); write ${i} not applied`);
    break;
  }
  console.log(`${args.name}: wrote ${args.resource} = ${args.name}@${token}#${i}`);
}

// 4. Release (a no-op if the lease already ended) and stop renewing.
await call(locks, 'Unlock', { key }).catch(() => undefined);
clearInterval(renew);
keepAlive.cancel();
await call(leases, 'LeaseRevoke', { ID: lease }).catch(() => undefined);
for (const c of [kv, leases, locks]) c.close();

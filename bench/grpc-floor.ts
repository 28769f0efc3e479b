// Probe: the cost floor of one grpc-js unary call on this machine (KV.Put answered at once).
import * as grpc from '@grpc/grpc-js';
import { fork } from 'node:child_process';
import fs from 'node:fs';
import { etcdServices } from '../server/etcd/proto.ts';
import { EtcdConnection } from './etcd-rpc.ts';
const ticks = (pid: number): number => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); };
if (process.argv[2] === 'server') {
  const s = new grpc.Server();
  const svc = etcdServices();
  s.addService(svc.KV, { Put: (_c: unknown, cb: (e: null, r: object) => void) => cb(null, { header: { cluster_id: '1', member_id: '2', revision: '3', raft_term: '4' } }) } as never);
  s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (_e, port) => process.send!(port));
} else {
  const child = fork(new URL(import.meta.url).pathname, ['server']);
  const port = await new Promise<number>((r) => child.once('message', (m) => r(m as number)));
  const conn = new EtcdConnection(`127.0.0.1:${port}`);
  const value = Buffer.alloc(256);
  for (let i = 0; i < 500; i++) await conn.put({ key: Buffer.from('k'), value } as never);
  const n = 3000; const t0 = performance.now(); const c0 = process.cpuUsage(); const s0 = ticks(child.pid!);
  for (let i = 0; i < n; i++) await conn.put({ key: Buffer.from('k'), value } as never);
  const el = performance.now() - t0; const c = process.cpuUsage(c0); const s1 = ticks(child.pid!);
  console.log(`unary rtt ${(el * 1000 / n).toFixed(0)} µs, client cpu ${((c.user + c.system) / n).toFixed(0)} µs/call, server cpu ${((s1 - s0) * 10000 / n).toFixed(0)} µs/call`);
  child.kill(); process.exit(0);
}

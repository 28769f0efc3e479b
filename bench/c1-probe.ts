// Probe: put at 1 in flight against each member of a running cluster in turn; prints latency and
// the members' CPU per put (from /proc). Usage: node bench/c1-probe.ts seconds endpoint=pid ...
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { EtcdConnection } from './etcd-rpc.ts';

const seconds = Number(process.argv[2]);
const targets = process.argv.slice(3).map((a) => { const [ep, pid] = a.split('='); return { ep, pid: Number(pid) }; });
const ticks = (pid: number): number => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); };
const value = randomBytes(256);
{
  // Warm-up: every member's JIT, on every path, before anything is measured.
  const conns = targets.map((t) => new EtcdConnection(t.ep));
  const end = performance.now() + 4000;
  for (let i = 0; performance.now() < end; i++) await conns[i % conns.length].put({ key: Buffer.from(`k${i % 1000}`), value } as never);
  for (const c of conns) c.close();
}
const all: number[] = [];
for (const t of targets) {
  const conn = new EtcdConnection(t.ep);
  for (let i = 0; i < 20; i++) await conn.put({ key: Buffer.from(`k${i}`), value } as never);
  const lat: number[] = [];
  const c0 = targets.map((x) => ticks(x.pid));
  const cc0 = process.cpuUsage();
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const s = performance.now();
    await conn.put({ key: Buffer.from(`k${(Math.random() * 100000) | 0}`), value } as never);
    lat.push(performance.now() - s);
  }
  const c1 = targets.map((x) => ticks(x.pid));
  const cc = process.cpuUsage(cc0);
  lat.sort((a, b) => a - b);
  all.push(...lat);
  const cpu = c1.map((v, i) => ((v - c0[i]) * 10_000) / lat.length);
  console.log(`${t.ep}: ${lat.length} puts, p50 ${lat[lat.length >> 1].toFixed(3)} ms, p90 ${lat[Math.floor(lat.length * 0.9)].toFixed(3)}, server CPU µs/put ${cpu.map((c) => c.toFixed(0)).join(' / ')}, client CPU µs/put ${((cc.user + cc.system) / lat.length).toFixed(0)}`);
  conn.close();
}
all.sort((a, b) => a - b);
console.log(`all: ${all.length} puts, p50 ${all[all.length >> 1].toFixed(3)} ms, p90 ${all[Math.floor(all.length * 0.9)].toFixed(3)} ms`);
process.exit(0);

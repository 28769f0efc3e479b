// Probe: a closed loop of puts, linearizable ranges, or two-key txns over two shards (txn2: cross-shard
// transactions on a 16-shard cluster) or on one shard (txn1: a {hash tag}, the one-entry path), at N in
// flight over every member of a running cluster (`make run`),
// then what one operation cost: each member's CPU (from /proc, all its threads)
// and every counter of its /metrics that moved by more than 0.05 per operation (Raft messages, turns,
// synced batches, oracle requests...). For comparing builds and shard counts, not a benchmark: run it
// a few times each way, interleaved (one run moves by ±20% on a shared 2-core machine).
//
// Usage: node bench/counters-probe.ts <put|range|txn1|txn2> <seconds> <in flight> <client host:port>=<pid>=<metrics port> ...
// PROBE_KEY_PREFIX='{a}' puts every key of put and range in one shard (a hash tag); PROBE_SERIALIZABLE=1
// makes the ranges serializable; PROBE_LOAD_TARGETS=n sends the load through the first n members only. It also prints each member's context switches per operation, and how much of
// the machine's CPU was idle and how much this load generator took.
import fs from 'node:fs';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { EtcdConnection } from './etcd-rpc.ts';
import { txnKeyPair } from './txn-keys.ts';
import { machineBusyCpuMs, selfCpuMs } from './proc-stats.ts';

interface Target {
  endpoint: string;
  pid: number;
  metricsUrl: string;
}

const [op, secondsArg, inFlightArg, ...targetArgs] = process.argv.slice(2);
if ((op !== 'put' && op !== 'range' && op !== 'txn1' && op !== 'txn2') || targetArgs.length === 0) {
  console.error('usage: node bench/counters-probe.ts <put|range|txn1|txn2> <seconds> <in flight> <host:port>=<pid>=<metrics port> ...');
  process.exit(2);
}
const seconds = Number(secondsArg);
const inFlight = Number(inFlightArg);
const targets: Target[] = targetArgs.map((a) => {
  const [endpoint, pid, metricsPort] = a.split('=');
  return { endpoint, pid: Number(pid), metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
});
const KEYSPACE = 100_000;
const value = randomBytes(256);

/** utime + stime of every thread of `pid`, in clock ticks (10 ms). */
function cpuTicks(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** Context switches of every thread of `pid` so far: [voluntary (it waited), involuntary (it was preempted)]. */
function contextSwitches(pid: number): [number, number] {
  let voluntary = 0;
  let involuntary = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    voluntary += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    involuntary += Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  }
  return [voluntary, involuntary];
}

/** Every sample of a Prometheus text page, summed over its labels, by metric name. */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const name = line.slice(0, space).replace(/\{.*\}$/, '');
    sums.set(name, (sums.get(name) ?? 0) + Number(line.slice(space + 1)));
  }
  return sums;
}

// PROBE_LOAD_TARGETS=n sends the load through the first n members only (every member is still measured):
// e.g. every cross-shard txn coordinated by one member.
const loadTargets = Number(process.env.PROBE_LOAD_TARGETS ?? targets.length);
const conns = targets.slice(0, Math.max(1, Math.min(targets.length, loadTargets))).map((t) => new EtcdConnection(t.endpoint));
const keyPrefix = process.env.PROBE_KEY_PREFIX ?? '';
const serializable = process.env.PROBE_SERIALIZABLE === '1';
const keyOf = (): Buffer => Buffer.from(`${keyPrefix}k${Math.floor(Math.random() * KEYSPACE)}`);
function once(conn: EtcdConnection): Promise<unknown> {
  if (op === 'put') return conn.put({ key: keyOf(), value } as never);
  if (op === 'range') return conn.range({ key: keyOf(), ...(serializable ? { serializable: true } : {}) } as never);
  const [a, b] = txnKeyPair(Math.floor(Math.random() * KEYSPACE), op === 'txn2');
  return conn.txn({ compare: [], success: [{ request_put: { key: a, value } }, { request_put: { key: b, value } }], failure: [] } as never);
}

/** Runs the loop for `ms`; the number of operations completed. */
async function run(ms: number): Promise<number> {
  let done = 0;
  const endMs = performance.now() + ms;
  await Promise.all(
    Array.from({ length: inFlight }, async (_, i) => {
      const conn = conns[i % conns.length];
      while (performance.now() < endMs) {
        await once(conn);
        done++;
      }
    }),
  );
  return done;
}

if (op === 'range') await run(2_000); // something to read
await run(3_000); // warm-up: every member's JIT on every path
const before = await Promise.all(targets.map((t) => scrape(t.metricsUrl)));
const cpuBefore = targets.map((t) => cpuTicks(t.pid));
const switchesBefore = targets.map((t) => contextSwitches(t.pid));
const machineBusyBeforeMs = machineBusyCpuMs();
const selfBeforeMs = selfCpuMs();
const startedMs = performance.now();
const done = await run(seconds * 1_000);
const elapsedS = (performance.now() - startedMs) / 1_000;
const machineBusyMs = machineBusyCpuMs() - machineBusyBeforeMs;
const selfMs = selfCpuMs() - selfBeforeMs;
const after = await Promise.all(targets.map((t) => scrape(t.metricsUrl)));
const cpuUsPerOp = targets.map((t, i) => ((cpuTicks(t.pid) - cpuBefore[i]) * 10_000) / done);
console.log(`${op} c=${inFlight}: ${done} in ${elapsedS.toFixed(1)} s, ${(done / elapsedS).toFixed(0)}/s; server CPU µs per ${op} (each member) ${cpuUsPerOp.map((c) => c.toFixed(0)).join(' / ')}, total ${cpuUsPerOp.reduce((a, b) => a + b, 0).toFixed(0)}`);
// Whether the machine had CPU to spare (if not, a lower cost per operation is the only way to a higher rate).
const coreMs = elapsedS * 1_000 * os.availableParallelism();
console.log(`  machine: ${((100 * Math.max(0, coreMs - machineBusyMs)) / coreMs).toFixed(1)}% idle over ${os.availableParallelism()} cores; this load generator used ${((100 * selfMs) / coreMs).toFixed(1)}%`);
const switchesPerOp = targets.map((t, i) => contextSwitches(t.pid).map((n, j) => (n - switchesBefore[i][j]) / done));
console.log(`  context switches per ${op} (voluntary + involuntary, all threads): ${switchesPerOp.map(([v, n]) => `${v.toFixed(2)} + ${n.toFixed(2)}`).join(' / ')}`);
for (const name of after[0].keys()) {
  if (!name.endsWith('_total')) continue;
  const perOp = targets.map((_, i) => ((after[i].get(name) ?? 0) - (before[i].get(name) ?? 0)) / done);
  if (perOp.some((x) => x > 0.05)) console.log(`  ${name}: ${perOp.map((x) => x.toFixed(2)).join(' / ')} per ${op}`);
}
for (const c of conns) c.close();
process.exit(0);

// `make bench`'s sharding rows (issue 14): etcd, Synod with one shard and Synod with 16 shards, each a
// 3-member cluster on this machine, measured in one run by the same closed-loop load generator as
// run-bench.ts (rounds alternate the order of the systems). Rows: put at 64 and 256 in flight, a
// linearizable one-key range at 64, a linearizable range over 100 consecutive keys at 16 (on 16
// shards those keys sit on every shard: one snapshot at one oracle revision, merged), and two-key txns
// at 1 and 64 in flight whose keys share a shard or sit on two (a cross-shard transaction on 16 shards). Prints a table
// with the ratios the brief names (16 shards / one shard, 16 shards / etcd) and writes
// bench/results/sharding.{md,json}. Then a prefix watch over every shard under a light write load: delivery
// latency, and every event once in revision order (bench/prefix-watch-latency.ts).
//
//   node bench/sharding.ts            (BENCH_SECONDS, BENCH_ROUNDS, BENCH_WORKERS as for run-bench.ts;
//                                      BENCH_CLUSTER_WARMUP_MS: unmeasured load on each cluster first, 20 s)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readConfig } from './bench-config.ts';
import { Cluster, killAllSync } from './clusters.ts';
import { RESULTS_DIR } from './results-files.ts';
import { runClosedLoop, type ClosedLoopWorkload, type Row } from './workloads.ts';
import { measurePrefixWatchLatency, type PrefixWatchLatency } from './prefix-watch-latency.ts';
import { median, writeShardingChart } from './sharding-chart.ts';

const SHARDS = 16;
/** The watch row's light load: an open-loop writer at this rate, over this many keys (every shard). */
const WATCH_PUTS_PER_SECOND = 200;
const WATCH_KEYS = 1024;

const WORKLOADS: readonly ClosedLoopWorkload[] = [
  { id: 'put c=64', op: 'put', inFlight: 64 },
  { id: 'put c=256', op: 'put', inFlight: 256 },
  { id: 'range linearizable c=64', op: 'range-linearizable', inFlight: 64 },
  { id: 'range over 100 keys c=16', op: 'range-span', inFlight: 16 },
  // Issue 15: a two-key txn on one shard (hash-tagged) against one whose keys are on two shards.
  { id: 'txn 2 keys, 1 shard c=1', op: 'txn-one-shard', inFlight: 1 },
  { id: 'txn 2 keys, 2 shards c=1', op: 'txn-two-shards', inFlight: 1 },
  { id: 'txn 2 keys, 1 shard c=64', op: 'txn-one-shard', inFlight: 64 },
  { id: 'txn 2 keys, 2 shards c=64', op: 'txn-two-shards', inFlight: 64 },
  // The same with compares (both keys' mod revisions): a compare-and-swap, as a bank transfer makes one.
  { id: 'txn CAS 2 keys, 1 shard c=1', op: 'txn-cas-one-shard', inFlight: 1 },
  { id: 'txn CAS 2 keys, 2 shards c=1', op: 'txn-cas-two-shards', inFlight: 1 },
  // Many at once (several transactions prepared on a shard at once, on disjoint keys: docs/transactions.md).
  { id: 'txn CAS 2 keys, 1 shard c=64', op: 'txn-cas-one-shard', inFlight: 64 },
  { id: 'txn CAS 2 keys, 2 shards c=64', op: 'txn-cas-two-shards', inFlight: 64 },
];

interface Setup {
  label: string;
  cluster: Cluster;
}

const log = (msg: string): void => console.log(`[sharding ${new Date().toISOString().slice(11, 19)}] ${msg}`);

async function main(): Promise<void> {
  const cfg = readConfig();
  const rootDir = fs.mkdtempSync(path.join(cfg.dataParentDir, 'synod-bench-sharding-'));
  const common = { heartbeatMs: cfg.heartbeatMs, electionTimeoutMs: cfg.electionTimeoutMs, synodRoot: cfg.synodRoot };
  const setups: Setup[] = [];
  try {
    // BENCH_SETUPS=etcd,1,16 (any of them) starts only those systems (a narrowed run, printed only).
    const wanted = (tag: string): boolean => cfg.setups.length === 0 || cfg.setups.includes(tag);
    if (wanted('etcd')) setups.push({ label: 'etcd', cluster: await Cluster.start({ ...common, system: 'etcd', rootDir: path.join(rootDir, 'etcd') }) });
    if (wanted('1')) setups.push({ label: 'synod 1 shard', cluster: await Cluster.start({ ...common, system: 'synod', rootDir: path.join(rootDir, 's1'), shards: 1 }) });
    if (wanted(String(SHARDS))) setups.push({ label: `synod ${SHARDS} shards`, cluster: await Cluster.start({ ...common, system: 'synod', rootDir: path.join(rootDir, 's16'), shards: SHARDS }) });
    // Every system gets the same unmeasured load first, puts then linearizable ranges, so that no row
    // measures a cold cluster (BenchConfig.clusterWarmupMs).
    if (cfg.clusterWarmupMs > 0) {
      const half = { ...cfg, durationMs: Math.ceil(cfg.clusterWarmupMs / 2), warmupMs: 0 };
      for (const setup of setups) {
        for (const w of WORKLOADS.filter((x) => x.id === 'put c=64' || x.id === 'range linearizable c=64')) await runClosedLoop(half, setup.cluster, w, 0);
        log(`${setup.label}: warmed up (${cfg.clusterWarmupMs / 1000} s of puts and linearizable ranges, not measured)`);
      }
    }
    const rows = new Map<string, Row[]>();
    // BENCH_ONLY narrows the run to some rows (printed only: the results files keep the last whole run).
    const narrowed = cfg.only.length > 0 || cfg.setups.length > 0;
    const workloads = cfg.only.length > 0 ? WORKLOADS.filter((w) => cfg.only.some((o) => w.id.includes(o))) : WORKLOADS;
    for (let round = 1; round <= cfg.rounds; round++) {
      for (const w of workloads) {
        const order = round % 2 === 1 ? setups : [...setups].reverse();
        for (const setup of order) {
          const row = await runClosedLoop(cfg, setup.cluster, w, round);
          const m = row.measurement;
          log(`${setup.label} ${w.id} round ${round}: ${Math.round(m.opsPerSecond)} ops/s, p50 ${m.latency.p50Ms} ms, p99 ${m.latency.p99Ms} ms, errors ${m.errors}${m.errors > 0 ? ` (${Object.keys(m.errorSamples)[0]})` : ''}, servers ${Math.round(m.serverCpuPercent)}% CPU, other load ${Math.round(m.otherCpuPercent)}%`);
          const key = `${setup.label}|${w.id}`;
          rows.set(key, [...(rows.get(key) ?? []), row]);
        }
      }
    }
    const fig = (label: string, id: string): { ops: number; p50: number; p99: number } => {
      const rs = rows.get(`${label}|${id}`) ?? [];
      return {
        ops: median(rs.map((r) => r.measurement.opsPerSecond)),
        p50: median(rs.map((r) => r.measurement.latency.p50Ms)),
        p99: median(rs.map((r) => r.measurement.latency.p99Ms)),
      };
    };
    const [etcd, one, many] = ['etcd', 'synod 1 shard', `synod ${SHARDS} shards`];
    const lines = [
      `| workload | etcd ops/s (p99 ms) | Synod, 1 shard | Synod, ${SHARDS} shards | ${SHARDS} shards / 1 shard | ${SHARDS} shards / etcd |`,
      '|---|---|---|---|---|---|',
    ];
    for (const w of workloads) {
      const [e, a, b] = [fig(etcd, w.id), fig(one, w.id), fig(many, w.id)];
      const cell = (f: { ops: number; p99: number }): string => `${Math.round(f.ops).toLocaleString('en-US')} (${f.p99.toFixed(1)})`;
      lines.push(`| ${w.id} | ${cell(e)} | ${cell(a)} | ${cell(b)} | ${(b.ops / a.ops).toFixed(2)}× | ${(b.ops / e.ops).toFixed(2)}× | p50 ${b.p50.toFixed(1)} ms |`);
    }
    if (narrowed) {
      console.log(`\n${lines.join('\n')}\n`);
      return;
    }
    // The watch row: one prefix watch over every shard under a light open-loop write load, per round.
    const watchRuns = new Map<string, PrefixWatchLatency[]>();
    for (let round = 1; round <= cfg.rounds; round++) {
      for (const setup of round % 2 === 1 ? setups : [...setups].reverse()) {
        const r = await measurePrefixWatchLatency(setup.cluster, { putsPerSecond: WATCH_PUTS_PER_SECOND, durationMs: cfg.durationMs, keys: WATCH_KEYS });
        log(`${setup.label} prefix watch round ${round}: ${r.delivered}/${r.puts} delivered, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms, missed ${r.missed}, duplicates ${r.duplicates}, out of order ${r.outOfOrder}, put errors ${r.putErrors}`);
        watchRuns.set(setup.label, [...(watchRuns.get(setup.label) ?? []), r]);
      }
    }
    const watchCell = (label: string): string => {
      const rs = watchRuns.get(label) ?? [];
      const bad = rs.reduce((a, r) => a + r.missed + r.duplicates + r.outOfOrder, 0);
      return `${median(rs.map((r) => r.p50Ms)).toFixed(1)} / ${median(rs.map((r) => r.p99Ms)).toFixed(1)}${bad > 0 ? ` (${bad} missed, duplicated or out of order)` : ''}`;
    };
    lines.push('', `| prefix watch over every shard, ${WATCH_PUTS_PER_SECOND} puts/s: delivery p50 / p99 ms | etcd | Synod, 1 shard | Synod, ${SHARDS} shards |`, '|---|---|---|---|');
    lines.push(`| put sent → event received (watch through another member) | ${watchCell(etcd)} | ${watchCell(one)} | ${watchCell(many)} |`);
    const table = lines.join('\n');
    console.log(`\n${table}\n`);
    const header =
      `Measured ${new Date().toISOString().slice(0, 10)} on ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'unknown'}), ` +
      `${cfg.rounds} rounds of ${cfg.durationMs / 1000} s per workload and system (median shown), 3 members each on loopback.`;
    fs.mkdirSync(RESULTS_DIR, { recursive: true });
    fs.writeFileSync(path.join(RESULTS_DIR, 'sharding.md'), `# Sharding rows (bench/sharding.ts)\n\n${header}\n\n${table}\n`);
    const results = { header, rows: [...rows.entries()].map(([k, rs]) => ({ setup: k.split('|')[0], workload: k.split('|')[1], runs: rs.map((r) => r.measurement) })), prefixWatch: Object.fromEntries(watchRuns) };
    fs.writeFileSync(path.join(RESULTS_DIR, 'sharding.json'), `${JSON.stringify(results, null, 2)}\n`);
    log(`wrote ${path.relative(process.cwd(), writeShardingChart(results))}`);
  } finally {
    for (const s of setups) await s.cluster.stop();
    if (!cfg.keepData) fs.rmSync(rootDir, { recursive: true, force: true });
  }
}

process.on('SIGINT', () => {
  killAllSync();
  process.exit(130);
});
await main().catch((err: unknown) => {
  killAllSync();
  console.error(err);
  process.exit(1);
});

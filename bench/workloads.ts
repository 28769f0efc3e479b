// The workloads of `make bench`, each runnable against any etcd-v3 cluster: closed-loop puts,
// ranges and txns; the key fill behind the memory reading; watch fan-out; the lease lifecycle.
// Each returns rows of measurements for the report.
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { settlePauseMs, type BenchConfig } from './bench-config.ts';
import type { Cluster } from './clusters.ts';
import { EtcdConnection } from './etcd-rpc.ts';
import type { ClosedLoopOp, Job } from './job-types.ts';
import { runJob, split, type PhaseMeasurement } from './load-runner.ts';
import { readMemory, type MemoryReading } from './proc-stats.ts';

export interface ClosedLoopWorkload {
  id: string;
  op: ClosedLoopOp;
  inFlight: number;
}

export const CLOSED_LOOP_WORKLOADS: readonly ClosedLoopWorkload[] = [
  { id: 'put c=1', op: 'put', inFlight: 1 },
  { id: 'put c=16', op: 'put', inFlight: 16 },
  { id: 'put c=64', op: 'put', inFlight: 64 },
  { id: 'put c=256', op: 'put', inFlight: 256 },
  { id: 'range linearizable c=64', op: 'range-linearizable', inFlight: 64 },
  { id: 'range serializable c=64', op: 'range-serializable', inFlight: 64 },
  { id: 'txn cas c=64', op: 'txn-cas', inFlight: 64 },
];

/** One measured row: a workload (and phase) on one system in one round. */
export interface Row {
  workload: string;
  system: string;
  round: number;
  measurement: PhaseMeasurement;
  /** Extra figures (memory per watcher, RSS, ...). */
  notes: Record<string, number | string>;
}

function closedLoopJobs(cfg: BenchConfig, op: ClosedLoopOp, inFlight: number, fill?: { start: number; count: number }): Job[] {
  const workers = Math.min(cfg.workers, inFlight);
  const shares = split(inFlight, workers);
  const fillShares = fill ? split(fill.count, workers) : [];
  let fillCursor = fill?.start ?? 0;
  return shares.map((share, i) => {
    const fillStart = fillCursor;
    fillCursor += fillShares[i] ?? 0;
    return {
      kind: 'closed-loop',
      op,
      inFlight: share,
      keyspaceSize: cfg.keyspaceSize,
      keyBytes: cfg.keyBytes,
      valueBytes: cfg.valueBytes,
      warmupMs: cfg.warmupMs,
      fillStart,
      fillEnd: fillCursor,
    };
  });
}

export async function runClosedLoop(cfg: BenchConfig, cluster: Cluster, w: ClosedLoopWorkload, round: number): Promise<Row> {
  const jobs = closedLoopJobs(cfg, w.op, w.inFlight);
  const [m] = await runJob({
    endpoints: cluster.endpoints,
    jobs,
    connectionsPerWorker: w.inFlight === 1 ? 1 : cfg.connectionsPerWorker,
    durationMs: cfg.durationMs,
    serverPids: cluster.pids,
  });
  return { workload: w.id, system: cluster.system, round, measurement: m, notes: {} };
}

const MIB = 1024 * 1024;

function mib(bytes: number): number {
  return Math.round((bytes / MIB) * 10) / 10;
}

/** Writes `cfg.memoryKeys` distinct 8-byte keys with 256-byte values at 64 in flight, then reads every member's RSS. */
export async function runMemoryFill(cfg: BenchConfig, cluster: Cluster): Promise<Row> {
  const before = cluster.pids.map(readMemory);
  const [m] = await runJob({
    endpoints: cluster.endpoints,
    jobs: closedLoopJobs(cfg, 'fill', 64, { start: 0, count: cfg.memoryKeys }),
    connectionsPerWorker: cfg.connectionsPerWorker,
    durationMs: 0,
    serverPids: cluster.pids,
  });
  await new Promise((r) => setTimeout(r, settlePauseMs(3000, cfg.settleMs)));
  const after: MemoryReading[] = cluster.pids.map(readMemory);
  const notes: Record<string, number | string> = { keys: cfg.memoryKeys };
  after.forEach((a, i) => {
    notes[`rssMiB.${cluster.members[i].name}`] = mib(a.rssBytes);
    notes[`rssAnonMiB.${cluster.members[i].name}`] = mib(a.rssAnonBytes);
    notes[`rssBeforeMiB.${cluster.members[i].name}`] = mib(before[i].rssBytes);
  });
  const maxRss = Math.max(...after.map((a) => a.rssBytes));
  const meanRss = after.reduce((s, a) => s + a.rssBytes, 0) / after.length;
  const meanDelta = after.reduce((s, a, i) => s + a.rssBytes - before[i].rssBytes, 0) / after.length;
  notes.rssMaxMiB = mib(maxRss);
  notes.rssMeanMiB = mib(meanRss);
  notes.rssDeltaBytesPerKey = cfg.memoryKeys > 0 ? Math.round(meanDelta / cfg.memoryKeys) : 0;
  return { workload: `fill ${cfg.memoryKeys} keys c=64`, system: cluster.system, round: 0, measurement: m, notes };
}

/** One writer, `cfg.watchers` watchers on one key on member 1: delivery latency and RSS per watcher. */
export async function runWatchFanout(cfg: BenchConfig, cluster: Cluster): Promise<Row> {
  const key = `bench/watch/${cluster.system}`;
  const pid = cluster.pids[0];
  const workers = Math.max(1, Math.min(cfg.workers, cfg.watchers));
  const jobs: Job[] = split(cfg.watchers, workers).map((n) => ({ kind: 'watch', watchers: n, watchersPerStream: cfg.watchersPerStream, key }));
  const rssBefore = readMemory(pid).rssBytes;
  let rssAfter = rssBefore;
  let puts = 0;
  let putErrors = 0;
  const writer = new EtcdConnection(cluster.endpoints[0]);
  try {
    const [m] = await runJob({
      endpoints: [cluster.endpoints[0]],
      jobs,
      connectionsPerWorker: 1,
      durationMs: cfg.durationMs,
      serverPids: cluster.pids,
      beforePhase: async () => {
        await new Promise((r) => setTimeout(r, settlePauseMs(2000, cfg.settleMs)));
        rssAfter = readMemory(pid).rssBytes;
      },
      drivePhase: async () => {
        // Open loop: a put leaves every 1/rate s whether or not the last one has returned, so a slow
        // write path shows up as delivery latency, not as fewer events.
        const intervalMs = 1000 / cfg.watchPutsPerSecond;
        const t0 = performance.now();
        const inFlight: Array<Promise<void>> = [];
        for (let i = 0; performance.now() - t0 < cfg.durationMs; i++) {
          const due = t0 + i * intervalMs;
          const waitMs = due - performance.now();
          if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
          const value = randomBytes(cfg.valueBytes);
          value.writeDoubleLE(performance.timeOrigin + performance.now(), 0);
          inFlight.push(
            writer.put({ key: Buffer.from(key), value }).then(
              () => void puts++,
              () => void putErrors++,
            ),
          );
        }
        await Promise.all(inFlight);
        await new Promise((r) => setTimeout(r, 1500));
      },
    });
    const expected = puts * cfg.watchers;
    return {
      workload: `watch fan-out ${cfg.watchers} watchers`,
      system: cluster.system,
      round: 0,
      measurement: m,
      notes: {
        watchers: cfg.watchers,
        watchersPerStream: cfg.watchersPerStream,
        puts,
        putErrors,
        deliveriesExpected: expected,
        deliveriesMissed: expected - m.ok,
        rssDeltaMiB: mib(rssAfter - rssBefore),
        rssBytesPerWatcher: cfg.watchers > 0 ? Math.round((rssAfter - rssBefore) / cfg.watchers) : 0,
      },
    };
  } finally {
    writer.close();
  }
}

/** Grants `cfg.leases` leases at 64 in flight, keeps them alive for the run's duration, revokes them. */
export async function runLeases(cfg: BenchConfig, cluster: Cluster): Promise<Row[]> {
  const workers = Math.max(1, Math.min(cfg.workers, cfg.leases));
  const inFlight = split(64, workers);
  const jobs: Job[] = split(cfg.leases, workers).map((n, i) => ({ kind: 'lease', leases: n, ttlSeconds: cfg.leaseTtlSeconds, inFlight: inFlight[i] }));
  const phases = await runJob({
    endpoints: cluster.endpoints,
    jobs,
    connectionsPerWorker: cfg.connectionsPerWorker,
    durationMs: cfg.durationMs,
    serverPids: cluster.pids,
  });
  return phases.map((m) => ({ workload: `lease ${m.phase} (${cfg.leases} leases) c=64`, system: cluster.system, round: 0, measurement: m, notes: {} }));
}

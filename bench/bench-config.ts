// Settings of `make bench`, read from the environment (BENCH_*) so a run can be shortened,
// lengthened or narrowed without editing code. Every value carries its unit in its name.
import os from 'node:os';

export interface BenchConfig {
  /** Measured seconds per closed-loop workload run (BENCH_SECONDS). */
  durationMs: number;
  /** Unmeasured warm-up before each closed-loop run. */
  warmupMs: number;
  /**
   * Unmeasured load on each freshly started cluster before its first measured row (BENCH_CLUSTER_WARMUP_MS;
   * bench/sharding.ts): a Synod member's JIT takes ~20 s of load to settle (three 6 s runs in a row on a
   * fresh 16-shard cluster: 4,104, 5,084 and 5,850 ranges a second), and a server runs for days.
   */
  clusterWarmupMs: number;
  /** Times each closed-loop workload runs against each system, alternating which goes first (BENCH_ROUNDS). */
  rounds: number;
  /** Worker threads of the load generator (BENCH_WORKERS). */
  workers: number;
  /** gRPC connections per worker thread (BENCH_CONNECTIONS_PER_WORKER). */
  connectionsPerWorker: number;
  /** Keys in the put/range keyspace (8-byte keys). */
  keyspaceSize: number;
  keyBytes: number;
  valueBytes: number;
  /** Keys written before the memory reading (BENCH_KEYS; the figure is 1,000,000). */
  memoryKeys: number;
  /** Watch fan-out: watchers, watchers per gRPC watch stream, writer rate. */
  watchers: number;
  watchersPerStream: number;
  watchPutsPerSecond: number;
  /** Idle watches per step of Synod's in-process memory probe (bench/watch-memory.ts). */
  idleWatches: number;
  /** Leases granted then kept alive (BENCH_LEASES). */
  leases: number;
  leaseTtlSeconds: number;
  /** `etcdctl check perf` loads to run, e.g. ['s'] or ['s','m','l'] (BENCH_CHECK_PERF; empty: skip). */
  checkPerfLoads: string[];
  /** Only run workloads whose id contains one of these (BENCH_ONLY, comma-separated; empty: all). */
  only: string[];
  /** BENCH_SETUPS: which systems bench/sharding.ts starts (etcd, 1, 16; empty: all). */
  setups: string[];
  /** Systems to run (BENCH_SYSTEMS=etcd,synod). */
  systems: Array<'etcd' | 'synod'>;
  /** Parent of the temporary data directories (BENCH_DATA_DIR; default the OS temp dir). */
  dataParentDir: string;
  /** Keep data directories and logs after the run (BENCH_KEEP_DATA=1). */
  keepData: boolean;
  heartbeatMs: number;
  electionTimeoutMs: number;
  /** Repository root whose server/cli/synod.ts is benchmarked (BENCH_SYNOD_ROOT; default this checkout). */
  synodRoot: string | undefined;
  /**
   * Upper bound on each pause that lets memory settle before a reading (BENCH_SETTLE_MS; unset: each
   * pause's own length, 1–3 s). The smoke test, which checks that readings exist, not their values, sets it low.
   */
  settleMs: number | null;
}

/** A settle pause of `ms`, capped by BENCH_SETTLE_MS. */
export function settlePauseMs(ms: number, settleMs = readSettleMs()): number {
  return settleMs === null ? ms : Math.min(ms, settleMs);
}

function readSettleMs(): number | null {
  return process.env.BENCH_SETTLE_MS ? int('BENCH_SETTLE_MS', 0) : null;
}

function int(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${raw}: expected a non-negative number`);
  return n;
}

function list(name: string, fallback: string[]): string[] {
  const raw = process.env[name];
  if (raw === undefined) return fallback;
  return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

export function readConfig(): BenchConfig {
  const systems = list('BENCH_SYSTEMS', ['etcd', 'synod']);
  for (const s of systems) if (s !== 'etcd' && s !== 'synod') throw new Error(`BENCH_SYSTEMS: unknown system ${s}`);
  return {
    // BENCH_DURATION_MS: the smoke test's sub-second runs; BENCH_SECONDS otherwise.
    durationMs: process.env.BENCH_DURATION_MS ? int('BENCH_DURATION_MS', 1000) : int('BENCH_SECONDS', 10) * 1000,
    warmupMs: int('BENCH_WARMUP_MS', 1000),
    clusterWarmupMs: int('BENCH_CLUSTER_WARMUP_MS', 20_000),
    rounds: Math.max(1, int('BENCH_ROUNDS', 2)),
    workers: Math.max(1, int('BENCH_WORKERS', 4)),
    connectionsPerWorker: Math.max(1, int('BENCH_CONNECTIONS_PER_WORKER', 2)),
    keyspaceSize: 100_000,
    keyBytes: 8,
    valueBytes: 256,
    memoryKeys: int('BENCH_KEYS', 100_000),
    watchers: int('BENCH_WATCHERS', 1000),
    // etcd's own `benchmark watch` defaults: 10 streams of 100 watches.
    watchersPerStream: Math.max(1, int('BENCH_WATCHERS_PER_STREAM', 100)),
    watchPutsPerSecond: Math.max(1, int('BENCH_WATCH_PUT_RATE', 20)),
    leases: int('BENCH_LEASES', 10_000),
    idleWatches: Math.max(1, int('BENCH_IDLE_WATCHES', 10_000)),
    leaseTtlSeconds: 300,
    checkPerfLoads: list('BENCH_CHECK_PERF', ['s']),
    only: list('BENCH_ONLY', []),
    setups: list('BENCH_SETUPS', []),
    systems: systems as Array<'etcd' | 'synod'>,
    dataParentDir: process.env.BENCH_DATA_DIR || os.tmpdir(),
    keepData: process.env.BENCH_KEEP_DATA === '1',
    heartbeatMs: 100,
    electionTimeoutMs: 1000,
    synodRoot: process.env.BENCH_SYNOD_ROOT || undefined,
    settleMs: readSettleMs(),
  };
}

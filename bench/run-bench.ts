// `make bench`: starts a 3-member etcd and a 3-member Synod on loopback, runs every workload against
// both (alternating which goes first, repeated), prints the table with Synod/etcd ratios and writes
// bench/results/latest.{json,md,svg}. Stops everything it started by PID, on errors and Ctrl-C too.
// `--profile` instead runs Synod alone under `node --cpu-prof` with put c=64 and summarises the profile.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readConfig, type BenchConfig } from './bench-config.ts';
import { runCheckPerf, type CheckPerfResult } from './check-perf.ts';
import { Cluster, ETCD_BINARY, filesystemOf, killAllSync, type SystemName } from './clusters.ts';
import { formatSummary, summariseProfile, type ProfileSummary } from './profile-summary.ts';
import { aggregate, consoleTable } from './report.ts';
import { MEMBER_NODE_FLAGS } from '../server/cli/member-node-flags.ts';
import { RESULTS_DIR, writeResultFiles, type Machine } from './results-files.ts';
import { CLOSED_LOOP_WORKLOADS, runClosedLoop, runLeases, runMemoryFill, runWatchFanout, type Row } from './workloads.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const PROFILES_DIR = path.join(RESULTS_DIR, 'profiles');


function describeMachine(dataDir: string): Machine {
  const cpuinfo = fs.readFileSync('/proc/cpuinfo', 'utf8');
  const firstLine = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8' }).split('\n')[0].trim();
    } catch {
      return 'unknown';
    }
  };
  return {
    cpus: os.availableParallelism(),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    etcd: firstLine(ETCD_BINARY, ['--version']),
    etcdctl: firstLine('etcdctl', ['version']),
    dataFilesystem: filesystemOf(dataDir),
  };
}

/** Which Synod was measured: the root it ran from and that checkout's commit (read-only git). */
function synodRevision(cfg: BenchConfig): { root: string; commit: string } {
  const root = cfg.synodRoot ?? path.resolve(BENCH_DIR, '..');
  let commit = process.env.BENCH_SYNOD_COMMIT ?? '';
  if (commit === '') {
    try {
      commit = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      commit = 'unknown';
    }
  }
  return { root, commit };
}

function wanted(cfg: BenchConfig, id: string): boolean {
  return cfg.only.length === 0 || cfg.only.some((o) => id.includes(o));
}

function log(msg: string): void {
  console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

function describeRow(r: Row): string {
  const m = r.measurement;
  if (m.unsupported !== undefined) return `${r.system} ${r.workload}: unsupported (${m.unsupported})`;
  const errs = m.errors > 0 ? `, ${m.errors} errors (${Object.keys(m.errorSamples)[0]})` : '';
  return `${r.system} ${r.workload}${r.round > 0 ? ` round ${r.round}` : ''}: ${Math.round(m.opsPerSecond)} ops/s, p50 ${m.latency.p50Ms} ms, p99 ${m.latency.p99Ms} ms, client CPU ${Math.round(m.clientCpuPercent)}%, servers ${Math.round(m.serverCpuPercent)}%, other load ${Math.round(m.otherCpuPercent)}%${errs}`;
}

async function startClusters(cfg: BenchConfig, rootDir: string, nodeFlags: string[] = []): Promise<Map<SystemName, Cluster>> {
  const clusters = new Map<SystemName, Cluster>();
  for (const system of cfg.systems) {
    log(`starting 3-member ${system} in ${path.join(rootDir, system)}`);
    clusters.set(
      system,
      await Cluster.start({
        system,
        rootDir: path.join(rootDir, system),
        heartbeatMs: cfg.heartbeatMs,
        electionTimeoutMs: cfg.electionTimeoutMs,
        nodeFlags,
        synodRoot: cfg.synodRoot,
      }),
    );
  }
  return clusters;
}

async function runAll(cfg: BenchConfig, clusters: Map<SystemName, Cluster>): Promise<{ rows: Row[]; checkPerf: Array<CheckPerfResult & { system: string }>; failures: string[] }> {
  const rows: Row[] = [];
  const failures: string[] = [];
  const push = (r: Row): void => {
    rows.push(r);
    log(describeRow(r));
  };
  /** Runs one workload on one cluster; a failure (or a member that died) is reported and the run goes on. */
  const attempt = async (c: Cluster, what: string, run: () => Promise<Row | Row[]>): Promise<void> => {
    const dead = c.deadMembers();
    if (dead.length > 0) {
      failures.push(`${c.system} ${what}: skipped, a member is down`);
      return;
    }
    try {
      const out = await run();
      for (const r of Array.isArray(out) ? out : [out]) push(r);
    } catch (err) {
      failures.push(`${c.system} ${what}: ${err instanceof Error ? err.message : String(err)}`);
      log(`FAILED ${c.system} ${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (const d of c.deadMembers()) {
      if (failures.includes(d)) continue;
      failures.push(d);
      log(`MEMBER DOWN after ${what}: ${d}`);
    }
  };
  const systemsInOrder = (round: number): Cluster[] => {
    const list = cfg.systems.map((s) => clusters.get(s)!);
    return round % 2 === 1 ? list : [...list].reverse();
  };

  if (cfg.memoryKeys > 0 && wanted(cfg, 'fill')) {
    for (const c of systemsInOrder(1)) await attempt(c, 'fill', () => runMemoryFill(cfg, c));
  }
  for (let round = 1; round <= cfg.rounds; round++) {
    for (const w of CLOSED_LOOP_WORKLOADS) {
      if (!wanted(cfg, w.id)) continue;
      for (const c of systemsInOrder(round)) await attempt(c, w.id, () => runClosedLoop(cfg, c, w, round));
    }
  }
  if (cfg.watchers > 0 && wanted(cfg, 'watch')) {
    for (const c of systemsInOrder(1)) await attempt(c, 'watch', () => runWatchFanout(cfg, c));
    const synodWatch = rows.find((r) => r.system === 'synod' && r.workload.startsWith('watch'));
    if (synodWatch) {
      // RSS differences are GC noise at this size (see docs/performance.md); this reading is not.
      for (const [perStream, keys] of [[100, 'shared'], [10, 'shared'], [100, 'distinct']] as const) {
        try {
          const m = idleWatchMemory(cfg, perStream, keys);
          const tag = keys === 'shared' ? `${perStream}` : `${perStream}.${keys}`;
          synodWatch.notes.idleWatches = cfg.idleWatches;
          synodWatch.notes[`idleWatchBytes.${tag}`] = m.totalBytesPerWatch;
          synodWatch.notes[`idleWatchRssBytes.${tag}`] = m.rssBytesPerWatch;
          log(`synod idle watch memory, ${perStream} per stream, ${keys} keys: ${m.totalBytesPerWatch} B heap+external, ${m.rssBytesPerWatch} B RSS per watch`);
        } catch (err) {
          failures.push(`synod idle watch memory: ${(err as Error).message}`);
        }
      }
    }
  }
  if (cfg.leases > 0 && wanted(cfg, 'lease')) {
    for (const c of systemsInOrder(2)) await attempt(c, 'lease', () => runLeases(cfg, c));
  }
  const checkPerf: Array<CheckPerfResult & { system: string }> = [];
  if (wanted(cfg, 'check-perf')) {
    for (const load of cfg.checkPerfLoads) {
      for (const c of systemsInOrder(1)) {
        if (c.deadMembers().length > 0) continue;
        log(`${c.system}: etcdctl check perf --load=${load} (60 s)`);
        const r = { system: c.system, ...(await runCheckPerf(c.endpoints, load, `/bench-check-perf-${load}/`)) };
        checkPerf.push(r);
        log(`${c.system} check perf --load=${load}: ${r.passed ? 'PASS' : 'FAIL'} ${r.verdicts.join('; ')}${r.errorText ? ` ${r.errorText}` : ''}`);
      }
    }
  }
  return { rows, checkPerf, failures };
}

/** bench/watch-memory.ts in its own process: a member's bytes per idle watch after a full GC. */
function idleWatchMemory(cfg: BenchConfig, perStream: number, keys: 'shared' | 'distinct'): { totalBytesPerWatch: number; rssBytesPerWatch: number } {
  const root = cfg.synodRoot ?? path.resolve(BENCH_DIR, '..');
  const script = path.join(root, 'bench', 'watch-memory.ts');
  const out = execFileSync(process.execPath, ['--expose-gc', ...MEMBER_NODE_FLAGS, script, String(cfg.idleWatches), String(perStream), keys], {
    encoding: 'utf8',
    env: { ...process.env, WATCH_MEM_JSON: '1' },
    timeout: 180_000,
  });
  const line = out.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as { totalBytesPerWatch: number; rssBytesPerWatch: number };
}

function writeResults(
  cfg: BenchConfig,
  machine: Machine,
  rows: Row[],
  checkPerf: Array<CheckPerfResult & { system: string }>,
  failures: string[],
  startedAt: Date,
): void {
  const figures = aggregate(rows);
  console.log(`\n${consoleTable(figures)}\n`);
  const { dataParentDir: _omit, ...config } = cfg;
  const md = writeResultFiles({ startedAt: startedAt.toISOString(), machine, synod: synodRevision(cfg), config, figures, checkPerf, failures, rows });
  console.log(md);
  log(`wrote ${path.relative(process.cwd(), RESULTS_DIR)}/latest.{json,md,svg}`);
}

async function profileSynod(cfg: BenchConfig, rootDir: string): Promise<void> {
  fs.mkdirSync(PROFILES_DIR, { recursive: true });
  for (const f of fs.readdirSync(PROFILES_DIR)) if (f.startsWith('CPU.') && f.endsWith('.cpuprofile')) fs.rmSync(path.join(PROFILES_DIR, f));
  const profCfg: BenchConfig = { ...cfg, systems: ['synod'] };
  const clusters = await startClusters(profCfg, rootDir, ['--cpu-prof', '--cpu-prof-dir', PROFILES_DIR]);
  const synod = clusters.get('synod')!;
  const pidToName = new Map(synod.members.map((m) => [m.pid, m.name]));
  // BENCH_PROFILE_WORKLOAD: a closed-loop workload id (default 'put c=64') or 'watch'.
  const which = process.env.BENCH_PROFILE_WORKLOAD || 'put c=64';
  const w = CLOSED_LOOP_WORKLOADS.find((x) => x.id === which);
  if (w === undefined && which !== 'watch') throw new Error(`BENCH_PROFILE_WORKLOAD=${which}: not a closed-loop workload or 'watch'`);
  const row = w ? await runClosedLoop(profCfg, synod, w, 1) : await runWatchFanout(profCfg, synod);
  const tag = which.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
  log(describeRow(row));
  log('stopping Synod with SIGTERM so each member writes its profile');
  await synod.stop(30_000);
  const summaries: Array<ProfileSummary & { member: string }> = [];
  for (const f of fs.readdirSync(PROFILES_DIR).filter((x) => x.startsWith('CPU.') && x.endsWith('.cpuprofile'))) {
    const pid = Number(/CPU\.\d+\.\d+\.(\d+)\./.exec(f)?.[1]);
    const member = pidToName.get(pid) ?? `pid ${pid}`;
    const named = path.join(PROFILES_DIR, `synod-${tag}-${member}.cpuprofile`);
    fs.renameSync(path.join(PROFILES_DIR, f), named);
    summaries.push({ member, ...summariseProfile(named) });
  }
  summaries.sort((a, b) => b.busyPercent - a.busyPercent);
  const text = summaries.map((s) => `== ${s.member}\n${formatSummary(s)}`).join('\n\n');
  console.log(text);
  fs.writeFileSync(path.join(PROFILES_DIR, `summary-${tag}.txt`), `${describeRow(row)}\n\n${text}\n`);
  fs.writeFileSync(path.join(PROFILES_DIR, `summary-${tag}.json`), JSON.stringify({ row, summaries }, null, 1) + '\n');
  log(`profiles and summary in ${path.relative(process.cwd(), PROFILES_DIR)}`);
}

async function main(): Promise<void> {
  const cfg = readConfig();
  const profile = process.argv.includes('--profile') || process.env.BENCH_PROFILE === '1';
  fs.mkdirSync(cfg.dataParentDir, { recursive: true });
  const rootDir = fs.mkdtempSync(path.join(cfg.dataParentDir, 'synod-bench-'));
  const cleanup = (): void => {
    killAllSync();
    if (!cfg.keepData) fs.rmSync(rootDir, { recursive: true, force: true });
  };
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      console.error(`\n[bench] ${sig}: stopping every process it started`);
      cleanup();
      process.exit(130);
    });
  }
  const startedAt = new Date();
  const machine = describeMachine(rootDir);
  log(`${machine.cpus} × ${machine.cpuModel}; Node ${machine.node}; ${machine.etcd}; data in ${rootDir} (${machine.dataFilesystem})`);
  if (machine.cpus <= 2) log(`note: client and all six servers share ${machine.cpus} cores; figures are for this machine only`);
  try {
    if (profile) {
      await profileSynod(cfg, rootDir);
      return;
    }
    const clusters = await startClusters(cfg, rootDir);
    let result: Awaited<ReturnType<typeof runAll>>;
    try {
      result = await runAll(cfg, clusters);
    } finally {
      log('stopping both clusters');
      await Promise.all([...clusters.values()].map((c) => c.stop()));
    }
    writeResults(cfg, machine, result.rows, result.checkPerf, result.failures, startedAt);
  } finally {
    cleanup();
    if (cfg.keepData) log(`data and logs kept in ${rootDir}`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
    killAllSync();
    process.exit(1);
  },
);

// Starts and stops the two 3-member clusters the benchmark compares: Debian's etcd and Synod, on
// loopback, free ports, fsyncing, data in temporary directories on the same disk. Every process is
// tracked by PID so it is stopped on success, error and Ctrl-C alike.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EtcdConnection } from './etcd-rpc.ts';
import { MEMBER_NODE_FLAGS } from '../server/cli/member-node-flags.ts';
import { freePorts } from '../test/support/ports.ts';

export type SystemName = 'etcd' | 'synod';

export const ETCD_BINARY = '/usr/bin/etcd';
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The `synod` entry point under `root` (default: this checkout). */
/** BENCH_SYNOD_SHARDS=S runs Synod as a sharded cluster of S shards (absent: the cluster's default, one). */
const SHARD_ARGS: string[] = process.env.BENCH_SYNOD_SHARDS ? ['--shards', process.env.BENCH_SYNOD_SHARDS] : [];
/** BENCH_SYNOD_ARGS: more flags for every Synod member, space-separated (e.g. --experimental-oracle-lease). */
const EXTRA_ARGS: string[] = (process.env.BENCH_SYNOD_ARGS ?? '').split(' ').filter(Boolean);

export function synodCli(root?: string): string {
  return path.join(root ?? REPO_ROOT, 'server', 'cli', 'synod.ts');
}

export interface MemberProcess {
  name: string;
  clientPort: number;
  peerPort: number;
  metricsPort: number;
  dataDir: string;
  logFile: string;
  child: ChildProcess;
  pid: number;
}

export interface ClusterOptions {
  system: SystemName;
  rootDir: string;
  heartbeatMs: number;
  electionTimeoutMs: number;
  /** Node flags for Synod members (e.g. --cpu-prof); ignored for etcd. */
  nodeFlags?: string[];
  /** Repository root to run Synod from (default: this checkout). */
  synodRoot?: string;
  /** Synod's --shards (default: BENCH_SYNOD_SHARDS, else the cluster's default, one). */
  shards?: number;
}

/** Every child this process started and has not yet seen exit, for the emergency stop. */
const live = new Set<ChildProcess>();

/** Synchronous last-resort stop (process 'exit', signals): SIGKILL by PID. */
export function killAllSync(): void {
  for (const c of live) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}

export class Cluster {
  readonly system: SystemName;
  readonly members: MemberProcess[];
  readonly rootDir: string;

  private constructor(system: SystemName, members: MemberProcess[], rootDir: string) {
    this.system = system;
    this.members = members;
    this.rootDir = rootDir;
  }

  get endpoints(): string[] {
    return this.members.map((m) => `127.0.0.1:${m.clientPort}`);
  }

  get pids(): number[] {
    return this.members.map((m) => m.pid);
  }

  static async start(opts: ClusterOptions): Promise<Cluster> {
    fs.mkdirSync(opts.rootDir, { recursive: true });
    const ports = await freePorts(9);
    const prefix = opts.system === 'etcd' ? 'e' : 's';
    const specs = [0, 1, 2].map((i) => ({
      name: `${prefix}${i + 1}`,
      clientPort: ports[i * 3],
      peerPort: ports[i * 3 + 1],
      metricsPort: ports[i * 3 + 2],
      dataDir: path.join(opts.rootDir, `${prefix}${i + 1}`),
      logFile: path.join(opts.rootDir, `${prefix}${i + 1}.log`),
    }));
    const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(',');
    const members: MemberProcess[] = specs.map((s) => {
      const common = [
        '--name', s.name,
        '--data-dir', s.dataDir,
        '--listen-client-urls', `http://127.0.0.1:${s.clientPort}`,
        '--advertise-client-urls', `http://127.0.0.1:${s.clientPort}`,
        '--listen-peer-urls', `http://127.0.0.1:${s.peerPort}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${s.peerPort}`,
        '--initial-cluster', initialCluster,
        '--initial-cluster-token', `bench-${opts.system}`,
        '--initial-cluster-state', 'new',
        '--listen-metrics-urls', `http://127.0.0.1:${s.metricsPort}`,
        '--heartbeat-interval', String(opts.heartbeatMs),
        '--election-timeout', String(opts.electionTimeoutMs),
      ];
      const [cmd, args] =
        opts.system === 'etcd'
          ? [ETCD_BINARY, [...common, '--logger', 'zap', '--log-level', 'warn', '--quota-backend-bytes', String(8 * 1024 ** 3)]]
          : [process.execPath, [...MEMBER_NODE_FLAGS, ...(opts.nodeFlags ?? []), synodCli(opts.synodRoot), 'server', ...common, '--log-level', 'warn', ...(opts.shards !== undefined ? ['--shards', String(opts.shards)] : SHARD_ARGS), ...EXTRA_ARGS]];
      const out = fs.openSync(s.logFile, 'a');
      const child = spawn(cmd, args, { stdio: ['ignore', out, out], cwd: opts.rootDir, env: { ...process.env, ETCDCTL_API: '3' } });
      fs.closeSync(out);
      if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
      live.add(child);
      child.once('exit', () => live.delete(child));
      return { ...s, child, pid: child.pid };
    });
    const cluster = new Cluster(opts.system, members, opts.rootDir);
    try {
      await cluster.waitReady();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Ready: every member answers Status with a known leader, and a write and a linearizable read succeed everywhere. */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const conns = this.endpoints.map((e) => new EtcdConnection(e));
    try {
      for (;;) {
        for (const m of this.members) {
          if (m.child.exitCode !== null || m.child.signalCode !== null) {
            throw new Error(`${this.system} member ${m.name} exited; log ${m.logFile}:\n${tail(m.logFile)}`);
          }
        }
        try {
          const statuses = await Promise.all(conns.map((c) => c.status()));
          if (statuses.every((s) => s.leader !== '0')) {
            await conns[0].put({ key: Buffer.from('bench/ready'), value: Buffer.from('1') }, 5_000);
            await Promise.all(conns.map((c) => c.range({ key: Buffer.from('bench/ready') }, 5_000)));
            return;
          }
        } catch {
          // not ready yet
        }
        if (Date.now() > deadline) throw new Error(`${this.system} cluster not ready after ${timeoutMs} ms; logs in ${this.rootDir}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      for (const c of conns) c.close();
    }
  }

  /** Members that have exited, each with the end of its log; empty while all run. */
  deadMembers(): string[] {
    return this.members
      .filter((m) => m.child.exitCode !== null || m.child.signalCode !== null)
      .map((m) => `${this.system} ${m.name} (pid ${m.pid}) exited with ${m.child.exitCode ?? m.child.signalCode}; log ${m.logFile}:\n${tail(m.logFile)}`);
  }

  /**
   * Stops every member by PID: SIGTERM (lets Synod write its --cpu-prof), SIGKILL after `graceMs`. An
   * etcd leader given SIGTERM first tries to hand its leadership over, and with its followers stopping
   * beside it that waits ~7 s for nothing (every bench run did): etcd gets 1 s, its data is thrown away.
   */
  async stop(graceMs = this.system === 'etcd' ? 1_000 : 10_000): Promise<void> {
    await Promise.all(
      this.members.map(async (m) => {
        const c = m.child;
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = new Promise<void>((r) => c.once('exit', () => r()));
        process.kill(m.pid, 'SIGTERM');
        const timer = setTimeout(() => {
          try {
            process.kill(m.pid, 'SIGKILL');
          } catch {
            // gone
          }
        }, graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}

function tail(file: string, lines = 20): string {
  try {
    return fs.readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** The filesystem type under `dir` (from /proc/mounts), so the report can say what disk the data is on. */
export function filesystemOf(dir: string): string {
  try {
    const real = fs.realpathSync(dir);
    let best = { mount: '', text: 'unknown' };
    for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [dev, mount, type] = line.split(' ');
      if (mount !== undefined && (real === mount || real.startsWith(mount.endsWith('/') ? mount : mount + '/')) && mount.length >= best.mount.length) {
        best = { mount, text: `${type} on ${dev} (mounted at ${mount})` };
      }
    }
    return best.text;
  } catch {
    return 'unknown';
  }
}

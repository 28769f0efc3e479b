// A cluster of real `synod server` processes on loopback for integration tests: free ports, a
// temp data dir, readiness polling, kill -9 / SIGTERM / restart by PID, and cleanup that never
// leaves a process behind. Members start from the test run's bundle of the sources
// (test/support/member-bundle.ts), or from the sources outside a test run (the bench scripts).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { synodEntry } from './member-bundle.ts';
import { freePorts } from './ports.ts';

export interface MemberProcess {
  name: string;
  clientPort: number;
  peerPort: number;
  metricsPort: number;
  dataDir: string;
  logFile: string;
  child: ChildProcess | null;
  /** Joins the running cluster (--initial-cluster-state existing) instead of bootstrapping with it. */
  joins?: boolean;
  /** Removed from the cluster: left out of the --initial-cluster a later joiner is given. */
  retired?: boolean;
}

export interface ClusterOptions {
  size?: number;
  tickMs?: number;
  electionTimeoutMs?: number;
  extraArgs?: string[];
  /** https for client URLs (pass the certificate flags in extraArgs / memberArgs). */
  clientTls?: boolean;
  /** https for peer URLs. */
  peerTls?: boolean;
  /** Arguments for one member only (e.g. a peer certificate from another CA). */
  memberArgs?: (index: number) => string[];
  /** Environment variables for one member only, over the test's own (e.g. a skewed clock through libfaketime). */
  memberEnv?: (index: number) => Record<string, string>;
}

export class ProcessCluster {
  readonly members: MemberProcess[] = [];
  readonly rootDir: string;
  /** Members that stopped by themselves with an error code (a crash), with the end of their log. */
  readonly crashes: string[] = [];
  private readonly opts: Required<ClusterOptions>;

  private constructor(rootDir: string, opts: Required<ClusterOptions>) {
    this.rootDir = rootDir;
    this.opts = opts;
  }

  /**
   * Starts a cluster on free ports. A port found free can be taken by another process before the member
   * binds it (tests run two at a time): a start that fails on EADDRINUSE is tried again on new ports.
   */
  static async start(options: ClusterOptions = {}): Promise<ProcessCluster> {
    for (let attempt = 1; ; attempt++) {
      const cluster = await ProcessCluster.startOnce(options);
      try {
        await cluster.waitReady();
        return cluster;
      } catch (err) {
        const portTaken = cluster.members.some((m) => fs.existsSync(m.logFile) && fs.readFileSync(m.logFile, 'utf8').includes('EADDRINUSE'));
        if (!portTaken || attempt >= 3) throw err;
        await cluster.destroy();
      }
    }
  }

  /**
   * A cluster's names, free ports and data dirs, with no member started: for members whose data comes
   * from elsewhere (`synod snapshot restore` into each data dir, test/support/synod-backup.ts), started
   * afterwards with startMember. Starting them first would only start members to throw their data away.
   */
  static async unstarted(options: ClusterOptions = {}): Promise<ProcessCluster> {
    const opts: Required<ClusterOptions> = {
      size: options.size ?? 3,
      tickMs: options.tickMs ?? 50,
      electionTimeoutMs: options.electionTimeoutMs ?? 500,
      extraArgs: options.extraArgs ?? [],
      clientTls: options.clientTls ?? false,
      peerTls: options.peerTls ?? false,
      memberArgs: options.memberArgs ?? (() => []),
      memberEnv: options.memberEnv ?? (() => ({})),
    };
    const rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-it-'));
    const cluster = new ProcessCluster(rootDir, opts);
    const ports = await freePorts(opts.size * 3);
    for (let i = 0; i < opts.size; i++) {
      const name = `m${i + 1}`;
      cluster.members.push({
        name,
        clientPort: ports[i * 3],
        peerPort: ports[i * 3 + 1],
        metricsPort: ports[i * 3 + 2],
        dataDir: path.join(rootDir, name),
        logFile: path.join(rootDir, `${name}.log`),
        child: null,
      });
    }
    return cluster;
  }

  private static async startOnce(options: ClusterOptions): Promise<ProcessCluster> {
    const cluster = await ProcessCluster.unstarted(options);
    for (let i = 0; i < cluster.members.length; i++) cluster.startMember(i);
    return cluster;
  }

  get endpoints(): string {
    return this.members.map((_, i) => this.endpointOf(i)).join(',');
  }

  /** host:port for grpc-js clients (which take TLS from their credentials, not the address). */
  addressOf(i: number): string {
    return `127.0.0.1:${this.members[i].clientPort}`;
  }

  /** What etcdctl takes: https://host:port when client TLS is on. */
  endpointOf(i: number): string {
    return `${this.opts.clientTls ? 'https://' : ''}127.0.0.1:${this.members[i].clientPort}`;
  }

  startMember(i: number): void {
    const m = this.members[i];
    if (m.child && m.child.exitCode === null && m.child.signalCode === null) throw new Error(`${m.name} is running`);
    const peerScheme = this.opts.peerTls ? 'https' : 'http';
    const initialCluster = this.members
      .filter((x) => (m.joins ? !x.retired : !x.joins))
      .map((x) => `${x.name}=${peerScheme}://127.0.0.1:${x.peerPort}`)
      .join(',');
    const out = fs.openSync(m.logFile, 'a');
    m.child = spawn(
      process.execPath,
      [
        synodEntry(),
        'server',
        '--name', m.name,
        '--data-dir', m.dataDir,
        '--listen-client-urls', `${this.opts.clientTls ? 'https' : 'http'}://127.0.0.1:${m.clientPort}`,
        '--listen-peer-urls', `${peerScheme}://127.0.0.1:${m.peerPort}`,
        '--initial-cluster', initialCluster,
        '--initial-cluster-token', 'it',
        ...(m.joins ? ['--initial-cluster-state', 'existing'] : []),
        '--listen-metrics-urls', `http://127.0.0.1:${m.metricsPort}`,
        '--heartbeat-interval', String(this.opts.tickMs),
        '--election-timeout', String(this.opts.electionTimeoutMs),
        ...this.opts.extraArgs,
        ...this.opts.memberArgs(i),
      ],
      { stdio: ['ignore', out, out], env: { ...process.env, ...this.opts.memberEnv(i) } },
    );
    fs.closeSync(out);
    // A member that stops by itself with an error (a crash, not a signal this cluster sent) is shown at
    // once with the end of its log: its log goes with the data dir, and a CI run keeps only the output.
    const child = m.child;
    child.once('exit', (code, signal) => {
      if (signal !== null || code === 0 || code === null) return;
      const tail = fs.existsSync(m.logFile) ? fs.readFileSync(m.logFile, 'utf8').trim().split('\n').slice(-40).join('\n') : '';
      console.error(`process cluster: ${m.name} (pid ${child.pid}) exited with code ${code}; its log ends:\n${tail}`);
      const lastLines = tail.split('\n').slice(-8).join(' | ');
      this.crashes.push(`${m.name} (pid ${child.pid}) exited by itself with code ${code}: ${lastLines}`);
    });
  }

  /**
   * Reserves ports and a data dir for a new member that will join with --initial-cluster-state
   * existing (add it with `member add` first, then startMember). Returns its index.
   */
  async addMemberSlot(name: string, reusePortsOf?: number): Promise<number> {
    const old = reusePortsOf === undefined ? undefined : this.members[reusePortsOf];
    const [clientPort, peerPort, metricsPort] = old ? [old.clientPort, old.peerPort, old.metricsPort] : await freePorts(3);
    this.members.push({
      name,
      clientPort,
      peerPort,
      metricsPort,
      dataDir: path.join(this.rootDir, name),
      logFile: path.join(this.rootDir, `${name}.log`),
      child: null,
      joins: true,
    });
    return this.members.length - 1;
  }

  peerUrlOf(i: number): string {
    return `http://127.0.0.1:${this.members[i].peerPort}`;
  }

  /** Waits for a member's process to exit by itself (e.g. after its removal); false on timeout. */
  async waitExit(i: number, timeoutMs: number): Promise<boolean> {
    const c = this.members[i].child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      c.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  isRunning(i: number): boolean {
    const c = this.members[i].child;
    return !!c && c.exitCode === null && c.signalCode === null;
  }

  /** kill -9: no shutdown path runs, unsynced data is whatever the OS kept. */
  async kill9(i: number): Promise<void> {
    await this.signal(i, 'SIGKILL');
  }

  async stopMember(i: number): Promise<void> {
    await this.signal(i, 'SIGTERM');
  }

  private async signal(i: number, sig: NodeJS.Signals): Promise<void> {
    const c = this.members[i].child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill(sig);
    const timeout = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timeout);
  }

  async readyz(i: number): Promise<boolean> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.members[i].metricsPort}/readyz`, { signal: AbortSignal.timeout(1000) });
      return res.status === 200;
    } catch {
      return false;
    }
  }

  async metrics(i: number): Promise<string> {
    const res = await fetch(`http://127.0.0.1:${this.members[i].metricsPort}/metrics`, { signal: AbortSignal.timeout(2000) });
    return res.text();
  }

  /** Waits until every running member reports ready (a leader is known and it has caught up). */
  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const running = this.members.map((_, i) => i).filter((i) => this.isRunning(i));
      const ready = await Promise.all(running.map((i) => this.readyz(i)));
      if (running.length > 0 && ready.every(Boolean)) return;
      if (Date.now() > deadline) {
        throw new Error(`cluster not ready after ${timeoutMs} ms; logs in ${this.rootDir}\n${this.tailLogs()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Index of the member that currently leads, from each member's own /metrics. */
  async leaderIndex(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = 0; i < this.members.length; i++) {
        if (!this.isRunning(i)) continue;
        try {
          if (/^synod_server_is_leader 1$/m.test(await this.metrics(i))) return i;
        } catch {
          // not up yet
        }
      }
      if (Date.now() > deadline) throw new Error('no leader found');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Every request a member answered with an internal error (the line toServiceError in
   * server/api/context.ts logs for a failure no etcd status covers, matched by its text here so that this
   * module stays free of the server's), as "m1: <error>", from every incarnation's log.
   */
  unexpectedRequestFailures(): string[] {
    const out: string[] = [];
    for (const m of this.members) {
      if (!fs.existsSync(m.logFile)) continue;
      for (const line of fs.readFileSync(m.logFile, 'utf8').split('\n')) {
        if (!line.includes('"msg":"request failed unexpectedly"')) continue;
        let err = line;
        try {
          const parsed = JSON.parse(line) as { err?: { type?: string; message?: string } };
          err = `${parsed.err?.type ?? 'Error'}: ${parsed.err?.message ?? '(no message)'}`;
        } catch {
          // a line cut short by a kill: shown as it is
        }
        out.push(`${m.name}: ${err}`);
      }
    }
    return out;
  }

  tailLogs(lines = 15): string {
    return this.members
      .map((m) => {
        const text = fs.existsSync(m.logFile) ? fs.readFileSync(m.logFile, 'utf8').trim().split('\n').slice(-lines).join('\n') : '';
        return `--- ${m.name}\n${text}`;
      })
      .join('\n');
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.signal(i, 'SIGKILL')));
  }

  /**
   * Stops every member and deletes the data. Fails when a member answered any request with an internal
   * error ("request failed unexpectedly"): whatever a test does, every request must end in a status a
   * client can act on (etcd's, where etcd has one). SYNOD_KEEP_TEST_DATA=1 keeps the logs to look at.
   */
  async destroy(): Promise<void> {
    await this.stop();
    const internal = this.unexpectedRequestFailures();
    if (!process.env.SYNOD_KEEP_TEST_DATA) fs.rmSync(this.rootDir, { recursive: true, force: true });
    if (internal.length > 0) {
      throw new Error(`members answered ${internal.length} request(s) with an internal error ("request failed unexpectedly"):\n${internal.slice(0, 10).join('\n')}`);
    }
  }
}

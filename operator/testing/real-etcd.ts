// Starts real etcd members (Debian's etcd-server, /usr/bin/etcd, the reference implementation the
// operator's membership calls must work against) or real Synod members (`synod server`, same flags)
// on loopback ports, for tests. Each member gets its own data directory; stop() kills exactly the
// processes it started.

import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ETCD_BINARY = '/usr/bin/etcd';
const SYNOD_CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'server', 'cli', 'synod.ts');

export type ServerKind = 'etcd' | 'synod';

export function etcdAvailable(): boolean {
  return existsSync(ETCD_BINARY);
}

import { freePort } from '../../test/support/ports.ts';

export { freePort };

export interface RealEtcdMember {
  name: string;
  clientPort: number;
  peerPort: number;
  clientEndpoint: string;
  peerUrl: string;
  process: ChildProcess;
  output: string[];
}

export class RealEtcdCluster {
  readonly members: RealEtcdMember[] = [];
  readonly kind: ServerKind;
  readonly #dir = mkdtempSync(path.join(tmpdir(), 'synod-etcd-'));

  constructor(kind: ServerKind = 'etcd') {
    this.kind = kind;
  }

  /** Starts `size` members bootstrapping one cluster. */
  static async start(size: number, kind: ServerKind = 'etcd'): Promise<RealEtcdCluster> {
    const cluster = new RealEtcdCluster(kind);
    const ports = await Promise.all(Array.from({ length: size * 2 }, () => freePort()));
    const specs = Array.from({ length: size }, (_, i) => ({ name: `etcd${i}`, clientPort: ports[2 * i], peerPort: ports[2 * i + 1] }));
    const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(',');
    for (const s of specs) cluster.#launch(s.name, s.clientPort, s.peerPort, initialCluster, 'new');
    return cluster;
  }

  #launch(name: string, clientPort: number, peerPort: number, initialCluster: string, state: 'new' | 'existing'): RealEtcdMember {
    const args = [
      '--name', name, '--data-dir', path.join(this.#dir, name),
      '--listen-client-urls', `http://127.0.0.1:${clientPort}`, '--advertise-client-urls', `http://127.0.0.1:${clientPort}`,
      '--listen-peer-urls', `http://127.0.0.1:${peerPort}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPort}`,
      '--initial-cluster', initialCluster, '--initial-cluster-state', state, '--initial-cluster-token', 'synod-operator-test',
      '--heartbeat-interval', '50', '--election-timeout', '500', '--log-level', this.kind === 'etcd' ? 'warn' : 'error',
      ...(this.kind === 'etcd' ? ['--logger', 'zap'] : []),
    ];
    const [command, prefix] = this.kind === 'etcd' ? [ETCD_BINARY, []] : [process.execPath, [SYNOD_CLI, 'server']];
    const child = spawn(command, [...prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.arch === 'arm64' ? 'arm64' : '' } });
    const member: RealEtcdMember = { name, clientPort, peerPort, clientEndpoint: `127.0.0.1:${clientPort}`, peerUrl: `http://127.0.0.1:${peerPort}`, process: child, output: [] };
    child.stdout?.on('data', (d: Buffer) => member.output.push(d.toString()));
    child.stderr?.on('data', (d: Buffer) => member.output.push(d.toString()));
    this.members.push(member);
    return member;
  }

  /** Starts a process for a member already added with MemberAdd (joins with state existing). */
  join(name: string, clientPort: number, peerPort: number, initialCluster: string): RealEtcdMember {
    return this.#launch(name, clientPort, peerPort, initialCluster, 'existing');
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.clientEndpoint);
  }

  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => new Promise<void>((resolve) => {
      if (m.process.exitCode !== null || m.process.signalCode !== null) return resolve();
      m.process.once('exit', () => resolve());
      m.process.kill('SIGKILL');
    })));
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${lastError === undefined ? '' : `: ${String(lastError)}`}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

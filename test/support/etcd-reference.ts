// A real etcd (Debian's etcd-server) on free loopback ports, as the reference that Synod's answers
// are compared against.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from './ports.ts';
import { etcdctl } from './etcdctl.ts';

export const ETCD_BINARY = '/usr/bin/etcd';

export class EtcdReference {
  readonly endpoint: string;
  private readonly child: ChildProcess;
  private readonly dir: string;

  private constructor(endpoint: string, child: ChildProcess, dir: string) {
    this.endpoint = endpoint;
    this.child = child;
    this.dir = dir;
  }

  static available(): boolean {
    return fs.existsSync(ETCD_BINARY);
  }

  /**
   * A fresh etcd; or, with `restoreFrom`, one whose data dir `etcdctl snapshot restore` made from that
   * snapshot file (`user`: `name:password` for its health checks, when the snapshot has auth on).
   */
  static async start(options: { restoreFrom?: string; user?: string } = {}): Promise<EtcdReference> {
    const [client, peer] = await freePorts(2);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-ref-'));
    if (options.restoreFrom) {
      const restored = spawnSync('etcdctl', [
        'snapshot', 'restore', options.restoreFrom, '--name', 'ref', '--data-dir', path.join(dir, 'data'),
        '--initial-cluster', `ref=http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
      ], { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 60_000 });
      if (restored.status !== 0) throw new Error(`etcdctl snapshot restore failed (${restored.status}): ${restored.stderr}`);
    }
    const log = fs.openSync(path.join(dir, 'etcd.log'), 'a');
    const child = spawn(
      ETCD_BINARY,
      [
        '--name', 'ref',
        '--data-dir', path.join(dir, 'data'),
        '--listen-client-urls', `http://127.0.0.1:${client}`,
        '--advertise-client-urls', `http://127.0.0.1:${client}`,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `ref=http://127.0.0.1:${peer}`,
      ],
      { stdio: ['ignore', log, log] },
    );
    fs.closeSync(log);
    const ref = new EtcdReference(`127.0.0.1:${client}`, child, dir);
    const deadline = Date.now() + 15_000;
    const user = options.user === undefined ? [] : ['--user', options.user];
    while ((await etcdctl(ref.endpoint, [...user, 'endpoint', 'health'])).code !== 0) {
      if (Date.now() > deadline) {
        await ref.stop(false);
        throw new Error(`etcd did not become healthy; log in ${dir}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return ref;
  }

  /** Kills etcd; its data dir and log go too unless `removeDir` is false (kept to read why it failed). */
  async stop(removeDir = true): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGKILL');
      await exited;
    }
    if (removeDir) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

// `synod local` as `make run` starts it (16 shards): three members come up, serve etcdctl, stop cleanly on
// SIGINT, and keep their data for the next run. Free ports stand in for etcd's default ones.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from './support/ports.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';

const CLI = path.resolve(import.meta.dirname, '..', 'server', 'cli', 'synod.ts');
let child: ChildProcess | null = null;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-local-'));

afterEach(() => {
  // `synod local` runs as its own process group (detached): a SIGKILL to the group takes its three
  // members too, which one to it alone would leave running (a failed assertion skips its SIGINT).
  if (child?.pid !== undefined) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // the group is gone: it stopped on its SIGINT
    }
  }
});

async function startLocal(ports: number[]): Promise<{ output: () => string; endpoints: string }> {
  const [c1, c2, c3, p1, p2, p3, m1, m2, m3] = ports;
  child = spawn(process.execPath, [
    // As `make run` starts it: 16 shards.
    CLI, 'local', '--data-dir', dataDir, '--shards', '16',
    '--client-ports', `${c1},${c2},${c3}`, '--peer-ports', `${p1},${p2},${p3}`, '--metrics-ports', `${m1},${m2},${m3}`,
  ], { detached: true });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const endpoints = `127.0.0.1:${c1},127.0.0.1:${c2},127.0.0.1:${c3}`;
  const deadline = Date.now() + 20_000;
  while ((await etcdctl(endpoints, ['put', 'probe', 'x'])).code !== 0) {
    if (Date.now() > deadline) throw new Error(`local cluster did not serve: ${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { output: () => out, endpoints };
}

async function interrupt(): Promise<number | null> {
  const c = child!;
  const exited = new Promise<number | null>((resolve) => c.once('exit', (code) => resolve(code)));
  c.kill('SIGINT');
  return exited;
}

describe('synod local', () => {
  it('prints the endpoints and an etcdctl line, stops on Ctrl-C, and keeps its data', async () => {
    const ports = await freePorts(9);
    const first = await startLocal(ports);
    expect(first.output()).toContain(`etcdctl --endpoints=${first.endpoints} put foo bar`);
    await etcdctlOk(first.endpoints, ['put', 'kept', 'across-runs']);
    expect(await interrupt()).toBe(0);
    expect(first.output()).toContain('stopped.');
    const advancedLines = (log: string): string[] => log.split('\n').filter((l) => l.includes('election timers advanced'));
    for (const name of ['synod-1', 'synod-2', 'synod-3']) {
      const log = fs.readFileSync(path.join(dataDir, `${name}.log`), 'utf8');
      expect(log).toContain('"msg":"stopped"');
      // Stopping together, the leader does not wait out its handover to a member that is gone too.
      expect(log).not.toContain('leader transfer timed out');
      // A new cluster: once its peers were up, each member moved the election timers of its new groups
      // (the cluster group, the metadata group and 16 shards) that had not heard of a leader yet.
      const groups = advancedLines(log).reduce((sum, l) => sum + (JSON.parse(l) as { groups: number }).groups, 0);
      expect(groups).toBeGreaterThan(0);
      expect(groups).toBeLessThanOrEqual(18);
    }
    const linesBefore = new Map(['synod-1', 'synod-2', 'synod-3'].map((n) => [n, advancedLines(fs.readFileSync(path.join(dataDir, `${n}.log`), 'utf8')).length]));
    // The groups each member's replica saw a leader of in the first run: they took that leader's term.
    const ledBefore = new Map(['synod-1', 'synod-2', 'synod-3'].map((n) => {
      const lines = fs.readFileSync(path.join(dataDir, `${n}.log`), 'utf8').split('\n').filter((l) => l.includes('"msg":"leader changed"'));
      return [n, new Set(lines.map((l) => JSON.parse(l) as { group: number; leader: number }).filter((e) => e.leader !== 0).map((e) => e.group))];
    }));

    const second = await startLocal(ports);
    expect(await etcdctlOk(second.endpoints, ['get', 'kept'])).toBe('kept\nacross-runs\n');
    expect(await interrupt()).toBe(0);
    // Restarted replicas with terms keep their timers (they refuse votes for a timeout anyway): a replica
    // that saw a leader in the first run took its term. One that had not heard of any leader by the stop
    // (a short first run on a loaded machine: any group, the cluster group too) has none, and may be moved.
    for (const [name, before] of linesBefore) {
      const lines = advancedLines(fs.readFileSync(path.join(dataDir, `${name}.log`), 'utf8')).slice(before);
      const led = ledBefore.get(name)!;
      expect(led.size, name).toBeGreaterThan(0);
      for (const line of lines) expect((JSON.parse(line) as { groupIds: number[] }).groupIds.filter((g) => led.has(g)), line).toEqual([]);
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});

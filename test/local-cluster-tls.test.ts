// `synod local --tls --client-cert-auth` (what `make run-tls` starts): certificates are generated, the
// members talk TLS to clients and to each other, and the etcdctl line it prints works as printed.
import { afterEach, describe, expect, it } from 'vitest';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from './support/ports.ts';

const CLI = path.resolve(import.meta.dirname, '..', 'server', 'cli', 'synod.ts');
let child: ChildProcess | null = null;
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-local-tls-'));

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
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/** Runs a printed "ETCDCTL_API=3 etcdctl ..." line with extra arguments. */
function runPrinted(line: string, extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const args = line.trim().split(/\s+/).slice(2); // drop "ETCDCTL_API=3 etcdctl"
  const base = args.slice(0, args.findIndex((a) => !a.startsWith('--')));
  return new Promise((resolve) => {
    execFile('etcdctl', [...base, '--dial-timeout=3s', ...extra], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 20_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? 1 : 0, stdout, stderr }),
    );
  });
}

describe('synod local --tls', () => {
  it('generates certificates, serves TLS, and prints an etcdctl line with --cacert, --cert and --key', async () => {
    const [c1, c2, c3, p1, p2, p3, m1, m2, m3] = await freePorts(9);
    child = spawn(process.execPath, [
      CLI, 'local', '--tls', '--client-cert-auth', '--data-dir', dataDir,
      '--client-ports', `${c1},${c2},${c3}`, '--peer-ports', `${p1},${p2},${p3}`, '--metrics-ports', `${m1},${m2},${m3}`,
    ], { detached: true });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));

    const deadline = Date.now() + 30_000;
    let line = '';
    for (;;) {
      line = out.split('\n').find((l) => l.includes('etcdctl') && l.includes(' put foo bar')) ?? '';
      if (line && (await runPrinted(line, ['put', 'foo', 'bar'])).code === 0) break;
      if (Date.now() > deadline) throw new Error(`local TLS cluster did not serve: ${out}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(line).toContain(`--endpoints=https://127.0.0.1:${c1},https://127.0.0.1:${c2},https://127.0.0.1:${c3}`);
    expect(line).toContain(`--cacert=${path.join(dataDir, 'certs', 'ca.pem')}`);
    expect(line).toContain('--cert=');
    expect(line).toContain('--key=');
    expect((await runPrinted(line, ['get', 'foo'])).stdout).toBe('foo\nbar\n');
    // The peer ports speak TLS too: every member comes to report the same leader over them (right after the
    // first put, a loaded machine may still have one member between terms: asked again until they agree).
    const agreeBy = Date.now() + 10_000;
    let leaders: number[] = [];
    for (;;) {
      const status = JSON.parse((await runPrinted(line, ['endpoint', 'status', '-w', 'json'])).stdout) as Array<{ Status: { leader: number } }>;
      leaders = status.map((s) => s.Status.leader);
      if ((leaders.length === 3 && new Set(leaders).size === 1 && leaders[0] !== 0) || Date.now() > agreeBy) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(leaders).toHaveLength(3);
    expect(new Set(leaders).size, `leaders reported: ${leaders.join(', ')}`).toBe(1);
    expect(leaders[0]).not.toBe(0);

    const exited = new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});

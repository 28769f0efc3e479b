// `make bench` end to end at a tiny size: both real clusters (Debian's etcd and Synod), every workload,
// the result files. It checks that the benchmark runs and reports, not how fast anything is (speed is
// for `make bench` itself). Results go to a temp dir, never over bench/results.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-bench-smoke-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

interface Results {
  figures: Array<{ workload: string; bySystem: Record<string, { ok: number; errors: number; opsPerSecond: number }> }>;
  failures: string[];
  rows: Array<{ workload: string; system: string; notes: Record<string, number | string> }>;
}

describe('make bench (tiny)', () => {
  it('runs every workload against etcd and Synod and writes the table, the JSON and the chart', async () => {
    const env = {
      ...process.env,
      BENCH_DURATION_MS: '250',
      BENCH_WARMUP_MS: '50',
      BENCH_ROUNDS: '1',
      BENCH_WORKERS: '1',
      BENCH_CONNECTIONS_PER_WORKER: '1',
      BENCH_KEYS: '500',
      BENCH_WATCHERS: '20',
      BENCH_WATCHERS_PER_STREAM: '10',
      BENCH_LEASES: '50',
      BENCH_IDLE_WATCHES: '200',
      BENCH_CHECK_PERF: '',
      BENCH_SETTLE_MS: '100',
      BENCH_DATA_DIR: dir,
      BENCH_RESULTS_DIR: path.join(dir, 'results'),
    };
    const run = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [path.join(ROOT, 'bench', 'run-bench.ts')], { env, cwd: ROOT, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
      });
    });
    expect(run.code, run.out.slice(-3000)).toBe(0);

    const results = JSON.parse(fs.readFileSync(path.join(dir, 'results', 'latest.json'), 'utf8')) as Results;
    expect(results.failures).toEqual([]);
    const workloads = results.figures.map((f) => f.workload);
    for (const w of ['fill 500 keys c=64', 'put c=1', 'put c=64', 'put c=256', 'range linearizable c=64', 'range serializable c=64', 'txn cas c=64', 'watch fan-out 20 watchers', 'lease keepalive (50 leases) c=64']) {
      expect(workloads, w).toContain(w);
    }
    for (const f of results.figures) {
      for (const system of ['etcd', 'synod']) {
        expect(f.bySystem[system]?.ok, `${f.workload} ${system}`).toBeGreaterThan(0);
        expect(f.bySystem[system]?.errors, `${f.workload} ${system}`).toBe(0);
      }
    }
    const watch = results.rows.find((r) => r.system === 'synod' && r.workload.startsWith('watch'));
    expect(watch?.notes.deliveriesMissed).toBe(0);
    for (const tag of ['100', '10', '100.distinct']) expect(Number(watch?.notes[`idleWatchBytes.${tag}`]), tag).toBeGreaterThan(0);

    const md = fs.readFileSync(path.join(dir, 'results', 'latest.md'), 'utf8');
    // Throughputs under 100 ops/s print with a decimal (a loaded machine gets there in a 1 s run).
    expect(md).toMatch(/\| put c=1 \| [\d,.]+ \| [\d,.]+ \| [\d.]+× \|/);
    expect(md).toContain('Synod memory per idle watch');
    expect(fs.readFileSync(path.join(dir, 'results', 'latest.svg'), 'utf8')).toMatch(/^<svg/);
  }, 300_000);

  it('bench/backup.ts saves, checks, hashes and restores on etcd and Synod, and prints its table', async () => {
    const run = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(process.execPath, [path.join(ROOT, 'bench', 'backup.ts'), '300', '100'], { cwd: ROOT, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
      });
    });
    expect(run.code, run.out.slice(-3000)).toBe(0);
    for (const system of ['etcd 3.4', 'Synod, one group', 'Synod, 16 shards']) expect(run.out).toMatch(new RegExp(`\\| ${system} \\| [\\d.]+ s \\| \\d+ MiB \\| [\\d.]+ s \\| [\\d.]+ s \\|`));
    expect(run.out.match(/synod snapshot restore of .* into .*: [\d.]+ s/g)).toHaveLength(4);
  }, 150_000);
});

// Turns the benchmark's rows into results: rounds merged per workload and system (histograms merged,
// throughput over the summed measured time), the console table with Synod/etcd ratios, and the
// Markdown table for README.md and docs/performance.md.
import { mergeEncoded, summarise, type LatencySummary } from './histogram.ts';
import type { Row } from './workloads.ts';
import type { CheckPerfResult } from './check-perf.ts';

export interface SystemFigures {
  rounds: number;
  ok: number;
  errors: number;
  errorSamples: Record<string, number>;
  opsPerSecond: number;
  /** ops/s of each round, to show the spread. */
  roundOpsPerSecond: number[];
  latency: LatencySummary;
  clientCpuPercent: number;
  serverCpuPercent: number;
  otherCpuPercent: number;
  unsupported?: string;
  counters: Record<string, number>;
  notes: Record<string, number | string>;
}

export interface WorkloadFigures {
  workload: string;
  bySystem: Record<string, SystemFigures>;
  /** Synod/etcd: throughput ratio (higher is better for Synod), latency ratios (lower is better). */
  ratios: { opsPerSecond: number | null; p50: number | null; p99: number | null };
}

export function aggregate(rows: readonly Row[]): WorkloadFigures[] {
  const order: string[] = [];
  const groups = new Map<string, Map<string, Row[]>>();
  for (const r of rows) {
    if (!groups.has(r.workload)) {
      groups.set(r.workload, new Map());
      order.push(r.workload);
    }
    const g = groups.get(r.workload)!;
    if (!g.has(r.system)) g.set(r.system, []);
    g.get(r.system)!.push(r);
  }
  return order.map((workload) => {
    const bySystem: Record<string, SystemFigures> = {};
    for (const [system, rs] of groups.get(workload)!) {
      const ms = rs.map((r) => r.measurement);
      const ok = ms.reduce((a, m) => a + m.ok, 0);
      const elapsedMs = ms.reduce((a, m) => a + m.elapsedMs, 0);
      const errorSamples: Record<string, number> = {};
      const counters: Record<string, number> = {};
      for (const m of ms) {
        for (const [k, v] of Object.entries(m.errorSamples)) errorSamples[k] = (errorSamples[k] ?? 0) + v;
        for (const [k, v] of Object.entries(m.counters)) counters[k] = (counters[k] ?? 0) + v;
      }
      const mean = (f: (m: (typeof ms)[number]) => number): number => ms.reduce((a, m) => a + f(m), 0) / ms.length;
      bySystem[system] = {
        rounds: rs.length,
        ok,
        errors: ms.reduce((a, m) => a + m.errors, 0),
        errorSamples,
        opsPerSecond: elapsedMs > 0 ? (ok * 1000) / elapsedMs : 0,
        roundOpsPerSecond: ms.map((m) => Math.round(m.opsPerSecond)),
        latency: summarise(mergeEncoded(ms.map((m) => m.histogram))),
        clientCpuPercent: mean((m) => m.clientCpuPercent),
        serverCpuPercent: mean((m) => m.serverCpuPercent),
        otherCpuPercent: mean((m) => m.otherCpuPercent),
        unsupported: ms.find((m) => m.unsupported !== undefined)?.unsupported,
        counters,
        notes: Object.assign({}, ...rs.map((r) => r.notes)) as Record<string, number | string>,
      };
    }
    const e = bySystem.etcd;
    const s = bySystem.synod;
    const usable = (f?: SystemFigures): f is SystemFigures => f !== undefined && f.unsupported === undefined && f.ok > 0;
    const ratio = (a: number, b: number): number | null => (b > 0 ? Math.round((a / b) * 100) / 100 : null);
    const ratios =
      usable(e) && usable(s)
        ? { opsPerSecond: ratio(s.opsPerSecond, e.opsPerSecond), p50: ratio(s.latency.p50Ms, e.latency.p50Ms), p99: ratio(s.latency.p99Ms, e.latency.p99Ms) }
        : { opsPerSecond: null, p50: null, p99: null };
    return { workload, bySystem, ratios };
  });
}

function fmtNum(n: number): string {
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  if (n >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

function fmtRatio(r: number | null): string {
  return r === null ? '—' : `${r.toFixed(2)}×`;
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

/** The console table: per workload an etcd row, a Synod row and a ratio row. */
export function consoleTable(figs: readonly WorkloadFigures[]): string {
  const head = ['workload', 'system', 'ops/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors', 'client CPU', 'server CPU', 'other CPU'];
  const widths = [38, 7, 11, 8, 8, 8, 9, 8, 11, 11, 10];
  const line = (cells: string[]): string => cells.map((c, i) => pad(c, widths[i], i >= 2)).join(' ');
  const out = [line(head), '-'.repeat(widths.reduce((a, b) => a + b + 1, 0))];
  for (const f of figs) {
    let first = true;
    for (const system of ['etcd', 'synod']) {
      const s = f.bySystem[system];
      if (!s) continue;
      const name = first ? f.workload : '';
      first = false;
      if (s.unsupported !== undefined) {
        out.push(line([name, system, 'unsupported', '', '', '', '', String(s.errors), '', '', '']));
        continue;
      }
      out.push(
        line([
          name, system, fmtNum(s.opsPerSecond), fmtNum(s.latency.p50Ms), fmtNum(s.latency.p90Ms), fmtNum(s.latency.p99Ms), fmtNum(s.latency.maxMs),
          String(s.errors), `${Math.round(s.clientCpuPercent)}%`, `${Math.round(s.serverCpuPercent)}%`, `${Math.round(s.otherCpuPercent)}%`,
        ]),
      );
    }
    if (f.ratios.opsPerSecond !== null) {
      out.push(line(['', 'ratio', fmtRatio(f.ratios.opsPerSecond), fmtRatio(f.ratios.p50), '', fmtRatio(f.ratios.p99), '', '', '', '', '']));
    }
  }
  return out.join('\n');
}

function cell(s: SystemFigures | undefined): [string, string] {
  if (!s) return ['—', '—'];
  if (s.unsupported !== undefined) return ['unsupported', '—'];
  return [fmtNum(s.opsPerSecond), `${fmtNum(s.latency.p50Ms)} / ${fmtNum(s.latency.p99Ms)}`];
}

/** Server CPU (all members) per operation, in µs: cost per op, less sensitive to other load than ops/s. */
function cpuPerOp(s: SystemFigures | undefined): string {
  if (!s || s.unsupported !== undefined || s.opsPerSecond <= 0) return '—';
  return String(Math.round(((s.serverCpuPercent / 100) * 1e6) / s.opsPerSecond));
}

/** Markdown table: one line per workload, both systems and the ratios. */
export function markdownTable(figs: readonly WorkloadFigures[]): string {
  const out = [
    '| workload | etcd ops/s | Synod ops/s | Synod/etcd ops/s | etcd p50 / p99 ms | Synod p50 / p99 ms | Synod/etcd p99 | server CPU µs/op etcd / Synod | other load % | errors etcd / Synod |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const f of figs) {
    const [eo, el] = cell(f.bySystem.etcd);
    const [so, sl] = cell(f.bySystem.synod);
    const errs = `${f.bySystem.etcd?.errors ?? '—'} / ${f.bySystem.synod?.errors ?? '—'}`;
    const other = Math.round(Math.max(f.bySystem.etcd?.otherCpuPercent ?? 0, f.bySystem.synod?.otherCpuPercent ?? 0));
    out.push(`| ${f.workload} | ${eo} | ${so} | ${fmtRatio(f.ratios.opsPerSecond)} | ${el} | ${sl} | ${fmtRatio(f.ratios.p99)} | ${cpuPerOp(f.bySystem.etcd)} / ${cpuPerOp(f.bySystem.synod)} | ${other} | ${errs} |`);
  }
  return out.join('\n');
}

/** Memory and watch figures (from row notes) as Markdown. */
export function markdownMemory(figs: readonly WorkloadFigures[]): string {
  const out: string[] = [];
  for (const f of figs) {
    const e = f.bySystem.etcd?.notes;
    const s = f.bySystem.synod?.notes;
    if (f.workload.startsWith('fill')) {
      const members = (n: Record<string, number | string> | undefined): string =>
        n ? Object.entries(n).filter(([k]) => k.startsWith('rssMiB.')).map(([k, v]) => `${k.slice(7)} ${v}`).join(', ') : '—';
      out.push(`- RSS per member after ${f.workload.split(' ')[1]} keys of 256 B (MiB): etcd ${members(e)}; Synod ${members(s)}` +
        (e && s ? `; mean Synod/etcd ${fmtRatio(Number(s.rssMeanMiB) / Number(e.rssMeanMiB))}` : '') +
        (e && s ? `. RSS growth per key: etcd ${e.rssDeltaBytesPerKey} B, Synod ${s.rssDeltaBytesPerKey} B.` : '.'));
    }
    if (f.workload.startsWith('watch')) {
      out.push(`- Watch fan-out (${e?.watchersPerStream ?? s?.watchersPerStream ?? '—'} watchers per stream): RSS growth per watcher etcd ${e?.rssBytesPerWatcher ?? '—'} B, Synod ${s?.rssBytesPerWatcher ?? '—'} B (two RSS readings 2 s apart: GC noise, not a measurement); ` +
        `deliveries missed etcd ${e?.deliveriesMissed ?? '—'}, Synod ${s?.deliveriesMissed ?? '—'} (of ${e?.deliveriesExpected ?? '—'} / ${s?.deliveriesExpected ?? '—'}).`);
      if (s?.['idleWatchBytes.100'] !== undefined) {
        out.push(`- Synod memory per idle watch (bench/watch-memory.ts: a member in-process, ${Number(s.idleWatches ?? 10_000).toLocaleString('en-US')} more watches, after a full GC; keys shared unless said): ` +
          `${s['idleWatchBytes.100']} B heap+external (${s['idleWatchRssBytes.100']} B RSS) at 100 watches per stream; ` +
          `${s['idleWatchBytes.10']} B (${s['idleWatchRssBytes.10']} B RSS) at 10 per stream` +
          (s['idleWatchBytes.100.distinct'] !== undefined ? `; ${s['idleWatchBytes.100.distinct']} B (${s['idleWatchRssBytes.100.distinct']} B RSS) at 100 per stream with every watch on its own key` : '') + '.');
      }
    }
  }
  return out.join('\n');
}

export function markdownCheckPerf(results: ReadonlyArray<CheckPerfResult & { system: string }>): string {
  if (results.length === 0) return '';
  const out = ['| etcdctl check perf | system | verdict | throughput writes/s | slowest ms | stddev ms | took s |', '|---|---|---|---:|---:|---:|---:|'];
  for (const r of results) {
    out.push(`| --load=${r.load} | ${r.system} | ${r.passed ? 'PASS' : 'FAIL'}${r.errorText ? ` (${r.errorText.slice(0, 80)})` : ''} | ${r.throughputWritesPerSecond ?? '—'} | ${r.slowestRequestMs ?? '—'} | ${r.stddevMs ?? '—'} | ${Math.round(r.durationMs / 1000)} |`);
  }
  return out.join('\n');
}

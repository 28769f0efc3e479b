// The files a benchmark run leaves in bench/results/: latest.json (everything measured), latest.md
// (the tables for README.md and docs/performance.md) and latest.svg (the chart). Also re-renders the
// .md and .svg from an existing latest.json: `node bench/results-files.ts [file.json]`.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CheckPerfResult } from './check-perf.ts';
import { markdownCheckPerf, markdownMemory, markdownTable, type WorkloadFigures } from './report.ts';
import { renderChart } from './svg-chart.ts';

/** Where results go: bench/results, or BENCH_RESULTS_DIR (the smoke test writes to a temp dir). */
export const RESULTS_DIR = process.env.BENCH_RESULTS_DIR || path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  etcd: string;
  etcdctl: string;
  dataFilesystem: string;
}

/** The content of latest.json. */
export interface RunResults {
  startedAt: string;
  machine: Machine;
  synod: { root: string; commit: string };
  config: { durationMs: number; rounds: number; workers: number; connectionsPerWorker: number } & Record<string, unknown>;
  figures: WorkloadFigures[];
  checkPerf: Array<CheckPerfResult & { system: string }>;
  failures: string[];
  rows: unknown[];
}

export function resultsMarkdown(r: RunResults): string {
  const m = r.machine;
  return [
    `Run ${r.startedAt} on ${m.cpus} × ${m.cpuModel} (${m.cpus} cores shared by the client and all six servers), ${m.memoryGiB} GiB; ${m.kernel}; ` +
      `Node ${m.node}; ${m.etcd}; Synod ${r.synod.commit}; data on ${m.dataFilesystem}.`,
    `${r.config.durationMs / 1000} s per run, ${r.config.rounds} rounds alternating which system goes first (throughput over all rounds, latency from the merged ` +
      `HDR histograms); client: ${r.config.workers} worker threads × ${r.config.connectionsPerWorker} gRPC connections spread over the 3 members. ` +
      `"other load" is CPU used by other processes on the machine during the run, in % of one core.`,
    '',
    markdownTable(r.figures),
    '',
    markdownMemory(r.figures),
    '',
    markdownCheckPerf(r.checkPerf),
    ...(r.failures.length > 0 ? ['', 'Failures:', ...r.failures.map((f) => `- ${f.split('\n')[0]}`)] : []),
  ].join('\n');
}

/** Writes latest.json (unless `jsonAlreadyThere`), latest.md and latest.svg. Returns the Markdown. */
export function writeResultFiles(r: RunResults, jsonAlreadyThere = false): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const md = resultsMarkdown(r);
  const subtitle = `${r.machine.cpus} × ${r.machine.cpuModel}; Node ${r.machine.node}; ${r.machine.etcd}; Synod ${r.synod.commit}; ${r.startedAt.slice(0, 16)}Z`;
  fs.writeFileSync(path.join(RESULTS_DIR, 'latest.svg'), renderChart(r.figures, 'Synod vs etcd — make bench', subtitle));
  fs.writeFileSync(path.join(RESULTS_DIR, 'latest.md'), md + '\n');
  if (!jsonAlreadyThere) fs.writeFileSync(path.join(RESULTS_DIR, 'latest.json'), JSON.stringify(r, null, 1) + '\n');
  return md;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  const file = process.argv[2] ?? path.join(RESULTS_DIR, 'latest.json');
  const r = JSON.parse(fs.readFileSync(file, 'utf8')) as RunResults;
  r.synod ??= { root: '', commit: 'unknown' };
  r.failures ??= [];
  console.log(writeResultFiles(r, path.resolve(file) === path.join(RESULTS_DIR, 'latest.json')));
}

// The sharding rows as an SVG chart (bench/results/sharding.svg, shown in the README): per workload, one
// throughput bar for each of etcd, Synod with one shard and Synod with 16 shards, with the 16-shard
// figure's ratio to etcd and to one shard. Rendered from bench/results/sharding.json, so it can be drawn
// again from a saved run: `node bench/sharding-chart.ts`.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RESULTS_DIR } from './results-files.ts';
import { esc } from './svg-chart.ts';

/** The part of sharding.json the chart reads. */
export interface ShardingResults {
  header: string;
  rows: Array<{ setup: string; workload: string; runs: Array<{ opsPerSecond: number }> }>;
}

const SETUPS: ReadonlyArray<{ setup: string; label: string; color: string }> = [
  { setup: 'etcd', label: 'etcd', color: '#4c78a8' },
  { setup: 'synod 1 shard', label: 'Synod, 1 shard', color: '#f58518' },
  { setup: 'synod 16 shards', label: 'Synod, 16 shards', color: '#54a24b' },
];

/** The median of `xs` (NaN when empty): a setup's figure over its rounds. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function renderShardingChart(results: ShardingResults): string {
  const workloads: string[] = [];
  for (const r of results.rows) if (!workloads.includes(r.workload)) workloads.push(r.workload);
  const ops = (setup: string, workload: string): number | null => {
    const runs = results.rows.find((r) => r.setup === setup && r.workload === workload)?.runs ?? [];
    return runs.length === 0 ? null : median(runs.map((m) => m.opsPerSecond));
  };
  const labelW = 230;
  const panelW = 420;
  const barH = 11;
  const groupH = SETUPS.length * barH + 12;
  const top = 66;
  const height = top + workloads.length * groupH + 36;
  const width = labelW + panelW + 190;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    '<rect width="100%" height="100%" fill="white"/>',
    '<text x="10" y="20" font-size="15" font-weight="bold">Sharding rows: throughput, ops/s (higher is better)</text>',
    `<text x="10" y="38" fill="#555">${esc(results.header)}</text>`,
    `<text x="${labelW + panelW + 10}" y="${top - 10}" font-weight="bold">16 shards / etcd, / 1 shard</text>`,
  ];
  let legendX = 10;
  for (const s of SETUPS) {
    parts.push(`<rect x="${legendX}" y="${top - 20}" width="12" height="12" fill="${s.color}"/><text x="${legendX + 16}" y="${top - 10}">${esc(s.label)}</text>`);
    legendX += 130;
  }
  workloads.forEach((w, i) => {
    const y0 = top + i * groupH;
    parts.push(`<text x="${labelW - 8}" y="${y0 + barH + 8}" text-anchor="end">${esc(w)}</text>`);
    const figures = SETUPS.map((s) => ops(s.setup, w));
    // Scaled per workload: the chart compares the setups on each workload; the numbers carry the rest.
    const max = Math.max(1e-9, ...figures.map((f) => f ?? 0));
    figures.forEach((f, j) => {
      const y = y0 + j * barH;
      if (f === null) {
        parts.push(`<text x="${labelW + 2}" y="${y + barH - 2}" fill="#999">—</text>`);
        return;
      }
      const bar = (f / max) * (panelW - 60);
      parts.push(`<rect x="${labelW}" y="${y}" width="${bar.toFixed(1)}" height="${barH - 1}" fill="${SETUPS[j].color}"/>`);
      parts.push(`<text x="${(labelW + bar + 3).toFixed(1)}" y="${y + barH - 2}" font-size="9">${Math.round(f).toLocaleString('en-US')}</text>`);
    });
    const [etcd, one, many] = figures;
    if (many !== null && etcd && one) {
      parts.push(`<text x="${labelW + panelW + 10}" y="${y0 + barH + 8}" fill="#333" font-weight="bold">${(many / etcd).toFixed(2)}×, ${(many / one).toFixed(2)}×</text>`);
    }
  });
  parts.push(`<text x="10" y="${height - 12}" fill="#555">bars scaled per workload. All three: 3 members on loopback, fsync on, same disk, same client, the same 2 cores.</text>`);
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/** Writes bench/results/sharding.svg from `results` (or from bench/results/sharding.json). */
export function writeShardingChart(results?: ShardingResults): string {
  const data = results ?? (JSON.parse(fs.readFileSync(path.join(RESULTS_DIR, 'sharding.json'), 'utf8')) as ShardingResults);
  const file = path.join(RESULTS_DIR, 'sharding.svg');
  fs.writeFileSync(file, renderShardingChart(data));
  return file;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(`wrote ${path.relative(process.cwd(), writeShardingChart())}`);

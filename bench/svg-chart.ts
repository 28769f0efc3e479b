// A dependency-free SVG chart of a benchmark run: per workload, horizontal bars for etcd and Synod
// throughput (left panel) and p99 latency (right panel), with the Synod/etcd ratio beside each pair.
import type { WorkloadFigures } from './report.ts';

const COLORS: Record<string, string> = { etcd: '#4c78a8', synod: '#f58518' };

/** Escapes text for SVG. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function fmt(n: number): string {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(n >= 10 ? 1 : 2);
}

export function renderChart(figs: readonly WorkloadFigures[], title: string, subtitle: string): string {
  const rows = figs.filter((f) => Object.values(f.bySystem).some((s) => s.unsupported === undefined && s.ok > 0));
  const labelW = 250;
  const panelW = 330;
  const gap = 90;
  const barH = 11;
  const groupH = 2 * barH + 12;
  const top = 70;
  const height = top + rows.length * groupH + 40;
  const width = labelW + 2 * panelW + 2 * gap;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<text x="10" y="38" fill="#555">${esc(subtitle)}</text>`,
    `<text x="${labelW}" y="${top - 10}" font-weight="bold">throughput, ops/s (higher is better)</text>`,
    `<text x="${labelW + panelW + gap}" y="${top - 10}" font-weight="bold">p99 latency, ms (lower is better)</text>`,
  ];
  let legendX = width - 150;
  for (const [name, color] of Object.entries(COLORS)) {
    parts.push(`<rect x="${legendX}" y="12" width="12" height="12" fill="${color}"/><text x="${legendX + 16}" y="22">${name}</text>`);
    legendX += 65;
  }
  rows.forEach((f, i) => {
    const y0 = top + i * groupH;
    parts.push(`<text x="${labelW - 8}" y="${y0 + barH + 4}" text-anchor="end">${esc(f.workload)}</text>`);
    // Bars are scaled per workload (the longer of the pair fills the panel): the chart compares the
    // two systems on each workload; the printed numbers carry the absolute values.
    const live = Object.values(f.bySystem).filter((s) => s.unsupported === undefined);
    const maxOps = Math.max(1e-9, ...live.map((s) => s.opsPerSecond));
    const maxP99 = Math.max(1e-9, ...live.map((s) => s.latency.p99Ms));
    ['etcd', 'synod'].forEach((system, j) => {
      const s = f.bySystem[system];
      const y = y0 + j * barH;
      if (!s || s.unsupported !== undefined) {
        parts.push(`<text x="${labelW + 2}" y="${y + barH - 2}" fill="#999">${s ? 'unsupported' : '—'}</text>`);
        return;
      }
      const w1 = (s.opsPerSecond / maxOps) * (panelW - 60);
      const w2 = (s.latency.p99Ms / maxP99) * (panelW - 60);
      const x2 = labelW + panelW + gap;
      parts.push(`<rect x="${labelW}" y="${y}" width="${w1.toFixed(1)}" height="${barH - 1}" fill="${COLORS[system]}"/>`);
      parts.push(`<text x="${(labelW + w1 + 3).toFixed(1)}" y="${y + barH - 2}" font-size="9">${fmt(s.opsPerSecond)}</text>`);
      parts.push(`<rect x="${x2}" y="${y}" width="${w2.toFixed(1)}" height="${barH - 1}" fill="${COLORS[system]}"/>`);
      parts.push(`<text x="${(x2 + w2 + 3).toFixed(1)}" y="${y + barH - 2}" font-size="9">${fmt(s.latency.p99Ms)}</text>`);
    });
    if (f.ratios.opsPerSecond !== null) {
      parts.push(`<text x="${labelW + panelW + 5}" y="${y0 + barH + 4}" fill="#333" font-weight="bold">${f.ratios.opsPerSecond.toFixed(2)}×</text>`);
    }
    if (f.ratios.p99 !== null) {
      parts.push(`<text x="${width - 45}" y="${y0 + barH + 4}" fill="#333" font-weight="bold">${f.ratios.p99.toFixed(2)}×</text>`);
    }
  });
  parts.push(`<text x="10" y="${height - 12}" fill="#555">bars scaled per workload; ratios are Synod/etcd. Both clusters: 3 members on loopback, fsync on, same disk, same client.</text>`);
  parts.push('</svg>');
  return parts.join('\n');
}

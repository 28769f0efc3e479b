// Reads a V8 .cpuprofile (node --cpu-prof) and summarises where the time went: self time per
// function, and per area of the code (Synod's own layers, grpc-js, protobufjs, LevelDB, Node
// internals, GC). Usable on its own: `node bench/profile-summary.ts <file.cpuprofile>`.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTimeEntry {
  name: string;
  selfMs: number;
  /** Share of all sampled time (idle included). */
  percent: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  idleMs: number;
  busyPercent: number;
  topFunctions: SelfTimeEntry[];
  byArea: SelfTimeEntry[];
  /** Functions by inclusive (total) time: what each call tree costs, callees included. */
  topInclusive: SelfTimeEntry[];
}

/** The area of the code a frame belongs to, from its URL. */
export function areaOf(frame: CallFrame): string {
  const u = frame.url;
  if (u === '') {
    if (frame.functionName === '(garbage collector)') return 'GC';
    if (frame.functionName === '(idle)') return 'idle';
    if (frame.functionName === '(program)') return 'V8/native (program)';
    return `native: ${frame.functionName || '(anonymous)'}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (nm) return nm[1];
  const srv = /\/server\/([^/]+)\//.exec(u);
  if (srv) return `synod server/${srv[1]}`;
  if (u.startsWith('node:')) {
    const m = /^node:(?:internal\/)?([^/]+)/.exec(u);
    return `node:${m ? m[1] : u}`;
  }
  return u.replace(/^file:\/\/.*\//, '');
}

function shortUrl(u: string): string {
  return u.replace(/^file:\/\/.*?\/(node_modules|server)\//, '$1/');
}

export function summariseProfile(file: string, top = 25): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    totalUs += us;
    if (f.functionName === '(idle)') idleUs += us;
    const key = `${f.functionName || '(anonymous)'} ${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
    fn.set(key, (fn.get(key) ?? 0) + us);
    const a = areaOf(f);
    area.set(a, (area.get(a) ?? 0) + us);
  }
  // Inclusive time: each sample counts once for every distinct function on its stack.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const frameKey = (f: CallFrame): string => `${f.functionName || '(anonymous)'} ${f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur)!.callFrame;
      if (f.functionName === '(root)' || f.functionName === '(idle)' || f.functionName === '(program)' || f.functionName === '(garbage collector)') continue;
      const k = frameKey(f);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
  const entries = (m: Map<string, number>): SelfTimeEntry[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, selfMs: Math.round(us / 100) / 10, percent: Math.round((1000 * us) / Math.max(1, totalUs)) / 10 }));
  return {
    file,
    totalMs: Math.round(totalUs / 1000),
    idleMs: Math.round(idleUs / 1000),
    busyPercent: Math.round((1000 * (totalUs - idleUs)) / Math.max(1, totalUs)) / 10,
    topFunctions: entries(fn).slice(0, top),
    byArea: entries(area).slice(0, top),
    topInclusive: entries(inclusive).slice(0, top + 15),
  };
}

export function formatSummary(s: ProfileSummary): string {
  const lines = [`${s.file}: ${s.totalMs} ms sampled, ${s.busyPercent}% busy (idle ${s.idleMs} ms)`, '', 'self time by area:'];
  for (const e of s.byArea) lines.push(`  ${e.percent.toFixed(1).padStart(5)}%  ${String(e.selfMs).padStart(9)} ms  ${e.name}`);
  lines.push('', 'top functions by self time:');
  for (const e of s.topFunctions) lines.push(`  ${e.percent.toFixed(1).padStart(5)}%  ${String(e.selfMs).padStart(9)} ms  ${e.name}`);
  lines.push('', 'top functions by inclusive time (callees included):');
  for (const e of s.topInclusive) lines.push(`  ${e.percent.toFixed(1).padStart(5)}%  ${String(e.selfMs).padStart(9)} ms  ${e.name}`);
  return lines.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  for (const f of process.argv.slice(2)) console.log(formatSummary(summariseProfile(f)) + '\n');
}

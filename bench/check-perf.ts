// Runs `etcdctl check perf --load=<s|m|l>` (Debian's etcdctl 3.4) against a cluster and parses its
// verdict: throughput, slowest request, standard deviation, PASS or FAIL. Each load runs 60 s.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface CheckPerfResult {
  load: string;
  passed: boolean;
  /** The PASS/FAIL lines etcdctl printed, e.g. "PASS: Throughput is 150 writes/s". */
  verdicts: string[];
  throughputWritesPerSecond: number | null;
  slowestRequestMs: number | null;
  stddevMs: number | null;
  durationMs: number;
  exitCode: number | null;
  /** Last lines of output when etcdctl failed without a verdict. */
  errorText?: string;
}

export async function runCheckPerf(endpoints: string[], load: string, prefix: string): Promise<CheckPerfResult> {
  const t0 = performance.now();
  const args = ['--endpoints', endpoints.join(','), '--command-timeout', '30s', 'check', 'perf', `--load=${load}`, `--prefix=${prefix}`];
  const child = spawn('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (b: Buffer) => (text += b.toString()));
  child.stderr.on('data', (b: Buffer) => (text += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
  const exitCode = await new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  clearTimeout(timer);
  const lines = text.split(/[\r\n]+/).map((l) => l.trim());
  // Verdict lines ("PASS: Throughput is 150 writes/s", "FAIL: Slowest request took too long: 0.6s", a
  // final "PASS"/"FAIL") may share a line with the progress bar's last redraw: match anywhere.
  const verdicts = lines.map((l) => /(PASS|FAIL)(:.*)?$/.exec(l)?.[0]).filter((v): v is string => v !== undefined);
  const seconds = (re: RegExp): number | null => {
    const m = lines.map((l) => re.exec(l)).find((x) => x !== null);
    return m ? Math.round(Number(m[1]) * 1e6) / 1e3 : null;
  };
  const tput = lines.map((l) => /Throughput (?:is|too low:) (\d+) writes\/s/.exec(l)).find((x) => x !== null);
  const result: CheckPerfResult = {
    load,
    passed: exitCode === 0 && verdicts.includes('PASS') && !verdicts.some((v) => v.startsWith('FAIL')),
    verdicts,
    throughputWritesPerSecond: tput ? Number(tput[1]) : null,
    slowestRequestMs: seconds(/Slowest request took(?: too long:)? ([\d.]+)s/),
    stddevMs: seconds(/Stddev (?:is|too high:) ([\d.]+)s/),
    durationMs: performance.now() - t0,
    exitCode,
  };
  if (verdicts.length === 0) result.errorText = lines.filter((l) => l !== '').slice(-5).join(' | ').slice(0, 400);
  return result;
}

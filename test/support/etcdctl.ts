// Runs Debian's real etcdctl (v3 API) against test clusters.
import { execFile } from 'node:child_process';

export interface EtcdctlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface EtcdctlOptions {
  input?: string;
  /** Stops the command (SIGTERM) after this long: a watch or an elect never ends by itself. */
  timeoutMs?: number;
  /**
   * For such a command: stop it as soon as its output is complete instead of waiting out timeoutMs —
   * once stdout satisfies `doneWhen`, or once it has printed something and then nothing more for
   * `quietMs` (what it printed in one burst, a history replay, has all arrived).
   */
  doneWhen?: (stdout: string) => boolean;
  quietMs?: number;
  /** Output larger than this (default 1 MiB, execFile's) fails the command. */
  maxOutputBytes?: number;
}

export function etcdctl(endpoints: string, args: string[], opts: EtcdctlOptions = {}): Promise<EtcdctlResult> {
  return new Promise((resolve) => {
    let quiet: NodeJS.Timeout | undefined;
    const child = execFile(
      'etcdctl',
      [`--endpoints=${endpoints}`, '--dial-timeout=3s', '--command-timeout=8s', ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: opts.timeoutMs ?? 20_000, maxBuffer: opts.maxOutputBytes ?? 1024 * 1024 },
      (err, stdout, stderr) => {
        clearTimeout(quiet);
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ stdout, stderr, code });
      },
    );
    if (opts.doneWhen || opts.quietMs !== undefined) {
      let seen = '';
      child.stdout?.on('data', (d: Buffer | string) => {
        seen += d.toString();
        if (opts.doneWhen?.(seen)) child.kill('SIGTERM');
        if (opts.quietMs === undefined) return;
        clearTimeout(quiet);
        quiet = setTimeout(() => child.kill('SIGTERM'), opts.quietMs);
      });
    }
    if (opts.input !== undefined) {
      child.stdin?.end(opts.input);
    }
  });
}

/** etcdctl that must succeed; returns stdout. */
export async function etcdctlOk(endpoints: string, args: string[], opts: { input?: string } = {}): Promise<string> {
  const r = await etcdctl(endpoints, args, opts);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

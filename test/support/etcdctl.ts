// Runs Debian's real etcdctl (v3 API) against test clusters.
import { execFile } from 'node:child_process';

export interface EtcdctlResult {
  stdout: string;
  stderr: string;
  code: number;
}

export function etcdctl(endpoints: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<EtcdctlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      'etcdctl',
      [`--endpoints=${endpoints}`, '--dial-timeout=3s', '--command-timeout=8s', ...args],
      { env: { ...process.env, ETCDCTL_API: '3' }, timeout: opts.timeoutMs ?? 20_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
        resolve({ stdout, stderr, code });
      },
    );
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

// Restart-to-ready measurement (issue 13, item 6): fill a cluster with `values` × `valueBytes`
// through one client, kill -9 one member, start it again on the same data dir, and time from the
// spawn until its /readyz answers 200. Shared by test/restart-time.test.ts and bench/restart-time.ts.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { KvClient } from './kv-client.ts';
import type { ProcessCluster } from './process-cluster.ts';

export interface RestartReadyResult {
  memberIndex: number;
  putMs: number;
  /** From the restart's spawn to the first 200 from /readyz. */
  readyMs: number;
  /** The member's resident set size once ready (MiB), from its /metrics. */
  rssMiB: number;
  /** ms from the spawn to each of these log lines of the restarted member (where the time went). */
  phases: { loaded: number; serving: number; leaderKnown: number };
}

/** ms from `sinceMs` to the first line with `msg` that the member logged at or after `sinceMs`. */
function logPhases(logFile: string, sinceMs: number): RestartReadyResult['phases'] {
  const at = (msg: string): number => {
    for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
      if (!line.includes(`"msg":"${msg}"`)) continue;
      const time = Number(/"time":(\d+)/.exec(line)?.[1]);
      if (time >= sinceMs) return time - sinceMs;
    }
    return NaN;
  };
  return { loaded: at('member loaded'), serving: at('serving'), leaderKnown: at('leader changed') };
}

export async function fillValues(cluster: ProcessCluster, values: number, valueBytes: number, prefix = 'fill/', concurrency = 4): Promise<number> {
  const client = new KvClient(cluster.addressOf(await cluster.leaderIndex()));
  const startedMs = Date.now();
  try {
    // Incompressible, as real payloads are: LevelDB's snappy would shrink a repeated byte to nothing.
    const value = randomBytes(valueBytes);
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (;;) {
          const i = next++;
          if (i >= values) return;
          // The fill is not what is measured: a put that times out on a busy shared machine is
          // retried (the same key and value, so a retry that lands twice changes nothing).
          for (let attempt = 1; ; attempt++) {
            try {
              await client.put(`${prefix}${String(i).padStart(6, '0')}`, value, {}, 60_000);
              break;
            } catch (err) {
              if (attempt >= 5) throw err;
              await new Promise((r) => setTimeout(r, 500));
            }
          }
        }
      }),
    );
  } finally {
    client.close();
  }
  return Date.now() - startedMs;
}

export async function measureRestartToReady(
  cluster: ProcessCluster,
  opts: { values: number; valueBytes: number; killLeader?: boolean; timeoutMs?: number },
): Promise<RestartReadyResult> {
  const putMs = await fillValues(cluster, opts.values, opts.valueBytes);
  const leader = await cluster.leaderIndex();
  const memberIndex = opts.killLeader ? leader : (leader + 1) % cluster.members.length;
  // Let the follower apply what it has, as a member killed in normal operation would have.
  await cluster.waitReady(60_000);
  await cluster.kill9(memberIndex);
  const startedMs = Date.now();
  cluster.startMember(memberIndex);
  const deadline = startedMs + (opts.timeoutMs ?? 120_000);
  while (!(await cluster.readyz(memberIndex))) {
    if (Date.now() > deadline) throw new Error(`member ${memberIndex} not ready after ${Date.now() - startedMs} ms\n${cluster.tailLogs()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
  const readyMs = Date.now() - startedMs;
  const metrics = await cluster.metrics(memberIndex);
  const rss = /^process_resident_memory_bytes (\S+)$/m.exec(metrics);
  return { memberIndex, putMs, readyMs, rssMiB: rss ? Number(rss[1]) / 2 ** 20 : NaN, phases: logPhases(cluster.members[memberIndex].logFile, startedMs) };
}

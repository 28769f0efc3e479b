// Measures how fast a follower that fell behind catches up, on a real process cluster: SIGSTOP one
// follower, put `values` × `valueBytes` through the leader, SIGCONT it and time until its applied index
// reaches the leader's commit index. Used by the catch-up test and by `make bench` (bench/catch-up.ts).
import fs from 'node:fs';
import { KvClient } from './kv-client.ts';
import type { ProcessCluster } from './process-cluster.ts';

export interface CatchUpResult {
  followerIndex: number;
  leaderIndex: number;
  /** Payload bytes put while the follower was stopped. */
  bytesBehind: number;
  /** Raft entries the follower had to catch up (leader commit - follower applied at SIGCONT). */
  entriesBehind: number;
  putMs: number;
  catchUpMs: number;
  mibPerSecond: number;
  /** Lines the leader logged about the follower's stream breaking while it caught up. */
  streamBreaks: string[];
}

async function gauge(cluster: ProcessCluster, i: number, name: string): Promise<number> {
  const match = new RegExp(`^${name} (\\d+)$`, 'm').exec(await cluster.metrics(i));
  if (!match) throw new Error(`member ${i} exports no ${name}`);
  return Number(match[1]);
}

export interface CatchUpOptions {
  values: number;
  valueBytes: number;
  concurrency?: number;
  /**
   * Keep the follower stopped at least this long: past the peer stream's keepalive (10 s + 5 s) the
   * leader's stream to it breaks, as after any real pause, and the leader must probe and refill a
   * whole window at once when it answers again, which is when frames grow largest.
   */
  holdMs?: number;
  timeoutMs?: number;
}

export async function measureFollowerCatchUp(cluster: ProcessCluster, options: CatchUpOptions): Promise<CatchUpResult> {
  const leaderIndex = await cluster.leaderIndex();
  const followerIndex = (leaderIndex + 1) % cluster.members.length;
  const follower = cluster.members[followerIndex].child;
  if (!follower?.pid) throw new Error('follower is not running');
  const client = new KvClient(cluster.addressOf(leaderIndex));
  try {
    const value = Buffer.alloc(options.valueBytes, 0x61);
    const startPutMs = Date.now();
    process.kill(follower.pid, 'SIGSTOP');
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < options.values) {
        const i = next++;
        await client.put(`catch-up/${String(i).padStart(6, '0')}`, value, {}, 30_000);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
    const putMs = Date.now() - startPutMs;
    const holdLeftMs = startPutMs + (options.holdMs ?? 0) - Date.now();
    if (holdLeftMs > 0) await new Promise((r) => setTimeout(r, holdLeftMs));
    const target = await gauge(cluster, leaderIndex, 'synod_raft_commit_index');
    const logStart = fs.statSync(cluster.members[leaderIndex].logFile).size;
    const resumedMs = Date.now();
    process.kill(follower.pid, 'SIGCONT');
    const deadline = resumedMs + (options.timeoutMs ?? 120_000);
    let appliedAtResume = -1;
    for (;;) {
      let applied = -1;
      try {
        applied = await gauge(cluster, followerIndex, 'synod_raft_applied_index');
      } catch {
        // the follower's HTTP server answers once its event loop runs again
      }
      if (appliedAtResume < 0 && applied >= 0) appliedAtResume = applied;
      if (applied >= target) break;
      if (Date.now() > deadline) throw new Error(`follower at ${applied}, leader committed ${target}: not caught up after ${Date.now() - resumedMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const catchUpMs = Date.now() - resumedMs;
    const leaderLog = fs.readFileSync(cluster.members[leaderIndex].logFile).subarray(logStart).toString('utf8');
    const streamBreaks = leaderLog.split('\n').filter((line) => line.includes('peer stream lost'));
    const bytesBehind = options.values * options.valueBytes;
    return {
      followerIndex,
      leaderIndex,
      bytesBehind,
      entriesBehind: target - Math.max(appliedAtResume, 0),
      putMs,
      catchUpMs,
      mibPerSecond: bytesBehind / (1024 * 1024) / (catchUpMs / 1000),
      streamBreaks,
    };
  } finally {
    // Never leave a stopped process behind, whatever failed.
    try {
      process.kill(follower.pid, 'SIGCONT');
    } catch {
      // already gone
    }
    client.close();
  }
}

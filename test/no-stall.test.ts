// Issue 13, item 2: one large request must not stall the event loop long enough to depose the leader.
// 300 × 1 MiB values are stored (1 GiB in bench/no-stall.ts; 300 MiB fits this suite's time on two
// shared cores), three clients range over all of them at once, then one deletes them all while the
// others keep ranging, and other clients put small keys throughout (from processes of their own).
// Asserted: no leader change, no term change, the leader's event loop never stalls for half an election
// timeout, no follower hears nothing from the leader for that long beyond its own longest stall, no
// member stalls for a whole election timeout; the Range seen during the delete is all or nothing (one
// revision).
// The small puts' p99 is printed (target < 100 ms; too noisy on this shared machine to assert).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { formatNoStall, measureNoStall } from './support/no-stall.ts';

const ELECTION_TIMEOUT_MS = 1000;

describe('no stall under large ranges and deletes', () => {
  let cluster: ProcessCluster;
  beforeAll(async () => {
    cluster = await ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: ELECTION_TIMEOUT_MS });
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('keeps the leader and its heartbeats while 300 MiB are ranged over and deleted by several clients', async () => {
    const opts = { values: 300, valueBytes: 1024 * 1024, clients: 3, rangeRounds: 1 };
    const r = await measureNoStall(cluster, opts);
    console.log(`no stall: ${formatNoStall(r, opts)}`);
    expect(r.leaderChanges).toBe(0);
    expect(r.termsAfter).toEqual(r.termsBefore);
    // The leader never goes quiet for half an election timeout: its own event loop never stalls that long,
    // and no follower hears nothing from it for that long, less the follower's own longest stall (a fresh
    // clone's `make test` on a slow host, 2026-12-07: a follower whose own fsync took 795 ms and event loop
    // 590 ms saw 612 ms of silence, the leader's loop at most 76 ms). No member stalls for a whole election
    // timeout (a follower that did would campaign).
    expect(r.loopDelayMaxMs[r.leaderIndex]).toBeLessThan(ELECTION_TIMEOUT_MS / 2);
    for (const [i, gapMs] of r.leaderGapMaxMs.entries()) {
      if (i !== r.leaderIndex) expect(gapMs - r.loopDelayMaxMs[i], `follower ${i}`).toBeLessThan(ELECTION_TIMEOUT_MS / 2);
    }
    expect(Math.max(...r.loopDelayMaxMs)).toBeLessThan(ELECTION_TIMEOUT_MS);
    for (const count of r.countsDuringDelete) expect([0, opts.values]).toContain(count);
    expect(r.puts).toBeGreaterThan(0);
  }, 300_000);
});

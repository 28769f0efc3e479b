// Seeded chaos simulation of 3-node clusters (all preVote/checkQuorum combinations), heavy-fault
// runs, and the determinism check. Each run: fault phase (partitions, loss, duplication,
// reordering, crashes at every point of Ready handling, restarts) under client load with
// safety checked after every event, then a heal phase checking liveness.
// Replay a failure `seed=S, step=N: ...` with: RAFT_SEED=S node_modules/.bin/vitest run server/raft/sim
import { describe, expect, it } from 'vitest';
import { HEAVY_FAULTS, runChaos } from './chaos.ts';
import { defineChaosSuite, expectHeavyRunsExercised, replaySeed, seedsFor } from './chaos-suite.ts';

describe('raft cluster simulation (3 nodes)', () => {
  defineChaosSuite(3);

  it('survives heavy faults (high loss, duplication, long delays, frequent crashes)', () => {
    const results = seedsFor(9_000_000).map((seed) => runChaos(seed, { nodeCount: 3, ...HEAVY_FAULTS }));
    expectHeavyRunsExercised(results);
  });

  it('is deterministic: the same seed gives an identical trace', () => {
    const seed = replaySeed ?? 4242;
    const opts = { nodeCount: 5, faultSteps: 800 };
    const a = runChaos(seed, opts);
    const b = runChaos(seed, opts);
    expect(b).toEqual(a);
    expect(a.traceEvents).toBeGreaterThan(1000);
    expect(runChaos(seed + 1, opts).traceHash).not.toBe(a.traceHash);
  });
});

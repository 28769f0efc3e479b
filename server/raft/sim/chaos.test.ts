// Randomized, seeded cluster simulation. Every seed runs a fault phase (partitions, loss,
// duplication, reordering, crashes at each point of Ready handling, restarts) under client
// load, with safety checked after every event, then a heal phase checking liveness.
//
// Replay one failing seed (the failure message starts with `seed=S, step=N: [nodes=.. ..]`):
//   RAFT_SEED=S node_modules/.bin/vitest run server/raft/sim/chaos.test.ts
// More seeds / longer runs:  RAFT_SEEDS=2000 RAFT_STEPS=5000 node_modules/.bin/vitest run server/raft/sim
import { describe, expect, it } from 'vitest';
import { runChaos } from './chaos.ts';
import type { ChaosResult } from './chaos.ts';

const replaySeed = process.env.RAFT_SEED === undefined ? null : Number(process.env.RAFT_SEED);
const seedsPerConfig = Number(process.env.RAFT_SEEDS ?? 40);
const faultSteps = Number(process.env.RAFT_STEPS ?? 1500);

function seeds(configIndex: number): number[] {
  if (replaySeed !== null) return [replaySeed];
  // Disjoint seed ranges per configuration so every run explores a different schedule.
  return Array.from({ length: seedsPerConfig }, (_, i) => configIndex * 100_000 + i + 1);
}

const configs = [3, 5].flatMap((nodeCount) =>
  [true, false].flatMap((preVote) => [true, false].map((checkQuorum) => ({ nodeCount, preVote, checkQuorum }))),
);

describe('raft cluster simulation', () => {
  configs.forEach((cfg, configIndex) => {
    it(`keeps safety and liveness: ${cfg.nodeCount} nodes, preVote=${cfg.preVote}, checkQuorum=${cfg.checkQuorum}`, () => {
      const results: ChaosResult[] = [];
      for (const seed of seeds(configIndex)) results.push(runChaos(seed, { ...cfg, faultSteps }));
      // The runs must have exercised the protocol, not idled.
      for (const r of results) {
        expect(r.committed, `seed=${r.seed}: nothing committed`).toBeGreaterThan(10);
        expect(r.leaderChanges, `seed=${r.seed}: no leader ever`).toBeGreaterThan(0);
      }
      expect(results.reduce((n, r) => n + r.readsServed, 0)).toBeGreaterThan(0);
      expect(results.reduce((n, r) => n + r.leaderChanges, 0)).toBeGreaterThan(results.length);
    });
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

  it('survives heavy faults (high loss, duplication, long delays, frequent crashes)', () => {
    const heavy = {
      faultSteps: 1000,
      partitionRate: 0.04,
      healRate: 0.04,
      crashRate: 0.03,
      restartRate: 0.06,
      faults: { dropRate: 0.2, duplicateRate: 0.15, maxDelaySteps: 8 },
    };
    const list = replaySeed !== null ? [replaySeed] : Array.from({ length: seedsPerConfig }, (_, i) => 900_000 + i);
    for (const seed of list) {
      runChaos(seed, { nodeCount: 3, ...heavy });
      runChaos(seed, { nodeCount: 5, preVote: seed % 2 === 0, checkQuorum: seed % 3 !== 0, ...heavy });
    }
  });
});

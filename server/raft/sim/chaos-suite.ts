// Shared definition of the seeded chaos test suites (split by cluster size into separate test
// files so vitest runs them in parallel). Reads RAFT_SEED / RAFT_SEEDS / RAFT_STEPS; see
// server/raft/README.md for replaying a failing seed.
import { expect, it } from 'vitest';
import { runChaos } from './chaos.ts';
import type { ChaosResult } from './chaos.ts';

export const replaySeed: number | null = process.env.RAFT_SEED === undefined ? null : Number(process.env.RAFT_SEED);
export const seedsPerConfig = Number(process.env.RAFT_SEEDS ?? 40);
export const faultSteps = Number(process.env.RAFT_STEPS ?? 1500);

/** Seeds for one configuration: a disjoint range per config, or just the replayed seed. */
export function seedsFor(rangeBase: number): number[] {
  if (replaySeed !== null) return [replaySeed];
  return Array.from({ length: seedsPerConfig }, (_, i) => rangeBase + i + 1);
}

/** Defines one `it` per (preVote, checkQuorum) combination for a cluster of `nodeCount`. */
export function defineChaosSuite(nodeCount: number): void {
  let config = 0;
  for (const preVote of [true, false]) {
    for (const checkQuorum of [true, false]) {
      const rangeBase = (nodeCount * 10 + config++) * 100_000;
      it(`keeps safety and liveness: ${nodeCount} nodes, preVote=${preVote}, checkQuorum=${checkQuorum}`, () => {
        const results: ChaosResult[] = [];
        for (const seed of seedsFor(rangeBase)) results.push(runChaos(seed, { nodeCount, preVote, checkQuorum, faultSteps }));
        // The runs must have exercised the protocol, not idled.
        for (const r of results) {
          expect(r.committed, `seed=${r.seed}: too little committed`).toBeGreaterThan(10);
          expect(r.leaderChanges, `seed=${r.seed}: no leader ever`).toBeGreaterThan(0);
        }
        expect(results.reduce((n, r) => n + r.readsServed, 0)).toBeGreaterThan(0);
        // Membership changes and snapshot installs must actually happen.
        if (replaySeed === null) {
          expect(results.reduce((n, r) => n + r.confChangesApplied, 0)).toBeGreaterThan(results.length);
          expect(results.reduce((n, r) => n + r.snapshotsInstalled, 0)).toBeGreaterThan(0);
        }
        expect(results.reduce((n, r) => n + r.leaderChanges, 0)).toBeGreaterThan(results.length);
      });
    }
  }
}

/**
 * Heavy-fault runs must still have done the protocol's work, not merely survived: every run committed
 * something and had a leader (the heal phase demands a fresh commit), and over the runs leaders changed
 * again and again under the crashes and partitions.
 */
export function expectHeavyRunsExercised(results: ChaosResult[]): void {
  for (const r of results) {
    expect(r.committed, `seed=${r.seed}: nothing committed`).toBeGreaterThan(0);
    expect(r.leaderChanges, `seed=${r.seed}: no leader ever`).toBeGreaterThan(0);
  }
  expect(results.reduce((n, r) => n + r.leaderChanges, 0)).toBeGreaterThan(results.length);
}

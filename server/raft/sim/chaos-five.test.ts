// Seeded chaos simulation of 5-node clusters (all preVote/checkQuorum combinations) plus
// heavy-fault runs. See chaos.test.ts for what a run does and how to replay a seed.
import { describe, it } from 'vitest';
import { HEAVY_FAULTS, runChaos } from './chaos.ts';
import { defineChaosSuite, expectHeavyRunsExercised, seedsFor } from './chaos-suite.ts';

describe('raft cluster simulation (5 nodes)', () => {
  defineChaosSuite(5);

  it('survives heavy faults (high loss, duplication, long delays, frequent crashes)', () => {
    const results = seedsFor(9_500_000).map((seed) => runChaos(seed, { nodeCount: 5, preVote: seed % 2 === 0, checkQuorum: seed % 3 !== 0, ...HEAVY_FAULTS }));
    expectHeavyRunsExercised(results);
  });
});

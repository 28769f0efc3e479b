// Seeded runs of the replica-move simulation (move-sim.ts): replicas move between four real members at
// runtime (hosted, caught up by snapshot, promoted, removed and dropped, back again under the same Raft
// id from the tombstone) while members crash, also in the middle of a drop. Replay a failure with
//   MOVE_SIM_SEED=S node_modules/.bin/node node_modules/vitest/vitest.mjs run server/member/sim/move-sim.test.ts
import { describe, expect, it } from 'vitest';
import { runMoveSim, type MoveSimResult } from './move-sim.ts';

const replaySeed = process.env.MOVE_SIM_SEED === undefined ? null : Number(process.env.MOVE_SIM_SEED);
const seeds = Number(process.env.MOVE_SIM_SEEDS ?? 20);
const faultMs = Number(process.env.MOVE_SIM_FAULT_MS ?? 3000);

describe('replica move simulation', () => {
  it('moves replicas at runtime through crashes: one leader per term, replicas agree, no acknowledged write lost, nothing left where no replica is', async () => {
    const list = replaySeed !== null ? [replaySeed] : Array.from({ length: seeds }, (_, i) => i + 1);
    const results: MoveSimResult[] = [];
    const started = performance.now();
    for (const seed of list) results.push(await runMoveSim(seed, { faultMs }));
    const sum = (f: (r: MoveSimResult) => number): number => results.reduce((n, r) => n + f(r), 0);
    console.log(
      `move sim: ${results.length} seeds × ${faultMs} ms of faults in ${Math.round(performance.now() - started)} ms: ${sum((r) => r.movesDone)} moves, ` +
        `${sum((r) => r.acked)} writes acknowledged, ${sum((r) => r.crashes)} crashes (${sum((r) => r.crashesDuringRemoval)} during a removal), ` +
        `${sum((r) => r.dropsAtStart)} drops at start, ${sum((r) => r.snapshotsInstalled)} snapshots installed, ${sum((r) => r.leaderTerms)} leader terms`,
    );
    if (replaySeed !== null) return;
    expect(sum((r) => r.movesDone)).toBeGreaterThan(seeds * 3);
    expect(sum((r) => r.crashesDuringRemoval)).toBeGreaterThan(0);
    expect(sum((r) => r.dropsAtStart)).toBeGreaterThan(0);
  });
});

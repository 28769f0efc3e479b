// The member-level simulation with quiescence on (MemberOptions.quiesce): real Members over the
// crash-losing store, the faulty network and simulated time, now quiescing idle groups and relying on
// member-level liveness messages to notice a dead leader. The same checks as member-sim.test.ts hold
// (Raft safety, state machines agree, no acknowledged write lost, the heal phase converges). A sparse
// load leaves the group idle between requests, so it quiesces often and leaders die while quiesced.
//
// Replay a failure `seed=S: ...` with
//   MEMBER_SIM_SEED=S node_modules/.bin/node node_modules/vitest/vitest.mjs run server/member/sim/quiescence-sim.test.ts
import { describe, expect, it } from 'vitest';
import { runMemberSim, type MemberSimResult } from './member-sim.ts';

const replaySeed = process.env.MEMBER_SIM_SEED === undefined ? null : Number(process.env.MEMBER_SIM_SEED);
const seeds = Number(process.env.MEMBER_SIM_SEEDS ?? 24);
const faultMs = Number(process.env.MEMBER_SIM_FAULT_MS ?? 3000);

function seedsFor(base: number): number[] {
  return replaySeed !== null ? [replaySeed] : Array.from({ length: seeds }, (_, i) => base + i + 1);
}

describe('member simulation with quiescence', () => {
  it('busy load: safety holds and nothing acknowledged is lost', async () => {
    const results: MemberSimResult[] = [];
    for (const seed of seedsFor(700_000)) results.push(await runMemberSim(seed, { members: 3, faultMs, quiesce: true }));
    if (replaySeed !== null) return;
    expect(results.reduce((n, r) => n + r.acked, 0)).toBeGreaterThan(50 * results.length);
  });

  it('sparse load: groups quiesce, quiesced leaders die, new leaders are elected', async () => {
    const results: MemberSimResult[] = [];
    for (const seed of seedsFor(800_000)) {
      results.push(await runMemberSim(seed, { members: seed % 4 === 0 ? 5 : 3, faultMs, quiesce: true, requestEveryMs: 250, faultEveryMs: 400 }));
    }
    const sum = (f: (r: MemberSimResult) => number): number => results.reduce((n, r) => n + f(r), 0);
    console.log(
      `member sim with quiescence (sparse load): ${results.length} seeds, ${sum((r) => r.acked)} writes acknowledged, ${sum((r) => r.quiescences)} quiescences, ` +
        `${sum((r) => r.livenessWakes)} liveness wakes, ${sum((r) => r.leaderCrashes)} leader crashes, ${sum((r) => r.leaderTerms)} leader terms`,
    );
    if (replaySeed !== null) return;
    expect(sum((r) => r.acked)).toBeGreaterThan(results.length);
    expect(sum((r) => r.quiescences)).toBeGreaterThan(results.length);
    expect(sum((r) => r.livenessWakes)).toBeGreaterThan(0);
    expect(sum((r) => r.leaderCrashes)).toBeGreaterThan(0);
  });
});

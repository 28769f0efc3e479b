// Quiescence under the seeded simulator: idle groups go silent, the existing safety checks hold
// under partitions, drops, duplication, crashes and membership churn, and liveness holds through
// the member-level liveness rule alone: when a quiesced group's leader dies (or is cut off), a new
// leader is elected within a bounded number of ticks. A mutation (quiesced followers ignoring the
// liveness rule) must make the bounded-election check fail.
// Replay a failing seed with RAFT_SEED=S node_modules/.bin/vitest run server/raft/sim/quiescence.test.ts
import { describe, expect, it } from 'vitest';
import { SimCluster } from './cluster.ts';
import type { SimClusterOptions } from './cluster.ts';
import { runChaos } from './chaos.ts';
import { replaySeed, seedsFor } from './chaos-suite.ts';
import type { NodeId } from '../types.ts';

const ELECTION_TICKS = 10;
/**
 * After the leader's member dies: one election timeout until its followers stop hearing it, then at
 * most one election timeout (the woken follower's lease has lapsed, its randomized timeout is < 2T)
 * until one campaigns, plus a few rounds of (pre)votes; each split vote (followers wake in the same
 * tick, as they do when the leader stops heartbeating) costs up to 2T more. 12T allows four; the test
 * prints the same deaths without quiescence, whose tail is as long.
 */
const NEW_LEADER_BOUND_TICKS = 12 * ELECTION_TICKS;

function quiescedCluster(seed: number, extra: Partial<SimClusterOptions> = {}): SimCluster {
  return new SimCluster({ nodeCount: 3, seed, electionTimeoutTicks: ELECTION_TICKS, heartbeatTicks: 1, quiesce: true, ...extra });
}

/** Elects a leader, commits a few entries, then steps until every node is quiesced. */
function settleQuiesced(c: SimCluster): NodeId {
  const leader = c.electLeader();
  expect(leader).not.toBe(0);
  for (let i = 0; i < 5; i++) c.propose(leader, new Uint8Array([i]));
  for (let i = 0; i < 20 * ELECTION_TICKS && !c.upIds().every((id) => c.node(id).isQuiesced()); i++) c.step();
  for (const id of c.upIds()) expect(c.node(id).isQuiesced(), `node ${id} quiesced`).toBe(true);
  for (let i = 0; i < 2; i++) c.step(); // the quiesce acknowledgements still in flight
  return c.leader();
}

/** Steps until an up node other than `old` leads; returns the ticks it took, or Infinity past `maxTicks`. */
function ticksToNewLeader(c: SimCluster, old: NodeId, maxTicks: number): number {
  for (let i = 1; i <= maxTicks; i++) {
    c.step();
    const l = c.leader();
    if (l !== 0 && l !== old && c.node(l).status().term > 0) {
      const s = c.node(l).status();
      // A real leader: a quorum follows it in its term.
      const following = c.upIds().filter((id) => c.node(id).status().term === s.term && c.node(id).status().leaderId === l);
      if (2 * following.length > s.voters.length) return i;
    }
  }
  return Infinity;
}

describe('raft quiescence (seeded simulator)', () => {
  it('an idle group goes silent: only liveness pings cross the network', () => {
    const c = quiescedCluster(replaySeed ?? 7);
    settleQuiesced(c);
    const sentBefore = c.network.sentCount;
    const pingsBefore = c.livenessPingsSent;

    for (let i = 0; i < 10 * ELECTION_TICKS; i++) c.step();
    expect(c.network.sentCount - sentBefore).toBe(c.livenessPingsSent - pingsBefore);
    for (const id of c.upIds()) expect(c.node(id).isQuiesced()).toBe(true);
    // A proposal wakes it, commits everywhere, and it quiesces again.
    const leader = c.leader();
    expect(c.propose(leader, new Uint8Array([42]))).toBe(true);
    expect(c.node(leader).isQuiesced()).toBe(false);
    for (let i = 0; i < 5 * ELECTION_TICKS; i++) c.step();
    for (const id of c.upIds()) {
      expect(c.applied(id).some((e) => e.data.byteLength === 1 && e.data[0] === 42)).toBe(true);
      expect(c.node(id).isQuiesced()).toBe(true);
    }
    // A ReadIndex at a follower wakes the group and is served.
    const follower = c.upIds().find((id) => id !== leader) as NodeId;
    const ctx = c.readIndex(follower);
    expect(ctx).not.toBe(0);
    for (let i = 0; i < 3 * ELECTION_TICKS; i++) c.step();
    expect(c.readStates(follower).length).toBe(1);
  });

  it(`elects a new leader within ${NEW_LEADER_BOUND_TICKS} ticks after a quiesced leader's member dies`, () => {
    const worst: number[] = [];
    for (const seed of seedsFor(31_000_000)) {
      const c = quiescedCluster(seed, { preVote: seed % 2 === 0, checkQuorum: seed % 3 !== 0 });
      const leader = settleQuiesced(c);
      // The leader dies at a random point of the quiesced period.
      for (let i = c.rng.nextInt(3 * ELECTION_TICKS); i > 0; i--) c.step();
      c.crash(leader);
      const ticks = ticksToNewLeader(c, leader, NEW_LEADER_BOUND_TICKS);
      expect(ticks, `seed=${seed}: no new leader within ${NEW_LEADER_BOUND_TICKS} ticks`).toBeLessThanOrEqual(NEW_LEADER_BOUND_TICKS);
      worst.push(ticks);
    }
    // The same deaths without quiescence (the leader heartbeating until it dies), for comparison.
    const baseline: number[] = [];
    for (const seed of seedsFor(31_000_000)) {
      const c = quiescedCluster(seed, { preVote: seed % 2 === 0, checkQuorum: seed % 3 !== 0, quiesce: false });
      const leader = c.electLeader();
      for (let i = 0; i < 5; i++) c.propose(leader, new Uint8Array([i]));
      for (let i = 0; i < 20 + c.rng.nextInt(3 * ELECTION_TICKS); i++) c.step();
      c.crash(c.leader());
      baseline.push(ticksToNewLeader(c, leader, 100 * ELECTION_TICKS));
    }
    const stats = (xs: number[]): string => `max ${Math.max(...xs)} / mean ${(xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(1)}`;
    console.log(`leader death, ticks to a new leader (election timeout ${ELECTION_TICKS}, ${worst.length} seeds): quiesced ${stats(worst)}; not quiesced ${stats(baseline)}`);
  });

  it('a quiesced leader partitioned from its followers is replaced, and steps down itself', () => {
    const worst: number[] = [];
    for (const seed of seedsFor(32_000_000)) {
      const c = quiescedCluster(seed);
      const leader = settleQuiesced(c);
      const others = c.ids.filter((id) => id !== leader);
      c.network.partition([[leader], others]);
      const ticks = ticksToNewLeader(c, leader, NEW_LEADER_BOUND_TICKS);
      expect(ticks, `seed=${seed}`).toBeLessThanOrEqual(NEW_LEADER_BOUND_TICKS);
      worst.push(ticks);
      // The old leader woke (no quorum heard) and check-quorum stepped it down.
      for (let i = 0; i < 3 * ELECTION_TICKS; i++) c.step();
      expect(c.node(leader).status().role, `seed=${seed}`).not.toBe('leader');
      c.network.heal();
      for (let i = 0; i < 5 * ELECTION_TICKS; i++) c.step();
      const terms = new Set(c.ids.map((id) => c.node(id).status().term));
      expect(terms.size, `seed=${seed}: one term after healing`).toBe(1);
    }
    console.log(`quiesced leader partitioned away: new leader after max ${Math.max(...worst)} ticks (${worst.length} seeds)`);
  });

  it('with message loss, a new leader still follows a quiesced leader death', () => {
    for (const seed of seedsFor(33_000_000)) {
      const c = quiescedCluster(seed, { nodeCount: 5, faults: { dropRate: 0.1, duplicateRate: 0.05, maxDelaySteps: 2 } });
      const leader = c.electLeader();
      for (let i = 0; i < 20 * ELECTION_TICKS && !c.upIds().every((id) => c.node(id).isQuiesced()); i++) c.step();
      if (!c.upIds().every((id) => c.node(id).isQuiesced())) continue; // losses kept it awake: nothing to test here
      c.crash(c.leader() || leader);
      const ticks = ticksToNewLeader(c, c.leader() || leader, 10 * NEW_LEADER_BOUND_TICKS);
      expect(ticks, `seed=${seed}`).toBeLessThanOrEqual(10 * NEW_LEADER_BOUND_TICKS);
    }
  });

  it('keeps safety and liveness under chaos with quiescence on (3 and 5 nodes, all preVote/checkQuorum settings)', () => {
    let quiesced = 0;
    let wakes = 0;
    let runs = 0;
    for (const nodeCount of [3, 5]) {
      for (const preVote of [true, false]) {
        for (const checkQuorum of [true, false]) {
          const base = 34_000_000 + (nodeCount * 10 + (preVote ? 2 : 0) + (checkQuorum ? 1 : 0)) * 1_000;
          for (const seed of seedsFor(base).slice(0, replaySeed === null ? 10 : 1)) {
            // A light load, so that the group is often idle long enough to quiesce between bursts.
            const r = runChaos(seed, { nodeCount, preVote, checkQuorum, faultSteps: 1500, quiesce: true, proposeRate: 0.04, readRate: 0.01 });
            expect(r.committed, `seed=${seed}`).toBeGreaterThan(10);
            quiesced += r.quiesceEvents;
            wakes += r.livenessWakes;
            runs++;
          }
        }
      }
    }
    console.log(`chaos with quiescence: ${runs} runs, ${quiesced} quiescences, ${wakes} liveness wakes`);
    expect(quiesced).toBeGreaterThan(runs);
    if (replaySeed === null) expect(wakes).toBeGreaterThan(0);
  });

  it('mutation: quiesced followers that ignore member liveness never replace a dead leader', () => {
    let caught = 0;
    const seeds = seedsFor(35_000_000).slice(0, 10);
    for (const seed of seeds) {
      const c = quiescedCluster(seed, { unsafeIgnoreLivenessWhileQuiesced: true });
      const leader = settleQuiesced(c);
      c.crash(leader);
      if (ticksToNewLeader(c, leader, NEW_LEADER_BOUND_TICKS) > NEW_LEADER_BOUND_TICKS) caught++;
    }
    expect(caught).toBe(seeds.length);
  });
});

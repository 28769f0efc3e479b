// The member-level deterministic simulation in `make test` (issue 12): seeded runs of 3 and 5 real
// Members over the crash-losing store, the faulty network and simulated time (member-sim.ts), each
// checking Raft safety, state-machine agreement and that no acknowledged write is lost; plus the
// check that a seed replays exactly.
//
// Replay a failure `seed=S: ...` with
//   MEMBER_SIM_SEED=S node_modules/.bin/node node_modules/vitest/vitest.mjs run server/member/sim
// Scale up: MEMBER_SIM_SEEDS=1000 (seeds of 3 members; a quarter as many of 5), MEMBER_SIM_FAULT_MS=5000;
// MEMBER_SIM_FIRST_SEED=2001 explores seeds past those already run (3 members from 2001, 5 from 502001).
import { describe, expect, it } from 'vitest';
import { runMemberSim, type MemberSimMutation, type MemberSimOptions, type MemberSimResult } from './member-sim.ts';

const replaySeed = process.env.MEMBER_SIM_SEED === undefined ? null : Number(process.env.MEMBER_SIM_SEED);
const seeds = Number(process.env.MEMBER_SIM_SEEDS ?? 100);
const faultMs = Number(process.env.MEMBER_SIM_FAULT_MS ?? 2000);
const firstSeed = Number(process.env.MEMBER_SIM_FIRST_SEED ?? 1);
/** Replaying a seed that failed in mutation.test.ts: the same deliberate bug. */
const mutation = process.env.MEMBER_SIM_MUTATION as MemberSimMutation | undefined;
/** Seeds from FIVE_MEMBER_BASE up run five members; replaying a seed picks its configuration. */
const FIVE_MEMBER_BASE = 500_000;

function configOf(seed: number): MemberSimOptions {
  return { members: seed >= FIVE_MEMBER_BASE ? 5 : 3, faultMs, ...(mutation ? { mutation } : {}) };
}

function seedsFor(base: number, count: number): number[] {
  if (replaySeed !== null) return (replaySeed >= FIVE_MEMBER_BASE) === base >= FIVE_MEMBER_BASE ? [replaySeed] : [];
  return Array.from({ length: count }, (_, i) => base + firstSeed + i);
}

/** Snapshots that arrived during another's install, over every run of this file so far. */
let snapshotsDuringInstallSoFar = 0;

async function runAll(list: number[]): Promise<MemberSimResult[]> {
  const results: MemberSimResult[] = [];
  const started = performance.now();
  for (const seed of list) results.push(await runMemberSim(seed, configOf(seed)));
  const sum = (f: (r: MemberSimResult) => number): number => results.reduce((n, r) => n + f(r), 0);
  snapshotsDuringInstallSoFar += sum((r) => r.snapshotsDuringInstall);
  console.log(
    `member sim: ${results.length} seeds × ${faultMs} ms of faults in ${Math.round(performance.now() - started)} ms: ` +
      `${sum((r) => r.events)} events, ${sum((r) => r.acked)} writes acknowledged (${sum((r) => r.indeterminate)} unknown, ${sum((r) => r.lostAnswered)} answered "leader changed" and checked never applied, ${sum((r) => r.proposalsRetried)} proposed again after an attempt was known lost), ${sum((r) => r.reads)} reads (${sum((r) => r.readsOnLease)} ReadIndex requests answered on a lease), ${sum((r) => r.sentAtOnce)} messages sent outside turns, ${sum((r) => r.readAnswersOnArrival)} read answers taken on arrival, ` +
      `${sum((r) => r.pauses)} pauses, ${sum((r) => r.transfers)} transfers, ${sum((r) => r.crashes)} crashes (${sum((r) => r.leaderCrashes)} of a leader, ${sum((r) => r.crashesLosingUnsynced)} lost completed unsynced writes, ` +
      `${sum((r) => r.crashesDuringWrite)} cut a write), ${sum((r) => r.leaderTerms)} leader terms, ${sum((r) => r.snapshotsInstalled)} snapshots installed ` +
      `(${sum((r) => r.interruptedInstalls)} finished after a crash, ${sum((r) => r.snapshotsDuringInstall)} arrived during another's install)`,
  );
  return results;
}

describe('member simulation', () => {
  // The sims lane's generous timeout (vitest.config.ts): the runs are CPU-bound and run at nice 19.
  it('3 members: no acknowledged write lost, Raft safety, state machines agree', async () => {
    const results = await runAll(seedsFor(0, seeds));
    if (replaySeed !== null) return;
    // Some seeds are fault-heavy enough to acknowledge little; on the whole the load must go through.
    expect(results.reduce((n, r) => n + r.acked, 0)).toBeGreaterThan(50 * results.length);
    expect(results.reduce((n, r) => n + r.reads, 0)).toBeGreaterThan(results.length);
    // Lease reads must actually be taken, and the faults that end leases (pauses, transfers) happen.
    expect(results.reduce((n, r) => n + r.readsOnLease, 0)).toBeGreaterThan(results.length);
    // So must the paths that skip a turn: proposals and reads passed on at once, answers taken on arrival.
    expect(results.reduce((n, r) => n + r.sentAtOnce, 0)).toBeGreaterThan(results.length);
    expect(results.reduce((n, r) => n + r.readAnswersOnArrival, 0)).toBeGreaterThan(0);
    expect(results.reduce((n, r) => n + r.pauses, 0)).toBeGreaterThan(results.length);
    expect(results.reduce((n, r) => n + r.transfers, 0)).toBeGreaterThan(results.length);
    // The faults this suite exists for must actually happen.
    expect(results.reduce((n, r) => n + r.crashesLosingUnsynced, 0)).toBeGreaterThan(results.length / 20);
    expect(results.reduce((n, r) => n + r.crashesDuringWrite, 0)).toBeGreaterThan(results.length);
    expect(results.reduce((n, r) => n + r.snapshotsInstalled, 0)).toBeGreaterThan(results.length / 4);
    expect(results.reduce((n, r) => n + r.interruptedInstalls, 0)).toBeGreaterThan(0);
    // Leaderships must change under the faults. Not in every seed: a voter restarted with state sits out
    // an election timeout before voting (lease reads), and crashes come every 60 ms on average here.
    expect(results.filter((r) => r.leaderTerms >= 2).length).toBeGreaterThanOrEqual(0.9 * results.length);
  });

  it('5 members', async () => {
    const results = await runAll(seedsFor(FIVE_MEMBER_BASE, Math.ceil(seeds / 4)));
    if (replaySeed !== null) return;
    expect(results.reduce((n, r) => n + r.acked, 0)).toBeGreaterThan(50 * results.length);
    // The race of seed 227 (member-sim.ts) is rare: a run or two in a hundred seeds of either size
    // meets it, so it is counted over both tests (this one runs second).
    expect(snapshotsDuringInstallSoFar).toBeGreaterThan(0);
  });

  it('replays a seed exactly', async () => {
    const seed = replaySeed ?? 4242;
    const a = await runMemberSim(seed, configOf(seed));
    const b = await runMemberSim(seed, configOf(seed));
    expect(b).toEqual(a);
    expect(a.events).toBeGreaterThan(1000);
    expect((await runMemberSim(seed + 1, configOf(seed + 1))).traceHash).not.toBe(a.traceHash);
  });
});

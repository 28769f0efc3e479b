import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Rng } from '../raft/rng.ts';
import { type Move, type MoveStep, type Replica, type ShardMembership, nextStep, planMoves } from './moves.ts';
import type { MemberId, ShardPlacement } from './types.ts';

const r = (replicaId: number, member: MemberId): Replica => ({ replicaId, member });
const shardOf = (shard: number, voters: Replica[], leader: number | null = voters[0]?.replicaId ?? null, learners: Replica[] = []): ShardMembership => ({ shard, voters, learners, leader });
const want = (shard: number, replicas: MemberId[], leader: MemberId | null = null): ShardPlacement => ({ shard, replicas, leader });
const NO_PROGRESS = { learnerCaughtUp: false, sourceDataDeleted: false };

describe('planMoves', () => {
  it('pairs a removal with an addition and allocates a fresh replica id that skips member ids', () => {
    const plan = planMoves({
      observed: [shardOf(0, [r(10, 1), r(11, 2), r(12, 3)])],
      desired: [want(0, [1, 2, 4])],
      inProgress: [],
      maxConcurrentMoves: 4,
      nextReplicaId: 13,
      memberIds: [1, 2, 3, 4, 13, 14],
    });
    expect(plan.start).toEqual([{ shard: 0, source: r(12, 3), target: r(15, 4) }]);
    expect(plan.nextReplicaId).toBe(16);
    expect(plan.deferred).toBe(0);
  });

  it('limits moves in flight, one per shard, each live member in at most one move', () => {
    const observed = [0, 1, 2, 3].map((s) => shardOf(s, [r(100 + s * 3, 1), r(101 + s * 3, 2), r(102 + s * 3, 3)]));
    const desired = [want(0, [1, 2, 4]), want(1, [1, 2, 4]), want(2, [1, 5, 6]), want(3, [1, 2, 7])];
    const plan = planMoves({ observed, desired, inProgress: [], maxConcurrentMoves: 3, nextReplicaId: 1000, memberIds: [1, 2, 3, 4, 5, 6, 7] });
    // shard 0: 3→4 starts; shard 1: 3 and 4 busy; shard 2: 2→5 starts (its 3→6 waits: one move per shard); shard 3: 3 busy
    expect(plan.start.map((m) => [m.shard, m.source?.member, m.target?.member])).toEqual([
      [0, 3, 4],
      [2, 2, 5],
    ]);
    expect(plan.deferred).toBe(3);
    const capped = planMoves({ observed, desired, inProgress: [], maxConcurrentMoves: 1, nextReplicaId: 1000, memberIds: [] });
    expect(capped.start).toHaveLength(1);
  });

  it('skips shards with a move in flight and counts in-flight moves against the limit', () => {
    const observed = [shardOf(0, [r(10, 1), r(11, 2), r(12, 3)]), shardOf(1, [r(20, 1), r(21, 2), r(22, 3)])];
    const inProgress: Move[] = [{ shard: 0, source: r(12, 3), target: r(30, 4) }];
    const plan = planMoves({ observed, desired: [want(0, [1, 2, 4]), want(1, [1, 2, 5])], inProgress, maxConcurrentMoves: 2, nextReplicaId: 31, memberIds: [] });
    expect(plan.start).toEqual([]); // shard 1 would use member 3, busy as the source of shard 0's move
    expect(plan.deferred).toBe(1);
  });

  it('replaces replicas on dead members first, and a dead member is never busy', () => {
    const observed = [shardOf(0, [r(10, 1), r(11, 2), r(12, 3)]), shardOf(1, [r(20, 1), r(21, 2), r(22, 9)])];
    const plan = planMoves({
      observed,
      desired: [want(0, [1, 2, 4]), want(1, [1, 2, 4])],
      inProgress: [{ shard: 7, source: r(70, 9), target: r(71, 5) }],
      maxConcurrentMoves: 3,
      nextReplicaId: 100,
      memberIds: [],
      deadMembers: [9],
    });
    expect(plan.start.map((m) => m.shard)).toEqual([1]); // shard 1 replaces dead member 9; shard 0 then finds 4 busy
  });

  it('pure additions and removals when R changes', () => {
    const grow = planMoves({ observed: [shardOf(0, [r(10, 1), r(11, 2), r(12, 3)])], desired: [want(0, [1, 2, 3, 4, 5])], inProgress: [], maxConcurrentMoves: 5, nextReplicaId: 20, memberIds: [] });
    expect(grow.start).toEqual([{ shard: 0, source: null, target: r(20, 4) }]);
    const shrink = planMoves({ observed: [shardOf(0, [r(10, 1), r(11, 2), r(12, 3), r(13, 4), r(14, 5)])], desired: [want(0, [1, 2, 3])], inProgress: [], maxConcurrentMoves: 5, nextReplicaId: 20, memberIds: [] });
    expect(shrink.start).toEqual([{ shard: 0, source: r(13, 4), target: null }]);
  });

  it('finishes a stray learner on a wanted member instead of adding a second replica there', () => {
    const plan = planMoves({ observed: [shardOf(0, [r(10, 1), r(11, 2), r(12, 3)], 10, [r(40, 4)])], desired: [want(0, [1, 2, 4])], inProgress: [], maxConcurrentMoves: 5, nextReplicaId: 50, memberIds: [] });
    expect(plan.start).toEqual([{ shard: 0, source: r(12, 3), target: r(40, 4) }]);
    expect(plan.nextReplicaId).toBe(50);
  });

  it('proposes leadership transfers towards the preferred leader for shards without moves', () => {
    const plan = planMoves({ observed: [shardOf(0, [r(10, 1), r(11, 2), r(12, 3)], 10), shardOf(1, [r(20, 1), r(21, 2), r(22, 3)], 20)], desired: [want(0, [1, 2, 3], 2), want(1, [1, 2, 4], 2)], inProgress: [], maxConcurrentMoves: 5, nextReplicaId: 50, memberIds: [] });
    expect(plan.leaderTransfers).toEqual([{ shard: 0, to: 11 }]);
  });

  it('does not depend on input order', () => {
    const observed = [0, 1, 2, 3].map((s) => shardOf(s, [r(100 + s * 3, 1), r(101 + s * 3, 2), r(102 + s * 3, 3)]));
    const desired = [want(0, [1, 2, 4]), want(1, [1, 5, 4]), want(2, [1, 5, 6]), want(3, [7, 2, 6])];
    const a = planMoves({ observed, desired, inProgress: [], maxConcurrentMoves: 3, nextReplicaId: 1000, memberIds: [] });
    const b = planMoves({ observed: [...observed].reverse(), desired: [...desired].reverse(), inProgress: [], maxConcurrentMoves: 3, nextReplicaId: 1000, memberIds: [] });
    expect(b).toEqual(a);
  });

  it('refuses a non-positive concurrency limit or replica counter', () => {
    expect(() => planMoves({ observed: [], desired: [], inProgress: [], maxConcurrentMoves: 0, nextReplicaId: 1, memberIds: [] })).toThrow(/maxConcurrentMoves/);
    expect(() => planMoves({ observed: [], desired: [], inProgress: [], maxConcurrentMoves: 1, nextReplicaId: 0, memberIds: [] })).toThrow(/nextReplicaId/);
  });
});

describe('nextStep', () => {
  it('walks add learner → wait → promote → transfer leadership → remove → delete data → done', () => {
    const move: Move = { shard: 0, source: r(10, 1), target: r(20, 4) };
    const steps: MoveStep['kind'][] = [];
    let s = shardOf(0, [r(10, 1), r(11, 2), r(12, 3)], 10);
    let progress = NO_PROGRESS;
    for (let i = 0; i < 20; i++) {
      const step = nextStep(move, s, progress, 3);
      steps.push(step.kind);
      if (step.kind === 'done') break;
      if (step.kind === 'add-learner') s = { ...s, learners: [step.replica] };
      if (step.kind === 'wait') progress = { ...progress, learnerCaughtUp: true };
      if (step.kind === 'promote') s = { ...s, voters: [...s.voters, ...s.learners], learners: [] };
      if (step.kind === 'transfer-leader') {
        expect(step.to).toBe(20); // the new replica takes over
        s = { ...s, leader: step.to };
      }
      if (step.kind === 'remove') s = { ...s, voters: s.voters.filter((x) => x.replicaId !== step.replicaId) };
      if (step.kind === 'delete-data') progress = { ...progress, sourceDataDeleted: true };
      expect(s.voters.length).toBeGreaterThanOrEqual(3);
    }
    expect(steps).toEqual(['add-learner', 'wait', 'promote', 'transfer-leader', 'remove', 'delete-data', 'done']);
  });

  it('never removes a voter when that would leave fewer than R', () => {
    const move: Move = { shard: 0, source: r(10, 1), target: null };
    expect(nextStep(move, shardOf(0, [r(10, 1), r(11, 2), r(12, 3)], 11), NO_PROGRESS, 3)).toEqual({ kind: 'wait', shard: 0, reason: 'removing 10 would leave fewer than 3 voters' });
    expect(nextStep(move, shardOf(0, [r(10, 1), r(11, 2), r(12, 3), r(13, 4)], 11), NO_PROGRESS, 3)).toEqual({ kind: 'remove', shard: 0, replicaId: 10 });
  });
});

describe('moves, simulated end to end', () => {
  it('converge to the desired placement; never fewer than R voters; ids never reused; limits hold', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 1, max: 4 }), (seed, maxConcurrentMoves) => {
        simulate(new Rng(seed), maxConcurrentMoves);
      }),
      { numRuns: Number(process.env.PLACEMENT_RUNS ?? 80), seed: 99 },
    );
  });
});

/** Random shards on members 1..8, a random desired placement, an executor taking steps in random order. */
function simulate(rng: Rng, maxConcurrentMoves: number): void {
  const memberIds = [1, 2, 3, 4, 5, 6, 7, 8];
  const pick = (n: number): MemberId[] => {
    const xs = [...memberIds];
    for (let i = xs.length - 1; i > 0; i--) {
      const j = rng.nextInt(i + 1);
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs.slice(0, n);
  };
  let nextId = 1;
  const usedIds = new Set<number>();
  const fresh = (): number => {
    while (memberIds.includes(nextId)) nextId++;
    usedIds.add(nextId);
    return nextId++;
  };
  const shards = new Map<number, ShardMembership>();
  const desired: ShardPlacement[] = [];
  const floor = new Map<number, number>();
  for (let s = 0; s < 6; s++) {
    const voters = pick(3).map((m) => r(fresh(), m));
    shards.set(s, shardOf(s, voters, voters[rng.nextInt(3)].replicaId));
    const size = rng.chance(0.2) ? 5 : 3;
    desired.push(want(s, pick(size).sort((a, b) => a - b), null));
    floor.set(s, Math.min(3, size));
  }
  let inProgress: Move[] = [];
  const progress = new Map<number, { learnerCaughtUp: boolean; sourceDataDeleted: boolean }>();
  for (let round = 0; round < 500; round++) {
    const plan = planMoves({ observed: [...shards.values()], desired, inProgress, maxConcurrentMoves, nextReplicaId: nextId, memberIds });
    for (const m of plan.start) if (m.target) {
      expect(usedIds.has(m.target.replicaId)).toBe(false); // never reused
      expect(memberIds).not.toContain(m.target.replicaId);
      usedIds.add(m.target.replicaId);
    }
    nextId = plan.nextReplicaId;
    inProgress = [...inProgress, ...plan.start];
    expect(inProgress.length).toBeLessThanOrEqual(maxConcurrentMoves);
    const involved = inProgress.flatMap((m) => [m.source?.member, m.target?.member]).filter((m) => m !== undefined);
    expect(new Set(involved).size).toBe(involved.length);
    if (inProgress.length === 0) break;
    const move = inProgress[rng.nextInt(inProgress.length)];
    const p = progress.get(move.shard) ?? { learnerCaughtUp: false, sourceDataDeleted: false };
    const before = shards.get(move.shard)!;
    const step = nextStep(move, before, p, desired[move.shard].replicas.length);
    const after = applyStep(before, step);
    if (step.kind === 'wait' && rng.chance(0.5)) progress.set(move.shard, { ...p, learnerCaughtUp: true });
    if (step.kind === 'delete-data') progress.set(move.shard, { ...p, sourceDataDeleted: true });
    if (step.kind === 'done') {
      inProgress = inProgress.filter((m) => m !== move);
      progress.delete(move.shard);
    }
    shards.set(move.shard, after);
    expect(after.voters.length).toBeGreaterThanOrEqual(floor.get(move.shard)!);
    expect(after.leader === null || after.voters.some((v) => v.replicaId === after.leader)).toBe(true);
  }
  expect(inProgress).toEqual([]);
  for (const d of desired) {
    const s = shards.get(d.shard)!;
    expect(s.voters.map((v) => v.member).sort((a, b) => a - b)).toEqual(d.replicas);
    expect(s.learners).toEqual([]);
  }
}

function applyStep(s: ShardMembership, step: MoveStep): ShardMembership {
  switch (step.kind) {
    case 'add-learner':
      return { ...s, learners: [...s.learners, step.replica] };
    case 'promote':
      return { ...s, voters: [...s.voters, ...s.learners.filter((l) => l.replicaId === step.replicaId)], learners: s.learners.filter((l) => l.replicaId !== step.replicaId) };
    case 'transfer-leader':
      return { ...s, leader: step.to };
    case 'remove':
      return { ...s, voters: s.voters.filter((v) => v.replicaId !== step.replicaId), learners: s.learners.filter((l) => l.replicaId !== step.replicaId) };
    default:
      return s;
  }
}

// planPlacementChange driven to its fixed point the way a cluster drives it: the placer writes, each
// shard's leader moves its group and reports (here: at once, in a random order of shards), repeat. Checks
// the limit on moving shards, that it converges, the balance and the number of replicas moved.
import { describe, expect, it } from 'vitest';
import { DeadMemberClock, movesAllowed, planPlacementChange, shardSettled, type PlacementState } from './placer.ts';
import type { ShardConf } from './metadata-state-machine.ts';
import { Rng } from '../raft/rng.ts';

class World {
  members: Array<{ id: number; zone: string }>;
  draining = new Set<number>();
  dead = new Set<number>();
  desired = new Map<number, readonly number[]>();
  leaders = new Map<number, number>();
  observed = new Map<number, ShardConf>();
  replicasMoved = 0;

  readonly shardCount: number;
  readonly replicationFactor: number;

  constructor(memberIds: number[], shardCount: number, replicationFactor = 3) {
    this.shardCount = shardCount;
    this.replicationFactor = replicationFactor;
    this.members = memberIds.map((id) => ({ id, zone: '' }));
    // A fresh cluster: every shard on every bootstrap member.
    for (let s = 0; s < shardCount; s++) this.observed.set(s, { voters: [...memberIds], learners: [] });
  }

  state(): PlacementState {
    return {
      members: this.members,
      draining: this.draining,
      dead: this.dead,
      shardCount: this.shardCount,
      replicationFactor: this.replicationFactor,
      desired: (s) => this.desired.get(s) ?? null,
      observed: (s) => this.observed.get(s) ?? null,
      preferredLeader: (s) => this.leaders.get(s) ?? null,
    };
  }

  /** Rounds until nothing changes; returns the largest number of shards ever moving at once. */
  converge(rng: Rng, limit: number): number {
    let maxMoving = 0;
    for (let round = 0; round < 500; round++) {
      const change = planPlacementChange(this.state());
      if (change !== null) for (const s of change.shards) this.desired.set(s.shard, s.replicas);
      if (change !== null) for (const l of change.leaders) this.leaders.set(l.shard, l.leader);
      const unsettled = [...Array(this.shardCount).keys()].filter((s) => !shardSettled(this.desired.get(s) ?? null, this.observed.get(s) ?? null));
      const allowed = movesAllowed(this.shardCount, (s) => this.desired.get(s) ?? null, (s) => this.observed.get(s) ?? null, limit);
      maxMoving = Math.max(maxMoving, allowed.size);
      if (change === null && unsettled.length === 0) return maxMoving;
      // Some of the shards allowed to move finish this round (their leaders are at different speeds).
      for (const s of allowed) {
        if (rng.chance(0.5)) continue;
        const before = new Set(this.observed.get(s)!.voters);
        const after = this.desired.get(s)!;
        this.replicasMoved += after.filter((id) => !before.has(id)).length;
        this.observed.set(s, { voters: [...after], learners: [] });
      }
    }
    throw new Error('placement did not converge in 500 rounds');
  }

  loads(): Map<number, number> {
    const out = new Map(this.members.map((m) => [m.id, 0]));
    for (const conf of this.observed.values()) for (const id of conf.voters) out.set(id, (out.get(id) ?? 0) + 1);
    return out;
  }
}

const maxOverMean = (loads: Map<number, number>): number => {
  const v = [...loads.values()];
  return Math.max(...v) / (v.reduce((a, b) => a + b, 0) / v.length);
};

describe('planPlacementChange', () => {
  it('on three members with R = 3 writes where every shard already is: no move', () => {
    const w = new World([1, 2, 3], 16);
    w.converge(new Rng(1), 4);
    expect(w.replicasMoved).toBe(0);
    for (let s = 0; s < 16; s++) expect(w.desired.get(s)).toEqual([1, 2, 3]);
    expect(planPlacementChange(w.state())).toBeNull();
  });

  it('does not move a shard its leader has not reported yet', () => {
    const w = new World([1, 2, 3, 4, 5], 4);
    w.observed.delete(2);
    const change = planPlacementChange(w.state())!;
    expect(change.shards.map((s) => s.shard)).not.toContain(2);
  });

  for (const seed of [1, 2, 3, 4, 5]) {
    it(`seed ${seed}: a member leaves and two join — balanced within 1.10, moves ≤ 1.1× the ideal, never more than the limit moving`, () => {
      const rng = new Rng(seed);
      const shards = 16 + rng.nextInt(48);
      const limit = 1 + rng.nextInt(4);
      const w = new World([1, 2, 3, 4], shards);
      w.converge(rng, limit);
      expect(maxOverMean(w.loads())).toBeLessThanOrEqual(1.1);
      // Remove member 4 (its replicas must go elsewhere), then add 5 and 6.
      w.members = w.members.filter((m) => m.id !== 4);
      const heldBy4 = [...w.observed.values()].filter((c) => c.voters.includes(4)).length;
      for (const [s, conf] of w.observed) w.observed.set(s, { voters: conf.voters.filter((id) => id !== 4), learners: [] });
      w.replicasMoved = 0;
      expect(w.converge(rng, limit)).toBeLessThanOrEqual(limit);
      expect(w.replicasMoved).toBe(heldBy4);
      w.members.push({ id: 5, zone: '' }, { id: 6, zone: '' });
      w.replicasMoved = 0;
      expect(w.converge(rng, limit)).toBeLessThanOrEqual(limit);
      const loads = w.loads();
      const ratio = maxOverMean(loads);
      const ideal = Math.ceil((shards * 3 * 2) / 5);
      const led = new Map(w.members.map((m) => [m.id, 0]));
      for (const [s, leader] of w.leaders) {
        expect(w.desired.get(s)).toContain(leader);
        led.set(leader, (led.get(leader) ?? 0) + 1);
      }
      const leaderRatio = maxOverMean(led);
      console.log(`seed ${seed}: ${shards} shards, limit ${limit}: replicas/member max/mean ${ratio.toFixed(3)}, leaders ${leaderRatio.toFixed(3)}, moves ${w.replicasMoved} / ideal ${ideal}`);
      // Leaders: 1.20 where integers allow it (the integer optimum otherwise: ceil(mean) / mean).
      expect(leaderRatio).toBeLessThanOrEqual(Math.max(1.2, Math.ceil(shards / 5) / (shards / 5)) + 1e-9);
      expect(ratio).toBeLessThanOrEqual(1.1);
      expect(w.replicasMoved).toBeLessThanOrEqual(Math.ceil(1.1 * ideal));
      for (const conf of w.observed.values()) expect(new Set(conf.voters).size).toBe(3);
    });
  }

  it('a draining member ends with no replica; marked up again it gets its share back', () => {
    const rng = new Rng(9);
    const w = new World([1, 2, 3, 4, 5], 32);
    w.converge(rng, 3);
    w.draining.add(2);
    w.converge(rng, 3);
    expect(w.loads().get(2)).toBe(0);
    for (const conf of w.observed.values()) expect(conf.voters).toHaveLength(3);
    w.draining.clear();
    w.converge(rng, 3);
    expect(w.loads().get(2)).toBeGreaterThan(0);
    expect(maxOverMean(w.loads())).toBeLessThanOrEqual(1.1);
  });

  it('everything draining: nothing written (nowhere to go)', () => {
    const w = new World([1, 2, 3], 4);
    for (const id of [1, 2, 3]) w.draining.add(id);
    expect(planPlacementChange(w.state())).toBeNull();
  });

  it('moves the shards short of a replica first, then by id, at most the limit', () => {
    const desired = new Map<number, number[]>([[0, [1, 2, 3]], [1, [1, 2, 4]], [2, [1, 2, 4]], [3, [2, 3, 4]], [4, [1, 2, 3]]]);
    const observed = new Map([[0, { voters: [1, 2, 3], learners: [] }], [1, { voters: [1, 2, 3], learners: [] }], [2, { voters: [1, 2], learners: [] }], [3, { voters: [1, 2, 3], learners: [4] }], [4, { voters: [1, 2, 3], learners: [] }]]);
    expect([...movesAllowed(5, (s) => desired.get(s) ?? null, (s) => observed.get(s) ?? null, 2)]).toEqual([2, 1]);
    expect([...movesAllowed(5, (s) => desired.get(s) ?? null, (s) => observed.get(s) ?? null, 9)].sort()).toEqual([1, 2, 3]);
  });

  it('a dead member ends with no replica; every shard keeps 3 replicas on live members; back, it gets its share again', () => {
    const rng = new Rng(11);
    const w = new World([1, 2, 3, 4, 5], 24);
    w.converge(rng, 4);
    const held = w.loads().get(3)!;
    w.dead.add(3);
    w.replicasMoved = 0;
    w.converge(rng, 4);
    expect(w.loads().get(3)).toBe(0);
    expect(w.replicasMoved).toBe(held);
    for (const conf of w.observed.values()) expect(conf.voters.filter((id) => id !== 3)).toHaveLength(3);
    w.dead.clear();
    w.converge(rng, 4);
    expect(w.loads().get(3)).toBeGreaterThan(0);
    expect(maxOverMean(w.loads())).toBeLessThanOrEqual(1.1);
  });
});

describe('DeadMemberClock', () => {
  it('declares a member dead only after a whole grace period unheard by this leader; a new leader starts afresh', () => {
    const clock = new DeadMemberClock(1_000);
    expect(clock.observe([1, 2, 3], [1, 2, 3], 0)).toEqual(new Set());
    expect(clock.observe([1, 2, 3], [1, 2], 900)).toEqual(new Set());
    expect(clock.observe([1, 2, 3], [1, 2], 1_001)).toEqual(new Set([3]));
    expect(clock.observe([1, 2, 3], [1, 2, 3], 1_100)).toEqual(new Set()); // heard again
    // A member first seen while already silent gets the whole grace period too.
    expect(clock.observe([1, 2, 3, 4], [1, 2, 3], 1_200)).toEqual(new Set());
    expect(clock.observe([1, 2, 3, 4], [1, 2, 3], 2_100)).toEqual(new Set());
    expect(clock.observe([1, 2, 3, 4], [1, 2, 3], 2_201)).toEqual(new Set([4]));
    clock.reset();
    expect(clock.observe([1, 2, 3, 4], [1, 2, 3], 2_300)).toEqual(new Set());
  });
});

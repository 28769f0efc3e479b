import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { replicaShares, zoneSpreadFor } from './fair-share.ts';
import { place } from './ring.ts';
import type { MemberState, PlacementMember, PlacementResult } from './types.ts';

const member = (id: number, zone: string, state: MemberState = 'up', weight = 1): PlacementMember => ({ id, zone, weight, state });
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function loads(result: PlacementResult): Map<number, number> {
  const out = new Map<number, number>();
  for (const s of result.shards) for (const m of s.replicas) out.set(m, (out.get(m) ?? 0) + 1);
  return out;
}

describe('place(): small cases', () => {
  it('16 shards on 3 members: 3 voters each on distinct members, leaders spread evenly', () => {
    const r = place({ members: [member(1, 'a'), member(2, 'b'), member(3, 'c')], shards: range(16) });
    expect(r.problems).toEqual([]);
    for (const s of r.shards) expect(s.replicas).toEqual([1, 2, 3]);
    const leaders = new Map<number, number>();
    for (const s of r.shards) leaders.set(s.leader!, (leaders.get(s.leader!) ?? 0) + 1);
    expect([...leaders.values()].sort()).toEqual([5, 5, 6]);
  });

  it('fewer up members than R: every shard on all of them', () => {
    const r = place({ members: [member(1, 'a'), member(2, 'a'), member(3, 'b', 'dead')], shards: range(4), replicationFactor: 3 });
    expect(r.effectiveReplicationFactor).toBe(2);
    for (const s of r.shards) expect(s.replicas).toEqual([1, 2]);
    expect(r.problems).toEqual([]);
  });

  it('no up member: shards stay unplaced and the result says so', () => {
    const r = place({ members: [member(1, 'a', 'draining')], shards: range(2) });
    expect(r.shards).toEqual([
      { shard: 0, replicas: [], leader: null },
      { shard: 1, replicas: [], leader: null },
    ]);
    expect(r.problems).toEqual(['no member is up: every shard is unplaced']);
  });

  it('draining and dead members lose their replicas; nothing else moves', () => {
    const members = range(6).map((i) => member(i + 1, `z${i % 3}`));
    const before = place({ members, shards: range(64) });
    const drained = members.map((m) => (m.id === 2 ? { ...m, state: 'draining' as const } : m.id === 4 ? { ...m, state: 'dead' as const } : m));
    const after = place({ members: drained, shards: range(64), current: before.shards });
    expect(loads(after).get(2)).toBeUndefined();
    expect(loads(after).get(4)).toBeUndefined();
    for (const s of after.shards) expect(s.leader === 2 || s.leader === 4).toBe(false);
    for (let i = 0; i < 64; i++) {
      const kept = before.shards[i].replicas.filter((m) => m !== 2 && m !== 4);
      for (const m of kept) expect(after.shards[i].replicas).toContain(m); // survivors stay put
    }
  });

  it('zones too unbalanced for the balance bound: zone spread wins, loads follow the zone-capped shares', () => {
    // zone a has one member; with 3 zones and R = 3 every shard needs a replica in zone a
    const members = [member(1, 'a'), ...range(5).map((i) => member(10 + i, 'b')), ...range(5).map((i) => member(20 + i, 'c'))];
    const r = place({ members, shards: range(100) });
    expect(r.zoneSpread).toBe(1);
    expect(loads(r).get(1)).toBe(100);
    for (const s of r.shards) expect(new Set(s.replicas.map((m) => members.find((x) => x.id === m)!.zone)).size).toBe(3);
    expect(r.problems).toEqual([]);
    const { share } = replicaShares(members, 100, 3);
    expect(share.get(1)).toBeCloseTo(100);
    expect(share.get(10)).toBeCloseTo(20);
  });

  it('fewer zones than R: spread as evenly as the zones allow', () => {
    const members = [member(1, 'a'), member(2, 'a'), member(3, 'a'), member(4, 'b'), member(5, 'b')];
    const r = place({ members, shards: range(40) });
    expect(r.zoneSpread).toBe(2);
    for (const s of r.shards) {
      const inA = s.replicas.filter((m) => m <= 3).length;
      expect(inA === 1 || inA === 2).toBe(true);
    }
    expect(zoneSpreadFor([1, 9], 5)).toBe(4); // one zone of 1 member cannot take its even share
    expect(zoneSpreadFor([3, 3, 3], 3)).toBe(1);
  });

  it('weights: a member of weight 2 holds about twice the replicas', () => {
    // one zone: weights alone decide (with 3 zones and R = 3 each zone would hold exactly one copy of everything)
    const members = [member(1, 'a', 'up', 2), member(2, 'a'), member(3, 'a'), member(4, 'a'), member(5, 'a', 'up', 2)];
    const r = place({ members, shards: range(256) });
    const l = loads(r);
    expect(r.problems).toEqual([]);
    const share1 = (2 / 7) * 768; // 219.4
    expect(Math.abs(l.get(1)! - share1)).toBeLessThanOrEqual(0.05 * share1 + 1);
    expect(Math.abs(l.get(1)! - 2 * l.get(2)!)).toBeLessThanOrEqual(12);
  });

  it('lowering R trims replicas without adding any; raising it only adds', () => {
    const members = range(7).map((i) => member(i + 1, `z${i % 5}`));
    const five = place({ members, shards: range(32), replicationFactor: 5 });
    const three = place({ members, shards: range(32), replicationFactor: 3, current: five.shards });
    for (let i = 0; i < 32; i++) for (const m of three.shards[i].replicas) expect(five.shards[i].replicas).toContain(m);
    const backToFive = place({ members, shards: range(32), replicationFactor: 5, current: three.shards });
    for (let i = 0; i < 32; i++) for (const m of three.shards[i].replicas) expect(backToFive.shards[i].replicas).toContain(m);
  });

  it('ignores unknown members and shards in the current placement', () => {
    const members = [member(1, 'a'), member(2, 'b'), member(3, 'c')];
    const r = place({ members, shards: [0], current: [{ shard: 0, replicas: [1, 99, 2], leader: 99 }, { shard: 7, replicas: [1], leader: 1 }] });
    expect(r.shards).toEqual([{ shard: 0, replicas: [1, 2, 3], leader: expect.any(Number) }]);
  });

  it('keeps the current leader when it is within its share', () => {
    const members = [member(1, 'a'), member(2, 'b'), member(3, 'c')];
    const first = place({ members, shards: range(9) });
    const rotated = first.shards.map((s) => ({ ...s, leader: s.replicas[(s.replicas.indexOf(s.leader!) + 1) % 3] }));
    expect(place({ members, shards: range(9), current: rotated }).shards).toEqual(rotated);
  });

  it('refuses malformed input with clear errors', () => {
    expect(() => place({ members: [member(1, 'a'), member(1, 'b')], shards: [0] })).toThrow(/member 1 is listed twice/);
    expect(() => place({ members: [member(1, 'a', 'up', 0)], shards: [0] })).toThrow(/weight must be a positive number/);
    expect(() => place({ members: [member(1, 'a')], shards: [0, 0] })).toThrow(/shard 0 is listed twice/);
    expect(() => place({ members: [member(1, 'a')], shards: [0], replicationFactor: 0 })).toThrow(/replication factor/);
    expect(() => place({ members: [member(-1, 'a')], shards: [0] })).toThrow(/member id/);
  });
});

describe('place(): weighted clusters', () => {
  it('stay within 1.10 × every member’s weighted fair share (or its ceiling)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ zone: fc.integer({ min: 0, max: 3 }), weight: fc.integer({ min: 1, max: 4 }) }), { minLength: 3, maxLength: 12 }),
        fc.integer({ min: 64, max: 512 }),
        (spec, shardCount) => {
          const members = spec.map((s, i) => member(i + 1, `z${s.zone}`, 'up', s.weight));
          const r = place({ members, shards: range(shardCount) });
          expect(r.problems).toEqual([]);
          const { share } = replicaShares(members, shardCount, r.effectiveReplicationFactor);
          const l = loads(r);
          for (const m of members) {
            const s = share.get(m.id)!;
            expect(l.get(m.id) ?? 0).toBeLessThanOrEqual(Math.max(Math.ceil(s - 1e-7), Math.floor(1.1 * s + 1e-7)));
          }
        },
      ),
      { numRuns: 25, seed: 7 },
    );
  });
});

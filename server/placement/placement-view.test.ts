import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SLOT_COUNT, SlotMap, slotOf } from '../routing/slots.ts';
import { buildPlacementView, keyLocationView, loadsPerMember, locateKey, memberHex, type ObservedMember, type PlacementObservation } from './placement-view.ts';
import { formatKeyLocation, formatPlacementTable } from './placement-table.ts';
import { validateZoneName } from './zone-name.ts';

// Replay a failure with PLACEMENT_VIEW_SEED=<the seed fast-check printed>.
const SEED = Number(process.env.PLACEMENT_VIEW_SEED ?? 20261203);
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

const member = (id: number, zone = ''): ObservedMember => ({
  id,
  name: `m-${id}`,
  zone,
  clientUrls: [`http://127.0.0.1:${id % 60000}`],
  peerUrls: [`http://127.0.0.1:${(id + 1) % 60000}`],
});

const todaysCluster = (): PlacementObservation => ({
  version: 0,
  slotMap: SlotMap.create(1),
  members: [member(0x2b1d9f3e55a, 'b'), member(0xa4, 'a'), member(0x1f00, 'c')],
  shards: [{ shard: 0, voters: [0x1f00, 0xa4, 0x2b1d9f3e55a], learners: [], leader: 0x1f00, revision: 42 }],
  moves: { pending: 0, inProgress: 0, done: 0 },
});

describe('memberHex', () => {
  it('prints ids as etcdctl does: lowercase hex, no padding', () => {
    expect(memberHex(0xa4)).toBe('a4');
    expect(memberHex(0x1fe4c3a2b9d)).toBe('1fe4c3a2b9d');
    expect(memberHex(2 ** 53 - 1)).toBe('1fffffffffffff');
  });
  it.each([0, -1, 1.5, 2 ** 53])('refuses %p', (id) => expect(() => memberHex(id)).toThrow(RangeError));
});

describe('buildPlacementView', () => {
  it('shows one shard owning every slot on today\'s cluster, exactly in the brief\'s shape', () => {
    const view = buildPlacementView(todaysCluster());
    expect(view).toEqual({
      version: 0,
      members: [
        { id: 'a4', name: 'm-164', zone: 'a', clientURLs: ['http://127.0.0.1:164'], peerURLs: ['http://127.0.0.1:165'] },
        { id: '1f00', name: 'm-7936', zone: 'c', clientURLs: ['http://127.0.0.1:7936'], peerURLs: ['http://127.0.0.1:7937'] },
        { id: '2b1d9f3e55a', name: `m-${0x2b1d9f3e55a}`, zone: 'b', clientURLs: [`http://127.0.0.1:${0x2b1d9f3e55a % 60000}`], peerURLs: [`http://127.0.0.1:${(0x2b1d9f3e55a + 1) % 60000}`] },
      ],
      shards: [{ id: 0, slots: [0, SLOT_COUNT - 1], replicas: ['a4', '1f00', '2b1d9f3e55a'], learners: [], leader: '1f00', revision: 42 }],
      moves: { pending: 0, inProgress: 0, done: 0 },
    });
    // The exact key order of the brief's JSON, so a byte-level reader sees the documented shape.
    expect(Object.keys(view)).toEqual(['version', 'members', 'shards', 'moves']);
    expect(Object.keys(view.members[0])).toEqual(['id', 'name', 'zone', 'clientURLs', 'peerURLs']);
    expect(Object.keys(view.shards[0])).toEqual(['id', 'slots', 'replicas', 'learners', 'leader', 'revision']);
    expect(Object.keys(view.moves)).toEqual(['pending', 'inProgress', 'done']);
  });

  it('shows no leader as null and a learner apart from the voters', () => {
    const o = todaysCluster();
    const view = buildPlacementView({ ...o, shards: [{ ...o.shards[0], voters: [0xa4, 0x1f00], learners: [0x2b1d9f3e55a], leader: 0 }] });
    expect(view.shards[0]).toMatchObject({ replicas: ['a4', '1f00'], learners: ['2b1d9f3e55a'], leader: null });
  });

  it('refuses a shard with non-contiguous slot ranges rather than showing half of them', () => {
    const split = SlotMap.create(2).withSlotsAssigned(100, 199, 1);
    expect(() =>
      buildPlacementView({ ...todaysCluster(), slotMap: split, shards: [{ shard: 0, voters: [0xa4], learners: [], leader: 0, revision: 1 }] }),
    ).toThrow(/non-contiguous/);
  });

  it('for any slot map and observation: shards tile the slots, ids are etcdctl hex, output ignores input order', () => {
    const observation = fc
      .record({
        shardsLog2: fc.integer({ min: 0, max: 6 }),
        memberIds: fc.uniqueArray(fc.integer({ min: 1, max: 2 ** 53 - 1 }), { minLength: 1, maxLength: 9 }),
        revision: fc.nat(),
        pick: fc.array(fc.nat(), { minLength: 64, maxLength: 64 }),
        moves: fc.record({ pending: fc.nat(50), inProgress: fc.nat(5), done: fc.nat(1000) }),
        version: fc.nat(),
      })
      .map(({ shardsLog2, memberIds, revision, pick, moves, version }): PlacementObservation => {
        const shardCount = 2 ** shardsLog2;
        const shards = Array.from({ length: shardCount }, (_, shard) => {
          const voters = memberIds.filter((_, i) => (pick[shard] >> i) & 1);
          const learners = memberIds.filter((id) => !voters.includes(id) && (pick[shard] + id) % 3 === 0);
          const leader = voters.length > 0 && pick[shard] % 4 !== 0 ? voters[pick[shard] % voters.length] : 0;
          return { shard, voters, learners, leader, revision: revision + shard };
        });
        return { version, slotMap: SlotMap.create(shardCount), members: memberIds.map((id) => member(id)), shards, moves };
      });
    fc.assert(
      fc.property(observation, fc.boolean(), (o, reverse) => {
        const view = buildPlacementView(o);
        const shuffled = buildPlacementView({ ...o, members: [...o.members].reverse(), shards: reverse ? [...o.shards].reverse() : o.shards });
        expect(shuffled).toEqual(view);
        // Slot ranges tile 0..16383 in shard order.
        let next = 0;
        for (const s of view.shards) {
          expect(s.slots[0]).toBe(next);
          next = s.slots[1] + 1;
        }
        expect(next).toBe(SLOT_COUNT);
        const hexes = new Set(view.members.map((m) => m.id));
        for (const s of view.shards) {
          for (const id of [...s.replicas, ...s.learners, ...(s.leader ? [s.leader] : [])]) {
            expect(id).toMatch(/^[1-9a-f][0-9a-f]*$/);
            expect(hexes.has(id)).toBe(true);
          }
          expect(s.learners.filter((l) => s.replicas.includes(l))).toEqual([]);
          if (s.leader !== null) expect(s.replicas).toContain(s.leader);
        }
        // Gauges' loads: replicas sum to the voters, leaders to the shards with one.
        const loads = [...loadsPerMember(view).values()];
        expect(loads.reduce((a, l) => a + l.replicas, 0)).toBe(view.shards.reduce((a, s) => a + s.replicas.length, 0));
        expect(loads.reduce((a, l) => a + l.leaders, 0)).toBe(view.shards.filter((s) => s.leader !== null).length);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

describe('locateKey', () => {
  it('agrees with slots.ts and the slot map for any key, hash tags included', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.integer({ min: 0, max: 10 }), (key, shardsLog2) => {
        const map = SlotMap.create(2 ** shardsLog2);
        const loc = locateKey(map, key);
        expect(loc.slot).toBe(slotOf(key));
        expect(loc.shard).toBe(map.shardOfKey(key));
        expect(loc.shard).toBe(Math.floor((loc.slot * 2 ** shardsLog2) / SLOT_COUNT));
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('puts keys sharing a hash tag together and shows the key as text', () => {
    const map = SlotMap.create(16);
    const a = keyLocationView(map, enc('/app/{tenant-7}/cfg'));
    const b = keyLocationView(map, enc('/app/{tenant-7}/state'));
    expect(a.key).toBe('/app/{tenant-7}/cfg');
    expect([a.slot, a.shard]).toEqual([b.slot, b.shard]);
    expect(a.slot).toBe(slotOf(enc('tenant-7')));
  });
});

describe('formatPlacementTable', () => {
  it('prints shard, slots, replicas, learners, leader, revision and a moves line', () => {
    const text = formatPlacementTable(buildPlacementView(todaysCluster()));
    expect(text).toBe(
      [
        'SHARD  SLOTS    REPLICAS             LEARNERS  LEADER  REVISION',
        '0      0-16383  a4,1f00,2b1d9f3e55a  -         1f00    42',
        'moves: 0 pending, 0 in progress, 0 done (placement version 0)',
        '',
      ].join('\n'),
    );
    expect(formatKeyLocation({ key: 'foo', slot: 12182, shard: 0 })).toBe('key "foo": slot 12182, shard 0\n');
  });
});

describe('validateZoneName', () => {
  it.each(['', 'a', 'eu-west-1a', 'zone_1.b', 'x'.repeat(63)])('accepts %p', (z) => expect(() => validateZoneName(z)).not.toThrow());
  it.each(['-a', 'a-', 'a b', 'eu/west', 'x'.repeat(64), 'zöne'])('refuses %p', (z) => expect(() => validateZoneName(z)).toThrow(/--zone must be empty or a Kubernetes label value/));
});

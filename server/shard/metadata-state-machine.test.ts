import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Entry } from '../raft/types.ts';
import { encodeMetadataEntry, type MetadataEntry } from './metadata-entry-codec.ts';
import { MetadataStateMachine, type MetadataApplied } from './metadata-state-machine.ts';

const BOOT = [1, 2, 3].map((id) => ({ id, peerUrls: [`http://m${id}:2380`], isLearner: false }));

function entry(index: number, e: MetadataEntry, term = 1): Entry {
  return { index, term, type: 'normal', data: encodeMetadataEntry(e) };
}

/** The records a member would hold on disk after applying: every drained op, in order. */
function persisted(sm: MetadataStateMachine, disk = new Map<string, Buffer>()): Map<string, Buffer> {
  for (const op of sm.drainPersistOps()) {
    if (op.value === null) disk.delete(op.key.toString('latin1'));
    else disk.set(op.key.toString('latin1'), op.value);
  }
  return disk;
}

function records(disk: Map<string, Buffer>): Array<[Buffer, Buffer]> {
  return [...disk.keys()].sort().map((k) => [Buffer.from(k, 'latin1'), disk.get(k)!]);
}

describe('MetadataStateMachine', () => {
  it('keeps the highest high-water mark with its proposing term, and persists it', () => {
    const sm = new MetadataStateMachine([], BOOT);
    sm.apply(entry(1, { kind: 'high-water', highWater: 100, proposedTerm: 1 }));
    sm.apply(entry(2, { kind: 'high-water', highWater: 50, proposedTerm: 2 }, 2)); // lower: counted, changes nothing
    expect([sm.highWater, sm.highWaterTerm]).toEqual([100, 1]);
    const again = new MetadataStateMachine(records(persisted(sm)), BOOT);
    expect([again.highWater, again.highWaterTerm]).toEqual([100, 1]);
    expect(again.members().map((m) => m.id)).toEqual(['1', '2', '3']);
  });

  it('fixes the shard count once; a different one is refused alike on every member', () => {
    const a = new MetadataStateMachine([], BOOT);
    const b = new MetadataStateMachine([], BOOT);
    const seen: MetadataApplied[][] = [[], []];
    a.onApplied((x) => seen[0].push(x));
    b.onApplied((x) => seen[1].push(x));
    const log = [
      entry(1, { kind: 'bootstrap', shardCount: 12, slotMapVersion: 1 }), // not a power of two
      entry(2, { kind: 'bootstrap', shardCount: 16, slotMapVersion: 1 }),
      entry(3, { kind: 'bootstrap', shardCount: 16, slotMapVersion: 1 }), // a retried bootstrap: no change
      entry(4, { kind: 'bootstrap', shardCount: 4, slotMapVersion: 1 }),
      entry(5, { kind: 'bootstrap', shardCount: 16, slotMapVersion: 2 }),
    ];
    for (const e of log) a.apply(e);
    // b restarts from its disk half-way: the decision depends on replicated state only
    for (const e of log.slice(0, 2)) b.apply(e);
    const b2 = new MetadataStateMachine(records(persisted(b)), BOOT);
    b2.onApplied((x) => seen[1].push(x));
    for (const e of log.slice(2)) b2.apply(e);
    expect(seen[1]).toEqual(seen[0]);
    expect(seen[0].map((x) => x.kind)).toEqual(['bootstrap-refused', 'bootstrap', 'bootstrap', 'bootstrap-refused', 'bootstrap-refused']);
    expect(seen[0][0]).toMatchObject({ reason: expect.stringMatching(/power of two/) });
    expect(seen[0][3]).toMatchObject({ reason: 'the cluster has 16 shards; a bootstrap with 4 is refused' });
    expect(a.shape).toEqual({ shardCount: 16, slotMapVersion: 1 });
    expect(b2.shape).toEqual(a.shape);
  });

  it('follows membership as the KV group does: joins with URLs, tombstones for removals', () => {
    const sm = new MetadataStateMachine([], BOOT);
    const cc: Entry = { index: 1, term: 1, type: 'confChange', data: new Uint8Array() };
    sm.applyConfChange(cc, { type: 'addLearner', nodeId: 4, context: Buffer.from(JSON.stringify({ peerUrls: ['http://m4:2380'] })) }, { voters: [1, 2, 3], learners: [4] });
    sm.applyConfChange(cc, { type: 'promoteLearner', nodeId: 4 }, { voters: [1, 2, 3, 4], learners: [] });
    sm.applyConfChange(cc, { type: 'removeNode', nodeId: 2 }, { voters: [1, 3, 4], learners: [] });
    expect(sm.members()).toEqual([
      { id: '1', peerUrls: ['http://m1:2380'], isLearner: false, removed: false },
      { id: '3', peerUrls: ['http://m3:2380'], isLearner: false, removed: false },
      { id: '4', peerUrls: ['http://m4:2380'], isLearner: false, removed: false },
    ]);
    const restored = new MetadataStateMachine([], BOOT);
    restored.restore(records(persisted(sm)));
    expect(restored.members()).toEqual(sm.members());
    expect(restored.drainPersistOps()).toEqual([]); // a snapshot's records are on disk already
  });

  it('a member restored from another member’s records at any point ends in the same state', () => {
    const anEntry = fc.oneof(
      fc.record({ kind: fc.constant('high-water' as const), highWater: fc.integer({ min: 0, max: 1e6 }), proposedTerm: fc.integer({ min: 1, max: 9 }) }),
      fc.record({ kind: fc.constant('bootstrap' as const), shardCount: fc.constantFrom(1, 3, 4, 16), slotMapVersion: fc.constantFrom(1, 2) }),
    );
    fc.assert(
      fc.property(fc.array(anEntry, { minLength: 1, maxLength: 30 }), fc.nat(), (log, cut) => {
        const a = new MetadataStateMachine([], BOOT);
        const b = new MetadataStateMachine([], BOOT);
        const at = cut % (log.length + 1);
        log.forEach((e, i) => a.apply(entry(i + 1, e)));
        log.slice(0, at).forEach((e, i) => b.apply(entry(i + 1, e)));
        const c = new MetadataStateMachine([], BOOT);
        c.restore(records(persisted(b)));
        log.slice(at).forEach((e, i) => c.apply(entry(at + i + 1, e)));
        expect([c.highWater, c.highWaterTerm, c.shape]).toEqual([a.highWater, a.highWaterTerm, a.shape]);
        expect(c.highWater).toBe(Math.max(0, ...log.map((e) => (e.kind === 'high-water' ? e.highWater : 0))));
      }),
      { seed: 27, numRuns: 300 },
    );
  });

  it('applies a mark made at a placement version only at that version: a late or resent "up" never undoes a later drain', () => {
    const sm = new MetadataStateMachine([], BOOT);
    const applied: MetadataApplied[] = [];
    sm.onApplied((a) => applied.push(a));
    sm.apply(entry(4, { kind: 'member-state', memberId: 2, state: 'draining', ifVersion: 0 }));
    expect(sm.drainingMembers()).toEqual([2]);
    expect(sm.placementVersion).toBe(4);
    // Undrain at version 4, sent twice (its caller resends until it sees the mark change).
    sm.apply(entry(5, { kind: 'member-state', memberId: 2, state: 'up', ifVersion: 4 }));
    expect(sm.drainingMembers()).toEqual([]);
    // Drained again, then the undrain's second copy lands: stale, nothing changes.
    sm.apply(entry(6, { kind: 'member-state', memberId: 2, state: 'draining', ifVersion: 5 }));
    sm.apply(entry(7, { kind: 'member-state', memberId: 2, state: 'up', ifVersion: 4 }));
    expect(sm.drainingMembers()).toEqual([2]);
    expect(sm.placementVersion).toBe(6);
    expect(applied.at(-1)).toEqual({ kind: 'member-state', index: 7, memberId: 2, state: 'up', stale: true });
    // A placement written meanwhile moves the version on: a mark made before it is stale too.
    sm.apply(entry(8, { kind: 'placement', shards: [{ shard: 0, replicas: [1, 3, 4] }] }));
    sm.apply(entry(9, { kind: 'member-state', memberId: 2, state: 'up', ifVersion: 6 }));
    expect(sm.drainingMembers()).toEqual([2]);
    sm.apply(entry(10, { kind: 'member-state', memberId: 2, state: 'up', ifVersion: 8 }));
    expect(sm.drainingMembers()).toEqual([]);
    // Restored from its records, the drain record carries no version (what applied is what counts).
    const again = new MetadataStateMachine(records(persisted(sm)), BOOT);
    expect(again.drainingMembers()).toEqual([]);
    expect(again.placementVersion).toBe(10);
  });

  it('keeps desired placements, shard memberships and draining marks, restored from its records', () => {
    const sm = new MetadataStateMachine([], BOOT);
    expect(sm.desiredReplicas(0)).toBeNull();
    sm.apply(entry(4, { kind: 'placement', shards: [{ shard: 0, replicas: [3, 1, 2] }, { shard: 1, replicas: [2, 3, 4] }] }));
    sm.apply(entry(5, { kind: 'shard-conf', shard: 1, voters: [3, 2, 1], learners: [4] }));
    sm.apply(entry(6, { kind: 'member-state', memberId: 2, state: 'draining' }));
    sm.apply(entry(7, { kind: 'placement', shards: [{ shard: 0, replicas: [1, 3, 4] }] }));
    sm.apply(entry(8, { kind: 'member-state', memberId: 3, state: 'draining' }));
    sm.apply(entry(9, { kind: 'member-state', memberId: 3, state: 'up' }));
    sm.apply(entry(10, { kind: 'leaders', shards: [{ shard: 0, leader: 4 }, { shard: 1, leader: 2 }] }));
    sm.apply(entry(11, { kind: 'leaders', shards: [{ shard: 1, leader: 3 }] }));
    const check = (m: MetadataStateMachine): void => {
      expect(m.desiredReplicas(0)).toEqual([1, 3, 4]);
      expect(m.desiredReplicas(1)).toEqual([2, 3, 4]);
      expect(m.observedConf(1)).toEqual({ voters: [1, 2, 3], learners: [4] });
      expect(m.observedConf(0)).toBeNull();
      expect(m.drainingMembers()).toEqual([2]);
      expect(m.placementVersion).toBe(9);
      expect([m.preferredLeader(0), m.preferredLeader(1), m.preferredLeader(2)]).toEqual([4, 3, null]);
    };
    check(sm);
    const disk = persisted(sm);
    check(new MetadataStateMachine(records(disk), BOOT));
    // A removed member's draining mark goes with it.
    sm.applyConfChange(entry(12, { kind: 'high-water', highWater: 1, proposedTerm: 1 }), { type: 'removeNode', nodeId: 2 }, { voters: [1, 3], learners: [] });
    expect(sm.drainingMembers()).toEqual([]);
    expect(new MetadataStateMachine(records(persisted(sm, disk)), BOOT).drainingMembers()).toEqual([]);
  });
});

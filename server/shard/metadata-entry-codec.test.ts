import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeMetadataEntry, encodeMetadataEntry, type MetadataEntry } from './metadata-entry-codec.ts';

describe('metadata entry codec', () => {
  it('pins the layout with golden bytes (never change these: members of every version must agree)', () => {
    expect(encodeMetadataEntry({ kind: 'high-water', highWater: 10_042, proposedTerm: 7 }).toString('hex')).toBe('0101' + '000000000000273a' + '0000000000000007');
    expect(encodeMetadataEntry({ kind: 'bootstrap', shardCount: 16, slotMapVersion: 1 }).toString('hex')).toBe('0102' + '0010' + '00000001');
    expect(decodeMetadataEntry(Buffer.from('0101001fffffffffffff0000000000000001', 'hex'))).toEqual({ kind: 'high-water', highWater: Number.MAX_SAFE_INTEGER, proposedTerm: 1 });
    expect(encodeMetadataEntry({ kind: 'placement', shards: [{ shard: 3, replicas: [1, 0x104b13b4afe80b] }] }).toString('hex')).toBe('0103' + '0001' + '0003' + '02' + '0000000000000001' + '00104b13b4afe80b');
    expect(encodeMetadataEntry({ kind: 'member-state', memberId: 7, state: 'draining' }).toString('hex')).toBe('0104' + '0000000000000007' + '01');
    expect(encodeMetadataEntry({ kind: 'member-state', memberId: 7, state: 'up', ifVersion: 42 }).toString('hex')).toBe('0107' + '0000000000000007' + '00' + '000000000000002a');
    expect(encodeMetadataEntry({ kind: 'shard-conf', shard: 1, voters: [2], learners: [] }).toString('hex')).toBe('0105' + '0001' + '01' + '0000000000000002' + '00');
    expect(encodeMetadataEntry({ kind: 'leaders', shards: [{ shard: 2, leader: 9 }] }).toString('hex')).toBe('0106' + '0001' + '0002' + '0000000000000009');
  });

  it('round-trips every entry', () => {
    const entry: fc.Arbitrary<MetadataEntry> = fc.oneof(
      fc.record({ kind: fc.constant('high-water' as const), highWater: fc.maxSafeNat(), proposedTerm: fc.maxSafeNat() }),
      fc.record({ kind: fc.constant('bootstrap' as const), shardCount: fc.integer({ min: 1, max: 0xffff }), slotMapVersion: fc.integer({ min: 0, max: 0xffffffff }) }),
      fc.record({
        kind: fc.constant('placement' as const),
        shards: fc.array(fc.record({ shard: fc.integer({ min: 0, max: 0xffff }), replicas: fc.array(fc.maxSafeNat(), { maxLength: 7 }) }), { maxLength: 20 }),
      }),
      fc.record({ kind: fc.constant('member-state' as const), memberId: fc.maxSafeNat(), state: fc.constantFrom('up' as const, 'draining' as const) }),
      fc.record({ kind: fc.constant('member-state' as const), memberId: fc.maxSafeNat(), state: fc.constantFrom('up' as const, 'draining' as const), ifVersion: fc.maxSafeNat() }),
      fc.record({ kind: fc.constant('leaders' as const), shards: fc.array(fc.record({ shard: fc.integer({ min: 0, max: 0xffff }), leader: fc.maxSafeNat() }), { maxLength: 20 }) }),
      fc.record({ kind: fc.constant('shard-conf' as const), shard: fc.integer({ min: 0, max: 0xffff }), voters: fc.array(fc.maxSafeNat(), { maxLength: 7 }), learners: fc.array(fc.maxSafeNat(), { maxLength: 7 }) }),
    );
    fc.assert(
      fc.property(entry, (e) => {
        expect(decodeMetadataEntry(encodeMetadataEntry(e))).toEqual(e);
      }),
      { seed: 14, numRuns: 500 },
    );
  });

  it('refuses what it does not understand, saying what', () => {
    expect(() => decodeMetadataEntry(Buffer.from('02010000', 'hex'))).toThrow(/unknown format version 2/);
    expect(() => decodeMetadataEntry(Buffer.from('0109', 'hex'))).toThrow(/unknown kind 9/);
    expect(() => decodeMetadataEntry(Buffer.from('010100', 'hex'))).toThrow(/high-water entry of 3 bytes/);
    expect(() => decodeMetadataEntry(Buffer.from('01', 'hex'))).toThrow(/too short/);
    expect(() => decodeMetadataEntry(Buffer.from('010100200000000000000000000000000001', 'hex'))).toThrow(/beyond 2\^53/);
    expect(() => encodeMetadataEntry({ kind: 'high-water', highWater: -1, proposedTerm: 1 })).toThrow(/non-negative/);
    expect(() => encodeMetadataEntry({ kind: 'bootstrap', shardCount: 0, slotMapVersion: 1 })).toThrow(/shard count/);
    expect(() => decodeMetadataEntry(Buffer.from('0103000100030100', 'hex'))).toThrow(/truncated/);
    expect(() => decodeMetadataEntry(Buffer.from('0105000100' + '00' + 'ff', 'hex'))).toThrow(/left over/);
    expect(() => decodeMetadataEntry(Buffer.from('0104000000000000000702', 'hex'))).toThrow(/unknown member state 2/);
    expect(() => encodeMetadataEntry({ kind: 'placement', shards: [{ shard: 70_000, replicas: [] }] })).toThrow(/u16/);
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeMetadataEntry, encodeMetadataEntry, type MetadataEntry } from './metadata-entry-codec.ts';

describe('metadata entry codec', () => {
  it('pins the layout with golden bytes (never change these: members of every version must agree)', () => {
    expect(encodeMetadataEntry({ kind: 'high-water', highWater: 10_042, proposedTerm: 7 }).toString('hex')).toBe('0101' + '000000000000273a' + '0000000000000007');
    expect(encodeMetadataEntry({ kind: 'bootstrap', shardCount: 16, slotMapVersion: 1 }).toString('hex')).toBe('0102' + '0010' + '00000001');
    expect(decodeMetadataEntry(Buffer.from('0101001fffffffffffff0000000000000001', 'hex'))).toEqual({ kind: 'high-water', highWater: Number.MAX_SAFE_INTEGER, proposedTerm: 1 });
  });

  it('round-trips every entry', () => {
    const entry: fc.Arbitrary<MetadataEntry> = fc.oneof(
      fc.record({ kind: fc.constant('high-water' as const), highWater: fc.maxSafeNat(), proposedTerm: fc.maxSafeNat() }),
      fc.record({ kind: fc.constant('bootstrap' as const), shardCount: fc.integer({ min: 1, max: 0xffff }), slotMapVersion: fc.integer({ min: 0, max: 0xffffffff }) }),
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
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SLOT_COUNT, SlotMap, hashTagOf, prefixRangeEnd, singleSlotOfRange, slotOf, validateShardCount } from './slots.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h, 'hex'));

// GOLDEN VECTORS. These pin the key → slot function forever: a slot map stored by a running cluster is
// only meaningful if every member computes the same slot for a key. If one of these fails, the hash or
// the hash-tag rule changed, which would silently re-home keys: do not "fix" the vector.
// Values cross-checked against Python's zlib.crc32(key_or_tag) % 16384.
const GOLDEN: ReadonlyArray<[label: string, key: Uint8Array, slot: number]> = [
  ['empty key', enc(''), 0],
  ['foo', enc('foo'), 9505],
  ['bar', enc('bar'), 3242],
  ['hello', enc('hello'), 9862],
  ['etcd-style path', enc('/registry/pods/default/nginx'), 16270],
  ['{} hashes whole key', enc('{}'), 16195],
  ['{a}b hashes "a"', enc('{a}b'), 15939],
  ['a', enc('a'), 15939],
  ['a{b}{c} hashes first tag "b"', enc('a{b}{c}'), 12281],
  ['b', enc('b'), 12281],
  ['{{a}} hashes "{a"', enc('{{a}}'), 8972],
  ['{a', enc('{a'), 8972],
  ['lone {', enc('{'), 1849],
  ['lone }', enc('}'), 8716],
  ['}{a} hashes "a"', enc('}{a}'), 15939],
  ['{}{a} hashes whole key (first tag empty)', enc('{}{a}'), 3668],
  ['unbalanced foo{', enc('foo{'), 9218],
  ['/app/{tenant-7}/cfg', enc('/app/{tenant-7}/cfg'), 11466],
  ['/app/{tenant-7}/state', enc('/app/{tenant-7}/state'), 11466],
  ['tenant-7', enc('tenant-7'), 11466],
  ['unicode héllo', enc('héllo'), 566],
  ['unicode 键{值}', enc('键{值}'), 11445],
  ['unicode 值', enc('值'), 11445],
  ['emoji', enc('🚀'), 6086],
  ['binary 00 ff 7b 01 7d (tag = 01)', hex('00ff7b017d'), 7963],
  ['binary 00', hex('00'), 12173],
  ['binary ff ff', hex('ffff'), 0],
];

describe('slotOf', () => {
  it.each(GOLDEN)('golden vector: %s', (_label, key, slot) => {
    expect(slotOf(key)).toBe(slot);
  });

  it('hash tags follow Redis Cluster keyHashSlot', () => {
    const tag = (s: string): string => new TextDecoder().decode(hashTagOf(enc(s)));
    expect(tag('{user1000}.following')).toBe('user1000');
    expect(tag('foo{}{bar}')).toBe('foo{}{bar}'); // first tag empty → whole key
    expect(tag('foo{{bar}}zap')).toBe('{bar');
    expect(tag('foo{bar}{zap}')).toBe('bar');
    expect(tag('no braces')).toBe('no braces');
    expect(tag('open{only')).toBe('open{only');
  });

  it('is always a slot and keys sharing a tag share a slot', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.string({ minLength: 1, maxLength: 12 }).filter((t) => !t.includes('}')), fc.string(), (key, tag, suffix) => {
        const slot = slotOf(key);
        expect(Number.isInteger(slot) && slot >= 0 && slot < SLOT_COUNT).toBe(true);
        const prefix = `p${suffix.replaceAll('{', '')}`;
        expect(slotOf(enc(`${prefix}{${tag}}x`))).toBe(slotOf(enc(`${prefix}{${tag}}y${suffix}`)));
      }),
    );
  });
});

describe('validateShardCount', () => {
  it.each([1, 2, 4, 16, 256, 1024])('accepts %i', (s) => expect(() => validateShardCount(s)).not.toThrow());
  it.each([0, -1, 3, 12, 1000, 2048, 1.5, Number.NaN])('refuses %s with a clear error', (s) => {
    expect(() => validateShardCount(s)).toThrow(/power of two between 1 and 1024/);
  });
});

describe('SlotMap', () => {
  it('creates S equal contiguous ranges, version 1', () => {
    for (const s of [1, 2, 16, 1024]) {
      const map = SlotMap.create(s);
      expect(map.version).toBe(1);
      for (let shard = 0; shard < s; shard++) {
        const width = SLOT_COUNT / s;
        expect(map.rangesOf(shard)).toEqual([{ firstSlot: shard * width, lastSlot: (shard + 1) * width - 1, shard }]);
      }
    }
    expect(() => SlotMap.create(3)).toThrow(/power of two/);
  });

  it('shardOf agrees with the ranges for every slot', () => {
    const map = SlotMap.create(16);
    for (let slot = 0; slot < SLOT_COUNT; slot++) expect(map.shardOf(slot)).toBe(Math.floor(slot / 1024));
    expect(() => map.shardOf(SLOT_COUNT)).toThrow(RangeError);
    expect(() => map.shardOf(-1)).toThrow(RangeError);
  });

  it('reassigning slots makes a new version and keeps full coverage', () => {
    const v1 = SlotMap.create(4);
    const v2 = v1.withSlotsAssigned(100, 199, 3);
    expect(v2.version).toBe(2);
    expect(v1.shardOf(150)).toBe(0);
    expect(v2.shardOf(150)).toBe(3);
    expect(v2.rangesOf(0)).toEqual([
      { firstSlot: 0, lastSlot: 99, shard: 0 },
      { firstSlot: 200, lastSlot: 4095, shard: 0 },
    ]);
    expect(SlotMap.fromJSON(v2.toJSON()).allRanges()).toEqual(v2.allRanges());
  });

  it('fromJSON refuses gaps, overlaps and unknown shards', () => {
    const good = SlotMap.create(2).toJSON();
    expect(() => SlotMap.fromJSON({ ...good, ranges: [good.ranges[0]] })).toThrow(/stop at slot/);
    expect(() => SlotMap.fromJSON({ ...good, ranges: [good.ranges[0], { ...good.ranges[1], firstSlot: 8000 }] })).toThrow(/contiguously/);
    expect(() => SlotMap.fromJSON({ ...good, ranges: [good.ranges[0], { ...good.ranges[1], shard: 2 }] })).toThrow(/shard 2/);
    expect(() => SlotMap.fromJSON({ ...good, shardCount: 3 })).toThrow(/power of two/);
  });
});

describe('shards of a key range', () => {
  const map = SlotMap.create(16);
  const FROM_KEY = Uint8Array.of(0);

  it('a single key is single-shard', () => {
    const r = map.shardsOfRange(enc('foo'), new Uint8Array());
    expect(r).toEqual({ singleShard: true, slot: 9505, shards: [map.shardOf(9505)] });
  });

  it('a prefix that contains a complete hash tag is single-shard', () => {
    const prefix = enc('/app/{tenant-7}/');
    const r = map.shardsOfRange(prefix, prefixRangeEnd(prefix)!);
    expect(r.singleShard).toBe(true);
    expect(r.slot).toBe(11466);
    // a sub-range inside the prefix too
    expect(singleSlotOfRange(enc('/app/{tenant-7}/a'), enc('/app/{tenant-7}/m'))).toBe(11466);
  });

  it('keys given as Buffers (as gRPC hands them over) are read, never rewritten', () => {
    // prefixRangeEnd once incremented a Buffer view of the request's own key: `get --prefix /app/{t1}/`
    // then searched '/app/{t1~/' on the wrong shard and found nothing.
    const key = Buffer.from('/app/{t1}/');
    const end = Buffer.from(prefixRangeEnd(key)!);
    expect(map.shardsOfRange(key, end)).toEqual({ singleShard: true, slot: slotOf(Buffer.from('/app/{t1}/a')), shards: [map.shardOf(slotOf(Buffer.from('t1')))] });
    expect(key.toString()).toBe('/app/{t1}/');
    expect(end.toString()).toBe('/app/{t1}0');
  });

  it('ordinary ranges and prefixes span every shard', () => {
    const all = Array.from({ length: 16 }, (_, i) => i);
    expect(map.shardsOfRange(enc('/registry/'), prefixRangeEnd(enc('/registry/'))!).shards).toEqual(all);
    expect(map.shardsOfRange(enc('/app/{tenant-7'), prefixRangeEnd(enc('/app/{tenant-7'))!).singleShard).toBe(false); // tag not closed
    expect(map.shardsOfRange(enc('/app/{}/'), prefixRangeEnd(enc('/app/{}/'))!).singleShard).toBe(false); // empty tag
    expect(map.shardsOfRange(enc('/app/{t}/'), FROM_KEY).singleShard).toBe(false); // from-key range
    expect(map.shardsOfRange(enc('/app/{t}/'), enc('/app/{u}/')).singleShard).toBe(false); // leaves the tag
    expect(SlotMap.create(1).shardsOfRange(enc('a'), enc('z'))).toEqual({ singleShard: true, slot: null, shards: [0] });
  });

  it('whenever a range is reported single-slot, every key in it has that slot', () => {
    // Small alphabets around the braces, often sharing a tagged prefix, so single-slot ranges and keys
    // inside them actually occur.
    const bytes = fc.uint8Array({ maxLength: 5 }).map((b) => b.map((x) => [0x61, 0x7b, 0x7d, 0x62, 0xff, 0x00][x % 6]));
    const smallKey = fc.oneof(bytes, bytes.map((b) => Uint8Array.from([...enc('k{t}'), ...b])), bytes.map((b) => Uint8Array.from([...enc('k{t'), ...b])));
    fc.assert(
      fc.property(smallKey, smallKey, smallKey, (a, b, probe) => {
        const slot = singleSlotOfRange(a, b);
        if (slot === null || b.length === 0) return;
        const inRange = Buffer.compare(a, probe) <= 0 && Buffer.compare(probe, b) < 0;
        if (inRange) expect(slotOf(probe)).toBe(slot);
      }),
      { numRuns: 2000 },
    );
  });
});

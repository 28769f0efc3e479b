// Keys → hash slots → shards. Owns the pinned key hash (CRC-32 of the key or of its Redis-Cluster
// `{hash tag}`, mod 16,384), the versioned slot map (contiguous slot ranges per shard) and the question
// "which shards can a key range touch". Pure: no I/O, no clocks.
//
// Why slots and not "hash mod S": the slot of a key never changes (it is pinned by golden vectors in
// slots.test.ts), so splitting or merging shards later moves slot ranges between shards through a new
// slot-map version, never re-hashes keys.

import { crc32 } from 'node:zlib';

/** Number of hash slots, as in Redis Cluster. Fixed forever: changing it re-homes every key. */
export const SLOT_COUNT = 16_384;
/** Largest shard count accepted at cluster creation. */
export const MAX_SHARDS = 1024;

const OPEN_BRACE = 0x7b; // '{'
const CLOSE_BRACE = 0x7d; // '}'

/**
 * The bytes that decide a key's slot: the hash tag (bytes strictly between the first `{` and the first `}`
 * after it) when that part is non-empty; otherwise the whole key. `{}` and an unbalanced `{` therefore hash
 * the whole key, exactly as Redis Cluster's keyHashSlot does.
 */
export function hashTagOf(key: Uint8Array): Uint8Array {
  const open = key.indexOf(OPEN_BRACE);
  if (open < 0) return key;
  const close = key.indexOf(CLOSE_BRACE, open + 1);
  if (close < 0 || close === open + 1) return key;
  return key.subarray(open + 1, close);
}

/** The hash slot of a key: zlib CRC-32 (IEEE) of its hash tag, mod 16,384. */
export function slotOf(key: Uint8Array): number {
  return crc32(hashTagOf(key)) % SLOT_COUNT;
}

/** Throws a clear error unless `shards` is a power of two in 1..1024 (the `--shards` rule). */
export function validateShardCount(shards: number): void {
  const ok = Number.isInteger(shards) && shards >= 1 && shards <= MAX_SHARDS && (shards & (shards - 1)) === 0;
  if (!ok) {
    throw new RangeError(`shard count must be a power of two between 1 and ${MAX_SHARDS} (got ${String(shards)})`);
  }
}

/** Inclusive range of slots owned by one shard. */
export interface SlotRange {
  readonly firstSlot: number;
  readonly lastSlot: number;
  readonly shard: number;
}

/** Serialized form kept in the metadata group. */
export interface SlotMapJson {
  readonly version: number;
  readonly shardCount: number;
  readonly ranges: readonly SlotRange[];
}

/**
 * Which shard owns each slot. Immutable; every change makes a new map with version + 1, so a request routed
 * with an old version can be detected and re-routed once splits and merges exist.
 */
export class SlotMap {
  readonly version: number;
  readonly shardCount: number;
  /** Sorted by firstSlot, covering 0..SLOT_COUNT-1 without gaps or overlaps. */
  private readonly ranges: readonly SlotRange[];

  private constructor(version: number, shardCount: number, ranges: readonly SlotRange[]) {
    this.version = version;
    this.shardCount = shardCount;
    this.ranges = ranges;
  }

  /** The map at cluster creation: S equal contiguous ranges, shard i owning [i·16384/S, (i+1)·16384/S). */
  static create(shardCount: number): SlotMap {
    validateShardCount(shardCount);
    const slotsPerShard = SLOT_COUNT / shardCount; // exact: S is a power of two ≤ 16384
    const ranges: SlotRange[] = [];
    for (let shard = 0; shard < shardCount; shard++) {
      ranges.push({ firstSlot: shard * slotsPerShard, lastSlot: (shard + 1) * slotsPerShard - 1, shard });
    }
    return new SlotMap(1, shardCount, ranges);
  }

  /** Rebuilds a map from its stored form, refusing anything that does not cover every slot exactly once. */
  static fromJSON(json: SlotMapJson): SlotMap {
    validateShardCount(json.shardCount);
    if (!Number.isInteger(json.version) || json.version < 1) throw new RangeError(`slot map version must be a positive integer (got ${json.version})`);
    const ranges = [...json.ranges].sort((a, b) => a.firstSlot - b.firstSlot);
    let expectedFirst = 0;
    for (const r of ranges) {
      if (r.firstSlot !== expectedFirst || r.lastSlot < r.firstSlot || r.lastSlot >= SLOT_COUNT) {
        throw new RangeError(`slot map ranges must cover 0..${SLOT_COUNT - 1} contiguously (bad range ${r.firstSlot}..${r.lastSlot})`);
      }
      if (!Number.isInteger(r.shard) || r.shard < 0 || r.shard >= json.shardCount) {
        throw new RangeError(`slot range ${r.firstSlot}..${r.lastSlot} names shard ${r.shard}, outside 0..${json.shardCount - 1}`);
      }
      expectedFirst = r.lastSlot + 1;
    }
    if (expectedFirst !== SLOT_COUNT) throw new RangeError(`slot map ranges stop at slot ${expectedFirst - 1}, not ${SLOT_COUNT - 1}`);
    return new SlotMap(json.version, json.shardCount, ranges.map((r) => ({ ...r })));
  }

  toJSON(): SlotMapJson {
    return { version: this.version, shardCount: this.shardCount, ranges: this.ranges.map((r) => ({ ...r })) };
  }

  /** The shard owning a slot (binary search over the ranges). */
  shardOf(slot: number): number {
    if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) throw new RangeError(`slot must be an integer in 0..${SLOT_COUNT - 1} (got ${slot})`);
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.ranges[mid].firstSlot <= slot) lo = mid;
      else hi = mid - 1;
    }
    return this.ranges[lo].shard;
  }

  /** The shard owning a key. */
  shardOfKey(key: Uint8Array): number {
    return this.shardOf(slotOf(key));
  }

  /** The slot ranges a shard owns, in slot order (one range at creation; several after moves). */
  rangesOf(shard: number): SlotRange[] {
    return this.ranges.filter((r) => r.shard === shard).map((r) => ({ ...r }));
  }

  /** All ranges in slot order. */
  allRanges(): SlotRange[] {
    return this.ranges.map((r) => ({ ...r }));
  }

  /**
   * A new map (version + 1) where slots firstSlot..lastSlot belong to `toShard`. For later splits/merges;
   * moving the data is the caller's business, this only records ownership.
   */
  withSlotsAssigned(firstSlot: number, lastSlot: number, toShard: number): SlotMap {
    if (!(Number.isInteger(firstSlot) && Number.isInteger(lastSlot) && 0 <= firstSlot && firstSlot <= lastSlot && lastSlot < SLOT_COUNT)) {
      throw new RangeError(`slot range must satisfy 0 ≤ first ≤ last < ${SLOT_COUNT} (got ${firstSlot}..${lastSlot})`);
    }
    if (!Number.isInteger(toShard) || toShard < 0 || toShard >= this.shardCount) throw new RangeError(`shard ${toShard} outside 0..${this.shardCount - 1}`);
    const owner = Array.from({ length: SLOT_COUNT }, (_, slot) => this.shardOf(slot));
    owner.fill(toShard, firstSlot, lastSlot + 1);
    return new SlotMap(this.version + 1, this.shardCount, rangesFromOwners(owner));
  }

  /**
   * Which shards a key range can touch. `end` follows etcd: empty = the single key `start`; a single 0x00
   * byte = every key ≥ start; otherwise [start, end). Because slots are hashed, a range generally touches
   * every shard: it is single-shard only when it is one key, or when every key in it shares a prefix that
   * contains a complete non-empty hash tag (e.g. the prefix `/app/{tenant-7}/`), so every key in it has
   * the same tag and hence the same slot.
   */
  shardsOfRange(start: Uint8Array, end: Uint8Array): RangeShards {
    const slot = singleSlotOfRange(start, end);
    if (slot !== null) return { singleShard: true, slot, shards: [this.shardOf(slot)] };
    const shards = [...new Set(this.ranges.map((r) => r.shard))].sort((a, b) => a - b);
    return { singleShard: shards.length === 1, slot: null, shards };
  }
}

/** The shards a key range can touch; `slot` is set when every key in the range has that one slot. */
export interface RangeShards {
  readonly singleShard: boolean;
  readonly slot: number | null;
  readonly shards: readonly number[];
}

function rangesFromOwners(owner: readonly number[]): SlotRange[] {
  const ranges: SlotRange[] = [];
  let first = 0;
  for (let slot = 1; slot <= SLOT_COUNT; slot++) {
    if (slot === SLOT_COUNT || owner[slot] !== owner[first]) {
      ranges.push({ firstSlot: first, lastSlot: slot - 1, shard: owner[first] });
      first = slot;
    }
  }
  return ranges;
}

/** The one slot every key of [start, end) hashes to, or null when keys of the range can hash apart. */
export function singleSlotOfRange(start: Uint8Array, end: Uint8Array): number | null {
  if (end.length === 0) return slotOf(start); // a single key
  const tagPrefix = hashTagPrefixOf(start);
  if (tagPrefix === null) return null;
  const prefixEnd = prefixRangeEnd(tagPrefix);
  // Every key in [start, end) has prefix P iff start has P (true by construction) and end ≤ prefixEnd(P).
  // end = [0x00] means "to the end of the keyspace" in etcd, never inside one prefix (unless P is all 0xff).
  if (prefixEnd === null || isFromKey(end)) return null;
  return compareBytes(end, prefixEnd) <= 0 ? slotOf(start) : null;
}

/** The shortest prefix of `key` that fixes the hash tag (through the `}` closing a non-empty tag), or null. */
function hashTagPrefixOf(key: Uint8Array): Uint8Array | null {
  const open = key.indexOf(OPEN_BRACE);
  if (open < 0) return null;
  const close = key.indexOf(CLOSE_BRACE, open + 1);
  if (close < 0 || close === open + 1) return null;
  return key.subarray(0, close + 1);
}

/** etcd's GetPrefixRangeEnd: the smallest key greater than every key with this prefix; null if none. */
export function prefixRangeEnd(prefix: Uint8Array): Uint8Array | null {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i] < 0xff) {
      // A copy: on a Buffer, slice() is a view, and the increment would rewrite the caller's key.
      const end = Uint8Array.from(prefix.subarray(0, i + 1));
      end[i] += 1;
      return end;
    }
  }
  return null;
}

function isFromKey(end: Uint8Array): boolean {
  return end.length === 1 && end[0] === 0;
}

/** Byte order of two keys, as Buffer.compare, without a call into C++ (short keys compare faster here). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

// The metadata group's log entries and state records, in a small versioned binary form. Owns the bytes:
// every member of every version must decode an entry the same way, so the layout is fixed here and pinned
// by golden bytes in the test; a new field means a new kind or a new version byte, never a changed layout.
//
// Entry layout (big-endian):
//   [0] format version (1)  [1] kind
//   kind 1 high-water: u64 high-water mark, u64 the term the oracle proposed it in        (18 bytes)
//   kind 2 bootstrap:  u16 shard count, u32 slot map version                              (8 bytes)
// An entry of an unknown version or kind is an error, not something to skip: a member that cannot
// understand a committed entry must not apply past it (etcd panics the same way).

export const METADATA_ENTRY_VERSION = 1;

export type MetadataEntry =
  /** The oracle's leader reserved revisions up to `highWater` in term `proposedTerm`. */
  | { readonly kind: 'high-water'; readonly highWater: number; readonly proposedTerm: number }
  /** The cluster's shard count and its first slot map's version, fixed at bootstrap. */
  | { readonly kind: 'bootstrap'; readonly shardCount: number; readonly slotMapVersion: number };

const KIND_HIGH_WATER = 1;
const KIND_BOOTSTRAP = 2;
const HIGH_WATER_BYTES = 18;
const BOOTSTRAP_BYTES = 8;

export class MetadataCodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MetadataCodecError';
  }
}

function checkSafeNonNegative(what: string, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new MetadataCodecError(`${what} must be a non-negative safe integer (got ${n})`);
}

export function encodeMetadataEntry(entry: MetadataEntry): Buffer {
  if (entry.kind === 'high-water') {
    checkSafeNonNegative('high-water mark', entry.highWater);
    checkSafeNonNegative('proposing term', entry.proposedTerm);
    const b = Buffer.alloc(HIGH_WATER_BYTES);
    b[0] = METADATA_ENTRY_VERSION;
    b[1] = KIND_HIGH_WATER;
    b.writeBigUInt64BE(BigInt(entry.highWater), 2);
    b.writeBigUInt64BE(BigInt(entry.proposedTerm), 10);
    return b;
  }
  if (!Number.isInteger(entry.shardCount) || entry.shardCount < 1 || entry.shardCount > 0xffff) throw new MetadataCodecError(`shard count must fit 1..65535 (got ${entry.shardCount})`);
  if (!Number.isInteger(entry.slotMapVersion) || entry.slotMapVersion < 0 || entry.slotMapVersion > 0xffffffff) throw new MetadataCodecError(`slot map version must fit a u32 (got ${entry.slotMapVersion})`);
  const b = Buffer.alloc(BOOTSTRAP_BYTES);
  b[0] = METADATA_ENTRY_VERSION;
  b[1] = KIND_BOOTSTRAP;
  b.writeUInt16BE(entry.shardCount, 2);
  b.writeUInt32BE(entry.slotMapVersion, 4);
  return b;
}

function safeU64(b: Buffer, offset: number, what: string): number {
  const v = b.readBigUInt64BE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MetadataCodecError(`metadata entry: ${what} ${v} is beyond 2^53`);
  return Number(v);
}

export function decodeMetadataEntry(data: Uint8Array): MetadataEntry {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.length < 2) throw new MetadataCodecError(`metadata entry: ${b.length} bytes, too short`);
  if (b[0] !== METADATA_ENTRY_VERSION) throw new MetadataCodecError(`metadata entry: unknown format version ${b[0]} (this member understands ${METADATA_ENTRY_VERSION})`);
  if (b[1] === KIND_HIGH_WATER) {
    if (b.length !== HIGH_WATER_BYTES) throw new MetadataCodecError(`metadata entry: high-water entry of ${b.length} bytes (expected ${HIGH_WATER_BYTES})`);
    return { kind: 'high-water', highWater: safeU64(b, 2, 'high-water mark'), proposedTerm: safeU64(b, 10, 'term') };
  }
  if (b[1] === KIND_BOOTSTRAP) {
    if (b.length !== BOOTSTRAP_BYTES) throw new MetadataCodecError(`metadata entry: bootstrap entry of ${b.length} bytes (expected ${BOOTSTRAP_BYTES})`);
    return { kind: 'bootstrap', shardCount: b.readUInt16BE(2), slotMapVersion: b.readUInt32BE(4) };
  }
  throw new MetadataCodecError(`metadata entry: unknown kind ${b[1]}`);
}

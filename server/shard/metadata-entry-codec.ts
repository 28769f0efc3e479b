// The metadata group's log entries and state records, in a small versioned binary form. Owns the bytes:
// every member of every version must decode an entry the same way, so the layout is fixed here and pinned
// by golden bytes in the test; a new field means a new kind or a new version byte, never a changed layout.
//
// Entry layout (big-endian):
//   [0] format version (1)  [1] kind
//   kind 1 high-water: u64 high-water mark, u64 the term the oracle proposed it in        (18 bytes)
//   kind 2 bootstrap:  u16 shard count, u32 slot map version                              (8 bytes)
//   kind 3 placement:  u16 n, then n × (u16 shard, u8 k, k × u64 member id)   desired replicas per shard
//   kind 4 member-state: u64 member id, u8 state (0 up, 1 draining)
//   kind 5 shard-conf: u16 shard, u8 v, v × u64 voter, u8 l, l × u64 learner  a shard's Raft membership
//   kind 6 leaders:    u16 n, then n × (u16 shard, u64 member)              preferred leader per shard
//   kind 7 member-state at a version: u64 member id, u8 state, u64 the placement version it applies at
// An entry of an unknown version or kind is an error, not something to skip: a member that cannot
// understand a committed entry must not apply past it (etcd panics the same way).

export const METADATA_ENTRY_VERSION = 1;

export type MetadataEntry =
  /** The oracle's leader reserved revisions up to `highWater` in term `proposedTerm`. */
  | { readonly kind: 'high-water'; readonly highWater: number; readonly proposedTerm: number }
  /** The cluster's shard count and its first slot map's version, fixed at bootstrap. */
  | { readonly kind: 'bootstrap'; readonly shardCount: number; readonly slotMapVersion: number }
  /** The placer's new desired replicas (members) for the listed shards; other shards keep theirs. */
  | { readonly kind: 'placement'; readonly shards: ReadonlyArray<{ readonly shard: number; readonly replicas: readonly number[] }> }
  /**
   * A member marked draining (Placement/Drain: place nothing on it, move what it holds) or up again. With
   * `ifVersion`, applied only while the placement version is still that one: a copy sent again, or one
   * that arrives after a newer mark, changes nothing (a late "up" must not undo a later drain).
   */
  | { readonly kind: 'member-state'; readonly memberId: number; readonly state: 'up' | 'draining'; readonly ifVersion?: number }
  /** A shard's Raft membership as its leader applied it: where the shard lives now (routing, the placer). */
  | { readonly kind: 'shard-conf'; readonly shard: number; readonly voters: readonly number[]; readonly learners: readonly number[] }
  /** The placer's preferred leader for the listed shards (its leaders hand over to it when idle). */
  | { readonly kind: 'leaders'; readonly shards: ReadonlyArray<{ readonly shard: number; readonly leader: number }> };

const KIND_HIGH_WATER = 1;
const KIND_BOOTSTRAP = 2;
const KIND_PLACEMENT = 3;
const KIND_MEMBER_STATE = 4;
const KIND_SHARD_CONF = 5;
const KIND_LEADERS = 6;
const KIND_MEMBER_STATE_IF = 7;
const MEMBER_STATES = ['up', 'draining'] as const;
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
  if (entry.kind === 'placement') return encodePlacement(entry.shards);
  if (entry.kind === 'member-state') {
    const w = new Writer();
    w.u64(entry.memberId, 'member id');
    w.u8(MEMBER_STATES.indexOf(entry.state), 'member state');
    if (entry.ifVersion === undefined) return w.finish(KIND_MEMBER_STATE);
    w.u64(entry.ifVersion, 'placement version');
    return w.finish(KIND_MEMBER_STATE_IF);
  }
  if (entry.kind === 'leaders') {
    const w = new Writer();
    w.u16(entry.shards.length, 'shard entries');
    for (const s of entry.shards) {
      w.u16(s.shard, 'shard');
      w.u64(s.leader, 'leader');
    }
    return w.finish(KIND_LEADERS);
  }
  if (entry.kind === 'shard-conf') {
    const w = new Writer();
    w.u16(entry.shard, 'shard');
    w.ids(entry.voters, 'voters');
    w.ids(entry.learners, 'learners');
    return w.finish(KIND_SHARD_CONF);
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
  if (b[1] === KIND_PLACEMENT || b[1] === KIND_MEMBER_STATE || b[1] === KIND_MEMBER_STATE_IF || b[1] === KIND_SHARD_CONF || b[1] === KIND_LEADERS) {
    const r = new Reader(b, 2);
    let entry: MetadataEntry;
    if (b[1] === KIND_PLACEMENT) {
      const n = r.u16();
      const shards: Array<{ shard: number; replicas: number[] }> = [];
      for (let i = 0; i < n; i++) shards.push({ shard: r.u16(), replicas: r.ids() });
      entry = { kind: 'placement', shards };
    } else if (b[1] === KIND_MEMBER_STATE || b[1] === KIND_MEMBER_STATE_IF) {
      const memberId = r.u64('member id');
      const code = r.u8();
      const state = MEMBER_STATES[code];
      if (state === undefined) throw new MetadataCodecError(`metadata entry: unknown member state ${code}`);
      entry = b[1] === KIND_MEMBER_STATE ? { kind: 'member-state', memberId, state } : { kind: 'member-state', memberId, state, ifVersion: r.u64('placement version') };
    } else if (b[1] === KIND_LEADERS) {
      const n = r.u16();
      const shards: Array<{ shard: number; leader: number }> = [];
      for (let i = 0; i < n; i++) shards.push({ shard: r.u16(), leader: r.u64('leader') });
      entry = { kind: 'leaders', shards };
    } else entry = { kind: 'shard-conf', shard: r.u16(), voters: r.ids(), learners: r.ids() };
    r.end();
    return entry;
  }
  throw new MetadataCodecError(`metadata entry: unknown kind ${b[1]}`);
}

function encodePlacement(shards: ReadonlyArray<{ readonly shard: number; readonly replicas: readonly number[] }>): Buffer {
  const w = new Writer();
  w.u16(shards.length, 'shard entries');
  for (const s of shards) {
    w.u16(s.shard, 'shard');
    w.ids(s.replicas, 'replicas');
  }
  return w.finish(KIND_PLACEMENT);
}

/** Appends big-endian fields, each checked against its width. */
class Writer {
  private readonly parts: Buffer[] = [];

  u8(n: number, what: string): void {
    if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new MetadataCodecError(`${what} must fit a u8 (got ${n})`);
    this.parts.push(Buffer.from([n]));
  }

  u16(n: number, what: string): void {
    if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new MetadataCodecError(`${what} must fit a u16 (got ${n})`);
    const b = Buffer.alloc(2);
    b.writeUInt16BE(n);
    this.parts.push(b);
  }

  u64(n: number, what: string): void {
    checkSafeNonNegative(what, n);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(n));
    this.parts.push(b);
  }

  /** A u8 count, then that many u64 member ids. */
  ids(ids: readonly number[], what: string): void {
    this.u8(ids.length, `${what} count`);
    for (const id of ids) this.u64(id, `${what} id`);
  }

  finish(kind: number): Buffer {
    return Buffer.concat([Buffer.from([METADATA_ENTRY_VERSION, kind]), ...this.parts]);
  }
}

/** Reads big-endian fields; running past the end, or bytes left over, is a codec error. */
class Reader {
  private offset: number;
  private readonly b: Buffer;

  constructor(b: Buffer, offset: number) {
    this.b = b;
    this.offset = offset;
  }

  private need(bytes: number): number {
    if (this.offset + bytes > this.b.length) throw new MetadataCodecError(`metadata entry: kind ${this.b[1]} truncated at byte ${this.offset}`);
    const at = this.offset;
    this.offset += bytes;
    return at;
  }

  u8(): number {
    return this.b[this.need(1)];
  }

  u16(): number {
    return this.b.readUInt16BE(this.need(2));
  }

  u64(what: string): number {
    return safeU64(this.b, this.need(8), what);
  }

  ids(): number[] {
    const n = this.u8();
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(this.u64('member id'));
    return out;
  }

  end(): void {
    if (this.offset !== this.b.length) throw new MetadataCodecError(`metadata entry: kind ${this.b[1]} has ${this.b.length - this.offset} bytes left over`);
  }
}

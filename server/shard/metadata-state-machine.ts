// The metadata group's replicated state machine (issue 14): the revision oracle's high-water mark, the
// cluster's shard count and slot map version, and the group's membership. Every member applies the same
// committed entries in the same order and decides everything from the entry and its own replicated
// state, so every member holds the same state at every applied index — including which entries it
// refused: a bootstrap entry naming a different shard count than the one already fixed is refused by
// every member alike, and nothing changes.
//
// Why the high-water mark is safe to take as a maximum: a mark only ever widens what the oracle may
// hand out, and a new oracle leader starts above the highest mark in its log (revision-oracle.ts). A
// mark's proposing term travels with it, so the oracle widens its window only with marks of its own
// term (a mark forwarded to, and committed under, a newer leader is counted for the maximum and
// nothing else).
//
// Records (store-relative keys): 'h' → the highest mark as a high-water entry (mark and its proposing
// term), 'c' → the bootstrap entry, 'n' + member id → the membership record (JSON, tombstones kept,
// exactly as the KV group keeps them, so ids are never reused), 'p' + u16 shard → the shard's desired
// replicas (a one-shard placement entry), 'o' + u16 shard → the shard's Raft membership as its leader last
// reported it (a shard-conf entry), 'd' + member id → a draining member's state entry, 'v' → the placement
// version (u64: the index of the last entry that changed a desired placement or a member's state), 'l' +
// u16 shard → the shard's preferred leader (a one-shard leaders entry).
//
// Placement (docs/sharding.md, "Placement on a subset"): the placer on this group's leader writes desired
// replicas per shard; each shard's leader moves its group towards them and reports the membership it
// reached. Those records only say where a shard should be and where it was last seen: the shard's own
// Raft log decides its membership, so a stale record can delay a move but never lose a quorum.
import type { GroupStateMachine } from '../member/member.ts';
import type { ConfChange, ConfState, Entry } from '../raft/types.ts';
import { validateShardCount } from '../routing/slots.ts';
import { decodeMetadataEntry, encodeMetadataEntry } from './metadata-entry-codec.ts';

const HIGH_WATER_KEY = Buffer.from('h');

/** The oracle's high-water mark record, as a restore seeds it: the new cluster hands out revisions above it. */
export function highWaterRecord(highWater: number): [Buffer, Buffer] {
  return [HIGH_WATER_KEY, encodeMetadataEntry({ kind: 'high-water', highWater, proposedTerm: 0 })];
}
const CLUSTER_KEY = Buffer.from('c');
const MEMBERSHIP_PREFIX = 0x6e; // 'n'
const DESIRED_PREFIX = 0x70; // 'p'
const OBSERVED_PREFIX = 0x6f; // 'o'
const DRAINING_PREFIX = 0x64; // 'd'
const LEADER_PREFIX = 0x6c; // 'l'
const VERSION_KEY = Buffer.from('v');

/** A shard's Raft membership as its leader reported it. */
export interface ShardConf {
  readonly voters: readonly number[];
  readonly learners: readonly number[];
}

export interface MetadataMember {
  readonly id: string;
  readonly peerUrls: readonly string[];
  readonly isLearner: boolean;
  /** Removed members stay as tombstones: ids are never reused. */
  readonly removed: boolean;
}

export interface ClusterShape {
  readonly shardCount: number;
  readonly slotMapVersion: number;
}

/** What one applied entry did; every member reports the same for the same entry. */
export type MetadataApplied =
  | { readonly kind: 'high-water'; readonly index: number; readonly highWater: number; readonly proposedTerm: number }
  | { readonly kind: 'bootstrap'; readonly index: number; readonly shape: ClusterShape }
  | { readonly kind: 'bootstrap-refused'; readonly index: number; readonly shape: ClusterShape; readonly reason: string }
  | { readonly kind: 'placement'; readonly index: number; readonly shards: readonly number[] }
  /** `stale`: a mark proposed at another placement version (a resent or late copy), which changed nothing. */
  | { readonly kind: 'member-state'; readonly index: number; readonly memberId: number; readonly state: 'up' | 'draining'; readonly stale?: boolean }
  | { readonly kind: 'shard-conf'; readonly index: number; readonly shard: number }
  | { readonly kind: 'leaders'; readonly index: number; readonly shards: readonly number[] };

export class MetadataStateMachine implements GroupStateMachine {
  private highWaterMark = 0;
  private highWaterMarkTerm = 0;
  private clusterShape: ClusterShape | null = null;
  private readonly membershipById = new Map<string, MetadataMember>();
  private readonly bootstrapMembers: MetadataMember[];
  private readonly desired = new Map<number, readonly number[]>();
  private readonly observed = new Map<number, ShardConf>();
  private readonly draining = new Set<number>();
  private readonly preferredLeaders = new Map<number, number>();
  private version = 0;
  private ops: Array<{ key: Buffer; value: Buffer | null }> = [];
  private readonly listeners: Array<(applied: MetadataApplied) => void> = [];

  /**
   * `stateRecords`: the group's records as stored; `bootstrapMembers`: the membership at log index 0
   * (the same on every member), used when the records hold none yet.
   */
  constructor(stateRecords: Iterable<[Buffer, Buffer]>, bootstrapMembers: ReadonlyArray<{ id: number; peerUrls: readonly string[]; isLearner: boolean }> = []) {
    this.bootstrapMembers = bootstrapMembers.map((m) => ({ id: String(m.id), peerUrls: [...m.peerUrls], isLearner: m.isLearner, removed: false }));
    this.load(stateRecords);
  }

  /** The highest high-water mark applied: every revision the oracle ever handed out is at or below it. */
  get highWater(): number {
    return this.highWaterMark;
  }

  /** The term the highest mark was proposed in. */
  get highWaterTerm(): number {
    return this.highWaterMarkTerm;
  }

  /** The cluster's shard count and slot map version, or null before the bootstrap entry applied. */
  get shape(): ClusterShape | null {
    return this.clusterShape;
  }

  /** Current members (no tombstones), in id order. */
  members(): MetadataMember[] {
    return [...this.membershipById.values()].filter((m) => !m.removed).sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  }

  /** The desired replicas (member ids, ascending) of `shard`, or null before the placer wrote any. */
  desiredReplicas(shard: number): readonly number[] | null {
    return this.desired.get(shard) ?? null;
  }

  /** The member the placer prefers to lead `shard`, or null. */
  preferredLeader(shard: number): number | null {
    return this.preferredLeaders.get(shard) ?? null;
  }

  /** `shard`'s Raft membership as its leader last reported it, or null before any report. */
  observedConf(shard: number): ShardConf | null {
    return this.observed.get(shard) ?? null;
  }

  /** Members marked draining (Placement/Drain), ascending. */
  drainingMembers(): number[] {
    return [...this.draining].sort((a, b) => a - b);
  }

  /** The index of the last entry that changed a desired placement or a member's state (0: none yet). */
  get placementVersion(): number {
    return this.version;
  }

  /** Told after every applied metadata entry (on this member; the oracle host listens). */
  onApplied(listener: (applied: MetadataApplied) => void): void {
    this.listeners.push(listener);
  }

  apply(entry: Entry): void {
    const decoded = decodeMetadataEntry(entry.data);
    let applied: MetadataApplied;
    if (decoded.kind === 'high-water') {
      if (decoded.highWater > this.highWaterMark) {
        this.highWaterMark = decoded.highWater;
        this.highWaterMarkTerm = decoded.proposedTerm;
        this.ops.push({ key: HIGH_WATER_KEY, value: encodeMetadataEntry(decoded) });
      }
      applied = { kind: 'high-water', index: entry.index, highWater: decoded.highWater, proposedTerm: decoded.proposedTerm };
    } else if (decoded.kind === 'placement') {
      for (const { shard, replicas } of decoded.shards) {
        const sorted = [...replicas].sort((a, b) => a - b);
        this.desired.set(shard, sorted);
        this.ops.push({ key: shardKey(DESIRED_PREFIX, shard), value: encodeMetadataEntry({ kind: 'placement', shards: [{ shard, replicas: sorted }] }) });
      }
      this.setVersion(entry.index);
      applied = { kind: 'placement', index: entry.index, shards: decoded.shards.map((s) => s.shard) };
    } else if (decoded.kind === 'member-state' && decoded.ifVersion !== undefined && decoded.ifVersion !== this.version) {
      applied = { kind: 'member-state', index: entry.index, memberId: decoded.memberId, state: decoded.state, stale: true };
    } else if (decoded.kind === 'member-state') {
      const key = Buffer.concat([Buffer.from([DRAINING_PREFIX]), Buffer.from(String(decoded.memberId), 'utf8')]);
      if (decoded.state === 'draining') {
        this.draining.add(decoded.memberId);
        this.ops.push({ key, value: encodeMetadataEntry({ kind: 'member-state', memberId: decoded.memberId, state: 'draining' }) });
      } else {
        this.draining.delete(decoded.memberId);
        this.ops.push({ key, value: null });
      }
      this.setVersion(entry.index);
      applied = { kind: 'member-state', index: entry.index, memberId: decoded.memberId, state: decoded.state };
    } else if (decoded.kind === 'leaders') {
      for (const { shard, leader } of decoded.shards) {
        this.preferredLeaders.set(shard, leader);
        this.ops.push({ key: shardKey(LEADER_PREFIX, shard), value: encodeMetadataEntry({ kind: 'leaders', shards: [{ shard, leader }] }) });
      }
      applied = { kind: 'leaders', index: entry.index, shards: decoded.shards.map((x) => x.shard) };
    } else if (decoded.kind === 'shard-conf') {
      const conf = { voters: [...decoded.voters].sort((a, b) => a - b), learners: [...decoded.learners].sort((a, b) => a - b) };
      this.observed.set(decoded.shard, conf);
      this.ops.push({ key: shardKey(OBSERVED_PREFIX, decoded.shard), value: encodeMetadataEntry({ kind: 'shard-conf', shard: decoded.shard, ...conf }) });
      applied = { kind: 'shard-conf', index: entry.index, shard: decoded.shard };
    } else {
      const shape: ClusterShape = { shardCount: decoded.shardCount, slotMapVersion: decoded.slotMapVersion };
      const reason = this.refusal(shape);
      if (reason !== null) applied = { kind: 'bootstrap-refused', index: entry.index, shape, reason };
      else {
        if (this.clusterShape === null) {
          this.clusterShape = shape;
          this.ops.push({ key: CLUSTER_KEY, value: encodeMetadataEntry(decoded) });
        }
        applied = { kind: 'bootstrap', index: entry.index, shape };
      }
    }
    for (const l of this.listeners) l(applied);
  }

  private setVersion(index: number): void {
    this.version = index;
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(index));
    this.ops.push({ key: VERSION_KEY, value: b });
  }

  /** Why a bootstrap entry is refused, from replicated state only (so every member decides alike), or null. */
  private refusal(shape: ClusterShape): string | null {
    try {
      validateShardCount(shape.shardCount);
    } catch (err) {
      return (err as Error).message;
    }
    const fixed = this.clusterShape;
    if (fixed === null) return null;
    if (fixed.shardCount !== shape.shardCount) return `the cluster has ${fixed.shardCount} shards; a bootstrap with ${shape.shardCount} is refused`;
    if (fixed.slotMapVersion !== shape.slotMapVersion) return `the cluster's slot map is at version ${fixed.slotMapVersion}; a bootstrap with version ${shape.slotMapVersion} is refused`;
    return null; // the same shape again (a retried bootstrap): nothing to change
  }

  /**
   * Membership follows Raft's resulting ConfState, as the KV group's does: a member joining takes its
   * URLs from the change's context (JSON `{peerUrls}`, when present), a member leaving becomes a tombstone.
   * Applying the same change again changes nothing.
   */
  applyConfChange(_entry: Entry, change: ConfChange, confState: ConfState): void {
    let peerUrls: string[] = [];
    if (change.context && change.context.byteLength > 0) {
      try {
        const parsed = JSON.parse(Buffer.from(change.context).toString('utf8')) as { peerUrls?: unknown };
        if (Array.isArray(parsed.peerUrls)) peerUrls = parsed.peerUrls.filter((u): u is string => typeof u === 'string');
      } catch {
        // A context that is not JSON carries no URLs; every member reads it the same way.
      }
    }
    const inGroup = new Set([...confState.voters, ...confState.learners].map(String));
    const learners = new Set(confState.learners.map(String));
    const id = String(change.nodeId);
    if (inGroup.has(id) && !this.membershipById.has(id)) this.setMember({ id, peerUrls, isLearner: learners.has(id), removed: false });
    for (const m of [...this.membershipById.values()]) {
      if (m.removed) continue;
      if (!inGroup.has(m.id)) this.setMember({ ...m, removed: true });
      else if (m.isLearner !== learners.has(m.id)) this.setMember({ ...m, isLearner: learners.has(m.id) });
    }
  }

  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }> {
    const out = this.ops;
    this.ops = [];
    return out;
  }

  /** Replaces the whole state by a snapshot's records; those are on disk already, so nothing is queued. */
  restore(records: Array<[Buffer, Buffer]>): void {
    this.load(records);
    this.ops = [];
  }

  private load(records: Iterable<[Buffer, Buffer]>): void {
    this.highWaterMark = 0;
    this.highWaterMarkTerm = 0;
    this.clusterShape = null;
    this.membershipById.clear();
    this.desired.clear();
    this.observed.clear();
    this.draining.clear();
    this.preferredLeaders.clear();
    this.version = 0;
    for (const [key, value] of records) {
      if (key.equals(HIGH_WATER_KEY)) {
        const e = decodeMetadataEntry(value);
        if (e.kind !== 'high-water') throw new Error(`metadata record 'h' holds a ${e.kind} entry`);
        this.highWaterMark = e.highWater;
        this.highWaterMarkTerm = e.proposedTerm;
      } else if (key.equals(CLUSTER_KEY)) {
        const e = decodeMetadataEntry(value);
        if (e.kind !== 'bootstrap') throw new Error(`metadata record 'c' holds a ${e.kind} entry`);
        this.clusterShape = { shardCount: e.shardCount, slotMapVersion: e.slotMapVersion };
      } else if (key.equals(VERSION_KEY)) {
        this.version = Number(value.readBigUInt64BE(0));
      } else if (key[0] === DESIRED_PREFIX) {
        const e = decodeMetadataEntry(value);
        if (e.kind !== 'placement' || e.shards.length !== 1) throw new Error(`metadata record ${key.toString('hex')} is not a one-shard placement`);
        this.desired.set(e.shards[0].shard, e.shards[0].replicas);
      } else if (key[0] === OBSERVED_PREFIX) {
        const e = decodeMetadataEntry(value);
        if (e.kind !== 'shard-conf') throw new Error(`metadata record ${key.toString('hex')} holds a ${e.kind} entry`);
        this.observed.set(e.shard, { voters: e.voters, learners: e.learners });
      } else if (key[0] === LEADER_PREFIX) {
        const e = decodeMetadataEntry(value);
        if (e.kind !== 'leaders' || e.shards.length !== 1) throw new Error(`metadata record ${key.toString('hex')} is not a one-shard leader preference`);
        this.preferredLeaders.set(e.shards[0].shard, e.shards[0].leader);
      } else if (key[0] === DRAINING_PREFIX) {
        const e = decodeMetadataEntry(value);
        if (e.kind !== 'member-state') throw new Error(`metadata record ${key.toString('hex')} holds a ${e.kind} entry`);
        this.draining.add(e.memberId);
      } else if (key[0] === MEMBERSHIP_PREFIX) {
        const m = JSON.parse(value.toString('utf8')) as MetadataMember;
        this.membershipById.set(m.id, m);
      } else throw new Error(`unknown metadata record key ${key.toString('hex')}`);
    }
    if (this.membershipById.size === 0) for (const m of this.bootstrapMembers) this.setMember(m);
  }

  /** A removed member drains nothing any more: its mark goes with it. */
  private dropDraining(memberId: number): void {
    if (!this.draining.delete(memberId)) return;
    this.ops.push({ key: Buffer.concat([Buffer.from([DRAINING_PREFIX]), Buffer.from(String(memberId), 'utf8')]), value: null });
  }

  private setMember(m: MetadataMember): void {
    if (m.removed) this.dropDraining(Number(m.id));
    this.membershipById.set(m.id, m);
    this.ops.push({ key: Buffer.concat([Buffer.from([MEMBERSHIP_PREFIX]), Buffer.from(m.id, 'utf8')]), value: Buffer.from(JSON.stringify(m)) });
  }
}

function shardKey(prefix: number, shard: number): Buffer {
  const b = Buffer.alloc(3);
  b[0] = prefix;
  b.writeUInt16BE(shard, 1);
  return b;
}

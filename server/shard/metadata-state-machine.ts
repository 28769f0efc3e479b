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
// exactly as the KV group keeps them, so ids are never reused).
import type { GroupStateMachine } from '../member/member.ts';
import type { ConfChange, ConfState, Entry } from '../raft/types.ts';
import { validateShardCount } from '../routing/slots.ts';
import { decodeMetadataEntry, encodeMetadataEntry } from './metadata-entry-codec.ts';

const HIGH_WATER_KEY = Buffer.from('h');
const CLUSTER_KEY = Buffer.from('c');
const MEMBERSHIP_PREFIX = 0x6e; // 'n'

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
  | { readonly kind: 'bootstrap-refused'; readonly index: number; readonly shape: ClusterShape; readonly reason: string };

export class MetadataStateMachine implements GroupStateMachine {
  private highWaterMark = 0;
  private highWaterMarkTerm = 0;
  private clusterShape: ClusterShape | null = null;
  private readonly membershipById = new Map<string, MetadataMember>();
  private readonly bootstrapMembers: MetadataMember[];
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
      } else if (key[0] === MEMBERSHIP_PREFIX) {
        const m = JSON.parse(value.toString('utf8')) as MetadataMember;
        this.membershipById.set(m.id, m);
      } else throw new Error(`unknown metadata record key ${key.toString('hex')}`);
    }
    if (this.membershipById.size === 0) for (const m of this.bootstrapMembers) this.setMember(m);
  }

  private setMember(m: MetadataMember): void {
    this.membershipById.set(m.id, m);
    this.ops.push({ key: Buffer.concat([Buffer.from([MEMBERSHIP_PREFIX]), Buffer.from(m.id, 'utf8')]), value: Buffer.from(JSON.stringify(m)) });
  }
}

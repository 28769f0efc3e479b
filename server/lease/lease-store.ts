// The replicated half of leases: which leases exist, their granted TTL, the remaining TTL last
// checkpointed through Raft, and which keys are attached to each. Every member holds the same
// state at the same applied index. When a lease ends is NOT decided here: only the leader keeps
// expiry clocks (lease-clock.ts), and an expiry reaches this store as a revoke entry.
//
// On a sharded cluster (docs/sharding.md, "Leases on a sharded cluster") two more things live here,
// persisted beside the lease records: in the cluster group, each lease's generation (the Raft index of
// its grant) and the revoked generations whose keys some shard may still hold (pending sweeps); in a
// shard, the highest generation of each lease this shard has swept (puts attaching to it are refused)
// and the horizon: puts checked in the cluster group before it are refused, so swept records of leases
// revoked before it are no longer needed and are dropped (docs/sharding.md, "Collecting swept records").
import type { LeaseId, MvccEvent } from '../mvcc/types.ts';

export interface LeaseRecord {
  id: LeaseId;
  ttlSeconds: number;
  /** Remaining TTL at the last checkpoint; 0 = never checkpointed (the full TTL applies). */
  remainingTtlSeconds: number;
  /** Sharded clusters: the cluster group's Raft index of the grant (0 elsewhere). */
  generation: number;
}

/** Record keys of the sharded-cluster state (lease ids are decimal, so they never start with these). */
const PENDING_SWEEP = 'sweep/';
const SWEPT = 'swept/';
const HORIZON = 'horizon';

/** A revoked lease generation and the cluster group's Raft index of its revoke. */
export interface RevokedGeneration {
  generation: number;
  revokedAt: number;
}

function encodeRevoked(r: RevokedGeneration): Buffer {
  return Buffer.from(`${r.generation}:${r.revokedAt}`);
}

function decodeRevoked(value: Buffer): RevokedGeneration {
  const [generation, revokedAt] = value.toString('utf8').split(':');
  return { generation: Number(generation), revokedAt: Number(revokedAt ?? 0) };
}

/** Leases live in the group's state keyspace under this prefix (after the state machine's own). */
export const LEASE_RECORD_PREFIX = 0x6c; // 'l'

/** A lease's record (the key holds its id). */
export function decodeLeaseRecord(id: LeaseId, value: Buffer): LeaseRecord {
  const parsed = JSON.parse(value.toString('utf8')) as { ttl: number; remaining: number; g?: number };
  return { id, ttlSeconds: parsed.ttl, remainingTtlSeconds: parsed.remaining, generation: parsed.g ?? 0 };
}

function encodeRecord(r: LeaseRecord): Buffer {
  // `g` only when set: a one-shard cluster's records stay byte for byte what they were.
  return Buffer.from(JSON.stringify(r.generation > 0 ? { ttl: r.ttlSeconds, remaining: r.remainingTtlSeconds, g: r.generation } : { ttl: r.ttlSeconds, remaining: r.remainingTtlSeconds }));
}

export class LeaseStore {
  private readonly leases = new Map<LeaseId, LeaseRecord>();
  /** Lease → attached keys (hex of the key bytes, so Map/Set compare by content). */
  private readonly attached = new Map<LeaseId, Map<string, Buffer>>();
  /** Cluster group of a sharded cluster: revoked lease → highest revoked generation not yet swept everywhere. */
  private readonly pendingSweeps = new Map<LeaseId, RevokedGeneration>();
  /** Shard of a sharded cluster: lease → highest generation this shard swept (revoked at or after the horizon). */
  private readonly swept = new Map<LeaseId, RevokedGeneration>();
  /** Shard: puts checked in the cluster group before this index are refused (see the header). */
  private horizonValue = 0;
  private persist: Array<{ key: Buffer; value: Buffer | null }> = [];

  static restore(records: Iterable<[Buffer, Buffer]>): LeaseStore {
    const store = new LeaseStore();
    for (const [key, value] of records) {
      const name = key.toString('utf8');
      if (name.startsWith(PENDING_SWEEP)) store.pendingSweeps.set(name.slice(PENDING_SWEEP.length), decodeRevoked(value));
      else if (name.startsWith(SWEPT)) store.swept.set(name.slice(SWEPT.length), decodeRevoked(value));
      else if (name === HORIZON) store.horizonValue = Number(value.toString('utf8'));
      else store.leases.set(name, decodeLeaseRecord(name, value));
    }
    return store;
  }

  has(id: LeaseId): boolean {
    return this.leases.has(id);
  }

  get(id: LeaseId): LeaseRecord | undefined {
    return this.leases.get(id);
  }

  all(): LeaseRecord[] {
    return [...this.leases.values()];
  }

  size(): number {
    return this.leases.size;
  }

  grant(id: LeaseId, ttlSeconds: number, generation = 0): LeaseRecord {
    if (this.leases.has(id)) throw new Error(`lease ${id} already exists`);
    const record: LeaseRecord = { id, ttlSeconds, remainingTtlSeconds: 0, generation };
    this.leases.set(id, record);
    this.persist.push({ key: Buffer.from(id, 'utf8'), value: encodeRecord(record) });
    return record;
  }

  /** Removes the lease; returns the keys that were attached (the caller deletes them). */
  revoke(id: LeaseId): Buffer[] {
    if (!this.leases.delete(id)) throw new Error(`lease ${id} does not exist`);
    this.persist.push({ key: Buffer.from(id, 'utf8'), value: null });
    const keys = this.attached.get(id);
    this.attached.delete(id);
    return keys ? [...keys.values()].sort(Buffer.compare) : [];
  }

  // ---- sharded clusters (docs/sharding.md, "Leases on a sharded cluster") ----------------------

  /** Cluster group: `generation` of `id` was revoked (at index `revokedAt`); its keys may sit on any shard until swept. */
  sweepPending(id: LeaseId, generation: number, revokedAt: number): void {
    const before = this.pendingSweeps.get(id);
    // A newer revoked generation covers the older one: a shard's sweep of it refuses both.
    const r = before !== undefined && before.generation > generation ? before : { generation, revokedAt };
    this.pendingSweeps.set(id, r);
    this.persist.push({ key: Buffer.from(PENDING_SWEEP + id, 'utf8'), value: encodeRevoked(r) });
  }

  /** Cluster group: every shard swept `generation` of `id` (a newer pending generation stays). */
  sweepDone(id: LeaseId, generation: number): void {
    const r = this.pendingSweeps.get(id);
    if (r === undefined || r.generation > generation) return;
    this.pendingSweeps.delete(id);
    this.persist.push({ key: Buffer.from(PENDING_SWEEP + id, 'utf8'), value: null });
  }

  /** Cluster group: the highest revoked generation of `id` not swept everywhere yet (undefined: none). */
  pendingSweep(id: LeaseId): RevokedGeneration | undefined {
    return this.pendingSweeps.get(id);
  }

  /**
   * Cluster group: what a put attaching a key to `id` may name now: nothing (the lease does not exist),
   * its live generation, or not yet — an older generation of the same id is still being swept, and a
   * put of the new generation reaching a shard before that sweep would be deleted by it.
   */
  attachable(id: LeaseId): { kind: 'missing' } | { kind: 'alive'; generation: number } | { kind: 'sweeping'; generation: number } {
    const lease = this.leases.get(id);
    if (lease === undefined) return { kind: 'missing' };
    const pending = this.pendingSweeps.get(id);
    if (pending !== undefined && pending.generation < lease.generation) return { kind: 'sweeping', generation: pending.generation };
    return { kind: 'alive', generation: lease.generation };
  }

  /** Cluster group: every pending sweep. */
  pendingSweepList(): Array<[LeaseId, RevokedGeneration]> {
    return [...this.pendingSweeps.entries()];
  }

  /**
   * Shard: sweeps generation `generation` of `id`, revoked at cluster-group index `revokedAt`: from now
   * on a put attaching to it or an older generation is refused. Returns the keys attached to `id` here,
   * which the caller deletes; null when this shard already swept that generation (a repeat changes
   * nothing). `horizon` moves this shard's horizon forward first (see advanceHorizon).
   */
  sweep(id: LeaseId, generation: number, revokedAt: number, horizon: number): Buffer[] | null {
    this.advanceHorizon(horizon);
    const before = this.swept.get(id);
    if (before !== undefined && before.generation >= generation) return null;
    if (revokedAt >= this.horizonValue) {
      const r = { generation, revokedAt };
      this.swept.set(id, r);
      this.persist.push({ key: Buffer.from(SWEPT + id, 'utf8'), value: encodeRevoked(r) });
    } else if (before !== undefined) {
      // Revoked before the horizon: every put that could name it is refused by the horizon already.
      this.swept.delete(id);
      this.persist.push({ key: Buffer.from(SWEPT + id, 'utf8'), value: null });
    }
    const keys = this.keysOf(id);
    this.attached.delete(id);
    return keys;
  }

  /**
   * Shard: from now on a put checked in the cluster group before index `horizon` is refused, and the
   * swept records of generations revoked before it are dropped. Why that is safe: a put admitted from
   * now on was checked at E ≥ horizon, when its lease generation G was alive; a generation G′ ≥ G of
   * that lease revoked before the horizon would have ended G before E. So no dropped record could
   * have refused it.
   */
  advanceHorizon(horizon: number): void {
    if (!(horizon > this.horizonValue)) return;
    this.horizonValue = horizon;
    this.persist.push({ key: Buffer.from(HORIZON, 'utf8'), value: Buffer.from(String(horizon)) });
    for (const [id, r] of this.swept) {
      if (r.revokedAt >= horizon) continue;
      this.swept.delete(id);
      this.persist.push({ key: Buffer.from(SWEPT + id, 'utf8'), value: null });
    }
  }

  /** Shard: whether a put checked at cluster-group index `checkedAt` may attach a key to generation `generation` of `id`. */
  generationLive(id: LeaseId, generation: number, checkedAt: number): boolean {
    return checkedAt >= this.horizonValue && generation > (this.swept.get(id)?.generation ?? 0);
  }

  /** Shard: how many swept records it keeps (bounded by the horizon). */
  sweptCount(): number {
    return this.swept.size;
  }

  checkpoint(id: LeaseId, remainingTtlSeconds: number): void {
    const record = this.leases.get(id);
    if (!record) return; // revoked meanwhile: the checkpoint is moot
    record.remainingTtlSeconds = remainingTtlSeconds;
    this.persist.push({ key: Buffer.from(id, 'utf8'), value: encodeRecord(record) });
  }

  keysOf(id: LeaseId): Buffer[] {
    const keys = this.attached.get(id);
    return keys ? [...keys.values()].sort(Buffer.compare) : [];
  }

  attach(id: LeaseId, key: Buffer): void {
    if (id === '0') return;
    let keys = this.attached.get(id);
    if (!keys) {
      keys = new Map();
      this.attached.set(id, keys);
    }
    keys.set(key.toString('hex'), key);
  }

  detach(id: LeaseId, key: Buffer): void {
    if (id === '0') return;
    const keys = this.attached.get(id);
    if (!keys) return;
    keys.delete(key.toString('hex'));
    if (keys.size === 0) this.attached.delete(id);
  }

  /** Follows a write's events: a put moves the key to its new lease, a delete detaches it. */
  observe(events: MvccEvent[]): void {
    for (const e of events) {
      if (e.prevKv && e.prevKv.lease !== '0') this.detach(e.prevKv.lease, e.kv.key);
      if (e.type === 'PUT' && e.kv.lease !== '0') this.attach(e.kv.lease, e.kv.key);
    }
  }

  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }> {
    const ops = this.persist;
    this.persist = [];
    return ops;
  }

  /** The leases as the records `restore` reads (without the sharded cluster's sweep state). */
  leaseRecords(): Array<[Buffer, Buffer]> {
    return [...this.leases.values()].map((r) => [Buffer.from(r.id, 'utf8'), encodeRecord(r)]);
  }
}

/**
 * A lease record restored into a new cluster: on a sharded one every lease needs a generation (puts name
 * it; the shards' swept records start empty, so 1 is alive everywhere), on one group none.
 */
export function restoredLeaseRecord(value: Buffer, sharded: boolean): Buffer {
  return encodeRecord({ ...decodeLeaseRecord('', value), generation: sharded ? 1 : 0 });
}

/** A lease's record (store-relative key and value) from another system's snapshot (an etcd snapshot's lease). */
export function importedLeaseRecord(id: LeaseId, ttlSeconds: number, remainingTtlSeconds: number): [Buffer, Buffer] {
  return [Buffer.from(id, 'utf8'), encodeRecord({ id, ttlSeconds, remainingTtlSeconds, generation: 0 })];
}

/** Whether a record of the lease keyspace (store-relative) is a lease, not a sharded cluster's sweep state. */
export function isLeaseRecordKey(key: Buffer): boolean {
  const name = key.toString('utf8');
  return !name.startsWith(PENDING_SWEEP) && !name.startsWith(SWEPT) && name !== HORIZON;
}

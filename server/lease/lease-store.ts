// The replicated half of leases: which leases exist, their granted TTL, the remaining TTL last
// checkpointed through Raft, and which keys are attached to each. Every member holds the same
// state at the same applied index. When a lease ends is NOT decided here: only the leader keeps
// expiry clocks (lease-clock.ts), and an expiry reaches this store as a revoke entry.
import type { LeaseId, MvccEvent } from '../mvcc/types.ts';

export interface LeaseRecord {
  id: LeaseId;
  ttlSeconds: number;
  /** Remaining TTL at the last checkpoint; 0 = never checkpointed (the full TTL applies). */
  remainingTtlSeconds: number;
}

/** Leases live in the group's state keyspace under this prefix (after the state machine's own). */
export const LEASE_RECORD_PREFIX = 0x6c; // 'l'

function encodeRecord(r: LeaseRecord): Buffer {
  return Buffer.from(JSON.stringify({ ttl: r.ttlSeconds, remaining: r.remainingTtlSeconds }));
}

export class LeaseStore {
  private readonly leases = new Map<LeaseId, LeaseRecord>();
  /** Lease → attached keys (hex of the key bytes, so Map/Set compare by content). */
  private readonly attached = new Map<LeaseId, Map<string, Buffer>>();
  private persist: Array<{ key: Buffer; value: Buffer | null }> = [];

  static restore(records: Iterable<[Buffer, Buffer]>): LeaseStore {
    const store = new LeaseStore();
    for (const [key, value] of records) {
      const id = key.toString('utf8');
      const parsed = JSON.parse(value.toString('utf8')) as { ttl: number; remaining: number };
      store.leases.set(id, { id, ttlSeconds: parsed.ttl, remainingTtlSeconds: parsed.remaining });
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

  grant(id: LeaseId, ttlSeconds: number): LeaseRecord {
    if (this.leases.has(id)) throw new Error(`lease ${id} already exists`);
    const record: LeaseRecord = { id, ttlSeconds, remainingTtlSeconds: 0 };
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
}

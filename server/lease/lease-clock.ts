// The leader-only half of leases: when each lease expires. Only the leader runs these clocks (so
// members never disagree about expiry), keep-alives renew them, and expired leases are revoked
// through Raft. A new leader starts every clock afresh from the remaining TTL (checkpointed) or the
// granted TTL, extended by an election timeout, so a failover never makes leases expire early.
import type { LeaseId } from '../mvcc/types.ts';
import type { LeaseRecord } from './lease-store.ts';

export class LeaseClock {
  private readonly expiryMs = new Map<LeaseId, number>();
  private active = false;

  get isActive(): boolean {
    return this.active;
  }

  /** This member became leader: every lease gets a full clock, plus the failover extension. */
  promote(leases: LeaseRecord[], nowMs: number, extendMs: number): void {
    this.active = true;
    this.expiryMs.clear();
    for (const l of leases) {
      const remaining = l.remainingTtlSeconds > 0 ? l.remainingTtlSeconds : l.ttlSeconds;
      this.expiryMs.set(l.id, nowMs + remaining * 1000 + extendMs);
    }
  }

  /** Leadership lost: followers keep no clocks. */
  demote(): void {
    this.active = false;
    this.expiryMs.clear();
  }

  /** A lease granted while leading starts its clock at its TTL. */
  started(id: LeaseId, ttlSeconds: number, nowMs: number): void {
    if (this.active) this.expiryMs.set(id, nowMs + ttlSeconds * 1000);
  }

  ended(id: LeaseId): void {
    this.expiryMs.delete(id);
  }

  renew(id: LeaseId, ttlSeconds: number, nowMs: number): void {
    if (!this.active) throw new Error('lease renewal on a member that is not the leader');
    this.expiryMs.set(id, nowMs + ttlSeconds * 1000);
  }

  /** Remaining time in ms, or null when this clock does not know the lease. */
  remainingMs(id: LeaseId, nowMs: number): number | null {
    const at = this.expiryMs.get(id);
    return at === undefined ? null : Math.max(0, at - nowMs);
  }

  /** Leases whose time is up, oldest expiry first, at most `limit`. */
  expired(nowMs: number, limit: number): LeaseId[] {
    const out: Array<[LeaseId, number]> = [];
    for (const [id, at] of this.expiryMs) if (at <= nowMs) out.push([id, at]);
    out.sort((a, b) => a[1] - b[1]);
    return out.slice(0, limit).map(([id]) => id);
  }
}

// Admission of this member's cross-shard transactions to their shards: a transaction sends its prepares
// only once no other transaction coordinated here holds one of its shards, and it takes all of them at
// once. Wait-die (wait-die.ts) settles conflicts between members at the shards' leaders; between the
// transactions of one member this settles them first, in memory: none of them then holds a frozen shard
// while its prepare waits on another of them (the queues behind a prepared shard that capped
// concurrent two-shard txns near one per shard at a time), and none dies at a leader for another of
// them, so no prepare and abort entries are spent on those conflicts.
//
// Order: oldest first (the transaction's age, kept over its attempts). A younger transaction is admitted
// past a waiting older one only if it needs none of the older one's shards, so an old transaction waits
// at most for the transactions holding its shards now: none starves. Only a delay: whatever it decides,
// the prepares and their checks at the leaders are unchanged, so it cannot make anything unsafe.
import { olderThan, type TxnRank } from './wait-die.ts';

interface Waiter {
  readonly groups: readonly number[];
  readonly rank: TxnRank;
  grant(): void;
}

export class ShardAdmission {
  private readonly held = new Set<number>();
  private waiting: Waiter[] = [];

  /**
   * Resolves with the release once `groups` are all free of this member's other transactions; rejects
   * with `onTimeout()`'s error if that has not happened within `waitMs` (its place then goes to those
   * behind it).
   */
  acquire(groups: readonly number[], rank: TxnRank, waitMs: number, onTimeout: () => Error): Promise<() => void> {
    return new Promise((resolve, reject) => {
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        for (const g of groups) this.held.delete(g);
        this.pump();
      };
      const timer = setTimeout(() => {
        this.waiting = this.waiting.filter((o) => o !== w);
        this.pump();
        reject(onTimeout());
      }, Math.max(0, waitMs));
      const w: Waiter = {
        groups,
        rank,
        grant: () => {
          clearTimeout(timer);
          resolve(release);
        },
      };
      const at = this.waiting.findIndex((o) => olderThan(rank, o.rank));
      this.waiting.splice(at < 0 ? this.waiting.length : at, 0, w);
      this.pump();
    });
  }

  /** Transactions waiting here (tests). */
  waitingCount(): number {
    return this.waiting.length;
  }

  /** Shards held by this member's admitted transactions (for tests). */
  heldCount(): number {
    return this.held.size;
  }

  private pump(): void {
    // Shards an older waiting transaction needs are kept for it: a younger one is admitted around it only
    // on other shards.
    const kept = new Set<number>();
    const still: Waiter[] = [];
    for (const w of this.waiting) {
      if (w.groups.every((g) => !this.held.has(g) && !kept.has(g))) {
        for (const g of w.groups) this.held.add(g);
        w.grant();
      } else {
        for (const g of w.groups) kept.add(g);
        still.push(w);
      }
    }
    this.waiting = still;
  }
}

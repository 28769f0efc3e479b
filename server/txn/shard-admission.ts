// Admission of this member's cross-shard transactions to their shards: a transaction sends its prepares
// only once no other transaction coordinated here holds one of its shards on keys its own may touch, and
// it takes all of them at once. Wait-die (wait-die.ts) settles conflicts between members at the shards'
// leaders; between the transactions of one member this settles them first, in memory: none of them then
// holds prepared keys while its prepare waits on another of them, and none dies at a leader for another of
// them, so no prepare and abort entries are spent on those conflicts. Transactions on disjoint keys go
// at once, as their prepares may be laid on a shard at once (share-keys.ts).
//
// A claim is the shards a transaction may touch with the keys of the whole transaction: more than each
// shard's share, never less, so two claims that do not meet have prepares that do not meet.
//
// Order: oldest first (the transaction's age, kept over its attempts). A younger transaction is admitted
// past a waiting older one only if it meets none of the older one's claim, so an old transaction waits
// at most for the transactions holding its claim now: none starves. Only a delay: whatever it decides,
// the prepares and their checks at the leaders are unchanged, so it cannot make anything unsafe.
import { shareKeysMeet, type ShareKeys } from './share-keys.ts';
import { olderThan, type TxnRank } from './wait-die.ts';

interface Claim {
  readonly groups: ReadonlySet<number>;
  readonly keys: ShareKeys;
}

interface Waiter extends Claim {
  readonly rank: TxnRank;
  grant(): void;
}

function claimsMeet(a: Claim, b: Claim): boolean {
  for (const g of a.groups) if (b.groups.has(g)) return shareKeysMeet(a.keys, b.keys);
  return false;
}

export class ShardAdmission {
  private readonly held = new Set<Claim>();
  private waiting: Waiter[] = [];

  /**
   * Resolves with the release once no other transaction of this member holds `groups` on keys meeting
   * `keys`; rejects with `onTimeout()`'s error if that has not happened within `waitMs` (its place then
   * goes to those behind it).
   */
  acquire(groups: readonly number[], keys: ShareKeys, rank: TxnRank, waitMs: number, onTimeout: () => Error): Promise<() => void> {
    return new Promise((resolve, reject) => {
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        this.held.delete(w);
        this.pump();
      };
      const timer = setTimeout(() => {
        this.waiting = this.waiting.filter((o) => o !== w);
        this.pump();
        reject(onTimeout());
      }, Math.max(0, waitMs));
      const w: Waiter = {
        groups: new Set(groups),
        keys,
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

  /** Claims held by this member's admitted transactions (for tests). */
  heldCount(): number {
    return this.held.size;
  }

  private pump(): void {
    // Claims of older waiting transactions are kept for them: a younger one is admitted around one only
    // if it meets none of them.
    const kept: Claim[] = [];
    const still: Waiter[] = [];
    for (const w of this.waiting) {
      const free = ![...this.held].some((h) => claimsMeet(h, w)) && !kept.some((k) => claimsMeet(k, w));
      if (free) {
        this.held.add(w);
        w.grant();
      } else {
        kept.push(w);
        still.push(w);
      }
    }
    this.waiting = still;
  }
}

// Wait-die for cross-shard prepares (docs/transactions.md): what a prepare waiting on a shard that another
// transaction holds does next. Pure; the shard's write path (server/shard/shard-write-path.ts) asks it for
// every prepare in its outbox while the shard is held, and acts on the verdict.
//
// A transaction's age is the wall-clock ms of its first attempt (kept over retries), its id breaking ties:
// a total order. A prepare older than every holder waits for as long as its transaction's deadline allows;
// a younger one waits at most a short grace, then dies (is refused; its coordinator retries with the same
// age, so it grows older relative to newcomers and cannot starve). Why no wait lasts for ever: in a cycle
// of prepares each waiting for the next one's transaction, ages cannot decrease all the way round a total
// order, so some prepare in it waits for an older transaction, and its grace running out breaks the cycle.

export interface TxnRank {
  /** Ms of the transaction's first attempt; lower is older. */
  readonly priority: number;
  readonly txnId: string;
}

/** A rank from the wire: a prepare that carried no age (an older member's, or 0) ranks youngest of all. */
export function rankOf(priority: number | undefined, txnId: string): TxnRank {
  const p = priority !== undefined && Number.isFinite(priority) && priority > 0 ? priority : Number.MAX_SAFE_INTEGER;
  return { priority: p, txnId };
}

export function olderThan(a: TxnRank, b: TxnRank): boolean {
  return a.priority !== b.priority ? a.priority < b.priority : a.txnId < b.txnId;
}

export type WaitVerdict =
  /** Older than every holder: keeps waiting (until its transaction's deadline). */
  | { readonly kind: 'wait' }
  /** Younger than some holder, within its grace: asked again after `graceLeftMs` at the latest. */
  | { readonly kind: 'wait-grace'; readonly graceLeftMs: number }
  /** Refused now: its grace is over, or its transaction's deadline passed. */
  | { readonly kind: 'die'; readonly why: 'younger' | 'overdue' };

export interface WaitingPrepare {
  readonly rank: TxnRank;
  /** When it first met a holder (ms, the caller's clock). */
  readonly heldSinceMs: number;
  /** Its transaction's deadline (ms, wall clock): past it, its coordinator has given the attempt up. */
  readonly deadlineUnixMs: number;
}

/** What `waiting` does while `holders` (never empty) hold the shard, at `nowMs`. */
export function judgeWaitingPrepare(waiting: WaitingPrepare, holders: readonly TxnRank[], nowMs: number, graceMs: number): WaitVerdict {
  if (holders.length === 0) throw new Error('wait-die: judged a prepare with nothing holding the shard');
  if (waiting.deadlineUnixMs <= nowMs) return { kind: 'die', why: 'overdue' };
  if (holders.every((h) => olderThan(waiting.rank, h))) return { kind: 'wait' };
  const graceLeftMs = waiting.heldSinceMs + graceMs - nowMs;
  return graceLeftMs > 0 ? { kind: 'wait-grace', graceLeftMs } : { kind: 'die', why: 'younger' };
}

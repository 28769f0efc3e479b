// Where a cross-shard transaction's op sits in the whole transaction, kept in the sub-revisions of the
// records it writes on each shard, so that a watch over several shards can send one revision's events in
// etcd's order: a txn's events in op order, each op's in key order.
//
// etcd numbers a revision's changes with sub-revisions in the order the txn makes them. A shard applies
// only its share of a cross-shard transaction, so its own count says nothing of the ops on other shards.
// A share applied with positions numbers each op's changes from a band of its own instead:
//   sub = POSITIONED_SUB_BASE + position × POSITION_BAND + (the op's changes so far on this shard)
// Plain writes never reach POSITIONED_SUB_BASE (it would take 2^31 changes in one revision), so a record
// tells by itself whether it was positioned, and the position survives restarts, snapshots and replays.
// Subs keep increasing within a shard's revision whatever the counts: an op whose changes overflow its
// band pushes the next op's start up (its events are then ordered as the later op's across shards: an op
// deleting half a million keys on one shard inside a cross-shard txn), and the store's order is never
// broken.

/** Lowest positioned sub-revision. */
export const POSITIONED_SUB_BASE = 2 ** 31;
/** Sub-revisions each op position owns. */
export const POSITION_BAND = 2 ** 19;
/** Positions are below this: POSITIONED_SUB_BASE + MAX_TXN_OP_POSITIONS × POSITION_BAND = 2^32 (u32 subs). */
export const MAX_TXN_OP_POSITIONS = 4096;

/** The first sub-revision the op at `position` may use. */
export function positionedSubFloor(position: number): number {
  return POSITIONED_SUB_BASE + position * POSITION_BAND;
}

/** The op position a record's sub-revision carries, or undefined for a plain write's. */
export function positionOfSub(sub: number): number | undefined {
  return sub >= POSITIONED_SUB_BASE ? Math.floor((sub - POSITIONED_SUB_BASE) / POSITION_BAND) : undefined;
}

/**
 * Whether `positions` can position a share of `opCount` ops: one per op, whole, strictly increasing
 * (a share keeps its ops in the transaction's order) and below MAX_TXN_OP_POSITIONS. A share whose
 * positions fail this is applied plain (every replica decides alike, from the entry alone).
 */
export function validPositions(positions: readonly number[] | undefined, opCount: number): positions is readonly number[] {
  if (positions === undefined || positions.length !== opCount || opCount === 0) return false;
  let last = -1;
  for (const p of positions) {
    if (!Number.isSafeInteger(p) || p <= last || p >= MAX_TXN_OP_POSITIONS) return false;
    last = p;
  }
  return true;
}

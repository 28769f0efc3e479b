// What a member that meets a staging transaction's intent past its deadline does next (docs/transactions.md,
// "Readers and writers that meet an intent"): the parallel-commits rule, as a pure decision over what the
// record and the participants answered. The caller performs the step, asks again, and repeats.
//
// A staging transaction is committed exactly when every participant's intent at C is in its log. So:
//   - all participants hold their intent  → record 'committed' (then resolve everywhere);
//   - a participant has none, and its floor is at or above C (fenced: its leader will never again
//     accept an entry at C) → its intent can never appear: record 'aborted';
//   - a participant has none and is not fenced yet → fence it first (closeAt(C) raises its floor to C),
//     because until then the coordinator's intent may still land;
//   - a participant did not answer → ask again later (nothing may be concluded from silence).
// A decided record is simply carried out. Safety does not depend on the deadline — only on the
// compare-and-set of txn-record.ts and on fencing — the deadline only keeps recoverers from racing a
// healthy coordinator.
import type { TxnRecord } from './txn-record.ts';

/** One participant's answer about the transaction's intent at C. */
export type ParticipantAnswer =
  | { readonly kind: 'intent' }
  /** No intent, and `floor` is the leader's floor now (≥ C: fenced). */
  | { readonly kind: 'no-intent'; readonly floor: number }
  | { readonly kind: 'unreachable' };

export type RecoveryStep =
  | { readonly kind: 'resolve'; readonly outcome: 'committed' | 'aborted' }
  | { readonly kind: 'record'; readonly outcome: 'committed' | 'aborted' }
  | { readonly kind: 'fence'; readonly shards: readonly number[] }
  | { readonly kind: 'ask-again'; readonly shards: readonly number[] }
  | { readonly kind: 'wait'; readonly untilMs: number };

export function recoveryStep(record: TxnRecord, nowMs: number, answers: ReadonlyMap<number, ParticipantAnswer>): RecoveryStep {
  if (record.status !== 'staging') return { kind: 'resolve', outcome: record.status };
  if (nowMs < record.deadlineMs) return { kind: 'wait', untilMs: record.deadlineMs };
  const missing: number[] = [];
  const unfenced: number[] = [];
  let fencedWithout = false;
  for (const shard of record.participants) {
    const a = answers.get(shard);
    if (a === undefined || a.kind === 'unreachable') missing.push(shard);
    else if (a.kind === 'no-intent') {
      if (a.floor >= record.revision) fencedWithout = true;
      else unfenced.push(shard);
    }
  }
  // One fenced participant without its intent decides it, whatever the others say.
  if (fencedWithout) return { kind: 'record', outcome: 'aborted' };
  if (unfenced.length > 0) return { kind: 'fence', shards: unfenced };
  if (missing.length > 0) return { kind: 'ask-again', shards: missing };
  return { kind: 'record', outcome: 'committed' };
}

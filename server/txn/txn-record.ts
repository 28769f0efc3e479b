// A cross-shard transaction's record (docs/transactions.md): what the primary shard stores about the
// transaction, and the only transitions it may take. Pure: the record lives in the primary shard's state
// machine, and every change to it is a Raft entry applied there, so every replica takes the same path.
//
// The record is created with the primary's intent (status 'staging', the participants and the revision C
// listed). From then on exactly one outcome is ever recorded:
//   staging → committed   (the coordinator saw every participant's intent committed, or a recoverer did)
//   staging → aborted     (an intent was refused, or a recoverer fenced a participant that had none)
// Each transition is a compare-and-set on the status: a decision made from a stale view (expecting
// 'staging' when the record is already decided) is refused and leaves the record as it is, so a
// coordinator and a recoverer racing cannot record two outcomes. Repeating the recorded outcome is
// accepted (an idempotent retry after a lost answer).

export type TxnStatus = 'staging' | 'committed' | 'aborted';

export interface TxnRecord {
  readonly txnId: string;
  /** The one revision every write of the transaction carries. */
  readonly revision: number;
  /** The shard holding this record (the shard of the transaction's first written key). */
  readonly primaryShard: number;
  /** Every shard with writes, the primary included, ascending. */
  readonly participants: readonly number[];
  /** After this (ms since the epoch) anyone meeting an intent of a staging transaction may recover it. */
  readonly deadlineMs: number;
  readonly status: TxnStatus;
}

export class TxnRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TxnRecordError';
  }
}

/** A staging record, checked: positive revision, the primary among the participants, no duplicates. */
export function stagingRecord(init: Omit<TxnRecord, 'status' | 'participants'> & { participants: readonly number[] }): TxnRecord {
  if (init.txnId === '') throw new TxnRecordError('txn record: empty transaction id');
  if (!Number.isSafeInteger(init.revision) || init.revision < 1) throw new TxnRecordError(`txn ${init.txnId}: revision ${init.revision} is not a positive integer`);
  const participants = [...new Set(init.participants)].sort((a, b) => a - b);
  if (participants.length !== init.participants.length) throw new TxnRecordError(`txn ${init.txnId}: a participant is listed twice`);
  if (participants.length < 2) throw new TxnRecordError(`txn ${init.txnId}: a cross-shard transaction has at least two participants (got ${participants.length})`);
  if (!participants.includes(init.primaryShard)) throw new TxnRecordError(`txn ${init.txnId}: the primary shard ${init.primaryShard} is not a participant`);
  return { ...init, participants, status: 'staging' };
}

export type DecideResult = { readonly kind: 'recorded'; readonly record: TxnRecord } | { readonly kind: 'refused'; readonly record: TxnRecord; readonly reason: string };

/**
 * Records `outcome` if the record's status is `expected` (the compare-and-set). Repeating the outcome
 * already recorded is 'recorded' with the record unchanged; anything else is 'refused' with the record
 * unchanged and why.
 */
export function decide(record: TxnRecord, expected: TxnStatus, outcome: 'committed' | 'aborted'): DecideResult {
  if (record.status === outcome) return { kind: 'recorded', record };
  if (record.status !== expected) return { kind: 'refused', record, reason: `txn ${record.txnId} is ${record.status}, not ${expected}` };
  if (record.status !== 'staging') return { kind: 'refused', record, reason: `txn ${record.txnId} is already ${record.status}` };
  return { kind: 'recorded', record: { ...record, status: outcome } };
}

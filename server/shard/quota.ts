// The space quota (etcd's --quota-backend-bytes). etcd measures its bbolt file; Synod keeps every
// retained MVCC record in memory and in LevelDB, so its measure is the MVCC store's logical size:
// keys + values + 32 bytes per retained record, live and historical (MvccStore.sizeBytes). Only
// compaction lowers it; defragment additionally makes LevelDB drop the compacted records from disk.
//
// As in etcd: a request that would take the size past the quota is refused on the member that
// received it with "etcdserver: mvcc: database space exceeded", and that member raises the NOSPACE
// alarm through Raft; while NOSPACE is raised, every member refuses puts, txns with puts and lease
// grants at apply time (reads, deletes, compaction, lease revokes still work) until `alarm disarm`.
import type { InternalRequestBody } from './request-codec.ts';
import type { TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';
import { RECORD_OVERHEAD_BYTES } from '../mvcc/store.ts';

/** etcd's default: 2 GiB. */
export const DEFAULT_QUOTA_BACKEND_BYTES = 2 * 1024 * 1024 * 1024;
/** etcd warns above 8 GiB; Synod keeps the store in memory, so it says so too. */
export const SUGGESTED_MAX_QUOTA_BACKEND_BYTES = 8 * 1024 * 1024 * 1024;

/** etcd's flag semantics: 0 means the default, a negative value disables the quota. */
export function effectiveQuotaBytes(flag: number): number {
  if (flag < 0) return Infinity;
  if (flag === 0) return DEFAULT_QUOTA_BACKEND_BYTES;
  return flag;
}

function byteLength(b: Uint8Array | string | null | undefined): number {
  if (!b) return 0;
  return typeof b === 'string' ? Buffer.byteLength(b) : b.length;
}

function branchCost(ops: WireRequestOp[] | undefined): number {
  let cost = 0;
  for (const op of ops ?? []) {
    if (op.request_put) cost += byteLength(op.request_put.key) + byteLength(op.request_put.value) + RECORD_OVERHEAD_BYTES;
    else if (op.request_txn) cost += txnCost(op.request_txn);
  }
  return cost;
}

/** As etcd's costTxn: the costlier branch (only one of them runs). */
function txnCost(t: TxnRequest): number {
  return Math.max(branchCost(t.success), branchCost(t.failure));
}

/**
 * What a request may add to the measure (etcd's quota Cost): its puts' keys and values plus the
 * per-record overhead; a lease grant costs one record. Zero for everything a full cluster must still
 * accept (deletes, compaction, reads, revokes, membership, auth).
 */
export function requestCost(body: InternalRequestBody): number {
  if ('put' in body && body.put) return byteLength(body.put.key) + byteLength(body.put.value) + RECORD_OVERHEAD_BYTES;
  if ('txn' in body && body.txn) return txnCost(body.txn);
  if ('txn_intent' in body && body.txn_intent && body.txn_intent.refused !== true) return txnCost(body.txn_intent.ops);
  if ('lease_grant' in body && body.lease_grant) return RECORD_OVERHEAD_BYTES;
  return 0;
}

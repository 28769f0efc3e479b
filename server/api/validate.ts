// Request validation with etcd's rules and errors (etcd's v3rpc key checks): what is rejected before
// anything is proposed, so bad input never reaches the Raft log.
import { ETCD_ERRORS, type EtcdErrorSpec } from '../etcd/errors.ts';
import type { DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';

const SORT_ORDERS = new Set(['NONE', 'ASCEND', 'DESCEND']);
const SORT_TARGETS = new Set(['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE']);

function isEmpty(b: Buffer | undefined | null): boolean {
  return !b || b.length === 0;
}

function isZero(v: string | number | undefined): boolean {
  return v === undefined || v === '' || Number(v) === 0;
}

export function checkRange(r: RangeRequest): EtcdErrorSpec | null {
  if (isEmpty(r.key)) return ETCD_ERRORS.EMPTY_KEY;
  if (!SORT_ORDERS.has(String(r.sort_order))) return ETCD_ERRORS.INVALID_SORT_OPTION;
  if (!SORT_TARGETS.has(String(r.sort_target))) return ETCD_ERRORS.INVALID_SORT_OPTION;
  return null;
}

export function checkPut(p: PutRequest): EtcdErrorSpec | null {
  if (isEmpty(p.key)) return ETCD_ERRORS.EMPTY_KEY;
  if (p.ignore_value && !isEmpty(p.value)) return ETCD_ERRORS.VALUE_PROVIDED;
  if (p.ignore_lease && !isZero(p.lease)) return ETCD_ERRORS.LEASE_PROVIDED;
  return null;
}

export function checkDelete(d: DeleteRangeRequest): EtcdErrorSpec | null {
  if (isEmpty(d.key)) return ETCD_ERRORS.EMPTY_KEY;
  return null;
}

function checkRequestOp(op: WireRequestOp, maxTxnOps: number): EtcdErrorSpec | null {
  if (op.request_range) return checkRange(op.request_range);
  if (op.request_put) return checkPut(op.request_put);
  if (op.request_delete_range) return checkDelete(op.request_delete_range);
  if (op.request_txn) return checkTxnRequest(op.request_txn, maxTxnOps);
  // A RequestOp with none of its oneof set: etcd's checkRequestOp default case.
  return ETCD_ERRORS.KEY_NOT_FOUND;
}

/**
 * etcd's Txn checks, in its order (the first failure is the answer): every op of every level
 * (checkTxnRequest), then, once all of them passed, overlapping writes (checkIntervals).
 */
export function checkTxn(t: TxnRequest, maxTxnOps: number): EtcdErrorSpec | null {
  const err = checkTxnRequest(t, maxTxnOps);
  if (err) return err;
  if (hasDuplicateWrites(t.success ?? []) || hasDuplicateWrites(t.failure ?? [])) return ETCD_ERRORS.DUPLICATE_KEY;
  return null;
}

/**
 * etcd's checkTxnRequest: a branch may hold at most `maxTxnOps` ops, and a nested txn gets what its
 * parent left (maxTxnOps minus the parent's op count), so nesting is bounded by the op budget alone,
 * never by a depth limit.
 */
function checkTxnRequest(t: TxnRequest, maxTxnOps: number): EtcdErrorSpec | null {
  const opCount = Math.max(t.compare?.length ?? 0, t.success?.length ?? 0, t.failure?.length ?? 0);
  if (opCount > maxTxnOps) return ETCD_ERRORS.TOO_MANY_OPS;
  for (const c of t.compare ?? []) if (isEmpty(c.key)) return ETCD_ERRORS.EMPTY_KEY;
  for (const op of t.success ?? []) {
    const err = checkRequestOp(op, maxTxnOps - opCount);
    if (err) return err;
  }
  for (const op of t.failure ?? []) {
    const err = checkRequestOp(op, maxTxnOps - opCount);
    if (err) return err;
  }
  return null;
}

interface BranchWrites {
  putKeys: Buffer[];
  deletes: Array<{ key: Buffer; rangeEnd: Buffer }>;
}

function inDeleteRange(key: Buffer, d: { key: Buffer; rangeEnd: Buffer }): boolean {
  if (isEmpty(d.rangeEnd)) return key.equals(d.key);
  if (d.rangeEnd.length === 1 && d.rangeEnd[0] === 0) return Buffer.compare(key, d.key) >= 0;
  return Buffer.compare(key, d.key) >= 0 && Buffer.compare(key, d.rangeEnd) < 0;
}

/**
 * etcd refuses a txn branch that puts the same key twice, or puts a key it also deletes, because the
 * outcome would depend on op order within one revision. Nested txns count with the branch they sit in
 * (either of their own branches may run).
 */
function collectWrites(ops: WireRequestOp[], into: BranchWrites, seen: Set<string>): boolean {
  for (const op of ops) {
    if (op.request_put) {
      const id = op.request_put.key.toString('hex');
      if (seen.has(id)) return true;
      seen.add(id);
      into.putKeys.push(op.request_put.key);
    } else if (op.request_delete_range) {
      into.deletes.push({ key: op.request_delete_range.key, rangeEnd: op.request_delete_range.range_end ?? Buffer.alloc(0) });
    } else if (op.request_txn) {
      // Each nested branch is checked on its own against what the outer branch already writes.
      for (const nested of [op.request_txn.success ?? [], op.request_txn.failure ?? []]) {
        const nestedInto: BranchWrites = { putKeys: [...into.putKeys], deletes: [...into.deletes] };
        if (collectWrites(nested, nestedInto, new Set(seen))) return true;
        if (nestedInto.putKeys.some((k) => nestedInto.deletes.some((d) => inDeleteRange(k, d)))) return true;
      }
    }
  }
  return false;
}

function hasDuplicateWrites(ops: WireRequestOp[]): boolean {
  const writes: BranchWrites = { putKeys: [], deletes: [] };
  if (collectWrites(ops, writes, new Set())) return true;
  return writes.putKeys.some((k) => writes.deletes.some((d) => inDeleteRange(k, d)));
}

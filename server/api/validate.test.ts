// Txn validation against etcd's checkTxnRequest/checkIntervals: the empty RequestOp, the op budget
// shrinking at each nesting level, and the order in which failures are found.
import { describe, expect, it } from 'vitest';
import { checkTxn } from './validate.ts';
import { ETCD_ERRORS } from '../etcd/errors.ts';
import type { TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';

const range = (k: string): WireRequestOp => ({ request: 'request_range', request_range: { key: Buffer.from(k), range_end: Buffer.alloc(0), sort_order: 'NONE', sort_target: 'KEY' } as never });
const put = (k: string): WireRequestOp => ({ request: 'request_put', request_put: { key: Buffer.from(k), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } });
const txn = (success: WireRequestOp[], failure: WireRequestOp[] = []): TxnRequest => ({ compare: [], success, failure });
const nested = (t: TxnRequest): WireRequestOp => ({ request: 'request_txn', request_txn: t });
const EMPTY_OP: WireRequestOp = {};

function deep(depth: number, innermost: WireRequestOp[]): TxnRequest {
  let t = txn(innermost);
  for (let i = 1; i < depth; i++) t = txn([nested(t)]);
  return t;
}

describe('checkTxn', () => {
  it('answers an empty RequestOp with etcd\'s "key not found", at any level and in either branch', () => {
    expect(checkTxn(txn([EMPTY_OP]), 128)).toBe(ETCD_ERRORS.KEY_NOT_FOUND);
    expect(checkTxn(txn([], [EMPTY_OP]), 128)).toBe(ETCD_ERRORS.KEY_NOT_FOUND);
    expect(checkTxn(deep(3, [EMPTY_OP]), 128)).toBe(ETCD_ERRORS.KEY_NOT_FOUND);
  });

  it('limits nesting only through the op budget, which shrinks by each level\'s op count', () => {
    expect(checkTxn(deep(100, [range('k')]), 128)).toBeNull();
    expect(checkTxn(deep(128, [range('k')]), 128)).toBeNull();
    expect(checkTxn(deep(129, [range('k')]), 128)).toBe(ETCD_ERRORS.TOO_MANY_OPS);
    // An empty innermost txn needs no budget: one level more passes.
    expect(checkTxn(deep(129, []), 128)).toBeNull();
    expect(checkTxn(deep(130, []), 128)).toBe(ETCD_ERRORS.TOO_MANY_OPS);
    // A nested txn gets 128 - 1: 127 ops pass, 128 do not.
    const ops = (n: number): WireRequestOp[] => Array.from({ length: n }, (_, i) => range(`k${i}`));
    expect(checkTxn(txn([nested(txn(ops(127)))]), 128)).toBeNull();
    expect(checkTxn(txn([nested(txn(ops(128)))]), 128)).toBe(ETCD_ERRORS.TOO_MANY_OPS);
  });

  it('finds every op failure before overlapping writes, as etcd checks intervals last', () => {
    const dupInside = nested(txn([put('a'), put('a')]));
    expect(checkTxn(txn([dupInside]), 128)).toBe(ETCD_ERRORS.DUPLICATE_KEY);
    expect(checkTxn(txn([dupInside, EMPTY_OP]), 128)).toBe(ETCD_ERRORS.KEY_NOT_FOUND);
  });
});

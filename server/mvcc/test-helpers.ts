// Request builders shared by the mvcc tests.
import { rangeOf, type Compare, type CompareResult, type CompareTarget, type DeleteRangeOp, type PutOp, type RangeOp, type RequestOp, type TxnOp } from './types.ts';

export const b = (x: string): Buffer => Buffer.from(x, 'latin1');

export function rangeOp(key: string, rangeEnd = '', o: Partial<RangeOp> = {}): RangeOp {
  return rangeOf(b(key), b(rangeEnd), o);
}

export function putOp(key: string, value: string, o: Partial<PutOp> = {}): PutOp {
  return { key: b(key), value: b(value), lease: '0', prevKv: false, ignoreValue: false, ignoreLease: false, ...o };
}

export function delOp(key: string, rangeEnd = '', prevKv = false): DeleteRangeOp {
  return { key: b(key), rangeEnd: b(rangeEnd), prevKv };
}

export function cmp(key: string, target: CompareTarget, result: CompareResult, v: number | string, rangeEnd = ''): Compare {
  return {
    key: b(key),
    rangeEnd: b(rangeEnd),
    target,
    result,
    version: target === 'VERSION' ? Number(v) : 0,
    createRevision: target === 'CREATE' ? Number(v) : 0,
    modRevision: target === 'MOD' ? Number(v) : 0,
    value: target === 'VALUE' ? b(String(v)) : Buffer.alloc(0),
    lease: target === 'LEASE' ? String(v) : '0',
  };
}

export const rq = {
  range: (r: RangeOp): RequestOp => ({ type: 'range', range: r }),
  put: (p: PutOp): RequestOp => ({ type: 'put', put: p }),
  del: (d: DeleteRangeOp): RequestOp => ({ type: 'deleteRange', deleteRange: d }),
  txn: (t: TxnOp): RequestOp => ({ type: 'txn', txn: t }),
};

export function txnOp(compare: Compare[], success: RequestOp[], failure: RequestOp[] = []): TxnOp {
  return { compare, success, failure };
}

export const keysOf = (kvs: Array<{ key: Buffer }>): string[] => kvs.map((kv) => kv.key.toString('latin1'));

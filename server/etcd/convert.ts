// Mapping between etcd's wire messages (as proto-loader delivers them) and the MVCC store's typed
// operations and results. Pure functions; validation lives in validate.ts.
import type {
  Compare,
  CompareResult,
  CompareTarget,
  DeleteRangeOp,
  KeyValue,
  PutOp,
  RangeOp,
  RangeResult,
  RequestOp,
  ResponseOp,
  SortOrder,
  SortTarget,
  TxnOp,
  TxnResult,
  MvccEvent,
} from '../mvcc/types.ts';
import type {
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  TxnRequest,
  WireCompare,
  WireKeyValue,
  WireRequestOp,
} from './wire-types.ts';

const EMPTY = Buffer.alloc(0);

export function num(v: string | number | undefined | null): number {
  if (v === undefined || v === null || v === '') return 0;
  return typeof v === 'number' ? v : Number(v);
}

function buf(b: Buffer | Uint8Array | undefined | null): Buffer {
  if (!b) return EMPTY;
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export function rangeOpFromWire(r: RangeRequest): RangeOp {
  return {
    key: buf(r.key),
    rangeEnd: buf(r.range_end),
    limit: num(r.limit),
    revision: num(r.revision),
    sortOrder: (r.sort_order || 'NONE') as SortOrder,
    sortTarget: (r.sort_target || 'KEY') as SortTarget,
    keysOnly: !!r.keys_only,
    countOnly: !!r.count_only,
    minModRevision: num(r.min_mod_revision),
    maxModRevision: num(r.max_mod_revision),
    minCreateRevision: num(r.min_create_revision),
    maxCreateRevision: num(r.max_create_revision),
  };
}

export function putOpFromWire(p: PutRequest): PutOp {
  return {
    key: buf(p.key),
    value: buf(p.value),
    lease: String(p.lease ?? '0') || '0',
    prevKv: !!p.prev_kv,
    ignoreValue: !!p.ignore_value,
    ignoreLease: !!p.ignore_lease,
  };
}

export function deleteOpFromWire(d: DeleteRangeRequest): DeleteRangeOp {
  return { key: buf(d.key), rangeEnd: buf(d.range_end), prevKv: !!d.prev_kv };
}

export function compareFromWire(c: WireCompare): Compare {
  return {
    result: (c.result || 'EQUAL') as CompareResult,
    target: (c.target || 'VERSION') as CompareTarget,
    key: buf(c.key),
    rangeEnd: buf(c.range_end),
    version: num(c.version),
    createRevision: num(c.create_revision),
    modRevision: num(c.mod_revision),
    value: buf(c.value),
    lease: String(c.lease ?? '0') || '0',
  };
}

export function requestOpFromWire(op: WireRequestOp): RequestOp {
  if (op.request_range) return { type: 'range', range: rangeOpFromWire(op.request_range) };
  if (op.request_put) return { type: 'put', put: putOpFromWire(op.request_put) };
  if (op.request_delete_range) return { type: 'deleteRange', deleteRange: deleteOpFromWire(op.request_delete_range) };
  if (op.request_txn) return { type: 'txn', txn: txnOpFromWire(op.request_txn) };
  // etcd treats an empty RequestOp as a no-op range-less request; it cannot reach the store.
  throw new Error('empty RequestOp');
}

export function txnOpFromWire(t: TxnRequest): TxnOp {
  return {
    compare: (t.compare ?? []).map(compareFromWire),
    success: (t.success ?? []).map(requestOpFromWire),
    failure: (t.failure ?? []).map(requestOpFromWire),
  };
}

/** True when a txn (including nested ones) writes nothing: it can be served as a read. */
export function txnIsReadOnly(t: TxnRequest): boolean {
  const opsReadOnly = (ops: WireRequestOp[]): boolean =>
    (ops ?? []).every((op) => {
      if (op.request_put || op.request_delete_range) return false;
      if (op.request_txn) return txnIsReadOnly(op.request_txn);
      return true;
    });
  return opsReadOnly(t.success) && opsReadOnly(t.failure);
}

export function kvToWire(kv: KeyValue): WireKeyValue {
  return {
    key: kv.key,
    create_revision: kv.createRevision,
    mod_revision: kv.modRevision,
    version: kv.version,
    value: kv.value,
    lease: kv.lease,
  };
}

export interface WireRangeResponseBody {
  kvs: WireKeyValue[];
  more: boolean;
  count: number;
}

export function rangeResultToWire(r: RangeResult): WireRangeResponseBody {
  return { kvs: r.kvs.map(kvToWire), more: r.more, count: r.count };
}

export interface WireTxnResponseBody {
  succeeded: boolean;
  responses: unknown[];
}

function responseOpToWire(op: ResponseOp, txnHeader: { revision: string }): unknown {
  // Each op's header names its own revision when the store gave one (ResponseOp), else the txn's.
  const header = op.type !== 'txn' && op.revision !== undefined ? { revision: String(op.revision) } : txnHeader;
  switch (op.type) {
    case 'range':
      return { response_range: { header, ...rangeResultToWire(op.range) } };
    case 'put':
      return { response_put: { header, prev_kv: op.put.prevKv ? kvToWire(op.put.prevKv) : null } };
    case 'deleteRange':
      return {
        response_delete_range: {
          header,
          deleted: op.deleteRange.deleted,
          prev_kvs: op.deleteRange.prevKvs.map(kvToWire),
        },
      };
    case 'txn':
      // etcd leaves a nested txn's own header empty.
      return { response_txn: { header: {}, ...txnResultToWire(op.txn, txnHeader) } };
  }
}

/** Responses inside a txn carry only the revision in their header, as etcd's do. */
export function txnResultToWire(r: TxnResult, header: { revision: string }): WireTxnResponseBody {
  const inner = { revision: header.revision };
  return { succeeded: r.succeeded, responses: r.responses.map((op) => responseOpToWire(op, inner)) };
}

export function eventToWire(e: MvccEvent, withPrevKv: boolean): unknown {
  return {
    type: e.type,
    kv: kvToWire(e.kv),
    prev_kv: withPrevKv && e.prevKv ? kvToWire(e.prevKv) : null,
  };
}

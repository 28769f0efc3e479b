// Types of the MVCC state machine: the operations it applies and the results it returns.
// These mirror etcd's KV messages (camelCase, revisions as numbers) so the API layer maps
// 1:1 and the store stays free of gRPC and protobuf.

/** Lease ids are int64 on the wire; kept as decimal strings ("0" = no lease) so no precision is lost. */
export type LeaseId = string;

export interface KeyValue {
  key: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Buffer;
  lease: LeaseId;
}

export type SortOrder = 'NONE' | 'ASCEND' | 'DESCEND';
export type SortTarget = 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE';

export interface RangeOp {
  key: Buffer;
  /** Empty: single key. "\0": every key >= key. Otherwise the half-open range [key, rangeEnd). */
  rangeEnd: Buffer;
  /** 0 = no limit. */
  limit: number;
  /** 0 = current revision. */
  revision: number;
  sortOrder: SortOrder;
  sortTarget: SortTarget;
  keysOnly: boolean;
  countOnly: boolean;
  /** 0 = no bound, as in etcd. */
  minModRevision: number;
  maxModRevision: number;
  minCreateRevision: number;
  maxCreateRevision: number;
}

/** A RangeOp over [key, rangeEnd) (empty `rangeEnd`: the one key) with etcd's defaults for everything else. */
export function rangeOf(key: Buffer, rangeEnd: Buffer = Buffer.alloc(0), options: Partial<RangeOp> = {}): RangeOp {
  return {
    key,
    rangeEnd,
    limit: 0,
    revision: 0,
    sortOrder: 'NONE',
    sortTarget: 'KEY',
    keysOnly: false,
    countOnly: false,
    minModRevision: 0,
    maxModRevision: 0,
    minCreateRevision: 0,
    maxCreateRevision: 0,
    ...options,
  };
}

export interface RangeResult {
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutOp {
  key: Buffer;
  value: Buffer;
  lease: LeaseId;
  prevKv: boolean;
  ignoreValue: boolean;
  ignoreLease: boolean;
}

export interface PutResult {
  prevKv: KeyValue | null;
}

export interface DeleteRangeOp {
  key: Buffer;
  rangeEnd: Buffer;
  prevKv: boolean;
}

export interface DeleteRangeResult {
  deleted: number;
  prevKvs: KeyValue[];
}

export type CompareResult = 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL';
export type CompareTarget = 'VERSION' | 'CREATE' | 'MOD' | 'VALUE' | 'LEASE';

export interface Compare {
  result: CompareResult;
  target: CompareTarget;
  key: Buffer;
  rangeEnd: Buffer;
  /** Exactly one of these is meaningful, chosen by target. */
  version: number;
  createRevision: number;
  modRevision: number;
  value: Buffer;
  lease: LeaseId;
}

export type RequestOp =
  | { type: 'range'; range: RangeOp }
  | { type: 'put'; put: PutOp }
  | { type: 'deleteRange'; deleteRange: DeleteRangeOp }
  | { type: 'txn'; txn: TxnOp };

export interface TxnOp {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

/**
 * One op's answer inside a txn. `revision` is what its header names, as etcd's store gives it at that op:
 * a range reads the revision before the txn until the txn has changed something, then the txn's own; a
 * put names the txn's revision; a delete the txn's once anything changed. Absent (a cross-shard txn's
 * ops, an answer from a member that predates it): the txn's header revision.
 */
export type ResponseOp =
  | { type: 'range'; range: RangeResult; revision?: number }
  | { type: 'put'; put: PutResult; revision?: number }
  | { type: 'deleteRange'; deleteRange: DeleteRangeResult; revision?: number }
  | { type: 'txn'; txn: TxnResult };

export interface TxnResult {
  succeeded: boolean;
  responses: ResponseOp[];
}

export type EventType = 'PUT' | 'DELETE';

export interface MvccEvent {
  type: EventType;
  /** For DELETE: key set, modRevision = deletion revision, other fields zero/empty (as etcd sends). */
  kv: KeyValue;
  /** The previous version of the key, or null when it did not exist. Always computed; watchers drop it unless asked. */
  prevKv: KeyValue | null;
  /**
   * In a cross-shard transaction's revision: the place in the whole transaction of the op that made this
   * event (server/mvcc/txn-op-position.ts). A watch over several shards orders the revision's events by
   * it, then by key, as etcd orders a txn's. Absent for every other write.
   */
  txnOpIndex?: number;
}

/** `ev` without its previous key-value (a watcher that did not ask for them). */
export function withoutPrevKv(ev: MvccEvent): MvccEvent {
  const out: MvccEvent = { type: ev.type, kv: ev.kv, prevKv: null };
  if (ev.txnOpIndex !== undefined) out.txnOpIndex = ev.txnOpIndex;
  return out;
}

/**
 * Errors the store raises for bad requests. `code` names the etcd error; the API layer maps it to
 * etcd's gRPC status and text (see server/etcd/errors.ts).
 */
export type MvccErrorCode =
  | 'compacted' // etcdserver: mvcc: required revision has been compacted
  | 'futureRev' // etcdserver: mvcc: required revision is a future revision
  | 'leaseNotFound' // etcdserver: requested lease not found
  | 'keyNotFound'; // etcdserver: key not found (put with ignore_value/ignore_lease on a missing key)

export class MvccError extends Error {
  readonly code: MvccErrorCode;
  constructor(code: MvccErrorCode, message: string) {
    super(message);
    this.code = code;
    this.name = 'MvccError';
  }
}

// The ShardKv peer RPC (proto/synod/shard_peer.proto): one single-shard KV operation a member that does
// not host a shard has a member that does execute. Owns the in-memory shapes of its request and answer
// and their exact conversion to and from the wire; nothing is decided here.
// Safe because every decoder checks what it reads, as shard-peer-wire.ts does: a 64-bit number that is
// not a safe integer, a status code that is not gRPC's, a lease id that is not a decimal integer, a
// missing oneof throws WireError (the receiver refuses the message; nothing is defaulted silently).
import type { TxnRequest } from '../etcd/wire-types.ts';
import type { KeyValue, RangeOp, RangeResult, ResponseOp, TxnResult } from '../mvcc/types.ts';
import type { NodeId } from '../raft/types.ts';
import type { TxnRecoveryResult } from '../txn/shard-txn-table.ts';
import {
  WireError,
  keyValueFromWire,
  keyValueToWire,
  rangeOpFromWire,
  rangeOpToWire,
  rangeResultFromWire,
  rangeResultToWire,
  rangeResultWireBytes,
  deadlineFromWire,
  deadlineToWire,
  safeInt,
  type KeyValueWire,
  type RangeAtResponseWire,
  type RangeOpWire,
} from './shard-peer-wire.ts';

/** What the host is asked to do on its replica of the shard. */
export type ShardKvOp =
  /** A one-shard Range as a hosting member serves it (ReadIndex first unless serializable). */
  | { readonly kind: 'range'; readonly op: RangeOp; readonly serializable: boolean }
  /** A txn that writes nothing, every key of it on the shard. */
  | { readonly kind: 'read-txn'; readonly txn: TxnRequest; readonly serializable: boolean }
  /** An InternalRequest (proposer and seq unset) to propose to the shard's group as the host's own. */
  | { readonly kind: 'write'; readonly entry: Uint8Array; readonly internal: boolean }
  /** The keys attached to a lease on the shard, after its ReadIndex. */
  | { readonly kind: 'lease-keys'; readonly leaseId: string };

export interface ShardKvRequest {
  readonly groupId: number;
  /** Absolute ms since the epoch. */
  readonly deadlineMs: number;
  readonly op: ShardKvOp;
}

export type ShardKvPayload =
  | { readonly kind: 'range'; readonly result: RangeResult }
  | { readonly kind: 'response'; readonly response: ResponseOp }
  | { readonly kind: 'keys'; readonly keys: Buffer[] }
  | { readonly kind: 'nothing' }
  /** A txn_recover's answer (on the wire also as a txn whose `succeeded` says committed, for older members). */
  | { readonly kind: 'recovery'; readonly recovery: TxnRecoveryResult };

/** The host's answer. `leaderId`: the shard's leader as the host knows it (0 unknown). */
export type ShardKvAnswer =
  | { readonly kind: 'done'; readonly revision: number; readonly raftTerm: number; readonly payload: ShardKvPayload; readonly leaderId: NodeId }
  | { readonly kind: 'not-hosted'; readonly leaderId: NodeId }
  | { readonly kind: 'beyond-applied'; readonly applied: number; readonly leaderId: NodeId }
  /** What the client gets: a gRPC status code and etcd's exact text. */
  | { readonly kind: 'error'; readonly code: number; readonly message: string; readonly leaderId: NodeId };

// ---- wire shapes (proto-loader, LOADER_OPTIONS: 64-bit as decimal strings when received) -----------

type Long64 = string | number;

/** An op's own header revision (ResponseOp.revision) travels in its etcd header; absent from older members. */
interface OpHeaderWire {
  header?: { revision?: Long64 } | null;
}

export interface ResponseOpWire {
  response?: 'response_range' | 'response_put' | 'response_delete_range' | 'response_txn';
  response_range?: ({ kvs: KeyValueWire[]; more: boolean; count: Long64 } & OpHeaderWire) | null;
  response_put?: ({ prev_kv: KeyValueWire | null } & OpHeaderWire) | null;
  response_delete_range?: ({ deleted: Long64; prev_kvs: KeyValueWire[] } & OpHeaderWire) | null;
  response_txn?: { succeeded: boolean; responses: ResponseOpWire[] } | null;
}

export interface ShardKvRequestWire {
  group_id: number;
  deadline_ms: Long64;
  timeout_ms?: Long64;
  op?: 'range' | 'read_txn' | 'write' | 'lease_keys';
  range?: { range: RangeOpWire | null; serializable: boolean } | null;
  read_txn?: { txn: TxnRequest | null; serializable: boolean } | null;
  write?: { entry: Buffer; internal: boolean } | null;
  lease_keys?: { lease_id: string } | null;
}

export interface ShardKvResponseWire {
  result?: 'done' | 'not_hosted' | 'beyond_applied' | 'error';
  done?: {
    revision: Long64;
    raft_term: Long64;
    payload?: 'range' | 'response' | 'keys' | 'nothing';
    range?: NonNullable<RangeAtResponseWire['range']> | null;
    response?: ResponseOpWire | null;
    keys?: { keys: Buffer[] } | null;
    nothing?: Record<string, never> | null;
    txn_recovery?: { state: 'ABORTED' | 'PREPARED' | 'COMMITTED' | number; failure_branch: boolean } | null;
  } | null;
  not_hosted?: Record<string, never> | null;
  beyond_applied?: { applied: Long64 } | null;
  error?: { code: number; message: string } | null;
  leader_id: Long64;
}

const LEASE_ID = /^-?[0-9]{1,20}$/;
/** gRPC status codes a host may answer with (OK is not an error). */
const MAX_STATUS_CODE = 16;

export function shardKvRequestToWire(r: ShardKvRequest): ShardKvRequestWire {
  const base = { group_id: r.groupId, ...deadlineToWire(r.deadlineMs) };
  const op = r.op;
  switch (op.kind) {
    case 'range':
      return { ...base, range: { range: rangeOpToWire(op.op), serializable: op.serializable } };
    case 'read-txn':
      return { ...base, read_txn: { txn: op.txn, serializable: op.serializable } };
    case 'write':
      return { ...base, write: { entry: Buffer.from(op.entry.buffer, op.entry.byteOffset, op.entry.byteLength), internal: op.internal } };
    case 'lease-keys':
      return { ...base, lease_keys: { lease_id: op.leaseId } };
  }
}

export function shardKvRequestFromWire(w: ShardKvRequestWire): ShardKvRequest {
  const groupId = w.group_id;
  if (!Number.isSafeInteger(groupId) || groupId < 0) throw new WireError(`group_id: ${String(groupId)} is not a group id`);
  const deadlineMs = deadlineFromWire(w);
  const op = ((): ShardKvOp => {
    switch (w.op) {
      case 'range':
        if (!w.range) throw new WireError('range: missing');
        return { kind: 'range', op: rangeOpFromWire(w.range.range), serializable: w.range.serializable === true };
      case 'read_txn':
        if (!w.read_txn?.txn) throw new WireError('read_txn: missing txn');
        return { kind: 'read-txn', txn: w.read_txn.txn, serializable: w.read_txn.serializable === true };
      case 'write':
        if (!w.write || !Buffer.isBuffer(w.write.entry) || w.write.entry.length === 0) throw new WireError('write: missing entry');
        return { kind: 'write', entry: w.write.entry, internal: w.write.internal === true };
      case 'lease_keys': {
        const id = w.lease_keys?.lease_id ?? '';
        if (!LEASE_ID.test(id)) throw new WireError(`lease_keys: lease id ${JSON.stringify(id)} is not a decimal integer`);
        return { kind: 'lease-keys', leaseId: id };
      }
      default:
        throw new WireError(`shard kv request without a known op (${String(w.op)})`);
    }
  })();
  return { groupId, deadlineMs, op };
}

function opHeaderToWire(revision: number | undefined): OpHeaderWire {
  return revision === undefined ? {} : { header: { revision: String(revision) } };
}

/** The op's own revision from its header (0 or absent: none given). */
function opRevisionFromWire(w: OpHeaderWire | null | undefined): { revision?: number } {
  const r = w?.header?.revision;
  const n = r === undefined || r === null ? 0 : Number(r);
  return Number.isSafeInteger(n) && n > 0 ? { revision: n } : {};
}

function responseOpToWire(op: ResponseOp): ResponseOpWire {
  switch (op.type) {
    case 'range':
      return { response_range: { ...rangeResultToWire(op.range), ...opHeaderToWire(op.revision) } };
    case 'put':
      return { response_put: { prev_kv: op.put.prevKv ? keyValueToWire(op.put.prevKv) : null, ...opHeaderToWire(op.revision) } };
    case 'deleteRange':
      return { response_delete_range: { deleted: op.deleteRange.deleted, prev_kvs: op.deleteRange.prevKvs.map(keyValueToWire), ...opHeaderToWire(op.revision) } };
    case 'txn':
      return { response_txn: txnResultToWire(op.txn) };
  }
}

function txnResultToWire(r: TxnResult): NonNullable<ResponseOpWire['response_txn']> {
  return { succeeded: r.succeeded, responses: r.responses.map(responseOpToWire) };
}

function kvs(list: KeyValueWire[] | null | undefined): KeyValue[] {
  return (list ?? []).map(keyValueFromWire);
}

export function responseOpFromWire(w: ResponseOpWire): ResponseOp {
  switch (w.response) {
    case 'response_range':
      if (!w.response_range) throw new WireError('response_range: missing');
      return { type: 'range', range: rangeResultFromWire(w.response_range), ...opRevisionFromWire(w.response_range) };
    case 'response_put': {
      const prev = w.response_put?.prev_kv;
      return { type: 'put', put: { prevKv: prev ? keyValueFromWire(prev) : null }, ...opRevisionFromWire(w.response_put) };
    }
    case 'response_delete_range': {
      const d = w.response_delete_range;
      if (!d) throw new WireError('response_delete_range: missing');
      return { type: 'deleteRange', deleteRange: { deleted: safeInt(d.deleted, 'deleted'), prevKvs: kvs(d.prev_kvs) }, ...opRevisionFromWire(d) };
    }
    case 'response_txn': {
      const t = w.response_txn;
      if (!t) throw new WireError('response_txn: missing');
      return { type: 'txn', txn: { succeeded: t.succeeded === true, responses: (t.responses ?? []).map(responseOpFromWire) } };
    }
    default:
      throw new WireError(`response op without a known response (${String(w.response)})`);
  }
}

export function shardKvAnswerToWire(a: ShardKvAnswer): ShardKvResponseWire {
  const leader_id = a.leaderId;
  switch (a.kind) {
    case 'done': {
      const p = a.payload;
      const payload =
        p.kind === 'range'
          ? { range: rangeResultToWire(p.result) }
          : p.kind === 'response'
            ? { response: responseOpToWire(p.response) }
            : p.kind === 'keys'
              ? { keys: { keys: p.keys } }
              : p.kind === 'recovery'
                ? {
                    response: responseOpToWire({ type: 'txn', txn: { succeeded: p.recovery.state === 'committed', responses: [] } }),
                    txn_recovery: { state: RECOVERY_STATE_TO_WIRE[p.recovery.state], failure_branch: p.recovery.failureBranch },
                  }
                : { nothing: {} };
      return { done: { revision: a.revision, raft_term: a.raftTerm, ...payload }, leader_id };
    }
    case 'not-hosted':
      return { not_hosted: {}, leader_id };
    case 'beyond-applied':
      return { beyond_applied: { applied: a.applied }, leader_id };
    case 'error':
      return { error: { code: a.code, message: a.message }, leader_id };
  }
}

const RECOVERY_STATE_TO_WIRE = { aborted: 'ABORTED', prepared: 'PREPARED', committed: 'COMMITTED' } as const;

function recoveryFromWire(w: NonNullable<NonNullable<ShardKvResponseWire['done']>['txn_recovery']>): TxnRecoveryResult {
  const state = w.state === 'COMMITTED' || w.state === 2 ? 'committed' : w.state === 'PREPARED' || w.state === 1 ? 'prepared' : w.state === 'ABORTED' || w.state === 0 ? 'aborted' : null;
  if (state === null) throw new WireError(`txn_recovery.state: ${String(w.state)} is not a recovery state`);
  return { state, failureBranch: w.failure_branch === true };
}

export function shardKvAnswerFromWire(w: ShardKvResponseWire): ShardKvAnswer {
  const leaderId = safeInt(w.leader_id, 'leader_id');
  switch (w.result) {
    case 'done': {
      const d = w.done;
      if (!d) throw new WireError('done: missing');
      const revision = safeInt(d.revision, 'revision');
      const raftTerm = safeInt(d.raft_term, 'raft_term');
      let payload: ShardKvPayload;
      switch (d.payload) {
        case 'range':
          if (!d.range) throw new WireError('done.range: missing');
          payload = { kind: 'range', result: rangeResultFromWire(d.range) };
          break;
        case 'response':
          if (!d.response) throw new WireError('done.response: missing');
          payload = d.txn_recovery ? { kind: 'recovery', recovery: recoveryFromWire(d.txn_recovery) } : { kind: 'response', response: responseOpFromWire(d.response) };
          break;
        case 'keys':
          payload = { kind: 'keys', keys: (d.keys?.keys ?? []).map((k) => Buffer.from(k)) };
          break;
        case 'nothing':
          payload = { kind: 'nothing' };
          break;
        default:
          throw new WireError(`done without a known payload (${String(d.payload)})`);
      }
      return { kind: 'done', revision, raftTerm, payload, leaderId };
    }
    case 'not_hosted':
      return { kind: 'not-hosted', leaderId };
    case 'beyond_applied':
      return { kind: 'beyond-applied', applied: safeInt(w.beyond_applied?.applied, 'applied'), leaderId };
    case 'error': {
      const e = w.error;
      if (!e) throw new WireError('error: missing');
      if (!Number.isInteger(e.code) || e.code < 1 || e.code > MAX_STATUS_CODE) throw new WireError(`error.code: ${String(e.code)} is not a gRPC error status`);
      return { kind: 'error', code: e.code, message: e.message ?? '', leaderId };
    }
    default:
      throw new WireError(`shard kv answer without a known result (${String(w.result)})`);
  }
}

function responseOpWireBytes(op: ResponseOp): number {
  switch (op.type) {
    case 'range':
      return rangeResultWireBytes(op.range);
    case 'put':
      return 16 + (op.put.prevKv ? rangeResultWireBytes({ kvs: [op.put.prevKv], more: false, count: 1 }) : 0);
    case 'deleteRange':
      return rangeResultWireBytes({ kvs: op.deleteRange.prevKvs, more: false, count: 0 });
    case 'txn':
      return op.txn.responses.reduce((n, r) => n + 16 + responseOpWireBytes(r), 16);
  }
}

/** Upper bound of an answer's encoded size (bytes): checked against the peer message cap before sending. */
export function shardKvAnswerWireBytes(a: ShardKvAnswer): number {
  if (a.kind !== 'done') return 64 + (a.kind === 'error' ? Buffer.byteLength(a.message) : 0);
  const p = a.payload;
  const payload = p.kind === 'range' ? rangeResultWireBytes(p.result) : p.kind === 'response' ? responseOpWireBytes(p.response) : p.kind === 'keys' ? p.keys.reduce((n, k) => n + k.length + 8, 0) : p.kind === 'recovery' ? 16 : 0;
  return 64 + payload;
}

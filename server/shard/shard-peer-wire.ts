// The wire shapes of proto/synod/shard_peer.proto (synod.shard.ShardPeer) and their exact conversion to
// and from the in-memory types: oracle-protocol.ts's OracleRequest/OracleResponse and mvcc/types.ts's
// RangeOp/RangeResult/KeyValue. Owns only the mapping, so both ends of the peer RPCs agree on it.
// Safe because every decoder checks what it reads: a 64-bit number that is not a safe integer, an
// unknown enum name or a missing oneof throws WireError (the receiver refuses the message; nothing is
// rounded or defaulted silently). Bytes are Buffers both ways; proto3 cannot tell an empty bytes field
// from an absent one, which is exactly RangeOp's meaning (empty rangeEnd: the one key).
import * as grpc from '@grpc/grpc-js';
import { LOADER_OPTIONS } from '../etcd/proto.ts';
import { grpcServiceClient } from '../protobuf/proto-schemas.ts';
import type { KeyValue, MvccEvent, RangeOp, RangeResult, SortOrder, SortTarget } from '../mvcc/types.ts';
import type { OracleRequest, OracleResponse } from './oracle-protocol.ts';

export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

/** 64-bit fields: numbers when sent, decimal strings when received (LOADER_OPTIONS longs: String). */
type Long64 = string | number;

export interface OracleRequestWire {
  requester: string;
  request_id: Long64;
  count: number;
  deadline_ms: Long64;
  timeout_ms?: Long64;
}

export interface OracleResponseWire {
  request_id: Long64;
  result?: 'granted' | 'not_leader' | 'unavailable' | 'bad_request' | 'deadline';
  granted?: { first: Long64; last: Long64; term: Long64 } | null;
  not_leader?: { leader_id: Long64; term: Long64 } | null;
  unavailable?: { reason: string } | null;
  bad_request?: { reason: string } | null;
  deadline?: Record<string, never> | null;
}

export interface RangeOpWire {
  key: Buffer;
  range_end: Buffer;
  limit: Long64;
  revision: Long64;
  sort_order: SortOrder;
  sort_target: SortTarget;
  keys_only: boolean;
  count_only: boolean;
  min_mod_revision: Long64;
  max_mod_revision: Long64;
  min_create_revision: Long64;
  max_create_revision: Long64;
}

export interface KeyValueWire {
  key: Buffer;
  create_revision: Long64;
  mod_revision: Long64;
  version: Long64;
  value: Buffer;
  lease: Long64;
}

export interface RangeAtRequestWire {
  group_id: number;
  revision: Long64;
  range: RangeOpWire | null;
  deadline_ms: Long64;
  timeout_ms?: Long64;
  /** Answers over this many bytes come in pages (0 or absent: whole). */
  page_bytes?: Long64;
  /** A page after the first: look for its end before computing an answer. */
  continued?: boolean;
}

export type RangeErrorKind = 'INTERNAL' | 'UNAVAILABLE' | 'DEADLINE' | 'COMPACTED' | 'FUTURE_REV' | 'TOO_LARGE' | 'BAD_REQUEST' | 'RETRY_SINGLY';

export interface RangeAtResponseWire {
  result?: 'range' | 'not_leader' | 'error';
  range?: { kvs: KeyValueWire[]; more: boolean; count: Long64 } | null;
  not_leader?: { leader_id: Long64 } | null;
  error?: { kind: RangeErrorKind; message: string } | null;
  /** With range: it answers the keys below page_end only. */
  paged?: boolean;
  page_end?: Buffer;
}

export interface CloseAtRequestWire {
  group_id: number;
  revision: Long64;
  deadline_ms: Long64;
  timeout_ms?: Long64;
}

export interface CloseAtResponseWire {
  result?: 'closed' | 'not_leader' | 'error';
  closed?: { revision: Long64; applied_index: Long64 } | null;
  not_leader?: { leader_id: Long64 } | null;
  error?: { kind: RangeErrorKind; message: string } | null;
}

export interface RangeAtBatchRequestWire {
  requests: RangeAtRequestWire[];
}

export interface RangeAtBatchResponseWire {
  responses: RangeAtResponseWire[];
}

export interface CloseAtBatchRequestWire {
  requests: CloseAtRequestWire[];
}

export interface CloseAtBatchResponseWire {
  responses: CloseAtResponseWire[];
}

let service: grpc.ServiceClientConstructor | undefined;
/** The ShardPeer client constructor (its `.service` is the definition to add to the peer server). */
export function shardPeerService(): grpc.ServiceClientConstructor {
  if (!service) {
    service = grpcServiceClient('synod.shard.ShardPeer', LOADER_OPTIONS);
  }
  return service;
}

/** A received 64-bit number as a safe integer, or WireError. */
export function safeInt(v: Long64 | undefined | null, field: string): number {
  const n = typeof v === 'number' ? v : Number(v ?? 0);
  if (!Number.isSafeInteger(n)) throw new WireError(`${field}: ${String(v)} is not a safe integer`);
  return n;
}

/** An absolute deadline for the wire: integer ms, never earlier than asked; "never" as the largest safe integer. */
export function wireDeadline(ms: number): number {
  if (Number.isNaN(ms)) return 0;
  return Number.isFinite(ms) ? Math.min(Math.ceil(ms), Number.MAX_SAFE_INTEGER) : ms > 0 ? Number.MAX_SAFE_INTEGER : 0;
}

/**
 * A deadline's fields for a request to another member: the absolute time in this member's clock (all an
 * older receiver reads) and the time left, which a receiver of this build adds to its own clock instead:
 * members whose wall clocks disagree then still agree on how long the caller waits.
 */
export function deadlineToWire(deadlineMs: number): { deadline_ms: number; timeout_ms: number } {
  const leftMs = deadlineMs - Date.now();
  // At least 1 ms: 0 tells the receiver "an older sender" (a deadline already past arrives as 1 ms left).
  const timeoutMs = Number.isNaN(leftMs) ? 1 : Math.max(1, Math.min(Math.ceil(leftMs), Number.MAX_SAFE_INTEGER));
  return { deadline_ms: wireDeadline(deadlineMs), timeout_ms: timeoutMs };
}

/**
 * A received request's deadline in this member's clock: now plus the time its sender had left, or the
 * absolute deadline an older sender gives alone (timeout_ms 0 or absent).
 */
export function deadlineFromWire(w: { deadline_ms: Long64; timeout_ms?: Long64 }): number {
  const leftMs = safeInt(w.timeout_ms, 'timeout_ms');
  if (leftMs < 0) throw new WireError(`timeout_ms: ${leftMs} is negative`);
  return leftMs > 0 ? Date.now() + leftMs : safeInt(w.deadline_ms, 'deadline_ms');
}

export function oracleRequestToWire(r: OracleRequest): OracleRequestWire {
  return { requester: r.requester, request_id: r.requestId, count: r.count, ...deadlineToWire(r.deadlineMs) };
}

export function oracleRequestFromWire(w: OracleRequestWire): OracleRequest {
  return { requester: w.requester, requestId: safeInt(w.request_id, 'request_id'), count: w.count, deadlineMs: deadlineFromWire(w) };
}

export function oracleResponseToWire(r: OracleResponse): OracleResponseWire {
  switch (r.kind) {
    case 'granted':
      return { request_id: r.requestId, granted: { first: r.first, last: r.last, term: r.term } };
    case 'not-leader':
      return { request_id: r.requestId, not_leader: { leader_id: r.leaderId, term: r.term } };
    case 'unavailable':
      return { request_id: r.requestId, unavailable: { reason: r.reason } };
    case 'bad-request':
      return { request_id: r.requestId, bad_request: { reason: r.reason } };
    case 'deadline':
      return { request_id: r.requestId, deadline: {} };
  }
}

export function oracleResponseFromWire(w: OracleResponseWire): OracleResponse {
  const requestId = safeInt(w.request_id, 'request_id');
  switch (w.result) {
    case 'granted': {
      const g = w.granted;
      if (!g) throw new WireError('granted: missing');
      return { kind: 'granted', requestId, first: safeInt(g.first, 'first'), last: safeInt(g.last, 'last'), term: safeInt(g.term, 'term') };
    }
    case 'not_leader': {
      const n = w.not_leader;
      if (!n) throw new WireError('not_leader: missing');
      return { kind: 'not-leader', requestId, leaderId: safeInt(n.leader_id, 'leader_id'), term: safeInt(n.term, 'term') };
    }
    case 'unavailable':
      return { kind: 'unavailable', requestId, reason: w.unavailable?.reason ?? '' };
    case 'bad_request':
      return { kind: 'bad-request', requestId, reason: w.bad_request?.reason ?? '' };
    case 'deadline':
      return { kind: 'deadline', requestId };
    default:
      throw new WireError(`oracle response without a known result (${String(w.result)})`);
  }
}

const SORT_ORDERS: readonly SortOrder[] = ['NONE', 'ASCEND', 'DESCEND'];
const SORT_TARGETS: readonly SortTarget[] = ['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'];

export function rangeOpToWire(op: RangeOp): RangeOpWire {
  return {
    key: op.key,
    range_end: op.rangeEnd,
    limit: op.limit,
    revision: op.revision,
    sort_order: op.sortOrder,
    sort_target: op.sortTarget,
    keys_only: op.keysOnly,
    count_only: op.countOnly,
    min_mod_revision: op.minModRevision,
    max_mod_revision: op.maxModRevision,
    min_create_revision: op.minCreateRevision,
    max_create_revision: op.maxCreateRevision,
  };
}

function bytes(b: Buffer | undefined | null): Buffer {
  return b ?? Buffer.alloc(0);
}

export function rangeOpFromWire(w: RangeOpWire | null | undefined): RangeOp {
  if (!w) throw new WireError('range: missing');
  if (!SORT_ORDERS.includes(w.sort_order)) throw new WireError(`sort_order: unknown ${String(w.sort_order)}`);
  if (!SORT_TARGETS.includes(w.sort_target)) throw new WireError(`sort_target: unknown ${String(w.sort_target)}`);
  return {
    key: bytes(w.key),
    rangeEnd: bytes(w.range_end),
    limit: safeInt(w.limit, 'limit'),
    revision: safeInt(w.revision, 'revision'),
    sortOrder: w.sort_order,
    sortTarget: w.sort_target,
    keysOnly: w.keys_only,
    countOnly: w.count_only,
    minModRevision: safeInt(w.min_mod_revision, 'min_mod_revision'),
    maxModRevision: safeInt(w.max_mod_revision, 'max_mod_revision'),
    minCreateRevision: safeInt(w.min_create_revision, 'min_create_revision'),
    maxCreateRevision: safeInt(w.max_create_revision, 'max_create_revision'),
  };
}

export function keyValueToWire(kv: KeyValue): KeyValueWire {
  return { key: kv.key, create_revision: kv.createRevision, mod_revision: kv.modRevision, version: kv.version, value: kv.value, lease: kv.lease };
}

export function keyValueFromWire(w: KeyValueWire): KeyValue {
  return {
    key: bytes(w.key),
    createRevision: safeInt(w.create_revision, 'create_revision'),
    modRevision: safeInt(w.mod_revision, 'mod_revision'),
    version: safeInt(w.version, 'version'),
    value: bytes(w.value),
    lease: String(w.lease ?? '0'),
  };
}

export function rangeResultToWire(r: RangeResult): NonNullable<RangeAtResponseWire['range']> {
  return { kvs: r.kvs.map(keyValueToWire), more: r.more, count: r.count };
}

export function rangeResultFromWire(w: NonNullable<RangeAtResponseWire['range']>): RangeResult {
  return { kvs: (w.kvs ?? []).map(keyValueFromWire), more: w.more, count: safeInt(w.count, 'count') };
}

/** Upper bound of a RangeResult's encoded size (bytes): what the receiver checks against the peer message cap. */
export function rangeResultWireBytes(r: RangeResult): number {
  let n = 32;
  for (const kv of r.kvs) n += kvWireBytes(kv);
  return n;
}

/** Upper bound of one key-value's share of an encoded RangeResult (bytes). */
export function kvWireBytes(kv: KeyValue): number {
  return kv.key.length + kv.value.length + 80;
}

// ---- WatchShard (a merged watch's remote shard, server/shard/remote-watch-source.ts) -----------------

export interface ShardWatchEventWire {
  type: 'PUT' | 'DELETE';
  kv: KeyValueWire | null;
  prev_kv: KeyValueWire | null;
  /** 1 + MvccEvent.txnOpIndex; 0 or absent: none. */
  txn_op_position?: number;
}

export interface WatchShardSubscribeWire {
  group_id: number;
  key: Buffer;
  range_end: Buffer;
  from_revision: Long64;
  prev_kv: boolean;
  no_put: boolean;
  no_delete: boolean;
}

export interface WatchShardRequestWire {
  request?: 'subscribe' | 'resolve';
  subscribe?: WatchShardSubscribeWire | null;
  resolve?: { ask_id: Long64 } | null;
}

export type WatchShardEndKind = 'INTERNAL' | 'COMPACTED' | 'NOT_HOSTED' | 'SHUTTING_DOWN' | 'OVERLOADED' | 'BAD_REQUEST';

export interface WatchShardResponseWire {
  response?: 'events' | 'resolved' | 'end';
  events?: { events: ShardWatchEventWire[] } | null;
  resolved?: { revision: Long64; compacted_revision: Long64; ask_id: Long64 } | null;
  end?: { kind: WatchShardEndKind; compact_revision: Long64; message: string } | null;
}

export function watchEventToWire(e: MvccEvent): ShardWatchEventWire {
  const w: ShardWatchEventWire = { type: e.type, kv: keyValueToWire(e.kv), prev_kv: e.prevKv === null ? null : keyValueToWire(e.prevKv) };
  if (e.txnOpIndex !== undefined) w.txn_op_position = e.txnOpIndex + 1;
  return w;
}

export function watchEventFromWire(w: ShardWatchEventWire): MvccEvent {
  if (w.type !== 'PUT' && w.type !== 'DELETE') throw new WireError(`event type: unknown ${String(w.type)}`);
  if (!w.kv) throw new WireError('event kv: missing');
  const event: MvccEvent = { type: w.type, kv: keyValueFromWire(w.kv), prevKv: w.prev_kv ? keyValueFromWire(w.prev_kv) : null };
  const position = safeInt(w.txn_op_position ?? 0, 'txn_op_position');
  if (position > 0) event.txnOpIndex = position - 1;
  return event;
}

/** Upper bound of an event's encoded size (bytes), for the serving side's per-stream queue bound. */
export function watchEventWireBytes(e: MvccEvent): number {
  let n = 96 + e.kv.key.length + e.kv.value.length;
  if (e.prevKv !== null) n += 80 + e.prevKv.key.length + e.prevKv.value.length;
  return n;
}

/**
 * A received batch of events: whole revisions, ascending (the seam's contract), every number a safe
 * integer. A batch that breaks the order is refused as a whole (the caller treats the stream as broken).
 */
export function watchEventsFromWire(w: readonly ShardWatchEventWire[] | null | undefined): MvccEvent[] {
  const events = (w ?? []).map(watchEventFromWire);
  for (let i = 1; i < events.length; i++) {
    if (events[i].kv.modRevision < events[i - 1].kv.modRevision) throw new WireError(`events out of order: ${events[i].kv.modRevision} after ${events[i - 1].kv.modRevision}`);
  }
  return events;
}

export interface ShardStatusRequestWire {
  group_ids: number[];
}

export interface ShardStatusWire {
  group_id: number;
  hosted: boolean;
  leader_id: Long64;
  applied_revision: Long64;
}

export interface ShardStatusResponseWire {
  statuses: ShardStatusWire[];
}

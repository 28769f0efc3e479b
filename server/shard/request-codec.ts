// Encoding of what a Raft entry carries (synod.internal.InternalRequest): the client's etcd request
// in etcd's own protobuf form, plus who proposed it. Decoded objects have the same shape as what
// @grpc/proto-loader hands the service handlers (snake_case, int64 as strings, enums as names).
import protobuf from 'protobufjs';
import { protoMessageRoot } from '../protobuf/proto-schemas.ts';
import type { CompactionRequest, DeleteRangeRequest, PutRequest, TxnRequest } from '../etcd/wire-types.ts';
import type { AuthRequestBody, Caller } from './auth-wire.ts';
import type { AlarmRequestBody } from './alarms.ts';
import { decodePutEntry, encodePutEntry } from './put-entry-codec.ts';

export type InternalRequestBody =
  | { put: PutRequest }
  | { delete_range: DeleteRangeRequest }
  | { txn: TxnRequest }
  | { compaction: CompactionRequest }
  | { member_attributes: MemberAttributes }
  | { lease_grant: { ID: string; TTL: string } }
  | { lease_revoke: { ID: string } }
  | { lease_checkpoint: { checkpoints: Array<{ ID: string; remaining_TTL: string }> } }
  | { lease_sweep: LeaseSweep }
  | { lease_swept: LeaseSweep }
  | { txn_intent: TxnIntentWire }
  | { txn_resolve: TxnResolveWire }
  | { txn_recover: TxnRecoverWire }
  | { member_update: { ID: string; peerURLs: string[] } }
  | { alarm: AlarmRequestBody }
  | AuthRequestBody;

/** A revoked lease generation (the cluster group's Raft index of its grant) to sweep, or swept (internal.proto). */
export interface LeaseSweep {
  ID: string;
  generation: string;
  revoked_at: string;
  horizon?: string;
}

/** A participant's prepare of a cross-shard transaction (internal.proto, docs/transactions.md). */
export interface TxnIntentWire {
  txn_id: string;
  primary_group: string;
  participant_groups: string[];
  ops: TxnRequest;
  deadline_unix_ms: string;
  refused?: boolean;
  /** What each of ops.compare evaluated to on this shard when the branch was chosen. */
  expected?: Array<{ index: number; any: boolean; ok: boolean }>;
  /** Instead of ops: a revoked lease generation's sweep on this shard, at C. */
  lease_sweep?: LeaseSweep | null;
  /** The transaction's age (ms of its first attempt; lower is older): wait-die between prepares. */
  priority?: string;
  /** The prepares decide the branch: compares evaluated here, both branches' shares dry-run (internal.proto). */
  decide_here?: boolean;
  /** Each share op's place in the whole transaction (server/mvcc/txn-op-position.ts); empty: none. */
  success_positions?: number[];
  failure_positions?: number[];
  /** The time the coordinator left it (ms), which the stamping leader turns into deadline_unix_ms; absent or '0': none. */
  ttl_ms?: string;
}

/** A cross-shard transaction's resolution on one shard; on its primary, the decision. */
export interface TxnResolveWire {
  txn_id: string;
  commit: boolean;
  forget?: boolean;
  /** commit only: the transaction's revision C. */
  revision?: string;
  /** Other transactions resolved everywhere: their records here may go (piggybacked forgets). */
  forget_txn_ids?: string[];
  /** Non-zero: the shard's fence horizon moves up to it (internal.proto). */
  fence_horizon_unix_ms?: string;
  /** commit of a decide_here transaction: the failure branch's share (internal.proto). */
  failure_branch?: boolean;
}

/** A recoverer's compare-and-set on the primary shard. */
export interface TxnRecoverWire {
  txn_id: string;
  abort_pending: boolean;
  /** The transaction's age, kept with a fence (internal.proto). */
  priority?: string;
}

/** A lease generation a put attaches to, found alive in the cluster group at index `checked_at`. */
export interface LeaseGeneration {
  ID: string;
  generation: string;
  checked_at: string;
}

/** One range op's answers from the other shards it touches (wire form of RangeResult, shard_peer.proto). */
export interface RangeElsewhereWire {
  failure: boolean;
  index: number;
  compacted: boolean;
  parts: Array<{ kvs: Array<{ key: Buffer; create_revision: string | number; mod_revision: string | number; version: string | number; value: Buffer; lease: string | number }>; more: boolean; count: string | number }>;
}

/** What a txn read on the shards other than its own (server/shard/txn-reads.ts). */
export interface TxnReadsWire {
  compares: Array<{ index: number; any: boolean; ok: boolean }>;
  ranges: RangeElsewhereWire[];
  /** The answers did not fit in one entry: the txn is refused at apply (internal.proto). */
  too_large?: boolean;
}

export interface MemberAttributes {
  member_id: string;
  name: string;
  client_urls: string[];
  /** `--zone`; '' when none (and in entries written before zones existed). */
  zone?: string;
}

/**
 * `revision` (sharded clusters only): the oracle revision the entry's write is applied at, as a decimal
 * string like every 64-bit field. Absent in every entry a one-shard cluster writes; a decoded entry
 * carries it only when it is non-zero, so today's entries decode to today's shapes.
 */
export type InternalRequest = {
  proposer: string;
  seq: string;
  caller?: Caller | null;
  revision?: string;
  /** The term the proposer sent it in (proposal-fence.ts); absent when 0 (not fenced). */
  proposal_term?: string;
  /** Sharded clusters: see internal.proto (absent when empty). */
  lease_generations?: LeaseGeneration[];
  /** Sharded clusters: see internal.proto (absent when none). */
  txn_reads?: TxnReadsWire | null;
} & InternalRequestBody;

let cachedRoot: protobuf.Root | undefined;
/** protobufjs types of synod/internal.proto and the etcd messages it imports (loaded once). */
export function internalProtoRoot(): protobuf.Root {
  if (cachedRoot) return cachedRoot;
  cachedRoot = protoMessageRoot();
  return cachedRoot;
}

let cachedType: protobuf.Type | undefined;
function internalRequestType(): protobuf.Type {
  cachedType ??= internalProtoRoot().lookupType('synod.internal.InternalRequest');
  return cachedType;
}

const TO_OBJECT: protobuf.IConversionOptions = {
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
};

/** Puts take a hand-written path (put-entry-codec.ts); everything else goes through protobufjs. */
export function encodeInternalRequest(req: InternalRequest): Uint8Array {
  if ('put' in req) {
    const fast = encodePutEntry(req);
    if (fast !== null) return fast;
  }
  return encodeWithProtobufjs(req);
}

export function decodeInternalRequest(data: Uint8Array): InternalRequest {
  return decodePutEntry(data) ?? decodeWithProtobufjs(data);
}

/** The generic path (also what the fast path is tested against). */
export function encodeWithProtobufjs(req: InternalRequest): Uint8Array {
  const type = internalRequestType();
  return type.encode(type.fromObject(req)).finish();
}

export function decodeWithProtobufjs(data: Uint8Array): InternalRequest {
  const type = internalRequestType();
  const req = type.toObject(type.decode(data), TO_OBJECT) as InternalRequest;
  // `defaults` fills an absent revision with '0': drop it, an entry without one has no such field.
  if (req.revision === '0') delete req.revision;
  if (req.proposal_term === '0') delete req.proposal_term;
  // The same for the other sharded-only fields: entries without them decode to today's shapes.
  if (req.lease_generations !== undefined && req.lease_generations.length === 0) delete req.lease_generations;
  if (req.txn_reads === null) delete req.txn_reads;
  return req;
}

/** The entry's oracle revision, or null when it carries none (a one-shard cluster's entries). */
export function revisionOf(req: InternalRequest): number | null {
  if (req.revision === undefined || req.revision === '0') return null;
  const n = Number(req.revision);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`log entry carries revision ${req.revision}, not a safe positive integer`);
  return n;
}

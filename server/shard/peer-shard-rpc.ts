// The peer RPCs of a sharded cluster (synod.shard.ShardPeer on the peer port): the oracle's requests
// (Revisions), reads of one shard at an oracle revision on its leader (RangeAt), the closes of a
// merged watch's closing rounds (CloseAt), single-shard KV operations executed by a member hosting
// the shard for one that does not (ShardKv, shard-kv-wire.ts), and the streams of a merged watch
// following a shard it does not host (WatchShard: watch-shard-server.ts serves, remote-watch-source.ts
// calls through ShardPeerChannels.watchShard). Owns the serving
// side (shardPeerServiceImpl: hands requests to this member's oracle host and shard replicas) and the
// calling side (ShardPeerChannels: one gRPC channel per peer; GrpcOracleTransport; rangeAtOnPeer).
// The calls with small answers and the oracle's above all (about one per sharded write) ride the
// peer streams instead, beside the Raft messages, to members that serve them there
// (STREAM_METHODS, shardPeerStreamHandler): the same request and response messages, the same handler,
// the same failures, at a tenth of a unary call's CPU.
// Safe to plug in because:
//   - neither side ever hangs past the caller's deadline: it is the gRPC deadline of every call, the
//     server answers `deadline` itself when the work is not done by then, and the caller keeps its own
//     timer as a backstop (a peer that accepts a connection and then says nothing);
//   - neither side throws: every transport or decoding failure becomes an answer the callers already
//     handle (`unavailable` for OracleClient, a typed RangeAtOutcome for the shard fan-out);
//   - nothing is decided here: grants, refusals and reads are the oracle host's and the shard write
//     path's; this module only carries them, byte for byte (shard-peer-wire.ts checks every number).
import * as grpc from '@grpc/grpc-js';
import type { NodeId } from '../raft/types.ts';
import type { RangeOp, RangeResult } from '../mvcc/types.ts';
import { MvccError } from '../mvcc/types.ts';
import { PEER_GRPC_MAX_ANSWER_BYTES, PEER_GRPC_MAX_MESSAGE_BYTES } from '../transport/frame-budget.ts';
import type { StreamCallHandler, StreamCallOutcome } from '../transport/peer-transport.ts';
import type { OracleRequest, OracleResponse, OracleServer, OracleTransport } from './oracle-protocol.ts';
import type { WatchShardCall, WatchShardServer } from './watch-shard-server.ts';
import type { WatchShardStream, WatchShardStreamHandlers, WatchShardTransport } from './remote-watch-source.ts';
import {
  oracleRequestFromWire,
  oracleRequestToWire,
  oracleResponseFromWire,
  oracleResponseToWire,
  rangeOpFromWire,
  rangeOpToWire,
  rangeResultFromWire,
  rangeResultToWire,
  rangeResultWireBytes,
  deadlineFromWire,
  deadlineToWire,
  safeInt,
  shardPeerService,
  wireDeadline,
  type OracleRequestWire,
  type OracleResponseWire,
  type RangeAtRequestWire,
  type RangeAtResponseWire,
  type RangeErrorKind,
  type CloseAtRequestWire,
  type CloseAtResponseWire,
  type RangeAtBatchRequestWire,
  type RangeAtBatchResponseWire,
  type CloseAtBatchRequestWire,
  type CloseAtBatchResponseWire,
  type ShardStatusRequestWire,
  type ShardStatusResponseWire,
  type ShardStatusWire,
  type WatchShardRequestWire,
  type WatchShardResponseWire,
  type WatchShardSubscribeWire,
} from './shard-peer-wire.ts';
import { pageOf } from './range-pages.ts';
import {
  shardKvAnswerFromWire,
  shardKvAnswerToWire,
  shardKvAnswerWireBytes,
  shardKvRequestFromWire,
  shardKvRequestToWire,
  type ShardKvAnswer,
  type ShardKvRequest,
  type ShardKvRequestWire,
  type ShardKvResponseWire,
} from './shard-kv-wire.ts';

/** A caller-side backstop beyond the gRPC deadline (a stuck channel): the call is cancelled then. */
const BACKSTOP_MS = 250;

/** Thrown by a `rangeAt` the wiring supplies when it cannot serve now for a reason other than leadership. */
export class ShardUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShardUnavailableError';
  }
}

// ---------------------------------------------------------------------------------------------------
// Serving side

export interface ShardPeerServiceOptions {
  /** This member's oracle host, or null when it hosts none (answered `not-leader`, see oracleLeader). */
  oracle: () => OracleServer | null;
  /** The metadata group's leader as this member knows it (0 unknown): the hint when `oracle()` is null. */
  oracleLeader?: () => NodeId;
  /**
   * Reads shard `groupId` at `revision` (the shard write path's readAt on this member's replica). Rejects
   * with an error named ShardNotReadyError or NoLeaderError (→ not_leader with `leaderOf(groupId)`),
   * ShardDeadlineError (→ deadline), ShardUnavailableError (→ unavailable), an MvccError `compacted` /
   * `futureRev` (→ etcd's errors); anything else is answered INTERNAL with its message.
   */
  rangeAt: (groupId: number, op: RangeOp, revision: number, deadlineMs: number) => Promise<RangeResult>;
  /** The shard's leader as this member knows it (0 unknown, or the group is not hosted here; a throw counts as 0). */
  leaderOf: (groupId: number) => NodeId;
  /**
   * Closes shard `groupId` at `revision` or below (the shard write path's closeAt on this member's
   * replica), with this member's applied index of the group after it. Refusals map as rangeAt's. Absent:
   * CloseAt answers UNAVAILABLE.
   */
  closeAt?: (groupId: number, revision: number, deadlineMs: number) => Promise<{ revision: number; appliedIndex: number }>;
  /**
   * Executes one single-shard KV operation on this member's replica (server/api/shard-kv-host.ts); never
   * rejects (refusals are answers). Absent: ShardKv answers not_hosted.
   */
  shardKv?: (request: ShardKvRequest) => Promise<ShardKvAnswer>;
  /** What this member knows of its replica of `groupId` (null: none hosted here). Absent: nothing is hosted. */
  shardStatus?: (groupId: number) => { leaderId: NodeId; appliedRevision: number } | null;
  /** Serves WatchShard streams (watch-shard-server.ts); absent: every stream ends at once, NOT_HOSTED. */
  watchShard?: WatchShardServer;
  /** Largest RangeAt answer (bytes); larger results answer TOO_LARGE. The peer server's message cap by default. */
  maxMessageBytes?: number;
  /** Largest ShardKv answer (bytes); larger ones answer RESOURCE_EXHAUSTED. PEER_GRPC_MAX_ANSWER_BYTES by default. */
  maxAnswerBytes?: number;
  /**
   * Test-only fault injection (--experimental-fault-injection): a call from a member this one is cut off
   * from is never answered, as a partition would drop it (the caller's deadline ends it).
   */
  isBlocked?: (memberId: NodeId) => boolean;
}

/** Metadata naming the calling member, so a partition injected for tests can drop its calls. */
const FROM_MEMBER_METADATA = 'synod-from-member';

/** The service definition to add to the peer server (`transport.addService`). */
export function shardPeerServiceDefinition(): grpc.ServiceDefinition {
  return shardPeerService().service;
}

/**
 * Serves the STREAM_METHODS of `impl` (shardPeerServiceImpl) to calls arriving on the peer streams
 * (PeerTransport.serveOnStream): each is decoded as its unary request, handed to the same handler a
 * unary call reaches (with the caller named in its metadata, as a unary call names it), and its answer
 * encoded as the unary response. A handler that never answers (a partitioned caller) leaves the call to
 * the caller's deadline, as the unary call would.
 */
export function shardPeerStreamHandler(impl: grpc.UntypedServiceImplementation): StreamCallHandler {
  const service = shardPeerService().service;
  return (fromMember, method, payload) =>
    new Promise((resolve) => {
      const name = method.slice(method.lastIndexOf('/') + 1);
      const def = service[name];
      const handler = impl[name] as grpc.handleUnaryCall<unknown, unknown> | undefined;
      if (def === undefined || handler === undefined || def.path !== method || !STREAM_METHODS.has(name)) {
        resolve({ code: grpc.status.UNIMPLEMENTED, details: `${method} is not served on the peer stream` });
        return;
      }
      let request: unknown;
      try {
        request = def.requestDeserialize(payload);
      } catch (err) {
        resolve({ code: grpc.status.INVALID_ARGUMENT, details: `malformed ${name} request: ${message(err)}` });
        return;
      }
      const metadata = new grpc.Metadata();
      metadata.set(FROM_MEMBER_METADATA, String(fromMember));
      // The handlers read only `request` and `metadata` of their call (peer-shard-stream.test.ts runs each
      // stream method through here).
      const call = { request, metadata } as unknown as grpc.ServerUnaryCall<unknown, unknown>;
      try {
        handler(call, (err, res) => {
          if (err) resolve({ code: typeof err.code === 'number' ? err.code : grpc.status.UNKNOWN, details: err.details ?? ('message' in err ? String(err.message) : '') });
          else {
            try {
              resolve({ payload: def.responseSerialize(res) });
            } catch (e) {
              resolve({ code: grpc.status.INTERNAL, details: `unencodable ${name} answer: ${message(e)}` });
            }
          }
        });
      } catch (err) {
        resolve({ code: grpc.status.INTERNAL, details: message(err) });
      }
    });
}

/** Settles with `work`'s answer, or with `late()` once `deadlineMs` passes first. */
/** A RangeAt answer and about how many bytes it adds to a batch's answer. */
interface SizedRangeAnswer {
  response: RangeAtResponseWire;
  bytes: number;
}

/** Bytes counted for an answer without a result (an error or a redirect). */
const SMALL_ANSWER_BYTES = 1024;
/** Room kept in a batch's answer for its own framing. */
const BATCH_ENVELOPE_BYTES = 64 * 1024;

function unsized(response: RangeAtResponseWire): SizedRangeAnswer {
  return { response, bytes: SMALL_ANSWER_BYTES };
}

function byDeadline<T>(work: Promise<T>, deadlineMs: number, late: () => T, failed: (err: unknown) => T): Promise<T> {
  return new Promise<T>((resolve) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      resolve(late());
    }, Math.max(0, Math.min(deadlineMs - Date.now(), 2 ** 31 - 1)));
    work.then(
      (v) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(failed(err));
      },
    );
  });
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function rangeError(kind: RangeErrorKind, msg: string): RangeAtResponseWire & CloseAtResponseWire {
  return { error: { kind, message: msg } };
}

export function shardPeerServiceImpl(opts: ShardPeerServiceOptions): grpc.UntypedServiceImplementation {
  const maxBytes = opts.maxMessageBytes ?? PEER_GRPC_MAX_MESSAGE_BYTES;
  const maxAnswerBytes = opts.maxAnswerBytes ?? PEER_GRPC_MAX_ANSWER_BYTES;

  // The leader this member knows for `groupId`, 0 if none. A request can outlive this member's replica
  // (the shard moved away while it was served), and a throw here would escape from a settled promise's
  // handler and take the process down.
  const leaderOrNone = (groupId: number): NodeId => {
    try {
      return opts.leaderOf(groupId);
    } catch {
      return 0;
    }
  };

  const mapRangeFailure = (groupId: number, err: unknown): RangeAtResponseWire & CloseAtResponseWire => {
    const name = err instanceof Error ? err.name : '';
    if (name === 'ShardNotReadyError' || name === 'NoLeaderError') return { not_leader: { leader_id: leaderOrNone(groupId) } };
    if (name === 'ShardDeadlineError' || name === 'OracleDeadlineError') return rangeError('DEADLINE', message(err));
    if (name === 'ShardUnavailableError') return rangeError('UNAVAILABLE', message(err));
    if (err instanceof MvccError && err.code === 'compacted') return rangeError('COMPACTED', err.message);
    if (err instanceof MvccError && err.code === 'futureRev') return rangeError('FUTURE_REV', err.message);
    return rangeError('INTERNAL', message(err));
  };

  const dropped = (call: grpc.ServerUnaryCall<unknown, unknown>): boolean => {
    if (!opts.isBlocked) return false;
    const from = Number(call.metadata.get(FROM_MEMBER_METADATA)[0] ?? 0);
    return from !== 0 && opts.isBlocked(from);
  };

  /** One RangeAt, as a call alone or an element of a batch, with its result's size in bytes (about); never rejects. */
  const serveRangeAt = (request: RangeAtRequestWire): Promise<SizedRangeAnswer> => {
    let groupId: number, op: RangeOp, revision: number, deadlineMs: number, pageBytes: number;
    try {
      groupId = request.group_id;
      op = rangeOpFromWire(request.range);
      revision = safeInt(request.revision, 'revision');
      deadlineMs = deadlineFromWire(request);
      pageBytes = safeInt(request.page_bytes, 'page_bytes');
      if (revision < 1) throw new Error(`revision ${revision} is not positive`);
      if (pageBytes < 0) throw new Error(`page_bytes ${pageBytes} is negative`);
    } catch (err) {
      return Promise.resolve(unsized(rangeError('BAD_REQUEST', message(err))));
    }
    if (Date.now() >= deadlineMs) return Promise.resolve(unsized(rangeError('DEADLINE', 'deadline passed before the read began')));
    // Pages fit the smaller of what the caller asked and what the message cap allows.
    const budget = pageBytes > 0 ? Math.min(pageBytes, maxBytes) : maxBytes;
    let work: Promise<SizedRangeAnswer>;
    try {
      const read = (sub: RangeOp): Promise<RangeResult> => opts.rangeAt(groupId, sub, revision, deadlineMs);
      const paged = async (): Promise<SizedRangeAnswer> => {
        // A key larger than the page asked for (a --max-request-bytes over it) still travels alone, up to the cap.
        const page = (await pageOf(op, budget, read)) ?? (budget < maxBytes ? await pageOf(op, maxBytes, read) : null);
        if (page === null) return unsized(rangeError('TOO_LARGE', `a key of the range does not fit the peer message cap of ${maxBytes} bytes`));
        const range = rangeResultToWire(page.result);
        return { response: page.pageEnd === null ? { range } : { range, paged: true, page_end: page.pageEnd }, bytes: rangeResultWireBytes(page.result) };
      };
      work =
        pageBytes > 0 && request.continued === true
          ? paged()
          : read(op).then((result) => {
              // A first request's answer that fits one message goes whole, as it always did: pages only past that.
              const bytes = rangeResultWireBytes(result);
              if (bytes <= maxBytes) return { response: { range: rangeResultToWire(result) }, bytes };
              if (pageBytes > 0) return paged();
              return unsized(rangeError('TOO_LARGE', `range result of about ${bytes} bytes exceeds the peer message cap of ${maxBytes}`));
            });
    } catch (err) {
      work = Promise.reject(err);
    }
    return byDeadline<SizedRangeAnswer>(
      work,
      deadlineMs,
      () => unsized(rangeError('DEADLINE', 'read deadline passed')),
      (err) => unsized(mapRangeFailure(groupId, err)),
    );
  };

  /** One CloseAt, as a call alone or an element of a batch; never rejects. */
  const serveCloseAt = (request: CloseAtRequestWire): Promise<CloseAtResponseWire> => {
    let groupId: number, revision: number, deadlineMs: number;
    try {
      groupId = request.group_id;
      revision = safeInt(request.revision, 'revision');
      deadlineMs = deadlineFromWire(request);
      if (revision < 1) throw new Error(`revision ${revision} is not positive`);
    } catch (err) {
      return Promise.resolve(rangeError('BAD_REQUEST', message(err)));
    }
    const closeAt = opts.closeAt;
    if (closeAt === undefined) return Promise.resolve(rangeError('UNAVAILABLE', 'this member does not serve CloseAt'));
    if (Date.now() >= deadlineMs) return Promise.resolve(rangeError('DEADLINE', 'deadline passed before the close began'));
    let work: Promise<CloseAtResponseWire>;
    try {
      work = closeAt(groupId, revision, deadlineMs).then((c) => ({ closed: { revision: c.revision, applied_index: c.appliedIndex } }));
    } catch (err) {
      work = Promise.reject(err);
    }
    return byDeadline<CloseAtResponseWire>(
      work,
      deadlineMs,
      () => rangeError('DEADLINE', 'close deadline passed'),
      (err) => mapRangeFailure(groupId, err),
    );
  };

  return {
    WatchShard: (call: WatchShardCall): void => {
      const from = Number(call.metadata.get(FROM_MEMBER_METADATA)[0] ?? 0);
      // A partitioned caller's stream is left unanswered, as a partition would (its ask times out).
      if (opts.isBlocked && from !== 0 && opts.isBlocked(from)) return;
      if (opts.watchShard) opts.watchShard.handle(call);
      else {
        call.write({ end: { kind: 'NOT_HOSTED', compact_revision: 0, message: 'this member does not serve WatchShard' } });
        call.end();
      }
    },

    Revisions: (call: grpc.ServerUnaryCall<OracleRequestWire, OracleResponseWire>, cb: grpc.sendUnaryData<OracleResponseWire>): void => {
      if (dropped(call)) return;
      let request: OracleRequest;
      try {
        request = oracleRequestFromWire(call.request);
      } catch (err) {
        cb(null, oracleResponseToWire({ kind: 'bad-request', requestId: 0, reason: message(err) }));
        return;
      }
      const { requestId } = request;
      const server = opts.oracle();
      if (server === null) {
        cb(null, oracleResponseToWire({ kind: 'not-leader', requestId, leaderId: opts.oracleLeader?.() ?? 0, term: 0 }));
        return;
      }
      let work: Promise<OracleResponse>;
      try {
        work = server.handle(request);
      } catch (err) {
        work = Promise.reject(err);
      }
      void byDeadline<OracleResponse>(
        work,
        request.deadlineMs,
        () => ({ kind: 'deadline', requestId }),
        (err) => ({ kind: 'unavailable', requestId, reason: `oracle failed: ${message(err)}` }),
      ).then((response) => cb(null, oracleResponseToWire(response)));
    },

    RangeAt: (call: grpc.ServerUnaryCall<RangeAtRequestWire, RangeAtResponseWire>, cb: grpc.sendUnaryData<RangeAtResponseWire>): void => {
      if (dropped(call)) return;
      void serveRangeAt(call.request).then((answer) => cb(null, answer.response));
    },

    CloseAt: (call: grpc.ServerUnaryCall<CloseAtRequestWire, CloseAtResponseWire>, cb: grpc.sendUnaryData<CloseAtResponseWire>): void => {
      if (dropped(call)) return;
      void serveCloseAt(call.request).then((response) => cb(null, response));
    },

    RangeAtBatch: (call: grpc.ServerUnaryCall<RangeAtBatchRequestWire, RangeAtBatchResponseWire>, cb: grpc.sendUnaryData<RangeAtBatchResponseWire>): void => {
      if (dropped(call)) return;
      void Promise.all((call.request.requests ?? []).map((r) => serveRangeAt(r))).then((answers) => {
        // The answers together must fit one peer message: results past the cap are asked again alone.
        let bytes = 0;
        cb(null, {
          responses: answers.map(({ response, bytes: size }) => {
            bytes += size;
            return bytes > maxBytes - BATCH_ENVELOPE_BYTES && response.range ? rangeError('RETRY_SINGLY', 'the batch answer would exceed the peer message cap') : response;
          }),
        });
      });
    },

    CloseAtBatch: (call: grpc.ServerUnaryCall<CloseAtBatchRequestWire, CloseAtBatchResponseWire>, cb: grpc.sendUnaryData<CloseAtBatchResponseWire>): void => {
      if (dropped(call)) return;
      void Promise.all((call.request.requests ?? []).map((r) => serveCloseAt(r))).then((responses) => cb(null, { responses }));
    },

    ShardStatus: (call: grpc.ServerUnaryCall<ShardStatusRequestWire, ShardStatusResponseWire>, cb: grpc.sendUnaryData<ShardStatusResponseWire>): void => {
      if (dropped(call)) return;
      const statuses = (call.request.group_ids ?? []).map((groupId): ShardStatusWire => {
        const status = opts.shardStatus?.(groupId) ?? null;
        return status === null
          ? { group_id: groupId, hosted: false, leader_id: 0, applied_revision: 0 }
          : { group_id: groupId, hosted: true, leader_id: status.leaderId, applied_revision: status.appliedRevision };
      });
      cb(null, { statuses });
    },

    ShardKv: (call: grpc.ServerUnaryCall<ShardKvRequestWire, ShardKvResponseWire>, cb: grpc.sendUnaryData<ShardKvResponseWire>): void => {
      if (dropped(call)) return;
      let request: ShardKvRequest;
      try {
        request = shardKvRequestFromWire(call.request);
      } catch (err) {
        // A malformed request is the caller's bug: INTERNAL to its client, never retried elsewhere.
        cb(null, shardKvAnswerToWire({ kind: 'error', code: grpc.status.INTERNAL, message: `bad shard kv request: ${message(err)}`, leaderId: 0 }));
        return;
      }
      const serve = opts.shardKv;
      const leaderId = (): NodeId => leaderOrNone(request.groupId);
      if (serve === undefined) {
        cb(null, shardKvAnswerToWire({ kind: 'not-hosted', leaderId: 0 }));
        return;
      }
      const late = (): ShardKvAnswer => ({ kind: 'error', code: grpc.status.UNAVAILABLE, message: ETCD_TIMEOUT_TEXT, leaderId: leaderId() });
      if (Date.now() >= request.deadlineMs) {
        cb(null, shardKvAnswerToWire(late()));
        return;
      }
      let work: Promise<ShardKvAnswer>;
      try {
        work = serve(request);
      } catch (err) {
        work = Promise.reject(err);
      }
      void byDeadline<ShardKvAnswer>(work, request.deadlineMs, late, (err) => ({ kind: 'error', code: grpc.status.INTERNAL, message: message(err), leaderId: leaderId() })).then((answer) => {
        let wire: ShardKvResponseWire;
        // An answer past what a member sends a peer (2 GiB, etcd's own limit) cannot travel: the client
        // gets grpc-go's ResourceExhausted for an oversized message, as from a member past its own send
        // limit (a write was applied all the same, as a client whose answer is lost).
        const bytes = shardKvAnswerWireBytes(answer);
        if (bytes > maxAnswerBytes) answer = { kind: 'error', code: grpc.status.RESOURCE_EXHAUSTED, message: `grpc: trying to send message larger than max (${bytes} vs. ${maxAnswerBytes})`, leaderId: answer.leaderId };
        try {
          wire = shardKvAnswerToWire(answer);
        } catch (err) {
          wire = shardKvAnswerToWire({ kind: 'error', code: grpc.status.INTERNAL, message: `unencodable answer: ${message(err)}`, leaderId: 0 });
        }
        cb(null, wire);
      });
    },
  };
}

/** etcd's ErrGRPCTimeout text (server/etcd/errors.ts): a host out of time answers what a client would get. */
const ETCD_TIMEOUT_TEXT = 'etcdserver: request timed out';

// ---------------------------------------------------------------------------------------------------
// Calling side

export interface ShardPeerChannelsOptions {
  /** host:port of a member's peer port (undefined: unknown member). */
  peerAddress: (memberId: NodeId) => string | undefined;
  /** How to dial peers (peer TLS); plaintext when absent. */
  credentials?: grpc.ChannelCredentials;
  /** Largest request sent (bytes); the peer server's message cap by default. */
  maxMessageBytes?: number;
  /** Largest answer accepted (bytes): a forwarded request's may be as large as etcd's (PEER_GRPC_MAX_ANSWER_BYTES by default). */
  maxAnswerBytes?: number;
  /** This member's id, sent with every call (see FROM_MEMBER_METADATA). */
  selfId?: NodeId;
  /** Test-only fault injection: a call to a member this one is cut off from fails at once, unavailable. */
  isBlocked?: (memberId: NodeId) => boolean;
  /** The peer streams (the member's PeerTransport): STREAM_METHODS ride them to peers that serve them there. */
  streams?: ShardPeerStreams;
}

/** The peer streams as ShardPeerChannels uses them (server/transport/peer-transport.ts). */
export interface ShardPeerStreams {
  streamCallsTo(memberId: NodeId, service: string): boolean;
  readonly streamPayloadLimitBytes: number;
  callOnStream(memberId: NodeId, method: string, payload: Buffer, deadlineMs: number): Promise<StreamCallOutcome>;
}

/** The name a member lists in its StreamHello when it serves ShardPeer calls on its streams. */
export const SHARD_PEER_STREAM_SERVICE = 'synod.shard.ShardPeer';

/**
 * The ShardPeer methods that ride the peer streams rather than costing a unary gRPC call each: the
 * oracle's (about one per sharded write), the closing rounds', and the reads of a range over several
 * shards. ShardKv stays unary: a forwarded write must never be cut off from its answer by a size check.
 */
const STREAM_METHODS: ReadonlySet<string> = new Set(['Revisions', 'CloseAt', 'CloseAtBatch', 'ShardStatus', 'RangeAt', 'RangeAtBatch']);
/**
 * Reads whose answer may be larger than a stream call carries (RESOURCE_EXHAUSTED from the serving
 * side): asked again as a unary call, which carries up to the peer port's message limit. Safe because
 * they change nothing.
 */
const UNARY_WHEN_TOO_LARGE: ReadonlySet<string> = new Set(['RangeAt', 'RangeAtBatch']);
/**
 * What callOnStream answers when the call should go as a unary call after all: a read whose answer did
 * not fit the stream, or any call that never left (the stream went down since it was chosen), which the
 * unary channel, a connection of its own, may still carry.
 */
const USE_UNARY = Symbol('use the unary call');

/** The unary ShardPeer methods ShardPeerChannels.call makes. */
type ShardPeerUnaryMethod = 'Revisions' | 'RangeAt' | 'CloseAt' | 'RangeAtBatch' | 'CloseAtBatch' | 'ShardStatus' | 'ShardKv';

type Unary<Req, Res> = (req: Req, metadata: grpc.Metadata, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => grpc.ClientUnaryCall;

/** The outcome of one failed call: a gRPC status, or why no call was made. */
export interface CallFailure {
  readonly failure: true;
  readonly deadline: boolean;
  readonly reason: string;
  /** True when the request certainly never left this member (no channel, cut off, not connected). */
  readonly notSent?: boolean;
}

/** Longest pause between attempts to reconnect to a member that is down. */
const MAX_RECONNECT_BACKOFF_MS = 2_000;

/** How long a call waits for a channel that is not connected yet to connect before the member counts as unreachable. */
export const CONNECT_WAIT_MS = 1_000;

interface CoalescedCall {
  readonly request: unknown;
  readonly deadlineMs: number;
  resolve(v: unknown): void;
}

/** One gRPC channel per peer (re-dialled when a member's address changes); close() closes them all. */
export class ShardPeerChannels {
  private readonly opts: ShardPeerChannelsOptions;
  private readonly clients = new Map<NodeId, { address: string; client: grpc.Client }>();
  private closed = false;
  /** RangeAt / CloseAt calls of this turn waiting to leave as one batch, by "method/member". */
  private readonly coalescing = new Map<string, CoalescedCall[]>();
  /** Members that answered a batch call UNIMPLEMENTED (an older version): asked one call at a time. */
  private readonly unbatched = new Set<NodeId>();
  /** Batch calls sent, and the single calls they carried. */
  readonly batchStats = { batches: 0, batchedCalls: 0 };

  constructor(opts: ShardPeerChannelsOptions) {
    this.opts = opts;
  }

  private client(memberId: NodeId): grpc.Client | string {
    if (this.closed) return 'shard peer channels closed';
    const address = this.opts.peerAddress(memberId);
    if (address === undefined) return `no peer address for member ${memberId}`;
    const known = this.clients.get(memberId);
    if (known && known.address === address) return known.client;
    known?.client.close();
    const Ctor = shardPeerService();
    const client = new Ctor(address, this.opts.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': this.opts.maxAnswerBytes ?? PEER_GRPC_MAX_ANSWER_BYTES,
      'grpc.max_send_message_length': this.opts.maxMessageBytes ?? PEER_GRPC_MAX_MESSAGE_BYTES,
      // A restarted member is dialled again within seconds, not after grpc-js's default backoff of up to
      // two minutes (calls to a channel failing to connect fail at once, and ShardKv skips such members).
      'grpc.max_reconnect_backoff_ms': MAX_RECONNECT_BACKOFF_MS,
    });
    this.clients.set(memberId, { address, client });
    return client;
  }

  /**
   * Whether the channel to `memberId` is connected, waiting up to `waitMs` (and never past `deadlineMs`)
   * while it connects; false at once when it is failing to connect (a member that is down). Never rejects.
   */
  connected(memberId: NodeId, waitMs: number, deadlineMs: number): Promise<boolean> {
    if (this.opts.isBlocked?.(memberId)) return Promise.resolve(false);
    const client = this.client(memberId);
    if (typeof client === 'string') return Promise.resolve(false);
    const channel = client.getChannel();
    const byMs = Math.min(Date.now() + waitMs, deadlineMs);
    return new Promise<boolean>((resolve) => {
      const check = (): void => {
        let state: grpc.connectivityState;
        try {
          state = channel.getConnectivityState(true);
        } catch {
          resolve(false);
          return;
        }
        if (state === grpc.connectivityState.READY) resolve(true);
        else if (state === grpc.connectivityState.TRANSIENT_FAILURE || state === grpc.connectivityState.SHUTDOWN || Date.now() >= byMs) resolve(false);
        else {
          try {
            channel.watchConnectivityState(state, byMs, (err) => (err ? resolve(false) : check()));
          } catch {
            resolve(false);
          }
        }
      };
      check();
    });
  }

  /** One unary call to `memberId` ending by `deadlineMs` (gRPC deadline, plus a backstop); never rejects. */
  call<Req, Res>(memberId: NodeId, method: ShardPeerUnaryMethod, request: Req, deadlineMs: number): Promise<Res | CallFailure> {
    const fail = (deadline: boolean, reason: string, notSent = false): CallFailure => ({ failure: true, deadline, reason, ...(notSent ? { notSent } : {}) });
    if (!(Date.now() < deadlineMs)) return Promise.resolve(fail(true, 'deadline passed before the call', true));
    if (this.opts.isBlocked?.(memberId)) return Promise.resolve(fail(false, `member ${memberId} is cut off (fault injection)`, true));
    const streams = this.opts.streams;
    if (streams !== undefined && STREAM_METHODS.has(method) && streams.streamCallsTo(memberId, SHARD_PEER_STREAM_SERVICE)) {
      const def = shardPeerService().service[method];
      const payload = def.requestSerialize(request);
      if (payload.length <= streams.streamPayloadLimitBytes) {
        return this.callOnStream<Res>(streams, memberId, method, def, payload, deadlineMs).then((answer) => {
          if (answer !== USE_UNARY) return answer;
          // A partition injected meanwhile (tests) cuts the unary call too, as at the start of call().
          if (this.opts.isBlocked?.(memberId)) return { failure: true, deadline: false, reason: `member ${memberId} is cut off (fault injection)`, notSent: true };
          return this.unaryCall<Req, Res>(memberId, method, request, deadlineMs);
        });
      }
    }
    return this.unaryCall<Req, Res>(memberId, method, request, deadlineMs);
  }

  private unaryCall<Req, Res>(memberId: NodeId, method: ShardPeerUnaryMethod, request: Req, deadlineMs: number): Promise<Res | CallFailure> {
    const fail = (deadline: boolean, reason: string, notSent = false): CallFailure => ({ failure: true, deadline, reason, ...(notSent ? { notSent } : {}) });
    const client = this.client(memberId);
    if (typeof client === 'string') return Promise.resolve(fail(false, client, true));
    const fn = (client as unknown as Record<string, Unary<Req, Res>>)[method].bind(client);
    return new Promise<Res | CallFailure>((resolve) => {
      let done = false;
      const finish = (v: Res | CallFailure): void => {
        if (done) return;
        done = true;
        clearTimeout(backstop);
        resolve(v);
      };
      let call: grpc.ClientUnaryCall | undefined;
      const backstop = setTimeout(() => {
        call?.cancel();
        finish(fail(true, `no answer from member ${memberId} by the deadline`));
      }, Math.max(0, Math.min(deadlineMs - Date.now(), 2 ** 31 - 1 - BACKSTOP_MS)) + BACKSTOP_MS);
      try {
        const metadata = new grpc.Metadata();
        if (this.opts.selfId !== undefined) metadata.set(FROM_MEMBER_METADATA, String(this.opts.selfId));
        call = fn(request, metadata, { deadline: Number.isFinite(deadlineMs) ? deadlineMs : Infinity }, (err, res) => {
          if (err) finish(fail(err.code === grpc.status.DEADLINE_EXCEEDED, `${grpc.status[err.code] ?? err.code}: ${err.details}`));
          else if (res === undefined) finish(fail(false, 'empty answer'));
          else finish(res);
        });
      } catch (err) {
        finish(fail(false, `call failed: ${message(err)}`));
      }
    });
  }

  /** `call` on the peer stream: the same answers and failures as the unary call. */
  private async callOnStream<Res>(streams: ShardPeerStreams, memberId: NodeId, method: ShardPeerUnaryMethod, def: grpc.MethodDefinition<unknown, unknown>, payload: Buffer, deadlineMs: number): Promise<Res | CallFailure | typeof USE_UNARY> {
    const outcome = await streams.callOnStream(memberId, def.path, payload, deadlineMs);
    if (outcome.kind === 'error' && outcome.code === grpc.status.RESOURCE_EXHAUSTED && UNARY_WHEN_TOO_LARGE.has(method)) return USE_UNARY;
    if (outcome.kind === 'not-sent') return USE_UNARY;
    switch (outcome.kind) {
      case 'reply':
        try {
          return def.responseDeserialize(outcome.payload) as Res;
        } catch (err) {
          return { failure: true, deadline: false, reason: `bad answer from member ${memberId}: ${message(err)}` };
        }
      case 'error':
        return { failure: true, deadline: outcome.code === grpc.status.DEADLINE_EXCEEDED, reason: `${grpc.status[outcome.code] ?? outcome.code}: ${outcome.details}` };
      case 'lost':
        return { failure: true, deadline: false, reason: `UNAVAILABLE: ${outcome.reason}` };
      case 'deadline':
        return { failure: true, deadline: true, reason: `no answer from member ${memberId} by the deadline` };
    }
  }

  /**
   * A RangeAt or CloseAt to `memberId`. Those asked of the same member in one turn leave as one
   * RangeAtBatch / CloseAtBatch call (a multi-shard range and a closing round ask every shard at once;
   * most are led by the same few members); each caller still gets its own answer by its own deadline.
   * A member that does not know the batch calls (an older version) is asked one by one from then on.
   * Never rejects.
   */
  callCoalesced<Req, Res>(memberId: NodeId, method: 'RangeAt' | 'CloseAt', request: Req, deadlineMs: number): Promise<Res | CallFailure> {
    if (this.unbatched.has(memberId)) return this.call<Req, Res>(memberId, method, request, deadlineMs);
    const key = `${method}/${memberId}`;
    return new Promise<Res | CallFailure>((resolve) => {
      let queue = this.coalescing.get(key);
      if (queue === undefined) {
        queue = [];
        this.coalescing.set(key, queue);
        setImmediate(() => {
          this.coalescing.delete(key);
          void this.sendCoalesced(memberId, method, queue!);
        });
      }
      queue.push({ request, deadlineMs, resolve: resolve as (v: unknown) => void });
    });
  }

  private async sendCoalesced(memberId: NodeId, method: 'RangeAt' | 'CloseAt', queue: CoalescedCall[]): Promise<void> {
    const single = (c: CoalescedCall): void => {
      void this.call(memberId, method, c.request, c.deadlineMs).then(c.resolve);
    };
    if (queue.length === 1 || this.unbatched.has(memberId)) {
      queue.forEach(single);
      return;
    }
    this.batchStats.batches++;
    this.batchStats.batchedCalls += queue.length;
    // Each caller's answer comes by its own deadline, whatever the batch call waits for.
    const settled = queue.map(() => false);
    const timers = queue.map((c, i) =>
      setTimeout(() => {
        if (settled[i]) return;
        settled[i] = true;
        c.resolve({ failure: true, deadline: true, reason: `no answer from member ${memberId} by the deadline` } satisfies CallFailure);
      }, Math.max(0, Math.min(c.deadlineMs - Date.now(), 2 ** 31 - 1 - BACKSTOP_MS)) + BACKSTOP_MS),
    );
    const answer = (i: number, v: unknown): void => {
      if (settled[i]) return;
      settled[i] = true;
      clearTimeout(timers[i]);
      queue[i].resolve(v);
    };
    const alone = (i: number): void => {
      void this.call(memberId, method, queue[i].request, queue[i].deadlineMs).then((v) => answer(i, v));
    };
    const deadlineMs = Math.max(...queue.map((c) => c.deadlineMs));
    const res = await this.call<{ requests: unknown[] }, { responses?: unknown[] }>(memberId, `${method}Batch`, { requests: queue.map((c) => c.request) }, deadlineMs);
    if (isFailure(res)) {
      if (/^UNIMPLEMENTED/.test(res.reason)) {
        this.unbatched.add(memberId);
        queue.forEach((_, i) => alone(i));
        return;
      }
      queue.forEach((_, i) => answer(i, res));
      return;
    }
    const responses = res.responses ?? [];
    if (responses.length !== queue.length) {
      queue.forEach((_, i) => answer(i, { failure: true, deadline: false, reason: `member ${memberId} answered ${responses.length} of ${queue.length} batched calls` } satisfies CallFailure));
      return;
    }
    responses.forEach((r, i) => {
      const kind = (r as { error?: { kind?: string } | null }).error?.kind;
      if (kind === 'RETRY_SINGLY') alone(i);
      else answer(i, r);
    });
  }

  /**
   * A WatchShard stream to `memberId` (RemoteWatchSource's transport): subscribes at once; `onClosed` is
   * called once, whether the server ended the stream or the transport failed. No deadline: a stream lives
   * as long as the merged watch; its liveness is the caller's resolve asks (remote-watch-source.ts).
   */
  watchShard(memberId: NodeId, subscribe: WatchShardSubscribeWire, handlers: WatchShardStreamHandlers): WatchShardStream | string {
    if (this.opts.isBlocked?.(memberId)) return `member ${memberId} is cut off (fault injection)`;
    const client = this.client(memberId);
    if (typeof client === 'string') return client;
    const metadata = new grpc.Metadata();
    if (this.opts.selfId !== undefined) metadata.set(FROM_MEMBER_METADATA, String(this.opts.selfId));
    let call: grpc.ClientDuplexStream<WatchShardRequestWire, WatchShardResponseWire>;
    try {
      call = (client as unknown as { WatchShard(md: grpc.Metadata): grpc.ClientDuplexStream<WatchShardRequestWire, WatchShardResponseWire> }).WatchShard(metadata);
    } catch (err) {
      return `call failed: ${message(err)}`;
    }
    let closed = false;
    const close = (reason: string): void => {
      if (closed) return;
      closed = true;
      handlers.onClosed(reason);
    };
    call.on('data', (msg: WatchShardResponseWire) => {
      if (!closed) handlers.onMessage(msg);
    });
    call.on('error', (err: grpc.ServiceError) => close(`${grpc.status[err.code] ?? err.code}: ${err.details}`));
    call.on('end', () => close('ended'));
    call.write({ subscribe });
    return {
      ask: (askId) => {
        if (!closed) call.write({ resolve: { ask_id: askId } });
      },
      cancel: () => {
        closed = true;
        call.cancel();
      },
    };
  }

  close(): void {
    this.closed = true;
    for (const { client } of this.clients.values()) client.close();
    this.clients.clear();
  }
}

/** RemoteWatchSource's transport over the peer port. */
export function watchShardTransport(channels: ShardPeerChannels): WatchShardTransport {
  return { open: (memberId, subscribe, handlers) => channels.watchShard(memberId, subscribe, handlers) };
}

function isFailure<T>(v: T | CallFailure): v is CallFailure {
  return typeof v === 'object' && v !== null && (v as Partial<CallFailure>).failure === true;
}

/** OracleClient's transport over the peer port: transport failures answer `unavailable` / `deadline`, never throw. */
export class GrpcOracleTransport implements OracleTransport {
  private readonly channels: ShardPeerChannels;

  constructor(channels: ShardPeerChannels) {
    this.channels = channels;
  }

  async request(to: NodeId, request: OracleRequest): Promise<OracleResponse> {
    const { requestId } = request;
    const answer = await this.channels.call<OracleRequestWire, OracleResponseWire>(to, 'Revisions', oracleRequestToWire(request), wireDeadline(request.deadlineMs));
    if (isFailure(answer)) return answer.deadline ? { kind: 'deadline', requestId } : { kind: 'unavailable', requestId, reason: answer.reason };
    try {
      return oracleResponseFromWire(answer);
    } catch (err) {
      return { kind: 'unavailable', requestId, reason: `bad answer from member ${to}: ${message(err)}` };
    }
  }
}

/** What a RangeAt on a peer came to. `mvcc` carries etcd's compacted / future-revision error to rethrow. */
export type RangeAtOutcome =
  | { readonly kind: 'ok'; readonly result: RangeResult; readonly pageEnd?: Buffer }
  | { readonly kind: 'not-leader'; readonly leaderId: NodeId }
  | { readonly kind: 'unavailable'; readonly reason: string }
  | { readonly kind: 'deadline'; readonly reason: string }
  | { readonly kind: 'mvcc'; readonly error: MvccError }
  | { readonly kind: 'too-large'; readonly reason: string }
  | { readonly kind: 'refused'; readonly reason: string };

/** Reads shard `groupId` at `revision` on member `memberId` (its leader, as far as the caller knows). Never rejects. */
export async function rangeAtOnPeer(channels: ShardPeerChannels, memberId: NodeId, groupId: number, op: RangeOp, revision: number, deadlineMs: number, paging?: { pageBytes: number; continued: boolean }): Promise<RangeAtOutcome> {
  const deadline = wireDeadline(deadlineMs);
  let request: RangeAtRequestWire;
  try {
    request = { group_id: groupId, revision, range: rangeOpToWire(op), ...deadlineToWire(deadlineMs), ...(paging ? { page_bytes: paging.pageBytes, continued: paging.continued } : {}) };
  } catch (err) {
    return { kind: 'refused', reason: message(err) };
  }
  const answer = await channels.callCoalesced<RangeAtRequestWire, RangeAtResponseWire>(memberId, 'RangeAt', request, deadline);
  if (isFailure(answer)) return answer.deadline ? { kind: 'deadline', reason: answer.reason } : { kind: 'unavailable', reason: answer.reason };
  try {
    switch (answer.result) {
      case 'range':
        if (!answer.range) throw new Error('range: missing');
        if (answer.paged === true) {
          const pageEnd = Buffer.from(answer.page_end ?? Buffer.alloc(0));
          const toEnd = op.rangeEnd.length === 1 && op.rangeEnd[0] === 0;
          if (Buffer.compare(pageEnd, op.key) <= 0 || (!toEnd && Buffer.compare(pageEnd, op.rangeEnd) >= 0)) throw new Error('a page that does not end inside its range');
          return { kind: 'ok', result: rangeResultFromWire(answer.range), pageEnd };
        }
        return { kind: 'ok', result: rangeResultFromWire(answer.range) };
      case 'not_leader':
        return { kind: 'not-leader', leaderId: safeInt(answer.not_leader?.leader_id, 'leader_id') };
      case 'error': {
        const e = answer.error;
        const msg = e?.message ?? '';
        switch (e?.kind) {
          case 'UNAVAILABLE':
            return { kind: 'unavailable', reason: msg };
          case 'DEADLINE':
            return { kind: 'deadline', reason: msg };
          case 'COMPACTED':
            return { kind: 'mvcc', error: new MvccError('compacted', msg) };
          case 'FUTURE_REV':
            return { kind: 'mvcc', error: new MvccError('futureRev', msg) };
          case 'TOO_LARGE':
            return { kind: 'too-large', reason: msg };
          default:
            return { kind: 'refused', reason: `${e?.kind ?? 'INTERNAL'}: ${msg}` };
        }
      }
      default:
        throw new Error(`answer without a known result (${String(answer.result)})`);
    }
  } catch (err) {
    return { kind: 'unavailable', reason: `bad answer from member ${memberId}: ${message(err)}` };
  }
}

/** What a CloseAt on a peer came to. */
export type CloseAtOutcome =
  | { readonly kind: 'closed'; readonly revision: number; readonly appliedIndex: number }
  | { readonly kind: 'not-leader'; readonly leaderId: NodeId }
  | { readonly kind: 'unavailable'; readonly reason: string }
  | { readonly kind: 'deadline'; readonly reason: string }
  | { readonly kind: 'refused'; readonly reason: string };

/** Closes shard `groupId` at `revision` or below on member `memberId` (its leader, as far as the caller knows). Never rejects. */
export async function closeAtOnPeer(channels: ShardPeerChannels, memberId: NodeId, groupId: number, revision: number, deadlineMs: number): Promise<CloseAtOutcome> {
  const deadline = wireDeadline(deadlineMs);
  const answer = await channels.callCoalesced<CloseAtRequestWire, CloseAtResponseWire>(memberId, 'CloseAt', { group_id: groupId, revision, ...deadlineToWire(deadlineMs) }, deadline);
  if (isFailure(answer)) return answer.deadline ? { kind: 'deadline', reason: answer.reason } : { kind: 'unavailable', reason: answer.reason };
  try {
    switch (answer.result) {
      case 'closed':
        if (!answer.closed) throw new Error('closed: missing');
        return { kind: 'closed', revision: safeInt(answer.closed.revision, 'revision'), appliedIndex: safeInt(answer.closed.applied_index, 'applied_index') };
      case 'not_leader':
        return { kind: 'not-leader', leaderId: safeInt(answer.not_leader?.leader_id, 'leader_id') };
      case 'error': {
        const e = answer.error;
        const msg = e?.message ?? '';
        if (e?.kind === 'UNAVAILABLE') return { kind: 'unavailable', reason: msg };
        if (e?.kind === 'DEADLINE') return { kind: 'deadline', reason: msg };
        return { kind: 'refused', reason: `${e?.kind ?? 'INTERNAL'}: ${msg}` };
      }
      default:
        throw new Error(`answer without a known result (${String(answer.result)})`);
    }
  } catch (err) {
    return { kind: 'unavailable', reason: `bad answer from member ${memberId}: ${message(err)}` };
  }
}

/**
 * What a ShardKv on a peer came to: the host's answer, `unreachable` (certainly not sent: the member is
 * down, cut off or not connected in time), or `lost` (sent, and no answer came: whether it was executed
 * is unknown).
 */
export type ShardKvOutcome =
  | ShardKvAnswer
  | { readonly kind: 'unreachable'; readonly reason: string }
  | { readonly kind: 'lost'; readonly deadline: boolean; readonly reason: string };

/**
 * Asks member `memberId` to execute `request` on its replica of the shard, waiting for the answer until
 * `callDeadlineMs` (at most the request's own deadline). Never rejects.
 */
export async function shardKvOnPeer(channels: ShardPeerChannels, memberId: NodeId, request: ShardKvRequest, callDeadlineMs = request.deadlineMs): Promise<ShardKvOutcome> {
  const deadline = wireDeadline(Math.min(callDeadlineMs, request.deadlineMs));
  if (!(await channels.connected(memberId, CONNECT_WAIT_MS, deadline))) return { kind: 'unreachable', reason: `member ${memberId.toString(16)} is not connected` };
  let wire: ShardKvRequestWire;
  try {
    wire = shardKvRequestToWire(request);
  } catch (err) {
    return { kind: 'error', code: grpc.status.INTERNAL, message: `unencodable shard kv request: ${message(err)}`, leaderId: 0 };
  }
  const answer = await channels.call<ShardKvRequestWire, ShardKvResponseWire>(memberId, 'ShardKv', wire, deadline);
  if (isFailure(answer)) return answer.notSent ? { kind: 'unreachable', reason: answer.reason } : { kind: 'lost', deadline: answer.deadline, reason: answer.reason };
  try {
    return shardKvAnswerFromWire(answer);
  } catch (err) {
    // The host answered something this member cannot read: it may have executed the request.
    return { kind: 'lost', deadline: false, reason: `bad answer from member ${memberId.toString(16)}: ${message(err)}` };
  }
}

/** A hosted shard's status as another member reported it. */
export interface RemoteShardStatus {
  readonly groupId: number;
  readonly leaderId: NodeId;
  readonly appliedRevision: number;
}

/**
 * The status of those of `groupIds` that member `memberId` hosts (ShardStatus): leader and applied
 * revision from its own state. Never rejects: a failed call, or an answer that does not decode, is [].
 */
export async function shardStatusOnPeer(channels: ShardPeerChannels, memberId: NodeId, groupIds: readonly number[], deadlineMs: number): Promise<RemoteShardStatus[]> {
  const answer = await channels.call<ShardStatusRequestWire, ShardStatusResponseWire>(memberId, 'ShardStatus', { group_ids: [...groupIds] }, wireDeadline(deadlineMs));
  if (isFailure(answer)) return [];
  try {
    return (answer.statuses ?? [])
      .filter((s) => s.hosted)
      .map((s) => ({ groupId: s.group_id, leaderId: safeInt(s.leader_id, 'leader_id'), appliedRevision: safeInt(s.applied_revision, 'applied_revision') }));
  } catch {
    return [];
  }
}

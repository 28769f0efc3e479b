// Peer transport: one long-lived gRPC stream from this member to each peer, each frame a batch of
// Raft messages for every group. Messages queue per peer during an event-loop turn and leave as one
// frame when the member flushes. A broken stream is re-dialled with capped, jittered backoff; Raft
// tolerates the messages lost meanwhile (it retransmits), so the queue drops rather than grows.
// Snapshots do not fit that stream: a 'snap' message travels with its state-machine bytes on a
// separate client-streaming call (Snapshot), in chunks, and the Raft member hears how it ended.
// Peers come and go with membership changes (setPeer/removePeer).
// Small request/response calls between members (the revision oracle's, above all: about one per
// sharded write) ride the same streams as StreamCall/StreamReply beside the Raft messages
// (callOnStream/serveOnStream): a message on an open stream costs a tenth of a unary gRPC call's CPU
// (bench/stream-floor.ts, bench/grpc-floor.ts). A member lists the services it serves so in its
// StreamHello; a peer that lists none (an older version) is never sent any.
// Stream frames are encoded and decoded by frame-codec.ts (hand-written, same proto3 bytes); the
// rare Snapshot and ClusterInfo calls go through proto-loader.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Message } from '../raft/types.ts';
import { messageFromWire, messageToWire, type WireMessage } from './wire.ts';
import {
  decodeBatch,
  encodeFrames,
  decodeStreamHello,
  encodeStreamHello,
  type FrameBatch,
  type FrameEnvelope,
  type StreamCall,
  type StreamHello,
  type StreamReply,
} from './frame-codec.ts';
import { PEER_GRPC_MAX_ANSWER_BYTES, PEER_GRPC_MAX_MESSAGE_BYTES } from './frame-budget.ts';
import type { FaultInjector } from './fault-injector.ts';
import { SnapshotFileWriter } from '../storage/snapshot-file.ts';
import type { SendRateLimiter } from './send-rate-limiter.ts';
import { RECOVERY_CHANNEL_OPTIONS } from './channel-recovery.ts';
import { grpcServiceClient } from '../protobuf/proto-schemas.ts';

const MIN_BACKOFF_MS = 50;
/**
 * Metadata a dialling member names itself in. Only a hint: a stream from a member whose own stream
 * from here is down means that member is back, so it is dialled again now rather than at the end of
 * its backoff (a restarted follower heard its leader up to ~2 s after it could serve).
 */
const DIALLER_METADATA_KEY = 'synod-dialler-member-id';
/** Stream redials wait at most this: with the channel's own recovery (channel-recovery.ts) a peer back under a new IP is found within 2 s. */
const MAX_BACKOFF_MS = 1_000;
/** A snapshot transfer that takes longer than this fails (and Raft retries it later). */
const SNAPSHOT_DEADLINE_MS = 10 * 60_000;
/**
 * How often an accepted stream's hello is said again, so the dialler's reading of this member's clock
 * (peerClockAheadMs) follows a clock stepped since the stream opened (an NTP correction). An older
 * dialler takes a repeated hello as it takes the first.
 */
export const DEFAULT_HELLO_INTERVAL_MS = 30_000;

interface WireSnapshotChunk {
  cluster_id: number;
  from_member: number;
  to_member: number;
  group_id: number;
  message: WireMessage | null;
  data: Buffer;
  last: boolean;
}

let cachedService: grpc.ServiceClientConstructor | undefined;
function peerService(): grpc.ServiceClientConstructor {
  if (cachedService) return cachedService;
  const loaded = grpcServiceClient('synod.transport.Peer', { longs: Number, enums: String, bytes: Buffer, defaults: true });
  // The Stream RPC bypasses proto-loader: the sender hands over a frame it encoded itself
  // (PeerTransport.flush), the receiver gets Raft messages decoded by frame-codec.ts.
  const service: grpc.ServiceDefinition = {
    ...loaded.service,
    Stream: {
      ...loaded.service.Stream,
      requestSerialize: passFrame,
      requestDeserialize: decodeBatch,
      responseSerialize: encodeStreamHello,
      responseDeserialize: decodeStreamHello,
    },
  };
  cachedService = grpc.makeClientConstructor(service, 'Peer');
  return cachedService;
}

/** Outbound Stream frames are already encoded (frame-codec.ts encodeBatch). */
function passFrame(frame: Buffer): Buffer {
  if (!Buffer.isBuffer(frame)) throw new Error('peer stream frames must be encoded with encodeBatch');
  return frame;
}

/** Asks the member at `address` (its peer port) for the cluster description a joining member needs. */
export function fetchClusterInfo(address: string, timeoutMs: number, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()): Promise<string> {
  const Peer = peerService();
  const client = new Peer(address, credentials) as unknown as grpc.Client & {
    ClusterInfo(req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: { cluster_json: string }) => void): void;
  };
  return new Promise<string>((resolve, reject) => {
    client.ClusterInfo({}, { deadline: Date.now() + timeoutMs }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res?.cluster_json ?? '');
    });
  });
}

export interface InboundMessage {
  groupId: number;
  message: Message;
}

export interface PeerTransportOptions {
  clusterId: number;
  memberId: number;
  /** The replicated apply rules this member implements, said in its StreamHello (transport.proto; 0: none). */
  applyRules?: number;
  /** host:port to listen on for peers. */
  listenAddress: string;
  /** Peer member id → host:port to dial. */
  peers: Map<number, string>;
  onMessages: (fromMember: number, messages: InboundMessage[]) => void;
  logger: Logger;
  /** Test-only (--experimental-fault-injection): drops messages to and from blocked peers. */
  faults?: FaultInjector;
  /** How to dial peers (peer TLS); plaintext when absent. */
  credentials?: grpc.ChannelCredentials;
  /**
   * Largest frame this member writes (frame-budget.ts frameBudgetBytes, derived from the replication
   * limits): a turn's messages to a peer beyond it leave as several frames.
   */
  maxFrameBytes: number;
  /**
   * Messages to this peer were lost because its stream is down: Raft stops pipelining to it and
   * probes instead (reportUnreachable), so it does not wait out a window of appends that never left.
   */
  onUnreachable?: (memberId: number) => void;
  /** Overrides of the peer channels' options (tests reproduce grpc-js defaults with it). */
  channelOptions?: grpc.ChannelOptions;
  /** How to listen (peer TLS, server/tls/tls-listener.ts); resolves with the port. Plaintext when absent. */
  bind?: (server: grpc.Server, address: string) => Promise<number>;
  /** Sending and receiving state-machine snapshots. */
  snapshots: SnapshotHandler;
  /** The member-wide pace of snapshot bytes sent (send-rate-limiter.ts); unpaced when absent. */
  snapshotSendLimiter?: SendRateLimiter;
  /** JSON describing the cluster, for a member joining with --initial-cluster-state existing. */
  clusterInfo: () => string;
  /** Whether a member was removed from the cluster: its streams are refused with REMOVED_DETAILS. */
  isRemoved: (memberId: number) => boolean;
  /** A peer refused this member's stream because this member was removed (it may never see its removal in the log). */
  onRemoved: () => void;
  /** How often accepted streams say their hello again (DEFAULT_HELLO_INTERVAL_MS; tests shorten it). */
  helloIntervalMs?: number;
}

/** What a member tells a removed member that still talks to it (etcd answers such peers "410 Gone"). */
export const REMOVED_DETAILS = 'synod: the member has been permanently removed from the cluster';

export interface SnapshotHandler {
  /** Directory where received snapshot files are written. */
  dir: string;
  /** The bytes of this member's snapshot at `index` (throws if it is not retained). */
  chunks(groupId: number, index: number): AsyncIterable<Buffer>;
  /** A transfer this member sent ended. */
  report(groupId: number, to: number, status: 'finish' | 'failure'): void;
  /** A verified snapshot file arrived with its 'snap' message. */
  received(groupId: number, message: Message, filePath: string): void;
}

/** What a call on a peer stream came to (callOnStream). Never a rejection. */
export type StreamCallOutcome =
  | { readonly kind: 'reply'; readonly payload: Buffer }
  /** The peer's handler failed the call with this gRPC status. */
  | { readonly kind: 'error'; readonly code: number; readonly details: string }
  /** It never left this member (no stream to the peer, or cut off): certainly not executed there. */
  | { readonly kind: 'not-sent'; readonly reason: string }
  /** It left, and the stream it left on broke before the reply came: it may or may not have run. */
  | { readonly kind: 'lost'; readonly reason: string }
  | { readonly kind: 'deadline' };

/** Serves calls made on peer streams to one service: the answer's payload, or a gRPC status. Never rejects. */
export type StreamCallHandler = (fromMember: number, method: string, payload: Buffer) => Promise<{ payload: Buffer } | { code: number; details: string }>;

/** Counters of the calls on the peer streams (exported on /metrics). */
export interface StreamCallStats {
  /** Calls this member made on its streams. */
  sent: number;
  /** Calls from peers this member served. */
  served: number;
  /** Calls sent on a stream that broke before their reply came. */
  lost: number;
  /** Calls whose reply did not come by their deadline. */
  timedOut: number;
  /** Frames written to peer streams (each one gRPC stream message: what a peer's flush costs). */
  framesSent: number;
}

interface PendingCall {
  readonly to: number;
  sent: boolean;
  readonly timer: NodeJS.Timeout;
  resolve(outcome: StreamCallOutcome): void;
}

const NO_SERVICES: ReadonlySet<string> = new Set();

/** "/synod.shard.ShardPeer/Revisions" → "synod.shard.ShardPeer". */
function serviceOfMethod(method: string): string {
  const slash = method.lastIndexOf('/');
  return slash > 0 ? method.slice(method.startsWith('/') ? 1 : 0, slash) : '';
}

/** At most one "cannot reach peer" line per peer per this interval (a down peer is redialled often). */
const DIAL_FAILURE_LOG_MS = 10_000;

interface Outbound {
  memberId: number;
  address: string;
  client: grpc.Client | null;
  call: grpc.ClientDuplexStream<Buffer, StreamHello> | null;
  connected: boolean;
  queue: FrameEnvelope[];
  /** Calls and replies waiting for the next flush. */
  calls: StreamCall[];
  replies: StreamReply[];
  /** The services the peer serves on its streams, from its hello on the current stream. */
  peerServices: ReadonlySet<string>;
  backoffMs: number;
  redialTimer: NodeJS.Timeout | null;
  droppedMessages: number;
  lastDialFailureLogMs: number;
}

export class PeerTransport {
  private readonly opts: PeerTransportOptions;
  private readonly server = new grpc.Server({
    'grpc.max_receive_message_length': PEER_GRPC_MAX_MESSAGE_BYTES,
    // Stream frames keep within the budget below; a forwarded request's answer may be larger (ShardKv).
    'grpc.max_send_message_length': PEER_GRPC_MAX_ANSWER_BYTES,
    'grpc.enable_channelz': 0,
  });
  private readonly outbound = new Map<number, Outbound>();
  private readonly inboundCalls = new Set<grpc.ServerDuplexStream<FrameBatch, StreamHello>>();
  /** Each peer's wall clock ahead of this member's, from its last hello (peerClockAheadMs). */
  private readonly peerClockAheadById = new Map<number, number>();
  /** Each peer's apply rules from its last hello (peerApplyRules). */
  private readonly peerApplyRulesById = new Map<number, number>();
  private stopped = false;
  private boundPort = 0;
  private helloTimer: ReturnType<typeof setInterval> | null = null;
  /** Streams dialled again at once because their peer dialled this member (peerIsBack). */
  earlyRedials = 0;
  /** Snapshot transfers in flight, by "group/member". */
  private readonly sendingSnapshots = new Set<string>();
  private unknownPeerWarnings = 0;
  private readonly streamHandlers = new Map<string, StreamCallHandler>();
  private readonly pendingCalls = new Map<number, PendingCall>();
  /** Streams from each peer open now (by the id it dials under): a stream call's reply travels on one. */
  private readonly inboundStreams = new Map<number, number>();
  private nextCallId = 1;
  private flushScheduled = false;
  /** Calls made and served on the streams (for the metrics and tests). */
  readonly streamCallStats: StreamCallStats = { sent: 0, served: 0, lost: 0, timedOut: 0, framesSent: 0 };

  constructor(opts: PeerTransportOptions) {
    if (!(opts.maxFrameBytes > 0 && opts.maxFrameBytes <= PEER_GRPC_MAX_MESSAGE_BYTES)) {
      throw new Error(`peer transport: frame budget ${opts.maxFrameBytes} must be in (0, ${PEER_GRPC_MAX_MESSAGE_BYTES}] (the stream's gRPC limit)`);
    }
    this.opts = opts;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Registers another peer-facing service (e.g. lease forwarding) on the peer port; before start(). */
  addService(service: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void {
    this.server.addService(service, impl);
  }

  /** Serves calls on the peer streams to `service` (e.g. "synod.shard.ShardPeer"); before start(), so every hello lists it. */
  serveOnStream(service: string, handler: StreamCallHandler): void {
    if (this.boundPort !== 0) throw new Error('peer transport: serveOnStream must come before start()');
    this.streamHandlers.set(service, handler);
  }

  /** Largest call or reply payload the streams carry (a quarter of a frame); larger ones go by unary call. */
  get streamPayloadLimitBytes(): number {
    return Math.floor(this.opts.maxFrameBytes / 4);
  }

  /**
   * The apply rules member `memberId` said it implements in its last hello (0: never heard, or none).
   * Kept while its stream is down: a member that restarts says again, so one that came back on an older
   * build (a downgrade) is known as such once its stream is up.
   */
  peerApplyRules(memberId: number): number {
    return this.peerApplyRulesById.get(memberId) ?? 0;
  }

  peerHasSaidHello(memberId: number): boolean {
    return this.peerApplyRulesById.has(memberId);
  }

  /**
   * How far member `memberId`'s wall clock is ahead of this member's (ms; negative: behind), as its last
   * hello said; 0 when it never said (an older member, or not heard yet).
   */
  peerClockAheadMs(memberId: number): number {
    return this.peerClockAheadById.get(memberId) ?? 0;
  }

  /**
   * Whether a call to `service` can go to `memberId` on its stream now: the stream to it is up, the peer
   * serves the service there, and its own stream to this member is up too, since the reply comes back
   * on that one (a peer that does not know this member's address yet, or cannot reach it, could not
   * answer; the caller uses a unary call instead).
   */
  streamCallsTo(memberId: number, service: string): boolean {
    const out = this.outbound.get(memberId);
    return out !== undefined && out.connected && out.peerServices.has(service) && (this.inboundStreams.get(memberId) ?? 0) > 0;
  }

  /**
   * Calls `method` on `memberId` over the stream to it, with the turn's Raft messages (or on its own
   * at the next turn of the event loop). The reply comes back on the peer's stream to this member.
   * Never rejects; ends by `deadlineMs` at the latest.
   */
  callOnStream(memberId: number, method: string, payload: Buffer, deadlineMs: number): Promise<StreamCallOutcome> {
    const out = this.outbound.get(memberId);
    if (out === undefined || !out.connected) return Promise.resolve({ kind: 'not-sent', reason: `no stream to member ${memberId}` });
    if (!out.peerServices.has(serviceOfMethod(method))) return Promise.resolve({ kind: 'not-sent', reason: `member ${memberId} does not serve ${method} on its stream` });
    if (payload.length > this.streamPayloadLimitBytes) return Promise.resolve({ kind: 'not-sent', reason: `a ${payload.length}-byte call is too large for the peer stream` });
    const callId = this.nextCallId++;
    return new Promise<StreamCallOutcome>((resolve) => {
      const timer = setTimeout(() => {
        if (this.pendingCalls.delete(callId)) {
          this.streamCallStats.timedOut++;
          resolve({ kind: 'deadline' });
        }
      }, Math.max(0, Math.min(deadlineMs - Date.now(), 2 ** 31 - 1)));
      this.pendingCalls.set(callId, { to: memberId, sent: false, timer, resolve });
      out.calls.push({ callId, method, payload });
      this.streamCallStats.sent++;
      this.scheduleFlush();
    });
  }

  private settleCall(callId: number, outcome: StreamCallOutcome): void {
    const pending = this.pendingCalls.get(callId);
    if (pending === undefined) return;
    this.pendingCalls.delete(callId);
    clearTimeout(pending.timer);
    pending.resolve(outcome);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Serves calls that arrived from `fromMember`; each reply leaves on the stream to it. */
  private serveCalls(fromMember: number, calls: StreamCall[]): void {
    for (const call of calls) {
      const handler = this.streamHandlers.get(serviceOfMethod(call.method));
      let answer: Promise<{ payload: Buffer } | { code: number; details: string }>;
      try {
        answer = handler ? handler(fromMember, call.method, call.payload) : Promise.resolve({ code: grpc.status.UNIMPLEMENTED, details: `${call.method} is not served on the peer stream` });
      } catch (err) {
        answer = Promise.reject(err);
      }
      this.streamCallStats.served++;
      // A handler that fails anyway (it should answer a status) is a bug here, reported to the caller as INTERNAL.
      answer = answer.catch((err: unknown) => ({ code: grpc.status.INTERNAL, details: err instanceof Error ? err.message : String(err) }));
      void answer.then((a) => {
        let reply: StreamReply;
        if ('payload' in a) {
          reply =
            a.payload.length > this.streamPayloadLimitBytes
              ? { callId: call.callId, payload: Buffer.alloc(0), errorCode: grpc.status.RESOURCE_EXHAUSTED, errorDetails: `a ${a.payload.length}-byte reply is too large for the peer stream` }
              : { callId: call.callId, payload: a.payload, errorCode: 0, errorDetails: '' };
        } else reply = { callId: call.callId, payload: Buffer.alloc(0), errorCode: a.code, errorDetails: a.details };
        const out = this.outbound.get(fromMember);
        if (out === undefined || this.stopped) return; // the caller's deadline ends its wait
        out.replies.push(reply);
        this.scheduleFlush();
      });
    }
  }

  private receiveReplies(fromMember: number, replies: StreamReply[]): void {
    for (const r of replies) {
      if (this.pendingCalls.get(r.callId)?.to !== fromMember) continue; // late, or not ours
      this.settleCall(r.callId, r.errorCode === 0 ? { kind: 'reply', payload: r.payload } : { kind: 'error', code: r.errorCode, details: r.errorDetails });
    }
  }

  /** Calls sent to `memberId` on a stream that broke: their replies may never come. */
  private loseSentCalls(memberId: number, reason: string): void {
    for (const [callId, pending] of this.pendingCalls) {
      if (pending.to !== memberId || !pending.sent) continue;
      this.streamCallStats.lost++;
      this.settleCall(callId, { kind: 'lost', reason });
    }
  }

  /** Calls queued for a stream that is down or cut off: they never leave. */
  private dropQueuedCalls(out: Outbound, reason: string): void {
    const calls = out.calls;
    out.calls = [];
    out.replies = [];
    for (const c of calls) this.settleCall(c.callId, { kind: 'not-sent', reason });
  }

  /** host:port a peer listens on, for services that call it directly. */
  peerAddress(memberId: number): string | undefined {
    return this.opts.peers.get(memberId);
  }

  /** Adds a peer (a member joined) or changes its address (its peer URLs were updated). */
  setPeer(memberId: number, address: string): void {
    if (memberId === this.opts.memberId) return;
    const current = this.outbound.get(memberId);
    if (current && current.address === address) return;
    if (current) this.closeOutbound(current);
    this.opts.peers.set(memberId, address);
    if (this.boundPort === 0) return; // start() dials everything
    this.openOutbound(memberId, address);
  }

  /** Stops talking to a peer (it was removed from the cluster). */
  removePeer(memberId: number): void {
    const current = this.outbound.get(memberId);
    if (current) this.closeOutbound(current);
    this.outbound.delete(memberId);
    this.opts.peers.delete(memberId);
  }

  private openOutbound(memberId: number, address: string): void {
    const out: Outbound = {
      memberId,
      address,
      client: null,
      call: null,
      connected: false,
      queue: [],
      calls: [],
      replies: [],
      peerServices: NO_SERVICES,
      backoffMs: MIN_BACKOFF_MS,
      redialTimer: null,
      droppedMessages: 0,
      lastDialFailureLogMs: 0,
    };
    this.outbound.set(memberId, out);
    this.dial(out);
  }

  private closeOutbound(out: Outbound): void {
    if (out.redialTimer) clearTimeout(out.redialTimer);
    out.redialTimer = null;
    const call = out.call;
    out.call = null;
    out.connected = false;
    out.peerServices = NO_SERVICES;
    call?.end();
    out.client?.close();
    out.client = null;
    this.dropQueuedCalls(out, `the stream to member ${out.memberId} was closed`);
    this.loseSentCalls(out.memberId, `the stream to member ${out.memberId} was closed`);
  }

  async start(): Promise<void> {
    const Peer = peerService();
    this.server.addService(Peer.service, {
      Stream: (call: grpc.ServerDuplexStream<FrameBatch, StreamHello>) => this.acceptStream(call),
      Snapshot: (call: grpc.ServerReadableStream<WireSnapshotChunk, unknown>, cb: grpc.sendUnaryData<unknown>) =>
        this.acceptSnapshot(call, cb),
      ClusterInfo: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        try {
          cb(null, { cluster_json: this.opts.clusterInfo() });
        } catch (err) {
          cb({ code: grpc.status.UNAVAILABLE, details: err instanceof Error ? err.message : String(err) });
        }
      },
    });
    const bind = this.opts.bind;
    this.boundPort = bind
      ? await bind(this.server, this.opts.listenAddress)
      : await new Promise<number>((resolve, reject) => {
          this.server.bindAsync(this.opts.listenAddress, grpc.ServerCredentials.createInsecure(), (err, port) =>
            err ? reject(err) : resolve(port),
          );
        });
    // Every accepted stream's hello again, so diallers follow this member's clock (DEFAULT_HELLO_INTERVAL_MS).
    this.helloTimer = setInterval(() => {
      for (const inbound of this.inboundCalls) inbound.write(this.hello());
    }, this.opts.helloIntervalMs ?? DEFAULT_HELLO_INTERVAL_MS);
    this.helloTimer.unref();
    for (const [memberId, address] of this.opts.peers) {
      if (memberId === this.opts.memberId) continue;
      this.openOutbound(memberId, address);
    }
  }

  /** Queues a message for its destination; it leaves on the next flush(). */
  send(groupId: number, message: Message): void {
    const out = this.outbound.get(message.to);
    if (!out) {
      // A member whose address this member has not learned yet (or one just removed): Raft retries.
      if (this.unknownPeerWarnings++ % 100 === 0) this.opts.logger.warn({ peer: message.to, type: message.type }, 'no address for peer; message dropped');
      if (message.type === 'snap') this.opts.snapshots.report(groupId, message.to, 'failure');
      return;
    }
    if (message.type === 'snap') {
      this.sendSnapshot(out, groupId, message);
      return;
    }
    // Encoded at flush(): the Raft core never changes a message once it handed it out.
    out.queue.push({ groupId, message });
  }

  /** Streams a snapshot to a peer on its own call; Raft hears 'finish' or 'failure' when it ends. */
  private sendSnapshot(out: Outbound, groupId: number, message: Message): void {
    const key = `${groupId}/${out.memberId}`;
    const index = message.snapshot?.index ?? 0;
    if (this.sendingSnapshots.has(key)) return; // one transfer per peer and group; Raft waits for it
    if (this.opts.faults?.isBlocked(out.memberId) || !out.client) {
      this.opts.snapshots.report(groupId, out.memberId, 'failure');
      return;
    }
    this.sendingSnapshots.add(key);
    const startedMs = Date.now();
    let bytes = 0;
    const client = out.client as unknown as {
      Snapshot(options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, ack?: { ok: boolean; error: string }) => void): grpc.ClientWritableStream<WireSnapshotChunk>;
    };
    let settled = false;
    const finish = (status: 'finish' | 'failure', err?: unknown): void => {
      if (settled) return;
      settled = true;
      this.sendingSnapshots.delete(key);
      if (status === 'finish') {
        this.opts.logger.info({ peer: out.memberId, group: groupId, index, bytes, ms: Date.now() - startedMs }, 'snapshot sent');
      } else {
        this.opts.logger.warn({ peer: out.memberId, group: groupId, index, err }, 'snapshot transfer failed; Raft retries it');
      }
      this.opts.snapshots.report(groupId, out.memberId, status);
    };
    const call = client.Snapshot({ deadline: Date.now() + SNAPSHOT_DEADLINE_MS }, (err, ack) => {
      if (err) finish('failure', err);
      else if (!ack?.ok) finish('failure', ack?.error);
      else finish('finish');
    });
    this.opts.logger.info({ peer: out.memberId, group: groupId, index }, 'sending snapshot');
    void (async () => {
      let first = true;
      let pending: Buffer | null = null;
      const write = async (data: Buffer, last: boolean): Promise<void> => {
        const chunk: WireSnapshotChunk = {
          cluster_id: this.opts.clusterId,
          from_member: this.opts.memberId,
          to_member: out.memberId,
          group_id: groupId,
          message: first ? messageToWire(message) : null,
          data,
          last,
        };
        first = false;
        bytes += data.length;
        await this.opts.snapshotSendLimiter?.acquire(data.length);
        if (settled) return;
        if (!call.write(chunk)) await new Promise<void>((resolve) => call.once('drain', () => resolve()));
      };
      // One chunk is held back so the final one can carry last = true.
      for await (const data of this.opts.snapshots.chunks(groupId, index)) {
        if (settled) return;
        if (pending) await write(pending, false);
        pending = data;
      }
      await write(pending ?? Buffer.alloc(0), true);
      call.end();
    })().catch((err: unknown) => {
      call.cancel();
      finish('failure', err);
    });
  }

  private acceptSnapshot(call: grpc.ServerReadableStream<WireSnapshotChunk, unknown>, cb: grpc.sendUnaryData<unknown>): void {
    let writer: SnapshotFileWriter | null = null;
    let message: Message | null = null;
    let groupId = 0;
    let done = false;
    const fail = (reason: string): void => {
      if (done) return;
      done = true;
      writer?.abort();
      this.opts.logger.warn({ reason }, 'snapshot receive failed');
      cb(null, { ok: false, error: reason });
    };
    call.on('data', (chunk: WireSnapshotChunk) => {
      if (done) return;
      try {
        if (!writer) {
          if (Number(chunk.cluster_id) !== this.opts.clusterId || Number(chunk.to_member) !== this.opts.memberId || !chunk.message) {
            this.opts.logger.error({ clusterId: chunk.cluster_id, toMember: chunk.to_member }, 'rejecting snapshot from another cluster or for another member');
            fail('cluster id or member id mismatch');
            return;
          }
          if (this.opts.faults?.isBlocked(Number(chunk.from_member))) {
            fail('blocked by fault injection');
            return;
          }
          message = messageFromWire(chunk.message);
          groupId = Number(chunk.group_id);
          writer = new SnapshotFileWriter(this.opts.snapshots.dir);
          this.opts.logger.info({ from: chunk.from_member, group: groupId, index: message.snapshot?.index }, 'receiving snapshot');
        }
        writer.write(chunk.data);
        if (chunk.last) {
          const file = writer.finish();
          done = true;
          if (file.header.index !== message!.snapshot?.index || file.header.groupId !== groupId) {
            cb(null, { ok: false, error: 'snapshot data does not match its message' });
            return;
          }
          this.opts.snapshots.received(groupId, message!, file.path);
          cb(null, { ok: true, error: '' });
        }
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err));
      }
    });
    call.on('end', () => fail('snapshot stream ended before its last chunk'));
    call.on('error', (err: Error) => fail(err.message));
  }

  /**
   * Writes each peer's queued messages as one frame. Messages for a peer whose stream is down are
   * dropped, not kept: Raft retransmits, and a backlog of stale appends would only delay catch-up.
   */
  flush(): void {
    for (const out of this.outbound.values()) {
      if (out.queue.length === 0 && out.calls.length === 0 && out.replies.length === 0) continue;
      // Fault injection (test-only): a blocked peer gets nothing.
      if (this.opts.faults?.isBlocked(out.memberId)) {
        this.opts.faults.droppedMessages += out.queue.length;
        out.queue = [];
        this.dropQueuedCalls(out, `member ${out.memberId} is cut off (fault injection)`);
        continue;
      }
      if (!out.call || !out.connected) {
        if (out.queue.length > 0) {
          out.droppedMessages += out.queue.length;
          out.queue = [];
          this.opts.onUnreachable?.(out.memberId);
        }
        this.dropQueuedCalls(out, `no stream to member ${out.memberId}`);
        continue;
      }
      const envelopes = out.queue;
      const calls = out.calls;
      const replies = out.replies;
      out.queue = [];
      out.calls = [];
      out.replies = [];
      for (const c of calls) {
        const pending = this.pendingCalls.get(c.callId);
        if (pending !== undefined) pending.sent = true;
      }
      // Throws on a message the wire cannot carry (an id or index that is not a safe integer, or one
      // larger than the frame budget): a bug, never a peer's fault.
      const batch: FrameBatch = { clusterId: this.opts.clusterId, fromMember: this.opts.memberId, toMember: out.memberId, envelopes };
      if (calls.length > 0) batch.calls = calls;
      if (replies.length > 0) batch.replies = replies;
      const frames = encodeFrames(batch, this.opts.maxFrameBytes);
      for (const frame of frames) out.call.write(frame);
      this.streamCallStats.framesSent += frames.length;
    }
  }

  isConnected(memberId: number): boolean {
    return this.outbound.get(memberId)?.connected ?? false;
  }

  droppedMessages(): number {
    let total = 0;
    for (const out of this.outbound.values()) total += out.droppedMessages;
    return total;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.helloTimer !== null) clearInterval(this.helloTimer);
    this.helloTimer = null;
    for (const out of this.outbound.values()) this.closeOutbound(out);
    for (const callId of [...this.pendingCalls.keys()]) this.settleCall(callId, { kind: 'not-sent', reason: 'peer transport stopped' });
    for (const call of this.inboundCalls) call.end();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.server.forceShutdown();
  }

  private dial(out: Outbound): void {
    if (this.stopped) return;
    const Peer = peerService();
    out.client ??= new Peer(out.address, this.opts.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': PEER_GRPC_MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': PEER_GRPC_MAX_MESSAGE_BYTES,
      'grpc.enable_channelz': 0,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      ...RECOVERY_CHANNEL_OPTIONS,
      ...this.opts.channelOptions,
    });
    const metadata = new grpc.Metadata();
    metadata.set(DIALLER_METADATA_KEY, String(this.opts.memberId));
    const call = (out.client as unknown as { Stream(m: grpc.Metadata): grpc.ClientDuplexStream<Buffer, StreamHello> }).Stream(metadata);
    out.call = call;
    let closed = false;
    const onClosed = (reason: string): void => {
      if (closed) return;
      closed = true;
      if (out.call === call) {
        out.call = null;
        out.peerServices = NO_SERVICES;
        this.loseSentCalls(out.memberId, `the stream to member ${out.memberId} broke: ${reason}`);
        if (out.connected) {
          this.opts.logger.warn({ peer: out.memberId, reason }, 'peer stream lost');
          this.opts.onUnreachable?.(out.memberId); // what was written on it may never arrive
        }
        else this.logDialFailure(out, reason);
        out.connected = false;
        this.scheduleRedial(out);
      }
    };
    call.on('data', (hello: StreamHello) => {
      // The peer's hello: the stream is up end to end.
      if (out.call === call) out.peerServices = new Set(hello.streamServices ?? []);
      this.peerApplyRulesById.set(out.memberId, hello.applyRules ?? 0);
      // Its clock against ours, less the hello's way here (a loopback or LAN hop: well under the times read with it).
      if ((hello.unixMs ?? 0) > 0) this.peerClockAheadById.set(out.memberId, hello.unixMs! - Date.now());
      if (!out.connected) {
        out.connected = true;
        out.backoffMs = MIN_BACKOFF_MS;
        this.opts.logger.info({ peer: out.memberId, address: out.address }, 'peer stream up');
        this.flush();
      }
    });
    call.on('error', (err: Error) => {
      if (err.message.includes(REMOVED_DETAILS)) {
        this.opts.logger.error({ peer: out.memberId }, 'peer reports this member was removed from the cluster');
        this.opts.onRemoved();
      }
      onClosed(err.message);
    });
    call.on('end', () => onClosed('ended'));
    call.on('close', () => onClosed('closed'));
  }

  /** A peer that never answers (down, wrong CA, plaintext vs TLS) gets a line now and then, not silence. */
  private logDialFailure(out: Outbound, reason: string): void {
    if (this.stopped || reason === 'ended' || reason === 'closed') return;
    const now = Date.now();
    if (now - out.lastDialFailureLogMs < DIAL_FAILURE_LOG_MS) return;
    out.lastDialFailureLogMs = now;
    this.opts.logger.warn({ peer: out.memberId, address: out.address, reason }, 'cannot reach peer');
  }

  private scheduleRedial(out: Outbound): void {
    if (this.stopped || out.redialTimer) return;
    const delayMs = out.backoffMs / 2 + Math.random() * (out.backoffMs / 2);
    out.backoffMs = Math.min(out.backoffMs * 2, MAX_BACKOFF_MS);
    out.redialTimer = setTimeout(() => {
      out.redialTimer = null;
      this.dial(out);
    }, delayMs);
  }

  /**
   * `memberId` just dialled this member, so it is up: if the stream to it is down and waiting out a
   * backoff, dial it now, on a new channel (the old one may be in its own reconnect backoff).
   */
  private peerIsBack(memberId: number): void {
    const out = this.outbound.get(memberId);
    if (this.stopped || out === undefined || out.redialTimer === null) return;
    clearTimeout(out.redialTimer);
    out.redialTimer = null;
    out.backoffMs = MIN_BACKOFF_MS;
    out.client?.close();
    out.client = null;
    this.earlyRedials++;
    this.dial(out);
  }

  /** What this member says on each stream it accepts, when it opens and every helloIntervalMs after. */
  private hello(): StreamHello {
    return { clusterId: this.opts.clusterId, memberId: this.opts.memberId, streamServices: [...this.streamHandlers.keys()], applyRules: this.opts.applyRules ?? 0, unixMs: Date.now() };
  }

  private acceptStream(call: grpc.ServerDuplexStream<FrameBatch, StreamHello>): void {
    this.inboundCalls.add(call);
    const dialler = Number(call.metadata.get(DIALLER_METADATA_KEY)[0] ?? 0);
    const named = Number.isSafeInteger(dialler) && dialler > 0;
    if (named) {
      this.peerIsBack(dialler);
      this.inboundStreams.set(dialler, (this.inboundStreams.get(dialler) ?? 0) + 1);
    }
    call.write(this.hello());
    call.on('data', (batch: FrameBatch) => {
      if (batch.clusterId !== this.opts.clusterId || batch.toMember !== this.opts.memberId) {
        this.opts.logger.error(
          { clusterId: batch.clusterId, toMember: batch.toMember, fromMember: batch.fromMember },
          'rejecting peer stream from another cluster or for another member',
        );
        call.destroy(new Error('cluster id or member id mismatch'));
        return;
      }
      // Fault injection (test-only): nothing from a blocked peer gets through.
      if (this.opts.faults?.isBlocked(batch.fromMember)) {
        this.opts.faults.droppedMessages += batch.envelopes.length;
        return;
      }
      if (this.opts.isRemoved(batch.fromMember)) {
        this.opts.logger.warn({ peer: batch.fromMember }, 'refusing a stream from a removed member');
        call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: REMOVED_DETAILS });
        return;
      }
      // Envelopes are already { groupId, message } with Raft messages (frame-codec.ts decodeBatch).
      if (batch.envelopes.length > 0) this.opts.onMessages(batch.fromMember, batch.envelopes);
      if (batch.replies) this.receiveReplies(batch.fromMember, batch.replies);
      if (batch.calls) this.serveCalls(batch.fromMember, batch.calls);
    });
    const done = (): void => {
      if (!this.inboundCalls.delete(call) || !named) return;
      const left = (this.inboundStreams.get(dialler) ?? 1) - 1;
      if (left > 0) this.inboundStreams.set(dialler, left);
      else this.inboundStreams.delete(dialler);
    };
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('close', done);
  }
}

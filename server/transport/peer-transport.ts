// Peer transport: one long-lived gRPC stream from this member to each peer, each frame a batch of
// Raft messages for every group. Messages queue per peer during an event-loop turn and leave as one
// frame when the member flushes. A broken stream is re-dialled with capped, jittered backoff; Raft
// tolerates the messages lost meanwhile (it retransmits), so the queue drops rather than grows.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Message } from '../raft/types.ts';
import { messageFromWire, messageToWire, type WireBatch, type WireEnvelope } from './wire.ts';
import type { FaultInjector } from './fault-injector.ts';

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');
const MAX_FRAME_BYTES = 64 * 1024 * 1024;
const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2_000;

let cachedService: grpc.ServiceClientConstructor | undefined;
function peerService(): grpc.ServiceClientConstructor {
  if (cachedService) return cachedService;
  const def = protoLoader.loadSync('synod/transport.proto', {
    keepCase: true,
    longs: Number,
    enums: String,
    bytes: Buffer,
    defaults: true,
    includeDirs: [PROTO_ROOT],
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    synod: { transport: { Peer: grpc.ServiceClientConstructor } };
  };
  cachedService = pkg.synod.transport.Peer;
  return cachedService;
}

export interface InboundMessage {
  groupId: number;
  message: Message;
}

export interface PeerTransportOptions {
  clusterId: number;
  memberId: number;
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
  /** How to listen (peer TLS, server/tls/tls-listener.ts); resolves with the port. Plaintext when absent. */
  bind?: (server: grpc.Server, address: string) => Promise<number>;
}

/** At most one "cannot reach peer" line per peer per this interval (a down peer is redialled often). */
const DIAL_FAILURE_LOG_MS = 10_000;

interface Outbound {
  memberId: number;
  address: string;
  client: grpc.Client | null;
  call: grpc.ClientDuplexStream<WireBatch, unknown> | null;
  connected: boolean;
  queue: WireEnvelope[];
  backoffMs: number;
  redialTimer: NodeJS.Timeout | null;
  droppedMessages: number;
  lastDialFailureLogMs: number;
}

export class PeerTransport {
  private readonly opts: PeerTransportOptions;
  private readonly server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_FRAME_BYTES,
    'grpc.max_send_message_length': MAX_FRAME_BYTES,
  });
  private readonly outbound = new Map<number, Outbound>();
  private readonly inboundCalls = new Set<grpc.ServerDuplexStream<WireBatch, unknown>>();
  private stopped = false;
  private boundPort = 0;

  constructor(opts: PeerTransportOptions) {
    this.opts = opts;
  }

  get port(): number {
    return this.boundPort;
  }

  /** Registers another peer-facing service (e.g. lease forwarding) on the peer port; before start(). */
  addService(service: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): void {
    this.server.addService(service, impl);
  }

  /** host:port a peer listens on, for services that call it directly. */
  peerAddress(memberId: number): string | undefined {
    return this.opts.peers.get(memberId);
  }

  async start(): Promise<void> {
    const Peer = peerService();
    this.server.addService(Peer.service, {
      Stream: (call: grpc.ServerDuplexStream<WireBatch, unknown>) => this.acceptStream(call),
    });
    const bind = this.opts.bind;
    this.boundPort = bind
      ? await bind(this.server, this.opts.listenAddress)
      : await new Promise<number>((resolve, reject) => {
          this.server.bindAsync(this.opts.listenAddress, grpc.ServerCredentials.createInsecure(), (err, port) =>
            err ? reject(err) : resolve(port),
          );
        });
    for (const [memberId, address] of this.opts.peers) {
      if (memberId === this.opts.memberId) continue;
      const out: Outbound = {
        memberId,
        address,
        client: null,
        call: null,
        connected: false,
        queue: [],
        backoffMs: MIN_BACKOFF_MS,
        redialTimer: null,
        droppedMessages: 0,
        lastDialFailureLogMs: 0,
      };
      this.outbound.set(memberId, out);
      this.dial(out);
    }
  }

  /** Queues a message for its destination; it leaves on the next flush(). */
  send(groupId: number, message: Message): void {
    const out = this.outbound.get(message.to);
    if (!out) throw new Error(`no peer with member id ${message.to}`);
    out.queue.push({ group_id: groupId, message: messageToWire(message) });
  }

  /**
   * Writes each peer's queued messages as one frame. Messages for a peer whose stream is down are
   * dropped, not kept: Raft retransmits, and a backlog of stale appends would only delay catch-up.
   */
  flush(): void {
    for (const out of this.outbound.values()) {
      if (out.queue.length === 0) continue;
      // Fault injection (test-only): a blocked peer gets nothing.
      if (this.opts.faults?.isBlocked(out.memberId)) {
        this.opts.faults.droppedMessages += out.queue.length;
        out.queue = [];
        continue;
      }
      if (!out.call || !out.connected) {
        out.droppedMessages += out.queue.length;
        out.queue = [];
        continue;
      }
      const batch: WireBatch = {
        cluster_id: this.opts.clusterId,
        from_member: this.opts.memberId,
        to_member: out.memberId,
        envelopes: out.queue,
      };
      out.queue = [];
      out.call.write(batch);
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
    for (const out of this.outbound.values()) {
      if (out.redialTimer) clearTimeout(out.redialTimer);
      out.call?.end();
      out.client?.close();
    }
    for (const call of this.inboundCalls) call.end();
    await new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.server.forceShutdown();
  }

  private dial(out: Outbound): void {
    if (this.stopped) return;
    const Peer = peerService();
    out.client ??= new Peer(out.address, this.opts.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': MAX_FRAME_BYTES,
      'grpc.max_send_message_length': MAX_FRAME_BYTES,
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.initial_reconnect_backoff_ms': MIN_BACKOFF_MS,
      'grpc.max_reconnect_backoff_ms': MAX_BACKOFF_MS,
    });
    const call = (out.client as unknown as { Stream(): grpc.ClientDuplexStream<WireBatch, unknown> }).Stream();
    out.call = call;
    let closed = false;
    const onClosed = (reason: string): void => {
      if (closed) return;
      closed = true;
      if (out.call === call) {
        out.call = null;
        if (out.connected) this.opts.logger.warn({ peer: out.memberId, reason }, 'peer stream lost');
        else this.logDialFailure(out, reason);
        out.connected = false;
        this.scheduleRedial(out);
      }
    };
    call.on('data', () => {
      // The peer's hello: the stream is up end to end.
      if (!out.connected) {
        out.connected = true;
        out.backoffMs = MIN_BACKOFF_MS;
        this.opts.logger.info({ peer: out.memberId, address: out.address }, 'peer stream up');
        this.flush();
      }
    });
    call.on('error', (err: Error) => onClosed(err.message));
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

  private acceptStream(call: grpc.ServerDuplexStream<WireBatch, unknown>): void {
    this.inboundCalls.add(call);
    call.write({ cluster_id: this.opts.clusterId, member_id: this.opts.memberId });
    call.on('data', (batch: WireBatch) => {
      if (Number(batch.cluster_id) !== this.opts.clusterId || Number(batch.to_member) !== this.opts.memberId) {
        this.opts.logger.error(
          { clusterId: batch.cluster_id, toMember: batch.to_member, fromMember: batch.from_member },
          'rejecting peer stream from another cluster or for another member',
        );
        call.destroy(new Error('cluster id or member id mismatch'));
        return;
      }
      // Fault injection (test-only): nothing from a blocked peer gets through.
      if (this.opts.faults?.isBlocked(Number(batch.from_member))) {
        this.opts.faults.droppedMessages += batch.envelopes.length;
        return;
      }
      const inbound: InboundMessage[] = [];
      for (const env of batch.envelopes) {
        inbound.push({ groupId: env.group_id, message: messageFromWire(env.message) });
      }
      this.opts.onMessages(Number(batch.from_member), inbound);
    });
    const done = (): void => {
      this.inboundCalls.delete(call);
    };
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('close', done);
  }
}

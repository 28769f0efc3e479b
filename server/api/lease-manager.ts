// Leases on this member: keeps the leader's lease clocks in step with leadership and with what is
// applied, revokes expired leases through Raft, checkpoints remaining TTLs through Raft (so they
// survive failover and restarts), and answers renewals and TTL queries — locally when this member
// leads, otherwise by forwarding to the leader over the peer port.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import path from 'node:path';
import type { Logger } from 'pino';
import { LeaseClock } from '../lease/lease-clock.ts';
import { NoLeaderError } from '../member/member.ts';
import { ApiContext, DATA_GROUP_ID } from './context.ts';
import { PROTO_ROOT } from './proto.ts';

/** etcd's cap on a lease's TTL (MaxLeaseTTL, about 285 years). */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;
/** etcd's lessor checkpoints at most this many leases per entry. */
const CHECKPOINT_BATCH = 1000;
const EXPIRY_SCAN_INTERVAL_MS = 250;
/** After proposing a revoke, wait this long before proposing it again (it may have been lost). */
const REVOKE_RETRY_MS = 3_000;
const FORWARD_TIMEOUT_MS = 3_000;

interface ForwardResponse {
  leader: boolean;
  found: boolean;
  ttl: string;
  remaining_ms: string;
}

type ForwardMethod = (req: { id: string }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: ForwardResponse) => void) => void;

let forwardService: grpc.ServiceClientConstructor | undefined;
function leaseForwardService(): grpc.ServiceClientConstructor {
  if (!forwardService) {
    const def = protoLoader.loadSync(path.join('synod', 'lease_forward.proto'), {
      keepCase: true,
      longs: String,
      defaults: true,
      includeDirs: [PROTO_ROOT],
    });
    const pkg = grpc.loadPackageDefinition(def) as unknown as { synod: { lease: { LeaseForward: grpc.ServiceClientConstructor } } };
    forwardService = pkg.synod.lease.LeaseForward;
  }
  return forwardService;
}

export interface LeaseManagerOptions {
  ctx: ApiContext;
  /** host:port of a member's peer port. */
  peerAddress: (memberId: number) => string | undefined;
  electionTimeoutMs: number;
  checkpointIntervalMs: number;
  logger: Logger;
  /** How to dial the leader's peer port (peer TLS); plaintext when absent. */
  credentials?: grpc.ChannelCredentials;
}

export class LeaseManager {
  readonly clock = new LeaseClock();
  readonly minTtlSeconds: number;
  private readonly opts: LeaseManagerOptions;
  private readonly revoking = new Map<string, number>();
  private readonly clients = new Map<string, grpc.Client>();
  private timers: NodeJS.Timeout[] = [];

  constructor(opts: LeaseManagerOptions) {
    this.opts = opts;
    // etcd: a lease must outlive an election, so the minimum TTL is 1.5 election timeouts.
    this.minTtlSeconds = Math.ceil((1.5 * opts.electionTimeoutMs) / 1000);
    const { ctx } = opts;
    ctx.sm.leaseListener = {
      granted: (id, ttlSeconds) => this.clock.started(id, ttlSeconds, Date.now()),
      revoked: (id) => {
        this.clock.ended(id);
        this.revoking.delete(id);
      },
    };
    ctx.member.onLeaderChange((groupId, leaderId) => {
      if (groupId !== DATA_GROUP_ID) return;
      if (leaderId === ctx.member.memberId) {
        this.clock.promote(ctx.sm.leases.all(), Date.now(), opts.electionTimeoutMs);
        opts.logger.info({ leases: ctx.sm.leases.size() }, 'lease clocks started (leader)');
      } else {
        this.clock.demote();
        this.revoking.clear();
      }
    });
  }

  static forwardServiceDefinition(): grpc.ServiceDefinition {
    return leaseForwardService().service;
  }

  start(): void {
    this.timers.push(setInterval(() => this.revokeExpired(), EXPIRY_SCAN_INTERVAL_MS));
    this.timers.push(setInterval(() => this.checkpoint(), this.opts.checkpointIntervalMs));
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private isLeader(): boolean {
    return this.clock.isActive && this.opts.ctx.member.status(DATA_GROUP_ID).role === 'leader';
  }

  private revokeExpired(): void {
    if (!this.isLeader()) return;
    const nowMs = Date.now();
    for (const id of this.clock.expired(nowMs, 500)) {
      const since = this.revoking.get(id);
      if (since !== undefined && nowMs - since < REVOKE_RETRY_MS) continue;
      if (!this.opts.ctx.sm.leases.has(id)) {
        this.clock.ended(id);
        continue;
      }
      this.revoking.set(id, nowMs);
      this.opts.ctx.proposeWrite({ lease_revoke: { ID: id } }).then(
        () => this.opts.logger.debug({ lease: id }, 'lease expired and revoked'),
        () => undefined, // retried on a later scan while the clock still says expired
      );
    }
  }

  private checkpoint(): void {
    if (!this.isLeader()) return;
    const nowMs = Date.now();
    const checkpoints: Array<{ ID: string; remaining_TTL: string }> = [];
    for (const lease of this.opts.ctx.sm.leases.all()) {
      const remainingMs = this.clock.remainingMs(lease.id, nowMs);
      if (remainingMs === null || remainingMs <= 0) continue;
      checkpoints.push({ ID: lease.id, remaining_TTL: String(Math.ceil(remainingMs / 1000)) });
    }
    for (let i = 0; i < checkpoints.length; i += CHECKPOINT_BATCH) {
      this.opts.ctx
        .proposeWrite({ lease_checkpoint: { checkpoints: checkpoints.slice(i, i + CHECKPOINT_BATCH) } })
        .catch(() => undefined); // the next interval checkpoints again
    }
  }

  /** Leader-local renewal: the lease's new TTL, or 0 when it does not exist or already expired. */
  private renewLocal(id: string): number {
    const lease = this.opts.ctx.sm.leases.get(id);
    if (!lease) return 0;
    const nowMs = Date.now();
    const remaining = this.clock.remainingMs(id, nowMs);
    if (remaining === 0) return 0; // expired: its revoke is on the way
    this.clock.renew(id, lease.ttlSeconds, nowMs);
    return lease.ttlSeconds;
  }

  private timeToLiveLocal(id: string): number | null {
    if (!this.opts.ctx.sm.leases.has(id)) return null;
    const remaining = this.clock.remainingMs(id, Date.now());
    return remaining === null || remaining === 0 ? null : remaining;
  }

  /** Renews a lease wherever the leader is; resolves with the TTL (0: not found or expired). */
  async renew(id: string): Promise<number> {
    await this.opts.ctx.readBarrier();
    if (this.isLeader()) return this.renewLocal(id);
    const res = await this.forward('Renew', id);
    return res.found ? Number(res.ttl) : 0;
  }

  /** Remaining ms of a lease on the leader's clock, or null when it does not exist. */
  async remainingMs(id: string): Promise<number | null> {
    await this.opts.ctx.readBarrier();
    if (this.isLeader()) return this.timeToLiveLocal(id);
    const res = await this.forward('TimeToLive', id);
    return res.found ? Number(res.remaining_ms) : null;
  }

  private forward(method: 'Renew' | 'TimeToLive', id: string): Promise<ForwardResponse> {
    const leaderId = this.opts.ctx.member.status(DATA_GROUP_ID).leaderId;
    if (leaderId === 0) return Promise.reject(new NoLeaderError());
    const address = this.opts.peerAddress(leaderId);
    if (!address) return Promise.reject(new NoLeaderError());
    let client = this.clients.get(address);
    if (!client) {
      const Ctor = leaseForwardService();
      client = new Ctor(address, this.opts.credentials ?? grpc.credentials.createInsecure());
      this.clients.set(address, client);
    }
    const fn = (client as unknown as Record<string, ForwardMethod>)[method].bind(client);
    return new Promise((resolve, reject) => {
      fn({ id }, { deadline: Date.now() + FORWARD_TIMEOUT_MS }, (err, res) => {
        if (err) reject(new NoLeaderError());
        else if (!res.leader) reject(new NoLeaderError());
        else resolve(res);
      });
    });
  }

  /** The peer-port service the other members forward to. */
  forwardServiceImpl(): grpc.UntypedServiceImplementation {
    const answer = (compute: (id: string) => Partial<ForwardResponse>) =>
      (call: grpc.ServerUnaryCall<{ id: string }, ForwardResponse>, cb: grpc.sendUnaryData<ForwardResponse>): void => {
        const id = String(call.request.id);
        this.opts.ctx.readBarrier().then(
          () => {
            if (!this.isLeader()) cb(null, { leader: false, found: false, ttl: '0', remaining_ms: '0' });
            else cb(null, { leader: true, found: false, ttl: '0', remaining_ms: '0', ...compute(id) });
          },
          () => cb(null, { leader: false, found: false, ttl: '0', remaining_ms: '0' }),
        );
      };
    return {
      Renew: answer((id) => {
        const ttl = this.renewLocal(id);
        return { found: ttl > 0, ttl: String(ttl) };
      }),
      TimeToLive: answer((id) => {
        const remaining = this.timeToLiveLocal(id);
        return remaining === null ? { found: false } : { found: true, remaining_ms: String(remaining) };
      }),
    };
  }
}

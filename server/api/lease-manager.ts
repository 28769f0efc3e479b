// Leases on this member: keeps the leader's lease clocks in step with leadership and with what is
// applied, revokes expired leases through Raft, checkpoints remaining TTLs through Raft (so they
// survive failover and restarts), and answers renewals and TTL queries — locally when this member
// leads, otherwise by forwarding to the leader over the peer port.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { LeaseClock } from '../lease/lease-clock.ts';
import { NoLeaderError } from '../member/member.ts';
import { ApiContext, DATA_GROUP_ID } from './context.ts';
import { grpcServiceClient } from '../protobuf/proto-schemas.ts';

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

interface RenewBatchResponse {
  leader: boolean;
  ttls: string[];
}

type RenewBatchMethod = (req: { ids: string[] }, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: RenewBatchResponse) => void) => void;

/** Most renewals forwarded in one RenewBatch call. */
const RENEW_BATCH_MAX = 1000;

interface QueuedRenewal {
  id: string;
  resolve: (ttl: number) => void;
  reject: (err: Error) => void;
}

let forwardService: grpc.ServiceClientConstructor | undefined;
function leaseForwardService(): grpc.ServiceClientConstructor {
  if (!forwardService) {
    forwardService = grpcServiceClient('synod.lease.LeaseForward', { longs: String, defaults: true });
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
  /** Renewals waiting to be forwarded together at the end of this event-loop turn. */
  private queuedRenewals: QueuedRenewal[] = [];
  /** Leader addresses that answered RenewBatch with UNIMPLEMENTED (an older version). */
  private readonly noBatch = new Set<string>();
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
    return this.clock.isActive && this.opts.ctx.member.role(DATA_GROUP_ID) === 'leader';
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

  /**
   * Renews a lease wherever the leader is; resolves with the TTL (0: not found or expired).
   *
   * The leader renews from its own clocks once a (batched) ReadIndex round confirmed it still leads
   * (renewOnLeader). A follower forwards at once; the leader's answer is the authoritative one, so a
   * local read barrier would cost a round and protect nothing.
   */
  async renew(id: string): Promise<number> {
    if (this.isLeader()) return this.renewOnLeader(id);
    // Forwarded with the other renewals of this turn: one peer call instead of one each.
    return new Promise<number>((resolve, reject) => {
      if (this.queuedRenewals.length === 0) setImmediate(() => this.forwardRenewals());
      this.queuedRenewals.push({ id, resolve, reject });
    });
  }

  private forwardRenewals(): void {
    const all = this.queuedRenewals;
    this.queuedRenewals = [];
    for (let i = 0; i < all.length; i += RENEW_BATCH_MAX) this.forwardBatch(all.slice(i, i + RENEW_BATCH_MAX));
  }

  private forwardBatch(batch: QueuedRenewal[]): void {
    const single = (): void => {
      for (const r of batch) this.forward('Renew', r.id).then((res) => r.resolve(res.found ? Number(res.ttl) : 0), r.reject);
    };
    const target = this.leaderClient();
    if (target instanceof Error) {
      for (const r of batch) r.reject(target);
      return;
    }
    const [address, client] = target;
    if (this.noBatch.has(address)) {
      single();
      return;
    }
    const fn = (client as unknown as Record<string, RenewBatchMethod>).RenewBatch.bind(client);
    fn({ ids: batch.map((r) => r.id) }, { deadline: Date.now() + FORWARD_TIMEOUT_MS }, (err, res) => {
      if (err && err.code === grpc.status.UNIMPLEMENTED) {
        this.noBatch.add(address);
        single();
      } else if (err || !res.leader || res.ttls.length !== batch.length) {
        for (const r of batch) r.reject(new NoLeaderError());
      } else {
        batch.forEach((r, i) => r.resolve(Number(res.ttls[i])));
      }
    });
  }

  /**
   * Leader: renews from the local clocks, after confirming leadership with a ReadIndex round (as
   * etcd's ensureLeadership): a leader cut off from the quorum that does not know it yet must not
   * extend a lease, or its client would go on holding a lock the new leader lets expire (a new
   * leader's clocks start from the last checkpointed remaining TTL). Every renewal of a turn shares
   * one round (reads are batched per turn), so this costs a heartbeat round per turn, not per
   * renewal. The barrier also covers a lease granted by an entry the leader has committed but not
   * applied yet (a follower can apply, and its client renew, first).
   */
  private async renewOnLeader(id: string): Promise<number> {
    await this.opts.ctx.member.readBarrier(DATA_GROUP_ID, Date.now() + FORWARD_TIMEOUT_MS);
    if (!this.isLeader()) throw new NoLeaderError();
    return this.renewLocal(id);
  }

  /** Remaining ms of a lease on the leader's clock, or null when it does not exist. */
  async remainingMs(id: string): Promise<number | null> {
    await this.opts.ctx.readBarrier();
    if (this.isLeader()) return this.timeToLiveLocal(id);
    const res = await this.forward('TimeToLive', id);
    return res.found ? Number(res.remaining_ms) : null;
  }

  /** The leader's peer address and a client for it, or NoLeaderError. */
  private leaderClient(): [string, grpc.Client] | NoLeaderError {
    const leaderId = this.opts.ctx.member.leaderId(DATA_GROUP_ID);
    if (leaderId === 0) return new NoLeaderError();
    const address = this.opts.peerAddress(leaderId);
    if (!address) return new NoLeaderError();
    let client = this.clients.get(address);
    if (!client) {
      const Ctor = leaseForwardService();
      client = new Ctor(address, this.opts.credentials ?? grpc.credentials.createInsecure());
      this.clients.set(address, client);
    }
    return [address, client];
  }

  private forward(method: 'Renew' | 'TimeToLive', id: string): Promise<ForwardResponse> {
    const target = this.leaderClient();
    if (target instanceof Error) return Promise.reject(target);
    const client = target[1];
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
    const notLeader: ForwardResponse = { leader: false, found: false, ttl: '0', remaining_ms: '0' };
    return {
      Renew: (call: grpc.ServerUnaryCall<{ id: string }, ForwardResponse>, cb: grpc.sendUnaryData<ForwardResponse>): void => {
        if (!this.isLeader()) {
          cb(null, notLeader);
          return;
        }
        this.renewOnLeader(String(call.request.id)).then(
          (ttl) => cb(null, { leader: true, found: ttl > 0, ttl: String(ttl), remaining_ms: '0' }),
          () => cb(null, notLeader),
        );
      },
      RenewBatch: (call: grpc.ServerUnaryCall<{ ids: string[] }, RenewBatchResponse>, cb: grpc.sendUnaryData<RenewBatchResponse>): void => {
        if (!this.isLeader()) {
          cb(null, { leader: false, ttls: [] });
          return;
        }
        Promise.all((call.request.ids ?? []).map((id) => this.renewOnLeader(String(id)))).then(
          (ttls) => cb(null, { leader: true, ttls: ttls.map(String) }),
          () => cb(null, { leader: false, ttls: [] }),
        );
      },
      TimeToLive: answer((id) => {
        const remaining = this.timeToLiveLocal(id);
        return remaining === null ? { found: false } : { found: true, remaining_ms: String(remaining) };
      }),
    };
  }
}

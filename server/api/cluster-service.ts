// etcdserverpb.Cluster: MemberList, and live membership changes (MemberAdd as voter or learner,
// MemberPromote, MemberRemove, MemberUpdate). Changes are decided at the leader, which alone knows
// which members are active and whether a learner has caught up: a member that is not the leader
// forwards the call, unchanged, to the same service on the leader's peer port. The leader checks
// etcd's rules (membership-rules.ts), proposes one Raft conf change at a time (waiting for an
// earlier one to apply), and answers once the change is applied on it.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { ApiContext, DATA_GROUP_ID, toServiceError } from './context.ts';
import { etcdClients } from '../etcd/proto.ts';
import { ETCD_ERRORS, grpcError, type EtcdErrorSpec } from '../etcd/errors.ts';
import { DeadlineError, NoLeaderError } from '../member/member.ts';
import type { ConfChange } from '../raft/types.ts';
import type { MemberInfo } from './cluster-info.ts';
import { checkAdd, checkPromote, checkRemove, checkUpdate, type MembershipView } from './membership-rules.ts';
import type { ConfChangeContext } from '../shard/kv-state-machine.ts';

/** Metadata a forwarded call carries, so a member that lost leadership meanwhile does not forward again. */
const FORWARDED = 'synod-forwarded';
const CONF_CHANGE_RETRY_MS = 50;

export interface ClusterServiceOptions {
  ctx: ApiContext;
  /** host:port of a member's peer port. */
  peerAddress: (memberId: number) => string | undefined;
  /** Current members with their published names and client URLs. */
  members: () => MemberInfo[];
  /** How to dial the leader's peer port (peer TLS); plaintext when absent. */
  credentials?: grpc.ChannelCredentials;
}

interface WireMember {
  ID: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

type Handler = (req: Record<string, unknown>) => Promise<unknown>;
type ForwardClient = grpc.Client & Record<string, (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void>;

const toWire = (m: MemberInfo): WireMember => ({
  ID: String(m.id),
  name: m.name,
  peerURLs: m.peerUrls,
  clientURLs: m.clientUrls,
  isLearner: m.isLearner,
});

function refuse(spec: EtcdErrorSpec | null): void {
  if (spec) throw grpcError(spec);
}

export class ClusterService {
  private readonly opts: ClusterServiceOptions;
  private readonly clients = new Map<string, ForwardClient>();

  constructor(opts: ClusterServiceOptions) {
    this.opts = opts;
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  implementation(): grpc.UntypedServiceImplementation {
    const leaderOnly = (method: string, handler: Handler): grpc.handleUnaryCall<Record<string, unknown>, unknown> => (call, cb) => {
      const forwarded = call.metadata.get(FORWARDED).length > 0;
      this.leaderOrForward(method, handler, call.request, forwarded).then(
        (res) => cb(null, res),
        (err: unknown) => cb(toServiceError(err, this.opts.ctx.logger)),
      );
    };
    return {
      MemberList: (call: grpc.ServerUnaryCall<{ linearizable?: boolean }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        const run = async (): Promise<unknown> => {
          if (call.request.linearizable) await this.opts.ctx.readBarrier();
          return { header: this.opts.ctx.header(), members: this.opts.members().map(toWire) };
        };
        run().then(
          (res) => cb(null, res),
          (err: unknown) => cb(toServiceError(err, this.opts.ctx.logger)),
        );
      },
      MemberAdd: leaderOnly('MemberAdd', (req) => this.add(req)),
      MemberRemove: leaderOnly('MemberRemove', (req) => this.remove(req)),
      MemberPromote: leaderOnly('MemberPromote', (req) => this.promote(req)),
      MemberUpdate: leaderOnly('MemberUpdate', (req) => this.update(req)),
    };
  }

  private async leaderOrForward(method: string, handler: Handler, req: Record<string, unknown>, forwarded: boolean): Promise<unknown> {
    const { ctx } = this.opts;
    const status = ctx.member.status(DATA_GROUP_ID);
    if (status.role === 'leader') return handler(req);
    if (status.leaderId === 0) throw new NoLeaderError();
    if (forwarded) throw grpcError(ETCD_ERRORS.LEADER_CHANGED);
    const address = this.opts.peerAddress(status.leaderId);
    if (!address) throw new NoLeaderError();
    let client = this.clients.get(address);
    if (!client) {
      client = new (etcdClients().Cluster)(address, this.opts.credentials ?? grpc.credentials.createInsecure()) as unknown as ForwardClient;
      this.clients.set(address, client);
    }
    const md = new grpc.Metadata();
    md.set(FORWARDED, ctx.memberIdText);
    const c = client;
    const res = await new Promise((resolve, reject) => {
      c[method](req, md, { deadline: ctx.deadlineMs() }, (err, res) => (err ? reject(err) : resolve(res)));
    });
    // A member removing itself answers at once: it stops when the removal applies here, and a barrier
    // it may never pass would hold the answer past the client's deadline (the member was removed, and
    // the client, hearing nothing, retried and got "member not found").
    if (method === 'MemberRemove' && String(req.ID ?? '') === ctx.memberIdText) return res;
    // The leader answered once the change applied there; wait until it applied here too, so this
    // member's own MemberList shows it right after (as etcd, which waits for its local apply).
    await ctx.member.readBarrier(DATA_GROUP_ID, ctx.deadlineMs()).catch(() => undefined);
    return res;
  }

  private view(): MembershipView {
    const { ctx } = this.opts;
    return { members: ctx.sm.members(), active: new Set(ctx.member.activeMembers(DATA_GROUP_ID).map(String)) };
  }

  /**
   * refuse(), saying in the log which voters this leader counted as not started and how long it has not
   * heard from each: a change refused for that is otherwise hard to explain after the fact.
   */
  private refuseChange(spec: EtcdErrorSpec | null, view: MembershipView, change: string): void {
    if (spec === ETCD_ERRORS.MEMBER_NOT_ENOUGH_STARTED) {
      const { ctx } = this.opts;
      const silent = view.members
        .filter((m) => !m.isLearner && !view.active.has(m.id))
        .map((m) => ({ member: BigInt(m.id).toString(16), silentMs: ctx.member.silenceMs(Number(m.id)) }));
      ctx.logger.warn({ change, silent }, 'membership change refused: not enough started members');
    }
    refuse(spec);
  }

  private freshMemberId(): number {
    for (;;) {
      const id = Number(randomBytes(8).readBigUInt64BE(0) & ((1n << 53n) - 1n));
      if (id !== 0 && !this.opts.ctx.sm.membership.has(String(id))) return id;
    }
  }

  /**
   * Proposes a conf change and resolves once it is applied here. While an earlier change is still
   * being applied, Raft refuses the proposal; it is re-checked and retried until the deadline.
   */
  private async change(build: (context: Uint8Array) => ConfChange, recheck: () => void, peerUrls?: string[]): Promise<void> {
    const { ctx } = this.opts;
    // On a sharded cluster this changes the cluster group; every other group follows it
    // (server/shard/group-membership.ts).
    const deadline = ctx.deadlineMs();
    for (;;) {
      recheck();
      const tracked = ctx.sm.track();
      const context: ConfChangeContext = { proposer: ctx.sm.proposer, seq: tracked.seq, ...(peerUrls ? { peerUrls } : {}) };
      const change = build(Buffer.from(JSON.stringify(context)));
      try {
        ctx.member.proposeConfChange(DATA_GROUP_ID, change);
      } catch (err) {
        tracked.forget();
        if (err instanceof Error && err.name === 'ConfChangeInProgressError' && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, CONF_CHANGE_RETRY_MS));
          continue;
        }
        if (err instanceof Error && err.name === 'ConfChangeInProgressError') throw new DeadlineError('membership change');
        throw err;
      }
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          tracked.outcome,
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new DeadlineError('membership change')), Math.max(0, deadline - Date.now()));
          }),
        ]);
      } finally {
        clearTimeout(timer);
        tracked.forget();
      }
      return;
    }
  }

  private membersReply(extra: Record<string, unknown> = {}): unknown {
    return { header: this.opts.ctx.header(), members: this.opts.members().map(toWire), ...extra };
  }

  private async add(req: Record<string, unknown>): Promise<unknown> {
    const peerUrls = (req.peerURLs as string[] | undefined) ?? [];
    const isLearner = Boolean(req.isLearner);
    const id = this.freshMemberId();
    await this.change(
      (context) => ({ type: isLearner ? 'addLearner' : 'addNode', nodeId: id, context }),
      () => {
        const view = this.view();
        this.refuseChange(checkAdd(view, peerUrls, isLearner), view, 'add');
      },
      peerUrls,
    );
    this.opts.ctx.logger.info({ member: id.toString(16), peerUrls, isLearner }, 'member added');
    const member: WireMember = { ID: String(id), name: '', peerURLs: peerUrls, clientURLs: [], isLearner };
    return this.membersReply({ member });
  }

  private async remove(req: Record<string, unknown>): Promise<unknown> {
    const id = String(req.ID ?? '0');
    const { ctx } = this.opts;
    const view = this.view();
    this.refuseChange(checkRemove(view, id), view, `remove ${BigInt(id).toString(16)}`);
    this.refuseWhileShardsAtRisk(id);
    if (id === ctx.memberIdText) {
      // The leader removing itself hands leadership over first, so the cluster does not wait out an
      // election timeout; the new leader then performs the removal.
      const target = ctx.member.bestTransferee(DATA_GROUP_ID);
      if (target !== 0) {
        await ctx.member.transferLeadership(DATA_GROUP_ID, target, ctx.limits.requestTimeoutMs);
        return this.leaderOrForward('MemberRemove', (r) => this.remove(r), req, false);
      }
    }
    await this.change(
      (context) => ({ type: 'removeNode', nodeId: Number(id), context }),
      () => {
        const view = this.view();
        this.refuseChange(checkRemove(view, id), view, `remove ${BigInt(id).toString(16)}`);
        this.refuseWhileShardsAtRisk(id);
      },
    );
    ctx.logger.info({ member: BigInt(id).toString(16) }, 'member removed');
    return this.membersReply();
  }

  /**
   * A sharded cluster removes a voter only while no group would be left without a quorum of live voters
   * (ShardedKeyspace.removalBlock): the removed member stops, and a group still counting an earlier
   * departed member (or not yet counting its replacement), or one whose other voters are down, could be
   * left unable even to remove it. Refused as etcd refuses a removal that would leave the cluster
   * unhealthy (the client retries), or short of started members.
   */
  private refuseWhileShardsAtRisk(id: string): void {
    const { ctx } = this.opts;
    if (ctx.shards === null) return;
    const target = ctx.sm.members().find((m) => m.id === id);
    if (!target || target.isLearner) return;
    const block = ctx.shards.removalBlock(Number(id));
    if (block === null) return;
    throw grpcError(block.kind === 'not-started' ? ETCD_ERRORS.MEMBER_NOT_ENOUGH_STARTED : ETCD_ERRORS.UNHEALTHY);
  }

  private async promote(req: Record<string, unknown>): Promise<unknown> {
    const id = String(req.ID ?? '0');
    const { ctx } = this.opts;
    await this.change(
      (context) => ({ type: 'promoteLearner', nodeId: Number(id), context }),
      () => {
        const view = this.view();
        this.refuseChange(checkPromote(view, id, ctx.member.learnerReady(DATA_GROUP_ID, Number(id))), view, `promote ${BigInt(id).toString(16)}`);
      },
    );
    ctx.logger.info({ member: BigInt(id).toString(16) }, 'learner promoted');
    return this.membersReply();
  }

  private async update(req: Record<string, unknown>): Promise<unknown> {
    const id = String(req.ID ?? '0');
    const peerUrls = (req.peerURLs as string[] | undefined) ?? [];
    const { ctx } = this.opts;
    refuse(checkUpdate(this.view(), id, peerUrls));
    await ctx.proposeWrite({ member_update: { ID: id, peerURLs: peerUrls } });
    return this.membersReply();
  }
}

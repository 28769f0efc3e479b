// ClusterService's forwarding of membership changes, driven deterministically: the member under test is a
// real ClusterService behind a real gRPC server, asked with a real etcd client; its Member and state
// machine are hand-written stand-ins (a fake Raft view we steer), and the leader it forwards to is a
// stand-in gRPC Cluster service on loopback that answers at once. What it pins down is the order of
// forward, answer and read barrier, which the process suites only meet under load.
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { ClusterService } from './cluster-service.ts';
import { ApiContext, DEFAULT_LIMITS } from './context.ts';
import { etcdClients, etcdServices } from '../etcd/proto.ts';
import type { Member } from '../member/member.ts';
import type { KvStateMachine, MembershipRecord } from '../shard/kv-state-machine.ts';
import type { MemberInfo } from './cluster-info.ts';
import type { ShardedKeyspace } from './context.ts';
import type { ShardRemovalBlock } from '../shard/replica-decisions.ts';

const SELF = 1;
const NEXT_LEADER = 2;
const OTHER = 3;
const REQUEST_TIMEOUT_MS = 5_000;

type Role = 'leader' | 'follower';

/** Stand-in for the Member the service asks: a Raft view the test steers, and a read barrier it controls. */
class FakeMember {
  readonly memberId = SELF;
  role: Role = 'leader';
  leaderId = SELF;
  barrierCalls = 0;
  private barrierRelease: (() => void) | null = null;

  status(): { role: Role; leaderId: number } {
    return { role: this.role, leaderId: this.leaderId };
  }
  term(): number {
    return 7;
  }
  isLearner(): boolean {
    return false;
  }
  activeMembers(): number[] {
    return [SELF, NEXT_LEADER, OTHER];
  }
  bestTransferee(): number {
    return NEXT_LEADER;
  }
  async transferLeadership(_group: number, target: number): Promise<void> {
    this.role = 'follower';
    this.leaderId = target;
  }
  readBarrier(_group: number, deadlineMs: number): Promise<void> {
    this.barrierCalls++;
    // Passes only when the test releases it; unreleased it is a removed member's barrier, which never
    // passes and (as the real one) gives up at its deadline.
    return new Promise((resolve, reject) => {
      this.barrierRelease = resolve;
      setTimeout(() => reject(new Error('read barrier: deadline')), Math.max(0, deadlineMs - Date.now())).unref();
    });
  }
  releaseBarrier(): void {
    this.barrierRelease?.();
  }
}

function record(id: number): MembershipRecord {
  return { id: String(id), peerUrls: [`http://127.0.0.1:${id}`], isLearner: false, removed: false };
}

function fakeStateMachine(): KvStateMachine {
  const members = [record(SELF), record(NEXT_LEADER), record(OTHER)];
  const sm = {
    membership: new Map(members.map((m) => [m.id, m])),
    members: () => members,
    appliedRevision: () => 42,
  };
  return sm as unknown as KvStateMachine;
}

async function listen(server: grpc.Server): Promise<string> {
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return `127.0.0.1:${port}`;
}

interface Harness {
  member: FakeMember;
  /** MemberRemove calls the stand-in leader received, with the member id asked for. */
  leaderSaw: string[];
  call: (method: string, req: Record<string, unknown>, deadlineMs: number) => Promise<{ err: grpc.ServiceError | null }>;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()!();
});

async function harness(shards: ShardedKeyspace | null = null): Promise<Harness> {
  const leaderSaw: string[] = [];
  const leader = new grpc.Server();
  leader.addService(etcdServices().Cluster, {
    MemberRemove: (call: grpc.ServerUnaryCall<{ ID: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      leaderSaw.push(String(call.request.ID));
      cb(null, { header: { cluster_id: '9', member_id: String(NEXT_LEADER), revision: '42', raft_term: '8' }, members: [] });
    },
  });
  const leaderAddress = await listen(leader);

  const member = new FakeMember();
  const ctx = new ApiContext({
    member: member as unknown as Member,
    sm: fakeStateMachine(),
    clusterId: '9',
    limits: { ...DEFAULT_LIMITS, requestTimeoutMs: REQUEST_TIMEOUT_MS },
    logger: pino({ level: 'silent' }),
    members: (): MemberInfo[] => [],
    shards,
  });
  const service = new ClusterService({ ctx, peerAddress: (id) => (id === NEXT_LEADER ? leaderAddress : undefined), members: () => [] });
  const server = new grpc.Server();
  server.addService(etcdServices().Cluster, service.implementation());
  const address = await listen(server);
  const client = new (etcdClients().Cluster)(address, grpc.credentials.createInsecure()) as unknown as grpc.Client &
    Record<string, (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void>;
  cleanups.push(() => {
    client.close();
    service.close();
    server.forceShutdown();
    leader.forceShutdown();
  });

  const call: Harness['call'] = (method, req, deadlineMs) =>
    new Promise((resolve) => {
      client[method](req, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (err) => resolve({ err }));
    });
  return { member, leaderSaw, call };
}

describe('ClusterService forwarding (stand-in Member and leader)', () => {
  it('the leader removing itself hands leadership over, forwards the removal, and answers without a read barrier it could never pass', async () => {
    const h = await harness();
    // The client's deadline is below the service's own: before the fix, the answer waited on the barrier
    // until the service's deadline and the client saw DEADLINE_EXCEEDED, as etcdctl did.
    const { err } = await h.call('MemberRemove', { ID: String(SELF) }, 3_000);
    expect(err).toBeNull();
    expect(h.leaderSaw).toEqual([String(SELF)]);
    expect(h.member.leaderId).toBe(NEXT_LEADER);
    expect(h.member.barrierCalls).toBe(0);
  });

  it('a follower forwarding the removal of another member answers only once its own read barrier passed', async () => {
    const h = await harness();
    h.member.role = 'follower';
    h.member.leaderId = NEXT_LEADER;
    let answered = false;
    const pending = h.call('MemberRemove', { ID: String(OTHER) }, 3_000).then((r) => {
      answered = true;
      return r;
    });
    // The leader has answered; the answer is held until the barrier passes here.
    await expect.poll(() => h.member.barrierCalls, { timeout: 2_000 }).toBe(1);
    expect(h.leaderSaw).toEqual([String(OTHER)]);
    await new Promise((r) => setTimeout(r, 100));
    expect(answered).toBe(false);
    h.member.releaseBarrier();
    const { err } = await pending;
    expect(err).toBeNull();
  });

  it('a follower asked a removal with no known leader answers at once with etcd\'s "no leader"', async () => {
    const h = await harness();
    h.member.role = 'follower';
    h.member.leaderId = 0;
    // Within the client's deadline: a wait for a leader would have ended in DEADLINE_EXCEEDED instead.
    const { err } = await h.call('MemberRemove', { ID: String(OTHER) }, 3_000);
    expect(err?.details).toBe('etcdserver: no leader');
    expect(h.leaderSaw).toEqual([]);
  });
});

describe('ClusterService on a sharded cluster: a removal a shard cannot afford (stand-in Member and shards)', () => {
  /** Only what the removal check asks of the shards; the rest of the keyspace is never reached here. */
  const shardsBlocking = (block: ShardRemovalBlock | null, asked: number[]): ShardedKeyspace =>
    ({
      removalBlock: (id: number) => {
        asked.push(id);
        return block;
      },
    }) as unknown as ShardedKeyspace;

  it('answers etcd\'s "not enough started members" when a shard would keep too few started voters, and "unhealthy cluster" while shards move', async () => {
    const asked: number[] = [];
    const cases: Array<[ShardRemovalBlock, number, string]> = [
      [{ kind: 'not-started', why: 'shard 3 would keep 1 started of its 3 voters' }, grpc.status.FAILED_PRECONDITION, 'etcdserver: re-configuration failed due to not enough started members'],
      [{ kind: 'unhealthy', why: 'shard 3 is still moving' }, grpc.status.UNAVAILABLE, 'etcdserver: unhealthy cluster'],
    ];
    for (const [block, code, details] of cases) {
      const h = await harness(shardsBlocking(block, asked));
      const { err } = await h.call('MemberRemove', { ID: String(OTHER) }, 3_000);
      expect(err?.code).toBe(code);
      expect(err?.details).toBe(details);
      expect(h.leaderSaw).toEqual([]);
    }
    expect(asked).toEqual([OTHER, OTHER]);
  });
});

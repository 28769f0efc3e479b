import { describe, expect, it } from 'vitest';
import type { NodeId } from '../raft/types.ts';
import { MetadataStateMachine } from './metadata-state-machine.ts';
import { OracleHost, type OracleHostMember } from './oracle-host.ts';
import { OracleClient, OracleDeadlineError } from './oracle-client.ts';
import type { OracleRequest, OracleResponse, OracleTransport } from './oracle-protocol.ts';
import { InProcessOracleTransport } from './sim/in-process-oracle-transport.ts';
import { Rng } from '../raft/rng.ts';

/** A Member double: leadership set by the test, proposals applied to the state machine a turn later. */
class FakeMember implements OracleHostMember {
  readonly memberId: NodeId;
  roleNow = 'follower';
  termNow = 1;
  leader: NodeId = 0;
  barrier: 'ok' | 'hang' = 'ok';
  autoCommit = true;
  barriers = 0;
  readonly proposals: Uint8Array[] = [];
  private index = 0;
  private readonly listeners: Array<(g: number, l: NodeId, t: number) => void> = [];
  sm: MetadataStateMachine | null = null;

  constructor(id: NodeId) {
    this.memberId = id;
  }
  role(): string {
    return this.roleNow;
  }
  term(): number {
    return this.termNow;
  }
  leaderId(): NodeId {
    return this.leader;
  }
  readBarrier(_g: number, deadlineMs: number): Promise<void> {
    this.barriers++;
    if (this.barrier === 'ok') return Promise.resolve();
    // As Member.readBarrier: it gives up at its deadline, but never before the request's own deadline
    // timer (firing together, either could win on a loaded machine and the answer would vary).
    return new Promise((_, reject) => setTimeout(() => reject(new Error('read index timed out')), deadlineMs - Date.now() + 50));
  }
  propose(_g: number, data: Uint8Array): void {
    this.proposals.push(data);
    if (this.autoCommit) setImmediate(() => this.sm!.apply({ index: ++this.index, term: this.termNow, type: 'normal', data }));
  }
  onLeaderChange(l: (g: number, leaderId: NodeId, term: number) => void): void {
    this.listeners.push(l);
  }
  elect(term: number, leaderId: NodeId): void {
    this.termNow = term;
    this.leader = leaderId;
    this.roleNow = leaderId === this.memberId ? 'leader' : 'follower';
    for (const l of this.listeners) l(0, leaderId, term);
  }
}

function hostOn(id: NodeId, window: number, highWater = 0): { member: FakeMember; sm: MetadataStateMachine; host: OracleHost } {
  const member = new FakeMember(id);
  const sm = new MetadataStateMachine(highWater > 0 ? [[Buffer.from('h'), Buffer.from(`0101${highWater.toString(16).padStart(16, '0')}0000000000000001`, 'hex')]] : []);
  member.sm = sm;
  const host = new OracleHost(member, sm, { groupId: 0, windowRevisions: window });
  return { member, sm, host };
}

const req = (requester: string, count: number, requestId = 1, deadlineMs = Date.now() + 1000): OracleRequest => ({ requester, requestId, count, deadlineMs });
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe('OracleHost', () => {
  it('serves one turn as one batch: one barrier, contiguous grants above the old mark, a mark persisted per window', async () => {
    const { member, host } = hostOn(1, 100, 500);
    member.elect(2, 1);
    await tick();
    expect(host.serving).toBe(true);
    const before = member.barriers;
    const [a, b] = await Promise.all([host.handle(req('a', 3)), host.handle(req('b', 2))]);
    expect(a).toEqual({ kind: 'granted', requestId: 1, first: 501, last: 503, term: 2 });
    expect(b).toEqual({ kind: 'granted', requestId: 1, first: 504, last: 505, term: 2 });
    expect(member.proposals.length).toBe(1); // mark 505 + 100
    expect(member.barriers - before).toBe(2); // confirm, persist, confirm again
    const c = await host.handle(req('a', 10, 2));
    expect(c).toMatchObject({ kind: 'granted', first: 506, last: 515 });
    expect(member.proposals.length).toBe(1); // inside the window: no Raft round
    expect(member.barriers - before).toBe(3);
    // a newer request of one requester in the same turn supersedes the older
    const [old, fresh] = await Promise.all([host.handle(req('a', 1, 3)), host.handle(req('a', 1, 4))]);
    expect(old).toMatchObject({ kind: 'unavailable', reason: 'superseded by a newer request' });
    expect(fresh).toMatchObject({ kind: 'granted', requestId: 4, first: 516 });
  });

  it('refuses when not leader (naming the leader), when deposed mid-persist, bad counts, and past deadlines', async () => {
    const { member, host } = hostOn(1, 10);
    member.elect(3, 2);
    expect(await host.handle(req('a', 1))).toEqual({ kind: 'not-leader', requestId: 1, leaderId: 2, term: 3 });
    member.elect(4, 1);
    await tick();
    member.autoCommit = false;
    const pending = host.handle(req('a', 5));
    await tick();
    expect(member.proposals.length).toBe(1);
    member.elect(5, 3); // deposed before the mark committed
    expect(await pending).toEqual({ kind: 'not-leader', requestId: 1, leaderId: 3, term: 5 });
    expect(host.stats.grants).toBe(0);
    expect(await host.handle(req('a', 0))).toMatchObject({ kind: 'bad-request' });
    expect(await host.handle(req('a', 1, 1, Date.now() - 1))).toEqual({ kind: 'deadline', requestId: 1 });
    member.elect(6, 1);
    await tick();
    member.barrier = 'hang'; // no quorum answers
    expect(await host.handle(req('a', 1, 2, Date.now() + 30))).toEqual({ kind: 'deadline', requestId: 2 });
  });
});

describe('OracleClient', () => {
  it('batches a turn into one request, follows the leader, and splits the grant in call order', async () => {
    const hosts = new Map([1, 2, 3].map((id) => [id, hostOn(id, 50)] as const));
    for (const [, h] of hosts) h.member.elect(7, 2);
    await tick();
    const rng = new Rng(3);
    const transport = new InProcessOracleTransport({ from: 1, server: (to) => hosts.get(to)?.host ?? null, delayMs: () => rng.nextInt(3), drop: () => false });
    const client = new OracleClient({ requester: 's0', transport, members: () => [1, 2, 3], random: () => rng.nextFloat() });
    const [x, y] = await Promise.all([client.next(4, Date.now() + 1000), client.next(2, Date.now() + 1000)]);
    expect(x).toEqual({ first: 1, last: 4, term: 7 });
    expect(y).toEqual({ first: 5, last: 6, term: 7 });
    expect(client.stats.requests).toBe(1);
    expect(client.stats.redirects).toBe(1); // member 1 named member 2
    expect((await client.next(1, Date.now() + 1000)).first).toBe(7);
  });

  it('retries through drops until its deadline, and never uses a grant of a term older than one it used', async () => {
    const answers: OracleResponse[] = [
      { kind: 'granted', requestId: 1, first: 100, last: 101, term: 5 },
      { kind: 'granted', requestId: 2, first: 50, last: 51, term: 4 }, // a deposed oracle answering late
      { kind: 'unavailable', requestId: 3, reason: 'no quorum' },
      { kind: 'granted', requestId: 4, first: 90, last: 91, term: 5 }, // not above what was used
      { kind: 'granted', requestId: 5, first: 20_000, last: 20_001, term: 6 },
    ];
    const scripted: OracleTransport = { request: async (_to, r) => ({ ...answers[r.requestId - 1], requestId: r.requestId }) };
    const client = new OracleClient({ requester: 's1', transport: scripted, members: () => [1], random: () => 0.5, backoffMinMs: 1 });
    expect(await client.next(2, Date.now() + 1000)).toEqual({ first: 100, last: 101, term: 5 });
    expect(await client.next(2, Date.now() + 1000)).toEqual({ first: 20_000, last: 20_001, term: 6 });
    expect(client.stats).toMatchObject({ staleGrantsRefused: 1, nonIncreasingRefused: 1, attempts: 5 });
    const silent: OracleTransport = { request: () => new Promise(() => {}) };
    const lost = new OracleClient({ requester: 's2', transport: silent, members: () => [1, 2], attemptTimeoutMs: 10, random: () => 0.5 });
    const started = Date.now();
    // 10 ms attempts within a 300 ms deadline: several time out even on a loaded machine, and the call ends
    // at its deadline, not at some later attempt's.
    await expect(lost.next(1, Date.now() + 300)).rejects.toBeInstanceOf(OracleDeadlineError);
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(lost.stats.timeouts).toBeGreaterThan(1);
  });
});

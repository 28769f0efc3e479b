// Lease reads (RaftConfig.leaseReads, LeaseReads in types.ts): when a leader answers a ReadIndex
// request without a heartbeat round, and every rule that ends a lease. Three RawNodes wired by hand;
// the lease clock is a variable the test moves, and ticks are only given where a rule counts them.
import { describe, expect, it } from 'vitest';
import { RawNode } from './raw-node.ts';
import { newMessage } from './raft.ts';
import type { LeaseReads, Message, NodeId, RaftConfig, ReadState } from './types.ts';

const LEASE_MS = 100;
const ELECTION_TICKS = 10;

interface Cluster {
  nodes: Map<NodeId, RawNode>;
  clock: { nowMs: number };
}

function config(id: NodeId, voters: NodeId[], lease: LeaseReads | undefined): RaftConfig {
  return {
    id,
    voters,
    electionTimeoutTicks: ELECTION_TICKS,
    heartbeatTicks: 1,
    preVote: true,
    checkQuorum: true,
    maxInflightMsgs: 256,
    maxSizePerMsgBytes: 1 << 20,
    randomSeed: 7,
    ...(lease ? { leaseReads: lease } : {}),
  };
}

/** Three voters with lease reads; node 1 elected, its first entry committed everywhere. */
function electedCluster(mutation?: LeaseReads['unsafeMutation']): Cluster {
  const clock = { nowMs: 1_000 };
  const lease: LeaseReads = { nowMs: () => clock.nowMs, durationMs: LEASE_MS, ...(mutation ? { unsafeMutation: mutation } : {}) };
  const ids = [1, 2, 3];
  const nodes = new Map(ids.map((id) => [id, new RawNode(config(id, ids, lease))] as const));
  nodes.get(1)!.campaign();
  pump({ nodes, clock });
  expect(nodes.get(1)!.role()).toBe('leader');
  return { nodes, clock };
}

interface Pumped {
  /** Every message sent, delivered or dropped, in order. */
  sent: Message[];
  readStates: Map<NodeId, ReadState[]>;
}

/** Runs every Ready and delivers every message (unless `drop` says so) until nothing moves. */
function pump(c: Cluster, drop: (m: Message) => boolean = () => false): Pumped {
  const out: Pumped = { sent: [], readStates: new Map() };
  for (let moved = true; moved; ) {
    moved = false;
    const inbox: Message[] = [];
    for (const [id, node] of c.nodes) {
      while (node.hasReady()) {
        const rd = node.ready();
        inbox.push(...rd.messages);
        if (rd.readStates.length > 0) out.readStates.set(id, [...(out.readStates.get(id) ?? []), ...rd.readStates]);
        for (const e of rd.committedEntries) if (e.type === 'confChange') throw new Error('no conf changes through the log here');
        node.advance(rd);
        moved = true;
      }
    }
    for (const m of inbox) {
      out.sent.push(m);
      if (!drop(m)) c.nodes.get(m.to)?.step(m);
    }
  }
  return out;
}

const ctx = (n: number): Uint8Array => new Uint8Array([n]);
const heartbeats = (p: Pumped): Message[] => p.sent.filter((m) => m.type === 'heartbeat');

/** A read at node `id`: whether it was answered, and whether a heartbeat round went out for it. */
function read(c: Cluster, id: NodeId, n: number, drop?: (m: Message) => boolean): { answered: boolean; round: boolean } {
  c.nodes.get(id)!.readIndex(ctx(n));
  const p = pump(c, drop);
  const answered = (p.readStates.get(id) ?? []).some((r) => r.requestCtx[0] === n);
  return { answered, round: heartbeats(p).length > 0 };
}

describe('lease reads', () => {
  it('a leader answers at once while its lease holds, and starts a round once half of it has passed', () => {
    const c = electedCluster();
    const leader = c.nodes.get(1)!;
    expect(read(c, 1, 1)).toEqual({ answered: true, round: true }); // no lease yet: the round starts one
    expect(read(c, 1, 2)).toEqual({ answered: true, round: false });
    expect(leader.readsOnLease()).toBe(1);
    c.clock.nowMs += LEASE_MS / 2 - 1;
    expect(read(c, 1, 3)).toEqual({ answered: true, round: false });
    c.clock.nowMs += 1; // the second half: a round, which renews the lease
    expect(read(c, 1, 4)).toEqual({ answered: true, round: true });
    expect(read(c, 1, 5)).toEqual({ answered: true, round: false });
  });

  it('goes by the clock, not by ticks: a leader whose clock passed its lease starts a round though it never ticked', () => {
    const c = electedCluster();
    read(c, 1, 1);
    c.clock.nowMs += 10 * LEASE_MS; // a SIGSTOP: no tick ran meanwhile
    // Its followers are cut off: no round can complete, so the read must not be answered.
    expect(read(c, 1, 2, (m) => m.from === 1 && m.type === 'heartbeat')).toEqual({ answered: false, round: true });
  });

  it('answers a read a follower passed on at once, with no heartbeat round', () => {
    const c = electedCluster();
    read(c, 1, 1);
    const p = (() => {
      c.nodes.get(2)!.readIndex(ctx(9));
      return pump(c);
    })();
    expect(p.readStates.get(2)?.map((r) => r.requestCtx[0])).toEqual([9]);
    expect(heartbeats(p)).toEqual([]);
    expect(p.sent.map((m) => m.type)).toEqual(['readIndex', 'readIndexResp']);
    expect(c.nodes.get(1)!.readsOnLease()).toBe(1);
  });

  it('ends for the rest of the term once TimeoutNow is sent, even if the transfer never happens', () => {
    const c = electedCluster();
    const leader = c.nodes.get(1)!;
    read(c, 1, 1);
    leader.transferLeader(2);
    const p = pump(c, (m) => m.type === 'timeoutNow'); // lost: the transfer does not happen now
    expect(p.sent.some((m) => m.type === 'timeoutNow')).toBe(true);
    expect(leader.role()).toBe('leader');
    // While the transfer is pending, and after it timed out, every read takes a round.
    expect(read(c, 1, 2)).toEqual({ answered: true, round: true });
    for (let i = 0; i < ELECTION_TICKS; i++) leader.tick();
    pump(c);
    expect(leader.role()).toBe('leader');
    expect(read(c, 1, 3)).toEqual({ answered: true, round: true });
    expect(read(c, 1, 4)).toEqual({ answered: true, round: true });
    expect(leader.readsOnLease()).toBe(0);
  });

  it('ends when the voters change, and a round started before that does not renew it', () => {
    const c = electedCluster();
    const leader = c.nodes.get(1)!;
    read(c, 1, 1);
    c.clock.nowMs += LEASE_MS / 2; // the lease must be renewed by a round from here on
    // A round in flight (its acks held back) when a voter is added.
    leader.readIndex(ctx(2));
    const held: Message[] = [];
    const started = pump(c, (m) => {
      if (m.type === 'heartbeatResp') held.push(m);
      return m.type === 'heartbeatResp';
    });
    expect(heartbeats(started).length).toBeGreaterThan(0);
    leader.applyConfChange({ type: 'addNode', nodeId: 4 });
    for (const m of held) leader.step(m);
    const p = pump(c, (m) => m.to === 4);
    expect(p.readStates.get(1)?.map((r) => r.requestCtx[0])).toEqual([2]);
    // The old round answered its read but confirmed nothing under the new voters.
    expect(read(c, 1, 3, (m) => m.to === 4)).toEqual({ answered: true, round: true });
  });

  it('ends with the leadership', () => {
    const c = electedCluster();
    read(c, 1, 1);
    const leader = c.nodes.get(1)!;
    leader.step({ ...newMessage('appResp', 3, 1, leader.term() + 1) }); // a higher term deposes it
    expect(leader.role()).toBe('follower');
    c.nodes.get(2)!.campaign();
    pump(c);
    // Re-elected later: the old lease is gone, the first read takes a round.
    for (let i = 0; i < 3 * ELECTION_TICKS && leader.role() !== 'leader'; i++) {
      c.nodes.get(2)!.transferLeader(1);
      pump(c);
    }
    expect(leader.role()).toBe('leader');
    expect(read(c, 1, 2)).toEqual({ answered: true, round: true });
  });

  it('is off without leaseReads: every read takes a round', () => {
    const ids = [1, 2, 3];
    const nodes = new Map(ids.map((id) => [id, new RawNode(config(id, ids, undefined))] as const));
    const c = { nodes, clock: { nowMs: 0 } };
    nodes.get(1)!.campaign();
    pump(c);
    expect(read(c, 1, 1)).toEqual({ answered: true, round: true });
    expect(read(c, 1, 2)).toEqual({ answered: true, round: true });
  });

  it('needs checkQuorum', () => {
    const lease: LeaseReads = { nowMs: () => 0, durationMs: LEASE_MS };
    expect(() => new RawNode({ ...config(1, [1, 2, 3], lease), checkQuorum: false })).toThrow(/checkQuorum/);
  });
});

/**
 * RawNode.leaseReadIndex (the member's read barrier asks it before queuing a ReadIndex for its next turn):
 * non-null exactly when a readIndex() issued at the same moment would be answered at once with no round,
 * and then with the same index.
 */
function leaseIndexAgrees(c: Cluster, id: NodeId, n: number, drop?: (m: Message) => boolean): number | null {
  const node = c.nodes.get(id)!;
  const onLeaseBefore = node.readsOnLease();
  const index = node.leaseReadIndex();
  expect(node.hasReady()).toBe(false); // asking sends nothing and readies nothing
  node.readIndex(ctx(n));
  const p = pump(c, drop);
  const state = (p.readStates.get(id) ?? []).find((r) => r.requestCtx[0] === n);
  if (index === null) {
    expect(state !== undefined && heartbeats(p).length === 0 && node.readsOnLease() > onLeaseBefore).toBe(false);
  } else {
    expect(heartbeats(p)).toEqual([]);
    expect(state?.index).toBe(index);
  }
  return index;
}

describe('lease reads answered on the spot (leaseReadIndex)', () => {
  it('gives the commit index while the lease serves, and null where a read would need a round', () => {
    const c = electedCluster();
    const leader = c.nodes.get(1)!;
    expect(leaseIndexAgrees(c, 1, 1)).toBeNull(); // no lease yet: this read's round starts one
    const committed = leaseIndexAgrees(c, 1, 2);
    expect(committed).toBeGreaterThan(0);
    expect(leader.readsOnLease()).toBe(2); // the spot answer and the read after it
    c.clock.nowMs += LEASE_MS / 2 - 1;
    expect(leaseIndexAgrees(c, 1, 3)).toBe(committed);
    c.clock.nowMs += 1;
    expect(leaseIndexAgrees(c, 1, 4)).toBeNull(); // half the lease passed: a round, which renews it
    expect(leaseIndexAgrees(c, 1, 5)).toBe(committed);
    leader.propose(new Uint8Array([1]));
    pump(c);
    expect(leaseIndexAgrees(c, 1, 6)).toBe(committed! + 1); // the new commit index
  });

  it('is null on a follower, on a paused leader past its lease, and once a transfer began', () => {
    const c = electedCluster();
    leaseIndexAgrees(c, 1, 1);
    expect(c.nodes.get(2)!.leaseReadIndex()).toBeNull();
    c.clock.nowMs += 10 * LEASE_MS; // a SIGSTOP
    expect(leaseIndexAgrees(c, 1, 2, (m) => m.from === 1 && m.type === 'heartbeat')).toBeNull();
    const d = electedCluster();
    leaseIndexAgrees(d, 1, 1);
    d.nodes.get(1)!.transferLeader(2);
    pump(d, (m) => m.type === 'timeoutNow');
    expect(leaseIndexAgrees(d, 1, 2)).toBeNull();
  });

  it('is null until an entry of the leader\'s term has committed', () => {
    const c = electedCluster();
    leaseIndexAgrees(c, 1, 1);
    const leader = c.nodes.get(1)!;
    leader.step({ ...newMessage('appResp', 3, 1, leader.term() + 1) }); // deposed
    pump(c);
    // Node 2 wins an election; its term's empty entry is held back from everyone.
    const two = c.nodes.get(2)!;
    two.campaign();
    pump(c, (m) => m.from === 2 && m.type === 'app');
    expect(two.role()).toBe('leader');
    expect(two.leaseReadIndex()).toBeNull();
  });

  it('needs no lease with a single voter', () => {
    const node = new RawNode(config(1, [1], undefined));
    node.campaign();
    while (node.hasReady()) node.advance(node.ready());
    expect(node.role()).toBe('leader');
    expect(node.leaseReadIndex()).toBe(1);
    const three = new Map([1, 2, 3].map((id) => [id, new RawNode(config(id, [1, 2, 3], undefined))] as const));
    three.get(1)!.campaign();
    pump({ nodes: three, clock: { nowMs: 0 } });
    expect(three.get(1)!.leaseReadIndex()).toBeNull(); // no lease reads configured
  });
});

describe('a voter restarted with state, with lease reads', () => {
  const restarted = (lease: boolean): RawNode => {
    const leaseReads: LeaseReads | undefined = lease ? { nowMs: () => 0, durationMs: LEASE_MS } : undefined;
    return new RawNode(config(2, [1, 2, 3], leaseReads), { hardState: { term: 5, vote: 1, commit: 0 }, entries: [], firstIndex: 1, applied: 0 });
  };
  const voteFor3 = (node: RawNode): Message[] => {
    node.step({ ...newMessage('vote', 3, 2, 6), index: 0, logTerm: 0 });
    const out: Message[] = [];
    while (node.hasReady()) {
      const rd = node.ready();
      out.push(...rd.messages);
      node.advance(rd);
    }
    return out;
  };

  it('refuses votes in higher terms for its first election timeout of ticks: it may have acknowledged a leader just before it died', () => {
    const node = restarted(true);
    for (let i = 0; i < ELECTION_TICKS - 1; i++) node.tick();
    expect(voteFor3(node)).toEqual([]);
    expect(node.term()).toBe(5);
    node.tick();
    const answer = voteFor3(node);
    expect(answer.map((m) => [m.type, m.reject])).toEqual([['voteResp', false]]);
  });

  it('votes at once without lease reads (as before)', () => {
    expect(voteFor3(restarted(false)).map((m) => [m.type, m.reject])).toEqual([['voteResp', false]]);
  });
});

// What each rule prevents: a second leader elected while the first still answers reads on its lease
// (a read there would miss what the new leader commits). With the rule's TEST-ONLY mutation, it happens.
describe('two leaders at once, unless the lease rules hold', () => {
  /** Node 2 restarted with its stored state (everything it held was committed: node 1's log). */
  const restartNode2 = (c: Cluster, mutation?: LeaseReads['unsafeMutation']): void => {
    const leader = c.nodes.get(1)!;
    const old = c.nodes.get(2)!.status();
    const lastIndex = leader.status().lastIndex;
    const lease: LeaseReads = { nowMs: () => c.clock.nowMs, durationMs: LEASE_MS, ...(mutation ? { unsafeMutation: mutation } : {}) };
    c.nodes.set(2, new RawNode(config(2, [1, 2, 3], lease), {
      hardState: { term: old.term, vote: old.vote, commit: old.commit },
      entries: leader.entries(1, lastIndex + 1).map((e) => ({ ...e })),
      firstIndex: 1,
      applied: old.commit,
    }));
  };
  const cutOff1 = (m: Message): boolean => m.from === 1 || m.to === 1;

  for (const mutation of [undefined, 'no-restart-quiet'] as const) {
    it(`a voter restarted right after confirming the lease ${mutation ? 'votes at once (mutation)' : 'does not vote for an election timeout'}`, () => {
      const c = electedCluster(mutation);
      read(c, 1, 1); // the lease, confirmed by 2 and 3
      restartNode2(c, mutation);
      c.nodes.get(3)!.campaign(); // 3 cannot reach 1 any more; 2 has forgotten it heard from 1
      pump(c, cutOff1);
      const secondLeader = c.nodes.get(3)!.role() === 'leader';
      const servedOnLease = read(c, 1, 2, cutOff1).answered;
      expect(servedOnLease).toBe(true);
      expect(secondLeader).toBe(mutation !== undefined);
    });
  }

  for (const mutation of [undefined, 'ignore-expiry'] as const) {
    it(`a leader stopped past its lease ${mutation ? 'still answers on it (mutation)' : 'answers on no lease'} when it wakes`, () => {
      const c = electedCluster(mutation);
      read(c, 1, 1);
      // SIGSTOP of 1: the others' election timers run out and they elect 3; 1's clock moves on, its ticks do not.
      c.clock.nowMs += 10 * LEASE_MS;
      for (let i = 0; i < 2 * ELECTION_TICKS && c.nodes.get(3)!.role() !== 'leader'; i++) {
        c.nodes.get(2)!.tick();
        c.nodes.get(3)!.tick();
        pump(c, cutOff1);
        if (c.nodes.get(2)!.role() === 'leader') break;
      }
      expect([c.nodes.get(2)!.role(), c.nodes.get(3)!.role()]).toContain('leader');
      expect(c.nodes.get(1)!.role()).toBe('leader'); // it does not know yet
      expect(read(c, 1, 2, cutOff1).answered).toBe(mutation !== undefined);
    });
  }

  for (const mutation of [undefined, 'keep-after-transfer'] as const) {
    it(`a leader whose TimeoutNow went out ${mutation ? 'confirms a lease again in that term (mutation)' : 'takes no lease for the rest of the term'}, and its target may take over late`, () => {
      const c = electedCluster(mutation);
      const leader = c.nodes.get(1)!;
      read(c, 1, 1);
      leader.transferLeader(2);
      const delayed: Message[] = [];
      pump(c, (m) => {
        if (m.type === 'timeoutNow') delayed.push(m);
        return m.type === 'timeoutNow';
      });
      expect(delayed.length).toBe(1);
      // The transfer times out; the leader keeps its quorum and confirms its leadership with a round.
      for (let i = 0; i < ELECTION_TICKS; i++) {
        leader.tick();
        pump(c);
      }
      expect(leader.role()).toBe('leader');
      c.clock.nowMs += LEASE_MS; // whatever lease it had is over
      expect(read(c, 1, 2)).toEqual({ answered: true, round: true });
      // The TimeoutNow arrives at last: 2 campaigns past 3's stickiness and wins; 1 is cut off.
      c.nodes.get(2)!.step(delayed[0]);
      pump(c, cutOff1);
      expect(c.nodes.get(2)!.role()).toBe('leader');
      expect(leader.role()).toBe('leader'); // it does not know yet
      expect(read(c, 1, 3, cutOff1).answered).toBe(mutation !== undefined);
    });
  }
});

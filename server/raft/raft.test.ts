import { describe, expect, it } from 'vitest';
import { MAX_ROUNDS_IN_FLIGHT } from './read-index.ts';
import { RawNode, ProposalDroppedError } from './raw-node.ts';
import type { Entry, Message, NodeId, RaftConfig } from './types.ts';
import { newMessage } from './raft.ts';
import { ENTRY_OVERHEAD_BYTES } from './replication-limits.ts';
import { SimCluster, decodeCtx } from './sim/index.ts';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

function config(id: NodeId, voters: NodeId[], over: Partial<RaftConfig> = {}): RaftConfig {
  return {
    id,
    voters,
    electionTimeoutTicks: 10,
    heartbeatTicks: 1,
    preVote: false,
    checkQuorum: false,
    maxInflightMsgs: 256,
    maxSizePerMsgBytes: 1 << 20,
    randomSeed: 1,
    ...over,
  };
}

/** Handles every Ready of a standalone RawNode, returning what it emitted. */
function drain(node: RawNode): { messages: Message[]; committed: Entry[] } {
  const messages: Message[] = [];
  const committed: Entry[] = [];
  while (node.hasReady()) {
    const rd = node.ready();
    messages.push(...rd.messages);
    committed.push(...rd.committedEntries);
    node.advance(rd);
  }
  return { messages, committed };
}

function msg(type: Message['type'], from: NodeId, to: NodeId, term: number, fields: Partial<Message> = {}): Message {
  return { ...newMessage(type, from, to, term), ...fields };
}

function appliedData(c: SimCluster, id: NodeId): string[] {
  return c.applied(id).filter((e) => e.data.byteLength > 0).map((e) => text(e.data));
}

function newCluster(n: number, over: Partial<ConstructorParameters<typeof SimCluster>[0]> = {}): SimCluster {
  return new SimCluster({ nodeCount: n, seed: 1, preVote: false, checkQuorum: false, ...over });
}

describe('single-node cluster', () => {
  it('elects itself on timeout and commits alone', () => {
    const node = new RawNode(config(1, [1]));
    for (let i = 0; i < 20 && node.status().role !== 'leader'; i++) node.tick();
    expect(node.status().role).toBe('leader');
    node.propose(bytes('a'));
    const { committed, messages } = drain(node);
    expect(messages).toEqual([]);
    expect(committed.map((e) => text(e.data))).toEqual(['', 'a']);
    expect(node.status()).toMatchObject({ commit: 2, applied: 2, leaderId: 1, term: 1 });
  });

  it('campaign() with pre-vote also wins alone, and ReadIndex answers at once', () => {
    const node = new RawNode(config(1, [1], { preVote: true, checkQuorum: true }));
    node.campaign();
    expect(node.status().role).toBe('leader');
    node.readIndex(bytes('r1'));
    // The leader's no-op is not durable yet, so nothing commits and the read waits for it.
    const first = node.ready();
    expect(first.softState).toEqual({ leaderId: 1, role: 'leader' });
    expect(first.hardState).toEqual({ term: 1, vote: 1, commit: 0 });
    expect(first.entries.map((e) => e.index)).toEqual([1]);
    expect(first.readStates).toEqual([]);
    node.advance(first); // persisted: the leader acknowledges its own copy
    const rd = node.ready();
    expect(rd.hardState).toEqual({ term: 1, vote: 1, commit: 1 });
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1]);
    expect(rd.readStates).toEqual([{ index: 1, requestCtx: bytes('r1') }]);
    node.advance(rd);
  });

  it("counts the leader's own append toward commit only after the Ready carrying it is advanced (persisted)", () => {
    const node = new RawNode(config(1, [1, 2, 3]));
    node.campaign();
    drain(node);
    node.step(msg('voteResp', 2, 1, 1));
    expect(node.status().role).toBe('leader');
    const rd = node.ready(); // the no-op at index 1, not yet persisted
    expect(rd.entries.map((e) => e.index)).toEqual([1]);
    // One follower holds it durably; the leader's own copy is still in flight to its disk.
    node.step(msg('appResp', 2, 1, 1, { index: 1 }));
    expect(node.status().commit).toBe(0);
    node.advance(rd);
    expect(node.status().commit).toBe(1);
    // The new commit index goes out to the followers in the next Ready.
    const next = node.ready();
    expect(next.hardState?.commit).toBe(1);
    // (Node 3 is still being probed: it hears the commit with its probe's answer.)
    expect(next.messages.filter((m) => m.type === 'app' && m.to === 2).at(-1)?.commit).toBe(1);
    node.advance(next);
  });

  it('refuses proposals beyond maxUncommittedEntriesBytes until entries are applied', () => {
    const node = new RawNode(config(1, [1, 2, 3], { maxUncommittedEntriesBytes: 10 }));
    node.campaign();
    drain(node);
    node.step(msg('voteResp', 2, 1, 1));
    node.propose(new Uint8Array(8)); // accepted: nothing pending
    node.propose(new Uint8Array(2)); // 10 bytes: at the limit
    expect(() => node.propose(new Uint8Array(1))).toThrow(/uncommitted bytes/);
    const rd = node.ready();
    node.advance(rd);
    node.step(msg('appResp', 2, 1, 1, { index: 3 }));
    drain(node); // commits and applies 1..3: the bytes are released
    expect(() => node.propose(new Uint8Array(9))).not.toThrow();
  });

  it('restarts from persisted state without re-emitting applied entries', () => {
    const node = new RawNode(config(1, [1]));
    node.campaign();
    node.propose(bytes('a'));
    node.propose(bytes('b'));
    const persisted: Entry[] = [];
    let hs = { term: 0, vote: 0, commit: 0 };
    while (node.hasReady()) {
      const rd = node.ready();
      persisted.push(...rd.entries);
      if (rd.hardState) hs = rd.hardState;
      node.advance(rd);
    }
    const restarted = new RawNode(config(1, [1]), { hardState: hs, entries: persisted, firstIndex: 1, applied: 2 });
    const rd = restarted.ready();
    expect(rd.committedEntries.map((e) => text(e.data))).toEqual(['b']);
    expect(rd.entries).toEqual([]);
    expect(rd.hardState).toBeNull(); // unchanged since persisted
    restarted.advance(rd);
    expect(restarted.status()).toMatchObject({ term: 1, vote: 1, commit: 3, applied: 3, role: 'follower' });
  });
});

describe('RawNode contract', () => {
  it('throws on messages addressed to another node', () => {
    const node = new RawNode(config(1, [1, 2, 3]));
    expect(() => node.step(msg('heartbeat', 2, 3, 1))).toThrow(/addressed to 3/);
  });

  it('requires advance() between ready() calls, with the same Ready', () => {
    const node = new RawNode(config(1, [1, 2, 3]));
    node.campaign();
    const rd = node.ready();
    expect(node.hasReady()).toBe(false);
    expect(() => node.ready()).toThrow(/before advance/);
    expect(() => node.advance({ ...rd })).toThrow(/other than the last/);
    node.advance(rd);
    expect(() => node.advance(rd)).toThrow(/without an outstanding/);
  });

  it('propose and readIndex throw ProposalDroppedError without a leader', () => {
    const node = new RawNode(config(1, [1, 2, 3]));
    expect(() => node.propose(bytes('x'))).toThrow(ProposalDroppedError);
    expect(() => node.readIndex(bytes('x'))).toThrow(ProposalDroppedError);
    node.campaign(); // candidate: still no leader
    expect(() => node.propose(bytes('x'))).toThrow(ProposalDroppedError);
  });

  it('silently drops a peer proposal when it has no leader', () => {
    const node = new RawNode(config(1, [1, 2, 3]));
    node.step(msg('prop', 2, 1, 0, { entries: [{ term: 0, index: 0, type: 'normal', data: bytes('x') }] }));
    expect(drain(node).messages).toEqual([]);
  });

  it('detects two leaders in one term', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    expect(() => c.node(1).step(msg('app', 2, 1, c.node(1).status().term))).toThrow(/two leaders/);
  });

  it('reports progress for the leader', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    const s = c.node(1).status();
    const pr = { match: 1, next: 2, state: 'replicate', isLearner: false };
    expect(s.progress).toMatchObject({ 1: pr, 2: pr, 3: pr });
    expect(s.progress?.[2].recentActive).toBe(true);
    expect(s).toMatchObject({ voters: [1, 2, 3], learners: [], removed: false, firstIndex: 1, snapshot: null });
    expect(c.node(2).status().progress).toBeUndefined();
  });
});

describe('leader election', () => {
  it('elects exactly one leader and commits its empty entry everywhere', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const c = newCluster(5, { seed });
      const leader = c.electLeader();
      expect(leader).not.toBe(0);
      const term = c.node(leader).status().term;
      for (const id of c.ids) {
        const s = c.node(id).status();
        expect(s.role).toBe(id === leader ? 'leader' : 'follower');
        expect(s.leaderId).toBe(leader);
        expect(s.term).toBe(term);
        expect(s.commit).toBe(1);
      }
    }
  });

  it('randomizes election timeouts in [T, 2T) from the seed', () => {
    const ticksToCampaign = (seed: number): number => {
      const node = new RawNode(config(1, [1, 2, 3], { randomSeed: seed }));
      for (let t = 1; t <= 40; t++) {
        node.tick();
        if (node.status().role === 'candidate') return t;
      }
      return -1;
    };
    const samples = Array.from({ length: 40 }, (_, i) => ticksToCampaign(i));
    for (const t of samples) {
      expect(t).toBeGreaterThanOrEqual(10);
      expect(t).toBeLessThan(20);
    }
    expect(new Set(samples).size).toBeGreaterThan(3);
    expect(ticksToCampaign(7)).toBe(ticksToCampaign(7));
  });

  it('a fresh node advanced once (initial election tick advance) campaigns 2 to 11 ticks later; one with a term, a leader or a spent advance is not moved', () => {
    const ticksToCampaign = (node: RawNode): number => {
      for (let t = 1; t <= 40; t++) {
        node.tick();
        if (node.status().role !== 'follower') return t;
      }
      return -1;
    };
    const advanced = Array.from({ length: 40 }, (_, seed) => {
      const node = new RawNode(config(1, [1, 2, 3], { randomSeed: seed, preVote: true }));
      expect(node.advanceFreshElection()).toBe(true);
      expect(node.advanceFreshElection()).toBe(false); // once in a node's life
      return ticksToCampaign(node);
    });
    for (const t of advanced) {
      expect(t).toBeGreaterThanOrEqual(2);
      expect(t).toBeLessThan(12);
    }
    // A node restarted with a term may have acknowledged a leader: its timer stays where it is.
    const restarted = new RawNode(config(1, [1, 2, 3]), { hardState: { term: 3, vote: 2, commit: 0 }, entries: [], firstIndex: 1, applied: 0 });
    expect(restarted.advanceFreshElection()).toBe(false);
    expect(ticksToCampaign(restarted)).toBeGreaterThanOrEqual(10);
    // A node that heard from a leader has a term; a learner never campaigns.
    const follower = new RawNode(config(1, [1, 2, 3]));
    follower.step(msg('heartbeat', 2, 1, 1));
    expect(follower.advanceFreshElection()).toBe(false);
    expect(new RawNode(config(4, [1, 2, 3], { learners: [4] })).advanceFreshElection()).toBe(false);
  });

  it('a new cluster whose nodes all advance once elects within a dozen ticks, one leader', () => {
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const c = newCluster(3, { seed, preVote: true, checkQuorum: true });
      for (const id of c.ids) expect(c.node(id).advanceFreshElection()).toBe(true);
      let ticks = 0;
      while (ticks < 12 && !c.ids.some((id) => c.node(id).status().role === 'leader')) {
        c.tickAll();
        c.stabilize();
        ticks++;
      }
      const leaders = c.ids.filter((id) => c.node(id).status().role === 'leader');
      expect(leaders).toHaveLength(1);
    }
  });

  it('a vote is granted only to an up-to-date log, and only once per term', () => {
    const node = new RawNode(config(1, [1, 2, 3]), {
      hardState: { term: 2, vote: 0, commit: 0 },
      entries: [{ term: 2, index: 1, type: 'normal', data: bytes('') }],
      firstIndex: 1,
      applied: 0,
    });
    node.step(msg('vote', 2, 1, 3, { index: 5, logTerm: 1 })); // longer but older log
    node.step(msg('vote', 3, 1, 3, { index: 1, logTerm: 2 }));
    node.step(msg('vote', 2, 1, 3, { index: 1, logTerm: 2 })); // already voted for 3
    const resps = drain(node).messages.map((m) => [m.to, m.reject]);
    expect(resps).toEqual([[2, true], [3, false], [2, true]]);
    expect(node.status()).toMatchObject({ term: 3, vote: 3 });
  });

  it('a candidate that loses the vote returns to follower', () => {
    const node = new RawNode(config(1, [1, 2, 3]));
    node.campaign();
    drain(node);
    node.step(msg('voteResp', 2, 1, 1, { reject: true }));
    expect(node.status().role).toBe('candidate');
    node.step(msg('voteResp', 3, 1, 1, { reject: true }));
    expect(node.status().role).toBe('follower');
  });
});

describe('pre-vote', () => {
  it('stops a partitioned node from inflating its term and disrupting the leader', () => {
    const c = newCluster(3, { preVote: true, checkQuorum: false });
    c.campaign(1);
    c.stabilize();
    const term = c.node(1).status().term;
    c.network.partition([[1, 2], [3]]);
    for (let i = 0; i < 100; i++) {
      c.tickAll();
      c.stabilize();
    }
    expect(c.node(3).status().term).toBe(term);
    expect(c.node(3).status().role).toBe('preCandidate');
    c.network.heal();
    for (let i = 0; i < 5; i++) {
      c.tickAll();
      c.stabilize();
    }
    expect(c.node(1).status()).toMatchObject({ role: 'leader', term });
    expect(c.node(3).status()).toMatchObject({ role: 'follower', leaderId: 1, term });
  });

  it('without pre-vote the same partition forces a new election (contrast)', () => {
    const c = newCluster(3, { preVote: false, checkQuorum: false });
    c.campaign(1);
    c.stabilize();
    const term = c.node(1).status().term;
    c.network.partition([[1, 2], [3]]);
    for (let i = 0; i < 100; i++) {
      c.tickAll();
      c.stabilize();
    }
    expect(c.node(3).status().term).toBeGreaterThan(term + 3);
    c.network.heal();
    for (let i = 0; i < 3 * c.electionTimeoutTicks; i++) {
      c.tickAll();
      c.stabilize();
    }
    // The rejoining node's higher term deposed the healthy leader.
    expect(c.node(1).status().term).toBeGreaterThan(term);
  });

  it('a pre-vote is granted to an up-to-date log without changing term or vote', () => {
    const node = new RawNode(config(1, [1, 2, 3], { preVote: true }));
    node.step(msg('preVote', 2, 1, 5, { index: 0, logTerm: 0 }));
    const [resp] = drain(node).messages;
    expect(resp).toMatchObject({ type: 'preVoteResp', to: 2, term: 5, reject: false });
    expect(node.status()).toMatchObject({ term: 0, vote: 0 });
  });
});

describe('check-quorum', () => {
  it('an isolated leader steps down after an election timeout', () => {
    const c = newCluster(3, { checkQuorum: true, preVote: true });
    c.campaign(1);
    c.stabilize();
    c.network.partition([[1], [2, 3]]);
    let ticks = 0;
    while (c.node(1).status().role === 'leader' && ticks < 100) {
      c.tick(1);
      c.stabilize();
      ticks++;
    }
    expect(c.node(1).status().role).toBe('follower');
    expect(ticks).toBeLessThanOrEqual(2 * c.electionTimeoutTicks);
    expect(() => c.propose(1, bytes('x'))).not.toThrow();
    expect(c.propose(1, bytes('x'))).toBe(false);
  });

  it('followers that recently heard from the leader ignore vote requests (leader stickiness)', () => {
    const c = newCluster(3, { checkQuorum: true, preVote: false });
    c.campaign(1);
    c.stabilize();
    const term = c.node(1).status().term;
    c.node(2).step(msg('vote', 3, 2, term + 1, { index: 100, logTerm: term }));
    c.processReady(2);
    expect(c.network.pendingCount()).toBe(0);
    expect(c.node(2).status()).toMatchObject({ term, leaderId: 1 });
    // Once the lease expired (no leader contact for an election timeout) the vote is granted.
    c.network.partition([[1], [2, 3]]);
    for (let i = 0; i < c.electionTimeoutTicks; i++) c.tick(2);
    c.node(2).step(msg('vote', 3, 2, term + 1, { index: 100, logTerm: term }));
    c.processReady(2);
    expect(c.node(2).status()).toMatchObject({ term: term + 1, vote: 3 });
  });

  it('a stale leader learns the new term from its followers and steps down', () => {
    const c = newCluster(3, { checkQuorum: true, preVote: true });
    c.campaign(1);
    c.stabilize();
    c.network.partition([[1], [2, 3]]);
    // Do not tick 1, so it still believes it leads while 2/3 elect a new leader.
    for (let i = 0; i < 40 && c.leader() !== 2 && c.leader() !== 3; i++) {
      c.tick(2);
      c.tick(3);
      c.stabilize();
    }
    const newLeader = c.leader();
    expect([2, 3]).toContain(newLeader);
    expect(c.node(1).status().role).toBe('leader');
    c.network.heal();
    c.tick(1); // heartbeat at the old term, answered with the new term
    c.stabilize();
    expect(c.node(1).status()).toMatchObject({ role: 'follower', term: c.node(newLeader).status().term });
    c.tick(newLeader);
    c.stabilize();
    expect(c.node(1).status().leaderId).toBe(newLeader);
  });
});

describe('log replication', () => {
  it('replicates proposals to every node and applies them in order', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    for (const v of ['a', 'b', 'c']) c.propose(1, bytes(v));
    c.stabilize();
    for (const id of c.ids) expect(appliedData(c, id)).toEqual(['a', 'b', 'c']);
  });

  it('batches several entries per append, bounded by maxSizePerMsgBytes', () => {
    const c = newCluster(3, { maxSizePerMsgBytes: 2 * (10 + ENTRY_OVERHEAD_BYTES) + 5, maxInflightMsgs: 1 });
    c.campaign(1);
    c.stabilize();
    const sent: Message[] = [];
    c.network.dropFilter = (m) => {
      if (m.type === 'app' && m.to === 2 && m.entries.length > 0) sent.push(m);
      return false;
    };
    for (let i = 0; i < 10; i++) c.node(1).propose(new Uint8Array(10));
    c.stabilize();
    // The turn's proposals leave together (one flush per Ready), batched two at a time: a third
    // 10-byte entry (plus its wire overhead) would exceed the cap.
    expect(sent.map((m) => m.entries.length)).toEqual([2, 2, 2, 2, 2]);
    for (const id of c.ids) expect(c.applied(id).length).toBe(11);
  });

  it('pipelines appends up to maxInflightMsgs before acks arrive', () => {
    const c = newCluster(3, { maxSizePerMsgBytes: 0, maxInflightMsgs: 2 });
    c.campaign(1);
    c.stabilize();
    const sent: Message[] = [];
    c.network.dropFilter = (m) => {
      if (m.type === 'app' && m.to === 2) sent.push(m);
      return false;
    };
    for (let i = 0; i < 5; i++) c.node(1).propose(bytes(`v${i}`));
    c.processReady(1);
    expect(sent.length).toBe(2); // window full; one entry per message due to the size cap
    c.stabilize();
    for (const id of c.ids) expect(appliedData(c, id)).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
  });

  it('pipelines appends up to maxInflightBytes of payload before acks arrive', () => {
    const c = newCluster(3, { maxSizePerMsgBytes: 0, maxInflightMsgs: 100, maxInflightBytes: 25 });
    c.campaign(1);
    c.stabilize();
    const sent: Message[] = [];
    c.network.dropFilter = (m) => {
      if (m.type === 'app' && m.to === 2 && m.entries.length > 0) sent.push(m);
      return false;
    };
    for (let i = 0; i < 6; i++) c.node(1).propose(new Uint8Array(10));
    c.processReady(1);
    // 10 + 10 + 10 bytes: the window is full once 25 bytes are in flight (it overshoots by one message).
    expect(sent.length).toBe(3);
    c.stabilize();
    for (const id of c.ids) expect(c.applied(id).length).toBe(7);
  });

  it('backtracks a divergent follower in few round trips using rejectHint', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    // Node 3 is cut off while leader 1 keeps proposing entries that never commit.
    c.network.partition([[1], [2, 3]]);
    for (let i = 0; i < 50; i++) c.propose(1, bytes(`lost${i}`));
    c.stabilize();
    // 2 and 3 elect 2, which commits 30 entries of its own.
    c.campaign(2);
    c.stabilize();
    for (let i = 0; i < 30; i++) c.propose(2, bytes(`kept${i}`));
    c.stabilize();
    c.crash(1);
    c.restart(1);
    c.network.heal();
    let rejections = 0;
    c.network.dropFilter = (m) => {
      if (m.type === 'appResp' && m.reject && m.from === 1) rejections++;
      return false;
    };
    c.tick(2);
    c.stabilize();
    expect(appliedData(c, 1).slice(-1)).toEqual(['kept29']);
    expect(rejections).toBeLessThanOrEqual(2);
    expect(c.checker.committedCount()).toBe(c.node(2).status().commit);
  });

  it('only counts replicas for entries of the current term (Figure 8)', () => {
    // Node 1 restarts with an entry from term 2 that was never committed.
    const node = new RawNode(config(1, [1, 2, 3]), {
      hardState: { term: 2, vote: 1, commit: 1 },
      entries: [
        { term: 1, index: 1, type: 'normal', data: bytes('') },
        { term: 2, index: 2, type: 'normal', data: bytes('x') },
      ],
      firstIndex: 1,
      applied: 1,
    });
    node.campaign();
    node.step(msg('voteResp', 2, 1, 3));
    expect(node.status().role).toBe('leader'); // appended its empty entry at index 3, term 3
    drain(node);
    // Node 2 now stores index 2 (term 2): a majority, but not of the current term.
    node.step(msg('appResp', 2, 1, 3, { index: 2 }));
    expect(node.status().commit).toBe(1);
    // Once index 3 (term 3) is on a majority, both commit.
    node.step(msg('appResp', 2, 1, 3, { index: 3 }));
    expect(node.status().commit).toBe(3);
    expect(drain(node).committed.map((e) => e.index)).toEqual([2, 3]);
  });

  it('Figure 8 end to end: an old-term entry on a majority can still be overwritten safely', () => {
    const c = newCluster(5, { maxSizePerMsgBytes: 0 });
    c.campaign(1);
    c.stabilize();
    // Term t: leader 1 replicates X only to 2.
    c.network.partition([[1, 2], [3, 4, 5]]);
    c.propose(1, bytes('X'));
    c.stabilize();
    const xIndex = c.node(1).status().lastIndex;
    expect(c.storage(2).entry(xIndex).term).toBe(c.node(1).status().term);
    // Term t+1: 5 wins with 3 and 4, appends its empty entry at xIndex, but is cut off at once.
    c.crash(1);
    c.network.partition([[3, 4, 5], [1, 2]]);
    c.network.dropFilter = (m) => m.from === 5 && m.type === 'app';
    c.campaign(5);
    c.stabilize();
    expect(c.node(5).status().role).toBe('leader');
    c.crash(5);
    c.network.dropFilter = null;
    // Term t+2: 1 restarts and wins with 2 and 3 (3 already voted in t+1, so it may take two
    // campaigns). It replicates X to 3 but its own new-term entry never reaches 3.
    c.restart(1);
    c.network.partition([[1, 2, 3], [4], [5]]);
    c.network.dropFilter = (m) =>
      m.type === 'app' && m.from === 1 && m.to === 3 && m.entries.some((e) => e.index > xIndex) && c.storage(3).lastIndex() >= xIndex;
    for (let i = 0; i < 3 && c.node(1).status().role !== 'leader'; i++) {
      c.campaign(1);
      c.stabilize();
    }
    expect(c.node(1).status().role).toBe('leader');
    expect(c.storage(3).entry(xIndex).data).toEqual(bytes('X'));
    expect(c.node(1).status().progress?.[3]?.match).toBe(xIndex);
    expect(c.node(1).status().progress?.[2]?.match).toBe(xIndex + 1);
    // X is on 1, 2, 3 (a majority) yet must not be committed: its term is not the leader's.
    for (const id of [1, 2, 3]) expect(c.node(id).status().commit).toBeLessThan(xIndex);
    // Term t+3: 1 crashes; 5 comes back and can win with 3 and 4 (its last term is newer),
    // overwriting X. The safety checker would throw if X had ever been committed.
    c.crash(1);
    c.network.dropFilter = null;
    c.restart(5);
    c.network.partition([[3, 4, 5], [1], [2]]);
    for (let i = 0; i < 3 && c.node(5).status().role !== 'leader'; i++) {
      c.campaign(5);
      c.stabilize();
    }
    expect(c.node(5).status().role).toBe('leader');
    c.propose(5, bytes('Y'));
    c.stabilize();
    expect(c.storage(3).entry(xIndex).term).not.toBe(c.storage(2).entry(xIndex).term);
    expect(appliedData(c, 3)).toEqual(['Y']);
  });
});

describe('commit-only appends', () => {
  it('carry a new commit index to followers that hold every entry, and are not answered', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    const seen: Message[] = [];
    c.network.dropFilter = (m) => {
      seen.push(m);
      return false;
    };
    c.propose(1, bytes('x'));
    c.stabilize();
    for (const id of c.ids) expect(appliedData(c, id)).toEqual(['x']);
    const lastIndex = c.node(1).status().lastIndex;
    for (const f of [2, 3]) {
      const toF = seen.filter((m) => m.type === 'app' && m.to === f);
      // The entry (answered), then its commit alone (not answered).
      expect(toF.map((m) => [m.entries.length, m.commitOnly === true])).toEqual([[1, false], [0, true]]);
      expect(toF[1]).toMatchObject({ index: lastIndex, commit: lastIndex });
      expect(seen.filter((m) => m.type === 'appResp' && m.from === f).map((m) => m.index)).toEqual([lastIndex]);
    }
  });

  it('a follower that refuses one answers it: the rejection the leader backtracks by', () => {
    const follower = new RawNode(config(2, [1, 2, 3]));
    follower.step(msg('app', 1, 2, 3, { index: 7, logTerm: 3, commit: 7, commitOnly: true }));
    const { messages } = drain(follower);
    expect(messages).toEqual([expect.objectContaining({ type: 'appResp', to: 1, reject: true, index: 7 })]);
  });

  it('an ack lost before one is recovered by the next heartbeat round (answered appends only)', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    let dropped = 0;
    c.network.dropFilter = (m) => {
      // Follower 2's ack of the entry is lost; the commit then goes to it alone, unanswered.
      if (m.type === 'appResp' && m.from === 2 && dropped === 0) return ++dropped === 1;
      return false;
    };
    c.propose(1, bytes('y'));
    c.stabilize();
    expect(dropped).toBe(1);
    const lastIndex = c.node(1).status().lastIndex;
    expect(c.node(1).status().progress?.[2].match).toBeLessThan(lastIndex);
    expect(appliedData(c, 2)).toEqual(['y']); // it learned the commit all the same
    c.tick(1); // a heartbeat; its answer shows 2 behind, and the append that follows is answered
    c.stabilize();
    expect(c.node(1).status().progress?.[2].match).toBe(lastIndex);
  });
});

describe('proposal forwarding', () => {
  it('a follower forwards proposals to the leader', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    expect(c.propose(3, bytes('from3'))).toBe(true);
    c.stabilize();
    for (const id of c.ids) expect(appliedData(c, id)).toEqual(['from3']);
  });

  it('forwarded proposals sent as term-0 prop messages', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    c.node(2).propose(bytes('p'));
    const rd = c.node(2).ready();
    expect(rd.messages).toHaveLength(1);
    expect(rd.messages[0]).toMatchObject({ type: 'prop', from: 2, to: 1, term: 0 });
    c.node(2).advance(rd);
  });
});

describe('ReadIndex', () => {
  it('the leader confirms leadership with a heartbeat round before answering', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    c.propose(1, bytes('w'));
    c.stabilize();
    const ctx = c.readIndex(1);
    c.processReady(1);
    expect(c.readStates(1)).toEqual([]); // not before a quorum acked
    c.stabilize();
    expect(c.readStates(1).map((r) => [decodeCtx(r.requestCtx), r.index])).toEqual([[ctx, 2]]);
  });

  it('a follower forwards the read and receives the leader commit index', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    const ctx = c.readIndex(2);
    c.stabilize();
    expect(c.readStates(2).map((r) => [decodeCtx(r.requestCtx), r.index])).toEqual([[ctx, 1]]);
    expect(c.readStates(1)).toEqual([]);
  });

  it(`reads share heartbeat rounds: at most ${MAX_ROUNDS_IN_FLIGHT} rounds in flight, the reads beyond them one more`, () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    let heartbeats = 0;
    c.network.dropFilter = (m) => {
      if (m.type === 'heartbeat') heartbeats++;
      return false;
    };
    const ctxs = Array.from({ length: 10 }, (_, i) => c.readIndex(i % 2 === 0 ? 1 : 3));
    c.stabilize();
    const served = [...c.readStates(1), ...c.readStates(3)].map((r) => decodeCtx(r.requestCtx)).sort((a, b) => a - b);
    expect(served).toEqual(ctxs);
    // 10 reads asked one by one: a round each for the first MAX_ROUNDS_IN_FLIGHT, then one shared
    // round for the other six (the member asks once per turn, so in a server reads share rounds
    // per turn as well); each round is a heartbeat to two followers.
    expect(heartbeats).toBeLessThanOrEqual(2 * (MAX_ROUNDS_IN_FLIGHT + 1));
  });

  it('a leader cut off from the quorum never answers reads', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    c.network.partition([[1], [2, 3]]);
    c.readIndex(1);
    for (let i = 0; i < 5; i++) {
      c.tick(1);
      c.stabilize();
    }
    expect(c.readStates(1)).toEqual([]);
  });

  it('a new leader defers reads until it commits an entry of its term', () => {
    const c = newCluster(3);
    c.network.dropFilter = (m) => m.type === 'appResp';
    c.campaign(1);
    c.stabilize();
    expect(c.node(1).status()).toMatchObject({ role: 'leader', commit: 0 });
    const ctx = c.readIndex(1);
    c.tick(1);
    c.stabilize();
    expect(c.readStates(1)).toEqual([]);
    c.network.dropFilter = null;
    c.tick(1);
    c.stabilize();
    expect(c.readStates(1).map((r) => [decodeCtx(r.requestCtx), r.index])).toEqual([[ctx, 1]]);
  });
});

describe('leadership transfer', () => {
  it('transferLeader hands leadership to a caught-up follower', () => {
    const c = newCluster(3, { checkQuorum: true, preVote: true });
    c.campaign(1);
    c.stabilize();
    c.propose(1, bytes('a'));
    c.stabilize();
    c.node(1).transferLeader(3);
    c.stabilize();
    expect(c.leader()).toBe(3);
    expect(c.node(1).status()).toMatchObject({ role: 'follower', leaderId: 3 });
    c.propose(1, bytes('b'));
    c.stabilize();
    for (const id of c.ids) expect(appliedData(c, id)).toEqual(['a', 'b']);
  });
});

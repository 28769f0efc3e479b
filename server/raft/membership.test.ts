// Membership changes (etcd ConfChange v1 semantics: one at a time, effective on apply),
// learners, and snapshots/log compaction, driven through RawNode and the simulator.
import { describe, expect, it } from 'vitest';
import {
  RawNode,
  ProposalDroppedError,
  RaftInvariantError,
  ConfChangeInProgressError,
  encodeConfChange,
  decodeConfChange,
} from './raw-node.ts';
import { applyConfChangeTo } from './conf-change.ts';
import type { ConfChange, Entry, HardState, Message, NodeId, RaftConfig, SnapshotMeta } from './types.ts';
import { newMessage } from './raft.ts';
import { SimCluster } from './sim/index.ts';

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

function newCluster(n: number, over: Partial<ConstructorParameters<typeof SimCluster>[0]> = {}): SimCluster {
  return new SimCluster({ nodeCount: n, seed: 1, preVote: false, checkQuorum: false, ...over });
}

function appliedData(c: SimCluster, id: NodeId): string[] {
  return c.applied(id).filter((e) => e.type === 'normal' && e.data.byteLength > 0).map((e) => text(e.data));
}

/** Elects node 1, then applies `cc` everywhere. */
function change(c: SimCluster, leader: NodeId, cc: ConfChange): void {
  expect(c.proposeConfChange(leader, cc)).toBe('proposed');
  c.stabilize();
}

function ticks(c: SimCluster, n: number): void {
  for (let i = 0; i < n; i++) {
    c.tickAll();
    c.stabilize();
  }
}

describe('ConfChange encoding', () => {
  it('round-trips every type, with and without context', () => {
    for (const type of ['addNode', 'addLearner', 'removeNode', 'promoteLearner'] as const) {
      expect(decodeConfChange(encodeConfChange({ type, nodeId: 7 }))).toEqual({ type, nodeId: 7 });
      const cc: ConfChange = { type, nodeId: 2 ** 40 + 3, context: bytes('http://a:2380') };
      expect(decodeConfChange(encodeConfChange(cc))).toEqual(cc);
    }
  });

  it('rejects malformed payloads and ids loudly', () => {
    expect(() => decodeConfChange(new Uint8Array([1, 2]))).toThrow(RaftInvariantError);
    expect(() => decodeConfChange(new Uint8Array([1, 9, 0, 0, 0, 0, 0, 0, 0, 0]))).toThrow(/type code/);
    expect(() => encodeConfChange({ type: 'addNode', nodeId: 0 })).toThrow(RaftInvariantError);
  });

  it('applies as etcd v1 does; nonsensical changes are no-ops', () => {
    const cs = { voters: [1, 2, 3], learners: [4] };
    expect(applyConfChangeTo(cs, { type: 'addLearner', nodeId: 5 })).toEqual({ voters: [1, 2, 3], learners: [4, 5] });
    expect(applyConfChangeTo(cs, { type: 'addNode', nodeId: 4 })).toEqual({ voters: [1, 2, 3, 4], learners: [] });
    expect(applyConfChangeTo(cs, { type: 'promoteLearner', nodeId: 4 })).toEqual({ voters: [1, 2, 3, 4], learners: [] });
    expect(applyConfChangeTo(cs, { type: 'promoteLearner', nodeId: 9 })).toEqual(cs);
    expect(applyConfChangeTo(cs, { type: 'addLearner', nodeId: 2 })).toEqual(cs); // no demotion
    expect(applyConfChangeTo(cs, { type: 'removeNode', nodeId: 2 })).toEqual({ voters: [1, 3], learners: [4] });
    expect(applyConfChangeTo({ voters: [1], learners: [] }, { type: 'removeNode', nodeId: 1 })).toEqual({ voters: [1], learners: [] });
  });
});

describe('membership changes', () => {
  it('proposeConfChange throws ProposalDroppedError without a leader', () => {
    const node = new RawNode(config(1, [1, 2, 3]));
    expect(() => node.proposeConfChange({ type: 'addLearner', nodeId: 4 })).toThrow(ProposalDroppedError);
  });

  it('the leader refuses a second change until the first is applied', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    expect(c.proposeConfChange(1, { type: 'addLearner', nodeId: 4 })).toBe('proposed');
    // Not yet applied (no Ready handled): a second change is refused with a typed error.
    expect(() => c.node(1).proposeConfChange({ type: 'addLearner', nodeId: 5 })).toThrow(ConfChangeInProgressError);
    expect(c.proposeConfChange(1, { type: 'removeNode', nodeId: 3 })).toBe('inProgress');
    c.stabilize();
    expect(c.node(1).status().learners).toEqual([4]);
    expect(c.proposeConfChange(1, { type: 'addNode', nodeId: 4 })).toBe('proposed');
    c.stabilize();
    for (const id of [1, 2, 3, 4]) expect(c.node(id).status()).toMatchObject({ voters: [1, 2, 3, 4], learners: [] });
  });

  it('a new leader refuses changes until its whole inherited log is applied', () => {
    const n2 = new RawNode(config(2, [1, 2]));
    const ents: Entry[] = [1, 2, 3].map((i) => ({ index: i, term: 1, type: 'normal', data: bytes(`${i}`) }));
    n2.step({ ...newMessage('app', 1, 2, 1), entries: ents });
    n2.advance(n2.ready());
    n2.campaign();
    n2.step(newMessage('voteResp', 1, 2, 2));
    expect(n2.status().role).toBe('leader');
    // Its tail (1..3) is unapplied and might hold a conf change.
    expect(() => n2.proposeConfChange({ type: 'addLearner', nodeId: 3 })).toThrow(ConfChangeInProgressError);
    n2.propose(bytes('normal proposals are fine'));
  });

  it('a learner receives the log but never votes, counts, or campaigns', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    change(c, 1, { type: 'addLearner', nodeId: 4 });
    c.propose(1, bytes('a'));
    c.stabilize();
    expect(appliedData(c, 4)).toEqual(['a']);
    expect(c.node(4).status()).toMatchObject({ role: 'follower', voters: [1, 2, 3], learners: [4], removed: false });
    expect(c.node(1).status().progress?.[4]).toMatchObject({ isLearner: true, state: 'replicate' });
    // The leader plus the learner are no quorum: nothing commits.
    c.network.partition([[1, 4], [2, 3]]);
    const commit = c.node(1).status().commit;
    c.propose(1, bytes('b'));
    c.stabilize();
    expect(c.node(1).status().commit).toBe(commit);
    // An isolated learner never campaigns, and ignores timeoutNow; transfers to it are ignored.
    c.network.partition([[4], [1, 2, 3]]);
    const term = c.node(4).status().term;
    ticks(c, 100);
    expect(c.node(4).status()).toMatchObject({ role: 'follower', term });
    c.network.heal();
    ticks(c, 3);
    const leader = c.leader();
    c.node(4).step({ ...newMessage('timeoutNow', leader, 4, c.node(leader).status().term) });
    expect(c.node(4).status().role).toBe('follower');
    c.node(leader).transferLeader(4);
    c.stabilize();
    expect(c.leader()).toBe(leader);
  });

  it('a learner holding every entry hears a new commit in an append it does not answer, as a voter does', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    change(c, 1, { type: 'addLearner', nodeId: 4 });
    const seen: Message[] = [];
    c.network.dropFilter = (m) => {
      seen.push(m);
      return false;
    };
    c.propose(1, bytes('c'));
    c.stabilize();
    expect(appliedData(c, 4)).toEqual(['c']);
    const lastIndex = c.node(1).status().lastIndex;
    const toLearner = seen.filter((m) => m.type === 'app' && m.to === 4);
    // The entry (answered), then its commit alone (not answered): the learner's match stays exact.
    expect(toLearner.map((m) => [m.entries.length, m.commitOnly === true])).toEqual([[1, false], [0, true]]);
    expect(toLearner[1]).toMatchObject({ index: lastIndex, commit: lastIndex });
    expect(seen.filter((m) => m.type === 'appResp' && m.from === 4).map((m) => m.index)).toEqual([lastIndex]);
    expect(c.node(1).status().progress?.[4]).toMatchObject({ isLearner: true, match: lastIndex });
  });

  it('promotes a caught-up learner (learnerReady: match >= 90% of the leader)', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    c.network.partition([[4], [1, 2, 3]]);
    change(c, 1, { type: 'addLearner', nodeId: 4 });
    for (let i = 0; i < 20; i++) c.propose(1, bytes(`x${i}`));
    c.stabilize();
    expect(c.node(1).learnerReady(4)).toBe(false);
    expect(c.node(2).learnerReady(4)).toBe(false); // leader only
    c.network.heal();
    ticks(c, 2);
    expect(c.node(1).learnerReady(4)).toBe(true);
    change(c, 1, { type: 'promoteLearner', nodeId: 4 });
    expect(c.node(4).status()).toMatchObject({ voters: [1, 2, 3, 4], learners: [] });
    // Now 4 counts: with 2 and 3 cut off, 1 + 4 are not a quorum of 4.
    c.network.partition([[1, 4], [2, 3]]);
    const commit = c.node(1).status().commit;
    c.propose(1, bytes('y'));
    c.stabilize();
    expect(c.node(1).status().commit).toBe(commit);
    c.network.heal();
    ticks(c, 2);
    expect(appliedData(c, 4).at(-1)).toBe('y');
  });

  it('removes a follower: it is no longer contacted and stops campaigning after applying its removal', () => {
    const c = newCluster(3, { retireRemovedNodes: false });
    c.campaign(1);
    c.stabilize();
    change(c, 1, { type: 'removeNode', nodeId: 3 });
    expect(c.node(3).status()).toMatchObject({ voters: [1, 2], removed: true });
    const sent: Message[] = [];
    c.network.dropFilter = (m) => {
      sent.push(m);
      return false;
    };
    c.propose(1, bytes('a'));
    ticks(c, 30);
    expect(sent.filter((m) => m.to === 3)).toEqual([]);
    expect(sent.filter((m) => m.from === 3)).toEqual([]); // never campaigns
    expect(appliedData(c, 2)).toEqual(['a']);
    // Two voters: both are needed.
    c.crash(2);
    const commit = c.node(1).status().commit;
    c.propose(1, bytes('b'));
    c.stabilize();
    expect(c.node(1).status().commit).toBe(commit);
  });

  it('a removed follower that missed the commit of its removal hears it from the leader once (the farewell append)', () => {
    const c = newCluster(3, { retireRemovedNodes: false });
    c.campaign(1);
    c.stabilize();
    c.propose(1, bytes('a'));
    c.stabilize();
    const removalIndex = c.node(1).status().lastIndex + 1;
    // Node 3 receives the removal entry, but no message telling it the entry committed, until the
    // leader has applied the removal (and forgotten node 3's progress).
    c.network.dropFilter = (m) => m.to === 3 && m.type === 'app' && m.commit >= removalIndex && c.node(1).status().applied < removalIndex;
    expect(c.proposeConfChange(1, { type: 'removeNode', nodeId: 3 })).toBe('proposed');
    c.stabilize();
    expect(c.node(1).status().voters).toEqual([1, 2]);
    // The farewell carried the commit index: node 3 applied its removal, and every entry before it.
    expect(c.node(3).status()).toMatchObject({ voters: [1, 2], removed: true });
    expect(c.node(3).status().applied).toBeGreaterThanOrEqual(removalIndex);
    expect(appliedData(c, 3)).toEqual(['a']);
  });

  it('a node with a vote floor votes and campaigns only with a log at least that up to date', () => {
    const entries: Entry[] = [1, 2].map((index) => ({ index, term: 2, type: 'normal', data: bytes(`e${index}`) }));
    const node = new RawNode(config(1, [1, 2, 3]), { hardState: { term: 3, vote: 0, commit: 0 }, entries, firstIndex: 1, applied: 0, voteFloor: { index: 5, term: 2 } });
    const answer = (from: NodeId, index: number, logTerm: number): Message | undefined => {
      node.step({ ...newMessage('vote', from, 1, 4 + from), index, logTerm });
      const ready = node.ready();
      node.advance(ready);
      return ready.messages.find((m) => m.type === 'voteResp');
    };
    expect(answer(2, 4, 2)?.reject).toBe(true); // behind the floor, though ahead of the log
    node.campaign();
    expect(node.status().role).toBe('follower'); // its own log (2, term 2) is behind the floor
    expect(answer(3, 5, 2)?.reject).toBe(false);
  });

  it('a node added back after its removal is a member again: it campaigns once a voter', () => {
    // A replica returning under the same id replays its predecessor's removal, then its own addition.
    const node = new RawNode(config(1, [1, 2, 3]));
    node.applyConfChange({ type: 'removeNode', nodeId: 1 });
    expect(node.status()).toMatchObject({ removed: true, voters: [2, 3] });
    node.campaign();
    expect(node.status().role).toBe('follower');
    node.applyConfChange({ type: 'addLearner', nodeId: 1 });
    expect(node.status()).toMatchObject({ removed: false, voters: [2, 3], learners: [1] });
    node.campaign();
    expect(node.status().role).toBe('follower'); // a learner never campaigns
    node.applyConfChange({ type: 'promoteLearner', nodeId: 1 });
    node.campaign();
    expect(node.status().role).toBe('candidate');
  });

  it('removes the leader: it steps down once the removal applies and the rest elect a new leader', () => {
    const c = newCluster(3, { retireRemovedNodes: false });
    c.campaign(1);
    c.stabilize();
    change(c, 1, { type: 'removeNode', nodeId: 1 });
    expect(c.node(1).status()).toMatchObject({ role: 'follower', removed: true, voters: [2, 3] });
    expect(c.node(2).status().voters).toEqual([2, 3]);
    const newLeader = c.electLeader();
    expect([2, 3]).toContain(newLeader);
    c.propose(newLeader, bytes('after'));
    c.stabilize();
    expect(appliedData(c, 2)).toEqual(['after']);
    expect(appliedData(c, 3)).toEqual(['after']);
    expect(c.node(1).status().role).toBe('follower');
    expect(() => c.node(1).campaign()).not.toThrow();
    expect(c.node(1).status().role).toBe('follower');
  });

  it('does not campaign with a committed but unapplied conf change', () => {
    const f = new RawNode(config(2, [1, 2, 3]));
    const cc = encodeConfChange({ type: 'addLearner', nodeId: 4 });
    f.step({ ...newMessage('app', 1, 2, 1), commit: 1, entries: [{ index: 1, term: 1, type: 'confChange', data: cc }] });
    expect(f.status()).toMatchObject({ commit: 1, applied: 0 });
    f.campaign();
    expect(f.status().role).toBe('follower');
    const rd = f.ready();
    expect(rd.committedEntries.map((e) => e.type)).toEqual(['confChange']);
    expect(f.applyConfChange(decodeConfChange(rd.committedEntries[0].data))).toEqual({ voters: [1, 2, 3], learners: [4] });
    f.advance(rd);
    f.campaign();
    expect(f.status().role).toBe('candidate');
  });

  it('restarts with the persisted ConfState, not the bootstrap voters', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    change(c, 1, { type: 'addLearner', nodeId: 4 });
    change(c, 1, { type: 'addNode', nodeId: 4 });
    change(c, 1, { type: 'removeNode', nodeId: 3 });
    expect(c.ids).toEqual([1, 2, 4]);
    expect(c.storage(2).confState).toEqual({ voters: [1, 2, 4], learners: [] });
    c.crash(2);
    c.restart(2);
    expect(c.node(2).status().voters).toEqual([1, 2, 4]);
    c.crash(1);
    expect([2, 4]).toContain(c.electLeader());
  });
});

describe('snapshots and log compaction', () => {
  function laggingFollowerCluster(): SimCluster {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    c.crash(3);
    for (let i = 0; i < 10; i++) c.propose(1, bytes(`e${i}`));
    c.stabilize();
    expect(c.compact(1)).toBe(11);
    expect(c.node(1).status()).toMatchObject({ firstIndex: 12, snapshot: { index: 11, term: 1 } });
    return c;
  }

  it('compact requires an applied index and keeps the term of the compaction point', () => {
    const c = newCluster(1);
    c.campaign(1);
    c.propose(1, bytes('a'));
    c.stabilize();
    const node = c.node(1);
    expect(() => node.compact(5, { voters: [1], learners: [] })).toThrow(RaftInvariantError);
    node.compact(2, { voters: [1], learners: [] });
    expect(node.termAt(2)).toBe(1);
    expect(node.termAt(1)).toBeUndefined();
    node.compact(1, { voters: [1], learners: [] }); // below: no-op
    expect(node.status().firstIndex).toBe(3);
  });

  it('sends a snapshot to a follower whose entries were compacted, which installs it', () => {
    const c = laggingFollowerCluster();
    const snaps: Message[] = [];
    c.network.dropFilter = (m) => {
      if (m.type === 'snap') snaps.push(m);
      return false;
    };
    c.restart(3);
    ticks(c, 3);
    expect(snaps.length).toBe(1);
    expect(snaps[0].snapshot).toEqual({ index: 11, term: 1, confState: { voters: [1, 2, 3], learners: [] } });
    expect(appliedData(c, 3)).toEqual(appliedData(c, 1));
    expect(c.node(3).status()).toMatchObject({ firstIndex: 12, applied: 11, commit: 11 });
    expect(c.storage(3).firstIndex()).toBe(12);
    expect(c.node(1).status().progress?.[3]).toMatchObject({ match: 11, state: 'replicate' });
    c.propose(1, bytes('more'));
    c.stabilize();
    expect(appliedData(c, 3).at(-1)).toBe('more');
  });

  it('refuses a snapshot while committed entries or an earlier snapshot of an outstanding Ready are being applied', () => {
    const follower = new RawNode(config(2, [1, 2, 3]));
    // The follower holds entries 1..3 of term 1, committed through 3; the Ready applying them is outstanding.
    const app: Message = {
      ...newMessage('app', 1, 2, 1),
      entries: [1, 2, 3].map((index) => ({ term: 1, index, type: 'normal' as const, data: bytes(`e${index}`) })),
      commit: 3,
    };
    follower.step(app);
    const applying = follower.ready();
    expect(applying.committedEntries.map((e) => e.index)).toEqual([1, 2, 3]);
    // A newer snapshot arrives meanwhile (its membership already reflects later conf changes).
    const meta: SnapshotMeta = { index: 9, term: 1, confState: { voters: [1, 2, 3], learners: [7] } };
    follower.step({ ...newMessage('snap', 1, 2, 1), snapshot: meta });
    follower.advance(applying);
    const rd = follower.ready();
    expect(rd.snapshot).toBeNull(); // refused: the leader retries it
    expect(rd.messages.find((m) => m.type === 'appResp')?.index).toBe(3);
    follower.advance(rd);
    // Once nothing is being applied, the same snapshot is taken.
    follower.step({ ...newMessage('snap', 1, 2, 1), snapshot: meta });
    const installing = follower.ready();
    expect(installing.snapshot?.index).toBe(9);
    // And a second one while the first is being installed is refused as well.
    follower.step({ ...newMessage('snap', 1, 2, 1), snapshot: { ...meta, index: 12 } });
    follower.advance(installing);
    expect(follower.status()).toMatchObject({ firstIndex: 10, commit: 9, applied: 9 });
  });

  it('Ready.snapshot comes with committed entries after it only; stale snapshots are acked with the commit index', () => {
    const leader = new RawNode(config(1, [1, 2]));
    const follower = new RawNode(config(2, [1, 2]));
    const meta: SnapshotMeta = { index: 5, term: 2, confState: { voters: [1, 2], learners: [] } };
    const snap: Message = { ...newMessage('snap', 1, 2, 2), snapshot: meta };
    follower.step(snap);
    const rd = follower.ready();
    expect(rd.snapshot).toEqual(meta);
    expect(rd.committedEntries).toEqual([]);
    expect(rd.hardState).toEqual({ term: 2, vote: 0, commit: 5 });
    expect(rd.messages).toMatchObject([{ type: 'appResp', to: 1, index: 5, reject: false }]);
    follower.advance(rd);
    expect(follower.status()).toMatchObject({ applied: 5, commit: 5, lastIndex: 5, firstIndex: 6 });
    // Entries after the snapshot apply normally.
    const app: Message = {
      ...newMessage('app', 1, 2, 2),
      index: 5,
      logTerm: 2,
      commit: 6,
      entries: [{ index: 6, term: 2, type: 'normal', data: bytes('x') }],
    };
    follower.step(app);
    const rd2 = follower.ready();
    expect(rd2.snapshot).toBeNull();
    expect(rd2.committedEntries.map((e) => e.index)).toEqual([6]);
    follower.advance(rd2);
    // A snapshot at or below the commit index is not installed.
    follower.step({ ...snap, snapshot: { ...meta, index: 4 } });
    const rd3 = follower.ready();
    expect(rd3.snapshot).toBeNull();
    expect(rd3.messages).toMatchObject([{ type: 'appResp', index: 6 }]);
    follower.advance(rd3);
    expect(leader.status().role).toBe('follower');
  });

  it('a snapshot whose last entry the follower already has only fast-forwards its commit', () => {
    const f = new RawNode(config(2, [1, 2]));
    const ents: Entry[] = [1, 2, 3].map((i) => ({ index: i, term: 1, type: 'normal', data: bytes(`${i}`) }));
    f.step({ ...newMessage('app', 1, 2, 1), index: 0, logTerm: 0, commit: 0, entries: ents });
    f.advance(f.ready());
    f.step({ ...newMessage('snap', 1, 2, 1), snapshot: { index: 2, term: 1, confState: { voters: [1, 2], learners: [] } } });
    const rd = f.ready();
    expect(rd.snapshot).toBeNull();
    expect(rd.committedEntries.map((e) => e.index)).toEqual([1, 2]);
    expect(rd.messages).toMatchObject([{ type: 'appResp', index: 2 }]);
    f.advance(rd);
    expect(f.status()).toMatchObject({ lastIndex: 3, firstIndex: 1 });
  });

  it('the snapshot carries membership: a follower adopts the snapshot ConfState', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    c.crash(3);
    change(c, 1, { type: 'addLearner', nodeId: 4 });
    change(c, 1, { type: 'addNode', nodeId: 4 });
    c.compact(1);
    c.restart(3);
    ticks(c, 3);
    expect(c.node(3).status()).toMatchObject({ voters: [1, 2, 3, 4] });
    expect(c.storage(3).confState).toEqual({ voters: [1, 2, 3, 4], learners: [] });
  });

  it('reportSnapshot(failure) returns the follower to probing and the snapshot is retried', () => {
    const c = laggingFollowerCluster();
    let snapsSent = 0;
    c.network.dropFilter = (m) => m.type === 'snap' && ++snapsSent === 1; // lose the first one
    c.restart(3);
    c.tickAll();
    c.stabilize();
    // The sim's transport reported the loss: not stuck in snapshot state.
    expect(snapsSent).toBeGreaterThanOrEqual(1);
    ticks(c, 3);
    expect(snapsSent).toBe(2);
    expect(appliedData(c, 3)).toEqual(appliedData(c, 1));
  });

  it('snapshot state pauses appends until reported; failure and finish go back to probe', () => {
    const c = laggingFollowerCluster();
    c.network.dropFilter = (m) => m.type === 'snap'; // lost, and the transport is silent: no reports
    c.network.onDrop = null;
    c.restart(3);
    ticks(c, 2);
    const leader = c.node(1);
    expect(leader.status().progress?.[3]).toMatchObject({ state: 'snapshot' });
    leader.reportSnapshot(3, 'failure');
    expect(leader.status().progress?.[3]).toMatchObject({ state: 'probe', match: 1, next: 2 });
    ticks(c, 1);
    expect(leader.status().progress?.[3]).toMatchObject({ state: 'snapshot', next: 12 });
    leader.reportSnapshot(3, 'finish');
    expect(leader.status().progress?.[3]).toMatchObject({ state: 'probe', next: 12 });
    leader.reportUnreachable(3);
    c.network.dropFilter = null;
    ticks(c, 3);
    expect(appliedData(c, 3)).toEqual(appliedData(c, 1));
    expect(leader.status().progress?.[3]).toMatchObject({ state: 'replicate' });
  });

  it('restarts from a compacted log (firstIndex > 1) and keeps working', () => {
    const c = newCluster(3);
    c.campaign(1);
    c.stabilize();
    for (let i = 0; i < 5; i++) c.propose(1, bytes(`e${i}`));
    c.stabilize();
    for (const id of [1, 2, 3]) c.compact(id);
    const p = c.storage(2).toPersisted();
    expect(p).toMatchObject({ firstIndex: 7, applied: 6, entries: [], snapshot: { index: 6, term: 1 } });
    for (const id of [1, 2, 3]) {
      c.crash(id);
      c.restart(id);
    }
    expect(c.node(2).status()).toMatchObject({ firstIndex: 7, lastIndex: 6, commit: 6, applied: 6 });
    const l = c.electLeader();
    c.propose(l, bytes('after'));
    c.stabilize();
    for (const id of [1, 2, 3]) expect(appliedData(c, id)).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'after']);
  });

  it('validates a compacted PersistedState', () => {
    const hs: HardState = { term: 1, vote: 1, commit: 6 };
    const snapshot: SnapshotMeta = { index: 6, term: 1, confState: { voters: [1], learners: [] } };
    expect(() => new RawNode(config(1, [1]), { hardState: hs, entries: [], firstIndex: 7, applied: 6 })).toThrow(/needs a snapshot/);
    expect(() => new RawNode(config(1, [1]), { hardState: hs, entries: [], firstIndex: 7, applied: 5, snapshot })).toThrow(/applied/);
    const ok = new RawNode(config(1, [1]), { hardState: hs, entries: [], firstIndex: 7, applied: 6, snapshot });
    expect(ok.status()).toMatchObject({ firstIndex: 7, lastIndex: 6, commit: 6, voters: [1] });
    expect(ok.termAt(6)).toBe(1);
  });

  it('a restarted node installs a persisted-but-uninstalled snapshot first (crash between persist and install)', () => {
    const c = laggingFollowerCluster();
    c.restart(3);
    c.crashDuringNextReady(3, 'afterSend', true);
    ticks(c, 3);
    expect(c.isUp(3)).toBe(false);
    expect(c.storage(3).snapshot?.meta.index).toBe(11);
    expect(c.storage(3).applied).toBeLessThan(11);
    c.restart(3);
    expect(c.node(3).status()).toMatchObject({ applied: 11, firstIndex: 12 });
    ticks(c, 3);
    expect(appliedData(c, 3)).toEqual(appliedData(c, 1));
  });
});

describe('a replica placed on the same member again (sharded placement)', () => {
  it('an empty replica ignores a heartbeat commit meant for its previous incarnation; a log that is not empty still fails loudly', () => {
    const fresh = new RawNode(config(3, [1, 2], { learners: [3] }));
    fresh.step({ ...newMessage('heartbeat', 1, 3, 2), commit: 26 });
    expect(fresh.status().commit).toBe(0);
    const rd = fresh.ready();
    expect(rd.messages.map((m) => m.type)).toEqual(['heartbeatResp']);
    fresh.advance(rd);
    // With entries, a commit past them is corruption, as in etcd.
    const r = new RawNode(config(3, [1, 2, 3]), { hardState: { term: 1, vote: 0, commit: 0 }, entries: [{ index: 1, term: 1, type: 'normal', data: bytes('x') }], firstIndex: 1, applied: 0 });
    expect(() => r.step({ ...newMessage('heartbeat', 1, 3, 1), commit: 26 })).toThrow(RaftInvariantError);
  });

  it('a replica that replays its own old removal and then its re-addition is a member again (it may campaign)', () => {
    const n = new RawNode(config(3, [1, 2, 3]));
    n.applyConfChange({ type: 'removeNode', nodeId: 3 });
    expect(n.status().removed).toBe(true);
    n.applyConfChange({ type: 'addLearner', nodeId: 3 });
    n.applyConfChange({ type: 'promoteLearner', nodeId: 3 });
    expect(n.status().removed).toBe(false);
    expect(n.confState().voters).toContain(3);
  });
});

// Groups hosted and dropped at runtime, on real LevelDB (runtime-groups-harness.ts): a shard replica
// moves to a member that was not hosting it (learner, snapshot, promotion) and off one that was
// (removal, then Member.removeGroup deletes its data and leaves a tombstone); the tombstone keeps a
// later replica of the group on the same member from voting twice in one term; a removal racing a
// turn's batch leaves nothing of the group behind; only removal from the cluster group stops a member.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { groupRange, tombstoneKey } from '../storage/keys.ts';
import { MemberDb, TurnBatch } from '../storage/member-db.ts';
import { newMessage } from '../raft/raft.ts';
import type { Message } from '../raft/types.ts';
import { GroupRemovedError, Member } from './member.ts';
import { InProcessNetwork, RecordingStateMachine, StallableStore, logger, scanKeys, waitFor } from './runtime-groups-harness.ts';

const CLUSTER = 0;
const SHARD = 2;
const TICK_MS = 20;
const ELECTION_TICKS = 10;

/** A promise's outcome, settled into a value at once (no rejection is left unhandled meanwhile). */
function outcome(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => 'resolved',
    (err: unknown) => err,
  );
}

let root: string;
let net: InProcessNetwork;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-runtime-groups-'));
  net = new InProcessNetwork(root, { tickMs: TICK_MS, electionTimeoutTicks: ELECTION_TICKS, heartbeatTicks: 1, snapshotCount: 16, quiesce: true });
});

afterEach(async () => {
  await net.stopAll();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('a shard replica moved at runtime', () => {
  it('joins a running member as a learner through a snapshot, is promoted; the replica removed elsewhere is dropped with all its data, stays dropped across a restart, and can come back', async () => {
    for (const id of [1, 2, 3]) await net.startNode(id, { [CLUSTER]: [1, 2, 3, 4], [SHARD]: [1, 2, 3] });
    const four = await net.startNode(4, { [CLUSTER]: [1, 2, 3, 4] });
    for (let i = 0; i < 60; i++) await net.put(SHARD, `before-${i}`);
    const leadBefore = await net.leaderOf(SHARD);
    expect(leadBefore.member.status(SHARD).firstIndex).toBeGreaterThan(1); // compacted: a newcomer needs a snapshot

    // The new replica: hosted first (empty, with the bootstrap voters: not one of them), then added.
    const sm4 = await net.host(four, SHARD, [1, 2, 3]);
    expect(four.member.groupIds().sort()).toEqual([CLUSTER, SHARD]);
    await net.changeMembership(SHARD, { type: 'addLearner', nodeId: 4 }, (cs) => cs?.learners.includes(4) === true);
    await waitFor('the learner caught up', () => sm4.records.get('before-59') !== undefined);
    expect(four.member.stats.snapshotsInstalled).toBeGreaterThanOrEqual(1);
    expect(four.member.isLearner(SHARD)).toBe(true);
    await waitFor('the learner ready for promotion', () => [...net.nodes.values()].some((n) => n.member.groupIds().includes(SHARD) && n.member.role(SHARD) === 'leader' && n.member.learnerReady(SHARD, 4)));
    await net.changeMembership(SHARD, { type: 'promoteLearner', nodeId: 4 }, (cs) => cs?.voters.includes(4) === true);
    await waitFor('member 4 sees itself a voter', () => !four.member.isLearner(SHARD));

    // The replica moving off: the shard's leader's own (it applies its own removal, deterministically).
    const gone = await net.leaderOf(SHARD);
    expect(gone.id).not.toBe(4);
    const removedFrom: number[] = [];
    let clusterRemovals = 0;
    // Dropped from inside the turn that applies the removal (a listener calling removeGroup at once).
    let removal: Promise<void> | null = null;
    gone.member.onRemoved((groupId) => {
      removedFrom.push(groupId);
      expect(gone.member.role(SHARD)).not.toBe('leader'); // a removed leader steps down
      removal = gone.member.removeGroup(groupId);
    });
    gone.member.onClusterRemoval(() => clusterRemovals++);
    const goneSm = gone.sms.get(SHARD)!;
    const stranded = outcome(goneSm.whenApplied('never-proposed'));
    await net.changeMembership(SHARD, { type: 'removeNode', nodeId: gone.id }, () => removedFrom.includes(SHARD));
    expect(removedFrom).toEqual([SHARD]);
    await removal;
    gone.sms.delete(SHARD);
    // Removal from a shard group is not removal from the cluster: the member keeps running and serving.
    expect(clusterRemovals).toBe(0);
    expect(await stranded).toBeInstanceOf(GroupRemovedError);
    expect(gone.member.groupIds()).toEqual([CLUSTER]);
    expect(() => gone.member.status(SHARD)).toThrow(/not hosted/);
    await net.put(CLUSTER, 'cluster-after-removal');
    await waitFor('the member still applies the cluster group', () => gone.sms.get(CLUSTER)!.records.has('cluster-after-removal'));
    // The shard goes on without it, on the others (member 4 among them).
    await net.put(SHARD, 'after-move');
    await waitFor('member 4 applies the shard', () => sm4.records.has('after-move'));
    if (fs.existsSync(gone.snapshotDir)) expect(fs.readdirSync(gone.snapshotDir).filter((f) => f.startsWith('0002-'))).toEqual([]);

    // Restart from the same database: nothing of the shard is left, its tombstone is.
    const term = (await net.leaderOf(SHARD)).member.term(SHARD);
    await net.stopNode(gone.id);
    expect(await scanKeys(gone.dbDir, groupRange(SHARD))).toEqual([]);
    expect(await scanKeys(gone.dbDir, groupRange(CLUSTER))).not.toEqual([]);
    expect(await scanKeys(gone.dbDir, { gte: tombstoneKey(SHARD), lt: tombstoneKey(SHARD + 1) })).toHaveLength(1);
    const again = await net.startNode(gone.id, { [CLUSTER]: [1, 2, 3, 4] });
    const tombstone = await again.db.tombstone(SHARD);
    expect(tombstone).toBeDefined();
    expect(tombstone!.removing).toBe(false);
    expect(tombstone!.term).toBeGreaterThan(0);
    expect(tombstone!.term).toBeLessThanOrEqual(term);
    const loaded = await again.db.loadGroup(SHARD);
    expect(loaded).toMatchObject({ hardState: { term: tombstone!.term + 1, vote: 0, commit: 0 }, entries: [], applied: 0, stateRecords: [] });
    expect(loaded.snapshot).toBeUndefined();
    expect(loaded.confState).toBeUndefined();
    expect(again.member.groupIds()).toEqual([CLUSTER]);
    await net.put(CLUSTER, 'cluster-after-restart');
    await waitFor('the restarted member applies the cluster group', () => again.sms.get(CLUSTER)!.records.has('cluster-after-restart'));

    // The shard comes back to this member (same Raft id): from its tombstone, as a learner, then a voter.
    const voters = (await net.leaderOf(SHARD)).member.confState(SHARD).voters;
    const back = await net.host(again, SHARD, [1, 2, 3]); // the bootstrap voters, as every replica
    expect(again.member.term(SHARD)).toBe(tombstone!.term + 1); // past every message of its predecessor
    await net.changeMembership(SHARD, { type: 'addLearner', nodeId: again.id }, (cs) => cs?.learners.includes(again.id) === true);
    await waitFor('the returning replica caught up', () => back.records.has('after-move'));
    await net.changeMembership(SHARD, { type: 'promoteLearner', nodeId: again.id }, (cs) => cs?.voters.includes(again.id) === true);
    await net.put(SHARD, 'after-return');
    await waitFor('every replica applies the shard', () => [...net.nodes.values()].filter((n) => n.sms.has(SHARD)).every((n) => n.sms.get(SHARD)!.records.has('after-return')));
    const replicas = [...net.nodes.values()].filter((n) => n.sms.has(SHARD));
    expect(replicas.map((n) => n.id).sort()).toEqual([...voters, again.id].sort());
    for (const n of replicas) expect(n.sms.get(SHARD)!.records).toEqual(back.records);
  }, 60_000);
});

describe('removal from the cluster group', () => {
  it('is the one that calls onClusterRemoval', async () => {
    for (const id of [1, 2, 3]) await net.startNode(id, { [CLUSTER]: [1, 2, 3] });
    const lead = await net.leaderOf(CLUSTER);
    const removedFrom: number[] = [];
    let clusterRemovals = 0;
    lead.member.onRemoved((groupId) => removedFrom.push(groupId));
    lead.member.onClusterRemoval(() => clusterRemovals++);
    await net.changeMembership(CLUSTER, { type: 'removeNode', nodeId: lead.id }, (cs) => cs !== null && !cs.voters.includes(lead.id));
    await waitFor('the leader applied its removal', () => clusterRemovals === 1);
    expect(removedFrom).toEqual([CLUSTER]);
    await expect(lead.member.removeGroup(CLUSTER)).rejects.toThrow(/cluster group cannot be removed/);
  }, 30_000);
});

describe('a group tombstone', () => {
  /** A member alone with group SHARD (voters 1, 2, 3: it never wins an election alone); its messages are kept. */
  async function lonelyMember(dir: string): Promise<{ member: Member; db: MemberDb; sent: Message[] }> {
    const db = await MemberDb.open(path.join(dir, 'db'));
    // A long election timeout: the member's own pre-votes never disturb the term under test. Lease
    // reads off: with them, a replica re-created with stored state (the tombstone's term) would also sit
    // out an election timeout (5 s here) before voting at all (server/raft/lease-reads.test.ts), and
    // what is under test here is whom it votes for.
    const member = new Member({ memberId: 1, db, tickMs: 50, electionTimeoutTicks: 100, heartbeatTicks: 1, logger, snapshotDir: path.join(dir, 'snap'), snapshotCount: 1000, leaseReads: false });
    const sent: Message[] = [];
    member.setSink({ send: (_g, m) => void sent.push(m), flush: () => {} });
    member.addGroup({ groupId: SHARD, voters: [1, 2, 3], stateMachine: new RecordingStateMachine(), loaded: await db.loadGroup(SHARD), randomSeed: 1 });
    member.start();
    return { member, db, sent };
  }

  function voteRequest(from: number, term: number): Message {
    return { ...newMessage('vote', from, 1, term), index: 0, logTerm: 0 };
  }

  async function answerTo(sent: Message[], candidate: number): Promise<Message> {
    let answer: Message | undefined;
    await waitFor(`the answer to ${candidate}`, () => (answer = sent.find((m) => m.type === 'voteResp' && m.to === candidate)) !== undefined);
    return answer!;
  }

  it('keeps a re-created replica from voting a second time in the term its predecessor voted in', async () => {
    const { member, db, sent } = await lonelyMember(root);
    try {
      member.step([{ groupId: SHARD, message: voteRequest(2, 5) }]);
      expect((await answerTo(sent, 2)).reject).toBe(false); // voted for 2 in term 5 (and made it durable first)
      await member.removeGroup(SHARD);
      expect(await db.tombstone(SHARD)).toEqual({ term: 5, vote: 2, lastIndex: 0, lastTerm: 0, removing: false });

      // The same group placed on this member again: same Raft id, at the term after the tombstone's.
      const loaded = await db.loadGroup(SHARD);
      expect(loaded.hardState).toEqual({ term: 6, vote: 0, commit: 0 });
      member.addGroup({ groupId: SHARD, voters: [1, 2, 3], stateMachine: new RecordingStateMachine(), loaded, randomSeed: 2 });
      sent.length = 0;
      // Another candidate of term 5, and (a message in flight to the predecessor) a heartbeat of term 5
      // committing entries this empty log does not have: both of a past term, both ignored.
      member.step([{ groupId: SHARD, message: voteRequest(3, 5) }]);
      member.step([{ groupId: SHARD, message: { ...newMessage('heartbeat', 2, 1, 5), commit: 40 } }]);
      // A later term is a fresh vote, as always; its answer comes after whatever the term-5 ones got.
      member.step([{ groupId: SHARD, message: voteRequest(3, 7) }]);
      await waitFor('a vote in term 7', () => sent.some((m) => m.type === 'voteResp' && m.to === 3 && m.term === 7 && !m.reject));
      expect(sent.filter((m) => m.type === 'voteResp' && !m.reject && m.term === 5)).toEqual([]);
      expect(member.status(SHARD)).toMatchObject({ term: 7, commit: 0 });
    } finally {
      await member.stop();
      await db.close();
    }
  }, 20_000);

  it('is what closes the hazard: without it, a replica starting at term 0 votes again in the same term', async () => {
    const { member, db, sent } = await lonelyMember(root);
    try {
      member.step([{ groupId: SHARD, message: voteRequest(2, 5) }]);
      expect((await answerTo(sent, 2)).reject).toBe(false);
      await member.removeGroup(SHARD);
      const loaded = await db.loadGroup(SHARD);
      // What a store without tombstones would hand back: a blank hard state.
      loaded.hardState = { term: 0, vote: 0, commit: 0 };
      member.addGroup({ groupId: SHARD, voters: [1, 2, 3], stateMachine: new RecordingStateMachine(), loaded, randomSeed: 2 });
      member.step([{ groupId: SHARD, message: voteRequest(3, 5) }]);
      expect((await answerTo(sent, 3)).reject).toBe(false); // two votes in term 5: two leaders possible
    } finally {
      await member.stop();
      await db.close();
    }
  }, 20_000);

  it("keeps a re-created replica's empty log from electing a candidate its predecessor's log would have refused", async () => {
    const { member, db, sent } = await lonelyMember(root);
    try {
      // The predecessor holds entries 1..3 of term 3 from leader 2 (acknowledged once durable).
      const entries = [1, 2, 3].map((index) => ({ index, term: 3, type: 'normal' as const, data: Buffer.from(`e${index}`) }));
      member.step([{ groupId: SHARD, message: { ...newMessage('app', 2, 1, 3), entries } }]);
      await waitFor('the append acknowledged', () => sent.some((m) => m.type === 'appResp' && m.index === 3 && !m.reject));
      await member.removeGroup(SHARD);
      expect(await db.tombstone(SHARD)).toMatchObject({ term: 3, lastIndex: 3, lastTerm: 3 });
      const loaded = await db.loadGroup(SHARD);
      expect(loaded.voteFloor).toEqual({ index: 3, term: 3 });
      member.addGroup({ groupId: SHARD, voters: [1, 2, 3], stateMachine: new RecordingStateMachine(), loaded, randomSeed: 2 });
      sent.length = 0;
      // A candidate (its membership stale, say) missing entries 2 and 3: the predecessor would refuse it.
      member.step([{ groupId: SHARD, message: { ...newMessage('vote', 3, 1, 4), index: 1, logTerm: 3 } }]);
      expect((await answerTo(sent, 3)).reject).toBe(true);
      // One as up to date as the predecessor was gets the vote, empty log or not.
      member.step([{ groupId: SHARD, message: { ...newMessage('vote', 2, 1, 5), index: 3, logTerm: 3 } }]);
      expect((await answerTo(sent, 2)).reject).toBe(false);
    } finally {
      await member.stop();
      await db.close();
    }
  }, 20_000);

  it('is left by dropping a group stored here but no longer placed here (the member was down when its replica moved away)', async () => {
    const db = await MemberDb.open(path.join(root, 'db'));
    try {
      const batch = new TurnBatch();
      for (const groupId of [CLUSTER, SHARD, 7]) {
        batch.setHardState(groupId, { term: 4 + groupId, vote: 3, commit: 1 });
        batch.appendEntries(groupId, [{ index: 1, term: 4 + groupId, type: 'normal', data: new Uint8Array([1]) }], 0);
        batch.putState(groupId, Buffer.from('k'), Buffer.from('v'));
        batch.setApplied(groupId, 1);
      }
      await db.write(batch, true);
      expect(await db.storedGroupIds()).toEqual([CLUSTER, SHARD, 7]);
      // At start, the hosting layer drops what the placement no longer puts here: no term or vote is
      // given, the stored hard state is the tombstone's.
      await db.dropGroup(7);
      expect(await db.storedGroupIds()).toEqual([CLUSTER, SHARD]);
      expect(await db.tombstone(7)).toEqual({ term: 11, vote: 3, lastIndex: 1, lastTerm: 11, removing: false });
      expect(await db.loadGroup(7)).toMatchObject({ hardState: { term: 12, vote: 0, commit: 0 }, voteFloor: { index: 1, term: 11 } });
      // A term the caller knows beyond the stored one wins; an older one does not lower it.
      await db.dropGroup(SHARD, { term: 9, vote: 0 });
      expect(await db.tombstone(SHARD)).toEqual({ term: 9, vote: 0, lastIndex: 1, lastTerm: 6, removing: false });
      await db.dropGroup(SHARD, { term: 2, vote: 1, lastIndex: 5, lastTerm: 5 });
      expect(await db.tombstone(SHARD)).toEqual({ term: 9, vote: 0, lastIndex: 1, lastTerm: 6, removing: false });
    } finally {
      await db.close();
    }
    expect(await scanKeys(path.join(root, 'db'), groupRange(7))).toEqual([]);
    expect(await scanKeys(path.join(root, 'db'), groupRange(CLUSTER))).toHaveLength(4);
  });

  it('survives a drop cut short by a crash: the next load finishes it', async () => {
    const db = await MemberDb.open(path.join(root, 'db'));
    const batch = new TurnBatch();
    batch.setHardState(SHARD, { term: 7, vote: 3, commit: 4 });
    batch.appendEntries(SHARD, [{ index: 1, term: 7, type: 'normal', data: new Uint8Array([1]) }], 0);
    batch.putState(SHARD, Buffer.from('k'), Buffer.from('v'));
    batch.setApplied(SHARD, 1);
    await db.write(batch, true);
    await db.close();
    // The crash: the removing tombstone is durable, the clear never ran.
    {
      const { ClassicLevel } = await import('classic-level');
      const raw = new ClassicLevel<Buffer, Buffer>(path.join(root, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      await raw.put(tombstoneKey(SHARD), Buffer.from(JSON.stringify({ term: 7, vote: 3, removing: true })));
      await raw.close();
    }
    const reopened = await MemberDb.open(path.join(root, 'db'));
    const loaded = await reopened.loadGroup(SHARD);
    expect(loaded).toMatchObject({ hardState: { term: 8, vote: 0, commit: 0 }, entries: [], applied: 0, stateRecords: [] });
    expect(await reopened.tombstone(SHARD)).toEqual({ term: 7, vote: 3, lastIndex: 0, lastTerm: 0, removing: false });
    await reopened.close();
    expect(await scanKeys(path.join(root, 'db'), groupRange(SHARD))).toEqual([]);
  });
});

describe('removeGroup racing a turn', () => {
  it('waits for the batch in flight and leaves nothing of the group behind; its waiters fail at once', async () => {
    let store!: StallableStore;
    const node = await net.startNode(1, { [CLUSTER]: [1], [SHARD]: [1] }, (db) => (store = new StallableStore(db)));
    await net.put(SHARD, 'first');
    const other = path.join(node.snapshotDir, '0003-0000000000000001.snap');
    fs.mkdirSync(node.snapshotDir, { recursive: true });
    fs.writeFileSync(path.join(node.snapshotDir, '0002-0000000000000009.snap'), 'stale');
    fs.writeFileSync(other, 'another group');

    // The batch in flight when the removal starts holds entry B and commits entry A, whose apply comes
    // after the write: a turn that held the group must not apply (nor write) anything of it afterwards.
    const sm = node.sms.get(SHARD)!;
    const holdsShard = (b: TurnBatch): boolean => b.ops.some((op) => op.key.subarray(0, 5).equals(groupRange(SHARD).gte));
    const proposedA = outcome(sm.whenApplied('in-flight-a'));
    const proposedB = outcome(sm.whenApplied('in-flight-b'));
    let removed = false;
    store.stall();
    try {
      node.member.propose(SHARD, Buffer.from('in-flight-a'));
      await waitFor('the batch holding A in flight', () => store.held.some(holdsShard));
      const first = store.held[0];
      node.member.propose(SHARD, Buffer.from('in-flight-b')); // Raft holds it while the turn waits
      store.release();
      store.stall();
      await waitFor('the batch holding B in flight', () => store.held.some((b) => b !== first && holdsShard(b)));
      const applied = outcome(node.member.waitApplied(SHARD, 1_000, Date.now() + 60_000));
      const read = outcome(node.member.readBarrier(SHARD, Date.now() + 60_000));
      const removal = node.member.removeGroup(SHARD).then(() => (removed = true));
      expect(await proposedA).toBeInstanceOf(GroupRemovedError);
      expect(await proposedB).toBeInstanceOf(GroupRemovedError);
      expect(await applied).toBeInstanceOf(GroupRemovedError);
      expect(await read).toBeInstanceOf(GroupRemovedError);
      await new Promise((r) => setTimeout(r, 100));
      expect(removed).toBe(false); // not while the batch holding the group's keys is unwritten
      store.release();
      await removal;
    } finally {
      store.release();
    }
    expect(sm.records.has('in-flight-a')).toBe(false); // the turn did not apply it after the removal
    expect(fs.existsSync(path.join(node.snapshotDir, '0002-0000000000000009.snap'))).toBe(false);
    expect(fs.existsSync(other)).toBe(true);

    // Messages for it are ignored; the member goes on with its other group (lazy writes included).
    node.member.step([{ groupId: SHARD, message: { ...newMessage('app', 2, 1, 99) } }]);
    for (let i = 0; i < 5; i++) await net.put(CLUSTER, `cluster-${i}`);
    await new Promise((r) => setTimeout(r, 250)); // past the lazy flush
    await net.stopNode(1);
    expect(await scanKeys(node.dbDir, groupRange(SHARD))).toEqual([]);
    expect(await scanKeys(node.dbDir, groupRange(CLUSTER))).not.toEqual([]);
  }, 30_000);

  it('drops the applied state the member held back unwritten (lazy writes)', async () => {
    const node = await net.startNode(1, { [CLUSTER]: [1], [SHARD]: [1] });
    await net.put(SHARD, 'first');
    // Applying 'first' queued its state change and applied index for a later batch; remove at once.
    await node.member.removeGroup(SHARD);
    await new Promise((r) => setTimeout(r, 250));
    await net.stopNode(1);
    expect(await scanKeys(node.dbDir, groupRange(SHARD))).toEqual([]);
  }, 30_000);

  it('refuses to host the group again until its removal is over; a group whose only replica was dropped stays without a leader', async () => {
    const node = await net.startNode(1, { [CLUSTER]: [1], [SHARD]: [1] });
    await net.put(SHARD, 'first');
    const term = node.member.term(SHARD);
    const removal = node.member.removeGroup(SHARD);
    expect(() => node.member.addGroup({ groupId: SHARD, voters: [1], stateMachine: new RecordingStateMachine(), loaded: { hardState: { term: 0, vote: 0, commit: 0 }, entries: [], firstIndex: 1, applied: 0, stateRecords: [] }, randomSeed: 1 })).toThrow(/still being removed/);
    await removal;
    const sm = await net.host(node, SHARD, [1]);
    expect(sm.records.size).toBe(0);
    expect(node.member.term(SHARD)).toBe(term + 1);
    // Its only voter's data is gone: the group's committed entries are lost, and an empty replica
    // behind its predecessor's log must not lead as if they were not (its vote floor keeps it out).
    await new Promise((r) => setTimeout(r, 3 * TICK_MS * ELECTION_TICKS));
    expect(node.member.role(SHARD)).toBe('follower');
    expect(node.member.leaderId(SHARD)).toBe(0);
    // The member itself is fine: its other group goes on.
    await net.put(CLUSTER, 'cluster-still');
  }, 30_000);
});

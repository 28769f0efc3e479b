// A shard leader's proposals lost with its leadership fail at once with etcd's "leader changed"
// (appended-proposals.ts, KvStateMachine.appliedThrough); one applied, or possibly applied inside a
// snapshot, never does.
import { describe, expect, it } from 'vitest';
import type { Entry } from '../raft/types.ts';
import { AppendedProposals, proposalSeqOf, proposerTag } from './appended-proposals.ts';
import { KvStateMachine } from './kv-state-machine.ts';
import { encodeInternalRequest, type InternalRequest } from './request-codec.ts';

const b = (s: string): Buffer => Buffer.from(s);
const put = (key: string, revision: number, seq: string): InternalRequest => ({
  proposer: '1',
  seq,
  put: { key: b(key), value: b('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false },
  revision: String(revision),
});
const at = (index: number, req: InternalRequest, term = 1): Entry => ({ term, index, type: 'normal', data: encodeInternalRequest(req) });
const settled = (p: Promise<unknown>): Promise<unknown> => p.then((v) => ({ ok: v }), (err: { code?: number; details?: string }) => ({ code: err.code, details: err.details }));

describe('AppendedProposals', () => {
  it('hands back the proposals at or below an applied index, in index order, each once', () => {
    const a = new AppendedProposals();
    a.add(10, 'x');
    a.add(12, 'y');
    a.add(7, 'w'); // a later leadership may start lower
    expect(a.takeThrough(6)).toEqual([]);
    expect(a.takeThrough(10)).toEqual(['w', 'x']);
    expect(a.takeThrough(11)).toEqual([]);
    expect(a.size).toBe(1);
    a.clear();
    expect(a.takeThrough(100)).toEqual([]);
    expect(() => a.add(0, 'z')).toThrow(/bad log index/);
  });
});

describe('proposalSeqOf', () => {
  it("reads this proposer's seq from an entry's first bytes, and nothing from another proposer's or a forwarded one's", () => {
    const mine = encodeInternalRequest(put('a', 5, '1796425389666001'));
    expect(proposalSeqOf(mine, proposerTag('1'))).toBe('1796425389666001');
    expect(proposalSeqOf(mine, proposerTag('2'))).toBeNull();
    const bigId = '6509183166912963';
    expect(proposalSeqOf(encodeInternalRequest({ ...put('a', 5, '42'), proposer: bigId }), proposerTag(bigId))).toBe('42');
    expect(proposalSeqOf(encodeInternalRequest({ ...put('a', 5, '0'), proposer: '0' }), proposerTag('0'))).toBeNull();
    // The generic encoder (not the put fast path) puts the same two fields first.
    const compaction: InternalRequest = { proposer: '1', seq: '77', compaction: { revision: '3', physical: false } };
    expect(proposalSeqOf(encodeInternalRequest(compaction), proposerTag('1'))).toBe('77');
  });
});

describe('KvStateMachine: proposals lost with the leadership that appended them', () => {
  it('fails a waiting proposal whose index was applied with another entry, with "leader changed"; answers the one that applied', async () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    const kept = sm.track();
    const lost = sm.track();
    const keptOutcome = settled(kept.outcome);
    const lostOutcome = settled(lost.outcome);
    // Both appended here (as leader, or in the leader's appends), at 5 and 6, in term 1.
    sm.appending([at(5, put('a', 10, kept.seq)), at(6, put('c', 11, lost.seq))]);
    sm.apply(at(5, put('a', 10, kept.seq)));
    // A new leader's entry took index 6 (term 2): the one appended there is gone for good.
    sm.apply(at(6, put('b', 12, '999'), 2));
    sm.appliedThrough(6);
    expect(await keptOutcome).toMatchObject({ ok: { revision: 10 } });
    expect(await lostOutcome).toEqual({ code: 14, details: 'etcdserver: leader changed' });
    expect(sm.proposalsLost).toBe(1);
    expect(sm.pendingCount()).toBe(0);
  });

  it('leaves waiting a proposal not applied past yet, one never seen in the log, and one a snapshot may hold', async () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    const ahead = sm.track();
    const unseen = sm.track(); // forwarded, and never came back in an append here
    sm.appending([at(9, put('a', 10, ahead.seq))]);
    sm.appliedThrough(8);
    expect(sm.pendingCount()).toBe(2);
    sm.appliedThrough(7);
    const inSnapshot = sm.track();
    sm.appending([at(12, put('b', 11, inSnapshot.seq))]);
    sm.restore([]);
    sm.appliedThrough(20);
    // None is called lost: after a restore, each may have been applied inside the snapshot.
    expect(sm.pendingCount()).toBe(3);
    expect(sm.proposalsLost).toBe(0);
    for (const t of [ahead, unseen, inSnapshot]) t.forget();
  });
});

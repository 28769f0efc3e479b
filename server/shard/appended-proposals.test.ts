// A shard leader's proposals lost with its leadership fail at once with etcd's "leader changed"
// (appended-proposals.ts, KvStateMachine.appliedThrough); one applied, or possibly applied inside a
// snapshot, never does.
import { describe, expect, it } from 'vitest';
import type { Entry } from '../raft/types.ts';
import { AppendedProposals } from './appended-proposals.ts';
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

describe('KvStateMachine: proposals lost with the leadership', () => {
  it('fails a proposal whose index was applied with another entry, with "leader changed", and answers the one that applied', async () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    const kept = sm.track();
    const lost = sm.track();
    kept.appendedAt(5);
    lost.appendedAt(6);
    const keptOutcome = settled(kept.outcome);
    const lostOutcome = settled(lost.outcome);
    sm.apply(at(5, put('a', 10, kept.seq)));
    // A new leader's entry took index 6 (term 2): the proposal appended there is gone for good.
    sm.apply(at(6, put('b', 11, '999'), 2));
    sm.appliedThrough(6);
    expect(await keptOutcome).toMatchObject({ ok: { revision: 10 } });
    expect(await lostOutcome).toEqual({ code: 14, details: 'etcdserver: leader changed' });
    expect(sm.proposalsLost).toBe(1);
    expect(sm.pendingCount()).toBe(0);
  });

  it('leaves a proposal waiting while its index is not applied yet, and one a snapshot may hold to its deadline', async () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    const ahead = sm.track();
    ahead.appendedAt(9);
    sm.appliedThrough(8);
    expect(sm.pendingCount()).toBe(1);
    const inSnapshot = sm.track();
    inSnapshot.appendedAt(3);
    sm.restore([]);
    sm.appliedThrough(20);
    // Neither is called lost: after a restore, either may have been applied inside the snapshot.
    expect(sm.pendingCount()).toBe(2);
    expect(sm.proposalsLost).toBe(0);
    ahead.forget();
    inSnapshot.forget();
  });
});

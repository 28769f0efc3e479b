// Proposals fenced to the term they were sent in (proposal-fence.ts): an entry at another term is skipped
// by every replica alike; a waiting proposal is failed as lost once an entry of a later term applies,
// whether or not it ever reached this replica's log; one a snapshot may hold is never called lost.
import { describe, expect, it } from 'vitest';
import type { Entry } from '../raft/types.ts';
import { isProposalLost, isStale, ProposalFence } from './proposal-fence.ts';
import { KvStateMachine } from './kv-state-machine.ts';
import { encodeInternalRequest, type InternalRequest } from './request-codec.ts';
import { rangeOf } from '../mvcc/types.ts';

const b = (s: string): Buffer => Buffer.from(s);
const put = (key: string, seq: string, proposalTerm: number, revision?: number): InternalRequest => ({
  proposer: '1',
  seq,
  put: { key: b(key), value: b('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false },
  ...(revision !== undefined ? { revision: String(revision) } : {}),
  ...(proposalTerm > 0 ? { proposal_term: String(proposalTerm) } : {}),
});
const at = (index: number, req: InternalRequest, term: number): Entry => ({ term, index, type: 'normal', data: encodeInternalRequest(req) });
const settled = (p: Promise<unknown>): Promise<unknown> =>
  p.then(
    (v) => ({ ok: v }),
    (err: { code?: number; details?: string }) => ({ code: err.code, details: err.details, lost: isProposalLost(err) }),
  );
const keys = (sm: KvStateMachine): string[] => sm.store.range(rangeOf(b('a'), b('z'))).kvs.map((kv) => kv.key.toString());

describe('isStale', () => {
  it('skips a fenced entry only at a term other than its own; never an unfenced one', () => {
    expect(isStale(3, 3)).toBe(false);
    expect(isStale(3, 4)).toBe(true);
    expect(isStale(4, 3)).toBe(true);
    expect(isStale(0, 7)).toBe(false);
  });
});

describe('ProposalFence', () => {
  it('hands back the proposals fenced below an applied term, each once', () => {
    const f = new ProposalFence();
    f.note('a', 2);
    f.note('b', 3);
    f.note('c', 5);
    expect(f.takeLostBelow(2)).toEqual([]);
    expect(f.takeLostBelow(3)).toEqual(['a']);
    f.drop('b'); // applied
    expect(f.takeLostBelow(5)).toEqual([]);
    expect(f.takeLostBelow(6)).toEqual(['c']);
    expect(f.size).toBe(0);
    f.note('d', 7);
    f.clear();
    expect(f.takeLostBelow(100)).toEqual([]);
    expect(() => f.note('z', 0)).toThrow(/bad fence term/);
  });
});

describe('KvStateMachine: fenced proposals', () => {
  it('skips an entry appended at a term other than its fence on every replica, and fails its proposer as lost', async () => {
    const proposer = new KvStateMachine(1, [], []);
    const other = new KvStateMachine(2, [], []);
    const w = proposer.track(3);
    const outcome = settled(w.outcome);
    // Sent in term 3; a later leader (term 4) appended it after all.
    const stale = at(5, put('lost', w.seq, 3), 4);
    const fresh = at(6, put('kept', '77', 4), 4);
    for (const sm of [proposer, other]) {
      sm.apply(stale);
      sm.apply(fresh);
    }
    expect(await outcome).toEqual({ code: 14, details: 'etcdserver: leader changed', lost: true });
    for (const sm of [proposer, other]) {
      expect(keys(sm)).toEqual(['kept']);
      expect(sm.staleProposalsSkipped).toBe(1);
      expect(sm.store.currentRevision()).toBe(2); // the skipped entry took no revision (one group: revisions at apply)
    }
    expect(proposer.proposalsLost).toBe(1);
  });

  it('on a shard, a skipped entry is a gap at its revision', () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    sm.apply(at(5, put('lost', '9', 3, 10), 4));
    expect(sm.appliedRevision()).toBe(10);
    sm.apply(at(6, put('kept', '10', 4, 11), 4));
    expect(keys(sm)).toEqual(['kept']);
    expect(sm.store.range(rangeOf(b('kept'))).kvs[0].modRevision).toBe(11);
  });

  it('fails a proposal that never reached this log once an entry of a later term applies; answers those that applied', async () => {
    const sm = new KvStateMachine(1, [], []);
    const applied = sm.track(3);
    const forwardedAndGone = sm.track(3); // forwarded to a leader that died before sending it anywhere
    const current = sm.track(4);
    const outcomes = [applied, forwardedAndGone, current].map((t) => settled(t.outcome));
    sm.apply(at(5, put('a', applied.seq, 3), 3));
    sm.appliedThrough(5, 3);
    expect(sm.pendingCount()).toBe(2);
    // The next leader's first entry (empty: not applied by the state machine, but told through appliedThrough).
    sm.appliedThrough(6, 4);
    expect(await outcomes[0]).toMatchObject({ ok: { revision: 2 } });
    expect(await outcomes[1]).toEqual({ code: 14, details: 'etcdserver: leader changed', lost: true });
    expect(sm.pendingCount()).toBe(1); // fenced to term 4: may still apply
    sm.apply(at(7, put('c', current.seq, 4), 4));
    expect(await outcomes[2]).toMatchObject({ ok: { revision: 3 } });
    expect(sm.proposalsLost).toBe(1);
  });

  it('never calls lost a proposal a snapshot may hold, one given up, or an unfenced one', () => {
    const sm = new KvStateMachine(1, [], []);
    const inSnapshot = sm.track(3);
    const unfenced = sm.track();
    const givenUp = sm.track(3);
    givenUp.forget();
    sm.restore([]);
    sm.appliedThrough(20, 9);
    expect(sm.pendingCount()).toBe(2);
    expect(sm.proposalsLost).toBe(0);
    inSnapshot.forget();
    unfenced.forget();
  });
});

// A cross-shard transaction as one shard replica applies it (docs/transactions.md): the prepare
// (txn_intent, stamped at its own revision P) checks its compares, answers with its share's responses
// and changes nothing visible; commit runs the share at exactly the transaction's C (the primary keeps its
// decision until told to forget); abort leaves P a gap; a recoverer's txn_recover is a compare-and-set
// against the commit and fences a prepare that arrives late; the table survives a restart; and the
// entries' bytes are pinned.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Entry } from '../raft/types.ts';
import { rangeOf, type TxnResult } from '../mvcc/types.ts';
import { KvStateMachine } from '../shard/kv-state-machine.ts';
import { persistedRecords } from '../shard/test-helpers.ts';
import { decodeInternalRequest, encodeInternalRequest, type InternalRequest, type TxnIntentWire } from '../shard/request-codec.ts';
import type { TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';

const b = (s: string): Buffer => Buffer.from(s);
let index = 0;
const entry = (req: InternalRequest): Entry => ({ term: 1, index: ++index, type: 'normal', data: encodeInternalRequest(req) });
const putOp = (key: string, value: string, prevKv = false): WireRequestOp => ({ request_put: { key: b(key), value: b(value), lease: '0', prev_kv: prevKv, ignore_value: false, ignore_lease: false } });
const put = (key: string, value: string, revision: number): InternalRequest => ({ proposer: '1', seq: '0', put: { key: b(key), value: b(value), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false }, revision: String(revision) });

function intent(txnId: string, revision: number, ops: WireRequestOp[], seq = '0', opts: { primary?: number; refused?: boolean; compare?: TxnRequest['compare']; expected?: Array<{ index: number; any: boolean; ok: boolean }> } = {}): InternalRequest {
  return {
    proposer: '1',
    seq,
    txn_intent: {
      txn_id: txnId,
      primary_group: String(opts.primary ?? 3),
      participant_groups: ['3', '4'],
      ops: { compare: opts.compare ?? [], success: ops, failure: [] },
      deadline_unix_ms: '1000',
      ...(opts.expected ? { expected: opts.expected } : {}),
      ...(opts.refused ? { refused: true } : {}),
    },
    ...(opts.refused ? {} : { revision: String(revision) }),
  };
}
const commit = (txnId: string, revision: number, seq = '0'): InternalRequest => ({ proposer: '1', seq, txn_resolve: { txn_id: txnId, commit: true, revision: String(revision) } });
const abort = (txnId: string, seq = '0'): InternalRequest => ({ proposer: '1', seq, txn_resolve: { txn_id: txnId, commit: false } });
const forget = (txnId: string): InternalRequest => ({ proposer: '1', seq: '0', txn_resolve: { txn_id: txnId, commit: true, forget: true } });
const recover = (txnId: string, seq = '0'): InternalRequest => ({ proposer: '1', seq, txn_recover: { txn_id: txnId, abort_pending: true } });

function value(sm: KvStateMachine, key: string): { value: string; mod: number } | null {
  const r = sm.store.range(rangeOf(b(key), b('')), sm.appliedRevision());
  return r.kvs.length === 0 ? null : { value: r.kvs[0].value.toString(), mod: r.kvs[0].modRevision };
}

function shard(groupId = 3): KvStateMachine {
  return new KvStateMachine(1, [], [], { sharded: true, groupId });
}

describe('a cross-shard transaction on one shard replica', () => {
  it('prepare at P answers with the share and changes nothing readable; commit applies it at C with its events', async () => {
    const sm = shard();
    sm.apply(entry(put('a', 'old', 5)));
    const t = sm.track();
    sm.apply(entry(intent('x1', 9, [putOp('a', 'new', true), putOp('b', 'new')], t.seq)));
    const prepared = await t.outcome;
    expect(prepared.revision).toBe(9);
    expect(prepared.result).toMatchObject({ responses: [{ type: 'put', put: { prevKv: { value: b('old') } } }, { type: 'put' }] });
    expect(value(sm, 'a')).toEqual({ value: 'old', mod: 5 });
    expect(value(sm, 'b')).toBeNull();
    expect(sm.txns.preparedCount()).toBe(1);
    expect(sm.appliedRevision()).toBe(9); // P is used up here
    expect(sm.readableRevision()).toBe(8); // reads answer just below it
    let settled = false;
    const wait = sm.txnsSettledThrough(Infinity, Date.now() + 5_000, () => new Error('timeout')).then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    const events: number[] = [];
    sm.revisionListener = (r) => events.push(r);
    const c = sm.track();
    sm.apply(entry(commit('x1', 12, c.seq)));
    expect((await c.outcome).revision).toBe(12);
    await wait;
    expect(events).toEqual([12]); // the write path raises its floor to C
    expect(value(sm, 'a')).toEqual({ value: 'new', mod: 12 });
    expect(value(sm, 'b')).toEqual({ value: 'new', mod: 12 });
    expect(sm.readableRevision()).toBe(12);
    expect(sm.txns.preparedCount()).toBe(0);
    // Group 3 is the primary: it keeps the decision for recoverers until told to forget.
    expect(sm.txns.decisionOf('x1')).toEqual({ txnId: 'x1', state: 'committed', revision: 12, participantGroups: [3, 4] });
    const again = sm.track();
    sm.apply(entry(recover('x1', again.seq)));
    const answer = await again.outcome;
    expect(answer.revision).toBe(12);
    expect(answer.result).toEqual({ state: 'committed', failureBranch: false });
    sm.apply(entry(forget('x1')));
    expect(sm.txns.decisionOf('x1')).toBeNull();
  });

  it('commits at its own prepare revision (the highest participant\'s); below it is a broken invariant', () => {
    const below = shard(4);
    below.apply(entry(intent('x0', 9, [putOp('a', '1')])));
    expect(() => below.apply(entry(commit('x0', 8)))).toThrow(/invariant: txn x0 commits at revision 8/);
    const own = shard(4);
    own.apply(entry(intent('x0', 9, [putOp('a', '1')])));
    own.apply(entry(commit('x0', 9)));
    expect(own.appliedRevision()).toBe(9);
    expect(own.store.range({ ...rangeOf(Buffer.from('a')), revision: 0 }, 9).kvs.map((kv) => [kv.value.toString(), kv.modRevision])).toEqual([['1', 9]]);
  });

  it('every participant keeps the commit; a later resolve carries the forgets of finished ones; a fence answers revision 0', async () => {
    const sm = shard(4); // not the first participant: it records the commit all the same
    sm.apply(entry(intent('f1', 9, [putOp('a', '1')])));
    sm.apply(entry(commit('f1', 10)));
    // The record names the participants: a leader can finish the transaction if its coordinator vanishes.
    expect(sm.txns.decisionOf('f1')).toEqual({ txnId: 'f1', state: 'committed', revision: 10, participantGroups: [3, 4] });
    expect(sm.txns.committedTxns().map((d) => d.txnId)).toEqual(['f1']);
    expect(new KvStateMachine(1, persistedRecords(sm), [], { sharded: true, groupId: 4 }).txns.decisionOf('f1')).toEqual(sm.txns.decisionOf('f1'));
    // A finisher's resolve again changes nothing (committed already).
    sm.apply(entry(commit('f1', 10)));
    expect(value(sm, 'a')).toEqual({ value: '1', mod: 10 });
    sm.apply(entry(intent('f2', 12, [putOp('b', '1')])));
    const asked = sm.track();
    sm.apply(entry({ ...recover('f2', asked.seq), txn_recover: { txn_id: 'f2', abort_pending: false } }));
    expect(await asked.outcome).toEqual({ revision: 12, result: { state: 'prepared', failureBranch: false } }); // prepared: its P
    sm.apply(entry({ proposer: '1', seq: '0', txn_resolve: { txn_id: 'f2', commit: true, revision: '12', forget_txn_ids: ['f1'] } }));
    expect(sm.txns.decisionOf('f1')).toBeNull();
    // Forgotten: a finisher's resolve is answered "not prepared" (for a committed transaction: resolved).
    const late = sm.track();
    sm.apply(entry(commit('f1', 10, late.seq)));
    await expect(late.outcome).rejects.toMatchObject({ code: 10, details: 'synod: transaction is not prepared on this shard (it was aborted)' });
    expect(sm.txns.decisionOf('f2')).toMatchObject({ state: 'committed', revision: 12 });
    const fenced = sm.track();
    sm.apply(entry({ ...recover('f3', fenced.seq), txn_recover: { txn_id: 'f3', abort_pending: false } }));
    const answer = await fenced.outcome;
    expect([answer.revision, answer.result]).toEqual([0, { state: 'aborted', failureBranch: false }]);
    expect(sm.txns.decisionOf('f3')).toMatchObject({ state: 'aborted' });
  });

  it('abort leaves P a gap; a later write is above it', async () => {
    const sm = shard(4);
    sm.apply(entry(intent('x2', 7, [putOp('k', 'v')])));
    sm.apply(entry(abort('x2')));
    expect(value(sm, 'k')).toBeNull();
    expect(sm.appliedRevision()).toBe(7);
    expect(() => sm.apply(entry(put('k', 'w', 7)))).toThrow(/not above/);
    sm.apply(entry(put('k', 'w', 8)));
    expect(value(sm, 'k')).toEqual({ value: 'w', mod: 8 });
  });

  it('a recoverer and the decision race as a compare-and-set; a prepare arriving after the recoverer is refused', async () => {
    const sm = shard(3);
    sm.apply(entry(intent('x3', 4, [putOp('p', '1')])));
    const r = sm.track();
    sm.apply(entry(recover('x3', r.seq)));
    expect((await r.outcome).result).toEqual({ state: 'aborted', failureBranch: false });
    const late = sm.track();
    sm.apply(entry(commit('x3', 6, late.seq)));
    await expect(late.outcome).rejects.toMatchObject({ code: 10, details: expect.stringContaining('not prepared') });
    expect(value(sm, 'p')).toBeNull();
    // Never prepared here at all: recorded aborted, and its prepare, arriving late, is refused.
    const none = sm.track();
    sm.apply(entry(recover('x4', none.seq)));
    expect((await none.outcome).result).toEqual({ state: 'aborted', failureBranch: false });
    const lateIntent = sm.track();
    sm.apply(entry(intent('x4', 12, [putOp('q', '1')], lateIntent.seq)));
    await expect(lateIntent.outcome).rejects.toMatchObject({ code: 10 });
    expect(sm.txns.preparedCount()).toBe(0);
  });

  it('a prepare whose compares evaluate otherwise than when the branch was chosen is refused', async () => {
    const sm = shard();
    sm.apply(entry(put('c', 'seen', 3)));
    const compare = [{ result: 'EQUAL', target: 'VALUE', key: b('c'), value: b('seen'), target_union: 'value', range_end: b('') }] as unknown as TxnRequest['compare'];
    const ok = sm.track();
    sm.apply(entry(intent('x10', 5, [putOp('d', '1')], ok.seq, { compare, expected: [{ index: 0, any: true, ok: true }] })));
    await expect(ok.outcome).resolves.toMatchObject({ revision: 5 });
    sm.apply(entry(abort('x10')));
    sm.apply(entry(put('c', 'changed', 6)));
    const stale = sm.track();
    sm.apply(entry(intent('x11', 8, [putOp('d', '1')], stale.seq, { compare, expected: [{ index: 0, any: true, ok: true }] })));
    await expect(stale.outcome).rejects.toMatchObject({ code: 10, details: expect.stringContaining('compares changed') });
    expect(sm.txns.preparedCount()).toBe(0);
  });

  it('a prepare that decides the branch: its compares evaluated here, both shares dry-run; the resolution names the branch', async () => {
    const decide = (txnId: string, revision: number, seq: string, compare: TxnRequest['compare'], success: WireRequestOp[], failure: WireRequestOp[]): InternalRequest => {
      const base = intent(txnId, revision, success, seq, { compare });
      const i = (base as { txn_intent: TxnIntentWire }).txn_intent;
      return { ...base, txn_intent: { ...i, ops: { ...i.ops, failure }, decide_here: true } } as InternalRequest;
    };
    const sm = shard(4);
    sm.apply(entry(put('c', 'seen', 3)));
    const held = [{ result: 'EQUAL', target: 'VALUE', key: b('c'), value: b('seen'), target_union: 'value', range_end: b('') }] as unknown as TxnRequest['compare'];
    const failing = [{ result: 'EQUAL', target: 'VALUE', key: b('c'), value: b('other'), target_union: 'value', range_end: b('') }] as unknown as TxnRequest['compare'];
    const rangeC: WireRequestOp = { request_range: { key: b('c') } } as WireRequestOp;

    // Compares that hold: succeeded, the success share's responses first, then the failure share's.
    const t1 = sm.track();
    sm.apply(entry(decide('d1', 5, t1.seq, held, [putOp('s', '1', true)], [rangeC, putOp('f', '1')])));
    const p1 = await t1.outcome;
    expect(p1.revision).toBe(5);
    expect((p1.result as TxnResult).succeeded).toBe(true);
    expect((p1.result as TxnResult).responses.map((r) => r.type)).toEqual(['put', 'range', 'put']);
    expect(sm.txns.getPrepared('d1')).toMatchObject({ decideHere: true, comparesHeld: true });
    // What a recoverer hears while it is prepared: P, and that its compares held here.
    const asked = sm.track();
    sm.apply(entry({ proposer: '1', seq: asked.seq, txn_recover: { txn_id: 'd1', abort_pending: false } }));
    expect(await asked.outcome).toEqual({ revision: 5, result: { state: 'prepared', failureBranch: false } });
    // Another participant's compare failed: the coordinator commits the failure branch everywhere.
    sm.apply(entry({ proposer: '1', seq: '0', txn_resolve: { txn_id: 'd1', commit: true, revision: '7', failure_branch: true } }));
    expect(value(sm, 'f')).toEqual({ value: '1', mod: 7 });
    expect(value(sm, 's')).toBeNull();
    expect(sm.txns.decisionOf('d1')).toMatchObject({ state: 'committed', revision: 7, failureBranch: true });
    const later = sm.track();
    sm.apply(entry({ proposer: '1', seq: later.seq, txn_recover: { txn_id: 'd1', abort_pending: false } }));
    expect(await later.outcome).toEqual({ revision: 7, result: { state: 'committed', failureBranch: true } });
    expect(new KvStateMachine(1, persistedRecords(sm), [], { sharded: true, groupId: 4 }).txns.decisionOf('d1')).toEqual(sm.txns.decisionOf('d1'));

    // A compare failing here: not succeeded; the prepared record (kept over a restart) says so.
    const t2 = sm.track();
    sm.apply(entry(decide('d2', 9, t2.seq, failing, [putOp('s', '2')], [putOp('f', '2')])));
    expect(((await t2.outcome).result as TxnResult).succeeded).toBe(false);
    const restarted = new KvStateMachine(1, persistedRecords(sm), [], { sharded: true, groupId: 4 });
    expect(restarted.txns.getPrepared('d2')).toMatchObject({ decideHere: true, comparesHeld: false, ops: { compare: [{ key: b('c') }], failure: [{ request_put: { key: b('f') } }] } });
    const asked2 = sm.track();
    sm.apply(entry({ proposer: '1', seq: asked2.seq, txn_recover: { txn_id: 'd2', abort_pending: false } }));
    expect(await asked2.outcome).toEqual({ revision: 9, result: { state: 'prepared', failureBranch: true } });
    // Its success branch here would break atomicity: a broken invariant, loudly.
    expect(() => sm.apply(entry(commit('d2', 9)))).toThrow(/invariant: txn d2 commits its success branch on a shard whose compares did not hold/);
    sm.apply(entry({ proposer: '1', seq: '0', txn_resolve: { txn_id: 'd2', commit: true, revision: '9', failure_branch: true } }));
    expect(value(sm, 'f')).toEqual({ value: '2', mod: 9 });

    // A failure branch for a prepare that did not decide the branch is a broken invariant too.
    sm.apply(entry(intent('d3', 11, [putOp('s', '3')])));
    expect(() => sm.apply(entry({ proposer: '1', seq: '0', txn_resolve: { txn_id: 'd3', commit: true, revision: '11', failure_branch: true } }))).toThrow(/invariant: txn d3 commits its failure branch/);
  });

  it("a share's ops keep their places in the whole transaction over a restart; the commit's events carry them, on either branch", () => {
    const positioned = (txnId: string, revision: number, success: WireRequestOp[], failure: WireRequestOp[], positions: Pick<TxnIntentWire, 'success_positions' | 'failure_positions'>): InternalRequest => {
      const base = intent(txnId, revision, success);
      const i = (base as { txn_intent: TxnIntentWire }).txn_intent;
      return { ...base, txn_intent: { ...i, ops: { ...i.ops, failure }, decide_here: true, ...positions } } as InternalRequest;
    };
    const eventsAt = (sm: KvStateMachine, revision: number): string[] =>
      sm.store.eventsSince(b(''), Buffer.from([0]), revision).map((e) => `${e.kv.key.toString()}@${e.txnOpIndex ?? '-'}`);
    const sm = shard(4);
    sm.apply(entry(put('d1', 'x', 2)));
    sm.apply(entry(put('d2', 'x', 3)));
    // Ops 1, 3 and 4 of the transaction are this shard's on success; ops 0 and 2 on failure.
    sm.apply(entry(positioned('p1', 5, [putOp('z', '1'), { request_delete_range: { key: b('d'), range_end: b('e') } } as WireRequestOp, putOp('a', '1')], [putOp('f', '1'), putOp('g', '1')], { success_positions: [1, 3, 4], failure_positions: [0, 2] })));
    const restarted = new KvStateMachine(1, persistedRecords(sm), [], { sharded: true, groupId: 4 });
    expect(restarted.txns.getPrepared('p1')).toMatchObject({ successPositions: [1, 3, 4], failurePositions: [0, 2] });
    for (const replica of [sm, restarted]) replica.apply(entry(commit('p1', 8)));
    for (const replica of [sm, restarted]) expect(eventsAt(replica, 8)).toEqual(['z@1', 'd1@3', 'd2@3', 'a@4']);
    // The failure branch takes its own share's places.
    sm.apply(entry(positioned('p2', 9, [putOp('s', '2')], [putOp('g', '2'), putOp('f', '2')], { success_positions: [0], failure_positions: [1, 5] })));
    sm.apply(entry({ proposer: '1', seq: '0', txn_resolve: { txn_id: 'p2', commit: true, revision: '10', failure_branch: true } }));
    expect(eventsAt(sm, 10)).toEqual(['g@1', 'f@5']);
    // Places that cannot be a share's (not one per op, not increasing) leave it plain, on every replica alike.
    sm.apply(entry(positioned('p3', 11, [putOp('s', '3'), putOp('t', '3')], [], { success_positions: [4, 2] })));
    expect(sm.txns.getPrepared('p3')?.successPositions).toBeUndefined();
    sm.apply(entry(commit('p3', 11)));
    expect(eventsAt(sm, 11)).toEqual(['s@-', 't@-']);
  });

  it('a refused prepare fails its proposer and changes nothing; a second prepare on keys a prepared one touches is refused', async () => {
    const sm = shard();
    const t = sm.track();
    sm.apply(entry(intent('x5', 3, [putOp('a', '1')], t.seq, { refused: true })));
    await expect(t.outcome).rejects.toMatchObject({ code: 10, details: expect.stringContaining('another transaction') });
    expect(sm.txns.preparedCount()).toBe(0);
    sm.apply(entry(intent('x6', 5, [putOp('a', '1')])));
    // Its put meets x6's; a compare on x6's key (a read) meets it too; a range over it as well.
    for (const [id, at, ops, compareKey] of [
      ['x7', 6, [putOp('a', '2')], null],
      ['x8', 7, [putOp('b', '1')], 'a'],
      ['x9', 8, [{ request_range: { key: b('0'), range_end: b('z'), limit: '0', revision: '0', sort_order: 'NONE', sort_target: 'KEY', serializable: false, keys_only: false, count_only: false, min_mod_revision: '0', max_mod_revision: '0', min_create_revision: '0', max_create_revision: '0' } }], null],
    ] as const) {
      const refused = sm.track();
      const compare: TxnRequest['compare'] = compareKey === null ? [] : [{ result: 'EQUAL', target: 'MOD', key: b(compareKey), range_end: b(''), target_union: 'mod_revision', mod_revision: '0' }];
      sm.apply(entry(intent(id, at, [...ops], refused.seq, { compare, expected: compare.map((_, index) => ({ index, any: false, ok: true })) })));
      await expect(refused.outcome).rejects.toMatchObject({ code: 10, details: expect.stringContaining('another transaction') });
    }
    expect(sm.txns.preparedTxns().map((p) => p.txnId)).toEqual(['x6']);
  });

  it('transactions on disjoint keys prepare at once; their shares are made in C order, each once nothing undecided is prepared below its C', async () => {
    const sm = shard();
    sm.apply(entry(put('a', 'old', 2)));
    sm.apply(entry(intent('t1', 5, [putOp('a', 't1', true)])));
    sm.apply(entry(intent('t2', 8, [putOp('b', 't2')])));
    sm.apply(entry(intent('t3', 11, [putOp('c', 't3')])));
    expect(sm.txns.preparedCount()).toBe(3);
    expect(sm.readableRevision()).toBe(4);
    const floor: number[] = [];
    sm.revisionListener = (r) => floor.push(r);
    // t2 commits at 14 first: t1 (prepared at 5) and t3 (at 11) are undecided and may commit below 14.
    const c2 = sm.track();
    sm.apply(entry(commit('t2', 14, c2.seq)));
    expect((await c2.outcome).revision).toBe(14);
    expect(value(sm, 'b')).toBeNull();
    expect(sm.txns.committedNotMade('t2')).toBe(true);
    expect(sm.txns.decisionOf('t2')).toMatchObject({ state: 'committed', revision: 14 });
    // A second resolve of it, a forget, and a recoverer's abort change nothing: it is committed.
    sm.apply(entry(commit('t2', 14)));
    sm.apply(entry(forget('t2')));
    sm.apply(entry(recover('t2')));
    expect(sm.txns.committedNotMade('t2')).toBe(true);
    // A restart here keeps it: committed, not made.
    const restarted = new KvStateMachine(1, persistedRecords(sm), [], { sharded: true, groupId: 3 });
    expect(restarted.txns.committedNotMade('t2')).toBe(true);
    // t1 commits at 6, below t3's P: t1 is made at 6; t2 still waits for t3.
    sm.apply(entry(commit('t1', 6)));
    restarted.apply(entry(commit('t1', 6)));
    for (const r of [sm, restarted]) {
      expect(value(r, 'a')).toEqual({ value: 't1', mod: 6 });
      expect(value(r, 'b')).toBeNull();
      expect(r.readableRevision()).toBe(7); // just below t2's P: its share is not made
    }
    // t3 aborts: t2 is made at 14.
    sm.apply(entry(abort('t3')));
    restarted.apply(entry(abort('t3')));
    for (const r of [sm, restarted]) {
      expect(value(r, 'b')).toEqual({ value: 't2', mod: 14 });
      expect(value(r, 'c')).toBeNull();
      expect(r.txns.preparedCount()).toBe(0);
      expect(r.readableRevision()).toBe(14);
    }
    expect(floor).toEqual([14, 6]);
    // The store's history (what watches replay) is in revision order.
    expect(sm.store.eventsSince(b(''), Buffer.from([0]), 1).map((e) => `${e.kv.key.toString()}@${e.kv.modRevision}`)).toEqual(['a@2', 'a@6', 'b@14']);
    // Forgotten once made.
    sm.apply(entry(forget('t2')));
    expect(sm.txns.decisionOf('t2')).toBeNull();
  });

  it('shares decided out of C order are made lowest C first; a commit below another write is a broken invariant', () => {
    const sm = shard();
    sm.apply(entry(intent('u1', 5, [putOp('a', 'u1')])));
    sm.apply(entry(intent('u2', 7, [putOp('b', 'u2')])));
    sm.apply(entry(commit('u2', 20)));
    sm.apply(entry(commit('u1', 9)));
    expect(value(sm, 'a')).toEqual({ value: 'u1', mod: 9 });
    expect(value(sm, 'b')).toEqual({ value: 'u2', mod: 20 });
    expect(sm.store.currentRevision()).toBe(20);
    sm.apply(entry(put('z', '1', 21)));
    sm.apply(entry(intent('u3', 22, [putOp('c', 'u3')])));
    expect(() => sm.apply(entry(commit('u3', 20)))).toThrow(/invariant: txn u3 commits at revision 20, not above the shard's other writes/);
  });

  it('an ordinary write beside an undecided transaction is deferred: answered at once when nothing before it touches its keys, made at its revision once every transaction below it is decided, over a restart', async () => {
    const sm = shard();
    sm.apply(entry(put('a', 'old', 2)));
    sm.apply(entry(put('z', 'z0', 3)));
    sm.apply(entry(intent('d1', 5, [putOp('a', 'd1')])));
    const w1 = sm.track();
    sm.apply(entry({ ...put('z', 'w1', 7), seq: w1.seq }));
    const w2 = sm.track();
    sm.apply(entry({ ...put('y', 'w2', 9), seq: w2.seq }));
    // A second write to z: its outcome (prev_kv) depends on w1, not made yet, so it is answered once made.
    const w3 = sm.track();
    sm.apply(entry({ ...put('z', 'w3', 10), put: { ...putOp('z', 'w3', true).request_put!, prev_kv: true }, seq: w3.seq }));
    expect(sm.txns.deferredRevisions()).toEqual([7, 9, 10]);
    expect([sm.writesDeferred, sm.writesAnsweredEarly]).toEqual([3, 2]);
    // w1 and w2 are answered now, as writes on those keys alone; nothing is readable yet.
    expect(await w1.outcome).toEqual({ revision: 7, result: { prevKv: null } });
    expect((await w2.outcome).revision).toBe(9);
    let w3Answered = false;
    void w3.outcome.then(() => (w3Answered = true));
    await Promise.resolve();
    expect(w3Answered).toBe(false);
    expect(value(sm, 'z')).toEqual({ value: 'z0', mod: 3 });
    expect(sm.appliedRevision()).toBe(10); // their revisions are used up here
    expect(sm.readableRevision()).toBe(4); // reads answer below d1, so below the deferred writes too
    // A prepare meeting a deferred write would not see it: refused. One on other keys is laid.
    const refused = sm.track();
    sm.apply(entry(intent('d2', 11, [putOp('z', 'd2')], refused.seq)));
    await expect(refused.outcome).rejects.toMatchObject({ code: 10 });
    const ranging = sm.track();
    sm.apply(entry(intent('d2', 12, [{ request_range: { key: b('x'), range_end: b('zz') } } as WireRequestOp], ranging.seq)));
    await expect(ranging.outcome).rejects.toMatchObject({ code: 10 });
    sm.apply(entry(intent('d3', 13, [putOp('b', 'd3')])));
    // A restart keeps them, with their revisions.
    const restarted = new KvStateMachine(1, persistedRecords(sm), [], { sharded: true, groupId: 3 });
    expect(restarted.txns.deferredRevisions()).toEqual([7, 9, 10]);
    // d1 commits at 8 (another participant's P): z@7, a@8, y@9 and z@10 are made, in revision order; d3,
    // above them, is still undecided. w3 is answered now, with w1's value as its previous one.
    sm.apply(entry(commit('d1', 8)));
    restarted.apply(entry(commit('d1', 8)));
    expect(await w3.outcome).toMatchObject({ revision: 10, result: { prevKv: { value: b('w1'), modRevision: 7 } } });
    for (const r of [sm, restarted]) {
      expect(value(r, 'z')).toEqual({ value: 'w3', mod: 10 });
      expect(value(r, 'a')).toEqual({ value: 'd1', mod: 8 });
      expect(value(r, 'y')).toEqual({ value: 'w2', mod: 9 });
      expect(r.txns.deferredCount()).toBe(0);
      expect(r.readableRevision()).toBe(12); // below d3
      expect(r.store.eventsSince(b(''), Buffer.from([0]), 1).map((e) => `${e.kv.key.toString()}@${e.kv.modRevision}`)).toEqual(['a@2', 'z@3', 'z@7', 'a@8', 'y@9', 'z@10']);
    }
    // Made writes leave no record behind.
    expect(new KvStateMachine(1, persistedRecords(sm), [], { sharded: true, groupId: 3 }).txns.deferredCount()).toBe(0);
  });

  it('a deferred write answered at once is refused at once where it will be refused when made', async () => {
    const sm = shard();
    sm.apply(entry(intent('r1', 5, [putOp('a', 'r1')])));
    const t = sm.track();
    // ignore_value on a missing key: etcd's "key not found", now and when made.
    sm.apply(entry({ ...put('missing', '', 6), put: { ...putOp('missing', '').request_put!, ignore_value: true }, seq: t.seq }));
    await expect(t.outcome).rejects.toThrow(/key not found/);
    sm.apply(entry(commit('r1', 7)));
    expect(value(sm, 'missing')).toBeNull();
    expect(sm.txns.deferredCount()).toBe(0);
  });

  it('a write deferred on a committed share\'s keys is made after it; one meeting an undecided share, or one writing every key, is a broken invariant', () => {
    const sm = shard();
    sm.apply(entry(intent('e1', 5, [putOp('a', 'e1')])));
    sm.apply(entry(intent('e2', 7, [putOp('b', 'e2')])));
    sm.apply(entry(commit('e2', 9))); // committed, not made: e1 is undecided below it
    sm.apply(entry(put('b', 'later', 11))); // its leader proposes it behind e2's resolution, above C
    expect(sm.txns.deferredRevisions()).toEqual([11]);
    sm.apply(entry(commit('e1', 10)));
    expect(sm.store.eventsSince(b(''), Buffer.from([0]), 1).map((e) => `${e.kv.key.toString()}=${e.kv.value.toString()}@${e.kv.modRevision}`)).toEqual(['b=e2@9', 'a=e1@10', 'b=later@11']);
    const meets = shard();
    meets.apply(entry(intent('e3', 5, [putOp('a', 'e3')])));
    expect(() => meets.apply(entry(put('a', 'x', 6)))).toThrow(/invariant: write at revision 6 \(entry \d+\) meets transaction e3/);
    const sweeps = shard();
    sweeps.apply(entry(intent('e4', 5, [putOp('a', 'e4')])));
    const sweep: InternalRequest = { proposer: '1', seq: '0', lease_sweep: { ID: '9', generation: '3', revoked_at: '0', horizon: '0' }, revision: '6' };
    expect(() => sweeps.apply(entry(sweep))).toThrow(/invariant: entry \d+ at revision 6 cannot be deferred \(a lease sweep, or a txn reading a past revision\)/);
    // A txn reading a past revision: a compaction applied before it is made could refuse it then.
    const past = shard();
    past.apply(entry(put('b', '1', 2)));
    past.apply(entry(intent('e5', 5, [putOp('a', 'e5')])));
    const atTwo = { request_range: { key: b('b'), range_end: b(''), revision: '2' } } as WireRequestOp;
    const reading: InternalRequest = { proposer: '1', seq: '0', txn: { compare: [], success: [atTwo, putOp('c', '1')], failure: [] }, revision: '6' };
    expect(() => past.apply(entry(reading))).toThrow(/invariant: entry \d+ at revision 6 cannot be deferred/);
  });

  it('a prepare whose share the store refuses is refused, and nothing is laid', async () => {
    const sm = shard();
    const t = sm.track();
    // ignore_value on a missing key: etcd's "key not found", as the txn it is part of would be refused.
    sm.apply(entry(intent('x8', 5, [{ request_put: { key: b('missing'), value: b(''), lease: '0', prev_kv: false, ignore_value: true, ignore_lease: false } }], t.seq)));
    await expect(t.outcome).rejects.toThrow(/key not found/);
    expect(sm.txns.preparedCount()).toBe(0);
    expect(sm.appliedRevision()).toBe(5);
  });

  it('the fence horizon drops the fences of older transactions and refuses their prepares; committed records stay', async () => {
    const sm = shard(4);
    const recoverAt = (txnId: string, priority: number): InternalRequest => ({ proposer: '1', seq: '0', txn_recover: { txn_id: txnId, abort_pending: false, priority: String(priority) } });
    sm.apply(entry(recoverAt('old', 1_000)));
    sm.apply(entry(recoverAt('young', 5_000)));
    sm.apply(entry(intent('kept', 9, [putOp('a', '1')])));
    sm.apply(entry(commit('kept', 10)));
    expect([sm.txns.decidedCount('aborted'), sm.txns.decidedCount('committed')]).toEqual([2, 1]);
    const horizon = (ms: number): InternalRequest => ({ proposer: '1', seq: '0', txn_resolve: { txn_id: '', commit: false, forget: true, fence_horizon_unix_ms: String(ms) } });
    sm.apply(entry(horizon(2_000)));
    expect(sm.txns.decisionOf('old')).toBeNull();
    expect(sm.txns.decisionOf('young')).toMatchObject({ state: 'aborted', priority: 5_000 });
    expect(sm.txns.decisionOf('kept')).toMatchObject({ state: 'committed' });
    // A late prepare of the old transaction: refused by the horizon now that its fence is gone.
    const late = sm.track();
    sm.apply(entry({ ...intent('old', 12, [putOp('b', '1')], late.seq), txn_intent: { ...(intent('old', 12, [putOp('b', '1')]) as { txn_intent: object }).txn_intent, priority: '1000' } } as InternalRequest));
    await expect(late.outcome).rejects.toMatchObject({ code: 10, details: expect.stringContaining('older than this shard\'s fence horizon') });
    expect(sm.txns.preparedCount()).toBe(0);
    // A younger one prepares; a horizon never moves back; a fence below the horizon is not even laid.
    sm.apply(entry({ ...intent('new', 13, [putOp('c', '1')]), txn_intent: { ...(intent('new', 13, [putOp('c', '1')]) as { txn_intent: object }).txn_intent, priority: '6000' } } as InternalRequest));
    expect(sm.txns.preparedCount()).toBe(1);
    sm.apply(entry(commit('new', 13)));
    sm.apply(entry(horizon(1_500)));
    expect(sm.txns.fenceHorizon()).toBe(2_000);
    sm.apply(entry(recoverAt('ancient', 100)));
    expect(sm.txns.decisionOf('ancient')).toBeNull();
    // The horizon survives a restart.
    expect(new KvStateMachine(1, persistedRecords(sm), [], { sharded: true, groupId: 4 }).txns.fenceHorizon()).toBe(2_000);
  });

  it('compaction stops below a prepared transaction; the table survives a restart from the persisted records', () => {
    const sm = shard();
    sm.apply(entry(put('a', '1', 2)));
    sm.apply(entry(put('a', '2', 3)));
    sm.apply(entry(intent('x9', 6, [putOp('a', '3')])));
    sm.apply(entry({ proposer: '1', seq: '0', compaction: { revision: '6', physical: false } }));
    expect(sm.store.compactedRevision()).toBe(5);
    const restarted = new KvStateMachine(1, persistedRecords(sm), [], { sharded: true, groupId: 3 });
    expect(restarted.txns.preparedCount()).toBe(1);
    expect(restarted.readableRevision()).toBe(5);
    restarted.apply(entry(commit('x9', 7)));
    expect(value(restarted, 'a')).toEqual({ value: '3', mod: 7 });
    expect(restarted.txns.decisionOf('x9')?.state).toBe('committed');
  });

  it('the three entries encode to pinned bytes and decode to what was encoded', () => {
    const entries: InternalRequest[] = [
      intent('3-6f1c', 1234, [putOp('{a}x', 'v', true), { request_delete_range: { key: b('d'), range_end: b('e'), prev_kv: true } }, { request_range: { key: b('r'), range_end: b(''), limit: '2', revision: '0', sort_order: 'NONE', sort_target: 'KEY', serializable: false, keys_only: true, count_only: false, min_mod_revision: '0', max_mod_revision: '0', min_create_revision: '0', max_create_revision: '0' } }], '77'),
      intent('3-6f1c', 1234, [putOp('a', 'b')], '78', { refused: true }),
      commit('3-6f1c', 1240, '79'),
      forget('3-6f1c'),
      abort('3-6f1c', '81'),
      recover('3-6f1c', '82'),
    ];
    const h = createHash('sha256');
    for (const req of entries) {
      const bytes = Buffer.from(encodeInternalRequest(req));
      h.update(`${bytes.length}:`).update(bytes);
      const back = decodeInternalRequest(bytes);
      expect(Buffer.from(encodeInternalRequest(back)).equals(bytes)).toBe(true);
    }
    expect(h.digest('hex')).toBe('653972de02356db69579df6c6589f09df56b2418ecbf856cad2bffa44831850c');
  });
});

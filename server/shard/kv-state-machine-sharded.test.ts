// KvStateMachine in sharded mode: writes applied at the revisions their entries carry, gaps allowed,
// every broken invariant thrown before anything changes, the last applied revision persisted; and the
// one-shard mode refusing a stamped entry.
import { describe, expect, it } from 'vitest';
import type { Entry } from '../raft/types.ts';
import { rangeOf } from '../mvcc/types.ts';
import { KvStateMachine } from './kv-state-machine.ts';
import { persistedRecords } from './test-helpers.ts';
import { encodeInternalRequest, type InternalRequest } from './request-codec.ts';

const b = (s: string): Buffer => Buffer.from(s);
let index = 0;
function entry(req: InternalRequest): Entry {
  return { term: 1, index: ++index, type: 'normal', data: encodeInternalRequest(req) };
}
const put = (key: string, value: string, revision?: number, seq = '0'): InternalRequest => ({
  proposer: '1',
  seq,
  put: { key: b(key), value: b(value), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false },
  ...(revision === undefined ? {} : { revision: String(revision) }),
});
const del = (key: string, revision: number): InternalRequest => ({ proposer: '1', seq: '0', delete_range: { key: b(key), range_end: b(''), prev_kv: false }, revision: String(revision) });

function valueAt(sm: KvStateMachine, key: string, at: number): string | null {
  const r = sm.store.range({ ...rangeOf(b(key), b('')), revision: at }, sm.appliedRevision());
  return r.kvs.length === 0 ? null : r.kvs[0].value.toString();
}

describe('KvStateMachine, sharded mode', () => {
  it('applies each write at its oracle revision, with gaps, and answers with that revision', async () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    const seen: number[] = [];
    sm.revisionListener = (r) => seen.push(r);
    const t = sm.track();
    sm.apply(entry(put('a', '1', 5, t.seq)));
    expect((await t.outcome).revision).toBe(5);
    sm.apply(entry(put('b', '1', 9)));
    const t2 = sm.track();
    sm.apply(entry({ ...del('nothing', 12), seq: t2.seq })); // changes nothing: revision used up
    expect((await t2.outcome).revision).toBe(12);
    expect(sm.store.currentRevision()).toBe(9);
    expect(sm.appliedRevision()).toBe(12);
    expect(seen).toEqual([5, 9, 12]);
    expect(valueAt(sm, 'a', 5)).toBe('1');
    expect(valueAt(sm, 'b', 8)).toBeNull(); // inside the gap: the state as of 5
    expect(valueAt(sm, 'b', 12)).toBe('1');
    expect(sm.store.range(rangeOf(b('a'), b('')), sm.appliedRevision()).kvs[0].modRevision).toBe(5);
  });

  it('throws on an entry without a revision, a revision on a non-write, or a revision not above the last', () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    sm.apply(entry(put('a', '1', 5)));
    expect(() => sm.apply(entry(put('a', '2')))).toThrow(/without an oracle revision/);
    expect(() => sm.apply(entry(put('a', '2', 5)))).toThrow(/not above the last applied revision 5/);
    expect(() => sm.apply(entry(put('a', '2', 4)))).toThrow(/not above/);
    expect(() => sm.apply(entry({ proposer: '1', seq: '0', lease_grant: { ID: '7', TTL: '10' }, revision: '6' }))).toThrow(/writes nothing/);
    expect(sm.appliedRevision()).toBe(5);
    expect(valueAt(sm, 'a', 5)).toBe('1');
    // Entries that do not write need none.
    sm.apply(entry({ proposer: '1', seq: '0', lease_grant: { ID: '7', TTL: '10' } }));
    sm.apply(entry(put('a', '3', 6)));
    expect(valueAt(sm, 'a', 6)).toBe('3');
  });

  it('a refused entry uses its revision up on every replica alike', async () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    const t = sm.track();
    // ignore_value on a missing key: refused by the store.
    sm.apply(entry({ ...put('x', '', 3, t.seq), put: { key: b('x'), value: b(''), lease: '0', prev_kv: false, ignore_value: true, ignore_lease: false } }));
    await expect(t.outcome).rejects.toThrow(/key not found/);
    expect(sm.appliedRevision()).toBe(3);
    expect(() => sm.apply(entry(put('x', '1', 3)))).toThrow(/not above/);
  });

  it('a txn whose reads elsewhere did not fit in one entry is refused as too large, its revision used up', async () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    const t = sm.track();
    const txn = { compare: [], success: [{ request_put: { key: b('k'), value: b('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } }], failure: [] };
    sm.apply(entry({ proposer: '1', seq: t.seq, txn: txn as never, txn_reads: { compares: [], ranges: [], too_large: true }, revision: '4' }));
    await expect(t.outcome).rejects.toThrow('etcdserver: request is too large');
    expect(sm.appliedRevision()).toBe(4);
    expect(valueAt(sm, 'k', 4)).toBeNull();
  });

  it('persists the last applied revision and reloads it', () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    sm.apply(entry(put('a', '1', 5)));
    sm.apply(entry(del('none', 8)));
    const records = new Map<string, [Buffer, Buffer]>();
    for (const op of sm.drainPersistOps()) {
      if (op.value === null) records.delete(op.key.toString('latin1'));
      else records.set(op.key.toString('latin1'), [op.key, op.value]);
    }
    const again = new KvStateMachine(1, [...records.values()].sort((x, y) => Buffer.compare(x[0], y[0])), [], { sharded: true });
    expect(again.appliedRevision()).toBe(8);
    expect(() => again.apply(entry(put('a', '2', 8)))).toThrow(/not above/);
    again.apply(entry(put('a', '2', 9)));
    expect(valueAt(again, 'a', 5)).toBe('1');
    expect(valueAt(again, 'a', 9)).toBe('2');
  });

  it('one-shard mode refuses a stamped entry and writes no revision record', () => {
    const sm = new KvStateMachine(1, []);
    expect(() => sm.apply(entry(put('a', '1', 5)))).toThrow(/not a shard of a sharded cluster/);
    const before = sm.store.currentRevision();
    sm.apply(entry(put('a', '1')));
    expect(sm.store.currentRevision()).toBe(before + 1);
    expect(sm.drainPersistOps().some((op) => op.key[0] === 0x72)).toBe(false);
  });
  it('restarts from its records after compacting at a gap above its last write', () => {
    const sm = new KvStateMachine(1, [], [], { sharded: true });
    sm.apply(entry(put('a', '1', 2)));
    sm.apply(entry(del('nothing', 5))); // changes nothing: applied through 5, last write at 2
    sm.apply(entry({ proposer: '1', seq: '0', compaction: { revision: '5', physical: false } }));
    expect(sm.store.compactedRevision()).toBe(5);
    const restarted = new KvStateMachine(1, persistedRecords(sm), [], { sharded: true });
    expect(restarted.appliedRevision()).toBe(5);
    expect(valueAt(restarted, 'a', 5)).toBe('1');
  });
});

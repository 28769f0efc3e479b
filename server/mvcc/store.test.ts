import { describe, expect, it } from 'vitest';
import { LARGE_VALUE_BYTES, MvccStore } from './store.ts';
import { MvccError } from './types.ts';
import type { RangeResult, ResponseOp } from './types.ts';
import { b, cmp, delOp, keysOf, putOp, rangeOp, rq, txnOp } from './test-helpers.ts';

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof MvccError) return e.code;
    throw e;
  }
  return 'ok';
}

function get(s: MvccStore, key: string, revision = 0) {
  return s.range(rangeOp(key, '', { revision })).kvs[0] ?? null;
}

function filled(): MvccStore {
  const s = new MvccStore();
  // rev 2..6
  s.put(putOp('a', 'v1'));
  s.put(putOp('b', 'zz'));
  s.put(putOp('c', 'aa'));
  s.put(putOp('a', 'v2'));
  s.put(putOp('d', 'mm'));
  return s;
}

describe('revisions and generations', () => {
  it('starts at revision 1 and the first write gets revision 2', () => {
    const s = new MvccStore();
    expect(s.currentRevision()).toBe(1);
    expect(s.compactedRevision()).toBe(0);
    const out = s.put(putOp('k', 'v'));
    expect(out.revision).toBe(2);
    expect(get(s, 'k')).toMatchObject({ createRevision: 2, modRevision: 2, version: 1, lease: '0' });
    expect(get(s, 'k')!.value.toString()).toBe('v');
  });

  it('increments version, keeps createRevision, and resets both after delete', () => {
    const s = new MvccStore();
    s.put(putOp('k', '1')); // 2
    s.put(putOp('k', '2')); // 3
    expect(get(s, 'k')).toMatchObject({ createRevision: 2, modRevision: 3, version: 2 });
    const del = s.deleteRange(delOp('k'));
    expect(del.revision).toBe(4);
    expect(del.result.deleted).toBe(1);
    expect(get(s, 'k')).toBeNull();
    s.put(putOp('k', '3')); // 5
    expect(get(s, 'k')).toMatchObject({ createRevision: 5, modRevision: 5, version: 1 });
    // history is still readable
    expect(get(s, 'k', 3)).toMatchObject({ createRevision: 2, version: 2 });
    expect(get(s, 'k', 4)).toBeNull();
    expect(get(s, 'k', 1)).toBeNull();
  });

  it('does not bump the revision for a delete that matches nothing', () => {
    const s = filled();
    const out = s.deleteRange(delOp('x', 'z'));
    expect(out).toEqual({ result: { deleted: 0, prevKvs: [] }, revision: 6, events: [] });
    expect(s.currentRevision()).toBe(6);
  });

  it('deletes a range at one revision with sub-revision ordered events and prevKvs', () => {
    const s = filled();
    const out = s.deleteRange(delOp('a', 'c', true));
    expect(out.revision).toBe(7);
    expect(out.result.deleted).toBe(2);
    expect(keysOf(out.result.prevKvs)).toEqual(['a', 'b']);
    expect(out.events.map((e) => [e.type, e.kv.key.toString(), e.kv.modRevision, e.kv.version, e.kv.createRevision, e.prevKv?.value.toString()])).toEqual([
      ['DELETE', 'a', 7, 0, 0, 'v2'],
      ['DELETE', 'b', 7, 0, 0, 'zz'],
    ]);
    expect(out.events[0].kv.value.length).toBe(0);
    expect(out.events[0].kv.lease).toBe('0');
    expect(keysOf(s.range(rangeOp('\0', '\0')).kvs)).toEqual(['c', 'd']);
  });

  it('does not return prevKvs unless asked', () => {
    const s = filled();
    expect(s.deleteRange(delOp('a', '\0')).result).toEqual({ deleted: 4, prevKvs: [] });
  });
});

describe('range', () => {
  it('supports single key, [key, end), from-key and all-keys forms', () => {
    const s = filled();
    expect(keysOf(s.range(rangeOp('b')).kvs)).toEqual(['b']);
    expect(keysOf(s.range(rangeOp('bb')).kvs)).toEqual([]);
    expect(keysOf(s.range(rangeOp('a', 'c')).kvs)).toEqual(['a', 'b']);
    expect(keysOf(s.range(rangeOp('b', '\0')).kvs)).toEqual(['b', 'c', 'd']);
    expect(keysOf(s.range(rangeOp('\0', '\0')).kvs)).toEqual(['a', 'b', 'c', 'd']);
    expect(keysOf(s.range(rangeOp('c', 'a')).kvs)).toEqual([]);
    expect(keysOf(s.range(rangeOp('c', 'c')).kvs)).toEqual([]);
  });

  it('orders keys as raw bytes', () => {
    const s = new MvccStore();
    for (const k of ['b', 'a\xff', 'a', 'a\0', '\xff', 'ab']) s.put({ ...putOp('', 'v'), key: Buffer.from(k, 'latin1') });
    expect(keysOf(s.range(rangeOp('\0', '\0')).kvs)).toEqual(['a', 'a\0', 'ab', 'a\xff', 'b', '\xff']);
    expect(keysOf(s.range(rangeOp('a', 'a\xff')).kvs)).toEqual(['a', 'a\0', 'ab']);
  });

  it('applies limit with more and a count that ignores the limit', () => {
    const s = filled();
    expect(s.range(rangeOp('a', '\0', { limit: 2 }))).toMatchObject({ more: true, count: 4 });
    expect(keysOf(s.range(rangeOp('a', '\0', { limit: 2 })).kvs)).toEqual(['a', 'b']);
    expect(s.range(rangeOp('a', '\0', { limit: 4 }))).toMatchObject({ more: false, count: 4 });
    expect(s.range(rangeOp('a', '\0', { limit: 10 })).kvs.length).toBe(4);
  });

  it('supports countOnly and keysOnly', () => {
    const s = filled();
    expect(s.range(rangeOp('a', '\0', { countOnly: true, limit: 1 }))).toEqual({ kvs: [], more: false, count: 4 });
    const r = s.range(rangeOp('a', '\0', { keysOnly: true }));
    expect(keysOf(r.kvs)).toEqual(['a', 'b', 'c', 'd']);
    expect(r.kvs.every((kv) => kv.value.length === 0 && kv.version > 0)).toBe(true);
  });

  it('sorts by every target in both orders, then applies the limit', () => {
    const s = filled(); // a: v2 (create 2, mod 5, ver 2), b: zz (3), c: aa (4), d: mm (6)
    const keys = (o: Partial<Parameters<typeof rangeOp>[2]>): string[] => keysOf(s.range(rangeOp('a', '\0', o)).kvs);
    expect(keys({ sortOrder: 'DESCEND', sortTarget: 'KEY' })).toEqual(['d', 'c', 'b', 'a']);
    expect(keys({ sortOrder: 'ASCEND', sortTarget: 'KEY' })).toEqual(['a', 'b', 'c', 'd']);
    expect(keys({ sortOrder: 'ASCEND', sortTarget: 'VALUE' })).toEqual(['c', 'd', 'a', 'b']);
    expect(keys({ sortOrder: 'DESCEND', sortTarget: 'VALUE' })).toEqual(['b', 'a', 'd', 'c']);
    expect(keys({ sortOrder: 'DESCEND', sortTarget: 'MOD' })).toEqual(['d', 'a', 'c', 'b']);
    expect(keys({ sortOrder: 'ASCEND', sortTarget: 'CREATE' })).toEqual(['a', 'b', 'c', 'd']);
    expect(keys({ sortOrder: 'DESCEND', sortTarget: 'CREATE' })).toEqual(['d', 'c', 'b', 'a']);
    // ties keep key order
    expect(keys({ sortOrder: 'DESCEND', sortTarget: 'VERSION' })).toEqual(['a', 'b', 'c', 'd']);
    // NONE with a non-KEY target sorts ascending (etcd)
    expect(keys({ sortOrder: 'NONE', sortTarget: 'MOD' })).toEqual(['b', 'c', 'a', 'd']);
    // limit after sort
    const r = s.range(rangeOp('a', '\0', { sortOrder: 'DESCEND', sortTarget: 'MOD', limit: 2 }));
    expect(keysOf(r.kvs)).toEqual(['d', 'a']);
    expect(r).toMatchObject({ more: true, count: 4 });
  });

  it('filters by mod/create revision before the limit; count ignores the filters', () => {
    const s = filled();
    const r = s.range(rangeOp('a', '\0', { minModRevision: 4, limit: 1 }));
    expect(keysOf(r.kvs)).toEqual(['a']);
    expect(r).toMatchObject({ more: true, count: 4 });
    expect(keysOf(s.range(rangeOp('a', '\0', { maxModRevision: 4 })).kvs)).toEqual(['b', 'c']);
    expect(keysOf(s.range(rangeOp('a', '\0', { minCreateRevision: 3, maxCreateRevision: 4 })).kvs)).toEqual(['b', 'c']);
    const all = s.range(rangeOp('a', '\0', { minModRevision: 6, limit: 1 }));
    expect(all).toMatchObject({ more: false, count: 4 });
  });

  it('reads past revisions and rejects future and compacted ones', () => {
    const s = filled();
    expect(keysOf(s.range(rangeOp('a', '\0', { revision: 3 })).kvs)).toEqual(['a', 'b']);
    expect(get(s, 'a', 4)!.value.toString()).toBe('v1');
    expect(get(s, 'a', 5)!.value.toString()).toBe('v2');
    expect(s.range(rangeOp('a', '\0', { revision: 1 })).count).toBe(0);
    expect(code(() => s.range(rangeOp('a', '', { revision: 7 })))).toBe('futureRev');
    s.compact(4);
    expect(code(() => s.range(rangeOp('a', '', { revision: 3 })))).toBe('compacted');
    expect(keysOf(s.range(rangeOp('a', '\0', { revision: 4 })).kvs)).toEqual(['a', 'b', 'c']);
    expect(get(s, 'a', 4)!.value.toString()).toBe('v1');
  });
});

describe('put', () => {
  it('returns prevKv only when asked', () => {
    const s = filled();
    expect(s.put(putOp('a', 'v3')).result.prevKv).toBeNull();
    const out = s.put(putOp('a', 'v4', { prevKv: true }));
    expect(out.result.prevKv).toMatchObject({ modRevision: 7, version: 3 });
    expect(out.result.prevKv!.value.toString()).toBe('v3');
    expect(s.put(putOp('new', 'x', { prevKv: true })).result.prevKv).toBeNull();
  });

  it('records leases and honours ignoreValue / ignoreLease', () => {
    const s = new MvccStore();
    s.put(putOp('k', 'v', { lease: '42' }));
    s.put(putOp('k', 'ignored', { ignoreValue: true, lease: '7' }));
    expect(get(s, 'k')).toMatchObject({ lease: '7', version: 2 });
    expect(get(s, 'k')!.value.toString()).toBe('v');
    s.put(putOp('k', 'w', { ignoreLease: true }));
    expect(get(s, 'k')).toMatchObject({ lease: '7', version: 3 });
    expect(get(s, 'k')!.value.toString()).toBe('w');
  });

  it('fails with keyNotFound for ignoreValue/ignoreLease on a missing key without bumping', () => {
    const s = filled();
    expect(code(() => s.put(putOp('zz', 'v', { ignoreValue: true })))).toBe('keyNotFound');
    expect(code(() => s.put(putOp('zz', 'v', { ignoreLease: true })))).toBe('keyNotFound');
    s.deleteRange(delOp('a'));
    expect(code(() => s.put(putOp('a', 'v', { ignoreValue: true })))).toBe('keyNotFound');
    expect(s.currentRevision()).toBe(7);
  });

  it('copies the caller buffers', () => {
    const s = new MvccStore();
    const key = b('key');
    const value = b('value');
    s.put({ ...putOp('', ''), key, value });
    key.fill(0);
    value.fill(0);
    expect(get(s, 'key')!.value.toString()).toBe('value');
  });

  it('emits PUT events with prevKv', () => {
    const s = new MvccStore();
    const e1 = s.put(putOp('k', 'a')).events;
    expect(e1).toHaveLength(1);
    expect(e1[0]).toMatchObject({ type: 'PUT', prevKv: null, kv: { modRevision: 2, version: 1 } });
    const e2 = s.put(putOp('k', 'b')).events;
    expect(e2[0].prevKv).toMatchObject({ modRevision: 2, version: 1 });
    expect(e2[0].kv.value.toString()).toBe('b');
  });
});

describe('txn', () => {
  const rangeResp = (r: ResponseOp): RangeResult => (r as { type: 'range'; range: RangeResult }).range;

  it('runs all ops at one revision with increasing sub-revisions', () => {
    const s = filled();
    const out = s.txn(txnOp([], [rq.put(putOp('x', '1')), rq.put(putOp('x', '2')), rq.del(delOp('a')), rq.put(putOp('y', '1'))]));
    expect(out.revision).toBe(7);
    expect(out.result.succeeded).toBe(true);
    expect(out.events.map((e) => `${e.type}:${e.kv.key}:${e.kv.modRevision}:${e.kv.version}`)).toEqual([
      'PUT:x:7:1',
      'PUT:x:7:2',
      'DELETE:a:7:0',
      'PUT:y:7:1',
    ]);
    expect(out.events[1].prevKv).toMatchObject({ version: 1, modRevision: 7 });
    expect(get(s, 'x')).toMatchObject({ createRevision: 7, modRevision: 7, version: 2 });
    expect(get(s, 'x', 6)).toBeNull();
    expect(s.currentRevision()).toBe(7);
  });

  it('lets reads inside a txn see its own earlier writes', () => {
    const s = filled();
    const out = s.txn(txnOp([], [rq.range(rangeOp('a', '\0')), rq.put(putOp('b', 'new')), rq.del(delOp('c')), rq.range(rangeOp('a', '\0'))]));
    expect(keysOf(rangeResp(out.result.responses[0]).kvs)).toEqual(['a', 'b', 'c', 'd']);
    const after = rangeResp(out.result.responses[3]);
    expect(keysOf(after.kvs)).toEqual(['a', 'b', 'd']);
    expect(after.kvs[1]).toMatchObject({ modRevision: 7, version: 2 });
    expect(out.result.responses[1]).toEqual({ type: 'put', put: { prevKv: null }, revision: 7 });
    expect(out.result.responses[2]).toEqual({ type: 'deleteRange', deleteRange: { deleted: 1, prevKvs: [] }, revision: 7 });
  });

  it('names each op\'s revision as etcd does: the one before the txn until it changes something, then its own', () => {
    const s = filled(); // at revision 6
    const out = s.txn(
      txnOp([], [rq.del(delOp('nope')), rq.range(rangeOp('a')), rq.put(putOp('b', 'new')), rq.range(rangeOp('b')), rq.del(delOp('nope')), rq.txn(txnOp([], [rq.range(rangeOp('a'))]))]),
    );
    expect(out.revision).toBe(7);
    const revisions = out.result.responses.map((op) => (op.type === 'txn' ? op.txn.responses.map((inner) => (inner.type === 'txn' ? null : inner.revision)) : op.revision));
    expect(revisions).toEqual([6, 6, 7, 7, 7, [7]]);
    // Nothing changed at all: every op names the revision before.
    const idle = s.txn(txnOp([], [rq.range(rangeOp('a')), rq.del(delOp('nope'))]));
    expect(idle.result.responses.map((op) => (op.type === 'txn' ? null : op.revision))).toEqual([7, 7]);
  });

  it('does not bump for read-only txns or txns whose writes change nothing', () => {
    const s = filled();
    expect(s.txn(txnOp([], [rq.range(rangeOp('a'))])).revision).toBe(6);
    expect(s.txn(txnOp([], [rq.del(delOp('nope'))])).revision).toBe(6);
    expect(s.txn(txnOp([cmp('a', 'VERSION', 'EQUAL', 99)], [rq.put(putOp('a', 'x'))])).revision).toBe(6);
    expect(s.currentRevision()).toBe(6);
  });

  it('evaluates compares on every target and result', () => {
    const s = filled(); // a: create 2, mod 5, version 2, value v2
    s.put(putOp('l', 'x', { lease: '12' }));
    const holds = (c: ReturnType<typeof cmp>): boolean => s.txn(txnOp([c], [])).result.succeeded;
    expect(holds(cmp('a', 'VERSION', 'EQUAL', 2))).toBe(true);
    expect(holds(cmp('a', 'VERSION', 'GREATER', 1))).toBe(true);
    expect(holds(cmp('a', 'VERSION', 'LESS', 2))).toBe(false);
    expect(holds(cmp('a', 'VERSION', 'NOT_EQUAL', 2))).toBe(false);
    expect(holds(cmp('a', 'CREATE', 'EQUAL', 2))).toBe(true);
    expect(holds(cmp('a', 'MOD', 'EQUAL', 5))).toBe(true);
    expect(holds(cmp('a', 'MOD', 'LESS', 6))).toBe(true);
    expect(holds(cmp('a', 'VALUE', 'EQUAL', 'v2'))).toBe(true);
    expect(holds(cmp('a', 'VALUE', 'GREATER', 'v1'))).toBe(true);
    expect(holds(cmp('a', 'VALUE', 'LESS', 'v10'))).toBe(false);
    expect(holds(cmp('a', 'LEASE', 'EQUAL', '0'))).toBe(true);
    // leases compare as int64, not as strings
    expect(holds(cmp('l', 'LEASE', 'GREATER', '5'))).toBe(true);
    expect(holds(cmp('l', 'LEASE', 'LESS', '100'))).toBe(true);
  });

  it('compares a missing key as zero, except value compares which always fail', () => {
    const s = filled();
    const holds = (c: ReturnType<typeof cmp>): boolean => s.txn(txnOp([c], [])).result.succeeded;
    expect(holds(cmp('zz', 'VERSION', 'EQUAL', 0))).toBe(true);
    expect(holds(cmp('zz', 'CREATE', 'EQUAL', 0))).toBe(true);
    expect(holds(cmp('zz', 'MOD', 'LESS', 1))).toBe(true);
    expect(holds(cmp('zz', 'LEASE', 'EQUAL', '0'))).toBe(true);
    expect(holds(cmp('zz', 'VALUE', 'EQUAL', ''))).toBe(false);
    expect(holds(cmp('zz', 'VALUE', 'NOT_EQUAL', 'x'))).toBe(false);
  });

  it('applies a ranged compare to every key in the range', () => {
    const s = filled(); // mods: a 5, b 3, c 4, d 6
    const holds = (c: ReturnType<typeof cmp>): boolean => s.txn(txnOp([c], [])).result.succeeded;
    expect(holds(cmp('a', 'MOD', 'GREATER', 2, 'd'))).toBe(true);
    expect(holds(cmp('a', 'MOD', 'GREATER', 3, 'd'))).toBe(false);
    expect(holds(cmp('a', 'MOD', 'LESS', 7, '\0'))).toBe(true);
    expect(holds(cmp('x', 'VERSION', 'EQUAL', 0, 'z'))).toBe(true);
  });

  it('runs the failure branch when any compare fails', () => {
    const s = filled();
    const out = s.txn(txnOp([cmp('a', 'VERSION', 'EQUAL', 2), cmp('b', 'VALUE', 'EQUAL', 'nope')], [rq.put(putOp('s', '1'))], [rq.put(putOp('f', '1'))]));
    expect(out.result.succeeded).toBe(false);
    expect(get(s, 'f')).not.toBeNull();
    expect(get(s, 's')).toBeNull();
  });

  it('supports nested txns, evaluating every compare against the state before the txn', () => {
    const s = filled();
    const inner = txnOp([cmp('a', 'VERSION', 'EQUAL', 2)], [rq.put(putOp('inner-ok', '1'))], [rq.put(putOp('inner-fail', '1'))]);
    // The outer txn bumps a's version before the nested txn runs; etcd still decides the nested
    // compare on the pre-txn state (version 2), so the success branch runs.
    const out = s.txn(txnOp([], [rq.put(putOp('a', 'bump')), rq.txn(inner), rq.range(rangeOp('inner-ok'))]));
    expect(out.revision).toBe(7);
    const nested = out.result.responses[1] as { type: 'txn'; txn: { succeeded: boolean; responses: ResponseOp[] } };
    expect(nested.txn.succeeded).toBe(true);
    expect(nested.txn.responses).toEqual([{ type: 'put', put: { prevKv: null }, revision: 7 }]);
    expect(rangeResp(out.result.responses[2]).kvs[0]).toMatchObject({ modRevision: 7 });
    expect(get(s, 'inner-fail')).toBeNull();
    expect(out.events.map((e) => e.kv.modRevision)).toEqual([7, 7]);
  });

  it('rejects a txn whose ranges name a future or compacted revision, changing nothing', () => {
    const s = filled();
    expect(code(() => s.txn(txnOp([], [rq.put(putOp('q', '1')), rq.range(rangeOp('a', '', { revision: 7 }))])))).toBe('futureRev');
    s.compact(3);
    expect(code(() => s.txn(txnOp([], [rq.put(putOp('q', '1')), rq.range(rangeOp('a', '', { revision: 2 }))])))).toBe('compacted');
    // only the chosen branch is checked
    expect(s.txn(txnOp([cmp('a', 'VERSION', 'EQUAL', 99)], [rq.range(rangeOp('a', '', { revision: 2 }))], [rq.put(putOp('q', '1'))])).revision).toBe(7);
    expect(s.txn(txnOp([], [rq.range(rangeOp('a', '', { revision: 3 }))])).result.succeeded).toBe(true);
  });

  it('rejects ignoreValue on a key missing before the txn, and rolls back when it disappears inside it', () => {
    const s = filled();
    expect(code(() => s.txn(txnOp([], [rq.put(putOp('n', '1')), rq.put(putOp('n', '', { ignoreValue: true }))])))).toBe('keyNotFound');
    s.drainPersistOps();
    expect(code(() => s.txn(txnOp([], [rq.put(putOp('new', '1')), rq.del(delOp('a')), rq.put(putOp('a', '', { ignoreValue: true }))])))).toBe('keyNotFound');
    expect(s.currentRevision()).toBe(6);
    expect(get(s, 'a')!.value.toString()).toBe('v2');
    expect(get(s, 'new')).toBeNull();
    expect(s.drainPersistOps()).toEqual([]);
    expect(s.eventsSince(b('\0'), b('\0'), 6)).toHaveLength(1);
    // the store keeps working normally afterwards
    expect(s.put(putOp('new', '2')).revision).toBe(7);
    expect(get(s, 'new')).toMatchObject({ version: 1, createRevision: 7 });
  });
});

describe('compaction', () => {
  it('validates the revision', () => {
    const s = filled();
    expect(code(() => s.compact(7))).toBe('futureRev');
    s.compact(3);
    expect(code(() => s.compact(3))).toBe('compacted');
    expect(code(() => s.compact(2))).toBe('compacted');
    expect(s.compactedRevision()).toBe(3);
    s.compact(6);
    expect(s.compactedRevision()).toBe(6);
  });

  it('keeps the latest version of live keys at or below the revision and drops tombstones', () => {
    const s = new MvccStore();
    s.put(putOp('a', '1')); // 2
    s.put(putOp('a', '2')); // 3
    s.put(putOp('b', '1')); // 4
    s.deleteRange(delOp('b')); // 5
    s.put(putOp('a', '3')); // 6
    s.compact(5);
    expect(get(s, 'a', 5)!.value.toString()).toBe('2');
    expect(get(s, 'b', 5)).toBeNull();
    expect(get(s, 'a')!.value.toString()).toBe('3');
    expect(s.range(rangeOp('\0', '\0', { revision: 5 })).count).toBe(1);
    // only records still needed are persisted
    const records = [...s.exportRecords()];
    expect(records).toHaveLength(1 + 2); // meta + a@3 + a@6
    s.compact(6);
    expect([...s.exportRecords()]).toHaveLength(2);
    expect(get(s, 'a')).toMatchObject({ createRevision: 2, version: 3 });
  });

  it('keeps working on keys deleted and recreated across compactions', () => {
    const s = new MvccStore();
    for (let i = 0; i < 54; i++) {
      s.put(putOp(`k${i % 5}`, `${i}`));
      if (i % 7 === 0) s.deleteRange(delOp('k', 'l'));
      if (i % 10 === 9) s.compact(s.currentRevision() - 1);
    }
    const live = s.range(rangeOp('k', 'l'));
    expect(live.count).toBeGreaterThan(0);
    for (const kv of live.kvs) expect(kv.version).toBeGreaterThan(0);
    expect(s.keyCount()).toBe(live.count);
  });

  it('bounds watch history: eventsSince refuses revisions below the compaction, keeps its puts', () => {
    const s = filled();
    s.compact(4);
    expect(code(() => s.eventsSince(b('a'), b('\0'), 3))).toBe('compacted');
    expect(s.eventsSince(b('a'), b('\0'), 4).map((e) => [e.kv.modRevision, e.prevKv === null])).toEqual([[4, true], [5, false], [6, true]]);
    expect(s.eventsSince(b('a'), b('\0'), 5).map((e) => e.kv.modRevision)).toEqual([5, 6]);
    // prevKv of an event right after the compaction point is still available
    expect(s.eventsSince(b('a'), b(''), 5)[0].prevKv!.value.toString()).toBe('v1');
  });
});

describe('eventsSince', () => {
  it('returns matching events in revision order with prevKv', () => {
    const s = filled();
    s.deleteRange(delOp('a')); // 7
    const evs = s.eventsSince(b('a'), b(''), 1);
    expect(evs.map((e) => [e.type, e.kv.modRevision, e.prevKv?.modRevision ?? null])).toEqual([
      ['PUT', 2, null],
      ['PUT', 5, 2],
      ['DELETE', 7, 5],
    ]);
    expect(s.eventsSince(b('b'), b('d'), 4).map((e) => e.kv.key.toString())).toEqual(['c']);
    expect(s.eventsSince(b('a'), b('\0'), 8)).toEqual([]);
  });

  it('chunks by maxEvents without splitting a revision', () => {
    const s = new MvccStore();
    s.put(putOp('a', '1')); // 2
    s.txn(txnOp([], [rq.put(putOp('b', '1')), rq.put(putOp('c', '1')), rq.put(putOp('d', '1'))])); // 3
    s.put(putOp('e', '1')); // 4
    const first = s.eventsSince(b('\0'), b('\0'), 2, 2);
    expect(first.map((e) => e.kv.modRevision)).toEqual([2, 3, 3, 3]);
    expect(s.eventsSince(b('\0'), b('\0'), 4, 2).map((e) => e.kv.modRevision)).toEqual([4]);
    expect(s.eventsSince(b('\0'), b('\0'), 2, 1).map((e) => e.kv.modRevision)).toEqual([2]);
  });
});

describe('persistence', () => {
  function applyOps(db: Map<string, Buffer>, ops: Array<{ key: Buffer; value: Buffer | null }>): void {
    for (const op of ops) {
      if (op.value === null) db.delete(op.key.toString('hex'));
      else db.set(op.key.toString('hex'), Buffer.from(op.value));
    }
  }
  function records(db: Map<string, Buffer>): Array<[Buffer, Buffer]> {
    return [...db.entries()].map(([k, v]) => [Buffer.from(k, 'hex'), v] as [Buffer, Buffer]).sort((x, y) => Buffer.compare(x[0], y[0]));
  }

  it('restores an empty store from nothing', () => {
    const s = MvccStore.restore([]);
    expect(s.currentRevision()).toBe(1);
    expect(s.compactedRevision()).toBe(0);
    const fresh = new MvccStore();
    const ops = fresh.drainPersistOps();
    expect(ops).toHaveLength(1);
    expect(fresh.drainPersistOps()).toEqual([]);
    const r = MvccStore.restore(ops.map((op) => [op.key, op.value as Buffer]));
    expect(r.currentRevision()).toBe(1);
    expect(r.drainPersistOps()).toEqual([]);
  });

  it('round-trips through drained ops, including compaction and binary keys', () => {
    const s = new MvccStore();
    const db = new Map<string, Buffer>();
    s.put({ ...putOp('', 'zero'), key: Buffer.from([0, 0, 1]) });
    s.put({ ...putOp('', 'ff'), key: Buffer.from([0xff, 0]) });
    s.put(putOp('a', '1', { lease: '123456789012345678' }));
    applyOps(db, s.drainPersistOps());
    s.put(putOp('a', '2', { ignoreLease: true }));
    s.deleteRange(delOp('b'));
    s.txn(txnOp([], [rq.put(putOp('t', 'x')), rq.put(putOp('t', 'y'))]));
    s.compact(5);
    applyOps(db, s.drainPersistOps());
    expect(s.drainPersistOps()).toEqual([]);
    const r = MvccStore.restore(records(db));
    expect(r.currentRevision()).toBe(s.currentRevision());
    expect(r.compactedRevision()).toBe(5);
    for (let rev = 5; rev <= s.currentRevision(); rev++) {
      expect(r.range(rangeOp('', '\0', { revision: rev }))).toEqual(s.range(rangeOp('', '\0', { revision: rev })));
    }
    expect(r.eventsSince(b(''), b('\0'), 6)).toEqual(s.eventsSince(b(''), b('\0'), 6));
    expect(records(db)).toEqual([...s.exportRecords()].map(([k, v]) => [k, Buffer.from(v)]));
    expect(get(r, 'a')!.lease).toBe('123456789012345678');
  });

  it('accepts unsorted records', () => {
    const s = filled();
    s.deleteRange(delOp('c'));
    s.put(putOp('c', 'again'));
    const recs = [...s.exportRecords()].reverse();
    const r = MvccStore.restore(recs);
    for (let rev = 1; rev <= s.currentRevision(); rev++) {
      expect(r.range(rangeOp('', '\0', { revision: rev }))).toEqual(s.range(rangeOp('', '\0', { revision: rev })));
    }
    expect(r.eventsSince(b(''), b('\0'), 1)).toEqual(s.eventsSince(b(''), b('\0'), 1));
    expect(r.put(putOp('c', 'x')).events).toEqual(s.put(putOp('c', 'x')).events);
  });

  it('rejects foreign records', () => {
    expect(() => MvccStore.restore([[Buffer.from([9, 9]), Buffer.from([1])]])).toThrow(/unexpected record key/);
  });
});

describe('large values (held as Buffers from LARGE_VALUE_BYTES on)', () => {
  const big = (fill: number, extra = 0): Buffer => Buffer.alloc(LARGE_VALUE_BYTES + extra, fill);

  it('reads, compares, sorts, exports and restores them like small ones', () => {
    const s = new MvccStore();
    s.put({ ...putOp('k1', ''), value: big(0x62) });
    s.put(putOp('k2', 'small'));
    s.put({ ...putOp('k3', ''), value: big(0x61, 10) });
    s.put({ ...putOp('k1', ''), ignoreValue: true, value: Buffer.alloc(0) });
    const all = s.range(rangeOp('k', 'l', { sortTarget: 'VALUE', sortOrder: 'ASCEND' }));
    expect(keysOf(all.kvs)).toEqual(['k3', 'k1', 'k2']);
    expect(all.kvs[1].value.equals(big(0x62))).toBe(true);
    expect(all.kvs[1].version).toBe(2);
    // A value compare of a large stored value against the request's bytes.
    const cmpBig = { ...cmp('k3', 'VALUE', 'EQUAL', ''), value: big(0x61, 10) };
    expect(s.txn(txnOp([cmpBig], [])).result.succeeded).toBe(true);
    expect(s.txn(txnOp([{ ...cmpBig, result: 'GREATER' as const, value: b('a') }], [])).result.succeeded).toBe(true);
    expect(s.txn(txnOp([{ ...cmpBig, value: big(0x61) }], [])).result.succeeded).toBe(false);
    const restored = MvccStore.restore([...s.exportRecords()]);
    expect(restored.range(rangeOp('k', 'l'))).toEqual(s.range(rangeOp('k', 'l')));
    const del = s.deleteRange(delOp('k', 'l', true));
    expect(del.result.prevKvs.map((kv) => kv.value.length)).toEqual([LARGE_VALUE_BYTES, 5, LARGE_VALUE_BYTES + 10]);
  });

  it('does not pin a much larger buffer the value is a view of', () => {
    const s = new MvccStore();
    const carrier = Buffer.alloc(LARGE_VALUE_BYTES * 4, 0x63);
    const value = carrier.subarray(0, LARGE_VALUE_BYTES);
    s.put({ ...putOp('k', ''), value });
    const stored = s.range(rangeOp('k')).kvs[0].value;
    expect(stored.equals(value)).toBe(true);
    expect(stored.buffer.byteLength).toBeLessThan(carrier.length);
  });
});

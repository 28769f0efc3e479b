// A cross-shard transaction's share applied with op positions (txn-op-position.ts): its records' sub-
// revisions carry each op's place in the whole transaction, its events say it, and so do the events a
// watch replays from history, after a restore too. Invalid positions leave the share plain.
import { describe, expect, it } from 'vitest';
import { MvccStore } from './store.ts';
import { decodeRevKey } from './codec.ts';
import { delOp, putOp, rq, txnOp } from './test-helpers.ts';
import { MAX_TXN_OP_POSITIONS, POSITION_BAND, POSITIONED_SUB_BASE, positionOfSub, positionedSubFloor, validPositions } from './txn-op-position.ts';
import type { MvccEvent } from './types.ts';

const at = (events: MvccEvent[]): string[] => events.map((e) => `${e.type} ${e.kv.key.toString()}@${e.txnOpIndex ?? '-'}`);

/** The (key, sub) of every revision record drained at `main`. */
function subsAt(store: MvccStore, main: number): Array<[string, number]> {
  return store
    .drainPersistOps()
    .flatMap((op) => {
      try {
        const k = decodeRevKey(op.key);
        return k.main === main ? [[k.key.toString(), k.sub] as [string, number]] : [];
      } catch {
        return []; // the meta record
      }
    });
}

describe('op positions in sub-revisions', () => {
  it('maps bands to positions and back, and stays within u32', () => {
    expect(positionOfSub(0)).toBeUndefined();
    expect(positionOfSub(POSITIONED_SUB_BASE - 1)).toBeUndefined();
    expect(positionOfSub(positionedSubFloor(0))).toBe(0);
    expect(positionOfSub(positionedSubFloor(7) + POSITION_BAND - 1)).toBe(7);
    expect(positionedSubFloor(MAX_TXN_OP_POSITIONS - 1) + POSITION_BAND - 1).toBe(2 ** 32 - 1);
    expect(validPositions([0, 2, 5], 3)).toBe(true);
    expect(validPositions(undefined, 1)).toBe(false);
    expect(validPositions([1, 1], 2)).toBe(false); // not increasing
    expect(validPositions([2, 1], 2)).toBe(false);
    expect(validPositions([0, 1], 3)).toBe(false); // not one per op
    expect(validPositions([0.5], 1)).toBe(false);
    expect(validPositions([MAX_TXN_OP_POSITIONS], 1)).toBe(false);
    expect(validPositions([], 0)).toBe(false);
  });

  it('numbers a share by its ops’ positions: records, live events, replayed events', () => {
    const s = new MvccStore();
    for (const k of ['d1', 'd2', 'd3']) s.put(putOp(k, 'old'), undefined);
    s.drainPersistOps();
    // The share: op 1 of the transaction (a put), op 4 (a range delete over d1..d3), op 6 (a put).
    const out = s.txn(txnOp([], [rq.put(putOp('zz', '1')), rq.del(delOp('d', 'e')), rq.put(putOp('aa', '2'))]), 100, undefined, [1, 4, 6]);
    expect(out.revision).toBe(100);
    expect(at(out.events)).toEqual(['PUT zz@1', 'DELETE d1@4', 'DELETE d2@4', 'DELETE d3@4', 'PUT aa@6']);
    // The responses are etcd's, as for a plain txn.
    expect(out.result.responses.map((r) => ('revision' in r ? r.revision : null))).toEqual([100, 100, 100]);
    expect(subsAt(s, 100).sort((x, y) => x[1] - y[1])).toEqual([
      ['zz', positionedSubFloor(1)],
      ['d1', positionedSubFloor(4)],
      ['d2', positionedSubFloor(4) + 1],
      ['d3', positionedSubFloor(4) + 2],
      ['aa', positionedSubFloor(6)],
    ]);
    expect(at(s.eventsSince(Buffer.from('a'), Buffer.from('{'), 100))).toEqual(['PUT zz@1', 'DELETE d1@4', 'DELETE d2@4', 'DELETE d3@4', 'PUT aa@6']);
    // A later plain write is unpositioned again.
    expect(at(s.put(putOp('aa', '3'), 101).events)).toEqual(['PUT aa@-']);
  });

  it('keeps positions over a restore from its records', () => {
    const s = new MvccStore();
    const db = new Map<string, Buffer>();
    const keep = (): void => {
      for (const op of s.drainPersistOps()) {
        if (op.value === null) db.delete(op.key.toString('hex'));
        else db.set(op.key.toString('hex'), Buffer.from(op.value));
      }
    };
    s.put(putOp('b', 'x'), 10);
    s.txn(txnOp([], [rq.put(putOp('c', '1')), rq.put(putOp('a', '2'))]), 20, undefined, [3, 9]);
    keep();
    const records = [...db.entries()].map(([k, v]) => [Buffer.from(k, 'hex'), v] as [Buffer, Buffer]).sort((x, y) => Buffer.compare(x[0], y[0]));
    const r = MvccStore.restore(records);
    expect(at(r.eventsSince(Buffer.from('a'), Buffer.from('z'), 10))).toEqual(['PUT b@-', 'PUT c@3', 'PUT a@9']);
  });

  it('applies a share whose positions cannot position it plain, as every replica would', () => {
    for (const bad of [[2, 1], [0], [0, MAX_TXN_OP_POSITIONS]]) {
      const s = new MvccStore();
      const out = s.txn(txnOp([], [rq.put(putOp('x', '1')), rq.put(putOp('y', '2'))]), 5, undefined, bad);
      expect(at(out.events)).toEqual(['PUT x@-', 'PUT y@-']);
      expect(subsAt(s, 5).map(([, sub]) => sub).sort()).toEqual([0, 1]);
    }
  });

  it('keeps subs increasing when an op overflows its band (the next op starts above it)', () => {
    const s = new MvccStore();
    const n = POSITION_BAND + 2;
    const keys = Array.from({ length: n }, (_, i) => `k${String(i).padStart(7, '0')}`);
    s.txn(txnOp([], keys.map((k) => rq.put(putOp(k, '')))), 2);
    s.drainPersistOps();
    s.txn(txnOp([], [rq.del(delOp('k', 'l')), rq.put(putOp('m', '1'))]), 3, undefined, [0, 1]);
    const subs = subsAt(s, 3);
    const m = subs.find(([k]) => k === 'm')![1];
    const deletes = subs.filter(([k]) => k !== 'm').map(([, sub]) => sub);
    expect(deletes.reduce((x, y) => Math.max(x, y), 0)).toBe(positionedSubFloor(0) + n - 1);
    expect(m).toBe(positionedSubFloor(0) + n); // above the overflowed band, not at op 1's floor
    expect(new Set(subs.map(([, sub]) => sub)).size).toBe(subs.length);
  });
});

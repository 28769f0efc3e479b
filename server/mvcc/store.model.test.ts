// Model-based property tests: MvccStore against the naive RefModel (full snapshot per revision), and
// persist -> restore equivalence.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cmdA, isWrite, lb, rangeA, run, runGapped } from './model-arbitraries.ts';
import { RefModel, attempt, norm } from './reference-model.ts';
import { MvccStore } from './store.ts';
import { rangeOf, type RangeOp } from './types.ts';

const ALL = (revision: number): RangeOp => rangeOf(Buffer.alloc(0), lb('\0'), { revision });

/** Every revision's full keyspace and every possible watch history must agree (`current`: caught up through). */
function expectSameHistory(
  a: { range(op: RangeOp, throughRevision?: number): unknown; eventsSince(k: Buffer, e: Buffer, s: number): unknown },
  b: typeof a,
  compacted: number,
  current: number,
): void {
  for (let rev = Math.max(1, compacted); rev <= current; rev++) expect(attempt(() => a.range(ALL(rev), current))).toEqual(attempt(() => b.range(ALL(rev), current)));
  for (let start = compacted; start <= current + 1; start++) {
    expect(attempt(() => a.eventsSince(Buffer.alloc(0), lb('\0'), start))).toEqual(attempt(() => b.eventsSince(Buffer.alloc(0), lb('\0'), start)));
    expect(attempt(() => a.eventsSince(lb('a'), lb('b'), start))).toEqual(attempt(() => b.eventsSince(lb('a'), lb('b'), start)));
  }
}

describe('MvccStore vs reference model', () => {
  it('agrees on every result, revision, event and historical read', () => {
    fc.assert(
      fc.property(fc.array(cmdA, { minLength: 1, maxLength: 40 }), fc.array(rangeA, { maxLength: 8 }), (cmds, probes) => {
        const store = new MvccStore();
        const model = new RefModel();
        for (const cmd of cmds) {
          const current = model.rev;
          expect(run(store, cmd, current)).toEqual(run(model, cmd, current));
          expect(store.currentRevision()).toBe(model.rev);
          expect(store.compactedRevision()).toBe(model.compacted);
        }
        // random ranges (all options) at every reachable revision
        for (const p of probes) {
          for (let rev = 0; rev <= model.rev + 1; rev++) {
            const op = { ...p, revision: rev };
            expect(attempt(() => store.range(op))).toEqual(attempt(() => model.range(op)));
          }
        }
        expectSameHistory(store, model, model.compacted, model.rev);
      }),
      { numRuns: 300 },
    );
  });
});

describe('MvccStore vs reference model, writes at oracle revisions with gaps', () => {
  // A shard's view: the oracle hands out revisions to every shard; this one sees only its own writes,
  // at increasing revisions with gaps, plus (for reads and compactions) how far it is caught up.
  const stepA = fc.record({ cmd: cmdA, gap: fc.nat({ max: 3 }), explicit: fc.oneof(fc.constant(true), fc.constant(true), fc.constant(false)) });
  it('agrees on every result, revision, event, historical read (gap revisions included) and restore', () => {
    let gappedRuns = 0;
    fc.assert(
      fc.property(fc.array(stepA, { minLength: 1, maxLength: 40 }), fc.array(rangeA, { maxLength: 6 }), (steps, probes) => {
        const store = new MvccStore();
        const model = new RefModel();
        let oracle = model.rev; // the last revision handed out, to any shard
        for (const { cmd, gap, explicit } of steps) {
          if (isWrite(cmd)) {
            // Today's path is only valid while no other shard used a revision since this one's last write.
            const at = explicit || oracle !== model.rev ? oracle + 1 + gap : undefined;
            const before = model.rev;
            expect(runGapped(store, cmd, at, oracle)).toEqual(runGapped(model, cmd, at, oracle));
            oracle = at ?? Math.max(oracle, model.rev);
            if (at !== undefined && at > before + 1 && model.rev === at) gappedRuns++;
          } else {
            oracle += gap; // other shards wrote meanwhile
            expect(runGapped(store, cmd, undefined, oracle)).toEqual(runGapped(model, cmd, undefined, oracle));
          }
          expect(store.currentRevision()).toBe(model.rev);
          expect(store.compactedRevision()).toBe(model.compacted);
        }
        for (const p of probes) {
          for (let rev = 0; rev <= oracle + 1; rev++) {
            const op = { ...p, revision: rev };
            expect(attempt(() => store.range(op, oracle))).toEqual(attempt(() => model.range(op, oracle)));
          }
        }
        expectSameHistory(store, model, model.compacted, oracle);
        // the drained records describe exactly the durable state, gaps and all
        const db = new Map<string, Buffer>();
        for (const op of store.drainPersistOps()) {
          if (op.value === null) db.delete(op.key.toString('hex'));
          else db.set(op.key.toString('hex'), op.value);
        }
        const drained = [...db.entries()].map(([k, v]) => [Buffer.from(k, 'hex'), v] as [Buffer, Buffer]).sort((x, y) => Buffer.compare(x[0], y[0]));
        expect(norm(drained)).toEqual(norm([...store.exportRecords()]));
        const restored = MvccStore.restore(drained);
        expect(restored.currentRevision()).toBe(store.currentRevision());
        expect(restored.compactedRevision()).toBe(store.compactedRevision());
        expectSameHistory(restored, model, model.compacted, oracle);
      }),
      { numRuns: 300, seed: 0x5e0d14 },
    );
    // the histories really had gaps (a write landing more than one revision past the previous one)
    expect(gappedRuns).toBeGreaterThan(300);
  });

  it('reads in a gap answer the previous written revision; compaction at a gap revision keeps that state', () => {
    const store = new MvccStore();
    const put = (k: string, v: string, at: number) =>
      store.put({ key: lb(k), value: lb(v), lease: '0', prevKv: false, ignoreValue: false, ignoreLease: false }, at);
    expect(put('a', '1', 3).events.map((e) => e.kv.modRevision)).toEqual([3]);
    put('b', '1', 4);
    const later = put('a', '2', 9); // 5..8 went to other shards
    expect(later.revision).toBe(9);
    expect(later.events.map((e) => [e.kv.modRevision, e.kv.createRevision, e.kv.version, e.prevKv?.modRevision])).toEqual([[9, 3, 2, 3]]);
    expect(store.currentRevision()).toBe(9);
    const at = (rev: number, through?: number) => store.range(ALL(rev), through).kvs.map((kv) => `${kv.key.toString('latin1')}=${kv.value.toString('latin1')}@${kv.modRevision}`);
    expect(at(6)).toEqual(['a=1@3', 'b=1@4']);
    expect(at(8)).toEqual(at(4));
    expect(() => store.range(ALL(12))).toThrow(/future revision/);
    expect(at(12, 12)).toEqual(['a=2@9', 'b=1@4']); // caught up through 12: nothing of this shard after 9
    expect(at(0, 12)).toEqual(at(9));
    store.compact(7);
    expect(at(7)).toEqual(['a=1@3', 'b=1@4']);
    expect(() => store.range(ALL(6))).toThrow(/compacted/);
    expect(store.eventsSince(lb('a'), lb('\0'), 7).map((e) => e.kv.modRevision)).toEqual([9]);
    expect(() => store.compact(13, 12)).toThrow(/future revision/);
    store.compact(12, 12);
    expect(store.compactedRevision()).toBe(12);
    expect(store.currentRevision()).toBe(9);
    expect(at(12, 12)).toEqual(['a=2@9', 'b=1@4']);
  });

  it('refuses a write at or below the written or compacted history, changing nothing', () => {
    const store = new MvccStore();
    store.put({ key: lb('a'), value: lb('1'), lease: '0', prevKv: false, ignoreValue: false, ignoreLease: false }, 5);
    store.drainPersistOps();
    const put = { key: lb('b'), value: lb('2'), lease: '0', prevKv: false, ignoreValue: false, ignoreLease: false };
    expect(() => store.put(put, 5)).toThrow(/mvcc invariant: write at revision 5/);
    expect(() => store.deleteRange({ key: lb('a'), rangeEnd: Buffer.alloc(0), prevKv: false }, 4)).toThrow(/mvcc invariant/);
    expect(() => store.txn({ compare: [], success: [{ type: 'put', put }], failure: [] }, 1.5)).toThrow(/mvcc invariant/);
    store.compact(9, 9); // caught up through 9: other shards wrote 6..9
    expect(() => store.put(put, 9)).toThrow(/compacted revision 9/);
    expect(() => store.range(ALL(0), 4)).toThrow(/caught up through revision 4, below the last written revision 5/);
    expect(store.drainPersistOps().map((op) => op.key.toString('latin1'))).toEqual([...store.exportRecords()].slice(0, 1).map(([k]) => k.toString('latin1')));
    expect(store.currentRevision()).toBe(5);
    expect(store.put(put, 10).revision).toBe(10);
  });
});

describe('persist -> restore', () => {
  function applyOps(db: Map<string, Buffer>, ops: Array<{ key: Buffer; value: Buffer | null }>): void {
    for (const op of ops) {
      if (op.value === null) db.delete(op.key.toString('hex'));
      else db.set(op.key.toString('hex'), Buffer.from(op.value));
    }
  }
  const sortedRecords = (db: Map<string, Buffer>): Array<[Buffer, Buffer]> =>
    [...db.entries()].map(([k, v]) => [Buffer.from(k, 'hex'), v] as [Buffer, Buffer]).sort((x, y) => Buffer.compare(x[0], y[0]));

  it('restore(all drained ops) is indistinguishable from the original store', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(cmdA, fc.boolean()), { minLength: 1, maxLength: 40 }),
        fc.array(cmdA, { maxLength: 15 }),
        (cmds, after) => {
          const store = new MvccStore();
          const db = new Map<string, Buffer>();
          for (const [cmd, drain] of cmds) {
            run(store, cmd, store.currentRevision());
            if (drain) applyOps(db, store.drainPersistOps());
          }
          applyOps(db, store.drainPersistOps());
          const records = sortedRecords(db);
          // the drained ops describe exactly the store's current durable state
          expect(norm(records)).toEqual(norm([...store.exportRecords()]));
          const restored = MvccStore.restore(records);
          expect(restored.currentRevision()).toBe(store.currentRevision());
          expect(restored.compactedRevision()).toBe(store.compactedRevision());
          expectSameHistory(restored, store, store.compactedRevision(), store.currentRevision());
          // and it evolves identically, including its own persistence
          const db2 = new Map(db);
          for (const cmd of after) {
            const current = store.currentRevision();
            expect(run(restored, cmd, current)).toEqual(run(store, cmd, current));
            applyOps(db, store.drainPersistOps());
            applyOps(db2, restored.drainPersistOps());
          }
          expect(norm(sortedRecords(db2))).toEqual(norm(sortedRecords(db)));
          expectSameHistory(restored, store, store.compactedRevision(), store.currentRevision());
        },
      ),
      { numRuns: 200 },
    );
  });
});

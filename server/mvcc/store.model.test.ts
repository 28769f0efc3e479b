// Model-based property tests: MvccStore against the naive RefModel (full snapshot per revision), and
// persist -> restore equivalence.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cmdA, lb, rangeA, run } from './model-arbitraries.ts';
import { RefModel, attempt, norm } from './reference-model.ts';
import { MvccStore } from './store.ts';
import type { RangeOp } from './types.ts';

const ALL = (revision: number): RangeOp => ({
  key: Buffer.alloc(0),
  rangeEnd: lb('\0'),
  limit: 0,
  revision,
  sortOrder: 'NONE',
  sortTarget: 'KEY',
  keysOnly: false,
  countOnly: false,
  minModRevision: 0,
  maxModRevision: 0,
  minCreateRevision: 0,
  maxCreateRevision: 0,
});

/** Every revision's full keyspace and every possible watch history must agree. */
function expectSameHistory(a: { range(op: RangeOp): unknown; eventsSince(k: Buffer, e: Buffer, s: number): unknown }, b: typeof a, compacted: number, current: number): void {
  for (let rev = Math.max(1, compacted); rev <= current; rev++) expect(attempt(() => a.range(ALL(rev)))).toEqual(attempt(() => b.range(ALL(rev))));
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

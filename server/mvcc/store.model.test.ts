// Model-based property tests: MvccStore against the naive RefModel (full snapshot per revision), and
// persist -> restore equivalence.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RefModel, attempt, norm } from './reference-model.ts';
import { MvccStore } from './store.ts';
import type { Compare, DeleteRangeOp, PutOp, RangeOp, RequestOp, TxnOp } from './types.ts';

const KEYS = ['a', 'b', 'c', 'ab', 'a\0', '\0', '\xff', 'b\xff'];
const lb = (x: string): Buffer => Buffer.from(x, 'latin1');

const keyA = fc.constantFrom(...KEYS);
const endA = fc.constantFrom('', '', '\0', ...KEYS);
const valueA = fc.constantFrom('', 'x', 'y', 'zz', '\0', '\xff');
const leaseA = fc.constantFrom('0', '5', '12');
const revA = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 30 }));
const rare = fc.boolean().chain((x) => (x ? fc.boolean() : fc.constant(false))); // ~25% true

const putA: fc.Arbitrary<PutOp> = fc
  .record({ key: keyA, value: valueA, lease: leaseA, prevKv: fc.boolean(), ignoreValue: rare, ignoreLease: rare })
  .map((p) => ({ ...p, key: lb(p.key), value: lb(p.value) }));

const delA: fc.Arbitrary<DeleteRangeOp> = fc.record({ key: keyA, rangeEnd: endA, prevKv: fc.boolean() }).map((d) => ({ ...d, key: lb(d.key), rangeEnd: lb(d.rangeEnd) }));

const rangeA: fc.Arbitrary<RangeOp> = fc
  .record({
    key: keyA,
    rangeEnd: endA,
    limit: fc.integer({ min: 0, max: 3 }),
    revision: revA,
    sortOrder: fc.constantFrom('NONE', 'NONE', 'ASCEND', 'DESCEND'),
    sortTarget: fc.constantFrom('KEY', 'KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'),
    keysOnly: rare,
    countOnly: rare,
    minModRevision: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20 })),
    maxModRevision: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20 })),
    minCreateRevision: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20 })),
    maxCreateRevision: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20 })),
  })
  .map((r) => ({ ...r, key: lb(r.key), rangeEnd: lb(r.rangeEnd) }) as RangeOp);

const compareA: fc.Arbitrary<Compare> = fc
  .record({
    key: keyA,
    rangeEnd: fc.constantFrom('', '', '\0', 'c'),
    target: fc.constantFrom('VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE'),
    result: fc.constantFrom('EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'),
    n: fc.integer({ min: 0, max: 12 }),
    value: valueA,
    lease: leaseA,
  })
  .map((c) => ({
    key: lb(c.key),
    rangeEnd: lb(c.rangeEnd),
    target: c.target,
    result: c.result,
    version: c.n,
    createRevision: c.n,
    modRevision: c.n,
    value: lb(c.value),
    lease: c.lease,
  }) as Compare);

const leafOpA: fc.Arbitrary<RequestOp> = fc.oneof(
  putA.map((put) => ({ type: 'put', put }) as RequestOp),
  delA.map((deleteRange) => ({ type: 'deleteRange', deleteRange }) as RequestOp),
  rangeA.map((range) => ({ type: 'range', range }) as RequestOp),
);
const txnOf = (ops: fc.Arbitrary<RequestOp>): fc.Arbitrary<TxnOp> =>
  fc.record({ compare: fc.array(compareA, { maxLength: 2 }), success: fc.array(ops, { maxLength: 4 }), failure: fc.array(ops, { maxLength: 3 }) });
const txn1A = txnOf(leafOpA);
const txnA = txnOf(fc.oneof(leafOpA, leafOpA, txn1A.map((txn) => ({ type: 'txn', txn }) as RequestOp)));

export type Cmd =
  | { t: 'put'; op: PutOp }
  | { t: 'del'; op: DeleteRangeOp }
  | { t: 'txn'; op: TxnOp }
  | { t: 'range'; op: RangeOp }
  | { t: 'compact'; back: number };

export const cmdA: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 4, arbitrary: putA.map((op) => ({ t: 'put', op }) as Cmd) },
  { weight: 2, arbitrary: delA.map((op) => ({ t: 'del', op }) as Cmd) },
  { weight: 3, arbitrary: txnA.map((op) => ({ t: 'txn', op }) as Cmd) },
  { weight: 2, arbitrary: rangeA.map((op) => ({ t: 'range', op }) as Cmd) },
  { weight: 1, arbitrary: fc.integer({ min: -1, max: 6 }).map((back) => ({ t: 'compact', back }) as Cmd) },
);

interface Target {
  currentRevision?(): number;
  range(op: RangeOp): unknown;
  put(op: PutOp): unknown;
  deleteRange(op: DeleteRangeOp): unknown;
  txn(op: TxnOp): unknown;
  compact(rev: number): void;
}

export function run(t: Target, cmd: Cmd, current: number): unknown {
  switch (cmd.t) {
    case 'put':
      return attempt(() => t.put(cmd.op));
    case 'del':
      return attempt(() => t.deleteRange(cmd.op));
    case 'txn':
      return attempt(() => t.txn(cmd.op));
    case 'range':
      return attempt(() => t.range(cmd.op));
    case 'compact':
      return attempt(() => t.compact(current - cmd.back));
  }
}

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

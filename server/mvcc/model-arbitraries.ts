// fast-check arbitraries for store commands, shared by the model-based tests.
import fc from 'fast-check';
import { attempt } from './reference-model.ts';
import type { Compare, DeleteRangeOp, PutOp, RangeOp, RequestOp, TxnOp } from './types.ts';

const KEYS = ['a', 'b', 'c', 'ab', 'a\0', '\0', '\xff', 'b\xff'];
export const lb = (x: string): Buffer => Buffer.from(x, 'latin1');

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

export const rangeA: fc.Arbitrary<RangeOp> = fc
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
  range(op: RangeOp, throughRevision?: number): unknown;
  put(op: PutOp, atRevision?: number): unknown;
  deleteRange(op: DeleteRangeOp, atRevision?: number): unknown;
  txn(op: TxnOp, atRevision?: number): unknown;
  compact(rev: number, throughRevision?: number): void;
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


/**
 * One step of a gapped history, as a shard applies it: writes at the oracle revision `at` (undefined:
 * the store's next one), reads and compactions caught up through `through`, compaction `back` below it.
 */
export function runGapped(t: Target, cmd: Cmd, at: number | undefined, through: number): unknown {
  switch (cmd.t) {
    case 'put':
      return attempt(() => t.put(cmd.op, at));
    case 'del':
      return attempt(() => t.deleteRange(cmd.op, at));
    case 'txn':
      return attempt(() => t.txn(cmd.op, at));
    case 'range':
      return attempt(() => t.range(cmd.op, through));
    case 'compact':
      return attempt(() => t.compact(through - cmd.back, through));
  }
}

export const isWrite = (cmd: Cmd): boolean => cmd.t === 'put' || cmd.t === 'del' || cmd.t === 'txn';

// Property: a Range over S shards (S = 1, 2, 4, 16; keys spread by slot), each read at one revision R
// and merged, answers exactly what one store holding every key answers at R — over random keys (with
// and without {hash tags}), random gapped histories from one revision oracle, random requests (every
// sort order and target, limit, count_only, keys_only, revision filters) at random revisions.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RefModel, attempt, norm } from '../mvcc/reference-model.ts';
import { MvccStore } from '../mvcc/store.ts';
import type { RangeOp, RequestOp } from '../mvcc/types.ts';
import { cmp, delOp, putOp, rangeOp, rq, txnOp } from '../mvcc/test-helpers.ts';
import { mergeShardRanges, shardRangeRequest } from './range-merge.ts';
import { SlotMap, slotOf } from './slots.ts';

const lb = (x: string): Buffer => Buffer.from(x, 'latin1');
// Keys sharing a tag share a slot: the txns below stay on one shard, as single-shard txns must.
const TAGGED = { t: ['a{t}1', 'a{t}2', '{t}', 'k{t}'], u: ['b{u}x', '{u}y', 'z{u}'] };
const KEYS = ['a', 'b', 'ab', 'c', 'd', 'e', 'f', 'g', '{}z', 'z{', '\0', '\xff', 'b\xff', ...TAGGED.t, ...TAGGED.u];
const BOUNDS = ['', '', '\0', 'a', 'b', 'c', 'f', 'z', '{', '\xff'];
const VALUES = ['', 'x', 'x', 'y', 'zz', '\xff'];

type Write =
  | { t: 'put'; key: string; value: string; gap: number }
  | { t: 'del'; key: string; end: string; gap: number }
  | { t: 'txn'; tag: 't' | 'u'; ops: Array<[number, string | null]>; version: number; gap: number }
  | { t: 'compact'; back: number; gap: number };

const gapA = fc.oneof(fc.constant(0), fc.nat({ max: 4 }));
const writeA: fc.Arbitrary<Write> = fc.oneof(
  { weight: 10, arbitrary: fc.record({ t: fc.constant('put' as const), key: fc.constantFrom(...KEYS), value: fc.constantFrom(...VALUES), gap: gapA }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), key: fc.constantFrom(...KEYS), end: fc.constantFrom('', '', '', '\0', 'c', '{'), gap: gapA }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant('txn' as const),
      tag: fc.constantFrom('t' as const, 'u' as const),
      ops: fc.array(fc.tuple(fc.nat({ max: 3 }), fc.option(fc.constantFrom(...VALUES))), { minLength: 1, maxLength: 3 }),
      version: fc.nat({ max: 3 }),
      gap: gapA,
    }),
  },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('compact' as const), back: fc.nat({ max: 8 }), gap: gapA }) },
);

// etcd's range forms: every key, from a key on, [low, high), one key, and a prefix (hash-tagged ones too).
const keysA: fc.Arbitrary<{ key: string; rangeEnd: string }> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ key: '\0', rangeEnd: '\0' }) },
  { weight: 2, arbitrary: fc.constantFrom(...BOUNDS, ...KEYS).map((key) => ({ key, rangeEnd: '\0' })) },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.constantFrom(...BOUNDS, ...KEYS), fc.constantFrom(...BOUNDS, ...KEYS)).map(([x, y]) => (x < y ? { key: x, rangeEnd: y } : { key: y, rangeEnd: x })),
  },
  { weight: 1, arbitrary: fc.constantFrom(...KEYS).map((key) => ({ key, rangeEnd: '' })) },
  { weight: 1, arbitrary: fc.constantFrom('a', 'a{t}', 'b{u}', '{', 'b').map((p) => ({ key: p, rangeEnd: p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1) })) },
);

const rangeReqA: fc.Arbitrary<RangeOp> = fc
  .record({
    keys: keysA,
    limit: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 12 })),
    back: fc.oneof(fc.constant(-1), fc.nat({ max: 3 }), fc.nat({ max: 30 })),
    sortOrder: fc.constantFrom('NONE' as const, 'ASCEND' as const, 'DESCEND' as const),
    sortTarget: fc.constantFrom('KEY' as const, 'VERSION' as const, 'CREATE' as const, 'MOD' as const, 'VALUE' as const),
    keysOnly: fc.boolean(),
    countOnly: fc.oneof(fc.constant(false), fc.constant(false), fc.constant(true)),
    minMod: fc.oneof(fc.constant(0), fc.constant(0), fc.nat({ max: 40 })),
    maxMod: fc.oneof(fc.constant(0), fc.constant(0), fc.nat({ max: 40 })),
    minCreate: fc.oneof(fc.constant(0), fc.constant(0), fc.nat({ max: 40 })),
    maxCreate: fc.oneof(fc.constant(0), fc.constant(0), fc.nat({ max: 40 })),
  })
  .map((r) => ({
    ...rangeOp('', '', {
      key: lb(r.keys.key),
      rangeEnd: lb(r.keys.rangeEnd),
      limit: r.limit,
      // back -1: revision 0 (the oracle's current); otherwise `back` below a revision just past it
      revision: r.back < 0 ? 0 : -1 - r.back,
      sortOrder: r.sortOrder,
      sortTarget: r.sortTarget,
      keysOnly: r.keysOnly,
      countOnly: r.countOnly,
      minModRevision: r.minMod,
      maxModRevision: r.maxMod,
      minCreateRevision: r.minCreate,
      maxCreateRevision: r.maxCreate,
    }),
  }));

/** S shard stores beside one single store and the reference model, all fed the same oracle revisions. */
class Cluster {
  readonly slots: SlotMap;
  readonly shards: MvccStore[];
  readonly single = new MvccStore();
  readonly model = new RefModel();
  /** The last revision the oracle handed out, to any shard. */
  oracle = 1;
  constructor(shardCount: number) {
    this.slots = SlotMap.create(shardCount);
    this.shards = Array.from({ length: shardCount }, () => new MvccStore());
  }

  apply(w: Write): void {
    const at = this.oracle + 1 + w.gap;
    if (w.t === 'compact') {
      // Other shards may have written meanwhile; Compact(R) compacts every shard, caught up to the oracle.
      this.oracle += w.gap;
      const rev = Math.max(0, this.oracle - w.back);
      const outcome = attempt(() => this.model.compact(rev, this.oracle));
      expect(attempt(() => this.single.compact(rev, this.oracle))).toEqual(outcome);
      for (const s of this.shards) expect(attempt(() => s.compact(rev, this.oracle))).toEqual(outcome);
      return;
    }
    this.oracle = at; // used up even when the write changes nothing: a gap
    if (w.t === 'put') {
      const op = putOp(w.key, w.value);
      const outcome = norm(this.model.put(op, at).events);
      expect(norm(this.single.put(op, at).events)).toEqual(outcome);
      expect(norm(this.shardOf(w.key).put(op, at).events)).toEqual(outcome);
    } else if (w.t === 'del') {
      // A multi-shard delete at one revision: every shard deletes its own keys at `at`.
      const op = delOp(w.key, w.end, true);
      const expected = this.model.deleteRange(op, at).result;
      expect(norm(this.single.deleteRange(op, at).result)).toEqual(norm(expected));
      const perShard = this.shards.map((s) => s.deleteRange(op, at).result);
      expect(perShard.reduce((n, r) => n + r.deleted, 0)).toBe(expected.deleted);
    } else {
      const keys = TAGGED[w.tag];
      const ops: RequestOp[] = w.ops.map(([i, v]) => (v === null ? rq.del(delOp(keys[i % keys.length])) : rq.put(putOp(keys[i % keys.length], v))));
      const txn = txnOp([cmp(keys[0], 'VERSION', 'LESS', w.version)], ops, [rq.put(putOp(keys[1], 'f'))]);
      // Results and events agree; the header revision of a txn that changes nothing is each store's
      // last written revision, which the shard layer replaces by `at` (see docs/sharding.md).
      const { result, events } = this.model.txn(txn, at);
      const outcome = norm({ result, events });
      const single = this.single.txn(txn, at);
      expect(norm({ result: single.result, events: single.events })).toEqual(outcome);
      const shard = this.shardOf(keys[0]).txn(txn, at);
      expect(norm({ result: shard.result, events: shard.events })).toEqual(outcome);
    }
  }

  private shardOf(key: string): MvccStore {
    return this.shards[this.slots.shardOf(slotOf(lb(key)))];
  }

  /** The merged multi-shard answer, the single store's and the model's, each normalized (errors by code). */
  answers(op: RangeOp): { merged: unknown; single: unknown; model: unknown; shardsWithKvs: number } {
    const readRevision = op.revision === 0 ? this.oracle : op.revision;
    let shardsWithKvs = 0;
    const merged = attempt(() => {
      const perShard = this.shards.map((s) => s.range(shardRangeRequest(op, readRevision), this.oracle));
      shardsWithKvs = perShard.filter((r) => r.kvs.length > 0 || (op.countOnly && r.count > 0)).length;
      const m = mergeShardRanges(op, readRevision, perShard);
      expect(m.revision).toBe(readRevision);
      return m.result;
    });
    return { merged, single: attempt(() => this.single.range(op, this.oracle)), model: attempt(() => this.model.range(op, this.oracle)), shardsWithKvs };
  }
}

describe('range merge over shards = one store at one revision', () => {
  for (const shardCount of [1, 2, 4, 16]) {
    it(`S = ${shardCount}`, () => {
      const figures = { requests: 0, multiShard: 0, more: 0, errors: 0, nonEmpty: 0 };
      fc.assert(
        fc.property(fc.array(writeA, { minLength: 8, maxLength: 40 }), fc.array(rangeReqA, { minLength: 1, maxLength: 12 }), (writes, requests) => {
          const c = new Cluster(shardCount);
          for (const w of writes) c.apply(w);
          for (const r of requests) {
            // revision -1-back stands for (oracle + 1 - back): from just past the oracle (a future one) down.
            const op = r.revision < 0 ? { ...r, revision: Math.max(1, c.oracle + 2 + r.revision) } : r;
            const { merged, single, model, shardsWithKvs } = c.answers(op);
            expect(merged).toEqual(model);
            expect(single).toEqual(model);
            figures.requests++;
            if (shardsWithKvs > 1) figures.multiShard++;
            const res = model as { more?: boolean; count?: number; error?: string };
            if (res.error !== undefined) figures.errors++;
            else if ((res.count ?? 0) > 0) figures.nonEmpty++;
            if (res.more === true) figures.more++;
          }
        }),
        { numRuns: 150, seed: 14_6 + shardCount },
      );
      console.log(
        `range-merge S=${shardCount}: ${figures.requests} requests equal to one store; ${figures.nonEmpty} non-empty, ${figures.multiShard} answered from >1 shard, ${figures.more} with more, ${figures.errors} compacted/future errors matched`,
      );
      expect(figures.nonEmpty).toBeGreaterThan(figures.requests / 5);
      if (shardCount > 1) expect(figures.multiShard).toBeGreaterThan(figures.requests / 6);
      expect(figures.more).toBeGreaterThan(figures.requests / 50);
      expect(figures.errors).toBeGreaterThan(0);
    });
  }
});

describe('range merge: what each shard is asked', () => {
  it('keeps the request at R, lifting keys_only only when sorting by value', () => {
    const op = rangeOp('a', '\0', { limit: 3, keysOnly: true, sortTarget: 'VALUE' });
    expect(shardRangeRequest(op, 9)).toEqual({ ...op, revision: 9, keysOnly: false });
    expect(shardRangeRequest({ ...op, sortTarget: 'MOD' }, 9)).toEqual({ ...op, sortTarget: 'MOD', revision: 9, keysOnly: true });
    expect(() => shardRangeRequest({ ...op, revision: 4 }, 9)).toThrow(/read revision 9 is not the request's \(4\)/);
  });
  it('refuses a shard answer that reflects a write after R', () => {
    const s = new MvccStore();
    s.put(putOp('a', '1'), 7);
    expect(() => mergeShardRanges(rangeOp('a'), 5, [s.range(rangeOp('a'))])).toThrow(/mod_revision 7 above the read revision 5/);
  });
});

describe('range merge: worked examples', () => {
  // Two shards at R = 6: a@2 (v1), c@5 (v2) on one; b@3 (v1), d@6 (v1) on the other.
  function twoShards(): MvccStore[] {
    const x = new MvccStore();
    const y = new MvccStore();
    x.put(putOp('a', 'm'), 2);
    y.put(putOp('b', 'z'), 3);
    x.put(putOp('c', 'a'), 4);
    x.put(putOp('c', 'a'), 5);
    y.put(putOp('d', 'm'), 6);
    return [x, y];
  }
  const answer = (op: RangeOp): { keys: string[]; more: boolean; count: number } => {
    const shards = twoShards();
    const readRevision = op.revision || 6;
    const { result } = mergeShardRanges(op, readRevision, shards.map((s) => s.range(shardRangeRequest(op, readRevision), 6)));
    return { keys: result.kvs.map((kv) => kv.key.toString('latin1') + (kv.value.length > 0 ? `=${kv.value.toString('latin1')}` : '')), more: result.more, count: result.count };
  };
  const all = (o: Partial<RangeOp>): RangeOp => rangeOp('\0', '\0', o);

  it('key order by default; limit cuts and says more; count is every key', () => {
    expect(answer(all({ limit: 3, keysOnly: true }))).toEqual({ keys: ['a', 'b', 'c'], more: true, count: 4 });
  });
  it('a non-KEY target with order NONE sorts ASCEND; ties by key in both directions', () => {
    expect(answer(all({ sortTarget: 'VERSION', keysOnly: true })).keys).toEqual(['a', 'b', 'd', 'c']);
    expect(answer(all({ sortTarget: 'VERSION', sortOrder: 'DESCEND', keysOnly: true })).keys).toEqual(['c', 'a', 'b', 'd']);
  });
  it('sorting by value with keys_only: the merge compares values, then blanks them', () => {
    expect(answer(all({ sortTarget: 'VALUE', sortOrder: 'DESCEND', keysOnly: true, limit: 2 }))).toEqual({ keys: ['b', 'a'], more: true, count: 4 });
    expect(answer(all({ sortTarget: 'VALUE', limit: 3 })).keys).toEqual(['c=a', 'a=m', 'd=m']);
  });
  it('filters apply after counting; count_only adds the shards counts', () => {
    expect(answer(all({ minModRevision: 4, keysOnly: true }))).toEqual({ keys: ['c', 'd'], more: false, count: 4 });
    expect(answer(all({ countOnly: true, limit: 1 }))).toEqual({ keys: [], more: false, count: 4 });
    expect(answer(all({ revision: 4, keysOnly: true, sortOrder: 'DESCEND' }))).toEqual({ keys: ['c', 'b', 'a'], more: false, count: 3 });
  });
});

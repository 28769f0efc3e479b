// Reads in pages (range-pages.ts) against one store answering whole: random keys and value sizes, every
// sort, limit, filter and keys/count-only form, at a historical revision, with page budgets down to a few
// keys: the paged, merged answer equals the store's own, exactly. Also: the serving side's pages fit the
// budget and end inside the range, a single key too large for a page answers null, and a key-ordered read
// with a limit stops asking once it holds enough keys.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MvccStore } from '../mvcc/store.ts';
import { rangeOf, type RangeOp, type RangeResult, type SortOrder, type SortTarget } from '../mvcc/types.ts';
import { pageOf, readPaged, type RangePage } from './range-pages.ts';
import { rangeResultWireBytes } from './shard-peer-wire.ts';

const SORT_TARGETS: SortTarget[] = ['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'];
const SORT_ORDERS: SortOrder[] = ['NONE', 'ASCEND', 'DESCEND'];

/** A store with `writes` puts and deletes over keys k00..k59 (values of 0–3,000 bytes). */
function storeOf(writes: Array<{ key: number; size: number; del: boolean }>): MvccStore {
  const s = new MvccStore();
  for (const w of writes) {
    const key = Buffer.from(`k${String(w.key).padStart(2, '0')}`);
    if (w.del) s.deleteRange({ key, rangeEnd: Buffer.alloc(0), prevKv: false });
    else s.put({ key, value: Buffer.alloc(w.size, w.size % 251), lease: '0', prevKv: false, ignoreValue: false, ignoreLease: false });
  }
  return s;
}

/** The serving side over `store`, as peer-shard-rpc.ts serves RangeAt: a first request whole when it fits, else pages. */
function server(store: MvccStore, budget: number, calls: RangeOp[]): (sub: RangeOp, continued: boolean) => Promise<RangePage> {
  return async (sub, continued) => {
    calls.push(sub);
    if (!continued) {
      const whole = store.range(sub);
      if (rangeResultWireBytes(whole) <= budget) return { result: whole, pageEnd: null };
    }
    const page = await pageOf(sub, budget, async (narrower) => store.range(narrower));
    if (page === null) throw new Error('too large');
    expect(rangeResultWireBytes(page.result)).toBeLessThanOrEqual(budget);
    if (page.pageEnd !== null) expect(Buffer.compare(page.pageEnd, sub.key)).toBeGreaterThan(0);
    return page;
  };
}

describe('reads in pages', () => {
  it('merge into exactly what the store answers whole, for every form of Range', async () => {
    let paged = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ key: fc.nat({ max: 59 }), size: fc.nat({ max: 3_000 }), del: fc.boolean() }), { minLength: 40, maxLength: 150 }),
        fc.record({
          from: fc.nat({ max: 60 }),
          span: fc.oneof(fc.constant(-1), fc.nat({ max: 60 })),
          limit: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })),
          target: fc.constantFrom(...SORT_TARGETS),
          order: fc.constantFrom(...SORT_ORDERS),
          keysOnly: fc.boolean(),
          countOnly: fc.boolean(),
          filter: fc.nat({ max: 4 }),
          atPast: fc.boolean(),
          budget: fc.integer({ min: 3_200, max: 7_000 }),
        }),
        async (writes, q) => {
          const store = storeOf(writes);
          const revision = q.atPast ? Math.max(1, store.currentRevision() - Math.floor(writes.length / 3)) : store.currentRevision();
          const mid = Math.floor(revision / 2);
          const filters = [{}, { minModRevision: mid }, { maxModRevision: mid }, { minCreateRevision: mid }, { maxCreateRevision: mid }][q.filter];
          const key = Buffer.from(`k${String(q.from).padStart(2, '0')}`);
          const rangeEnd = q.span < 0 ? Buffer.from([0]) : Buffer.from(`k${String(q.from + q.span).padStart(2, '0')}~`);
          const op: RangeOp = rangeOf(key, rangeEnd, { limit: q.limit, revision, sortTarget: q.target, sortOrder: q.order, keysOnly: q.keysOnly, countOnly: q.countOnly, ...filters });
          const want: RangeResult = store.range(op);
          const calls: RangeOp[] = [];
          const got = await readPaged(op, revision, server(store, q.budget, calls));
          if (calls.length > 1) paged++;
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 400, seed: 20261206 },
    );
    console.log(`reads in pages: ${paged} of 400 random reads took more than one page`);
    expect(paged).toBeGreaterThan(30);
  });

  it('a key too large for a page answers null; one key is never split; a range that fits is answered whole', async () => {
    const store = storeOf([{ key: 1, size: 3_000, del: false }, { key: 2, size: 3_000, del: false }]);
    const op = rangeOf(Buffer.from('k'), Buffer.from([0]));
    expect(await pageOf(op, 1_000, async (sub) => store.range(sub))).toBeNull();
    const one = rangeOf(Buffer.from('k01'), Buffer.alloc(0));
    expect(await pageOf(one, 1_000, async (sub) => store.range(sub))).toBeNull();
    expect(await pageOf(op, 10_000, async (sub) => store.range(sub))).toEqual({ result: store.range(op), pageEnd: null });
    // Keys only: values do not count, so both keys fit one small page.
    const keys = { ...op, keysOnly: true };
    expect(await pageOf(keys, 1_000, async (sub) => store.range(sub))).toEqual({ result: store.range(keys), pageEnd: null });
  });

  it('a large read costs about its own size on the serving side, not its size per page', async () => {
    const store = storeOf(Array.from({ length: 60 }, (_, key) => ({ key, size: 2_000, del: false })));
    const op = rangeOf(Buffer.from('k'), Buffer.from([0]), { revision: store.currentRevision() });
    const whole = rangeResultWireBytes(store.range(op));
    let bytesRead = 0;
    const counting = (s: MvccStore): MvccStore => {
      const range = s.range.bind(s);
      s.range = (o, t) => {
        const r = range(o, t);
        bytesRead += rangeResultWireBytes(r);
        return r;
      };
      return s;
    };
    const calls: RangeOp[] = [];
    const got = await readPaged(op, store.currentRevision(), server(counting(store), 9_000, calls));
    expect(got.kvs).toHaveLength(60);
    // The first request computed whole (then paged), and each later page about twice its size or a little
    // more (looking for its end, then its answer): under 4× in all, where recomputing the rest for each
    // page, as the first request does, would be ~8×.
    expect(bytesRead).toBeLessThan(4 * whole);
    expect(calls.length).toBeGreaterThan(10);
  });

  it('a key-ordered read with a limit and filters counts a rest larger than a page, and finds whether a key of it passes', async () => {
    const s = new MvccStore();
    for (let i = 0; i < 600; i++) s.put({ key: Buffer.from(`k${String(i).padStart(4, '0')}`), value: Buffer.alloc(i < 10 ? 2_000 : 10, 1), lease: '0', prevKv: false, ignoreValue: false, ignoreLease: false });
    const revision = s.currentRevision();
    for (const minModRevision of [0, 5, revision - 3, revision + 1]) {
      const op = rangeOf(Buffer.from('k'), Buffer.from([0]), { limit: 3, revision, minModRevision });
      const got = await readPaged(op, revision, server(s, 3_000, []));
      expect(got).toEqual(s.range(op));
    }
  });

  it('a key-ordered read with a limit stops once it holds enough keys, and counts the rest', async () => {
    const store = storeOf(Array.from({ length: 60 }, (_, key) => ({ key, size: 2_000, del: false })));
    const op = rangeOf(Buffer.from('k'), Buffer.from([0]), { limit: 5, revision: store.currentRevision() });
    const calls: RangeOp[] = [];
    const got = await readPaged(op, store.currentRevision(), server(store, 9_000, calls));
    expect(got).toEqual(store.range(op));
    expect(got).toMatchObject({ more: true, count: 60 });
    // Pages until five keys are held (four a page: two pages), then one count of the rest, not 15 pages.
    expect(calls).toHaveLength(3);
    expect(calls[calls.length - 1]).toMatchObject({ countOnly: true });
  });
});

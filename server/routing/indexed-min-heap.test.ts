import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IndexedMinHeap } from './indexed-min-heap.ts';

describe('IndexedMinHeap', () => {
  it('agrees with a scan after any sequence of sets (keys up or down) and deletes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ id: fc.nat({ max: 15 }), key: fc.integer({ min: -5, max: 40 }), del: fc.boolean() }), { maxLength: 200 }),
        (ops) => {
          const h = new IndexedMinHeap(16);
          const model = new Map<number, number>();
          for (const o of ops) {
            if (o.del) {
              h.delete(o.id);
              model.delete(o.id);
            } else {
              h.set(o.id, o.key);
              model.set(o.id, o.key);
            }
            let want = -1;
            for (const [id, k] of model) if (want < 0 || k < (model.get(want) as number) || (k === model.get(want) && id < want)) want = id;
            expect(h.peek()).toBe(want);
            expect(h.size).toBe(model.size);
            for (let id = 0; id < 16; id++) expect(h.has(id)).toBe(model.has(id));
          }
        },
      ),
      { numRuns: 300, seed: 7 },
    );
  });

  it('refuses ids outside its capacity', () => {
    expect(() => new IndexedMinHeap(2).set(2, 0)).toThrow(/out of range/);
  });
});

// The ordered index and the persisted-record codec.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BTree } from './btree.ts';
import { decodeMeta, decodeRevKey, decodeValue, encodeLiveValue, encodeMeta, encodeRevKey } from './codec.ts';

const item = (key: Buffer) => ({ key: key.toString('latin1') });
const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');

describe('BTree', () => {
  it('keeps byte order across many random inserts and iterates from any start key', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.uint8Array({ maxLength: 4 }), { maxLength: 600, selector: (a) => Buffer.from(a).toString('hex') }), fc.uint8Array({ maxLength: 3 }), (arrays, startArr) => {
        const keys = arrays.map((a) => Buffer.from(a));
        const tree = new BTree<{ key: string }>();
        for (const k of keys) {
          expect(tree.get(k.toString('latin1'))).toBeUndefined();
          tree.insert(item(k));
        }
        // The tree orders latin1 strings; that must be exactly Buffer.compare order.
        const sorted = [...keys].sort(Buffer.compare);
        expect(tree.size).toBe(keys.length);
        expect(tree.toArray().map((i) => bytes(i.key))).toEqual(sorted);
        for (const k of keys) expect(tree.get(k.toString('latin1'))!.key).toBe(k.toString('latin1'));
        const start = Buffer.from(startArr);
        const from: Buffer[] = [];
        tree.forEachFrom(start.toString('latin1'), (i) => {
          from.push(bytes(i.key));
        });
        expect(from).toEqual(sorted.filter((k) => Buffer.compare(k, start) >= 0));
        const bulk = BTree.fromSorted(sorted.map(item));
        const fromBulk: Buffer[] = [];
        bulk.forEachFrom(start.toString('latin1'), (i) => {
          fromBulk.push(bytes(i.key));
        });
        expect(fromBulk).toEqual(from);
        for (const k of keys) expect(bulk.get(k.toString('latin1'))).toBeDefined();
      }),
      { numRuns: 100 },
    );
  });

  it('handles 50k keys with early-stopping iteration', () => {
    const tree = new BTree<{ key: string }>();
    for (let i = 0; i < 50_000; i++) tree.insert(item(Buffer.from(`key-${(i * 7919) % 50_000}`.padEnd(12, '.'))));
    let n = 0;
    let prev: Buffer | null = null;
    tree.forEachFrom('key-2', (i) => {
      if (prev) expect(Buffer.compare(prev, bytes(i.key))).toBeLessThan(0);
      prev = bytes(i.key);
      return ++n < 1000;
    });
    expect(n).toBe(1000);
    expect(tree.size).toBe(50_000);
  });
});

describe('codec', () => {
  it('encodes revision keys so byte order is (key, main, sub) order, and decodes them back', () => {
    const entry = fc.tuple(fc.uint8Array({ maxLength: 5 }).map((a) => Buffer.from(a)), fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: 0, max: 70000 }));
    fc.assert(
      fc.property(entry, entry, ([k1, m1, s1], [k2, m2, s2]) => {
        const e1 = encodeRevKey(k1, m1, s1);
        const e2 = encodeRevKey(k2, m2, s2);
        const logical = Buffer.compare(k1, k2) || Math.sign(m1 - m2) || Math.sign(s1 - s2);
        expect(Math.sign(Buffer.compare(e1, e2))).toBe(logical);
        expect(decodeRevKey(e1)).toEqual({ key: k1, main: m1, sub: s1 });
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips values and meta', () => {
    const { buf, valueOffset } = encodeLiveValue(300, 2 ** 35, '987654321', Buffer.from('hello'));
    expect(decodeValue(buf)).toEqual({ tombstone: false, create: 300, version: 2 ** 35, lease: '987654321', valueOffset });
    expect(buf.subarray(valueOffset).toString()).toBe('hello');
    const noLease = encodeLiveValue(1, 1, '0', Buffer.alloc(0));
    expect(decodeValue(noLease.buf)).toMatchObject({ lease: '0', valueOffset: noLease.buf.length });
    expect(decodeMeta(encodeMeta(123456789, 42))).toEqual({ currentRevision: 123456789, compactedRevision: 42 });
    expect(() => decodeValue(Buffer.from([0, 0x80]))).toThrow(/truncated/);
  });
});

// share-keys.ts: etcd's key/range_end rules, and shareKeysMeet against a brute force over a small keyspace.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';
import { describeShareKeys, keyRangeOf, shareKeysMeet, shareKeysOf, type ShareKeys } from './share-keys.ts';

const b = (s: string): Buffer => Buffer.from(s, 'utf8');
const put = (key: string): WireRequestOp => ({ request: 'request_put', request_put: { key: b(key), value: b('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } });
const del = (key: string, end: string): WireRequestOp => ({ request: 'request_delete_range', request_delete_range: { key: b(key), range_end: b(end), prev_kv: false } });
const range = (key: string, end: Buffer): WireRequestOp => ({
  request: 'request_range',
  request_range: { key: b(key), range_end: end, limit: '0', revision: '0', sort_order: 'NONE', sort_target: 'KEY', serializable: false, keys_only: false, count_only: false, min_mod_revision: '0', max_mod_revision: '0', min_create_revision: '0', max_create_revision: '0' },
});
const txn = (success: WireRequestOp[], compareKeys: string[] = []): TxnRequest => ({
  compare: compareKeys.map((key) => ({ result: 'EQUAL', target: 'MOD', key: b(key), range_end: Buffer.alloc(0), target_union: 'mod_revision', mod_revision: '0' })),
  success,
  failure: [],
});

describe('shareKeysOf', () => {
  it('follows etcd: an empty end is one key, [0x00] every key from the key on, key = end = [0x00] every key', () => {
    expect(describeShareKeys(shareKeysOf(txn([put('a')]), false))).toBe('[a, a\u0000)');
    expect(describeShareKeys(shareKeysOf(txn([range('k', Buffer.from([0]))]), false))).toBe('[k, ∞)');
    expect(shareKeysOf({ compare: [], success: [{ request: 'request_range', request_range: { ...range('', Buffer.from([0])).request_range!, key: Buffer.from([0]) } }], failure: [] }, false)).toBe('all');
    expect(keyRangeOf(b('a'), b('c'))).toEqual({ start: b('a'), end: b('c') });
  });

  it('merges overlapping and touching ranges, and counts compares, both branches and nested txns', () => {
    const t: TxnRequest = { compare: txn([], ['z']).compare, success: [put('b'), del('a', 'b')], failure: [{ request: 'request_txn', request_txn: txn([put('m')]) }] };
    expect(describeShareKeys(shareKeysOf(t, false))).toBe('[a, b\u0000) [m, m\u0000) [z, z\u0000)');
  });

  it('a lease sweep is every key; nothing meets a share with no keys', () => {
    const sweep = shareKeysOf(txn([]), true);
    expect(sweep).toBe('all');
    expect(shareKeysMeet(sweep, shareKeysOf(txn([put('a')]), false))).toBe(true);
    expect(shareKeysMeet(sweep, sweep)).toBe(true);
    expect(shareKeysMeet(sweep, shareKeysOf(txn([]), false))).toBe(false);
  });

  it('shareKeysMeet agrees with a brute force over every key of up to 2 bytes from {a, b, c}', () => {
    const alphabet = ['a', 'b', 'c'];
    const keys = ['', ...alphabet, ...alphabet.flatMap((x) => alphabet.map((y) => x + y))];
    const keyArb = fc.constantFrom(...keys.filter((k) => k !== ''));
    const opArb: fc.Arbitrary<WireRequestOp> = fc.oneof(
      keyArb.map(put),
      fc.tuple(keyArb, keyArb).map(([x, y]) => del(x, y)),
      keyArb.map((k) => range(k, Buffer.from([0]))),
    );
    const contains = (ops: WireRequestOp[], key: string): boolean =>
      ops.some((op) => {
        const r = op.request_put ? keyRangeOf(op.request_put.key, undefined) : op.request_delete_range ? keyRangeOf(op.request_delete_range.key, op.request_delete_range.range_end) : keyRangeOf(op.request_range!.key, op.request_range!.range_end);
        const k = b(key);
        return Buffer.compare(k, Buffer.from(r.start)) >= 0 && (r.end === null || Buffer.compare(k, Buffer.from(r.end)) < 0);
      });
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 4 }), fc.array(opArb, { maxLength: 4 }), (x, y) => {
        // Keys longer than 2 bytes fall between these, but a range of them always contains one of these
        // too, or is one put's key (in the list): the brute force over this list is exact for these ops.
        const brute = keys.some((k) => contains(x, k) && contains(y, k));
        const a: ShareKeys = shareKeysOf(txn(x), false);
        const c: ShareKeys = shareKeysOf(txn(y), false);
        expect(shareKeysMeet(a, c)).toBe(brute);
        expect(shareKeysMeet(c, a)).toBe(brute);
      }),
      { numRuns: 2000, seed: 7 },
    );
  });
});

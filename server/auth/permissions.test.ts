import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { coveredBy, intervalOf, isValidPermissionRange, permits, type KeyPermission } from './permissions.ts';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const ZERO = Buffer.from([0]);
const perm = (permType: KeyPermission['permType'], key: string, rangeEnd = ''): KeyPermission => ({ permType, key: b(key), rangeEnd: b(rangeEnd) });

describe('key-range permissions', () => {
  it('a single-key grant covers that key only', () => {
    const p = [perm('READ', 'a')];
    expect(permits(p, 'read', b('a'), b(''))).toBe(true);
    expect(permits(p, 'read', b('a\0'), b(''))).toBe(false);
    expect(permits(p, 'read', b('a'), b('b'))).toBe(false); // [a, b) has more keys than "a"
    expect(permits(p, 'read', b('a'), b('a\0'))).toBe(true); // exactly the key
  });

  it('READ, WRITE and READWRITE grant what their names say', () => {
    expect(permits([perm('READ', 'k')], 'write', b('k'), b(''))).toBe(false);
    expect(permits([perm('WRITE', 'k')], 'read', b('k'), b(''))).toBe(false);
    expect(permits([perm('WRITE', 'k')], 'write', b('k'), b(''))).toBe(true);
    expect(permits([perm('READWRITE', 'k')], 'read', b('k'), b(''))).toBe(true);
    expect(permits([perm('READWRITE', 'k')], 'write', b('k'), b(''))).toBe(true);
  });

  it('a prefix grant covers sub-ranges and keys under it, not past it', () => {
    const p = [perm('READWRITE', '/app/', '/app0')];
    expect(permits(p, 'read', b('/app/x'), b(''))).toBe(true);
    expect(permits(p, 'read', b('/app/'), b('/app0'))).toBe(true);
    expect(permits(p, 'read', b('/app/a'), b('/app/z'))).toBe(true);
    expect(permits(p, 'read', b('/app/'), b('/app1'))).toBe(false);
    expect(permits(p, 'read', b('/ap'), b('/app0'))).toBe(false);
    expect(permits(p, 'read', b('/app/'), ZERO)).toBe(false); // everything from /app/ on
  });

  it('adjacent and overlapping grants of several roles add up', () => {
    const p = [perm('READ', 'a', 'c'), perm('READWRITE', 'c', 'e'), perm('READ', 'd', 'f')];
    expect(permits(p, 'read', b('a'), b('f'))).toBe(true);
    expect(permits(p, 'read', b('a'), b('f\0'))).toBe(false);
    expect(permits(p, 'write', b('a'), b('e'))).toBe(false);
    expect(permits(p, 'write', b('c'), b('e'))).toBe(true);
  });

  it('an open-ended grant ("\\0") covers every key from its start, including open-ended requests', () => {
    const p = [perm('READ', 'm', '\0')];
    expect(permits(p, 'read', b('m'), ZERO)).toBe(true);
    expect(permits(p, 'read', b('zzzz'), b(''))).toBe(true);
    expect(permits(p, 'read', b('l'), ZERO)).toBe(false);
    expect(permits([perm('READ', '\0', '\0')], 'read', ZERO, ZERO)).toBe(true); // etcd's "all keys"
  });

  it('an inverted request range is judged as its first key alone', () => {
    expect(permits([perm('READ', 'b')], 'read', b('b'), b('a'))).toBe(true);
    expect(permits([perm('READ', 'c')], 'read', b('b'), b('a'))).toBe(false);
  });

  it('validates grant ranges as etcd does', () => {
    expect(isValidPermissionRange(b('a'), b(''))).toBe(true);
    expect(isValidPermissionRange(b('a'), ZERO)).toBe(true);
    expect(isValidPermissionRange(b('a'), b('b'))).toBe(true);
    expect(isValidPermissionRange(b('b'), b('a'))).toBe(false);
    expect(isValidPermissionRange(b('a'), b('a'))).toBe(false);
    expect(isValidPermissionRange(b(''), b('a'))).toBe(false);
  });

  it('agrees with a point-by-point check', () => {
    // Keys are strings over {a,b,c} of length <= 3. Every bound a grant or request can have is such a
    // key, such a key + "\0" (the end of a single key) or unbounded, so checking the points
    // P = keys ∪ {k + "\0"} decides coverage exactly: between two neighbouring points of P every
    // interval either contains all keys or none.
    const alphabet = ['a', 'b', 'c'];
    let level = [''];
    const keys: string[] = [];
    for (let len = 1; len <= 3; len++) {
      level = level.flatMap((p) => alphabet.map((ch) => p + ch));
      keys.push(...level);
    }
    keys.sort();
    const points = [...keys, ...keys.map((k) => `${k}\0`)].sort();
    const keyArb = fc.constantFrom(...keys);
    const endArb = fc.oneof(fc.constant(''), fc.constant('\0'), keyArb);
    const contains = (p: string, start: string, end: string): boolean => {
      const iv = intervalOf(b(start), b(end));
      const x = b(p);
      return Buffer.compare(x, iv.start) >= 0 && (iv.end === null || Buffer.compare(x, iv.end) < 0);
    };
    fc.assert(
      fc.property(fc.array(fc.tuple(keyArb, endArb), { maxLength: 4 }), keyArb, endArb, (grants, qs, qe) => {
        const want = points.filter((p) => contains(p, qs, qe)).every((p) => grants.some(([gs, ge]) => contains(p, gs, ge)));
        const intervals = grants.map(([k, e]) => intervalOf(b(k), b(e)));
        expect(coveredBy(intervals, intervalOf(b(qs), b(qe)))).toBe(want);
      }),
      { numRuns: 2000 },
    );
    // The case a key-only universe would get wrong: [a, aa) holds "a\0" besides "a".
    expect(permits([perm('READ', 'a')], 'read', b('a'), b('aa'))).toBe(false);
  });
});

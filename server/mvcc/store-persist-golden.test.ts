// Pins the bytes MvccStore persists for a fixed, seeded history of writes without explicit revisions
// (S = 1). The digest was computed with the store as it was before writes at oracle revisions were
// added: if it changes, a one-shard cluster no longer writes exactly today's records. Never "fix" it.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Rng } from '../raft/rng.ts';
import { MvccStore } from './store.ts';
import { MvccError } from './types.ts';
import type { RequestOp } from './types.ts';
import { cmp, delOp, putOp, rangeOp, rq, txnOp } from './test-helpers.ts';

const KEYS = ['a', 'b', 'c', 'ab', 'a\0', '\0', '\xff', 'b\xff', '{t}x', '{t}y'];
const VALUES = ['', 'x', 'y', 'zz', '\0', '\xff', 'v'.repeat(5000)];

/**
 * The records drained from a seeded history of every kind of write, compaction and drain; `atOf` gives
 * each write's explicit revision (undefined: none, today's path).
 */
export function seededHistory(seed: number, steps: number, atOf: (store: MvccStore) => number | undefined): Array<{ key: Buffer; value: Buffer | null }> {
  const rng = new Rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[rng.nextInt(xs.length)];
  const store = new MvccStore();
  const drained: Array<{ key: Buffer; value: Buffer | null }> = [];
  for (let i = 0; i < steps; i++) {
    const k = pick(KEYS);
    const roll = rng.nextInt(10);
    try {
      if (roll < 4) store.put(putOp(k, pick(VALUES), { lease: pick(['0', '7']), prevKv: rng.chance(0.5) }), atOf(store));
      else if (roll < 6) store.deleteRange(delOp(k, pick(['', '\0', 'c']), rng.chance(0.5)), atOf(store));
      else if (roll < 9) {
        const ops: RequestOp[] = [rq.put(putOp(pick(KEYS), pick(VALUES))), rq.del(delOp(pick(KEYS))), rq.range(rangeOp(pick(KEYS), '\0'))];
        if (rng.chance(0.3)) ops.push(rq.txn(txnOp([], [rq.put(putOp(pick(KEYS), 'nested'))])));
        store.txn(txnOp([cmp(k, 'VERSION', pick(['EQUAL', 'GREATER'] as const), rng.nextInt(3))], ops, [rq.del(delOp(k, '\0'))]), atOf(store));
      } else store.compact(Math.max(0, store.currentRevision() - rng.nextInt(4)));
    } catch (e) {
      if (!(e instanceof MvccError)) throw e;
    }
    if (rng.chance(0.4)) drained.push(...store.drainPersistOps());
  }
  drained.push(...store.drainPersistOps());
  return drained;
}

export function digestOf(ops: Array<{ key: Buffer; value: Buffer | null }>): string {
  const h = createHash('sha256');
  for (const op of ops) {
    h.update(`${op.key.length}:`).update(op.key);
    if (op.value === null) h.update('-');
    else h.update(`${op.value.length}:`).update(op.value);
  }
  return h.digest('hex');
}

const PINNED_DIGEST = 'e575543e48131109501960760d37a60471ce7ee5ec5c44f52ec5aefcbe79e7e2';

describe('persisted bytes without explicit revisions (S = 1)', () => {
  it('are exactly the pinned ones', () => {
    const ops = seededHistory(14, 600, () => undefined);
    expect(ops.length).toBeGreaterThan(600);
    expect(ops.some((o) => o.value === null)).toBe(true);
    expect(digestOf(ops)).toBe(PINNED_DIGEST);
  });
  it('are the same when every write names currentRevision() + 1 explicitly (an oracle without gaps)', () => {
    expect(digestOf(seededHistory(14, 600, (store) => store.currentRevision() + 1))).toBe(PINNED_DIGEST);
  });
});

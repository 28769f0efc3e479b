// ShardAdmission: this member's cross-shard transactions take their shards all at once, oldest first,
// a younger one going around a waiting older one only on other shards or other keys; transactions on
// disjoint keys share shards; a wait that times out frees its place.
import { describe, expect, it } from 'vitest';
import type { TxnRequest } from '../etcd/wire-types.ts';
import { ShardAdmission } from './shard-admission.ts';
import { shareKeysOf, type ShareKeys } from './share-keys.ts';
import { rankOf } from './wait-die.ts';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 4; i++) await Promise.resolve();
};

function harness() {
  const a = new ShardAdmission();
  const admitted: string[] = [];
  const releases = new Map<string, () => void>();
  const take = (id: string, groups: number[], age: number, waitMs = 60_000, keys: ShareKeys = 'all'): Promise<void> =>
    a.acquire(groups, keys, rankOf(age, id), waitMs, () => new Error(`${id} timed out`)).then((release) => {
      admitted.push(id);
      releases.set(id, release);
    });
  return { a, admitted, take, release: (id: string) => releases.get(id)!() };
}

describe('ShardAdmission', () => {
  it('admits transactions on disjoint shards at once, and one sharing a shard once the holder releases', async () => {
    const h = harness();
    void h.take('t1', [1, 2], 10);
    void h.take('t2', [3, 4], 20);
    void h.take('t3', [2, 5], 30);
    await flush();
    expect(h.admitted).toEqual(['t1', 't2']);
    expect(h.a.waitingCount()).toBe(1);
    expect(h.a.heldCount()).toBe(2); // t3 holds nothing while it waits: all or nothing
    h.release('t1');
    await flush();
    expect(h.admitted).toEqual(['t1', 't2', 't3']);
    h.release('t1'); // twice is once
    expect(h.a.heldCount()).toBe(2);
  });

  it('oldest first: a waiting older transaction keeps its shards from younger ones, which go around it only elsewhere', async () => {
    const h = harness();
    void h.take('holder', [1], 5);
    await flush();
    void h.take('young', [2], 30); // arrives first but is younger
    await flush();
    expect(h.admitted).toEqual(['holder', 'young']); // shard 2 was free and nobody older wanted it
    h.release('young');
    void h.take('old', [1, 2], 10); // waits for shard 1
    void h.take('young2', [2], 40); // shard 2 is free, but the older waiting one needs it
    void h.take('other', [7], 50); // elsewhere: admitted around them
    await flush();
    expect(h.admitted).toEqual(['holder', 'young', 'other']);
    h.release('holder');
    await flush();
    expect(h.admitted).toEqual(['holder', 'young', 'other', 'old']);
    h.release('old');
    await flush();
    expect(h.admitted).toEqual(['holder', 'young', 'other', 'old', 'young2']);
  });

  it('a wait that times out is refused with its error and frees its place for those behind it', async () => {
    const h = harness();
    void h.take('holder', [1], 5);
    await flush();
    const timedOut = h.take('old', [1, 2], 10, 20).catch((e: Error) => e.message);
    void h.take('young', [2], 30);
    await flush();
    expect(h.admitted).toEqual(['holder']);
    expect(await timedOut).toBe('old timed out');
    await flush();
    expect(h.admitted).toEqual(['holder', 'young']);
    expect(h.a.waitingCount()).toBe(0);
  });

  it('transactions on disjoint keys share shards; one meeting a held or an older waiting claim waits', async () => {
    const h = harness();
    const keys = (...ks: string[]): ShareKeys => shareKeysOf({ compare: [], success: ks.map((k) => ({ request_put: { key: Buffer.from(k), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } })), failure: [] } as TxnRequest, false);
    void h.take('a', [1, 2], 10, 60_000, keys('acct1', 'acct2'));
    void h.take('b', [1, 2], 20, 60_000, keys('acct3', 'acct4'));
    void h.take('c', [2, 3], 30, 60_000, keys('acct2', 'acct9')); // meets a on acct2
    void h.take('d', [3], 40, 60_000, keys('acct9')); // shard 3 is free, but c is older and wants acct9 there
    void h.take('e', [3], 50, 60_000, keys('acct8')); // around c: other keys
    await flush();
    expect(h.admitted).toEqual(['a', 'b', 'e']);
    h.release('a');
    await flush();
    expect(h.admitted).toEqual(['a', 'b', 'e', 'c']);
    h.release('c');
    await flush();
    expect(h.admitted).toEqual(['a', 'b', 'e', 'c', 'd']);
  });
});

// TxnCoordinator's forgets, on fake timers: a transaction resolved everywhere has its records forgotten
// by a later resolve to the same shard, or, once that shard's forgets have waited FORGET_FLUSH_MS, by an
// entry of their own for that shard alone; a failed forget is carried again; the wait is measured on the
// monotonic clock, so a wall clock stepped back does not hold it. The shards are a stand-in (`propose`
// answers at once): what is checked is which entries the coordinator proposes, and when.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { InternalRequestBody, TxnResolveWire } from '../shard/request-codec.ts';
import { TxnCoordinator, type TxnWriteOutcome } from './coordinator.ts';
import { standInDeps } from './stand-in-shards.ts';

interface Proposed {
  atMs: number;
  groupId: number;
  body: InternalRequestBody;
}

/** The resolves proposed, as [shard, txn_id, forget?, forget_txn_ids]. */
function resolves(log: Proposed[]): Array<[number, string, boolean, string[]]> {
  return log.flatMap((p) => {
    if (!('txn_resolve' in p.body)) return [];
    const r: TxnResolveWire = p.body.txn_resolve;
    return [[p.groupId, r.txn_id, r.forget === true, r.forget_txn_ids ?? []]];
  });
}

function harness(failForget: (groupId: number) => boolean = () => false) {
  const log: Proposed[] = [];
  const deps = standInDeps((nextRevision) => async (groupId, body): Promise<TxnWriteOutcome> => {
    log.push({ atMs: performance.now(), groupId, body });
    if ('txn_intent' in body) return { revision: nextRevision(), result: null };
    if ('txn_resolve' in body && body.txn_resolve.forget === true && failForget(groupId)) throw new Error('proposal lost');
    return { revision: 0, result: null };
  });
  const coordinator = new TxnCoordinator(deps);
  /** A transaction over `groups` (a lease sweep: the same prepares, resolves and forgets as any). */
  const txn = (groups: number[]): Promise<number> => coordinator.sweepLease({ ID: '7', generation: '1', revoked_at: '1' }, groups);
  return { log, txn };
}

describe('TxnCoordinator forgets', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'Date', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('forgets a lone transaction on each of its shards once they waited 200 ms, not before', async () => {
    const { log, txn } = harness();
    await txn([1, 2]);
    expect(resolves(log)).toEqual([
      [1, 't1', false, []],
      [2, 't1', false, []],
    ]);
    await vi.advanceTimersByTimeAsync(199);
    expect(resolves(log)).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(resolves(log).slice(2)).toEqual([
      [1, 't1', true, []],
      [2, 't1', true, []],
    ]);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(resolves(log)).toHaveLength(4); // nothing left to forget
  });

  it("a later resolve to a shard carries its forgets; only the shards nobody resolved meanwhile get a forget entry of their own", async () => {
    const { log, txn } = harness();
    await txn([1, 2]); // t1 at 0 ms
    await vi.advanceTimersByTimeAsync(100);
    await txn([2, 3]); // t2 at 100 ms: its resolve to shard 2 carries t1's forget there
    expect(resolves(log).slice(2)).toEqual([
      [2, 't2', false, ['t1']],
      [3, 't2', false, []],
    ]);
    await vi.advanceTimersByTimeAsync(100); // 200 ms: shard 1 waited its 200 ms; shard 2's forget (t2) only 100
    const at200 = resolves(log).slice(4);
    expect(at200).toEqual([[1, 't1', true, []]]);
    expect(log.at(-1)!.atMs).toBe(200);
    await vi.advanceTimersByTimeAsync(100); // 300 ms: t2's on shards 2 and 3
    expect(resolves(log).slice(5)).toEqual([
      [2, 't2', true, []],
      [3, 't2', true, []],
    ]);
    expect(log.at(-1)!.atMs).toBe(300);
  });

  it('a forget entry that fails is carried again, 200 ms later', async () => {
    let failures = 1;
    const { log, txn } = harness((g) => g === 1 && failures-- > 0);
    await txn([1]);
    await vi.advanceTimersByTimeAsync(200);
    expect(resolves(log).slice(1)).toEqual([[1, 't1', true, []]]); // lost
    await vi.advanceTimersByTimeAsync(199);
    expect(resolves(log)).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(resolves(log).slice(2)).toEqual([[1, 't1', true, []]]);
    expect(log.at(-1)!.atMs).toBe(400);
  });

  it('waits on the monotonic clock: a wall clock stepped back an hour does not hold the forgets', async () => {
    const { log, txn } = harness();
    await txn([1]);
    vi.setSystemTime(Date.now() - 3_600_000);
    await vi.advanceTimersByTimeAsync(200);
    expect(resolves(log).slice(1)).toEqual([[1, 't1', true, []]]);
  });
});

// ShardCloser, the closing rounds' I/O shell, with every dependency scripted and time explicit: no
// round (and no timer) unless a merged watch holds the closer; a shard's source is closed at R only
// after its leader answered the read at R *and* this replica applied through the leader's index; a
// failed close leaves the closed revision where it was and is retried in a later round; a slow shard
// is not asked twice at once and catches up with the newest round's revision as soon as it answers;
// one oracle request at a time.
import { describe, expect, it } from 'vitest';
import { KvStateMachine } from './kv-state-machine.ts';
import { ReplicaWatchSource } from './replica-watch-source.ts';
import { ShardCloser, type ShardCloserOptions } from './shard-closer.ts';

interface Pending<T> {
  resolve(v: T): void;
  reject(e: Error): void;
}

function deferred<T>(list: Array<Pending<T> & { args: number[] }>, args: number[]): Promise<T> {
  return new Promise<T>((resolve, reject) => list.push({ resolve, reject, args }));
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 6; i++) await Promise.resolve();
};

function harness(shardCount = 2) {
  const shards = Array.from({ length: shardCount }, (_, i) => ({ groupId: 2 + i, source: new ReplicaWatchSource(i, new KvStateMachine(9, [], [], { sharded: true })) }));
  const oracle: Array<Pending<number> & { args: number[] }> = [];
  const reads: Array<Pending<number> & { args: number[] }> = [];
  const applies: Array<Pending<void> & { args: number[] }> = [];
  const timers: Array<() => void> = [];
  const failures: number[] = [];
  const opts: ShardCloserOptions = {
    shards,
    freshRevision: (d) => deferred(oracle, [d]),
    closeOnLeader: (g, r, d) => deferred(reads, [g, r, d]),
    waitApplied: (g, i, d) => deferred(applies, [g, i, d]),
    onCloseFailed: (g) => failures.push(g),
    setTimer: (fn) => {
      timers.push(fn);
      return {};
    },
    clearTimer: () => {
      timers.length = 0;
    },
  };
  const closer = new ShardCloser(opts);
  const tick = (): void => {
    const t = timers.shift();
    if (t === undefined) throw new Error('no round scheduled');
    t();
  };
  return { closer, shards, oracle, reads, applies, timers, failures, tick };
}

describe('ShardCloser', () => {
  it('runs no round and holds no timer while no merged watch holds it; stops when the last one releases', async () => {
    const h = harness();
    expect(h.oracle).toHaveLength(0);
    expect(h.timers).toHaveLength(0);
    const a = h.closer.acquire();
    const b = h.closer.acquire();
    expect(h.oracle).toHaveLength(1); // the first round at once
    expect(h.timers).toHaveLength(1);
    a();
    a(); // twice is once
    expect(h.closer.active()).toBe(true);
    b();
    expect(h.closer.active()).toBe(false);
    expect(h.timers).toHaveLength(0);
    h.oracle[0].resolve(50);
    await flush();
    expect(h.reads).toHaveLength(0); // the round's answer came after the release: nothing asked
  });

  it('closes a shard at R only once its leader read at R and this replica applied through the leader index', async () => {
    const h = harness();
    h.closer.acquire();
    h.oracle[0].resolve(40);
    await flush();
    expect(h.reads.map((r) => r.args.slice(0, 2))).toEqual([[2, 40], [3, 40]]);
    h.reads[0].resolve(17);
    await flush();
    expect(h.applies.map((a) => a.args.slice(0, 2))).toEqual([[2, 17]]);
    expect(h.shards[0].source.closedRevision()).toBe(0); // read done, not applied yet
    h.applies[0].resolve();
    await flush();
    expect(h.shards[0].source.closedRevision()).toBe(40);
    expect(h.shards[1].source.closedRevision()).toBe(0);
    expect(h.closer.stats.closes).toBe(1);
  });

  it('a failed close keeps the closed revision and is tried again next round; one oracle request at a time', async () => {
    const h = harness();
    h.closer.acquire();
    h.tick(); // the oracle request of the first round is still out: no second one
    expect(h.oracle).toHaveLength(1);
    h.oracle[0].resolve(40);
    await flush();
    h.reads[0].reject(new Error('leader lost during the read'));
    h.reads[1].resolve(3);
    await flush();
    h.applies[0].resolve();
    await flush();
    expect(h.failures).toEqual([2]);
    expect(h.shards.map((s) => s.source.closedRevision())).toEqual([0, 40]);
    h.tick();
    expect(h.oracle).toHaveLength(2);
    h.oracle[1].resolve(60);
    await flush();
    expect(h.reads.slice(2).map((r) => r.args.slice(0, 2))).toEqual([[2, 60], [3, 60]]);
    h.reads[2].resolve(5);
    await flush();
    h.applies[1].resolve();
    await flush();
    expect(h.shards[0].source.closedRevision()).toBe(60);
    // An oracle failure is a round lost, nothing more.
    h.tick();
    h.oracle[2].reject(new Error('oracle unavailable'));
    await flush();
    expect(h.closer.stats.oracleFailures).toBe(1);
    h.tick();
    expect(h.oracle).toHaveLength(4);
  });

  it('a slow shard is not asked twice at once, and takes the newest round’s revision as soon as it answers', async () => {
    const h = harness();
    h.closer.acquire();
    h.oracle[0].resolve(40);
    await flush();
    h.reads[1].resolve(1); // shard 3 is quick
    await flush();
    h.applies[0].resolve();
    await flush();
    h.tick();
    h.oracle[1].resolve(70);
    await flush();
    // Round 2 asks shard 3 again, not shard 2 (its read at 40 is still out).
    expect(h.reads.slice(2).map((r) => r.args.slice(0, 2))).toEqual([[3, 70]]);
    h.reads[0].resolve(9);
    await flush();
    h.applies[1].resolve();
    await flush();
    expect(h.shards[0].source.closedRevision()).toBe(40);
    // …and at once asks it at 70, without waiting for a round.
    expect(h.reads.slice(3).map((r) => r.args.slice(0, 2))).toEqual([[2, 70]]);
  });
});

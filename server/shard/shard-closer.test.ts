// ShardCloser, the closing rounds' I/O shell, with every dependency scripted and time explicit: no
// round (and no timer) unless a merged watch holds the closer; rounds on demand (at once, or after the
// least gap, coalesced) and as a heartbeat; a shard's source is closed at R only after its leader
// answered the read at R *and* this replica applied through the leader's index; a failed close leaves
// the closed revision where it was and is retried later; a slow shard is not asked twice at once and
// catches up with the newest round's revision as soon as it answers; one oracle request at a time.
import { describe, expect, it } from 'vitest';
import { KvStateMachine } from './kv-state-machine.ts';
import { ReplicaWatchSource } from './replica-watch-source.ts';
import { ShardCloser } from './shard-closer.ts';

interface Pending<T> {
  resolve(v: T): void;
  reject(e: Error): void;
  args: number[];
}

function deferred<T>(list: Array<Pending<T>>, args: number[]): Promise<T> {
  return new Promise<T>((resolve, reject) => list.push({ resolve, reject, args }));
}

const flush = async (): Promise<void> => {
  for (let i = 0; i < 6; i++) await Promise.resolve();
};

const GAP = 5;
const BUSY_GAP = 20;
const HEARTBEAT = 200;

function harness(shardCount = 2, needsRound?: () => boolean, busy?: () => boolean) {
  const shards = Array.from({ length: shardCount }, (_, i) => ({ groupId: 2 + i, source: new ReplicaWatchSource(i, new KvStateMachine(9, [], [], { sharded: true })) }));
  const oracle: Array<Pending<number>> = [];
  /** A number answers the close at R itself with that applied index. */
  const reads: Array<Pending<number | { revision: number; appliedIndex: number }>> = [];
  const applies: Array<Pending<void>> = [];
  const failures: number[] = [];
  const clock = { now: 1_000 };
  let timer: { fn: () => void; due: number } | null = null;
  /** sync()'s own timeouts, apart from the round timer. */
  const timeouts: Array<{ fn: () => void; ms: number }> = [];
  const closer = new ShardCloser({
    ...(needsRound ? { needsRound } : {}),
    shards,
    freshRevision: (d) => deferred(oracle, [d]),
    closeOnLeader: (g, r, d) => deferred(reads, [g, r, d]).then((v) => (typeof v === 'number' ? { revision: r, appliedIndex: v } : v)),
    waitApplied: (g, i, d) => deferred(applies, [g, i, d]),
    onCloseFailed: (g) => failures.push(g),
    minGapMs: GAP,
    busyGapMs: BUSY_GAP,
    ...(busy ? { busy } : {}),
    heartbeatMs: HEARTBEAT,
    now: () => clock.now,
    setTimer: (fn, ms) => {
      if (ms >= 1_000) {
        const t = { fn, ms };
        timeouts.push(t);
        return t;
      }
      timer = { fn, due: clock.now + ms };
      return {};
    },
    clearTimer: (t) => {
      const i = timeouts.indexOf(t as { fn: () => void; ms: number });
      if (i >= 0) timeouts.splice(i, 1);
      else timer = null;
    },
  });
  /** Moves time to the armed timer and fires it; returns how long that was. */
  const fire = (): number => {
    const t = timer as { fn: () => void; due: number } | null;
    if (t === null) throw new Error('no timer armed');
    const waited = t.due - clock.now;
    clock.now = t.due;
    timer = null;
    t.fn();
    return waited;
  };
  const armedIn = (): number | null => {
    const t = timer as { due: number } | null;
    return t === null ? null : t.due - clock.now;
  };
  return { closer, shards, oracle, reads, applies, failures, clock, fire, armedIn, timeouts };
}

describe('ShardCloser', () => {
  it('runs no round and holds no timer while no merged watch holds it; stops when the last one releases', async () => {
    const h = harness();
    h.closer.request();
    expect(h.oracle).toHaveLength(0);
    expect(h.armedIn()).toBeNull();
    const a = h.closer.acquire();
    const b = h.closer.acquire();
    expect(h.oracle).toHaveLength(1); // the first round at once
    expect(h.armedIn()).toBe(HEARTBEAT);
    a();
    a(); // twice is once
    expect(h.closer.active()).toBe(true);
    b();
    expect(h.closer.active()).toBe(false);
    expect(h.armedIn()).toBeNull();
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

  it('closes at the revision the leader answered (its floor, below R, while its writes were on their way)', async () => {
    const h = harness(1);
    h.closer.acquire();
    h.oracle[0].resolve(40);
    await flush();
    h.reads[0].resolve({ revision: 33, appliedIndex: 8 });
    await flush();
    expect(h.applies[0].args.slice(0, 2)).toEqual([2, 8]);
    h.applies[0].resolve();
    await flush();
    expect(h.shards[0].source.closedRevision()).toBe(33);
  });

  it('on demand: a round at once, or after the least gap; requests in between make one round; one oracle request at a time', async () => {
    const h = harness(1);
    h.closer.acquire();
    h.oracle[0].resolve(10);
    await flush();
    h.clock.now += 2;
    for (let i = 0; i < 5; i++) h.closer.request(); // within the gap: one round, at the gap's end
    expect(h.oracle).toHaveLength(1);
    expect(h.armedIn()).toBe(GAP - 2);
    expect(h.fire()).toBe(GAP - 2);
    expect(h.oracle).toHaveLength(2);
    // While its oracle request is out, requests wait for it, then start one round (the gap has passed).
    h.clock.now += GAP + 1;
    h.closer.request();
    h.closer.request();
    expect(h.oracle).toHaveLength(2);
    h.oracle[1].resolve(20);
    await flush();
    expect(h.oracle).toHaveLength(3);
    h.oracle[2].resolve(30);
    await flush();
    // Past the gap, a request starts a round at once.
    h.clock.now += GAP;
    h.closer.request();
    expect(h.oracle).toHaveLength(4);
    expect(h.closer.stats.rounds).toBe(4);
  });

  it('spaces rounds by the busy gap while the member is busy, and by the least gap again once it is not', async () => {
    let busy = true;
    const h = harness(1, undefined, () => busy);
    h.closer.acquire();
    h.oracle[0].resolve(10);
    await flush();
    h.clock.now += GAP; // past the least gap, within the busy one
    h.closer.request();
    expect(h.oracle).toHaveLength(1);
    expect(h.armedIn()).toBe(BUSY_GAP - GAP);
    // The load falls while the round waits: the timer still fires at the busy gap's end (never later).
    busy = false;
    expect(h.fire()).toBe(BUSY_GAP - GAP);
    expect(h.oracle).toHaveLength(2);
    h.oracle[1].resolve(20);
    await flush();
    h.clock.now += GAP;
    h.closer.request();
    expect(h.oracle).toHaveLength(3); // not busy: the least gap is enough
    // Busy again and a timer armed for the least gap: when it fires, the round waits out the busy gap.
    h.oracle[2].resolve(30);
    await flush();
    h.closer.request();
    expect(h.armedIn()).toBe(GAP);
    busy = true;
    expect(h.fire()).toBe(GAP);
    expect(h.oracle).toHaveLength(3);
    expect(h.armedIn()).toBe(BUSY_GAP - GAP);
    h.fire();
    expect(h.oracle).toHaveLength(4);
  });

  it('a heartbeat round while a watch is open and nothing asks; a failed close is retried there; an oracle failure loses one round', async () => {
    const h = harness();
    h.closer.acquire();
    h.oracle[0].resolve(40);
    await flush();
    h.reads[0].reject(new Error('leader lost during the read'));
    h.reads[1].resolve(3);
    await flush();
    h.applies[0].resolve();
    await flush();
    expect(h.failures).toEqual([2]);
    expect(h.shards.map((s) => s.source.closedRevision())).toEqual([0, 40]);
    expect(h.fire()).toBe(HEARTBEAT);
    expect(h.oracle).toHaveLength(2);
    h.oracle[1].resolve(60);
    await flush();
    expect(h.reads.slice(2).map((r) => r.args.slice(0, 2))).toEqual([[2, 60], [3, 60]]);
    h.reads[2].resolve(5);
    await flush();
    h.applies[1].resolve();
    await flush();
    expect(h.shards[0].source.closedRevision()).toBe(60);
    expect(h.fire()).toBe(HEARTBEAT);
    h.oracle[2].reject(new Error('oracle unavailable'));
    await flush();
    expect(h.closer.stats.oracleFailures).toBe(1);
    expect(h.fire()).toBe(HEARTBEAT);
    expect(h.oracle).toHaveLength(4);
  });

  it('the heartbeat starts a round only when needsRound() says some shard is resolved below another', async () => {
    let due = false;
    const h = harness(1, () => due);
    h.closer.acquire();
    h.oracle[0].resolve(10);
    await flush();
    h.fire();
    h.fire();
    expect(h.oracle).toHaveLength(1); // idle: two heartbeats, no round
    expect(h.armedIn()).toBe(HEARTBEAT);
    due = true;
    h.fire();
    expect(h.oracle).toHaveLength(2);
  });

  it('sync() resolves once every shard is resolved through a round started after it; a close below the target asks for another', async () => {
    const h = harness(2, () => false);
    h.closer.acquire();
    h.oracle[0].resolve(10);
    await flush();
    for (const r of h.reads) r.resolve(1);
    await flush();
    for (const a of h.applies) a.resolve();
    await flush();
    expect(h.shards.map((x) => x.source.closedRevision())).toEqual([10, 10]);
    let synced = false;
    h.clock.now += GAP;
    void h.closer.sync(1_000).then(() => (synced = true));
    expect(h.oracle).toHaveLength(2); // a round for the sync, at once
    h.oracle[1].resolve(50);
    await flush();
    expect(h.reads.slice(2).map((r) => r.args.slice(0, 2))).toEqual([[2, 50], [3, 50]]);
    h.reads[2].resolve(2);
    h.reads[3].resolve({ revision: 44, appliedIndex: 2 }); // at its floor: below the target 50
    await flush();
    for (const a of h.applies.slice(2)) a.resolve();
    await flush();
    expect(h.shards.map((x) => x.source.closedRevision())).toEqual([50, 44]);
    expect(synced).toBe(false);
    // Another round for the shard still below 50, after the gap.
    if (h.oracle.length === 2) h.fire();
    expect(h.oracle).toHaveLength(3);
    h.oracle[2].resolve(60);
    await flush();
    for (const r of h.reads.slice(4)) r.resolve(3);
    await flush();
    for (const a of h.applies.slice(4)) a.resolve();
    await flush();
    expect(synced).toBe(true);
    expect(h.timeouts).toHaveLength(0);
  });

  it('sync() gives up at its timeout (the header is then older, never wrong)', async () => {
    const h = harness(1, () => false);
    h.closer.acquire();
    let synced = false;
    void h.closer.sync(1_000).then(() => (synced = true));
    expect(h.timeouts).toHaveLength(1);
    h.timeouts[0].fn();
    await flush();
    expect(synced).toBe(true);
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
    h.fire();
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

  it('a shard source asks for a round when a subscription receives events', () => {
    const sm = new KvStateMachine(9, [], [], { sharded: true });
    const source = new ReplicaWatchSource(0, sm);
    let asked = 0;
    source.onActivity = () => asked++;
    source.subscribe({ key: Buffer.from('k'), rangeEnd: Buffer.alloc(0), fromRevision: 1, prevKv: false, noPut: false, noDelete: false }, { onEvents: () => {}, onResolved: () => {}, onCompacted: () => {} });
    expect(asked).toBe(0);
    sm.hub.notify([{ type: 'PUT', kv: { key: Buffer.from('k'), value: Buffer.from('v'), createRevision: 5, modRevision: 5, version: 1, lease: '0' }, prevKv: null }], 5);
    expect(asked).toBe(1);
  });
});

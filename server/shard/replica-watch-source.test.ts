// The merged watch's shard sources over real sharded KvStateMachines (ReplicaWatchSource) and the
// closing rounds that resolve them (ShardCloser), with the merge itself (MergedWatch) on top: seeded
// runs where 4 shards' leaders append entries at one oracle's revisions, this member's replicas apply
// them late and in any interleaving, and closing rounds run at random moments. Every run must deliver
// exactly the one-store history of the watched range from the start revision, in revision order, once,
// with headers that never pass an event not yet sent. The mutation "close without waiting for the
// replica to apply the leader's index" must be caught (an event is lost). Plus the source's own rules:
// resolved = max(closed, readable revision: below the lowest prepared cross-shard transaction), pushed to
// live subscriptions only; compaction.
import { describe, expect, it } from 'vitest';
import { MergedWatch } from '../routing/merged-watch.ts';
import type { MvccEvent } from '../mvcc/types.ts';
import { Rng } from '../raft/rng.ts';
import type { Entry } from '../raft/types.ts';
import { KvStateMachine } from './kv-state-machine.ts';
import { encodeInternalRequest, type InternalRequest } from './request-codec.ts';
import { ReplicaWatchSource, resolvedApart } from './replica-watch-source.ts';
import { ShardCloser } from './shard-closer.ts';

const b = (s: string): Buffer => Buffer.from(s);
const put = (key: string, value: string, revision: number): InternalRequest => ({
  proposer: '9',
  seq: '0',
  put: { key: b(key), value: b(value), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false },
  revision: String(revision),
});
const del = (key: string, revision: number): InternalRequest => ({ proposer: '9', seq: '0', delete_range: { key: b(key), range_end: b(''), prev_kv: false }, revision: String(revision) });

/** One shard: its leader's log (committed entries) and this member's replica, applying behind it. */
class SimShard {
  readonly log: Entry[] = [];
  readonly sm = new KvStateMachine(9, [], [], { sharded: true });
  readonly source: ReplicaWatchSource;
  applied = 0;
  waiters: Array<{ index: number; resolve(): void }> = [];
  readonly groupId: number;
  constructor(groupId: number, index: number) {
    this.groupId = groupId;
    this.source = new ReplicaWatchSource(index, this.sm);
  }
  append(req: InternalRequest): void {
    this.log.push({ term: 1, index: this.log.length + 1, type: 'normal', data: encodeInternalRequest(req) });
  }
  applyNext(): boolean {
    if (this.applied >= this.log.length) return false;
    this.sm.apply(this.log[this.applied++]);
    const still = [];
    for (const w of this.waiters) (w.index <= this.applied ? w.resolve() : still.push(w));
    this.waiters = still;
    return true;
  }
}

interface RunResult {
  got: Array<{ revision: number; key: string; type: string }>;
  want: Array<{ revision: number; key: string; type: string }>;
  headersOk: boolean;
  closes: number;
  /** Rounds started by three heartbeats once everything was delivered. */
  idleRounds: number;
}

async function run(seed: number, mutation: 'none' | 'close-before-apply'): Promise<RunResult> {
  const rng = new Rng(seed);
  const shards = [0, 1, 2, 3].map((i) => new SimShard(2 + i, i));
  let oracle = 1;
  /** The one-store history: every event of every shard, by revision. */
  const history: Array<{ revision: number; key: string; type: string }> = [];
  const keys = ['a/1', 'a/2', 'a/3', 'a/4', 'a/5', 'a/6', 'b/1', 'b/2'];
  const shardOfKey = (k: string): SimShard => shards[keys.indexOf(k) % 4];
  const live = new Set<string>();
  const write = (): void => {
    const key = keys[rng.nextInt(keys.length)];
    oracle += 1 + rng.nextInt(3); // other writes and unused grants leave gaps
    const s = shardOfKey(key);
    if (live.has(key) && rng.chance(0.3)) {
      s.append(del(key, oracle));
      live.delete(key);
      history.push({ revision: oracle, key, type: 'DELETE' });
    } else {
      s.append(put(key, `v${oracle}`, oracle));
      live.add(key);
      history.push({ revision: oracle, key, type: 'PUT' });
    }
  };
  // Some history before the watch starts, partly applied.
  for (let i = 0; i < 20; i++) write();
  for (const s of shards) while (s.applied < s.log.length && rng.chance(0.8)) s.applyNext();

  let timer: (() => void) | null = null;
  let clock = 0;
  let writing = true;
  const closer = new ShardCloser({
    now: () => clock,
    // The server's gate: heartbeat rounds only while some followed shard is resolved below another.
    needsRound: () => resolvedApart(shards.map((s) => s.source)),
    shards: shards.map((s) => ({ groupId: s.groupId, source: s.source })),
    freshRevision: () => Promise.resolve(++oracle),
    // The leader's read at R: every entry at or below R is in its log already (the sim's writes are
    // appended synchronously with their revision), and it answers with its applied index, the log's end.
    // It may close below R (its floor, while a write turn's grant is on its way): any revision ≤ R is
    // then as true, since every later write takes a revision above R.
    // (Only while writes go on: an idle leader has no write turn out and closes at R.)
    closeOnLeader: (groupId, revision) => Promise.resolve({ revision: writing && rng.chance(0.3) ? Math.max(1, revision - rng.nextInt(6)) : revision, appliedIndex: shards[groupId - 2].log.length }),
    waitApplied: (groupId, index) => {
      const s = shards[groupId - 2];
      if (mutation === 'close-before-apply' || s.applied >= index) return Promise.resolve();
      return new Promise<void>((resolve) => s.waiters.push({ index, resolve }));
    },
    setTimer: (fn) => {
      timer = fn;
      return {};
    },
    clearTimer: () => {
      timer = null;
    },
  });

  for (const s of shards) s.source.onActivity = () => closer.request();
  const startRevision = 2 + rng.nextInt(oracle);
  const got: RunResult['got'] = [];
  let headersOk = true;
  let delivered = startRevision - 1;
  const sources = new Map(shards.map((s) => [s.source.shard, s.source]));
  const watch = new MergedWatch(
    { key: b('a/'), rangeEnd: b('a0'), startRevision, prevKv: false, noPut: false, noDelete: false, shards: [0, 1, 2, 3] },
    sources,
    {
      onEvents: (events: MvccEvent[], header: number) => {
        for (const e of events) {
          if (e.kv.modRevision <= delivered || e.kv.modRevision > header) headersOk = false;
          got.push({ revision: e.kv.modRevision, key: e.kv.key.toString(), type: e.type });
        }
        if (header < delivered) headersOk = false;
        delivered = header;
      },
      onProgress: (header: number) => {
        if (header < delivered) headersOk = false;
      },
      onCompacted: () => {
        headersOk = false;
      },
    },
  );
  const release = closer.acquire();
  watch.start();
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 4; i++) await Promise.resolve();
  };
  for (let step = 0; step < 400; step++) {
    clock += rng.nextInt(12);
    const roll = rng.nextInt(10);
    if (roll < 3) write();
    else if (roll < 7) shards[rng.nextInt(4)].applyNext();
    else if (roll < 9) {
      const t = timer as (() => void) | null;
      timer = null;
      t?.();
    } else watch.requestProgress();
    await settle();
  }
  // Everything applied, then rounds until the watch has delivered every write.
  writing = false;
  for (const s of shards) while (s.applyNext());
  for (let i = 0; i < 5; i++) {
    clock += 1_000;
    const t = timer as (() => void) | null;
    timer = null;
    t?.();
    await settle();
  }
  // Idle and every shard resolved alike: heartbeats start no round.
  const rounds = closer.stats.rounds;
  for (let i = 0; i < 3; i++) {
    clock += 1_000;
    const t = timer as (() => void) | null;
    timer = null;
    t?.();
    await settle();
  }
  const idleRounds = closer.stats.rounds - rounds;
  release();
  watch.cancel();
  expect(timer).toBeNull(); // no rounds once the last merged watch is gone
  const want = history.filter((h) => h.revision >= startRevision && h.key.startsWith('a/'));
  return { got, want, headersOk, closes: closer.stats.closes, idleRounds };
}

describe('merged watch over shard replicas resolved by closing rounds', () => {
  it('delivers the one-store history exactly once, in order, from any start, whatever the replicas lag (300 seeds)', async () => {
    let events = 0;
    let closes = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const r = await run(seed, 'none');
      expect(r.headersOk, `seed ${seed}`).toBe(true);
      expect(r.got, `seed ${seed}`).toEqual(r.want);
      expect(r.idleRounds, `seed ${seed}`).toBeLessThanOrEqual(1);
      events += r.got.length;
      closes += r.closes;
    }
    expect(events).toBeGreaterThan(3000);
    expect(closes).toBeGreaterThan(1000);
  });

  it('mutation: closing a replica before it applied the leader’s index loses events', async () => {
    let caught = 0;
    for (let seed = 1; seed <= 50; seed++) {
      const r = await run(seed, 'close-before-apply');
      if (!r.headersOk || JSON.stringify(r.got) !== JSON.stringify(r.want)) caught++;
    }
    expect(caught).toBeGreaterThan(0);
  });
});

describe('ReplicaWatchSource', () => {
  const entry = (sm: KvStateMachine, index: number, req: InternalRequest): void => sm.apply({ term: 1, index, type: 'normal', data: encodeInternalRequest(req) });

  it('resolves through max(closed, applied revision) and tells live subscriptions only when closed moves', () => {
    const sm = new KvStateMachine(9, [], [], { sharded: true });
    const source = new ReplicaWatchSource(0, sm);
    entry(sm, 1, put('k', 'v', 5));
    expect(source.resolvedRevision()).toBe(5);
    const resolved: number[] = [];
    const events: number[] = [];
    const sub = source.subscribe(
      { key: b('k'), rangeEnd: b(''), fromRevision: 1, prevKv: false, noPut: false, noDelete: false },
      { onEvents: (es) => events.push(...es.map((e) => e.kv.modRevision)), onResolved: (r) => resolved.push(r), onCompacted: () => events.push(-1) },
    );
    expect(events).toEqual([5]); // history replayed inside subscribe
    source.close(3); // below what is applied: no news
    expect(resolved).toEqual([]);
    source.close(12);
    expect(resolved).toEqual([12]);
    expect(sub.resolvedRevision()).toBe(12);
    entry(sm, 2, put('k', 'w', 20));
    expect(events).toEqual([5, 20]);
    expect(source.resolvedRevision()).toBe(20);
    source.close(15); // closed moves, but applied is ahead: nothing new for the subscription
    expect(resolved).toEqual([12]);
    source.close(30);
    expect(resolved).toEqual([12, 30]);
    sub.cancel();
    source.close(40);
    entry(sm, 3, put('k', 'x', 41));
    expect(resolved).toEqual([12, 30]);
    expect(events).toEqual([5, 20]);
    expect(source.subscriptionCount()).toBe(0);
    expect(sm.hub.watcherCount()).toBe(0);
  });

  it('resolves below the lowest prepared cross-shard transaction: its events come later, at its C, in C order', () => {
    const sm = new KvStateMachine(9, [], [], { sharded: true });
    const source = new ReplicaWatchSource(0, sm);
    const putOp = (key: string, value: string) => ({ request_put: { key: b(key), value: b(value), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } });
    const intent = (txnId: string, revision: number, key: string): InternalRequest => ({
      proposer: '9',
      seq: '0',
      txn_intent: { txn_id: txnId, primary_group: '1', participant_groups: ['1', '2'], ops: { compare: [], success: [putOp(key, txnId)], failure: [] }, deadline_unix_ms: '1000' },
      revision: String(revision),
    });
    const commit = (txnId: string, revision: number): InternalRequest => ({ proposer: '9', seq: '0', txn_resolve: { txn_id: txnId, commit: true, revision: String(revision) } });
    const events: number[] = [];
    source.subscribe(
      { key: b(''), rangeEnd: Buffer.from([0]), fromRevision: 1, prevKv: false, noPut: false, noDelete: false },
      { onEvents: (es) => events.push(...es.map((e) => e.kv.modRevision)), onResolved: () => undefined, onCompacted: () => events.push(-1) },
    );
    entry(sm, 1, put('k', 'v', 5));
    entry(sm, 2, intent('t1', 8, 'a'));
    entry(sm, 3, intent('t2', 9, 'b'));
    expect(sm.appliedRevision()).toBe(9);
    expect(source.resolvedRevision()).toBe(7); // t1 may commit at 8, its own P
    entry(sm, 4, commit('t2', 12)); // decided; t1 (P 8) undecided below it: not made yet
    expect(source.resolvedRevision()).toBe(7);
    expect(events).toEqual([5]);
    entry(sm, 5, commit('t1', 8));
    expect(events).toEqual([5, 8, 12]);
    expect(source.resolvedRevision()).toBe(12);
  });

  it('a start below the compacted revision is told so, and leaves nothing behind', () => {
    const sm = new KvStateMachine(9, [], [], { sharded: true });
    const source = new ReplicaWatchSource(0, sm);
    entry(sm, 1, put('k', 'v', 5));
    entry(sm, 2, put('k', 'w', 9));
    entry(sm, 3, { proposer: '9', seq: '0', compaction: { revision: '9', physical: false } });
    expect(source.compactedRevision()).toBe(9);
    const compacted: number[] = [];
    const sub = source.subscribe(
      { key: b('k'), rangeEnd: b(''), fromRevision: 6, prevKv: false, noPut: false, noDelete: false },
      { onEvents: () => compacted.push(-1), onResolved: () => compacted.push(-2), onCompacted: (c) => compacted.push(c) },
    );
    expect(compacted).toEqual([9]);
    source.close(50);
    sub.cancel();
    expect(compacted).toEqual([9]);
    expect(source.subscriptionCount()).toBe(0);
    expect(() => source.subscribe({ key: b('k'), rangeEnd: b(''), fromRevision: 0, prevKv: false, noPut: false, noDelete: false }, { onEvents: () => {}, onResolved: () => {}, onCompacted: () => {} })).toThrow(RangeError);
  });
});

describe('a replica that leaves (its member no longer hosts the shard)', () => {
  it('hands every live subscription to another replica, from just above what it delivered: no gap, no repeat', () => {
    // Two replicas of one shard: `here` is behind `there` and is retired mid-stream.
    const here = new SimShard(2, 0);
    const there = new SimShard(2, 0);
    for (let r = 1; r <= 6; r++) {
      here.append(put(`k${r}`, `v${r}`, r * 10));
      there.append(put(`k${r}`, `v${r}`, r * 10));
    }
    there.append(del('k1', 70));
    while (there.applyNext());
    here.applyNext();
    here.applyNext(); // applied through revision 20
    const got: number[] = [];
    const resolved: number[] = [];
    const sub = here.source.subscribe(
      { key: b('k'), rangeEnd: b('l'), fromRevision: 1, prevKv: false, noPut: false, noDelete: false },
      { onEvents: (events: MvccEvent[]) => got.push(...events.map((e) => e.kv.modRevision)), onResolved: (r) => resolved.push(r), onCompacted: () => got.push(-1) },
    );
    expect(got).toEqual([10, 20]);
    here.source.retire(there.source);
    expect(here.source.subscriptionCount()).toBe(0);
    expect(there.source.subscriptionCount()).toBe(1);
    // Everything above 20 comes from the other replica, once.
    expect(got).toEqual([10, 20, 30, 40, 50, 60, 70]);
    expect(sub.resolvedRevision()).toBe(there.source.resolvedRevision());
    // The retired replica applying more delivers nothing more.
    while (here.applyNext());
    here.source.close(100);
    expect(got).toEqual([10, 20, 30, 40, 50, 60, 70]);
    sub.cancel();
    expect(there.source.subscriptionCount()).toBe(0);
  });
});

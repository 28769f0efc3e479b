import { describe, expect, it } from 'vitest';
import type { MvccEvent } from '../mvcc/types.ts';
import { REPLAY_CHUNK, REPLAY_CHUNK_BYTES } from '../mvcc/watch-hub.ts';
import { joinInTxnOrder, MERGED_RESPONSE_MAX_BYTES, MERGED_RESPONSE_MAX_EVENTS, mergeEventBytes, WatchMerger } from './watch-merge.ts';
import type { MergedWatchSpec, WatchMergeAction } from './watch-merge.ts';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

function put(key: string, rev: number, value = 'v', prev: number | null = null): MvccEvent {
  const kv = { key: b(key), createRevision: rev, modRevision: rev, version: 1, value: b(value), lease: '0' };
  return { type: 'PUT', kv, prevKv: prev === null ? null : { ...kv, modRevision: prev, value: b('old') } };
}
function del(key: string, rev: number, prev: number | null = null): MvccEvent {
  const kv = { key: b(key), createRevision: 0, modRevision: rev, version: 0, value: b(''), lease: '0' };
  return { type: 'DELETE', kv, prevKv: prev === null ? null : { ...kv, modRevision: prev, value: b('old') } };
}

function merger(o: Partial<MergedWatchSpec> = {}): WatchMerger {
  return new WatchMerger({ key: b('a'), rangeEnd: b('z'), startRevision: 1, prevKv: false, noPut: false, noDelete: false, shards: [0, 1], ...o });
}

/** Actions in a compact form: events as "rev:key" lists with their header, progress, commands. */
function show(actions: WatchMergeAction[]): string[] {
  return actions.map((a) => {
    switch (a.kind) {
      case 'events':
        return `events[${a.events.map((e) => `${e.kv.modRevision}:${e.type === 'DELETE' ? '-' : ''}${e.kv.key.toString()}`).join(' ')}]@${a.headerRevision}`;
      case 'progress':
        return `progress@${a.headerRevision}`;
      case 'canceled':
        return `canceled(shard ${a.shard}, compact ${a.compactRevision})`;
      case 'subscribe':
        return `sub ${a.shard}#${a.generation} from ${a.fromRevision}`;
      case 'unsubscribe':
        return `unsub ${a.shard}#${a.generation}`;
    }
  });
}

describe('WatchMerger', () => {
  it('holds a shard\'s events until every shard has resolved past them, then sends them in revision order', () => {
    const m = merger();
    expect(show(m.start())).toEqual(['sub 0#1 from 1', 'sub 1#1 from 1']);
    // Revisions 3 and 7 on shard 1 arrive first; shard 0 has said nothing yet: nothing can go.
    expect(show(m.onEvents(1, 1, [put('b', 3), put('c', 7)]))).toEqual([]);
    expect(show(m.requestProgress())).toEqual(['progress@0']);
    // Shard 0 commits revision 5 (gaps at 1, 2, 4, 6: revisions the oracle handed out, unused).
    expect(show(m.onEvents(0, 1, [put('a', 5), put('d', 5)]))).toEqual(['events[3:b 5:a 5:d]@5']);
    // Shard 0 resolves through 9 with no write (progress): revision 7 can go, and the header says 7.
    expect(show(m.onResolved(0, 1, 9))).toEqual(['events[7:c]@7']);
    expect(show(m.onResolved(1, 1, 12))).toEqual([]);
    expect(show(m.requestProgress())).toEqual(['progress@9']);
    expect(m.stats()).toMatchObject({ deliveredThrough: 9, frontier: 9, bufferedBytes: 0 });
  });

  it('from a start revision: drops what is older, takes catch-up batches of many revisions, and never splits a revision across responses', () => {
    const m = merger({ startRevision: 4, maxEventsPerResponse: 3 });
    m.start();
    m.onResolved(0, 1, 100);
    const catchUp = [put('a', 2), put('b', 4), put('c', 4), put('d', 6), put('e', 6), put('f', 6), put('g', 8)];
    expect(show(m.onEvents(1, 1, catchUp))).toEqual(['events[4:b 4:c]@4', 'events[6:d 6:e 6:f]@6', 'events[8:g]@8']);
    expect(MERGED_RESPONSE_MAX_EVENTS).toBe(REPLAY_CHUNK);
    expect(MERGED_RESPONSE_MAX_BYTES).toBe(REPLAY_CHUNK_BYTES);
  });

  it('applies NOPUT, NODELETE, prev_kv and the key range itself (a shard sends what it was asked for; the merge does not rely on it)', () => {
    const m = merger({ noDelete: true, key: b('b'), rangeEnd: b('d') });
    m.start();
    m.onResolved(1, 1, 10);
    const out = m.onEvents(0, 1, [put('a', 2), put('b', 3, 'x', 1), del('c', 4, 3), put('c', 5)]);
    expect(show(out)).toEqual(['events[3:b 5:c]@5']);
    expect((out[0] as { events: MvccEvent[] }).events[0].prevKv).toBeNull();

    const p = merger({ noPut: true, prevKv: true });
    p.start();
    p.onResolved(1, 1, 10);
    const out2 = p.onEvents(0, 1, [put('b', 3, 'x', 1), del('c', 4, 3)]);
    expect(show(out2)).toEqual(['events[4:-c]@4']);
    expect((out2[0] as { events: MvccEvent[] }).events[0].prevKv?.modRevision).toBe(3);
  });

  it('drops revisions received twice (a re-subscription overlaps) and messages of a replaced subscription', () => {
    const m = merger({ shards: [0] });
    m.start();
    expect(show(m.onEvents(0, 1, [put('a', 1), put('b', 2)]))).toEqual(['events[1:a 2:b]@2']);
    expect(show(m.onEvents(0, 1, [put('b', 2), put('c', 3)]))).toEqual(['events[3:c]@3']);
    expect(m.stats().duplicateRevisionsDropped).toBe(1);
    expect(show(m.onEvents(0, 7, [put('d', 4)]))).toEqual([]); // no such generation
    expect(() => m.onEvents(0, 1, [put('e', 6), put('f', 5)])).toThrow(/revision 5 after 6/);
    expect(m.stats()).toMatchObject({ deliveredThrough: 3, frontier: 3, bufferedBytes: 0 }); // refused whole
    expect(() => m.onEvents(9, 1, [])).toThrow(/shard 9 is not part/);
  });

  it('answers a progress request after a paused output resumes, with the revision sent through; headers never go back', () => {
    const m = merger();
    m.start();
    m.onResolved(0, 1, 4);
    m.pauseOutput();
    expect(show(m.onEvents(1, 1, [put('a', 2), put('b', 3)]))).toEqual([]);
    expect(show(m.requestProgress())).toEqual([]);
    expect(show(m.resumeOutput())).toEqual(['events[2:a 3:b]@3', 'progress@3']);
    m.onResolved(1, 1, 8);
    expect(show(m.requestProgress())).toEqual(['progress@4']);
  });

  it('joins the parts of one revision written on several shards (a future cross-shard txn) in one response', () => {
    const m = merger({ shards: [0, 1, 2] });
    m.start();
    m.onEvents(2, 1, [put('x', 5)]);
    m.onEvents(0, 1, [put('a', 5), put('b', 6)]);
    expect(show(m.onResolved(2, 1, 6))).toEqual([]);
    expect(show(m.onResolved(1, 1, 6))).toEqual(['events[5:a 5:x 6:b]@6']);
  });

  it('cancels with compact_revision when a shard compacted past what the watch needs, and re-subscribes when it did not', () => {
    const m = merger();
    m.start();
    m.onEvents(0, 1, [put('a', 3)]);
    // Shard 0 needs 4 onward: compacted at 4 loses nothing, so its subscription is simply renewed.
    expect(show(m.onCompacted(0, 1, 4))).toEqual(['sub 0#2 from 4']);
    expect(show(m.onCompacted(1, 1, 5))).toEqual(['unsub 0#2', 'unsub 1#1', 'canceled(shard 1, compact 5)']);
    expect(m.isDone()).toBe(true);
    expect(show(m.onEvents(0, 2, [put('b', 9)]))).toEqual([]);
    expect(show(m.requestProgress())).toEqual([]);
  });

  it('bounds what waits for a lagging shard: parks the shard that is ahead, re-reads it from the first revision it dropped', () => {
    const budget = 8 * 1024;
    const value = 'x'.repeat(100);
    const m = merger({ bufferBudgetBytes: budget });
    const actions: string[] = show(m.start());
    const got: number[] = [];
    const take = (as: WatchMergeAction[]): void => {
      for (const a of as) {
        if (a.kind === 'events') for (const e of a.events) got.push(e.kv.modRevision);
        else actions.push(...show([a]));
      }
    };
    // Shard 0 lags at revision 10; shard 1 writes every odd revision from 11 to 2,009.
    take(m.onResolved(0, 1, 10));
    let peak = 0;
    let generation = 1;
    let rev = 11;
    const firstParkAt = (): number => actions.findIndex((a) => a.startsWith('unsub 1#'));
    while (rev < 2010) {
      if (!m.stats().parkedShards.includes(1)) take(m.onEvents(1, generation, [put('b', rev, value)]));
      peak = Math.max(peak, m.stats().bufferedBytes);
      rev += 2;
    }
    const st = m.stats();
    expect(firstParkAt()).toBeGreaterThan(0);
    expect(st.parkedShards).toEqual([1]);
    expect(peak).toBeLessThanOrEqual(budget);
    const perEvent = mergeEventBytes(put('b', 11, value));
    // Kept: the lowest revisions, at most half the budget once shed.
    expect(st.bufferedEventsByShard.get(1)).toBeLessThanOrEqual(Math.floor(budget / 2 / perEvent));
    expect(got).toEqual([]);
    // Shard 0 catches up: everything held goes out; shard 1 alone holds the frontier back, so it is
    // re-subscribed from the first revision it dropped and re-read from its store.
    const kept = st.bufferedEventsByShard.get(1) as number;
    const resumeFrom = 11 + 2 * kept;
    take(m.onResolved(0, 1, 5000));
    expect(got).toEqual(Array.from({ length: kept }, (_, i) => 11 + 2 * i));
    expect(actions[actions.length - 1]).toBe(`sub 1#2 from ${resumeFrom}`);
    generation = 2;
    const reread: MvccEvent[] = [];
    for (let r = resumeFrom; r < 2010; r += 2) reread.push(put('b', r, value));
    take(m.onEvents(1, generation, reread));
    take(m.onResolved(1, generation, 4000));
    expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => 11 + 2 * i));
    expect(m.stats()).toMatchObject({ deliveredThrough: 4000, bufferedBytes: 0, parks: 1 });
    console.log(
      `lagging shard: budget ${budget} B, ${perEvent} B per event; peak buffered ${peak} B; ${kept} events kept while parked, ` +
        `${1000 - kept} re-read from the store after the lagging shard caught up`,
    );
  });

  it('refuses a start revision below 1 and duplicate shards', () => {
    expect(() => merger({ startRevision: 0 })).toThrow(/start revision must be an integer ≥ 1/);
    expect(() => merger({ shards: [1, 1] })).toThrow(/shard 1 twice/);
    expect(() => merger({ shards: [] })).toThrow(/at least one shard/);
  });
});

describe('joinInTxnOrder (one revision from several shards)', () => {
  const ev = (key: string, tag: string): MvccEvent => ({ type: 'PUT', kv: { key: Buffer.from(key), createRevision: 1, modRevision: 1, version: 1, value: Buffer.from(tag), lease: '0' }, prevKv: null });
  const keysOf = (events: MvccEvent[]): string[] => events.map((e) => e.kv.key.toString());

  it('merges parts sorted by key into key order (a range delete or a revoke over several shards)', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let run = 0; run < 200; run++) {
      const partCount = 1 + rand(16);
      const keys = [...new Set(Array.from({ length: rand(60) }, () => `k${String(rand(1000)).padStart(4, '0')}`))];
      const parts = Array.from({ length: partCount }, () => ({ events: [] as MvccEvent[] }));
      for (const k of [...keys].sort()) parts[rand(partCount)].events.push(ev(k, ''));
      const out: MvccEvent[] = [];
      joinInTxnOrder(parts, out);
      expect(keysOf(out)).toEqual([...keys].sort());
    }
  });

  it("keeps each part's own order when it is not key order (a txn's ops), and breaks ties by part", () => {
    const out: MvccEvent[] = [];
    joinInTxnOrder([{ events: [ev('b', 'p0'), ev('a', 'p0'), ev('d', 'p0')] }, { events: [ev('c', 'p1'), ev('a', 'p1')] }, { events: [] }], out);
    // Part 0 must give b before a, part 1 c before a: a merge by each part's next key.
    expect(out.map((e) => `${e.kv.key.toString()}${e.kv.value.toString()}`)).toEqual(['bp0', 'ap0', 'cp1', 'ap1', 'dp0']);
  });

  it("orders a positioned cross-shard txn's events as etcd does: by op, then by key", () => {
    const at = (key: string, op: number): MvccEvent => ({ ...ev(key, ''), txnOpIndex: op });
    // The txn: put wz (shard A), put wa (shard B), delete [d, e) over both shards, put wm (shard A).
    const shardA = [at('wz', 0), at('d1', 2), at('d4', 2), at('wm', 3)];
    const shardB = [at('wa', 1), at('d2', 2), at('d3', 2)];
    for (const parts of [[shardA, shardB], [shardB, shardA]]) {
      const out: MvccEvent[] = [];
      joinInTxnOrder(parts.map((events) => ({ events })), out);
      expect(keysOf(out)).toEqual(['wz', 'wa', 'd1', 'd2', 'd3', 'd4', 'wm']);
    }
  });
});

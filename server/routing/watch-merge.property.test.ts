// Property test of the merged watch (watch-merge.ts through its edge, merged-watch.ts) against the
// single-store history: random per-shard histories with global gapped revisions (keys placed on
// shards by the real slot map), some revisions written on several shards at once (a cross-shard range
// delete or lease revoke: the one store has them in key order, as etcd sends them; or a txn whose events
// carry their ops' places: the one store has them in op order),
// random interleavings of commits, deliveries, resolved-revision
// reports, progress requests, output pauses and compactions, random start revisions, filters and
// byte budgets (the buffer may pass its budget by the lowest buffered revision, which is never
// dropped). Seeded and replayable: WATCH_MERGE_SEED, WATCH_MERGE_RUNS.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { KeyValue, MvccEvent } from '../mvcc/types.ts';
import { SimShardSource } from '../../test/support/sim-shard-source.ts';
import type { SimRevision } from '../../test/support/sim-shard-source.ts';
import { MergedWatch } from './merged-watch.ts';
import { mergeEventBytes } from './watch-merge.ts';
import { SlotMap } from './slots.ts';

const RUNS = Number(process.env.WATCH_MERGE_RUNS ?? 300);
const SEED = Number(process.env.WATCH_MERGE_SEED ?? 20261203);

const KEYS = Array.from({ length: 40 }, (_, i) => (i < 32 ? `k${String(i).padStart(2, '0')}` : `z${i}`));

const RANGES: Array<{ key: string; end: string }> = [
  { key: 'k', end: 'l' }, // prefix k
  { key: 'k10', end: '\0' }, // from key
  { key: 'k05', end: '' }, // one key
  { key: 'k03', end: 'k20' },
  { key: '', end: '\0' }, // everything
];

interface Scenario {
  shardCount: number;
  revisions: Array<{ gap: number; shardPick: number; acrossShards: boolean; events: Array<{ keyPick: number; del: boolean; valueBytes: number; withPrev: boolean }> }>;
  startPick: number;
  range: number;
  prevKv: boolean;
  noPut: boolean;
  noDelete: boolean;
  budget: number;
  /** Only some runs compact: a canceled watch checks less than a complete one. */
  compacts: boolean;
  ops: Array<{ op: number; shardPick: number; n: number }>;
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  shardCount: fc.constantFrom(1, 2, 4, 8),
  revisions: fc.array(
    fc.record({
      gap: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 4 })),
      shardPick: fc.nat(),
      acrossShards: fc.oneof(fc.constant(false), fc.constant(false), fc.constant(false), fc.constant(true)),
      events: fc.array(fc.record({ keyPick: fc.nat(), del: fc.boolean(), valueBytes: fc.integer({ min: 0, max: 120 }), withPrev: fc.boolean() }), {
        minLength: 1,
        maxLength: 5,
      }),
    }),
    { minLength: 5, maxLength: 80, size: 'max' },
  ),
  startPick: fc.oneof(fc.constant(0), fc.nat()),
  range: fc.oneof(fc.constant(0), fc.constant(4), fc.nat({ max: RANGES.length - 1 })),
  prevKv: fc.boolean(),
  noPut: fc.boolean(),
  noDelete: fc.boolean(),
  budget: fc.constantFrom(150, 400, 1200, 5000, 1 << 20),
  compacts: fc.boolean(),
  ops: fc.array(fc.record({ op: fc.nat({ max: 99 }), shardPick: fc.nat(), n: fc.integer({ min: 1, max: 5 }) }), { minLength: 20, maxLength: 400, size: 'max' }),
});

function kvOf(key: string, rev: number, value: Buffer): KeyValue {
  return { key: Buffer.from(key), createRevision: rev, modRevision: rev, version: 1, value, lease: '0' };
}

/** Builds the one-store history (revision order) and each shard's part of it. */
function build(sc: Scenario, slots: SlotMap): { all: SimRevision[]; perShard: Map<number, SimRevision[]>; end: number } {
  const keysOf = new Map<number, string[]>();
  for (const k of KEYS) {
    const s = slots.shardOfKey(Buffer.from(k));
    keysOf.set(s, [...(keysOf.get(s) ?? []), k]);
  }
  const shards = [...keysOf.keys()].sort((a, b) => a - b);
  const all: SimRevision[] = [];
  const perShard = new Map<number, SimRevision[]>();
  for (let s = 0; s < sc.shardCount; s++) perShard.set(s, []);
  let rev = 1;
  for (const r of sc.revisions) {
    rev += r.gap; // revisions an oracle handed out but nobody used: gaps
    const shard = shards[r.shardPick % shards.length];
    const keys = r.acrossShards ? KEYS : (keysOf.get(shard) as string[]);
    const seen = new Set<string>();
    const events: MvccEvent[] = [];
    // Across shards, half the revisions are a range delete or a revoke (the one store's order is the
    // keys'), half a txn whose ops go in any order, each event carrying its op's place (txnOpIndex, as a
    // positioned cross-shard commit's do): the one store's order is the ops'.
    const positioned = r.acrossShards && r.shardPick % 2 === 1;
    const picks = r.acrossShards && !positioned ? [...r.events].sort((a, b) => keys[a.keyPick % keys.length].localeCompare(keys[b.keyPick % keys.length])) : r.events;
    for (const e of picks) {
      const key = keys[e.keyPick % keys.length];
      if (seen.has(key)) continue; // one event per key per revision, as a txn produces
      seen.add(key);
      const prev = e.withPrev ? kvOf(key, Math.max(1, rev - 1), Buffer.alloc(3, 7)) : null;
      const event: MvccEvent = e.del
        ? { type: 'DELETE', kv: { ...kvOf(key, rev, Buffer.alloc(0)), createRevision: 0, version: 0 }, prevKv: prev }
        : { type: 'PUT', kv: kvOf(key, rev, Buffer.alloc(e.valueBytes, rev % 251)), prevKv: prev };
      if (positioned) event.txnOpIndex = events.length;
      events.push(event);
    }
    const g = { revision: rev, events };
    all.push(g);
    if (r.acrossShards) {
      // Each shard gets its keys' events, in the same order.
      for (const s of shards) {
        const mine = events.filter((e) => slots.shardOfKey(e.kv.key) === s);
        if (mine.length > 0) (perShard.get(s) as SimRevision[]).push({ revision: rev, events: mine });
      }
    } else (perShard.get(shard) as SimRevision[]).push(g);
    rev++;
  }
  return { all, perShard, end: rev + 3 };
}

function inRange(k: Buffer, key: Buffer, end: Buffer): boolean {
  if (end.length === 0) return k.equals(key);
  if (Buffer.compare(k, key) < 0) return false;
  return (end.length === 1 && end[0] === 0) || Buffer.compare(k, end) < 0;
}

const fmt = (e: MvccEvent): string =>
  `${e.kv.modRevision}:${e.type}:${e.kv.key.toString()}:${e.kv.value.toString('hex')}:${e.prevKv === null ? '-' : `${e.prevKv.modRevision}/${e.prevKv.value.toString('hex')}`}`;

interface Figures {
  runs: number;
  eventsDelivered: number;
  responses: number;
  progress: number;
  canceled: number;
  parks: number;
  rereads: number;
  duplicatesDropped: number;
  maxBufferedBytesOverBudget: number;
  runsThatParked: number;
}

describe('merged watch over several shards (property)', () => {
  it('equals the single-store history filtered to the range, in order, exactly once; progress never goes back or passes an undelivered event; buffer within budget', async () => {
    const fig: Figures = {
      runs: 0,
      eventsDelivered: 0,
      responses: 0,
      progress: 0,
      canceled: 0,
      parks: 0,
      rereads: 0,
      duplicatesDropped: 0,
      maxBufferedBytesOverBudget: 0,
      runsThatParked: 0,
    };
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (sc) => {
        const slots = SlotMap.create(sc.shardCount);
        const { all, perShard, end } = build(sc, slots);
        const range = RANGES[sc.range];
        const key = Buffer.from(range.key);
        const rangeEnd = Buffer.from(range.end);
        const shardList = slots.shardsOfRange(key, rangeEnd).shards;
        const startRevision = 1 + (sc.startPick % (end + 1));
        const expected = all
          .filter((g) => g.revision >= startRevision)
          .flatMap((g) => g.events)
          .filter((e) => inRange(e.kv.key, key, rangeEnd) && !(e.type === 'PUT' ? sc.noPut : sc.noDelete))
          .map((e) => (sc.prevKv ? e : { ...e, prevKv: null }))
          .map(fmt);
        const sources = new Map<number, SimShardSource>();
        for (const s of shardList) sources.set(s, new SimShardSource(s, perShard.get(s) ?? [], end));

        const got: string[] = [];
        let lastHeader = startRevision - 1;
        let lastRevision = 0;
        let canceledAt: number | null = null;
        const expectPrefixThrough = (h: number): void => {
          const want = expected.filter((e) => Number(e.split(':')[0]) <= h);
          expect(got).toEqual(want);
        };
        const watch = new MergedWatch(
          { key, rangeEnd, startRevision, prevKv: sc.prevKv, noPut: sc.noPut, noDelete: sc.noDelete, shards: shardList, bufferBudgetBytes: sc.budget },
          sources,
          {
            onEvents(events, header) {
              expect(canceledAt).toBeNull();
              expect(events.length).toBeGreaterThan(0);
              expect(header).toBeGreaterThanOrEqual(lastHeader);
              for (const e of events) {
                expect(e.kv.modRevision).toBeGreaterThanOrEqual(lastRevision);
                expect(e.kv.modRevision).toBeLessThanOrEqual(header);
                lastRevision = e.kv.modRevision;
                got.push(fmt(e));
              }
              lastHeader = header;
              expectPrefixThrough(header);
              fig.responses++;
            },
            onProgress(header) {
              expect(canceledAt).toBeNull();
              expect(header).toBeGreaterThanOrEqual(lastHeader);
              lastHeader = header;
              expectPrefixThrough(header);
              fig.progress++;
            },
            onCompacted(c) {
              // Legitimate only if the shard compacted past what the watch still needed.
              expect(c).toBeGreaterThan(lastHeader + 1);
              canceledAt = c;
            },
          },
        );
        watch.start();
        // The budget, plus the lowest buffered revision (kept: it goes out next), at most the heaviest one.
        const heaviestRevisionBytes = Math.max(0, ...all.map((g) => g.events.reduce((n, e) => n + mergeEventBytes(sc.prevKv ? e : { ...e, prevKv: null }), 0)));
        const checkBudget = (): void => {
          const st = watch.stats();
          expect(st.bufferedBytes).toBeLessThanOrEqual(sc.budget + heaviestRevisionBytes);
          fig.maxBufferedBytesOverBudget = Math.max(fig.maxBufferedBytesOverBudget, st.bufferedBytes / sc.budget);
        };
        const sourceList = [...sources.values()];
        for (const o of sc.ops) {
          const src = sourceList[o.shardPick % sourceList.length];
          if (o.op < 30) for (let i = 0; i < o.n; i++) src.commitNext();
          else if (o.op < 60) for (const sub of [...src.subscriptions]) sub.deliver(o.n);
          else if (o.op < 75) for (const sub of [...src.subscriptions]) sub.reportResolved();
          else if (o.op < 82) watch.requestProgress();
          else if (o.op < 88) watch.pauseOutput();
          else if (o.op < 96) watch.resumeOutput();
          else if (o.op < 97) watch.pollResolved();
          else if (o.op < 98) for (const sub of [...src.subscriptions]) sub.rewind(o.n);
          else if (sc.compacts) src.compact(src.resolvedRevision() - o.n * 3);
          checkBudget();
        }
        // Let everything commit and flow: the watch must catch up to the end (or have been canceled).
        watch.resumeOutput();
        for (const s of sourceList) while (s.commitNext());
        for (let round = 0; round < 10_000 && canceledAt === null; round++) {
          const before = watch.stats().deliveredThrough;
          for (const s of sourceList) for (const sub of [...s.subscriptions]) sub.deliver(1 + (round % 7));
          for (const s of sourceList) for (const sub of [...s.subscriptions]) sub.reportResolved();
          checkBudget();
          if (watch.stats().deliveredThrough >= end && before >= end) break;
        }
        const st = watch.stats();
        fig.runs++;
        fig.parks += st.parks;
        fig.duplicatesDropped += st.duplicateRevisionsDropped;
        if (st.parks > 0) fig.runsThatParked++;
        fig.rereads += sourceList.reduce((n, s) => n + s.subscribeCount - 1, 0);
        fig.eventsDelivered += got.length;
        if (canceledAt !== null) {
          fig.canceled++;
          expect(expected.slice(0, got.length)).toEqual(got);
          return;
        }
        watch.requestProgress();
        expect(lastHeader).toBe(end);
        expect(got).toEqual(expected);
        watch.cancel();
        for (const s of sourceList) expect(s.subscriptions.size).toBe(0);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    console.log(
      `merged watch over ${fig.runs} random histories (seed ${SEED}): ${fig.eventsDelivered} events in ${fig.responses} responses, ` +
        `${fig.progress} progress notifications, ${fig.canceled} canceled by compaction; ${fig.runsThatParked} runs parked shards ` +
        `(${fig.parks} parks, ${fig.rereads} re-subscriptions, ${fig.duplicatesDropped} duplicate revisions dropped); ` +
        `buffer peak ${(fig.maxBufferedBytesOverBudget * 100).toFixed(0)}% of budget`,
    );
    expect(fig.runsThatParked).toBeGreaterThan(0);
    expect(fig.canceled).toBeGreaterThan(0);
  }, 120_000);
});

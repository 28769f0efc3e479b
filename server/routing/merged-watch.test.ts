// The merged watch over real shards' stores and watch hubs (test/support/hub-shard-source.ts: one
// MvccStore + WatchHub per shard, writing at revisions from a shared oracle, with gaps): catch-up from a past start
// revision through each hub's replay, live events, filters, compaction, and a small byte budget that
// parks shards and re-reads them from their stores. Seeded: MERGED_WATCH_SEED, MERGED_WATCH_RUNS.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MvccEvent } from '../mvcc/types.ts';
import { delOp, putOp, txnOp } from '../mvcc/test-helpers.ts';
import { HubShardSource, Oracle } from '../../test/support/hub-shard-source.ts';
import { MergedWatch } from './merged-watch.ts';

const RUNS = Number(process.env.MERGED_WATCH_RUNS ?? 150);
const SEED = Number(process.env.MERGED_WATCH_SEED ?? 4141);

const RANGES = [
  { key: '', end: '\0' },
  { key: 'a', end: 'c' },
  { key: 'b1', end: '' },
  { key: 'a2', end: 'c1' },
];

interface Op {
  shardPick: number;
  kind: number;
  keyPick: number;
  gap: number;
  progress: boolean;
  pause: number;
}

const opA: fc.Arbitrary<Op> = fc.record({
  shardPick: fc.nat(),
  kind: fc.nat({ max: 9 }),
  keyPick: fc.nat({ max: 3 }),
  gap: fc.oneof(fc.constant(0), fc.nat({ max: 3 })),
  progress: fc.boolean(),
  pause: fc.nat({ max: 9 }),
});

const fmt = (e: MvccEvent): string =>
  `${e.kv.modRevision}:${e.type}:${e.kv.key.toString('latin1')}:${e.kv.value.toString('latin1')}:c${e.kv.createRevision}:${e.prevKv === null ? '-' : `${e.prevKv.modRevision}`}`;

function inRange(k: Buffer, key: Buffer, end: Buffer): boolean {
  if (end.length === 0) return k.equals(key);
  if (Buffer.compare(k, key) < 0) return false;
  return (end.length === 1 && end[0] === 0) || Buffer.compare(k, end) < 0;
}

describe('merged watch over real stores and watch hubs', () => {
  it('delivers the shards\' events merged in global revision order, exactly once, from any start revision; compaction cancels only when needed', async () => {
    let complete = 0;
    let canceled = 0;
    let parks = 0;
    let events = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          shardCount: fc.integer({ min: 1, max: 3 }),
          before: fc.array(opA, { maxLength: 40, size: 'max' }),
          after: fc.array(opA, { maxLength: 60, size: 'max' }),
          startPick: fc.oneof(fc.constant(-1), fc.nat()),
          compactPick: fc.oneof(fc.constant(-1), fc.constant(-1), fc.nat()),
          range: fc.nat({ max: RANGES.length - 1 }),
          prevKv: fc.boolean(),
          noPut: fc.boolean(),
          noDelete: fc.boolean(),
          budget: fc.constantFrom(200, 600, 1 << 20),
        }),
        async (sc) => {
          const oracle = new Oracle();
          const shards = Array.from({ length: sc.shardCount }, (_, i) => new HubShardSource(i, oracle));
          const written = oracle.history;
          const write = (o: Op): void => {
            const s = shards[o.shardPick % shards.length];
            const k = (n: number): string => `${'abc'[s.shard]}${n}`;
            const value = `v${oracle.last}`.repeat(1 + (o.keyPick % 3));
            if (o.kind < 6) s.write((st, at) => st.put(putOp(k(o.keyPick), value), at), o.gap);
            else if (o.kind < 8) s.write((st, at) => st.deleteRange(delOp(k(o.keyPick)), at), o.gap);
            else s.write((st, at) => st.txn(txnOp([], [{ type: 'put', put: putOp(k(o.keyPick), value) }, { type: 'put', put: putOp(k(o.keyPick + 1), value) }]), at), o.gap);
          };
          for (const o of sc.before) write(o);
          if (sc.compactPick >= 0) {
            const s = shards[sc.compactPick % shards.length];
            s.compact(1 + (sc.compactPick % oracle.last)); // may be a gap revision of this shard
          }
          // etcd's start_revision 0 ("from now") is the oracle's last revision + 1 at the edge.
          const startRevision = sc.startPick < 0 ? oracle.last + 1 : 1 + (sc.startPick % (oracle.last + 1));
          // The hub's own rule: the start revision is below the store's compaction.
          const expectCancel = shards.some((s) => startRevision < s.store.compactedRevision());
          const range = RANGES[sc.range];
          const key = Buffer.from(range.key, 'latin1');
          const rangeEnd = Buffer.from(range.end, 'latin1');

          const got: string[] = [];
          let lastHeader = 0;
          let cancel: number | null = null;
          // Replayed from a store compacted at C, the event at C itself has lost its previous version
          // (older than C): no prev_kv, as in etcd. Those events were written before the watch existed.
          const compactedAt = new Set(shards.map((s) => s.store.compactedRevision()).filter((r) => r > 0));
          const expected = (): string[] =>
            written
              .filter((e) => e.kv.modRevision >= startRevision && inRange(e.kv.key, key, rangeEnd) && !(e.type === 'PUT' ? sc.noPut : sc.noDelete))
              .map((e) => fmt(sc.prevKv && !compactedAt.has(e.kv.modRevision) ? e : { ...e, prevKv: null }));
          const checkThrough = (h: number): void => {
            expect(h).toBeGreaterThanOrEqual(lastHeader);
            lastHeader = h;
            expect(got).toEqual(expected().filter((e) => Number(e.split(':')[0]) <= h));
          };
          const watch = new MergedWatch(
            { key, rangeEnd, startRevision, prevKv: sc.prevKv, noPut: sc.noPut, noDelete: sc.noDelete, shards: shards.map((s) => s.shard), bufferBudgetBytes: sc.budget },
            new Map(shards.map((s) => [s.shard, s])),
            {
              onEvents: (evs, header) => {
                for (const e of evs) got.push(fmt(e));
                checkThrough(header);
              },
              onProgress: (header) => checkThrough(header),
              onCompacted: (c) => {
                cancel = c;
              },
            },
          );
          watch.start();
          for (const o of sc.after) {
            write(o);
            if (o.pause === 0) watch.pauseOutput();
            else if (o.pause < 3) watch.resumeOutput();
            if (o.progress) watch.requestProgress();
            expect(watch.stats().bufferedBytes).toBeLessThanOrEqual(sc.budget);
          }
          watch.resumeOutput();
          watch.requestProgress();
          parks += watch.stats().parks;
          if (expectCancel) {
            expect(cancel).not.toBeNull();
            expect(got).toEqual([]);
            canceled++;
            return;
          }
          expect(cancel).toBeNull();
          expect(lastHeader).toBe(oracle.last);
          expect(got).toEqual(expected());
          events += got.length;
          complete++;
          watch.cancel();
          for (const s of shards) expect(s.hub.watcherCount()).toBe(0);
        },
      ),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    console.log(
      `merged watch over real hubs, ${RUNS} runs (seed ${SEED}): ${complete} complete (${events} events), ${canceled} canceled by compaction, ${parks} shard parks re-read from their stores`,
    );
    expect(parks).toBeGreaterThan(0);
    expect(canceled).toBeGreaterThan(0);
  }, 120_000);
});

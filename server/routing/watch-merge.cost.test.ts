// What merging costs per event with many shards: S shards write revisions round-robin (each revision on
// one shard, gaps where the oracle handed out revisions nobody used), and every shard reports its
// resolved revision once per "tick" of 64 revisions, as an edge polling closed timestamps would. Prints
// events per second; asserts the output is complete and in order (timing is only printed: the machine is
// shared).
import { describe, expect, it } from 'vitest';
import type { MvccEvent } from '../mvcc/types.ts';
import { WatchMerger } from './watch-merge.ts';

function run(shardCount: number, revisions: number): { perSecond: number; sent: number } {
  const shards = Array.from({ length: shardCount }, (_, i) => i);
  const m = new WatchMerger({ key: Buffer.from('a'), rangeEnd: Buffer.from([0]), startRevision: 1, prevKv: false, noPut: false, noDelete: false, shards, bufferBudgetBytes: 1 << 30 });
  m.start();
  const value = Buffer.alloc(16, 1);
  let sent = 0;
  let last = 0;
  const take = (actions: ReturnType<WatchMerger['onEvents']>): void => {
    for (const a of actions) {
      if (a.kind !== 'events') continue;
      for (const e of a.events) {
        if (e.kv.modRevision <= last) throw new Error(`out of order: ${e.kv.modRevision} after ${last}`);
        last = e.kv.modRevision;
        sent++;
      }
    }
  };
  const started = process.hrtime.bigint();
  let rev = 1;
  for (let i = 0; i < revisions; i++) {
    rev += 1 + (i % 5 === 0 ? 1 : 0);
    const shard = (i * 7) % shardCount;
    const key = Buffer.from(`a${i}`);
    const e: MvccEvent = { type: 'PUT', kv: { key, createRevision: rev, modRevision: rev, version: 1, value, lease: '0' }, prevKv: null };
    take(m.onEvents(shard, 1, [e]));
    if (i % 64 === 63) for (const s of shards) take(m.onResolved(s, 1, rev));
  }
  for (const s of shards) take(m.onResolved(s, 1, rev));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { perSecond: revisions / seconds, sent };
}

describe('merged watch cost', () => {
  it('merges events from 16 and 256 shards completely and in order; prints events/s', () => {
    const lines: string[] = [];
    for (const shardCount of [16, 256]) {
      const revisions = 200_000;
      const r = run(shardCount, revisions);
      expect(r.sent).toBe(revisions);
      lines.push(`${shardCount} shards: ${Math.round(r.perSecond).toLocaleString('en-US')} events/s`);
    }
    console.log(`watch merge, 200,000 one-event revisions, resolved reported every 64 revisions by every shard: ${lines.join('; ')}`);
  }, 60_000);
});

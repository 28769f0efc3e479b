// The I/O edge of a watch over several shards: runs a WatchMerger (the pure ordering core) against
// the shards' watch sources (server/shard/watch-source.ts) and hands its responses to a sink shaped
// like the hub's WatchSink, plus progress. server/api/watch-service.ts runs one per multi-shard watch.
//
// Why it is safe: every merger input goes through one queue, so a source that calls its sink from
// inside subscribe() (a synchronous replay, as the hub does) or a sink that cancels from inside
// onEvents cannot re-enter the merger; actions run in the order the merger returned them. Each
// subscription's callbacks carry the generation they were opened with, so the merger ignores a
// parked or replaced subscription's late messages.

import type { MvccEvent } from '../mvcc/types.ts';
import type { ShardWatchSource, ShardWatchSubscription } from '../shard/watch-source.ts';
import { WatchMerger } from './watch-merge.ts';
import type { MergedWatchSpec, WatchMergeAction, WatchMergeStats } from './watch-merge.ts';

export interface MergedWatchSink {
  /** One watch response; every event at or below headerRevision has now been delivered. */
  onEvents(events: MvccEvent[], headerRevision: number): void;
  onProgress(headerRevision: number): void;
  /** The watch is canceled: some shard compacted past what it still needed (etcd's compact_revision). */
  onCompacted(compactRevision: number): void;
}

interface Live {
  generation: number;
  subscription: ShardWatchSubscription | null;
}

export class MergedWatch {
  private readonly merger: WatchMerger;
  private readonly spec: MergedWatchSpec;
  private readonly sources: ReadonlyMap<number, ShardWatchSource>;
  private readonly sink: MergedWatchSink;
  private readonly live = new Map<number, Live>();
  private readonly queue: Array<() => WatchMergeAction[]> = [];
  private running = false;

  constructor(spec: MergedWatchSpec, sources: ReadonlyMap<number, ShardWatchSource>, sink: MergedWatchSink) {
    for (const shard of spec.shards) if (!sources.has(shard)) throw new RangeError(`no watch source for shard ${shard}`);
    this.spec = spec;
    this.sources = sources;
    this.sink = sink;
    this.merger = new WatchMerger(spec);
  }

  start(): void {
    this.run(() => this.merger.start());
  }

  /** Feeds every live subscription's resolved revision to the merger (a progress tick). */
  pollResolved(): void {
    for (const [shard, l] of this.live) {
      const sub = l.subscription;
      if (sub === null) continue;
      const generation = l.generation;
      this.run(() => this.merger.onResolved(shard, generation, sub.resolvedRevision()));
    }
  }

  /** A progress request: answered with the revision through which everything has been delivered. */
  requestProgress(): void {
    this.pollResolved();
    this.run(() => this.merger.requestProgress());
  }

  pauseOutput(): void {
    this.merger.pauseOutput();
  }

  resumeOutput(): void {
    this.run(() => this.merger.resumeOutput());
  }

  cancel(): void {
    this.run(() => this.merger.cancel());
  }

  stats(): WatchMergeStats {
    return this.merger.stats();
  }

  private run(input: () => WatchMergeAction[]): void {
    this.queue.push(input);
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const next = this.queue.shift() as () => WatchMergeAction[];
        for (const action of next()) this.perform(action);
      }
    } finally {
      this.running = false;
      this.queue.length = 0;
    }
  }

  private perform(a: WatchMergeAction): void {
    switch (a.kind) {
      case 'events':
        this.sink.onEvents(a.events, a.headerRevision);
        return;
      case 'progress':
        this.sink.onProgress(a.headerRevision);
        return;
      case 'canceled':
        this.sink.onCompacted(a.compactRevision);
        return;
      case 'unsubscribe': {
        const l = this.live.get(a.shard);
        if (l !== undefined && l.generation === a.generation) {
          this.live.delete(a.shard);
          l.subscription?.cancel();
        }
        return;
      }
      case 'subscribe':
        this.subscribe(a.shard, a.generation, a.fromRevision);
        return;
    }
  }

  private subscribe(shard: number, generation: number, fromRevision: number): void {
    const source = this.sources.get(shard) as ShardWatchSource;
    const compacted = source.compactedRevision();
    if (fromRevision < compacted) {
      this.run(() => this.merger.onCompacted(shard, generation, compacted));
      return;
    }
    const l: Live = { generation, subscription: null };
    this.live.set(shard, l);
    const spec = this.spec;
    l.subscription = source.subscribe(
      { key: spec.key, rangeEnd: spec.rangeEnd, fromRevision, prevKv: spec.prevKv, noPut: spec.noPut, noDelete: spec.noDelete },
      {
        onEvents: (events) => this.run(() => this.merger.onEvents(shard, generation, events)),
        onResolved: (revision) => this.run(() => this.merger.onResolved(shard, generation, revision)),
        onCompacted: (c) => this.run(() => this.merger.onCompacted(shard, generation, c)),
      },
    );
    // Unsubscribed (or the watch ended) while subscribe() replayed synchronously.
    if (this.live.get(shard) !== l) l.subscription.cancel();
  }
}

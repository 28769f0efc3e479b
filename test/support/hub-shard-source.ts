// The shard seam (server/shard/watch-source.ts) implemented over a real MvccStore and WatchHub, for
// tests: several stores stand for several shards, and a shared counter stands for the revision oracle.
// Each write is applied at the oracle's next revision (the store's writes at a given revision), so the
// store and its hub see this shard's revisions with gaps — the revisions other shards used, and the
// ones the oracle handed out that nobody used — exactly as a shard applying its log would. Writes are
// applied and published synchronously, so a subscription has everything up to the oracle's last
// revision: that is its resolved revision (a shard with no writes advances it as the oracle moves on).

import { MvccStore } from '../../server/mvcc/store.ts';
import type { WriteOutcome } from '../../server/mvcc/store.ts';
import type { MvccEvent } from '../../server/mvcc/types.ts';
import { WatchHub } from '../../server/mvcc/watch-hub.ts';
import type { ShardSubscribeRequest, ShardWatchSink, ShardWatchSource, ShardWatchSubscription } from '../../server/shard/watch-source.ts';

export class Oracle {
  last = 1;
  /** Every shard's events in revision order, appended before they are published: the one-store history. */
  readonly history: MvccEvent[] = [];
  /** The next revision, after `skipped` revisions handed out to writes that used none (gaps). */
  next(skipped = 0): number {
    this.last += skipped + 1;
    return this.last;
  }
}

export class HubShardSource implements ShardWatchSource {
  readonly shard: number;
  readonly store = new MvccStore();
  readonly hub = new WatchHub(this.store);
  private readonly oracle: Oracle;

  constructor(shard: number, oracle: Oracle) {
    this.shard = shard;
    this.oracle = oracle;
  }

  /** Applies a write at the oracle's next revision and publishes it; returns its events. */
  write<R>(apply: (store: MvccStore, atRevision: number) => WriteOutcome<R>, skipped = 0): MvccEvent[] {
    const at = this.oracle.next(skipped);
    const out = apply(this.store, at);
    // A write that changes nothing used its revision up: a gap, no events.
    this.oracle.history.push(...out.events);
    if (out.events.length > 0) this.hub.notify(out.events, at);
    return out.events;
  }

  /** Compacts at `revision`; the shard has applied everything the oracle handed out so far. */
  compact(revision: number): void {
    this.store.compact(revision, this.oracle.last);
  }

  resolvedRevision(): number {
    return this.oracle.last;
  }

  compactedRevision(): number {
    return this.store.compactedRevision();
  }

  subscribe(request: ShardSubscribeRequest, sink: ShardWatchSink): ShardWatchSubscription {
    let canceled = false;
    const handle = this.hub.watch(
      {
        key: request.key,
        rangeEnd: request.rangeEnd,
        startRevision: request.fromRevision,
        prevKv: request.prevKv,
        noPut: request.noPut,
        noDelete: request.noDelete,
      },
      {
        onEvents: (events) => sink.onEvents(events),
        onCompacted: (c) => sink.onCompacted(c),
      },
    );
    return {
      resolvedRevision: () => this.oracle.last,
      cancel: () => {
        if (canceled) return;
        canceled = true;
        this.hub.cancel(handle);
      },
    };
  }
}

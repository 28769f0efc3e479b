// The shard seam (server/shard/watch-source.ts) implemented over a real MvccStore and WatchHub, for
// tests: several stores stand for several shards, and a shared counter stands for the revision
// oracle. A store's own revisions are dense, so each store keeps the global revision it was handed
// for each of its writes and the source rewrites its events' revisions on the way out — exactly the
// events a shard whose log carries oracle revisions would emit. Writes are applied and published to
// the hub synchronously, so a subscription has everything up to the oracle's last revision handed
// out: that is its resolved revision (a shard with no writes advances it as the oracle moves on).

import { MvccStore } from '../../server/mvcc/store.ts';
import type { WriteOutcome } from '../../server/mvcc/store.ts';
import type { KeyValue, MvccEvent } from '../../server/mvcc/types.ts';
import { WatchHub } from '../../server/mvcc/watch-hub.ts';
import type { ShardSubscribeRequest, ShardWatchSink, ShardWatchSource, ShardWatchSubscription } from '../../server/shard/watch-source.ts';

export class Oracle {
  last = 1;
  /** Every shard's events in global revision order, appended before they are published: the one-store history. */
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
  /** globalOf[r] = the global revision of store revision r. */
  private readonly globalOf: number[];

  constructor(shard: number, oracle: Oracle) {
    this.shard = shard;
    this.oracle = oracle;
    this.globalOf = Array.from({ length: this.store.currentRevision() + 1 }, (_, r) => r);
  }

  /** Applies a write at the oracle's next revision and publishes it; returns its events, rewritten. */
  write<R>(apply: (store: MvccStore) => WriteOutcome<R>, skipped = 0): MvccEvent[] {
    const before = this.store.currentRevision();
    const out = apply(this.store);
    if (out.revision === before) return []; // a write that changed nothing (etcd keeps the revision)
    this.globalOf[out.revision] = this.oracle.next(skipped);
    const events = out.events.map((e) => this.rewrite(e));
    this.oracle.history.push(...events);
    if (out.events.length > 0) this.hub.notify(out.events, out.revision);
    return events;
  }

  /** The global revision of a store revision (0 stays 0). */
  global(r: number): number {
    return r === 0 ? 0 : this.globalOf[r];
  }

  private rewriteKv(kv: KeyValue): KeyValue {
    return { ...kv, modRevision: this.global(kv.modRevision), createRevision: this.global(kv.createRevision) };
  }

  private rewrite(e: MvccEvent): MvccEvent {
    return { type: e.type, kv: this.rewriteKv(e.kv), prevKv: e.prevKv === null ? null : this.rewriteKv(e.prevKv) };
  }

  /** The first store revision whose global revision is ≥ `global`. */
  storeRevisionFrom(global: number): number {
    let r = 1;
    while (r < this.globalOf.length && this.globalOf[r] < global) r++;
    return r;
  }

  resolvedRevision(): number {
    return this.oracle.last;
  }

  /** In global terms: a subscription from below it needs a store revision below the store's compaction. */
  compactedRevision(): number {
    const c = this.store.compactedRevision();
    return c <= 0 ? 0 : this.global(c - 1) + 1;
  }

  subscribe(request: ShardSubscribeRequest, sink: ShardWatchSink): ShardWatchSubscription {
    let handle = -1;
    let canceled = false;
    handle = this.hub.watch(
      {
        key: request.key,
        rangeEnd: request.rangeEnd,
        startRevision: this.storeRevisionFrom(request.fromRevision),
        prevKv: request.prevKv,
        noPut: request.noPut,
        noDelete: request.noDelete,
      },
      {
        onEvents: (events) => sink.onEvents(events.map((e) => this.rewrite(e))),
        onCompacted: () => sink.onCompacted(this.compactedRevision()),
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

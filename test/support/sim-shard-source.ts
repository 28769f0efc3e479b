// A simulated shard replica for merged-watch tests: implements the seam (server/shard/watch-source.ts)
// over a scripted history of one shard's revision groups (global, gapped revisions from one oracle).
// Time is explicit: commitNext() applies the shard's next revision, a subscription's deliver(n) hands
// over up to n committed revisions — so a test interleaves commits, deliveries and resolved-revision
// reports of several shards in any order. Subscriptions replay from their start revision exactly as
// WatchHub does (whole revisions, in order, filters applied), and report compaction as it does.

import { withoutPrevKv, type MvccEvent } from '../../server/mvcc/types.ts';
import type { ShardSubscribeRequest, ShardWatchSink, ShardWatchSource, ShardWatchSubscription } from '../../server/shard/watch-source.ts';

export interface SimRevision {
  revision: number;
  events: MvccEvent[];
}

function inRange(k: Buffer, key: Buffer, end: Buffer): boolean {
  if (end.length === 0) return k.equals(key);
  if (Buffer.compare(k, key) < 0) return false;
  return (end.length === 1 && end[0] === 0) || Buffer.compare(k, end) < 0;
}

export class SimShardSource implements ShardWatchSource {
  readonly shard: number;
  readonly history: readonly SimRevision[];
  /** Closed timestamp once the whole history is applied (the oracle has moved past it). */
  private readonly endRevision: number;
  committed = 0;
  private compacted = 0;
  readonly subscriptions = new Set<SimSubscription>();
  subscribeCount = 0;

  constructor(shard: number, history: readonly SimRevision[], endRevision: number) {
    this.shard = shard;
    this.history = history;
    this.endRevision = endRevision;
  }

  commitNext(): boolean {
    if (this.committed >= this.history.length) return false;
    this.committed++;
    return true;
  }

  /** Below the next revision this shard will apply: nothing more can commit at or below it. */
  resolvedRevision(): number {
    return this.committed < this.history.length ? this.history[this.committed].revision - 1 : this.endRevision;
  }

  compactedRevision(): number {
    return this.compacted;
  }

  /** Compacts at `revision` (never past what is applied, as etcd refuses a future revision). */
  compact(revision: number): void {
    // A caught-up subscription is live (the hub's fan-out): compaction never cancels it.
    for (const sub of this.subscriptions) sub.syncIfCaughtUp();
    const applied = this.committed > 0 ? this.history[this.committed - 1].revision : 0;
    this.compacted = Math.max(this.compacted, Math.min(revision, Math.max(applied, this.resolvedRevision())));
  }

  subscribe(request: ShardSubscribeRequest, sink: ShardWatchSink): ShardWatchSubscription {
    this.subscribeCount++;
    const sub = new SimSubscription(this, request, sink);
    this.subscriptions.add(sub);
    return sub;
  }
}

export class SimSubscription implements ShardWatchSubscription {
  private readonly source: SimShardSource;
  private readonly request: ShardSubscribeRequest;
  private readonly sink: ShardWatchSink;
  private nextIndex: number;
  private nextRev: number;
  canceled = false;

  constructor(source: SimShardSource, request: ShardSubscribeRequest, sink: ShardWatchSink) {
    this.source = source;
    this.request = request;
    this.sink = sink;
    this.nextRev = request.fromRevision;
    this.nextIndex = source.history.findIndex((g) => g.revision >= request.fromRevision);
    if (this.nextIndex < 0) this.nextIndex = source.history.length;
  }

  private caughtUp(): boolean {
    return this.nextIndex >= this.source.committed;
  }

  /** Live: everything applied was handed over, so the next revision needed is past the closed timestamp. */
  syncIfCaughtUp(): void {
    if (!this.canceled && this.caughtUp()) this.nextRev = Math.max(this.nextRev, this.source.resolvedRevision() + 1);
  }

  resolvedRevision(): number {
    this.syncIfCaughtUp();
    if (this.canceled || this.caughtUp()) return this.nextRev - 1;
    return this.source.history[this.nextIndex].revision - 1;
  }

  /** Hands over up to `maxRevisions` applied revisions (a revision with no matching event is skipped). */
  deliver(maxRevisions: number): void {
    this.syncIfCaughtUp();
    if (this.canceled || this.caughtUp()) return;
    if (this.nextRev < this.source.compactedRevision()) {
      this.cancel();
      this.sink.onCompacted(this.source.compactedRevision());
      return;
    }
    const out: MvccEvent[] = [];
    for (let n = 0; n < maxRevisions && !this.caughtUp(); n++) {
      const g = this.source.history[this.nextIndex++];
      this.nextRev = g.revision + 1;
      for (const e of g.events) {
        if (!inRange(e.kv.key, this.request.key, this.request.rangeEnd)) continue;
        if (e.type === 'PUT' ? this.request.noPut : this.request.noDelete) continue;
        out.push(this.request.prevKv ? e : withoutPrevKv(e));
      }
    }
    if (out.length > 0) this.sink.onEvents(out);
  }

  /** Steps back over up to n delivered revisions, to send them again (a replica failover's overlap). */
  rewind(n: number): void {
    const first = this.source.history.findIndex((g) => g.revision >= this.request.fromRevision);
    const floor = first < 0 ? this.source.history.length : first;
    this.nextIndex = Math.max(floor, Math.min(this.nextIndex, this.source.committed) - n);
    this.nextRev = this.nextIndex < this.source.history.length ? Math.min(this.nextRev, this.source.history[this.nextIndex].revision) : this.nextRev;
  }

  reportResolved(): void {
    if (!this.canceled) this.sink.onResolved(this.resolvedRevision());
  }

  cancel(): void {
    this.canceled = true;
    this.source.subscriptions.delete(this);
  }
}

// A merged watch's view of one shard replica on this member (server/shard/watch-source.ts's seam over
// the replica's KvStateMachine: its MvccStore, WatchHub and applied revision), plus the replica's closed
// revision, which the closing rounds (shard-closer.ts) raise.
//
// Why the seam's contract holds:
//   - events: a subscription is a hub watcher from fromRevision. The hub replays history synchronously
//     (this sink never refuses a delivery, so the watcher is never parked: the merge has its own budget)
//     and attaches the watcher to the live fan-out, which the state machine feeds in apply order, one
//     revision per call. A shard's revisions strictly increase in log order, so that is revision order;
//   - resolved: after subscribe() returns the watcher is live, so every event this replica applied has
//     reached the sink. Everything at or below the replica's applied revision is applied (revisions
//     increase in log order), and closed(R) is called only once this replica has applied every entry
//     the shard will ever hold at or below R (the leader's applied index after a read at R, see
//     shard-closer.ts). So max(closed, applied revision) is a revision through which the subscription
//     has everything and the shard will commit nothing more. It only grows: both terms only grow (a
//     snapshot install moves the applied revision forward, never back);
//   - compaction: a start below the store's compacted revision is told so by the hub (onCompacted); a
//     snapshot that replaces the store re-syncs live watchers and reports compaction the same way.
import type { KvStateMachine } from './kv-state-machine.ts';
import type { ShardSubscribeRequest, ShardWatchSink, ShardWatchSource, ShardWatchSubscription } from './watch-source.ts';

/**
 * Whether some shard that a merged watch follows here (a source with live subscriptions) is resolved below
 * another: then an event may be waiting for it, or its close failed, and a closing round is due. Sources
 * all resolved alike (or followed by nothing) need none.
 */
export function resolvedApart(sources: Iterable<Pick<ReplicaWatchSource, 'subscriptionCount' | 'resolvedRevision'>>): boolean {
  let low = Number.POSITIVE_INFINITY;
  let high = 0;
  for (const s of sources) {
    if (s.subscriptionCount() === 0) continue;
    const r = s.resolvedRevision();
    if (r < low) low = r;
    if (r > high) high = r;
  }
  return high > low;
}

export class ReplicaWatchSource implements ShardWatchSource {
  readonly shard: number;
  private readonly sm: KvStateMachine;
  private closed = 0;
  private readonly live = new Set<ReplicaSubscription>();
  /**
   * Called when a subscription receives events: the merge can release them only once the other shards
   * are resolved past them, so the closing rounds are asked for one (ShardCloser.request).
   */
  onActivity: (() => void) | null = null;

  constructor(shard: number, sm: KvStateMachine) {
    this.shard = shard;
    this.sm = sm;
  }

  /**
   * This replica has applied every entry the shard will ever commit at or below `revision`. Tells every
   * subscription, so a merged watch's frontier moves without polling.
   */
  close(revision: number): void {
    if (revision <= this.closed) return;
    const before = this.resolvedRevision();
    this.closed = revision;
    // Below what this replica applied already: its subscriptions know (they received those events).
    if (this.live.size === 0 || revision <= before) return;
    for (const s of [...this.live]) s.resolved(revision);
  }

  closedRevision(): number {
    return this.closed;
  }

  resolvedRevision(): number {
    // Readable, not applied: a cross-shard transaction prepared here at P makes its events at its C ≥ P
    // once decided (and, with several prepared at once, in C order once those below it are decided), so
    // nothing at or above the lowest prepared P is final yet (closes wait for them too).
    return Math.max(this.closed, this.sm.readableRevision());
  }

  compactedRevision(): number {
    return this.sm.store.compactedRevision();
  }

  subscriptionCount(): number {
    return this.live.size;
  }

  subscribe(request: ShardSubscribeRequest, sink: ShardWatchSink): ShardWatchSubscription {
    if (!Number.isSafeInteger(request.fromRevision) || request.fromRevision < 1) {
      throw new RangeError(`shard subscription must start at a revision ≥ 1 (got ${String(request.fromRevision)})`);
    }
    const sub = new ReplicaSubscription(this, sink, request);
    this.live.add(sub);
    sub.handle = this.sm.hub.watch(
      { key: request.key, rangeEnd: request.rangeEnd, startRevision: request.fromRevision, prevKv: request.prevKv, noPut: request.noPut, noDelete: request.noDelete },
      {
        onEvents: (events) => {
          if (sub.canceled || sub.handedOver) return;
          if (events.length > 0) sub.delivered = Math.max(sub.delivered, events[events.length - 1].kv.modRevision);
          sink.onEvents(events);
          this.onActivity?.();
        },
        onCompacted: (c) => {
          if (sub.canceled) return;
          sub.end();
          sink.onCompacted(c);
        },
      },
    );
    return sub;
  }

  /**
   * This replica is going away (its member no longer hosts the shard): every live subscription carries on
   * from `replacement` (a replica elsewhere), from just above what it has — every event at or below
   * max(delivered, resolved) reached its sink (the seam's contract), so nothing is lost or repeated.
   */
  retire(replacement: ShardWatchSource): void {
    const resolvedHere = this.resolvedRevision();
    for (const sub of [...this.live]) sub.handOver(replacement, resolvedHere);
    this.live.clear();
  }

  /** @internal */
  forget(sub: ReplicaSubscription): void {
    this.live.delete(sub);
  }

  /** @internal */
  cancelWatcher(handle: number): void {
    this.sm.hub.cancel(handle);
  }
}

class ReplicaSubscription implements ShardWatchSubscription {
  private readonly source: ReplicaWatchSource;
  private readonly sink: ShardWatchSink;
  private readonly request: ShardSubscribeRequest;
  handle = -1;
  canceled = false;
  /** Highest revision handed to the sink. */
  delivered = 0;
  /** The replica left: the subscription goes on from another source (retire). */
  handedOver = false;
  private delegate: ShardWatchSubscription | null = null;

  constructor(source: ReplicaWatchSource, sink: ShardWatchSink, request: ShardSubscribeRequest) {
    this.source = source;
    this.sink = sink;
    this.request = request;
  }

  resolved(revision: number): void {
    if (!this.canceled && !this.handedOver) this.sink.onResolved(revision);
  }

  resolvedRevision(): number {
    return this.delegate !== null ? this.delegate.resolvedRevision() : this.source.resolvedRevision();
  }

  /** Goes on from `replacement`, above everything this replica delivered or resolved. */
  handOver(replacement: ShardWatchSource, resolvedHere: number): void {
    if (this.canceled || this.handedOver) return;
    this.handedOver = true;
    if (this.handle >= 0) this.source.cancelWatcher(this.handle);
    const from = Math.max(this.delivered, resolvedHere, this.request.fromRevision - 1) + 1;
    this.delegate = replacement.subscribe({ ...this.request, fromRevision: from }, this.sink);
  }

  /** Over without a cancel from the merge (compacted): the hub dropped the watcher already. */
  end(): void {
    this.canceled = true;
    this.source.forget(this);
  }

  cancel(): void {
    if (this.canceled) return;
    this.canceled = true;
    if (this.delegate !== null) {
      this.delegate.cancel();
      return;
    }
    this.end();
    if (this.handle >= 0) this.source.cancelWatcher(this.handle);
  }
}

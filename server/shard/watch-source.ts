// The integration seam between a merged (multi-shard) watch and one shard replica: what a replica
// must provide so server/routing/watch-merge.ts can merge its events with other shards'. Interfaces
// only; replica-watch-source.ts implements them over each shard replica's MvccStore and WatchHub, resolved
// by the closing rounds of shard-closer.ts.
//
// The contract the merge's correctness rests on (see watch-merge.ts):
//   - a subscription delivers every event of its range with revision ≥ fromRevision, in the shard's
//     apply order (its revisions strictly increase in log order), all events of one revision in one
//     onEvents call — exactly what WatchHub.watch gives a watcher with a start revision, replay then live;
//   - onResolved(r) / resolvedRevision(): every event of the subscription at or below r has been handed to
//     the sink, and the shard will commit nothing more at or below r. A live subscription reports the
//     shard's closed timestamp (below every revision the shard leader holds from the oracle but has not
//     applied); a replaying one, the revision its replay has reached. It only grows;
//   - onCompacted(c): fromRevision (or the replay's next revision) was compacted away (c is the shard's
//     compacted revision); the subscription is over, as WatchHub's onCompacted.
// After cancel() the sink may still be called (the merge ignores stale subscriptions by generation).

import type { MvccEvent } from '../mvcc/types.ts';

export interface ShardSubscribeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  /** First revision wanted: history from here, then live. */
  fromRevision: number;
  /** Filters are applied by the shard so filtered events never cross the wire; the merge re-applies them. */
  prevKv: boolean;
  noPut: boolean;
  noDelete: boolean;
}

export interface ShardWatchSink {
  /** Whole revisions, ascending; delivering revision r resolves the subscription through r. */
  onEvents(events: MvccEvent[]): void;
  onResolved(revision: number): void;
  onCompacted(compactRevision: number): void;
}

export interface ShardWatchSubscription {
  /** Every event of this subscription at or below it has been handed to the sink (see above). */
  resolvedRevision(): number;
  cancel(): void;
}

export interface ShardWatchSource {
  readonly shard: number;
  /** The sink may be called from inside subscribe (a synchronous replay), as the hub does. */
  subscribe(request: ShardSubscribeRequest, sink: ShardWatchSink): ShardWatchSubscription;
  /** The shard's closed timestamp: it will commit nothing at or below it. */
  resolvedRevision(): number;
  /** History below this revision is gone: a subscription from below it gets onCompacted. */
  compactedRevision(): number;
  /**
   * A source whose resolvedRevision() may be stale (a replica on another member) learns a fresh one;
   * resolves with resolvedRevision() then. Absent: resolvedRevision() is always current.
   */
  probe?(timeoutMs: number): Promise<number>;
}

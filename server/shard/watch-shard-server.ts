// The serving side of WatchShard (proto/synod/shard_peer.proto): a merged watch on another member follows
// one shard through this member's replica. Owns one stream per caller: it subscribes on this member's
// ReplicaWatchSource for the shard, forwards its deliveries in order (whole revisions, resolved marks, a
// final end), holds this member's closing rounds while the stream is open (so the replica keeps
// resolving), and answers the caller's resolve asks with a mark after a closing round started after the ask.
//
// Why it is safe:
//   - order: every message of a stream goes through one FIFO (the gRPC write buffer, then `queue`), fed
//     only by the subscription's sink and by resolve answers that read the subscription's resolved
//     revision at the moment they are queued — after every event it covers was queued (the seam's
//     contract). So a mark never passes an event at or below it on the wire;
//   - memory: gRPC's own buffer takes messages only while HTTP/2 flow control lets it flush them (write()
//     says false past its high-water mark of 16 messages); the rest waits in `queue`, held to
//     `queueBudgetBytes`. Past it the stream stops taking deliveries (the subscription is canceled), and
//     ends with OVERLOADED after what is queued: everything sent is whole revisions, so the caller
//     resubscribes from after the last one it got and each cycle makes progress (a replay from far back
//     comes in cycles of about the budget rather than all at once);
//   - cleanup: a cancel, a disconnect, a half-close or an error from the caller, and stop(), all end the
//     subscription and release the closing-round hold, once; late deliveries of a canceled subscription
//     are dropped;
//   - nothing waits forever: a resolve ask waits for a closing round at most `resolveTimeoutMs` (then
//     answers with the resolved revision it has — lower, never wrong); at most 256 wait per stream.
import type * as grpc from '@grpc/grpc-js';
import type { MvccEvent } from '../mvcc/types.ts';
import type { ShardWatchSource, ShardWatchSubscription } from './watch-source.ts';
import {
  safeInt,
  watchEventToWire,
  watchEventWireBytes,
  type WatchShardEndKind,
  type WatchShardRequestWire,
  type WatchShardResponseWire,
} from './shard-peer-wire.ts';

/** Default bound of what one stream may queue beyond gRPC's buffer (4× the merge's own buffer budget). */
export const WATCH_SHARD_QUEUE_BUDGET_BYTES = 1024 * 1024;
/** Longest a resolve ask waits for a closing round before it is answered with what is resolved. */
export const WATCH_SHARD_RESOLVE_TIMEOUT_MS = 2_000;
/** Most resolve asks one stream may have waiting for a closing round. */
const MAX_ASKS_OUT = 256;

/** A hold on this member's closing rounds (the shape of server/api/context.ts's ClosingHold; shard/ imports no api/). */
export interface RoundsHold {
  release(): void;
  /** Resolves once every shard is resolved through a round started after the call (or after timeoutMs). */
  sync(timeoutMs: number): Promise<void>;
}

export interface WatchShardHost {
  /** This member's replica of shard group `groupId` as a watch source, or null when it hosts none. */
  sourceOf(groupId: number): ShardWatchSource | null;
  /** This member's closing rounds run while the hold is kept (ShardHosting.holdClosingRounds). */
  holdClosingRounds(): RoundsHold;
}

export interface WatchShardServerOptions {
  host: WatchShardHost;
  queueBudgetBytes?: number;
  resolveTimeoutMs?: number;
}

export type WatchShardCall = grpc.ServerDuplexStream<WatchShardRequestWire, WatchShardResponseWire>;

export class WatchShardServer {
  readonly host: WatchShardHost;
  readonly queueBudgetBytes: number;
  readonly resolveTimeoutMs: number;
  private readonly streams = new Set<ServedStream>();
  private stopped = false;
  readonly stats = { opened: 0, overloaded: 0, notHosted: 0 };

  constructor(opts: WatchShardServerOptions) {
    this.host = opts.host;
    this.queueBudgetBytes = opts.queueBudgetBytes ?? WATCH_SHARD_QUEUE_BUDGET_BYTES;
    this.resolveTimeoutMs = opts.resolveTimeoutMs ?? WATCH_SHARD_RESOLVE_TIMEOUT_MS;
  }

  /** The WatchShard method of the ShardPeer service. */
  handle(call: WatchShardCall): void {
    const s = new ServedStream(this, call);
    this.streams.add(s);
    this.stats.opened++;
    if (this.stopped) s.end('SHUTTING_DOWN', 'member is stopping');
  }

  openStreams(): number {
    return this.streams.size;
  }

  /** Ends every stream (SHUTTING_DOWN): callers resubscribe on another member. */
  stop(): void {
    this.stopped = true;
    for (const s of [...this.streams]) s.end('SHUTTING_DOWN', 'member is stopping');
  }

  /** @internal */
  forget(s: ServedStream): void {
    this.streams.delete(s);
  }
}

class ServedStream {
  private readonly server: WatchShardServer;
  private readonly call: WatchShardCall;
  private sub: ShardWatchSubscription | null = null;
  private source: ShardWatchSource | null = null;
  private hold: RoundsHold | null = null;
  private subscribed = false;
  /** No more deliveries are taken (ended, or over budget): only what is queued, then the end. */
  private ending = false;
  private finished = false;
  private writable = true;
  private readonly queue: WatchShardResponseWire[] = [];
  private queuedBytes = 0;
  private asksOut = 0;

  constructor(server: WatchShardServer, call: WatchShardCall) {
    this.server = server;
    this.call = call;
    call.on('data', (req: WatchShardRequestWire) => this.onRequest(req));
    call.on('drain', () => this.flush());
    const gone = (): void => this.teardown();
    call.on('end', gone);
    call.on('cancelled', gone);
    call.on('error', gone);
    call.on('close', gone);
  }

  private onRequest(req: WatchShardRequestWire): void {
    if (this.ending) return;
    if (req.request === 'subscribe' && req.subscribe) {
      if (this.subscribed) return this.end('BAD_REQUEST', 'a stream subscribes once');
      this.subscribe(req.subscribe);
    } else if (req.request === 'resolve' && req.resolve) {
      if (!this.subscribed) return this.end('BAD_REQUEST', 'resolve before subscribe');
      let askId: number;
      try {
        askId = safeInt(req.resolve.ask_id, 'ask_id');
      } catch (err) {
        return this.end('BAD_REQUEST', err instanceof Error ? err.message : String(err));
      }
      this.resolve(askId);
    } else this.end('BAD_REQUEST', 'unknown request');
  }

  private subscribe(w: NonNullable<WatchShardRequestWire['subscribe']>): void {
    this.subscribed = true;
    let fromRevision: number;
    try {
      fromRevision = safeInt(w.from_revision, 'from_revision');
      if (fromRevision < 1) throw new Error(`from_revision ${fromRevision} is not positive`);
    } catch (err) {
      return this.end('BAD_REQUEST', err instanceof Error ? err.message : String(err));
    }
    const source = this.server.host.sourceOf(w.group_id);
    if (source === null) {
      this.server.stats.notHosted++;
      return this.end('NOT_HOSTED', `shard group ${w.group_id} has no replica on this member`);
    }
    this.source = source;
    try {
      this.hold = this.server.host.holdClosingRounds();
    } catch (err) {
      return this.end('SHUTTING_DOWN', `closing rounds unavailable: ${err instanceof Error ? err.message : String(err)}`);
    }
    const request = { key: w.key ?? Buffer.alloc(0), rangeEnd: w.range_end ?? Buffer.alloc(0), fromRevision, prevKv: w.prev_kv, noPut: w.no_put, noDelete: w.no_delete };
    const sub = source.subscribe(request, {
      onEvents: (events) => this.push({ events: { events: events.map(watchEventToWire) } }, eventsBytes(events)),
      onResolved: (revision) => this.push({ resolved: { revision, compacted_revision: source.compactedRevision(), ask_id: 0 } }, 32),
      onCompacted: (c) => this.end('COMPACTED', `revision ${fromRevision} or later was compacted at ${c}`, c),
    });
    // Ended from inside subscribe (compacted, or over budget during a synchronous replay).
    if (this.ending) {
      sub.cancel();
      return;
    }
    this.sub = sub;
    // The subscription is live: every event the replica applied has been queued, so its resolved revision
    // is a valid first mark (and tells the caller the replica's compacted revision).
    this.push({ resolved: { revision: sub.resolvedRevision(), compacted_revision: source.compactedRevision(), ask_id: 0 } }, 32);
  }

  private resolve(askId: number): void {
    const hold = this.hold;
    if (hold === null) return;
    // A caller spaces its asks (20 ms) and each is answered within the resolve timeout: far more out
    // than that allows is a caller gone wrong, and each one holds a timer here.
    if (this.asksOut >= MAX_ASKS_OUT) {
      this.server.stats.overloaded++;
      return this.end('OVERLOADED', `more than ${MAX_ASKS_OUT} resolve asks unanswered`);
    }
    this.asksOut++;
    void hold.sync(this.server.resolveTimeoutMs).then(() => {
      this.asksOut--;
      const sub = this.sub;
      if (sub === null || this.ending) return;
      this.push({ resolved: { revision: sub.resolvedRevision(), compacted_revision: this.source?.compactedRevision() ?? 0, ask_id: askId } }, 32);
    });
  }

  /** Queues one message in stream order; past the budget the stream stops taking more and ends OVERLOADED. */
  private push(msg: WatchShardResponseWire, bytes: number): void {
    if (this.ending) return;
    if (this.writable && this.queue.length === 0) {
      this.writable = this.call.write(msg);
      return;
    }
    this.queue.push(msg);
    this.queuedBytes += bytes;
    if (this.queuedBytes > this.server.queueBudgetBytes) {
      this.server.stats.overloaded++;
      this.end('OVERLOADED', `more than ${this.server.queueBudgetBytes} bytes queued for a slow reader: resubscribe from after the last revision received`);
    }
  }

  private flush(): void {
    this.writable = true;
    while (this.queue.length > 0 && this.writable) {
      const msg = this.queue.shift() as WatchShardResponseWire;
      this.writable = this.call.write(msg);
    }
    if (this.queue.length === 0) this.queuedBytes = 0;
    if (this.queue.length === 0 && this.ending && !this.finished) {
      this.finished = true;
      this.call.end();
      this.server.forget(this);
    }
  }

  /** Stops taking deliveries; sends what is queued, then `kind`, then ends the stream. */
  end(kind: WatchShardEndKind, message: string, compactRevision = 0): void {
    if (this.ending) return;
    this.ending = true;
    this.release();
    this.queue.push({ end: { kind, compact_revision: compactRevision, message } });
    if (this.writable) this.flush();
  }

  private release(): void {
    const sub = this.sub;
    this.sub = null;
    sub?.cancel();
    this.hold?.release();
    this.hold = null;
  }

  /** The caller went away (cancel, disconnect, half-close): nothing more is sent. */
  private teardown(): void {
    this.ending = true;
    this.release();
    this.queue.length = 0;
    this.queuedBytes = 0;
    if (!this.finished) {
      this.finished = true;
      this.server.forget(this);
      // A half-close leaves our side open: end it (a no-op once the call is gone).
      try {
        this.call.end();
      } catch {
        // already closed
      }
    }
  }
}

function eventsBytes(events: readonly MvccEvent[]): number {
  let n = 16;
  for (const e of events) n += watchEventWireBytes(e);
  return n;
}

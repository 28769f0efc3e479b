// etcdserverpb.Watch: one bidirectional stream per client carrying any number of watches. Creates
// are answered before any event of that watch; history from start_revision is replayed, then live
// events follow, in revision order, without gaps or duplicates (the hub guarantees the ordering).
//
// Cost per watch and per delivery is what a fan-out pays for, so: one small object per watch (it is
// the hub's sink too), a progress timer per stream only while some watch asked for progress, and
// event responses written pre-encoded (watch-encoder.ts: each event encoded once for all watchers),
// and all responses a stream gets in one event-loop turn leave in one HTTP/2 write (stream-writer.ts).
//
// Slow readers: what a stream holds unsent is bounded by WATCH_STREAM_SEND_BUDGET_BYTES. Once that
// much is queued (the client stops reading and HTTP/2 flow control holds the bytes here), the
// stream's watches refuse further events and the hub parks them (etcd's victims, watch-hub.ts): they
// remember their next revision and cost nothing per write. When the queue drains to half the budget
// they are caught up from the store's history, one bounded chunk at a time, round-robin, and rejoin
// the live fan-out; one whose revision was compacted meanwhile is canceled with compact_revision,
// as etcd does. While over budget the stream also stops reading requests, so a client cannot grow
// the queue with requests whose answers it never reads. Victims get no progress notifications (a
// progress header would claim they have everything up to it); a progress request waits for them.
import type * as grpc from '@grpc/grpc-js';
import type { MvccEvent } from '../mvcc/types.ts';
import type { WatchSink } from '../mvcc/watch-hub.ts';
import type { ApiContext } from './context.ts';
import type { KvStateMachine } from '../shard/kv-state-machine.ts';
import { ETCD_ERRORS } from '../etcd/errors.ts';
import { num } from '../etcd/convert.ts';
import { WatchEncoder } from './watch-encoder.ts';
import { CoalescingStreamWriter, frameOf, GRPC_FRAME_PREFIX_BYTES } from './stream-writer.ts';
import { etcdServices } from '../etcd/proto.ts';

interface WireWatchRequest {
  request_union?: 'create_request' | 'cancel_request' | 'progress_request';
  create_request?: {
    key: Buffer;
    range_end: Buffer;
    start_revision: string;
    progress_notify: boolean;
    filters: Array<string | number>;
    prev_kv: boolean;
    watch_id: string;
    fragment: boolean;
  } | null;
  cancel_request?: { watch_id: string } | null;
  progress_request?: object | null;
}

/**
 * Most bytes a Watch stream may hold unsent before its watches are parked (plus at most one response
 * that crossed it: a revision is never split). etcd has no flag for this (its per-stream buffer is a
 * fixed 128 responses, chanBufLen in watch.go), so it is a constant here. 256 KiB keeps a loopback or
 * LAN reader that keeps up from being parked, and 100 streams that stopped reading at ~30 MiB.
 */
export const WATCH_STREAM_SEND_BUDGET_BYTES = 256 * 1024;

/** etcd's id for responses that belong to no single watch (progress replies). */
const INVALID_WATCH_ID = -1;
const EMPTY = Buffer.alloc(0);
const MULTI_SHARD_WATCH = 'synod: a watch over several shards is not served yet (keys sharing a {hash tag} prefix stay on one shard)';

/** One watch on a stream; the hub delivers to it directly. */
class StreamWatch implements WatchSink {
  readonly stream: WatchStream;
  readonly id: number;
  handle = -1;
  readonly progressNotify: boolean;
  /** The state machine whose hub serves it: the one shard of a sharded cluster its range is on. */
  readonly sm: KvStateMachine;

  constructor(stream: WatchStream, id: number, progressNotify: boolean, sm: KvStateMachine) {
    this.stream = stream;
    this.id = id;
    this.progressNotify = progressNotify;
    this.sm = sm;
  }

  onEvents(events: MvccEvent[], revision: number): void {
    this.stream.sendEvents(this.id, events, revision);
  }

  onCompacted(compactRevision: number): void {
    this.stream.compacted(this.id, compactRevision);
  }

  accepting(): boolean {
    return this.stream.accepting();
  }

  onParked(): void {
    this.stream.parked(this);
  }
}

class WatchStream {
  private readonly ctx: ApiContext;
  private readonly call: grpc.ServerDuplexStream<WireWatchRequest, unknown>;
  private readonly encoder: WatchEncoder;
  private readonly writer: CoalescingStreamWriter;
  private readonly serialize: (value: object) => Buffer;
  private readonly watches = new Map<number, StreamWatch>();
  private nextWatchId = 0;
  private closed = false;
  private progressTimer: NodeJS.Timeout | null = null;
  /** Parked watches, in the order they are caught up (one that is parked again goes to the back). */
  private readonly victims = new Set<StreamWatch>();
  private catchUpQueued = false;
  private requestsPaused = false;
  /** A progress request arrived while some watch was parked: answered once none is. */
  private progressPending = false;

  constructor(ctx: ApiContext, call: grpc.ServerDuplexStream<WireWatchRequest, unknown>, encoder: WatchEncoder, serialize: (value: object) => Buffer) {
    this.ctx = ctx;
    this.call = call;
    this.encoder = encoder;
    this.serialize = serialize;
    this.writer = new CoalescingStreamWriter(call as grpc.ServerDuplexStream<unknown, unknown>, WATCH_STREAM_SEND_BUDGET_BYTES);
    this.writer.onDrained = () => this.drained();
  }

  accepting(): boolean {
    return !this.closed && !this.writer.overBudget;
  }

  parked(w: StreamWatch): void {
    if (this.closed || !this.watches.has(w.id)) return;
    this.victims.delete(w);
    this.victims.add(w);
    if (!this.requestsPaused) {
      this.requestsPaused = true;
      this.call.pause();
    }
  }

  private drained(): void {
    if (this.closed) return;
    if (this.requestsPaused) {
      this.requestsPaused = false;
      this.call.resume();
    }
    // Not from inside the write callback: catch-up reads the store and writes again.
    if (this.catchUpQueued || this.victims.size === 0) return;
    this.catchUpQueued = true;
    setImmediate(() => this.catchUp());
  }

  /** Resumes parked watches while the stream has room; the next drain continues where this stops. */
  private catchUp(): void {
    this.catchUpQueued = false;
    for (const w of this.victims) {
      if (this.closed || this.writer.overBudget) return;
      if (!w.sm.hub.resume(w.handle)) return; // parked again (and moved to the back)
      this.victims.delete(w);
    }
    this.progressIfNoVictims();
  }

  /** Answers a progress request that waited for the stream's victims, once there are none. */
  private progressIfNoVictims(): void {
    if (this.victims.size === 0 && this.progressPending) {
      this.progressPending = false;
      this.sendProgress();
    }
  }

  private sendProgress(): void {
    this.send({ header: this.ctx.header(), watch_id: INVALID_WATCH_ID });
  }

  /** Queues an object response behind everything queued before it. */
  private send(msg: object): void {
    if (!this.closed) this.writer.write(frameOf(this.serialize, msg));
  }

  sendEvents(watchId: number, events: MvccEvent[], revision: number): void {
    if (this.closed) return;
    const sm = this.watches.get(watchId)?.sm ?? this.ctx.sm;
    const header = this.ctx.header(Math.max(revision, sm.store.currentRevision()));
    this.writer.writeParts(this.encoder.responseParts(watchId, header, events, GRPC_FRAME_PREFIX_BYTES));
  }

  compacted(watchId: number, compactRevision: number): void {
    const w = this.watches.get(watchId);
    this.watches.delete(watchId);
    this.send({
      header: this.ctx.header(),
      watch_id: watchId,
      canceled: true,
      compact_revision: compactRevision,
      cancel_reason: ETCD_ERRORS.COMPACTED.message,
    });
    if (w !== undefined && this.victims.delete(w)) this.progressIfNoVictims();
  }

  onRequest(req: WireWatchRequest): void {
    if (req.create_request) this.create(req.create_request);
    else if (req.cancel_request) this.cancel(num(req.cancel_request.watch_id));
    else if (req.progress_request) {
      if (this.victims.size === 0) this.sendProgress();
      else this.progressPending = true;
    }
  }

  private create(req: NonNullable<WireWatchRequest['create_request']>): void {
    let watchId = num(req.watch_id);
    if (watchId !== 0 && this.watches.has(watchId)) {
      this.send({
        header: this.ctx.header(),
        watch_id: INVALID_WATCH_ID,
        created: true,
        canceled: true,
        cancel_reason: 'mvcc: duplicate watch ID provided on the WatchStream',
      });
      return;
    }
    if (watchId === 0) {
      while (this.watches.has(this.nextWatchId)) this.nextWatchId++;
      watchId = this.nextWatchId++;
    }
    let noPut = false;
    let noDelete = false;
    for (const f of req.filters ?? []) {
      if (f === 'NOPUT' || f === 0 || f === '0') noPut = true;
      else if (f === 'NODELETE' || f === 1 || f === '1') noDelete = true;
    }
    let sm = this.ctx.sm;
    if (this.ctx.shards !== null) {
      // A sharded cluster serves a watch whose range lies on one shard, from that shard's hub. A watch
      // over several shards needs every shard's closed revision (server/routing/watch-merge.ts is
      // built, the closed revisions are not): refused as etcd refuses a watch it cannot create.
      const touched = this.ctx.shards.shardsOfRange(req.key ?? EMPTY, req.range_end ?? EMPTY);
      if (touched.length !== 1) {
        this.send({ header: this.ctx.header(), watch_id: watchId, created: true, canceled: true, cancel_reason: MULTI_SHARD_WATCH });
        return;
      }
      sm = touched[0].sm;
    }
    const watch = new StreamWatch(this, watchId, !!req.progress_notify, sm);
    this.watches.set(watchId, watch);
    if (watch.progressNotify) this.startProgressTimer();
    // The created header names the revision of the store the watch follows (its shard's, when sharded).
    this.send({ header: this.ctx.header(sm.store.currentRevision()), watch_id: watchId, created: true });
    watch.handle = sm.hub.watch(
      {
        key: req.key ?? EMPTY,
        rangeEnd: req.range_end ?? EMPTY,
        startRevision: num(req.start_revision),
        prevKv: !!req.prev_kv,
        noPut,
        noDelete,
      },
      watch,
    );
  }

  private cancel(watchId: number): void {
    const w = this.watches.get(watchId);
    if (!w) return;
    this.watches.delete(watchId);
    w.sm.hub.cancel(w.handle);
    this.send({ header: this.ctx.header(), watch_id: watchId, canceled: true });
    if (this.victims.delete(w)) this.progressIfNoVictims();
  }

  private startProgressTimer(): void {
    if (this.progressTimer !== null) return;
    this.progressTimer = setInterval(() => {
      for (const [watchId, w] of this.watches) {
        if (w.progressNotify && !this.victims.has(w)) this.send({ header: this.ctx.header(), watch_id: watchId, events: [] });
      }
    }, this.ctx.limits.watchProgressNotifyIntervalMs);
    this.progressTimer.unref();
  }

  teardown(): void {
    if (this.closed) return;
    this.writer.close();
    this.closed = true;
    if (this.progressTimer !== null) clearInterval(this.progressTimer);
    for (const w of this.watches.values()) if (w.handle >= 0) w.sm.hub.cancel(w.handle);
    this.watches.clear();
    this.victims.clear();
  }

  end(): void {
    this.teardown();
    this.call.end();
  }
}

export function watchService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  const encoder = new WatchEncoder();
  const serialize = etcdServices().Watch.Watch.responseSerialize as (value: object) => Buffer;
  return {
    Watch: (call: grpc.ServerDuplexStream<WireWatchRequest, unknown>) => {
      const stream = new WatchStream(ctx, call, encoder, serialize);
      call.on('data', (req: WireWatchRequest) => stream.onRequest(req));
      call.on('end', () => stream.end());
      const teardown = (): void => stream.teardown();
      call.on('error', teardown);
      call.on('cancelled', teardown);
      call.on('close', teardown);
    },
  };
}

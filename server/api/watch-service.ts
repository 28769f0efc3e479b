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
//
// A sharded cluster serves a watch whose range lies on one shard from that shard's hub, as above. A
// watch over several shards is a MergedWatch (server/routing/merged-watch.ts) over this member's
// replicas of those shards (server/shard/replica-watch-source.ts): events in revision order, each
// once, released once every shard's replica is resolved past them — by its own events, or by the
// closed revisions this member's closing rounds publish while it holds a merged watch
// (server/shard/shard-closer.ts). Its headers are the merged delivered revision (every event at or
// below it has been sent); over the send budget its output pauses and the merge keeps (or sheds and
// re-reads) its shards' events within its own budget.
import type * as grpc from '@grpc/grpc-js';
import type { MvccEvent } from '../mvcc/types.ts';
import type { WatchSink } from '../mvcc/watch-hub.ts';
import type { ApiContext, ClosingHold } from './context.ts';
import type { ResponseHeader } from '../etcd/wire-types.ts';
import { MergedWatch, type MergedWatchSink } from '../routing/merged-watch.ts';
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

/** Longest a progress reply on a stream with merged watches waits for a closing round. */
const PROGRESS_SYNC_MS = 1_000;

/** etcd's id for responses that belong to no single watch (progress replies). */
const INVALID_WATCH_ID = -1;
const EMPTY = Buffer.alloc(0);

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

/** One watch over several shards on a stream: the merge's sink. */
class MergedStreamWatch implements MergedWatchSink {
  readonly stream: WatchStream;
  readonly id: number;
  readonly progressNotify: boolean;
  watch: MergedWatch | null = null;
  /** This watch's hold on the member's closing rounds. */
  hold: ClosingHold | null = null;

  constructor(stream: WatchStream, id: number, progressNotify: boolean) {
    this.stream = stream;
    this.id = id;
    this.progressNotify = progressNotify;
  }

  onEvents(events: MvccEvent[], headerRevision: number): void {
    this.stream.sendMergedEvents(this.id, events, headerRevision);
  }

  onProgress(headerRevision: number): void {
    this.stream.sendWatchProgress(this.id, headerRevision);
  }

  onCompacted(compactRevision: number): void {
    this.stream.compacted(this.id, compactRevision);
  }

  /** Stops the merge and the closing rounds it held. */
  end(): void {
    this.watch?.cancel();
    this.release();
  }

  release(): void {
    this.hold?.release();
    this.hold = null;
  }
}

/** How long a merged watch "from now" waits to learn where a shard on another member is resolved. */
const REMOTE_PROBE_TIMEOUT_MS = 2_000;

class WatchStream {
  private readonly ctx: ApiContext;
  private readonly call: grpc.ServerDuplexStream<WireWatchRequest, unknown>;
  private readonly encoder: WatchEncoder;
  private readonly writer: CoalescingStreamWriter;
  private readonly serialize: (value: object) => Buffer;
  private readonly watches = new Map<number, StreamWatch>();
  /** Watches over several shards (sharded cluster only). */
  private readonly merged = new Map<number, MergedStreamWatch>();
  /** The merged watches' output is paused: the stream is over its send budget. */
  private mergedPaused = false;
  private mergedResumeQueued = false;
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
    if (this.mergedPaused && !this.mergedResumeQueued) {
      this.mergedResumeQueued = true;
      setImmediate(() => this.resumeMerged());
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

  /** Lets the merged watches send again, until the stream is over budget once more. */
  private resumeMerged(): void {
    this.mergedResumeQueued = false;
    if (this.closed || this.writer.overBudget) return;
    this.mergedPaused = false;
    for (const w of [...this.merged.values()]) {
      // Sending may put the stream over budget again: the rest stay paused until the next drain.
      if (this.mergedPaused) return;
      w.watch?.resumeOutput();
    }
  }

  /** Answers a progress request that waited for the stream's victims, once there are none. */
  private progressIfNoVictims(): void {
    if (this.victims.size === 0 && this.progressPending) {
      this.progressPending = false;
      this.sendProgress();
    }
  }

  private answerProgress(): void {
    if (this.closed) return;
    if (this.victims.size === 0) this.sendProgress();
    else this.progressPending = true;
  }

  /** Waits for a closing round started now (any merged watch's hold: they share the member's rounds). */
  private syncMerged(): Promise<void> {
    for (const w of this.merged.values()) if (w.hold !== null) return w.hold.sync(PROGRESS_SYNC_MS);
    return Promise.resolve();
  }

  private sendProgress(): void {
    this.send({ header: this.progressHeader(), watch_id: INVALID_WATCH_ID });
  }

  /**
   * A progress reply's header. With merged watches on the stream: the lowest revision through which every
   * one of them has sent everything (each is first given its shards' latest resolved revisions, so what
   * they can release goes out before this reply). On a sharded cluster a watch on one shard counts too,
   * with the revision its shard's reads answer at: it has sent everything its shard applied, and what the
   * shard applies later carries higher revisions (server/shard/shard-revisions.ts; a prepared cross-shard
   * transaction's commit lands above the revision reads answer at). With no watch, the current revision.
   */
  private progressHeader(): ResponseHeader {
    if (this.merged.size === 0 && this.ctx.shards === null) return this.ctx.header();
    let h = Number.MAX_SAFE_INTEGER;
    for (const w of this.watches.values()) h = Math.min(h, w.sm.readableRevision());
    for (const w of [...this.merged.values()]) {
      const watch = w.watch;
      if (watch === null) continue;
      watch.pollResolved();
      h = Math.min(h, watch.stats().deliveredThrough);
    }
    if (h !== Number.MAX_SAFE_INTEGER) return this.ctx.header(h);
    // Merged watches all still being created have promised nothing yet: the lowest header, as before.
    return this.merged.size > 0 ? this.ctx.header() : this.ctx.header(this.ctx.currentRevision());
  }

  /** A one-shard watch's progress notification header: its shard's, on a sharded cluster (as progressHeader). */
  private watchProgressHeader(w: StreamWatch): ResponseHeader {
    return this.ctx.shards === null ? this.ctx.header() : this.ctx.header(w.sm.readableRevision());
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

  /** A merged watch's response: everything at or below `headerRevision` has now been sent. */
  sendMergedEvents(watchId: number, events: MvccEvent[], headerRevision: number): void {
    if (this.closed) return;
    this.writer.writeParts(this.encoder.responseParts(watchId, this.ctx.header(headerRevision), events, GRPC_FRAME_PREFIX_BYTES));
    if (this.writer.overBudget && !this.mergedPaused) {
      this.mergedPaused = true;
      for (const w of this.merged.values()) w.watch?.pauseOutput();
    }
  }

  /** A merged watch's progress notification (etcd's empty response with the watch's id). */
  sendWatchProgress(watchId: number, headerRevision: number): void {
    this.send({ header: this.ctx.header(headerRevision), watch_id: watchId, events: [] });
  }

  compacted(watchId: number, compactRevision: number): void {
    const m = this.merged.get(watchId);
    if (m !== undefined) {
      this.merged.delete(watchId);
      m.release();
    }
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
      if (this.merged.size === 0) this.answerProgress();
      // The reply's header is the merged delivered revision: wait for a closing round started now, so it
      // covers everything committed before the request (bounded: an older header is never wrong).
      else void this.syncMerged().then(() => this.answerProgress());
    }
  }

  private create(req: NonNullable<WireWatchRequest['create_request']>): void {
    let watchId = num(req.watch_id);
    if (watchId !== 0 && (this.watches.has(watchId) || this.merged.has(watchId))) {
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
      while (this.watches.has(this.nextWatchId) || this.merged.has(this.nextWatchId)) this.nextWatchId++;
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
      // A sharded cluster serves a watch whose range lies on one shard from that shard's hub, and one
      // over several shards by merging this member's replicas of them.
      // A shard not hosted here is followed through a replica on another member, as a merge of one.
      const touched = this.ctx.shards.shardsOfRange(req.key ?? EMPTY, req.range_end ?? EMPTY);
      if (touched.length !== 1 || !this.ctx.shards.hosts(touched[0].groupId)) {
        void this.createMerged(watchId, req, noPut, noDelete);
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

  /**
   * A watch over several shards. "From now" (start_revision 0) is H + 1, where H is the highest revision
   * any of its shards' replicas here is resolved through: the created header says H, and the watch sends
   * every event above it. History from an older start is replayed from each replica's store. When every
   * shard is followed on another member, they first learn how far they are resolved (a remote source's
   * figure may be stale, and a stale "now" would replay old, maybe compacted, history).
   */
  private async createMerged(watchId: number, req: NonNullable<WireWatchRequest['create_request']>, noPut: boolean, noDelete: boolean): Promise<void> {
    const shards = this.ctx.shards;
    if (shards === null) return;
    const key = req.key ?? EMPTY;
    const rangeEnd = req.range_end ?? EMPTY;
    const sources = shards.watchSources();
    const touched = shards.slotMap.shardsOfRange(key, rangeEnd).shards;
    const asked = num(req.start_revision);
    const w = new MergedStreamWatch(this, watchId, !!req.progress_notify);
    this.merged.set(watchId, w); // the id is taken while remote shards are probed
    // Only when every shard is remote: a replica here gives a current figure at once (a stale remote one
    // only lowers the maximum), and waiting would widen the gap between the request and its start.
    if (asked === 0 && touched.every((i) => sources.get(i)?.probe !== undefined)) {
      await Promise.all(touched.map((i) => sources.get(i)?.probe?.(REMOTE_PROBE_TIMEOUT_MS)));
      if (this.merged.get(watchId) !== w) return; // cancelled (or the stream ended) meanwhile
    }
    let now = 1;
    for (const i of touched) now = Math.max(now, sources.get(i)?.resolvedRevision() ?? 0);
    if (w.progressNotify) this.startProgressTimer();
    this.send({ header: this.ctx.header(now), watch_id: watchId, created: true });
    w.hold = shards.holdClosingRounds();
    const watch = new MergedWatch(
      { key, rangeEnd, startRevision: asked > 0 ? asked : now + 1, prevKv: !!req.prev_kv, noPut, noDelete, shards: touched },
      sources,
      w,
    );
    w.watch = watch;
    if (this.mergedPaused) watch.pauseOutput();
    watch.start();
  }

  private cancel(watchId: number): void {
    const m = this.merged.get(watchId);
    if (m !== undefined) {
      this.merged.delete(watchId);
      m.end();
      this.send({ header: this.ctx.header(), watch_id: watchId, canceled: true });
      return;
    }
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
        if (w.progressNotify && !this.victims.has(w)) this.send({ header: this.watchProgressHeader(w), watch_id: watchId, events: [] });
      }
      // A merged watch answers with its delivered revision, after a closing round started now.
      const notify = [...this.merged.values()].filter((w) => w.progressNotify);
      if (notify.length > 0) void this.syncMerged().then(() => {
        for (const w of notify) if (!this.closed && this.merged.get(w.id) === w) w.watch?.requestProgress();
      });
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
    for (const m of this.merged.values()) m.end();
    this.merged.clear();
    this.victims.clear();
  }
}

export function watchService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  const encoder = new WatchEncoder();
  const serialize = etcdServices().Watch.Watch.responseSerialize as (value: object) => Buffer;
  return {
    Watch: (call: grpc.ServerDuplexStream<WireWatchRequest, unknown>) => {
      const stream = new WatchStream(ctx, call, encoder, serialize);
      call.on('data', (req: WireWatchRequest) => stream.onRequest(req));
      // No 'end' listener: a client that half-closes (sends no more requests) still gets its watches'
      // events until it cancels, as from etcd, whose receive loop ends at EOF while its send loop goes on.
      // etcd's own JSON gateway does exactly this (json-gateway.ts too).
      const teardown = (): void => stream.teardown();
      call.on('error', teardown);
      call.on('cancelled', teardown);
      call.on('close', teardown);
    },
  };
}

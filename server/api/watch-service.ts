// etcdserverpb.Watch: one bidirectional stream per client carrying any number of watches. Creates
// are answered before any event of that watch; history from start_revision is replayed, then live
// events follow, in revision order, without gaps or duplicates (the hub guarantees the ordering).
import type * as grpc from '@grpc/grpc-js';
import type { MvccEvent } from '../mvcc/types.ts';
import type { ApiContext } from './context.ts';
import { ETCD_ERRORS } from './errors.ts';
import { eventToWire, num } from './convert.ts';

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

/** etcd's id for responses that belong to no single watch (progress replies). */
const INVALID_WATCH_ID = -1;

interface StreamWatcher {
  handle: number;
  progressNotify: boolean;
}

export function watchService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  return {
    Watch: (call: grpc.ServerDuplexStream<WireWatchRequest, unknown>) => {
      const watchers = new Map<number, StreamWatcher>();
      let nextWatchId = 0;
      let closed = false;

      const send = (msg: object): void => {
        if (!closed) call.write(msg);
      };

      const progressTimer = setInterval(() => {
        for (const [watchId, w] of watchers) {
          if (w.progressNotify) send({ header: ctx.header(), watch_id: watchId, events: [] });
        }
      }, ctx.limits.watchProgressNotifyIntervalMs);
      progressTimer.unref();

      const create = (req: NonNullable<WireWatchRequest['create_request']>): void => {
        let watchId = num(req.watch_id);
        if (watchId !== 0 && watchers.has(watchId)) {
          send({
            header: ctx.header(),
            watch_id: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: 'mvcc: duplicate watch ID provided on the WatchStream',
          });
          return;
        }
        if (watchId === 0) {
          while (watchers.has(nextWatchId)) nextWatchId++;
          watchId = nextWatchId++;
        }
        const filters = new Set((req.filters ?? []).map(String));
        const entry: StreamWatcher = { handle: -1, progressNotify: !!req.progress_notify };
        watchers.set(watchId, entry);
        send({ header: ctx.header(), watch_id: watchId, created: true });
        entry.handle = ctx.sm.hub.watch(
          {
            key: req.key ?? Buffer.alloc(0),
            rangeEnd: req.range_end ?? Buffer.alloc(0),
            startRevision: num(req.start_revision),
            prevKv: !!req.prev_kv,
            noPut: filters.has('NOPUT') || filters.has('0'),
            noDelete: filters.has('NODELETE') || filters.has('1'),
          },
          {
            onEvents: (events: MvccEvent[], revision: number) => {
              send({
                header: ctx.header(Math.max(revision, ctx.sm.store.currentRevision())),
                watch_id: watchId,
                events: events.map((e) => eventToWire(e, true)),
              });
            },
            onCompacted: (compactRevision: number) => {
              watchers.delete(watchId);
              send({
                header: ctx.header(),
                watch_id: watchId,
                canceled: true,
                compact_revision: compactRevision,
                cancel_reason: ETCD_ERRORS.COMPACTED.message,
              });
            },
          },
        );
      };

      const cancel = (watchId: number): void => {
        const w = watchers.get(watchId);
        if (!w) return;
        watchers.delete(watchId);
        ctx.sm.hub.cancel(w.handle);
        send({ header: ctx.header(), watch_id: watchId, canceled: true });
      };

      const teardown = (): void => {
        if (closed) return;
        closed = true;
        clearInterval(progressTimer);
        for (const w of watchers.values()) if (w.handle >= 0) ctx.sm.hub.cancel(w.handle);
        watchers.clear();
      };

      call.on('data', (req: WireWatchRequest) => {
        if (req.create_request) create(req.create_request);
        else if (req.cancel_request) cancel(num(req.cancel_request.watch_id));
        else if (req.progress_request) send({ header: ctx.header(), watch_id: INVALID_WATCH_ID });
      });
      call.on('end', () => {
        teardown();
        call.end();
      });
      call.on('error', teardown);
      call.on('cancelled', teardown);
      call.on('close', teardown);
    },
  };
}

// Fan-out of store events to watchers, with history replay for watchers that start in the past.
//
// Ordering guarantees (everything runs on one thread; the hazards are re-entrancy and the gap between
// a store write and its notify call):
//   - every watcher keeps nextRev, the first revision it has not been given; events of a revision below
//     nextRev are never delivered again (no duplicates);
//   - a watcher is attached to the live fan-out only after it has replayed the store's history up to
//     the store's current revision, so every later revision reaches it through notify (no gaps);
//   - notify calls made from inside a sink callback are queued and dispatched after the current one, so
//     every watcher sees revisions in increasing order;
//   - all events of one revision that match a watcher go out in a single onEvents call.
//
// Slow watchers (etcd's "victims"): a sink may say it is not accepting (its stream's send budget is
// used up, see server/api/watch-service.ts). A watcher whose sink refuses a delivery is parked: it
// leaves the live fan-out with its nextRev unchanged (the refused revision included) and costs
// nothing per write from then on. resume() catches it up from the store's history, exactly as a
// watch with a start revision replays, in chunks of about REPLAY_CHUNK_BYTES, stopping again
// whenever the sink stops accepting, and re-attaches it once it reached the current revision. If
// its next revision was compacted meanwhile it is told so (onCompacted), as etcd cancels a victim
// whose revision was compacted. The same replay serves new watches, so a watch created far in the
// past on a stream that is not reading is bounded the same way.
//
// Matching: single-key watchers are grouped in a Map by key; range watchers are grouped by identical
// (key, rangeEnd), so a notify costs O(events x distinct ranges) plus the deliveries.

import type { MvccStore } from './store.ts';
import { keyInRange } from './store.ts';
import { MvccError, withoutPrevKv } from './types.ts';
import type { MvccEvent } from './types.ts';

export interface WatchSpec {
  key: Buffer;
  rangeEnd: Buffer;
  /** 0 = from the next revision. */
  startRevision: number;
  prevKv: boolean;
  noPut: boolean;
  noDelete: boolean;
}

export interface WatchSink {
  onEvents(events: MvccEvent[], revision: number): void;
  onCompacted(compactRevision: number): void;
  /**
   * False while the sink cannot take more events (a stream over its send budget). Asked before every
   * delivery and before every replay chunk; a sink without it always accepts.
   */
  accepting?(): boolean;
  /** The watcher was parked because accepting() said false: nothing reaches it until resume(). */
  onParked?(): void;
}

/** Most events per history chunk handed to a replaying watcher (a revision is never split across chunks). */
export const REPLAY_CHUNK = 1000;
/**
 * Target size of one replay chunk (keys and values of its events). Chunks are cut by event count, so
 * the count is sized from the previous chunk's average event; the first chunk of a replay takes
 * REPLAY_FIRST_CHUNK events. Bounds what one replay step allocates and hands to a sink at once.
 */
export const REPLAY_CHUNK_BYTES = 256 * 1024;
const REPLAY_FIRST_CHUNK = 4;

const SYNCING = 0;
const LIVE = 1;
const GONE = 2;
/** A victim: out of the live fan-out until resume() catches it up from nextRev. */
const PARKED = 3;

interface Group {
  /** The group's map key; watchers share this string instead of each keeping its own copy. */
  id: string;
  /**
   * A range group's bounds, for matching. Null in a single-key group, which is matched by its id (the
   * key, latin1): two Buffers per watched key were most of an idle watch's memory on distinct keys.
   */
  key: Buffer | null;
  rangeEnd: Buffer | null;
  watchers: Set<Watcher>;
}

const NO_BYTES = Buffer.alloc(0);

class Watcher {
  id: number;
  readonly sink: WatchSink;
  readonly prevKv: boolean;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  groupId: string;
  readonly single: boolean;
  state = SYNCING;
  nextRev = 0;
  /** The watched range while not LIVE (a live watcher's range is its group's). */
  range: { key: Buffer; rangeEnd: Buffer } | null = null;
  constructor(id: number, spec: WatchSpec, sink: WatchSink, groupId: string, single: boolean) {
    this.id = id;
    this.sink = sink;
    this.prevKv = spec.prevKv;
    this.noPut = spec.noPut;
    this.noDelete = spec.noDelete;
    this.groupId = groupId;
    this.single = single;
  }
}

export class WatchHub {
  private readonly store: MvccStore;
  private readonly watchers = new Map<number, Watcher>();
  private readonly keyGroups = new Map<string, Group>();
  private readonly rangeGroups = new Map<string, Group>();
  private nextId = 1;
  private dispatching = false;
  private readonly queue: Array<{ events: MvccEvent[]; revision: number }> = [];
  private sinkError: unknown = undefined;

  constructor(store: MvccStore) {
    this.store = store;
  }

  watcherCount(): number {
    return this.watchers.size;
  }

  watch(spec: WatchSpec, sink: WatchSink): number {
    const id = this.nextId++;
    const single = spec.rangeEnd.length === 0;
    const keyId = spec.key.toString('latin1');
    // U+0100 cannot occur in a latin1-decoded string: an unambiguous separator.
    const groupId = single ? keyId : `${keyId}\u0100${spec.rangeEnd.toString('latin1')}`;
    const w = new Watcher(id, spec, sink, groupId, single);

    if (spec.startRevision <= 0) {
      w.nextRev = this.store.currentRevision() + 1;
      this.attach(w, spec);
      return id;
    }
    if (spec.startRevision < this.store.compactedRevision()) {
      sink.onCompacted(this.store.compactedRevision());
      return id;
    }
    this.watchers.set(id, w);
    w.nextRev = spec.startRevision;
    w.range = { key: spec.key, rangeEnd: spec.rangeEnd };
    this.catchUp(w);
    return id;
  }

  /** Watchers parked (victims) right now. */
  parkedCount(): number {
    let n = 0;
    for (const w of this.watchers.values()) if (w.state === PARKED) n++;
    return n;
  }

  /**
   * Catches a parked watcher up from its next revision and re-attaches it to the live fan-out. Returns
   * false if its sink stopped accepting first (it stays parked, onParked is called again, resume
   * later), true if it is live again, gone (cancelled, or told its revision was compacted), or was
   * never parked.
   */
  resume(handle: number): boolean {
    const w = this.watchers.get(handle);
    if (w === undefined || w.state !== PARKED) return true;
    w.state = SYNCING;
    this.catchUp(w);
    return w.state !== PARKED;
  }

  /**
   * Replays history from w.nextRev in chunks while the sink accepts, then attaches w. Sinks may write
   * (and notify) or cancel from inside onEvents, so the loop re-reads the store's revision until it
   * has caught up; notifications of revisions it replayed are skipped by the nextRev check.
   */
  private catchUp(w: Watcher): void {
    const range = w.range as { key: Buffer; rangeEnd: Buffer };
    let maxEvents = REPLAY_FIRST_CHUNK;
    while (w.state === SYNCING) {
      if (w.nextRev > this.store.currentRevision()) {
        this.attach(w, range);
        return;
      }
      if (w.sink.accepting !== undefined && !w.sink.accepting()) {
        w.state = PARKED;
        w.sink.onParked?.();
        return;
      }
      // One response: up to REPLAY_CHUNK events (etcd sends up to 1,000 revisions per response) or
      // about REPLAY_CHUNK_BYTES, read from the store in steps sized by what came before, so small
      // events arrive together as etcd sends them and large ones never pile up.
      const out: MvccEvent[] = [];
      let outBytes = 0;
      while (out.length < REPLAY_CHUNK && outBytes < REPLAY_CHUNK_BYTES && w.nextRev <= this.store.currentRevision()) {
        let events: MvccEvent[];
        try {
          events = this.store.eventsSince(range.key, range.rangeEnd, w.nextRev, Math.min(maxEvents, REPLAY_CHUNK - out.length));
        } catch (err) {
          if (err instanceof MvccError && err.code === 'compacted') {
            this.watchers.delete(w.id);
            w.state = GONE;
            w.range = null;
            w.sink.onCompacted(this.store.compactedRevision());
            return;
          }
          throw err;
        }
        if (events.length === 0) {
          w.nextRev = this.store.currentRevision() + 1;
          break;
        }
        w.nextRev = events[events.length - 1].kv.modRevision + 1;
        maxEvents = chunkSizeAfter(events);
        for (const e of this.filter(w, events)) {
          out.push(e);
          outBytes += eventBytes(e);
        }
      }
      if (out.length > 0) w.sink.onEvents(out, this.store.currentRevision());
    }
  }

  /** Takes a live watcher out of the fan-out; it keeps nextRev, so nothing it missed is lost. */
  private park(w: Watcher): void {
    const groups = w.single ? this.keyGroups : this.rangeGroups;
    const g = groups.get(w.groupId);
    if (g !== undefined) {
      w.range = { key: g.key ?? Buffer.from(g.id, 'latin1'), rangeEnd: g.rangeEnd ?? NO_BYTES };
      g.watchers.delete(w);
      if (g.watchers.size === 0) groups.delete(w.groupId);
    }
    w.state = PARKED;
    w.sink.onParked?.();
  }

  /**
   * The store's contents were replaced (a Raft snapshot was installed). Every watcher catches up from
   * its next revision through the new store's history; one whose next revision was compacted away
   * is told so, as etcd tells watchers after a restore.
   */
  storeReplaced(): void {
    // Parked watchers need nothing here: resume() reads the new store from their nextRev.
    const live = [...this.watchers.values()].filter((w) => w.state === LIVE);
    for (const w of live) {
      const groups = w.single ? this.keyGroups : this.rangeGroups;
      const g = groups.get(w.groupId);
      if (g === undefined) continue;
      const spec: WatchSpec = {
        key: g.key ?? Buffer.from(g.id, 'latin1'),
        rangeEnd: g.rangeEnd ?? NO_BYTES,
        startRevision: w.nextRev,
        prevKv: w.prevKv,
        noPut: w.noPut,
        noDelete: w.noDelete,
      };
      g.watchers.delete(w);
      if (g.watchers.size === 0) groups.delete(w.groupId);
      this.watchers.delete(w.id);
      w.state = GONE;
      const replacement = this.watch(spec, w.sink);
      // Keep the caller's handle: move the replacement under the old id.
      const moved = this.watchers.get(replacement);
      if (moved !== undefined) {
        this.watchers.delete(replacement);
        moved.id = w.id;
        this.watchers.set(w.id, moved);
      }
    }
  }

  private attach(w: Watcher, spec: { key: Buffer; rangeEnd: Buffer }): void {
    w.state = LIVE;
    w.range = null;
    this.watchers.set(w.id, w);
    const groups = w.single ? this.keyGroups : this.rangeGroups;
    let g = groups.get(w.groupId);
    if (g === undefined) {
      g = w.single
        ? { id: w.groupId, key: null, rangeEnd: null, watchers: new Set() }
        : { id: w.groupId, key: Buffer.from(spec.key), rangeEnd: Buffer.from(spec.rangeEnd), watchers: new Set() };
      groups.set(w.groupId, g);
    }
    w.groupId = g.id;
    g.watchers.add(w);
  }

  cancel(handle: number): void {
    const w = this.watchers.get(handle);
    if (w === undefined) return;
    this.watchers.delete(handle);
    const wasLive = w.state === LIVE;
    w.state = GONE;
    w.range = null;
    if (!wasLive) return;
    const groups = w.single ? this.keyGroups : this.rangeGroups;
    const g = groups.get(w.groupId);
    if (g !== undefined) {
      g.watchers.delete(w);
      if (g.watchers.size === 0) groups.delete(w.groupId);
    }
  }

  private filter(w: Watcher, events: MvccEvent[]): MvccEvent[] {
    const out: MvccEvent[] = [];
    for (const ev of events) {
      if (ev.type === 'PUT' ? w.noPut : w.noDelete) continue;
      out.push(w.prevKv || ev.prevKv === null ? ev : withoutPrevKv(ev));
    }
    return out;
  }

  /**
   * Called after each applied write, in revision order, with all of that revision's events. If a sink
   * throws, that watcher is cancelled, delivery to the others completes, and the first error is rethrown.
   */
  notify(events: MvccEvent[], revision: number): void {
    if (this.dispatching) {
      this.queue.push({ events, revision });
      return;
    }
    this.dispatching = true;
    this.sinkError = undefined;
    try {
      this.dispatch(events, revision);
      while (this.queue.length > 0) {
        const next = this.queue.shift() as { events: MvccEvent[]; revision: number };
        this.dispatch(next.events, next.revision);
      }
    } finally {
      this.dispatching = false;
      this.queue.length = 0;
    }
    if (this.sinkError !== undefined) {
      const err = this.sinkError;
      this.sinkError = undefined;
      throw err;
    }
  }

  private dispatch(events: MvccEvent[], revision: number): void {
    if (this.watchers.size === 0 || events.length === 0) return;
    let buckets: Map<Watcher, MvccEvent[]> | null = null;
    const stripped: Array<MvccEvent | undefined> = [];
    const hasKeyGroups = this.keyGroups.size > 0;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i];
      const k = ev.kv.key;
      const isPut = ev.type === 'PUT';
      if (hasKeyGroups) {
        const g = this.keyGroups.get(k.toString('latin1'));
        if (g !== undefined) buckets = this.collect(g, ev, i, isPut, revision, stripped, buckets);
      }
      for (const g of this.rangeGroups.values()) {
        if (keyInRange(k, g.key!, g.rangeEnd!)) buckets = this.collect(g, ev, i, isPut, revision, stripped, buckets);
      }
    }
    if (buckets === null) return;
    for (const [w, list] of buckets) {
      // A sink called earlier in this loop may have cancelled w.
      if (w.state !== LIVE || revision < w.nextRev) continue;
      if (w.sink.accepting !== undefined && !w.sink.accepting()) {
        // A victim: this revision and everything after it come from the store on resume().
        this.park(w);
        continue;
      }
      w.nextRev = revision + 1;
      try {
        w.sink.onEvents(list, revision);
      } catch (err) {
        // A failing sink must not starve the others: drop it, finish the fan-out, then report.
        this.cancel(w.id);
        if (this.sinkError === undefined) this.sinkError = err;
      }
    }
  }

  private collect(
    g: Group,
    ev: MvccEvent,
    i: number,
    isPut: boolean,
    revision: number,
    stripped: Array<MvccEvent | undefined>,
    buckets: Map<Watcher, MvccEvent[]> | null,
  ): Map<Watcher, MvccEvent[]> | null {
    for (const w of g.watchers) {
      if (w.state !== LIVE || revision < w.nextRev || (isPut ? w.noPut : w.noDelete)) continue;
      let out = ev;
      if (!w.prevKv && ev.prevKv !== null) {
        let s = stripped[i];
        if (s === undefined) {
          s = withoutPrevKv(ev);
          stripped[i] = s;
        }
        out = s;
      }
      if (buckets === null) buckets = new Map();
      const list = buckets.get(w);
      if (list === undefined) buckets.set(w, [out]);
      else list.push(out);
    }
    return buckets;
  }
}

/** An event's weight in a replay chunk: its keys and values, plus a fixed overhead. */
function eventBytes(e: MvccEvent): number {
  let bytes = 32 + e.kv.key.length + e.kv.value.length;
  if (e.prevKv !== null) bytes += e.prevKv.key.length + e.prevKv.value.length;
  return bytes;
}

/** Events for the next replay chunk: about REPLAY_CHUNK_BYTES at the average size of `events`. */
function chunkSizeAfter(events: MvccEvent[]): number {
  let bytes = 0;
  for (const e of events) bytes += eventBytes(e);
  const perEvent = bytes / events.length;
  return Math.max(1, Math.min(REPLAY_CHUNK, Math.floor(REPLAY_CHUNK_BYTES / perEvent)));
}

// The ordering core of a watch whose key range spans several shards: it merges the shards' event
// streams into one stream in revision order, every event exactly once, from any start revision, and
// decides when to subscribe, unsubscribe (park) and re-subscribe each shard. Pure: no I/O, no clocks;
// every input returns the actions to perform, in order. The I/O edge is merged-watch.ts.
//
// Why the output is correct (revisions come from one oracle, so they are globally ordered and gapped):
//   - each shard's subscription delivers whole revisions in the shard's apply order, and a shard's
//     revisions strictly increase in log order, so once revision r of shard s has arrived, nothing of s
//     at or below r can still come: r *resolves* s through r. A shard without writes resolves further
//     through progress (its closed timestamp). resolved[s] only grows while s is subscribed;
//   - the frontier F = min over shards of resolved[s]: every event at or below F of every shard is
//     buffered or already sent, so sending the buffered events ≤ F in revision order loses nothing and
//     never has to insert an earlier event later. Events of one revision stay together in one response
//     (one group per shard; a cross-shard transaction's groups are merged by op, then by key, each
//     group's own order kept: etcd's order — see joinInTxnOrder);
//   - duplicates: a revision at or below resolved[s] has been received already (a re-subscription's
//     overlap) and is dropped; messages of an old subscription are told apart by a generation number;
//   - every header revision h (event responses and progress) promises "every event ≤ h has been sent":
//     intermediate responses of one drain carry their last revision, the last carries F. Headers never
//     go backwards, so a client resuming from header + 1 misses nothing.
//
// Bounded memory while a shard lags: the lagging shard holds F back, and the others' events above F
// wait here. All shards' buffered events together are held to `bufferBudgetBytes` (counted as the hub
// counts a replay chunk: keys and values plus 32 bytes per event). Past it, the buffered revisions with
// the *highest* revisions are dropped, from whichever shard holds them, down to half the budget; each
// shard that lost some is parked: unsubscribed, its resolved revision lowered to just below the first
// revision it lost (it still holds everything up to there), so it costs nothing per write. A parked
// shard is re-subscribed from resolved + 1 — re-read from its store's history, as the hub catches up a
// victim — once it alone holds the frontier back (every live shard is past F), so every re-read makes F
// advance. If that revision was compacted meanwhile, the source says so and the watch is canceled with
// compact_revision, as etcd cancels a victim whose revision was compacted.
//
// The lowest buffered revision is never dropped: it goes out next, as soon as the shards still missing
// from it are resolved past it. A cross-shard transaction's revision has a group on several shards;
// dropping its groups while one is still missing repeats for ever once they weigh more than half the
// budget together (each re-read arrives while another group is missing, and is dropped again).
//
// While the output is paused (the client's stream is over its send budget) nothing is sent, the same
// budget applies, and a progress request waits for the output to resume. Memory: ≤ budget plus the
// lowest buffered revision plus the one batch being pushed.

import { withoutPrevKv, type MvccEvent } from '../mvcc/types.ts';
import type { WatchSpec } from '../mvcc/watch-hub.ts';
import { IndexedMinHeap } from './indexed-min-heap.ts';
import { compareBytes } from './slots.ts';

/** Most events per merged response (etcd sends up to 1,000 per response; the hub's REPLAY_CHUNK). */
export const MERGED_RESPONSE_MAX_EVENTS = 1000;
/** Target bytes per merged response, as the hub's REPLAY_CHUNK_BYTES (a revision is never split). */
export const MERGED_RESPONSE_MAX_BYTES = 256 * 1024;
/** Default for all shards' buffered events together (the same figure as WATCH_STREAM_SEND_BUDGET_BYTES). */
export const MERGE_BUFFER_BUDGET_BYTES = 256 * 1024;

/** A hub's WatchSpec (key, rangeEnd in etcd's forms, filters, prev_kv) over several shards. */
export interface MergedWatchSpec extends WatchSpec {
  /** First revision wanted, ≥ 1. The edge turns etcd's 0 ("from now") into a read revision + 1. */
  startRevision: number;
  /** The shards the range can touch (SlotMap.shardsOfRange), distinct. */
  shards: readonly number[];
  bufferBudgetBytes?: number;
  maxEventsPerResponse?: number;
  maxBytesPerResponse?: number;
}

export type WatchMergeAction =
  /** Open shard's subscription `generation` from `fromRevision` (events ≥ it, then live). */
  | { kind: 'subscribe'; shard: number; generation: number; fromRevision: number }
  /** Close that subscription; its later messages are ignored anyway. */
  | { kind: 'unsubscribe'; shard: number; generation: number }
  /** One watch response: whole revisions in order; everything ≤ headerRevision has now been sent. */
  | { kind: 'events'; events: MvccEvent[]; headerRevision: number }
  /** A progress notification: everything ≤ headerRevision has been sent. */
  | { kind: 'progress'; headerRevision: number }
  /** The watch is over: `shard` had compacted past what it still needed. */
  | { kind: 'canceled'; shard: number; compactRevision: number };

/** The events of one revision from one shard, filtered for this watch. */
interface RevisionGroup {
  revision: number;
  events: MvccEvent[];
  bytes: number;
}

interface ShardState {
  readonly shard: number;
  /** Position in shard order: the id in the heaps. */
  readonly index: number;
  generation: number;
  /** False while parked: no subscription, resolved fixed. */
  subscribed: boolean;
  /** Every event of this shard at or below it has been sent or is in `groups`. */
  resolved: number;
  /** Pending revisions, ascending, all > what was sent; groups[head] is the next. */
  groups: RevisionGroup[];
  head: number;
  bytes: number;
}

export interface WatchMergeStats {
  /** Highest header sent: every event ≤ it has been sent. */
  deliveredThrough: number;
  /** min over shards of the resolved revision. */
  frontier: number;
  bufferedBytes: number;
  bufferedEventsByShard: Map<number, number>;
  parkedShards: number[];
  /** Revisions received again (re-subscription overlap) and dropped. */
  duplicateRevisionsDropped: number;
  /** Revisions dropped over budget, to be re-read from their shard. */
  revisionsDroppedOverBudget: number;
  parks: number;
}

/** An event's weight in the buffer budget: keys and values plus a fixed overhead (the hub's eventBytes). */
export function mergeEventBytes(e: MvccEvent): number {
  let bytes = 32 + e.kv.key.length + e.kv.value.length;
  if (e.prevKv !== null) bytes += e.prevKv.key.length + e.prevKv.value.length;
  return bytes;
}

function keyInWatchRange(k: Buffer, key: Buffer, rangeEnd: Buffer): boolean {
  if (rangeEnd.length === 0) return k.equals(key);
  if (Buffer.compare(k, key) < 0) return false;
  return (rangeEnd.length === 1 && rangeEnd[0] === 0) || Buffer.compare(k, rangeEnd) < 0;
}

export class WatchMerger {
  private readonly spec: MergedWatchSpec;
  private readonly shards: ShardState[];
  private readonly byId = new Map<number, ShardState>();
  private readonly budgetBytes: number;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  /** Every shard by resolved revision: the frontier is its top. */
  private readonly byResolved: IndexedMinHeap;
  /** Shards holding buffered events, by the revision of their next one: the merge order. */
  private readonly byHead: IndexedMinHeap;
  private parkedCount = 0;
  private bufferedBytes = 0;
  private deliveredThrough: number;
  private outputOpen = true;
  private progressPending = false;
  private started = false;
  private done = false;
  private duplicates = 0;
  private droppedOverBudget = 0;
  private parks = 0;

  constructor(spec: MergedWatchSpec) {
    if (!Number.isSafeInteger(spec.startRevision) || spec.startRevision < 1) {
      throw new RangeError(`merged watch start revision must be an integer ≥ 1 (got ${String(spec.startRevision)})`);
    }
    if (spec.shards.length === 0) throw new RangeError('merged watch needs at least one shard');
    this.spec = spec;
    this.budgetBytes = spec.bufferBudgetBytes ?? MERGE_BUFFER_BUDGET_BYTES;
    this.maxEvents = spec.maxEventsPerResponse ?? MERGED_RESPONSE_MAX_EVENTS;
    this.maxBytes = spec.maxBytesPerResponse ?? MERGED_RESPONSE_MAX_BYTES;
    if (!(this.budgetBytes > 0) || !(this.maxEvents >= 1) || !(this.maxBytes > 0)) throw new RangeError('merged watch budgets must be positive');
    this.deliveredThrough = spec.startRevision - 1;
    const order = [...spec.shards].sort((a, b) => a - b);
    this.byResolved = new IndexedMinHeap(order.length);
    this.byHead = new IndexedMinHeap(order.length);
    for (const shard of order) {
      if (this.byId.has(shard)) throw new RangeError(`merged watch lists shard ${shard} twice`);
      const index = this.byId.size;
      const s: ShardState = { shard, index, generation: 0, subscribed: false, resolved: spec.startRevision - 1, groups: [], head: 0, bytes: 0 };
      this.byId.set(shard, s);
      this.byResolved.set(index, s.resolved);
    }
    this.shards = [...this.byId.values()];
  }

  /** The first subscriptions: every shard from the start revision. */
  start(): WatchMergeAction[] {
    if (this.started) return [];
    this.started = true;
    const out: WatchMergeAction[] = [];
    for (const s of this.shards) this.subscribe(s, out);
    return out;
  }

  /**
   * A batch from shard's subscription `generation`: whole revisions, ascending (the hub's onEvents,
   * live or replay). Delivering revision r also resolves the shard through r.
   */
  onEvents(shard: number, generation: number, events: readonly MvccEvent[]): WatchMergeAction[] {
    const s = this.current(shard, generation);
    if (s === null) return [];
    // A broken contract is refused before anything changes.
    for (let k = 1; k < events.length; k++) {
      if (events[k].kv.modRevision < events[k - 1].kv.modRevision) {
        throw new RangeError(`shard ${shard} delivered revision ${events[k].kv.modRevision} after ${events[k - 1].kv.modRevision}`);
      }
    }
    let i = 0;
    while (i < events.length) {
      const revision = events[i].kv.modRevision;
      let j = i + 1;
      while (j < events.length && events[j].kv.modRevision === revision) j++;
      if (revision <= s.resolved) this.duplicates++;
      else {
        this.accept(s, revision, events, i, j);
        s.resolved = revision;
      }
      i = j;
    }
    this.byResolved.set(s.index, s.resolved);
    return this.settle();
  }

  /** Shard's subscription promises no further event at or below `revision` (a closed timestamp). */
  onResolved(shard: number, generation: number, revision: number): WatchMergeAction[] {
    const s = this.current(shard, generation);
    if (s === null || revision <= s.resolved) return [];
    s.resolved = revision;
    this.byResolved.set(s.index, revision);
    return this.settle();
  }

  /**
   * Shard cannot serve its subscription: it compacted at `compactRevision`. The watch is canceled
   * (etcd's compact_revision) only if that is past what it still needs from the shard, resolved + 1.
   */
  onCompacted(shard: number, generation: number, compactRevision: number): WatchMergeAction[] {
    const s = this.current(shard, generation);
    if (s === null) return [];
    const out: WatchMergeAction[] = [];
    if (compactRevision <= s.resolved + 1) {
      // The subscription failed below what the watch still needs (it had rewound): the needed
      // revisions are still there, so subscribe again from them instead of canceling the watch.
      this.subscribe(s, out);
      return out;
    }
    this.finish(out);
    out.push({ kind: 'canceled', shard, compactRevision });
    return out;
  }

  /** A progress request: answered now with the delivered revision, or once the output resumes. */
  requestProgress(): WatchMergeAction[] {
    if (this.done) return [];
    if (!this.outputOpen) {
      this.progressPending = true;
      return [];
    }
    return [{ kind: 'progress', headerRevision: this.deliveredThrough }];
  }

  /** The client's stream is over its send budget: send nothing until resumeOutput(). */
  pauseOutput(): void {
    this.outputOpen = false;
  }

  resumeOutput(): WatchMergeAction[] {
    if (this.done || this.outputOpen) return [];
    this.outputOpen = true;
    const out = this.settle();
    if (this.progressPending) {
      this.progressPending = false;
      out.push({ kind: 'progress', headerRevision: this.deliveredThrough });
    }
    return out;
  }

  /** The client canceled the watch: close every subscription. */
  cancel(): WatchMergeAction[] {
    const out: WatchMergeAction[] = [];
    this.finish(out);
    return out;
  }

  isDone(): boolean {
    return this.done;
  }

  stats(): WatchMergeStats {
    const bufferedEventsByShard = new Map<number, number>();
    for (const s of this.shards) {
      let n = 0;
      for (let k = s.head; k < s.groups.length; k++) n += s.groups[k].events.length;
      bufferedEventsByShard.set(s.shard, n);
    }
    return {
      deliveredThrough: this.deliveredThrough,
      frontier: this.frontier(),
      bufferedBytes: this.bufferedBytes,
      bufferedEventsByShard,
      parkedShards: this.started && !this.done ? this.shards.filter((s) => !s.subscribed).map((s) => s.shard) : [],
      duplicateRevisionsDropped: this.duplicates,
      revisionsDroppedOverBudget: this.droppedOverBudget,
      parks: this.parks,
    };
  }

  private current(shard: number, generation: number): ShardState | null {
    const s = this.byId.get(shard);
    if (s === undefined) throw new RangeError(`shard ${shard} is not part of this merged watch`);
    if (this.done || !s.subscribed || s.generation !== generation) return null;
    return s;
  }

  /** Buffers events[i, j) (one revision) after this watch's filters; nothing is kept if none passes. */
  private accept(s: ShardState, revision: number, events: readonly MvccEvent[], i: number, j: number): void {
    if (revision < this.spec.startRevision) return;
    const spec = this.spec;
    const kept: MvccEvent[] = [];
    let bytes = 0;
    for (let k = i; k < j; k++) {
      const e = events[k];
      if (e.type === 'PUT' ? spec.noPut : spec.noDelete) continue;
      if (!keyInWatchRange(e.kv.key, spec.key, spec.rangeEnd)) continue;
      const out = spec.prevKv || e.prevKv === null ? e : withoutPrevKv(e);
      kept.push(out);
      bytes += mergeEventBytes(out);
    }
    if (kept.length === 0) return;
    if (s.head >= s.groups.length) this.byHead.set(s.index, revision);
    s.groups.push({ revision, events: kept, bytes });
    s.bytes += bytes;
    this.bufferedBytes += bytes;
  }

  private frontier(): number {
    return this.byResolved.keyOf(this.byResolved.peek());
  }

  /** After any input: send what is deliverable, keep the buffer in budget, re-subscribe bottlenecks. */
  private settle(): WatchMergeAction[] {
    const out: WatchMergeAction[] = [];
    if (this.done) return out;
    if (this.outputOpen) this.drain(out);
    if (this.bufferedBytes > this.budgetBytes) this.shed(out);
    if (this.outputOpen && this.parkedCount > 0) this.resumeBottlenecks(out);
    return out;
  }

  /** Sends every buffered revision ≤ F in revision order, in responses of whole revisions. */
  private drain(out: WatchMergeAction[]): void {
    const f = this.frontier();
    if (f <= this.deliveredThrough) return;
    let events: MvccEvent[] = [];
    let bytes = 0;
    let last = 0;
    for (;;) {
      const top = this.byHead.peek();
      if (top < 0) break;
      const next = this.byHead.keyOf(top);
      if (next > f) break;
      // Every shard's group of this revision (several only for a cross-shard transaction).
      const parts: RevisionGroup[] = [];
      while (this.byHead.size > 0 && this.byHead.keyOf(this.byHead.peek()) === next) {
        const s = this.shards[this.byHead.peek()];
        const g = s.groups[s.head++];
        s.bytes -= g.bytes;
        this.bufferedBytes -= g.bytes;
        parts.push(g);
        if (s.head < s.groups.length) this.byHead.set(s.index, s.groups[s.head].revision);
        else {
          this.byHead.delete(s.index);
          s.groups = [];
          s.head = 0;
        }
        if (s.head > 64 && s.head * 2 > s.groups.length) {
          s.groups = s.groups.slice(s.head);
          s.head = 0;
        }
      }
      let n = 0;
      let b = 0;
      for (const p of parts) {
        n += p.events.length;
        b += p.bytes;
      }
      if (events.length > 0 && (events.length + n > this.maxEvents || bytes + b > this.maxBytes)) {
        out.push({ kind: 'events', events, headerRevision: last });
        events = [];
        bytes = 0;
      }
      if (parts.length === 1) for (const e of parts[0].events) events.push(e);
      else joinInTxnOrder(parts, events);
      bytes += b;
      last = next;
    }
    if (events.length > 0) out.push({ kind: 'events', events, headerRevision: f });
    this.deliveredThrough = f;
  }

  /**
   * Drops the highest buffered revisions down to half the budget and parks the shards that held them;
   * never the lowest buffered revision, which goes out next.
   */
  private shed(out: WatchMergeAction[]): void {
    const target = this.budgetBytes / 2;
    const touched = new Set<ShardState>();
    const lowest = this.byHead.size > 0 ? this.byHead.keyOf(this.byHead.peek()) : Infinity;
    while (this.bufferedBytes > target) {
      let top: ShardState | null = null;
      for (const s of this.shards) {
        const last = s.head < s.groups.length ? s.groups[s.groups.length - 1].revision : -1;
        if (last > lowest && (top === null || last > top.groups[top.groups.length - 1].revision)) top = s;
      }
      if (top === null) break;
      const g = top.groups.pop() as RevisionGroup;
      top.bytes -= g.bytes;
      this.bufferedBytes -= g.bytes;
      // Everything below g is still held (or sent): the shard is complete through g.revision - 1.
      top.resolved = g.revision - 1;
      this.droppedOverBudget++;
      touched.add(top);
    }
    for (const s of touched) {
      this.byResolved.set(s.index, s.resolved);
      if (s.head >= s.groups.length) {
        s.groups = [];
        s.head = 0;
        this.byHead.delete(s.index);
      }
      if (s.subscribed) {
        s.subscribed = false;
        this.parks++;
        this.parkedCount++;
        out.push({ kind: 'unsubscribe', shard: s.shard, generation: s.generation });
      }
    }
  }

  /** Re-subscribes parked shards that alone hold the frontier back; each re-read then advances it. */
  private resumeBottlenecks(out: WatchMergeAction[]): void {
    const f = this.frontier();
    for (const s of this.shards) if (s.subscribed && s.resolved <= f) return;
    for (const s of this.shards) if (!s.subscribed && s.resolved <= f) this.subscribe(s, out);
  }

  private subscribe(s: ShardState, out: WatchMergeAction[]): void {
    if (!s.subscribed && s.generation > 0 && !this.done) this.parkedCount--;
    s.generation++;
    s.subscribed = true;
    out.push({ kind: 'subscribe', shard: s.shard, generation: s.generation, fromRevision: s.resolved + 1 });
  }

  private finish(out: WatchMergeAction[]): void {
    if (this.done) return;
    this.done = true;
    for (const s of this.shards) {
      if (s.subscribed) out.push({ kind: 'unsubscribe', shard: s.shard, generation: s.generation });
      s.subscribed = false;
      s.groups = [];
      s.head = 0;
      s.bytes = 0;
      this.byHead.delete(s.index);
    }
    this.parkedCount = 0;
    this.bufferedBytes = 0;
  }
}

/**
 * The events of one revision from several shards (a cross-shard transaction), appended to `out` in
 * etcd's order: a txn's events in op order, each op's in key order (a DeleteRange's and a lease
 * revoke's events are in key order on etcd too). A shard's part is in its ops' order, each op's events
 * in key order, and each event carries its op's place in the whole transaction (txnOpIndex, set when
 * the coordinator positioned the shares: txn-op-position.ts); so a merge by (op, key) that keeps each
 * shard's own order gives etcd's. Events without a position (a lease revoke's, or a transaction
 * coordinated by an older member) count as op 0: by key. Ties (never: a key lives on one shard) go to
 * the lower shard.
 */
export function joinInTxnOrder(parts: readonly { readonly events: readonly MvccEvent[] }[], out: MvccEvent[]): void {
  // A binary min-heap of the parts by their next event's (op, key) (then by part): about log2(parts)
  // comparisons an event instead of one per part, each in JavaScript rather than a call into C++.
  // 100,000 deletes over 16 shards: ~45 ms of the loop, against ~210 ms for a scan with Buffer.compare.
  const next = parts.map(() => 0);
  const heap: number[] = [];
  const less = (a: number, b: number): boolean => {
    const x = parts[a].events[next[a]];
    const y = parts[b].events[next[b]];
    const op = (x.txnOpIndex ?? 0) - (y.txnOpIndex ?? 0);
    if (op !== 0) return op < 0;
    const c = compareBytes(x.kv.key, y.kv.key);
    return c !== 0 ? c < 0 : a < b;
  };
  const siftDown = (from: number): void => {
    let i = from;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= heap.length) return;
      const m = l + 1 < heap.length && less(heap[l + 1], heap[l]) ? l + 1 : l;
      if (!less(heap[m], heap[i])) return;
      const t = heap[i];
      heap[i] = heap[m];
      heap[m] = t;
      i = m;
    }
  };
  for (let i = 0; i < parts.length; i++) if (parts[i].events.length > 0) heap.push(i);
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) siftDown(i);
  while (heap.length > 0) {
    const p = heap[0];
    out.push(parts[p].events[next[p]++]);
    if (next[p] >= parts[p].events.length) {
      const last = heap.pop() as number;
      if (heap.length === 0) return;
      heap[0] = last;
    }
    siftDown(0);
  }
}

// A merged watch's view of a shard this member does not host (or, in tests, chooses not to read
// locally): the seam of watch-source.ts over WatchShard streams to members that host a replica of it
// (proto/synod/shard_peer.proto; served by watch-shard-server.ts). Owns, per subscription, the stream, the
// choice of member, re-subscription when a stream breaks, and the resolve asks that keep an idle remote
// shard resolving.
//
// Why the seam's contract holds:
//   - every subscription keeps `through`: the highest revision it has delivered (events) or been told
//     resolved (marks), starting at fromRevision − 1. A stream from member M, subscribed from through + 1,
//     gives the events of M's replica from there, whole revisions in apply order, then marks (M's replica
//     honours the same contract, replica-watch-source.ts). When a stream breaks — M died, M no longer hosts
//     the shard, M is stopping, M's per-stream bound was passed, or an ask went unanswered — a new stream
//     is opened on a member from candidates(), again from through + 1. Everything ≤ through was handed to
//     the sink; nothing ≤ through is asked for again (and a revision ≤ through arriving anyway is dropped),
//     so the merge sees no gap and no duplicate. A mark from a replica is a fact about the shard (it will
//     commit nothing more at or below it) plus this stream's completeness from its start, so marks of
//     different members' replicas combine by max;
//   - resolvedRevision() of the source (synchronous in the seam) is the highest mark any stream of this
//     source has received: a true closed timestamp of the shard, possibly stale. The merge reads it only
//     as a lower bound: watch-service's "from now" start then replays a few events committed just before
//     the watch was created, above the created header's revision — still a consistent stream. A source
//     that has never had a stream says 0, and a long-unused one may be below a later compaction: a watch
//     whose shards are all remote should await probe() first. A subscription's resolvedRevision() is its
//     own `through`;
//   - compactedRevision() is the highest compacted revision a replica has reported (0 before any): the
//     merge checks it before subscribing only as a shortcut; a start below the real one is answered by the
//     serving replica with COMPACTED, which ends the subscription (onCompacted), as a local one;
//   - liveness: a resolve ask (sent on every subscribe, and whenever the hosting member asks, e.g. when
//     another shard of a merged watch delivered an event; at most one per 20 ms, never held back by an
//     unanswered one — its answer may wait for a slow shard on the serving member, and the next ask's
//     round still closes this shard) makes the serving member run a closing round started after it and
//     answer with a mark. No answer within `askTimeoutMs` and the stream is taken for
//     dead (a member cut off without a reset) and replaced. A stream that has said nothing for `idleAskMs`
//     is asked too, so a silent member is noticed even when nothing else asks (cost: one closing round on
//     the serving member per idle period per idle subscription). A member that answers asks but whose
//     marks have not moved for `staleAfterMs` (its replica is cut off from its group: every closing round
//     takes a fresh oracle revision, so a live one always moves) is replaced the same way.
// No candidate serving: the subscription keeps trying (back-off up to `maxBackoffMs`) for as long as the
// merged watch exists, and the merged watch holds its frontier meanwhile — exactly what it does when a
// local replica's shard has no leader: no event is sent out of order or invented, and progress headers
// stop advancing. It is never reported as compaction (that would be a lie: the history is there).
// `onUnavailable` tells the hosting member (a log line) once a subscription has failed for `unavailableAfterMs`.
import type { NodeId } from '../raft/types.ts';
import type { MvccEvent } from '../mvcc/types.ts';
import type { ShardSubscribeRequest, ShardWatchSink, ShardWatchSource, ShardWatchSubscription } from './watch-source.ts';
import { safeInt, watchEventsFromWire, type WatchShardResponseWire, type WatchShardSubscribeWire } from './shard-peer-wire.ts';

export interface WatchShardStreamHandlers {
  onMessage(msg: WatchShardResponseWire): void;
  /** The stream is over (after an end message, or a transport failure); called once. */
  onClosed(reason: string): void;
}

export interface WatchShardStream {
  /** Asks the serving member for a mark after a closing round started now (answered with this ask id). */
  ask(askId: number): void;
  cancel(): void;
}

/** Opens WatchShard streams (ShardPeerChannels.watchShard over the peer port; a fake in unit tests). */
export interface WatchShardTransport {
  /** A stream to `memberId`, or why none could be opened. */
  open(memberId: NodeId, subscribe: WatchShardSubscribeWire, handlers: WatchShardStreamHandlers): WatchShardStream | string;
}

export interface RemoteWatchSourceOptions {
  shard: number;
  groupId: number;
  /** Members hosting a replica of the shard, in preference order (this member excluded). */
  candidates(): readonly NodeId[];
  transport: WatchShardTransport;
  askTimeoutMs?: number;
  /** Asks answered while `through` has not moved for this long: the serving replica is stale, another is tried. */
  staleAfterMs?: number;
  /** A stream silent this long is sent a resolve ask (its liveness check). */
  idleAskMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  unavailableAfterMs?: number;
  /** A subscription has found no serving member for `unavailableAfterMs` (it keeps trying). */
  onUnavailable?(shard: number, reason: string): void;
}

export const REMOTE_WATCH_ASK_TIMEOUT_MS = 5_000;
export const REMOTE_WATCH_IDLE_ASK_MS = 5_000;
export const REMOTE_WATCH_STALE_AFTER_MS = 5_000;
/** Least time between two asks of one subscription (the serving member spaces its closing rounds itself: CLOSE_MIN_GAP_MS, CLOSE_BUSY_GAP_MS). */
const ASK_MIN_GAP_MS = 20;
export const REMOTE_WATCH_INITIAL_BACKOFF_MS = 25;
export const REMOTE_WATCH_MAX_BACKOFF_MS = 2_000;
export const REMOTE_WATCH_UNAVAILABLE_AFTER_MS = 10_000;

export class RemoteWatchSource implements ShardWatchSource {
  readonly shard: number;
  readonly groupId: number;
  readonly opts: RemoteWatchSourceOptions;
  private resolved = 0;
  private compacted = 0;
  private readonly live = new Set<RemoteSubscription>();
  private readonly probeWaiters: Array<() => void> = [];
  /** Called when a subscription receives events (the hosting member asks the other shards to resolve). */
  onActivity: (() => void) | null = null;
  readonly stats = { streamsOpened: 0, streamsBroken: 0, duplicateRevisionsDropped: 0, asks: 0, askTimeouts: 0, staleStreams: 0 };

  constructor(opts: RemoteWatchSourceOptions) {
    this.shard = opts.shard;
    this.groupId = opts.groupId;
    this.opts = opts;
  }

  subscribe(request: ShardSubscribeRequest, sink: ShardWatchSink): ShardWatchSubscription {
    if (!Number.isSafeInteger(request.fromRevision) || request.fromRevision < 1) {
      throw new RangeError(`shard subscription must start at a revision ≥ 1 (got ${String(request.fromRevision)})`);
    }
    const sub = new RemoteSubscription(this, request, sink);
    this.live.add(sub);
    sub.connect();
    return sub;
  }

  resolvedRevision(): number {
    return this.resolved;
  }

  compactedRevision(): number {
    return this.compacted;
  }

  subscriptionCount(): number {
    return this.live.size;
  }

  /** Asks every subscription's serving member for a mark after a closing round started now. */
  requestResolved(): void {
    for (const s of this.live) s.requestResolved();
  }

  /** Resolves once every subscription got a mark answering an ask made after the call (or after timeoutMs). */
  sync(timeoutMs: number): Promise<void> {
    return Promise.all([...this.live].map((s) => s.sync(timeoutMs))).then(() => undefined);
  }

  /**
   * Learns the shard's resolved revision now, for a merged watch "from now" whose shards are all remote
   * (its start is max over its sources' resolvedRevision(), and a cold or stale remote source would start
   * it in old, maybe compacted, history): a subscription from beyond every revision (no events) to a
   * serving member, ended by the first mark any stream of this source receives after the call (or after
   * `timeoutMs`). Resolves with resolvedRevision() then. The mark is the serving replica's
   * max(closed, applied): every entry after it has a higher revision, so it is a valid "now".
   */
  probe(timeoutMs: number): Promise<number> {
    return new Promise<number>((resolve) => {
      let sub: ShardWatchSubscription | null = null;
      let settled = false;
      const finish = (): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        const i = this.probeWaiters.indexOf(finish);
        if (i >= 0) this.probeWaiters.splice(i, 1);
        sub?.cancel();
        resolve(this.resolved);
      };
      const timer = setTimeout(finish, timeoutMs);
      timer.unref?.();
      this.probeWaiters.push(finish);
      const ignore = (): void => undefined;
      sub = this.subscribe(
        { key: Buffer.from([0]), rangeEnd: Buffer.alloc(0), fromRevision: Number.MAX_SAFE_INTEGER, prevKv: false, noPut: false, noDelete: false },
        { onEvents: ignore, onResolved: ignore, onCompacted: finish },
      );
      if (settled) sub.cancel();
    });
  }

  /** @internal */
  learned(resolved: number, compacted: number): void {
    if (resolved > this.resolved) this.resolved = resolved;
    if (compacted > this.compacted) this.compacted = compacted;
    if (resolved > 0 && this.probeWaiters.length > 0) for (const w of this.probeWaiters.splice(0)) w();
  }

  /** @internal */
  forget(sub: RemoteSubscription): void {
    this.live.delete(sub);
  }
}

class RemoteSubscription implements ShardWatchSubscription {
  private readonly source: RemoteWatchSource;
  private readonly request: ShardSubscribeRequest;
  private readonly sink: ShardWatchSink;
  /** Every event ≤ through was handed to the sink; the shard commits nothing more ≤ through. */
  private through: number;
  private stream: WatchShardStream | null = null;
  private member: NodeId = 0;
  private cursor = 0;
  private done = false;
  private backoffMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private failingSince: number | null = null;
  private unavailableReported = false;
  private askSeq = 0;
  /** Asks sent on the current stream and not answered yet, with their liveness timers. */
  private readonly asksOut = new Map<number, NodeJS.Timeout>();
  private lastAskMs = Number.NEGATIVE_INFINITY;
  private askGapTimer: NodeJS.Timeout | null = null;
  private answered = 0;
  private lastHeardMs = 0;
  /** When `through` last moved (or the stream opened): asks answered without it moving for long mean a stale replica. */
  private lastAdvanceMs = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private waiters: Array<{ minAsk: number; resolve(): void }> = [];

  constructor(source: RemoteWatchSource, request: ShardSubscribeRequest, sink: ShardWatchSink) {
    this.source = source;
    this.request = request;
    this.sink = sink;
    this.through = request.fromRevision - 1;
    this.backoffMs = source.opts.initialBackoffMs ?? REMOTE_WATCH_INITIAL_BACKOFF_MS;
  }

  resolvedRevision(): number {
    return this.through;
  }

  cancel(): void {
    if (this.done) return;
    this.finish();
  }

  /**
   * Asks for a mark now, or at the end of the gap since the last ask (asks in between coalesce). An ask
   * out does not hold the next back: its answer may wait up to the serving member's resolve timeout for
   * a slow shard there, while the next ask's round still closes this one.
   */
  requestResolved(): void {
    if (this.done || this.stream === null) return; // every (re)subscribe asks once
    const since = Date.now() - this.lastAskMs;
    if (since < ASK_MIN_GAP_MS) {
      if (this.askGapTimer === null) {
        this.askGapTimer = setTimeout(() => {
          this.askGapTimer = null;
          this.requestResolved();
        }, ASK_MIN_GAP_MS - since);
        this.askGapTimer.unref?.();
      }
      return;
    }
    const id = ++this.askSeq;
    const stream = this.stream;
    const timeoutMs = this.source.opts.askTimeoutMs ?? REMOTE_WATCH_ASK_TIMEOUT_MS;
    const timer = setTimeout(() => {
      if (this.stream !== stream || !this.asksOut.has(id)) return;
      this.source.stats.askTimeouts++;
      this.broken(`member ${this.member.toString(16)} did not answer a resolve ask in ${timeoutMs} ms`, true);
    }, timeoutMs);
    timer.unref?.();
    this.asksOut.set(id, timer);
    this.lastAskMs = Date.now();
    this.source.stats.asks++;
    stream.ask(id);
  }

  sync(timeoutMs: number): Promise<void> {
    if (this.done) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const w = {
        minAsk: this.askSeq + 1,
        resolve: () => {
          clearTimeout(timer);
          const i = this.waiters.indexOf(w);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve();
        },
      };
      const timer = setTimeout(() => w.resolve(), timeoutMs);
      timer.unref?.();
      this.waiters.push(w);
      this.requestResolved();
    });
  }

  /** Opens a stream on the next candidate from through + 1 (or schedules a retry when none answers). */
  connect(): void {
    if (this.done) return;
    this.retryTimer = null;
    const candidates = this.source.opts.candidates();
    if (candidates.length === 0) return this.retry('no member hosts the shard');
    const member = candidates[this.cursor % candidates.length];
    const r = this.request;
    const subscribe: WatchShardSubscribeWire = {
      group_id: this.source.groupId,
      key: r.key,
      range_end: r.rangeEnd,
      from_revision: this.through + 1,
      prev_kv: r.prevKv,
      no_put: r.noPut,
      no_delete: r.noDelete,
    };
    let stream: WatchShardStream | null = null;
    let early: WatchShardResponseWire[] | null = [];
    let closedEarly: string | null = null;
    const opened = this.source.opts.transport.open(member, subscribe, {
      onMessage: (msg) => {
        if (early !== null) early.push(msg);
        else if (stream !== null && this.stream === stream) this.onMessage(msg);
      },
      onClosed: (reason) => {
        if (early !== null) closedEarly = reason;
        else if (stream !== null && this.stream === stream) this.broken(`stream from member ${member.toString(16)} closed: ${reason}`, true);
      },
    });
    if (typeof opened === 'string') {
      this.cursor++;
      return this.retry(opened);
    }
    stream = opened;
    this.stream = stream;
    this.member = member;
    this.source.stats.streamsOpened++;
    this.lastHeardMs = Date.now();
    this.lastAdvanceMs = Date.now();
    this.armIdle();
    // A transport may answer from inside open(): replay what came, in order.
    const queued = early;
    early = null;
    for (const msg of queued) if (this.stream === stream) this.onMessage(msg);
    if (closedEarly !== null && this.stream === stream) return this.broken(`stream from member ${member.toString(16)} closed: ${String(closedEarly)}`, true);
    // One ask per (re)subscribe: a merged event may wait for this shard, and the ask is the stream's liveness check.
    if (this.stream === stream) {
      this.lastAskMs = Number.NEGATIVE_INFINITY;
      this.requestResolved();
    }
  }

  /** While a stream is open: ask it when it has been silent for idleAskMs (the ask's timeout then judges it). */
  private armIdle(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    const idleMs = this.source.opts.idleAskMs ?? REMOTE_WATCH_IDLE_ASK_MS;
    const wait = Math.max(1, this.lastHeardMs + idleMs - Date.now());
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.done || this.stream === null) return;
      if (Date.now() - this.lastHeardMs >= idleMs) {
        this.lastHeardMs = Date.now();
        this.requestResolved();
      }
      this.armIdle();
    }, wait);
    this.idleTimer.unref?.();
  }

  private onMessage(msg: WatchShardResponseWire): void {
    this.lastHeardMs = Date.now();
    try {
      switch (msg.response) {
        case 'events':
          return this.onEvents(watchEventsFromWire(msg.events?.events));
        case 'resolved': {
          const m = msg.resolved;
          if (!m) throw new Error('resolved: missing');
          return this.onResolved(safeInt(m.revision, 'revision'), safeInt(m.compacted_revision, 'compacted_revision'), safeInt(m.ask_id, 'ask_id'));
        }
        case 'end': {
          const e = msg.end;
          if (!e) throw new Error('end: missing');
          if (e.kind === 'COMPACTED') return this.onCompacted(safeInt(e.compact_revision, 'compact_revision'));
          // OVERLOADED: the same member again, at once (everything it sent is whole); the others: elsewhere.
          const sameMember = e.kind === 'OVERLOADED';
          if (sameMember) this.backoffMs = this.source.opts.initialBackoffMs ?? REMOTE_WATCH_INITIAL_BACKOFF_MS;
          return this.broken(`member ${this.member.toString(16)} ended the stream: ${e.kind} ${e.message}`, !sameMember);
        }
        default:
          throw new Error(`message without a known response (${String(msg.response)})`);
      }
    } catch (err) {
      this.broken(`bad message from member ${this.member.toString(16)}: ${err instanceof Error ? err.message : String(err)}`, true);
    }
  }

  private onEvents(events: MvccEvent[]): void {
    let i = 0;
    while (i < events.length && events[i].kv.modRevision <= this.through) i++;
    if (i > 0) this.source.stats.duplicateRevisionsDropped++;
    if (i >= events.length) return;
    const fresh = i === 0 ? events : events.slice(i);
    this.through = fresh[fresh.length - 1].kv.modRevision;
    this.healthy();
    this.sink.onEvents(fresh);
    this.source.onActivity?.();
  }

  private onResolved(revision: number, compacted: number, askId: number): void {
    this.source.learned(revision, compacted);
    if (revision > this.through) {
      this.through = revision;
      this.healthy();
      this.sink.onResolved(revision);
    }
    const timer = askId !== 0 ? this.asksOut.get(askId) : undefined;
    if (timer !== undefined) {
      clearTimeout(timer);
      this.asksOut.delete(askId);
      if (askId > this.answered) this.answered = askId;
      for (const w of [...this.waiters]) if (w.minAsk <= this.answered) w.resolve();
      // Asks answered, yet nothing advanced for a while: a round takes a fresh oracle revision, so a
      // replica that still closes moves on every answered ask. This one is cut off from its group (or the
      // shard has no leader): another replica is tried (harmless if the whole shard is stuck).
      const staleMs = this.source.opts.staleAfterMs ?? REMOTE_WATCH_STALE_AFTER_MS;
      if (Date.now() - this.lastAdvanceMs >= staleMs) {
        this.source.stats.staleStreams++;
        this.broken(`member ${this.member.toString(16)} answers but its replica has not resolved past ${this.through} for ${staleMs} ms`, true);
      }
    }
  }

  private onCompacted(compactRevision: number): void {
    this.source.learned(0, compactRevision);
    this.finish();
    this.sink.onCompacted(compactRevision);
  }

  /** The stream advanced `through`: the next failure starts a fresh back-off and a fresh unavailability clock. */
  private healthy(): void {
    this.lastAdvanceMs = Date.now();
    this.backoffMs = this.source.opts.initialBackoffMs ?? REMOTE_WATCH_INITIAL_BACKOFF_MS;
    this.failingSince = null;
    this.unavailableReported = false;
  }

  /** The current stream is unusable: drop it and subscribe again from through + 1 (another member if `moveOn`). */
  private broken(reason: string, moveOn: boolean): void {
    if (this.done) return;
    this.source.stats.streamsBroken++;
    this.dropStream();
    if (moveOn) this.cursor++;
    this.retry(reason);
  }

  private retry(reason: string): void {
    if (this.done || this.retryTimer !== null) return;
    const now = Date.now();
    if (this.failingSince === null) this.failingSince = now;
    const after = this.source.opts.unavailableAfterMs ?? REMOTE_WATCH_UNAVAILABLE_AFTER_MS;
    if (!this.unavailableReported && now - this.failingSince >= after) {
      this.unavailableReported = true;
      this.source.opts.onUnavailable?.(this.source.shard, reason);
    }
    // A pending ask is re-sent on the next stream (requestResolved on connect).
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.source.opts.maxBackoffMs ?? REMOTE_WATCH_MAX_BACKOFF_MS);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryTimer.unref?.();
  }

  private dropStream(): void {
    const s = this.stream;
    this.stream = null;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    for (const t of this.asksOut.values()) clearTimeout(t);
    this.asksOut.clear();
    if (this.askGapTimer !== null) clearTimeout(this.askGapTimer);
    this.askGapTimer = null;
    s?.cancel();
  }

  private finish(): void {
    this.done = true;
    this.dropStream();
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    for (const w of this.waiters.splice(0)) w.resolve();
    this.source.forget(this);
  }
}

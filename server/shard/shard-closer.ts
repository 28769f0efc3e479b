// Closing rounds: how this member's shard replicas learn closed revisions for merged (multi-shard)
// watches. A round: take one fresh oracle revision R; ask every shard's leader to close at R, which is
// the multi-shard read's own step — ShardWritePath.readAt(R) on the leader (here, or RangeAt on the peer
// port), answering with the leader's applied index I after the read; wait until this member's replica
// has applied through I; then the replica's source resolves to R (ReplicaWatchSource.close).
//
// When rounds run, only while at least one merged watch is open on this member (acquire() … release):
//   - on demand: request() — called when a merged watch's shard delivers an event, which the merge can
//     release only once every other shard is resolved past it. A round starts at once, or, if one
//     started less than the gap ago or its oracle request is still out, right after (requests in
//     between are coalesced into that one round). So a write reaches the watcher one round after it is
//     applied here, and a busy range costs at most one round per gap. The gap is `minGapMs` (5 ms)
//     while this member is not busy, and `busyGapMs` (20 ms) while `busy()` says it is: a round costs
//     the same whatever it releases, so a loaded member spends less on rounds and its watchers wait a
//     little longer, and a quiet one delivers sooner (prefix watch over 16 shards at 200 puts/s: p50
//     13 ms with 20 ms, 6 ms with 5 ms, for about a fifth of a core more over the three members);
//   - for a progress notification or request (sync(): its header is the merged resolved revision, so it
//     waits for a round that started after it was asked, and is then as fresh as a write's event);
//   - at a heartbeat every `heartbeatMs`, only if `needsRound()` says some shard a merged watch follows is
//     resolved below another (an event waits, or a shard's close failed and must be retried). The
//     heartbeat itself is a timer and that check: no I/O.
// No merged watch, no rounds, no timer: an idle cluster pays nothing; an open merged watch on an idle
// range pays no round either, once its shards are resolved alike.
//
// Why closed(R) is true ("this replica has delivered everything at or below R and the shard will commit
// nothing more at or below R"): readAt(R) returns only after (1) every revision ≤ R the leader proposed
// is applied there, (2) a ReadIndex at its term applied everything committed, and (3) the leader's floor
// is ≥ R, so it never stamps a revision ≤ R afterwards; a later leader starts above a fresh oracle
// revision taken after its election, which is after this read's leadership check, so above R; an entry
// of a deposed leader can no longer commit once the ReadIndex committed one of the reader's term
// (docs/sharding.md, "Why history at R never changes afterwards" — the same argument, reused as is).
// So every entry of the shard with a revision ≤ R is committed at an index ≤ the leader's applied index
// read after the read, I, and no other will ever be. By log matching, this replica's entries through I
// are the same entries; once it applied them, the hub has handed every event ≤ R to every live watcher.
// A leadership change during a close makes readAt fail (it checks the term after the barrier): that
// shard simply keeps its closed revision until a later round succeeds.
//
// Cost of a round: one oracle request (served from the metadata leader's persisted window: no Raft
// entry, one revision used up — a gap) and per shard one read at R on its leader (a ReadIndex: one
// heartbeat round, which wakes a quiesced group). A shard whose close is still out is not asked again,
// but closes at the newest round's revision as soon as it ends.
import type { ReplicaWatchSource } from './replica-watch-source.ts';

export interface ClosableShard {
  readonly groupId: number;
  readonly source: ReplicaWatchSource;
}

export interface ShardCloserOptions {
  shards: readonly ClosableShard[];
  /** A revision from the oracle above everything handed out before the call. */
  freshRevision(deadlineMs: number): Promise<number>;
  /**
   * Closes the shard on its leader at `revision` or below (ShardWritePath.closeAt): resolves with the
   * revision closed and the leader's applied index after the close.
   */
  closeOnLeader(groupId: number, revision: number, deadlineMs: number): Promise<{ revision: number; appliedIndex: number }>;
  /** Resolves once this member's replica of `groupId` has applied through `index`. */
  waitApplied(groupId: number, index: number, deadlineMs: number): Promise<void>;
  /** Least time between two round starts while the member is not busy (bounds a busy watch's cost). */
  minGapMs?: number;
  /** Least time between two round starts while `busy()` says the member is busy. */
  busyGapMs?: number;
  /** Whether this member is busy now (its event loop mostly working); default never. */
  busy?(): boolean;
  /** How often, while a merged watch is open, `needsRound()` is asked whether a round is due. */
  heartbeatMs?: number;
  /** Whether some shard a merged watch follows is resolved below another (default: always). */
  needsRound?(): boolean;
  /** Longest one close may take (a shard electing a leader is tried again in a later round). */
  closeTimeoutMs?: number;
  /** Why a close failed, for the log. */
  onCloseFailed?(groupId: number, err: unknown): void;
  now?(): number;
  setTimer?(fn: () => void, ms: number): { unref?(): void };
  clearTimer?(t: unknown): void;
}

export const CLOSE_MIN_GAP_MS = 5;
export const CLOSE_BUSY_GAP_MS = 20;
export const CLOSE_HEARTBEAT_MS = 200;
const CLOSE_TIMEOUT_MS = 2_000;

export class ShardCloser {
  private readonly opts: ShardCloserOptions;
  private readonly minGapMs: number;
  private readonly busyGapMs: number;
  private readonly heartbeatMs: number;
  private readonly closeTimeoutMs: number;
  private readonly now: () => number;
  private users = 0;
  private timer: unknown = null;
  private timerDue = 0;
  private oracleOut = false;
  /** A round was asked for while one could not start: it starts as soon as it can. */
  private wanted = false;
  private lastStart = Number.NEGATIVE_INFINITY;
  /** The newest round's revision. */
  private latest = 0;
  private roundSeq = 0;
  /** sync() callers: resolved once every shard is resolved through `target`, the R of a round started after them. */
  private syncWaiters: Array<{ minRound: number; target: number; resolve(): void }> = [];
  private readonly closing = new Set<number>();
  private stopped = false;
  readonly stats = { rounds: 0, closes: 0, closeFailures: 0, oracleFailures: 0 };

  constructor(opts: ShardCloserOptions) {
    this.opts = opts;
    this.minGapMs = opts.minGapMs ?? CLOSE_MIN_GAP_MS;
    this.busyGapMs = Math.max(this.minGapMs, opts.busyGapMs ?? CLOSE_BUSY_GAP_MS);
    this.heartbeatMs = opts.heartbeatMs ?? CLOSE_HEARTBEAT_MS;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
    this.now = opts.now ?? Date.now;
  }

  /** A merged watch opened: rounds run (the first at once) until every holder released. */
  acquire(): () => void {
    let held = true;
    this.users++;
    if (this.users === 1) this.request();
    return () => {
      if (!held) return;
      held = false;
      this.users--;
      if (this.users === 0) {
        this.wanted = false;
        this.cancelTimer();
        for (const w of this.syncWaiters.splice(0)) w.resolve();
      }
    };
  }

  /** Whether rounds are running (some merged watch is open). */
  active(): boolean {
    return this.users > 0 && !this.stopped;
  }

  /** A round is wanted (an event waits for the other shards): now, or as soon as the gap allows. */
  request(): void {
    if (!this.active()) return;
    const since = this.now() - this.lastStart;
    const gapMs = this.opts.busy?.() === true ? this.busyGapMs : this.minGapMs;
    if (this.oracleOut || since < gapMs) {
      this.wanted = true;
      if (!this.oracleOut) this.arm(gapMs - since);
      return;
    }
    this.round();
  }

  /**
   * Resolves once every shard is resolved through the revision of a round started after this call (a
   * progress header then covers everything committed before it), or after `timeoutMs` regardless (the
   * header is then older, never wrong).
   */
  sync(timeoutMs: number): Promise<void> {
    if (!this.active()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const set = this.opts.setTimer ?? ((fn: () => void, ms: number) => setTimeout(fn, ms));
      const clear = this.opts.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout));
      const w = {
        minRound: this.roundSeq + 1,
        target: 0,
        resolve: () => {
          clear(timer);
          const i = this.syncWaiters.indexOf(w);
          if (i >= 0) this.syncWaiters.splice(i, 1);
          resolve();
        },
      };
      const timer = set(() => w.resolve(), timeoutMs);
      timer.unref?.();
      this.syncWaiters.push(w);
      this.request();
    });
  }

  stop(): void {
    this.stopped = true;
    this.cancelTimer();
    for (const w of this.syncWaiters.splice(0)) w.resolve();
  }

  /** Settles the sync() callers every shard is resolved for; asks for another round if some still wait. */
  private checkSync(): void {
    if (this.syncWaiters.length === 0) return;
    for (const w of [...this.syncWaiters]) {
      if (w.target > 0 && this.opts.shards.every((s) => s.source.resolvedRevision() >= w.target)) w.resolve();
    }
    // A shard closed below the target (at its floor) or failed: another round, once nothing is out.
    if (this.closing.size === 0 && this.syncWaiters.some((w) => w.target > 0)) this.request();
  }

  private cancelTimer(): void {
    if (this.timer === null) return;
    (this.opts.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout)))(this.timer);
    this.timer = null;
  }

  /** The next round in `ms` at the latest (an earlier timer stays). */
  private arm(ms: number): void {
    const due = this.now() + ms;
    if (this.timer !== null && this.timerDue <= due) return;
    this.cancelTimer();
    const set = this.opts.setTimer ?? ((fn: () => void, delay: number) => setTimeout(fn, delay));
    const t = set(() => {
      this.timer = null;
      // A heartbeat with nothing to do costs only this check.
      if (this.wanted || this.syncWaiters.length > 0 || (this.opts.needsRound?.() ?? true)) this.request();
      else this.arm(this.heartbeatMs);
    }, Math.max(0, ms));
    t.unref?.();
    this.timer = t;
    this.timerDue = due;
  }

  private round(): void {
    this.wanted = false;
    this.lastStart = this.now();
    this.cancelTimer();
    this.arm(this.heartbeatMs);
    this.stats.rounds++;
    this.oracleOut = true;
    const seq = ++this.roundSeq;
    this.opts.freshRevision(this.now() + this.closeTimeoutMs).then(
      (revision) => {
        this.oracleOut = false;
        if (!this.active()) return;
        if (revision > this.latest) this.latest = revision;
        for (const w of this.syncWaiters) if (w.target === 0 && w.minRound <= seq) w.target = revision;
        // Shards whose close of an earlier round is still out take R when it ends; the rest close at R now.
        for (const s of this.opts.shards) if (!this.closing.has(s.groupId)) void this.close(s, revision);
        if (this.wanted) this.request();
      },
      () => {
        this.oracleOut = false;
        this.stats.oracleFailures++;
        if (this.wanted || this.syncWaiters.length > 0) this.request();
      },
    );
  }

  private async close(s: ClosableShard, revision: number): Promise<void> {
    this.closing.add(s.groupId);
    const deadlineMs = this.now() + this.closeTimeoutMs;
    try {
      const closed = await this.opts.closeOnLeader(s.groupId, revision, deadlineMs);
      await this.opts.waitApplied(s.groupId, closed.appliedIndex, deadlineMs);
      s.source.close(closed.revision);
      this.stats.closes++;
    } catch (err) {
      this.stats.closeFailures++;
      this.opts.onCloseFailed?.(s.groupId, err);
    } finally {
      this.closing.delete(s.groupId);
    }
    // A round came and went while this close was out: take its revision now rather than a round later
    // (a slow shard would otherwise hold every merged watch back by a further round).
    if (this.active() && this.latest > revision && this.latest > s.source.closedRevision()) void this.close(s, this.latest);
    else this.checkSync();
  }
}

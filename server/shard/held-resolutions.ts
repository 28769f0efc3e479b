// Cross-shard transactions' resolutions that a shard's leader holds back so that they ride with another
// entry: the same member turn, the same fsync and the same frame to each peer. One HeldResolutions per
// shard write path; the paths of one member that hold some form its RideAlong, so that entries any shard
// of the member proposes take every held resolution along (docs/transactions.md, "Resolutions ride with
// the next entry").
//
// What it owns: the held list (in arrival order), its timer, the member's set of holding paths, and what
// becomes of a held resolution — proposed (flush), passed on to whoever leads next (a leadership that
// ended: it never reached this leader's log, so it cannot apply twice), or dropped (the replica stops:
// the shard's recoverers finish the transaction, as for a coordinator that crashed). Which resolutions may
// be held, and when the shard's own outbox needs them first, are the write path's decisions.
import type { TxnResolveWire } from './request-codec.ts';

/**
 * Longest a resolution waits for an entry to ride with. Short: a shard's watchers see the transaction's
 * writes when its resolution applies, and the brief holds them to 100 ms p99.
 */
export const LAZY_RESOLVE_MS = 20;

export interface HeldResolution {
  readonly data: Uint8Array;
  readonly resolve: TxnResolveWire;
}

export interface HeldResolutionsOptions {
  /** Proposes one to the shard's Raft as this leader's own entry; throws when Raft will not take it. */
  propose(held: HeldResolution): void;
  /** Sends one on to whoever leads the shard now: Raft would not take it here, or the leadership ended. */
  passOn(data: Uint8Array): void;
  /** After a flush that proposed or passed on some: the shard's outbox may move behind them. */
  afterFlush(): void;
  /** Defaults to LAZY_RESOLVE_MS. */
  holdMs?: number;
}

export interface HeldResolutionCounts {
  /** Held back on arrival. */
  held: number;
  /** Proposed on their own: nothing came for them within holdMs. */
  alone: number;
  /** Passed on to the next leader: the leadership ended, or Raft would not take them (a transfer under way). */
  passedOn: number;
  /** Of passedOn, those still held when the leadership ended (passAllOn). */
  passedOnAtLoss: number;
}

/** The holding paths of one member: an entry proposed on any of its shards takes them all along. */
export class RideAlong {
  private readonly holding = new Set<HeldResolutions>();
  /** Set while flushing: the entries a flush proposes do not start another. */
  private flushing = false;

  /** Some shard of the member proposed entries: every resolution its shards hold goes with them. */
  flushAll(): void {
    if (this.flushing || this.holding.size === 0) return;
    this.flushing = true;
    try {
      for (const held of [...this.holding]) held.flush();
    } finally {
      this.flushing = false;
    }
  }

  /** Paths holding resolutions now (tests). */
  holdingCount(): number {
    return this.holding.size;
  }

  /** @internal HeldResolutions joins while it holds any, and leaves when it holds none. */
  join(held: HeldResolutions): void {
    this.holding.add(held);
  }

  /** @internal */
  leave(held: HeldResolutions): void {
    this.holding.delete(held);
  }
}

const rideAlongs = new WeakMap<object, RideAlong>();

/** The RideAlong of `member` (any object standing for one member), made on first use. */
export function rideAlongOf(member: object): RideAlong {
  let r = rideAlongs.get(member);
  if (r === undefined) rideAlongs.set(member, (r = new RideAlong()));
  return r;
}

export class HeldResolutions {
  readonly counts: HeldResolutionCounts = { held: 0, alone: 0, passedOn: 0, passedOnAtLoss: 0 };
  private list: HeldResolution[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly group: RideAlong;
  private readonly opts: HeldResolutionsOptions;

  constructor(group: RideAlong, opts: HeldResolutionsOptions) {
    this.group = group;
    this.opts = opts;
  }

  get size(): number {
    return this.list.length;
  }

  /** Holds `held` back until an entry leaves with it, something needs it, or holdMs passed. */
  hold(held: HeldResolution): void {
    this.list.push(held);
    this.counts.held++;
    this.group.join(this);
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.counts.alone += this.list.length;
      this.flush();
    }, this.opts.holdMs ?? LAZY_RESOLVE_MS);
  }

  /**
   * Proposes every held resolution, in order (one Raft will not take is passed on), then lets the
   * shard's outbox move, and takes the member's other held resolutions along in the same turn.
   */
  flush(): void {
    const list = this.take();
    if (list.length === 0) return;
    for (const held of list) {
      try {
        this.opts.propose(held);
      } catch {
        this.counts.passedOn++;
        this.opts.passOn(held.data);
      }
    }
    this.opts.afterFlush();
    this.group.flushAll();
  }

  /** The leadership ended: none of them reached its log, so each goes to whoever leads next. */
  passAllOn(): void {
    const list = this.take();
    this.counts.passedOn += list.length;
    this.counts.passedOnAtLoss += list.length;
    for (const held of list) this.opts.passOn(held.data);
  }

  /** The replica stops: they are lost with it, as any proposal not yet in a log (recoverers finish them). */
  drop(): void {
    this.take();
  }

  private take(): HeldResolution[] {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const list = this.list;
    this.list = [];
    this.group.leave(this);
    return list;
  }
}

// Deterministic time for the member simulation: one discrete-event scheduler that stands in for
// setTimeout, setInterval, setImmediate (and their clear functions) and Date.now while a simulation
// runs, so Member's ticks, turns, lazy flushes and waits, the storage double's write latencies and the
// network's deliveries all happen in simulated time, in one order fixed by the seed.
//
// Events run one at a time in (time, creation order). After each event the scheduler lets the real
// event loop settle (every promise continuation, and any real file I/O such as reading a received
// snapshot file) before the next event, so asynchronous code behaves as it would between two
// macrotasks and the interleaving never depends on real time.
//
// Every timer has an owner: the simulated process that created it (tracked with AsyncLocalStorage,
// so promise continuations keep it). Crashing a member cancels every timer its incarnation owns:
// nothing of a dead process runs again, exactly like kill -9. Pausing an owner (SIGSTOP, or a loop
// stalled for seconds) defers every timer of it that falls due meanwhile to the pause's end, in order;
// the clock itself runs on, so the owner finds on waking that time has passed.
import { AsyncLocalStorage } from 'node:async_hooks';

const realSetImmediate = globalThis.setImmediate;

/** A pending simulated timer; shaped like Node's Timeout/Immediate for the code that keeps one. */
export class SimTimer {
  readonly id: number;
  at: number;
  seq: number;
  readonly owner: string;
  readonly intervalMs: number;
  cancelled = false;
  private readonly cb: () => void;

  constructor(id: number, at: number, seq: number, owner: string, intervalMs: number, cb: () => void) {
    this.id = id;
    this.at = at;
    this.seq = seq;
    this.owner = owner;
    this.intervalMs = intervalMs;
    this.cb = cb;
  }

  run(): void {
    this.cb();
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  hasRef(): boolean {
    return true;
  }

  refresh(): this {
    return this;
  }

  [Symbol.toPrimitive](): number {
    return this.id;
  }
}

/** Binary min-heap of timers by (at, seq). */
class TimerHeap {
  private readonly items: SimTimer[] = [];

  get size(): number {
    return this.items.length;
  }

  private less(a: SimTimer, b: SimTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  push(t: SimTimer): void {
    const a = this.items;
    a.push(t);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  pop(): SimTimer | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l], a[m])) m = l;
        if (r < a.length && this.less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

function ioPending(): boolean {
  for (const r of process.getActiveResourcesInfo()) if (r.startsWith('FSReq')) return true;
  return false;
}

/** Lets every promise continuation and real file operation started so far finish. */
async function settleRealLoop(): Promise<void> {
  do {
    await new Promise<void>((resolve) => realSetImmediate(resolve));
  } while (ioPending());
}

export const SIM_OWNER = 'sim';

export class SimClock {
  now: number;
  /** Events run so far. */
  events = 0;
  /** Hash of the event sequence (time and owner of each): equal for equal runs. */
  traceHash = 0x811c9dc5;
  private seq = 0;
  private nextId = 1;
  private readonly heap = new TimerHeap();
  private readonly owners = new AsyncLocalStorage<string>();
  private readonly cancelledOwners = new Set<string>();
  /** Owners paused until the given time (ms). */
  private readonly pausedOwners = new Map<string, number>();
  /** The first error an event threw (a broken invariant inside a callback). */
  error: unknown = null;

  constructor(startMs: number) {
    this.now = startMs;
  }

  /**
   * How far each simulated process's wall clock (Date.now) is off the simulated time, by owner: a host whose
   * clock is ahead or behind. performance.now, the monotonic clock, stays true for everyone. Default: none.
   */
  wallClockSkewMs: (owner: string) => number = () => 0;

  /** The simulated process code is running for (SIM_OWNER outside any). */
  currentOwner(): string {
    return this.owners.getStore() ?? SIM_OWNER;
  }

  /** Runs `fn` (and everything it schedules, and its promise continuations) as `owner`. */
  runAs<T>(owner: string, fn: () => T): T {
    return this.owners.run(owner, fn);
  }

  /** Schedules `cb` after `delayMs` of simulated time, owned by `owner` (default: the current one). */
  schedule(delayMs: number, cb: () => void, owner = this.currentOwner(), intervalMs = 0): SimTimer {
    const t = new SimTimer(this.nextId++, this.now + Math.max(0, delayMs), this.seq++, owner, intervalMs, cb);
    if (this.cancelledOwners.has(owner)) t.cancelled = true;
    else this.heap.push(t);
    return t;
  }

  cancel(t: SimTimer | undefined | null): void {
    if (t instanceof SimTimer) t.cancelled = true;
  }

  /** Cancels every timer `owner` has now and ever creates (its process died). */
  cancelOwner(owner: string): void {
    this.cancelledOwners.add(owner);
  }

  /** Freezes `owner` until `untilMs`: what falls due for it meanwhile runs then, in its order. */
  pauseOwner(owner: string, untilMs: number): void {
    this.pausedOwners.set(owner, Math.max(untilMs, this.pausedOwners.get(owner) ?? 0));
  }

  /** When `owner`'s pause ends (0: it is not paused now). */
  pausedUntil(owner: string): number {
    const until = this.pausedOwners.get(owner);
    return until !== undefined && until > this.now ? until : 0;
  }

  /** Promise resolved after `ms` of simulated time. */
  sleep(ms: number, owner = this.currentOwner()): Promise<void> {
    return new Promise((resolve) => this.schedule(ms, resolve, owner));
  }

  /**
   * Runs the next event (advancing the time to it) and lets the real loop settle. Returns false if
   * nothing is scheduled.
   */
  /**
   * Steps until `endMs`, calling `check` after every step (it throws on a violation); true as soon as
   * `done` holds. Nothing left to run before `endMs` is an error built by `idle` (a stuck simulation).
   */
  async runUntil(endMs: number, check: () => void, idle: () => Error, done?: () => boolean): Promise<boolean> {
    while (this.now < endMs) {
      if (!(await this.step())) throw idle();
      check();
      if (done?.()) return true;
    }
    return false;
  }

  async step(): Promise<boolean> {
    let t: SimTimer | undefined;
    for (;;) {
      t = this.heap.pop();
      if (t === undefined) return false;
      if (t.cancelled || this.cancelledOwners.has(t.owner)) continue;
      const pausedUntil = this.pausedOwners.get(t.owner);
      if (pausedUntil !== undefined && pausedUntil > t.at) {
        t.at = pausedUntil;
        t.seq = this.seq++;
        this.heap.push(t);
        continue;
      }
      break;
    }
    this.now = t.at;
    this.events++;
    this.traceHash = Math.imul(this.traceHash ^ (t.at & 0xffffffff), 0x01000193) >>> 0;
    this.traceHash = Math.imul(this.traceHash ^ t.owner.length ^ (t.owner.charCodeAt(t.owner.length - 1) << 8), 0x01000193) >>> 0;
    if (t.intervalMs > 0) {
      t.at += t.intervalMs;
      t.seq = this.seq++;
      this.heap.push(t);
    }
    const timer = t;
    try {
      this.owners.run(timer.owner, () => timer.run());
    } catch (err) {
      this.error ??= err;
    }
    await settleRealLoop();
    return true;
  }

  /**
   * Replaces the global timer functions, Date.now and performance.now with this clock's until the
   * returned function is called (the member times its batch writes with performance.now, and its
   * heartbeat-during-a-slow-write rule reads it: on real time a seed would not replay). Timers created
   * meanwhile belong to whoever is running (see runAs).
   */
  install(): () => void {
    const g = globalThis as unknown as Record<string, unknown>;
    const saved = {
      setTimeout: g.setTimeout,
      clearTimeout: g.clearTimeout,
      setInterval: g.setInterval,
      clearInterval: g.clearInterval,
      setImmediate: g.setImmediate,
      clearImmediate: g.clearImmediate,
      dateNow: Date.now,
      performanceNow: performance.now,
    };
    type Cb = (...args: unknown[]) => void;
    g.setTimeout = (cb: Cb, ms?: number, ...args: unknown[]) => this.schedule(ms ?? 0, () => cb(...args));
    g.setInterval = (cb: Cb, ms?: number, ...args: unknown[]) => this.schedule(Math.max(1, ms ?? 1), () => cb(...args), this.currentOwner(), Math.max(1, ms ?? 1));
    g.setImmediate = (cb: Cb, ...args: unknown[]) => this.schedule(0, () => cb(...args));
    const clear = (t: unknown): void => this.cancel(t as SimTimer);
    g.clearTimeout = clear;
    g.clearInterval = clear;
    g.clearImmediate = clear;
    Date.now = () => this.now + this.wallClockSkewMs(this.currentOwner());
    performance.now = () => this.now;
    return () => {
      g.setTimeout = saved.setTimeout;
      g.clearTimeout = saved.clearTimeout;
      g.setInterval = saved.setInterval;
      g.clearInterval = saved.clearInterval;
      g.setImmediate = saved.setImmediate;
      g.clearImmediate = saved.clearImmediate;
      Date.now = saved.dateNow;
      performance.now = saved.performanceNow;
    };
  }
}

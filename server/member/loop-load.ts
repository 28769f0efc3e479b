// Whether this process's event loop has been busy lately: the share of the last window it spent
// running callbacks rather than waiting for I/O (Node's eventLoopUtilization). Background work that
// trades latency for CPU (a merged watch's closing rounds) asks it to back off while the member is
// loaded. Sampled at most once per window, so asking is cheap however often it is done.
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

export interface LoopLoadOptions {
  /** Length of the window a verdict covers (and the least time between two samples). */
  windowMs?: number;
  /** Share of the window spent working at or above which the loop counts as busy. */
  busyShare?: number;
  /** The utilization counters; injectable for tests. */
  utilization?: () => EventLoopUtilization;
  nowMs?: () => number;
}

export const LOOP_LOAD_WINDOW_MS = 100;
export const LOOP_LOAD_BUSY_SHARE = 0.5;

export class LoopLoad {
  private readonly windowMs: number;
  private readonly busyShare: number;
  private readonly utilization: () => EventLoopUtilization;
  private readonly nowMs: () => number;
  private sample: EventLoopUtilization;
  private sampledAtMs: number;
  private verdict = false;

  constructor(opts: LoopLoadOptions = {}) {
    this.windowMs = opts.windowMs ?? LOOP_LOAD_WINDOW_MS;
    this.busyShare = opts.busyShare ?? LOOP_LOAD_BUSY_SHARE;
    this.utilization = opts.utilization ?? (() => performance.eventLoopUtilization());
    this.nowMs = opts.nowMs ?? (() => performance.now());
    this.sample = this.utilization();
    this.sampledAtMs = this.nowMs();
  }

  /** Whether the loop worked for at least `busyShare` of the time since the previous sample. */
  busy(): boolean {
    const now = this.nowMs();
    if (now - this.sampledAtMs < this.windowMs) return this.verdict;
    const current = this.utilization();
    const activeMs = current.active - this.sample.active;
    const idleMs = current.idle - this.sample.idle;
    const totalMs = activeMs + idleMs;
    this.verdict = totalMs > 0 && activeMs / totalMs >= this.busyShare;
    this.sample = current;
    this.sampledAtMs = now;
    return this.verdict;
  }
}

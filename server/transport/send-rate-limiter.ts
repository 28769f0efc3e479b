// The member-wide pace of snapshot bytes sent to peers (--max-snapshot-send-bytes-per-second).
//
// Why: on a sharded cluster a join, a drain or a dead member's re-placement sends many shards'
// snapshots at once (up to the placer's four moving shards, each possibly to several peers). Unpaced,
// they fill the peer links and the sender's disk reads, and the Raft heartbeats and appends of every
// other shard queue behind them. One limiter per member, shared by every transfer, bounds the sum.
//
// The rule is a virtual clock (the generic cell rate algorithm): each chunk of `bytes` costs
// bytes / rate seconds of link time, booked right after the previous booking; a chunk waits until its
// booking starts. An idle link's bookings may start up to `burstBytes` worth of time in the past, so a
// transfer after a pause starts at once; over any interval of t seconds at most
// burstBytes + rate × t + one chunk leave. `reserve` is pure given its clock; `acquire` is the shell
// that sleeps.

export interface SendRateStats {
  /** Bytes booked (sent or about to be) since start. */
  bytes: number;
  /** Total time chunks waited for their booking, in ms. */
  throttledMs: number;
}

export class SendRateLimiter {
  /** When the link is free for the next booking (ms, on the caller's clock). */
  private freeAtMs = -Infinity;
  readonly stats: SendRateStats = { bytes: 0, throttledMs: 0 };

  /**
   * @param bytesPerSecond the pace; 0 means unlimited (every reserve answers 0).
   * @param burstBytes how much an idle link may send back to back before pacing starts.
   */
  readonly bytesPerSecond: number;
  readonly burstBytes: number;

  constructor(bytesPerSecond: number, burstBytes = 1024 * 1024) {
    if (!(bytesPerSecond >= 0) || !Number.isFinite(bytesPerSecond)) throw new Error(`snapshot send rate must be a non-negative number of bytes per second (got ${bytesPerSecond})`);
    if (!(burstBytes >= 0)) throw new Error(`burst must be non-negative (got ${burstBytes})`);
    this.bytesPerSecond = bytesPerSecond;
    this.burstBytes = burstBytes;
  }

  /** Books `bytes` at `nowMs`: how long the caller must wait before sending them. */
  reserve(bytes: number, nowMs: number): number {
    if (bytes < 0) throw new Error(`cannot book ${bytes} bytes`);
    this.stats.bytes += bytes;
    if (this.bytesPerSecond === 0) return 0;
    const burstMs = (this.burstBytes / this.bytesPerSecond) * 1000;
    // An idle link earns back at most the burst: its booking clock never lags `now` by more.
    const startMs = Math.max(this.freeAtMs, nowMs - burstMs);
    this.freeAtMs = startMs + (bytes / this.bytesPerSecond) * 1000;
    const waitMs = Math.max(0, startMs - nowMs);
    this.stats.throttledMs += waitMs;
    return waitMs;
  }

  /** Waits until `bytes` may be sent (at once when unlimited or within the burst). */
  async acquire(bytes: number): Promise<void> {
    const waitMs = this.reserve(bytes, Date.now());
    if (waitMs > 0) await new Promise<void>((resolve) => setTimeout(resolve, waitMs));
  }
}

// The one budget for large copies on the event loop, shared by every reply being encoded at once
// (kv-response-encoder.ts). Raft ticks, heartbeats, peer I/O and small requests share the loop with
// them (docs/architecture.md, "Bounded work per turn").
//
// Each encoder used to yield with its own setImmediate after 4 MiB: three 1 GiB ranges at once then
// ran three slices in one check phase, and a 4 MiB copy into freshly allocated pages took ~60 ms on
// this 2-core machine (page faults under load), so a member's loop stalled for ~200 ms and other
// clients' small puts waited as long. Here the copying encoders queue for turns: one slice per
// event-loop turn in all, first come first served, and a slice ends after SLICE_BUDGET_MS or
// SLICE_MAX_BYTES, whichever comes first, checked every COPY_CHUNK_BYTES (a large value is copied in
// chunks). An encoding's first slice runs in the turn that started it, so a small reply never waits.

/** Copy time one slice may take (checked between chunks; a slice may overrun it by one chunk). */
export const SLICE_BUDGET_MS = 2;
/** Bytes one slice copies at most, however fast the copy goes. */
export const SLICE_MAX_BYTES = 4 * 1024 * 1024;
/** Largest single memcpy between two looks at the clock. */
export const COPY_CHUNK_BYTES = 256 * 1024;

/** Slices run since start (tests check that one event-loop turn runs at most one). */
let slicesRun = 0;
export function copySlicesRun(): number {
  return slicesRun;
}

const waiting: Array<() => void> = [];
let turnScheduled = false;

function runOneSlice(): void {
  turnScheduled = false;
  const next = waiting.shift();
  if (waiting.length > 0) scheduleTurn();
  if (next !== undefined) {
    slicesRun++;
    next();
  }
}

function scheduleTurn(): void {
  if (turnScheduled) return;
  turnScheduled = true;
  setImmediate(runOneSlice);
}

/** Resolves at a later event-loop turn, when it is this caller's turn to copy (first come, first served). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    scheduleTurn();
  });
}

/**
 * One encoding's copies, in slices. `tryCopy` copies at once what fits in the current slice; `copy` cuts
 * a buffer into chunks and waits for a turn whenever the current slice is spent.
 */
export class SlicedCopier {
  // The first slice is the current turn's: a small reply is written at once, never queued.
  private sliceStartedMs = performance.now();
  private sliceBytes = 0;

  /**
   * Copies `src` into `out` at `p` at once and returns the new position, when that stays within the
   * slice: the common case costs no await. Returns -1 otherwise, and `copy` must do it.
   */
  tryCopy(src: Buffer, out: Buffer, p: number): number {
    if (src.length > COPY_CHUNK_BYTES || this.spent()) return -1;
    this.sliceBytes += src.length;
    return p + src.copy(out, p);
  }

  /** Copies `src` into `out` at `p`, yielding between chunks when the slice is spent; returns the new position. */
  async copy(src: Buffer, out: Buffer, p: number): Promise<number> {
    let from = 0;
    while (from < src.length) {
      if (this.spent()) {
        await nextTurn();
        this.beginSlice();
      }
      const to = Math.min(src.length, from + COPY_CHUNK_BYTES);
      p += src.copy(out, p, from, to);
      this.sliceBytes += to - from;
      from = to;
    }
    return p;
  }

  private beginSlice(): void {
    this.sliceStartedMs = performance.now();
    this.sliceBytes = 0;
  }

  private spent(): boolean {
    return this.sliceBytes >= SLICE_MAX_BYTES || (this.sliceBytes > 0 && performance.now() - this.sliceStartedMs >= SLICE_BUDGET_MS);
  }
}

import { describe, expect, it } from 'vitest';
import type { EventLoopUtilization } from 'node:perf_hooks';
import { LoopLoad } from './loop-load.ts';

/** Scripted counters: `work(ms)` and `wait(ms)` advance the clock and the loop's active or idle time. */
function scripted() {
  let nowMs = 0;
  let active = 0;
  let idle = 0;
  let reads = 0;
  const utilization = (): EventLoopUtilization => {
    reads++;
    return { active, idle, utilization: active + idle === 0 ? 0 : active / (active + idle) };
  };
  return {
    load: (windowMs = 100, busyShare = 0.5) => new LoopLoad({ windowMs, busyShare, utilization, nowMs: () => nowMs }),
    work(ms: number) {
      nowMs += ms;
      active += ms;
    },
    wait(ms: number) {
      nowMs += ms;
      idle += ms;
    },
    reads: () => reads,
  };
}

describe('LoopLoad', () => {
  it('is busy when the loop worked at least the busy share of the window, and not otherwise', () => {
    const s = scripted();
    const load = s.load();
    s.work(60);
    s.wait(40);
    expect(load.busy()).toBe(true);
    s.work(40);
    s.wait(60);
    expect(load.busy()).toBe(false);
    s.work(50);
    s.wait(50);
    expect(load.busy()).toBe(true);
  });

  it('keeps its verdict within a window and samples the counters at most once per window', () => {
    const s = scripted();
    const load = s.load();
    const readsAtStart = s.reads();
    s.work(100);
    expect(load.busy()).toBe(true);
    s.wait(99); // idle, but the window since the last sample is not over
    expect(load.busy()).toBe(true);
    expect(s.reads() - readsAtStart).toBe(1);
    s.wait(1);
    expect(load.busy()).toBe(false); // 99 + 1 ms idle since the sample
    expect(s.reads() - readsAtStart).toBe(2);
  });

  it('judges the whole time since its last sample when asked rarely', () => {
    const s = scripted();
    const load = s.load();
    s.work(100);
    s.wait(900);
    expect(load.busy()).toBe(false);
  });

  it('is not busy before its first window has passed, nor over a window with no time counted', () => {
    const s = scripted();
    const load = s.load();
    s.work(50);
    expect(load.busy()).toBe(false);
    const still = scripted().load(0);
    expect(still.busy()).toBe(false);
  });

  it('reads the real event loop by default', async () => {
    const load = new LoopLoad({ windowMs: 20 });
    const until = performance.now() + 40;
    while (performance.now() < until) {
      // keep the loop working
    }
    expect(load.busy()).toBe(true);
    // Idle, it reads not busy again. Polled: on a loaded machine a window may still catch this thread
    // descheduled in the middle of a callback (wall time the loop counts as work); an idle loop soon
    // has a window that does not.
    let idle = false;
    for (let i = 0; i < 40 && !idle; i++) {
      await new Promise((r) => setTimeout(r, 60));
      idle = !load.busy();
    }
    expect(idle).toBe(true);
  });
});

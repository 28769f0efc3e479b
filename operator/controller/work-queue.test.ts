// The work queue: de-duplication, no concurrent processing of one key, rate-limited requeue,
// requeue-after keeping the earliest due time, shutdown. Driven by a manual clock.

import { describe, expect, it } from 'vitest';
import type { QueueClock } from './work-queue.ts';
import { WorkQueue } from './work-queue.ts';

class ManualClock implements QueueClock {
  nowMs = 0;
  timers: { dueAtMs: number; fn: () => void; id: number }[] = [];
  #nextId = 1;
  now(): number {
    return this.nowMs;
  }
  setTimeout(fn: () => void, delayMs: number): unknown {
    const id = this.#nextId++;
    this.timers.push({ dueAtMs: this.nowMs + delayMs, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }
  advance(ms: number): void {
    this.nowMs += ms;
    const due = this.timers.filter((t) => t.dueAtMs <= this.nowMs).sort((a, b) => a.dueAtMs - b.dueAtMs);
    this.timers = this.timers.filter((t) => t.dueAtMs > this.nowMs);
    for (const t of due) t.fn();
  }
}

describe('WorkQueue', () => {
  it('queues a key once however often it is added', async () => {
    const q = new WorkQueue();
    q.add('ns/a');
    q.add('ns/b');
    q.add('ns/a');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('ns/a');
    expect(await q.get()).toBe('ns/b');
    expect(q.length).toBe(0);
  });

  it('never hands out a key being processed; an add meanwhile requeues it on done()', async () => {
    const q = new WorkQueue();
    q.add('k');
    const key = await q.get();
    q.add('k');
    q.add('k');
    expect(q.length).toBe(0);
    q.done(key!);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe('k');
    q.done('k');
    expect(q.length).toBe(0);
  });

  it('wakes a waiting worker when a key arrives', async () => {
    const q = new WorkQueue();
    const pending = q.get();
    q.add('late');
    expect(await pending).toBe('late');
    q.add('late');
    expect(q.length).toBe(0);
    q.done('late');
    expect(q.length).toBe(1);
  });

  it('backs off exponentially per key on failure, capped, and forget() resets it', () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1_000, clock });
    expect([1, 2, 3, 4, 5, 6].map(() => q.addRateLimited('x'))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(q.failures('x')).toBe(6);
    expect(q.addRateLimited('y')).toBe(100);
    q.forget('x');
    expect(q.failures('x')).toBe(0);
    expect(q.addRateLimited('x')).toBe(100);
  });

  it('queues a rate-limited key only when its delay has passed', () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ baseDelayMs: 100, clock });
    q.addRateLimited('x');
    clock.advance(99);
    expect(q.length).toBe(0);
    clock.advance(1);
    expect(q.length).toBe(1);
  });

  it('addAfter keeps the earliest due time for a key', () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    q.addAfter('k', 5_000);
    q.addAfter('k', 1_000);
    q.addAfter('k', 3_000);
    expect(clock.timers).toHaveLength(1);
    clock.advance(1_000);
    expect(q.length).toBe(1);
    clock.advance(10_000);
    expect(q.length).toBe(1);
  });

  it('addAfter with no delay queues at once, de-duplicated', () => {
    const q = new WorkQueue({ clock: new ManualClock() });
    q.add('k');
    q.addAfter('k', 0);
    expect(q.length).toBe(1);
  });

  it('shutDown releases waiting workers with null and drops pending delays', async () => {
    const clock = new ManualClock();
    const q = new WorkQueue({ clock });
    const waiting = q.get();
    q.addAfter('k', 100);
    q.shutDown();
    expect(await waiting).toBeNull();
    expect(clock.timers).toHaveLength(0);
    q.add('k');
    expect(await q.get()).toBeNull();
  });
});

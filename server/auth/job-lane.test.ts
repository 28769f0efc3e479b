import { describe, expect, it } from 'vitest';
import { JobLane, PasswordDeadlineError } from './job-lane.ts';

/** A job that ends when its `finish` is called. */
function gate(): { start: () => Promise<string>; finish: (v: string) => void; started: () => boolean } {
  let finish!: (v: string) => void;
  let started = false;
  const p = new Promise<string>((r) => (finish = r));
  return {
    start: () => {
      started = true;
      return p;
    },
    finish: (v) => finish(v),
    started: () => started,
  };
}

describe('JobLane', () => {
  it('runs one job at a time, in arrival order', async () => {
    const lane = new JobLane();
    const a = gate();
    const b = gate();
    const ra = lane.run(a.start, Infinity);
    const rb = lane.run(b.start, Infinity);
    expect([a.started(), b.started(), lane.load, lane.queued]).toEqual([true, false, 2, 1]);
    a.finish('a');
    expect(await ra).toBe('a');
    expect(b.started()).toBe(true);
    b.finish('b');
    expect(await rb).toBe('b');
    expect(lane.load).toBe(0);
  });

  it('drops unrun a job whose deadline passed while it waited, and runs the next', async () => {
    const lane = new JobLane();
    const a = gate();
    const late = gate();
    const c = gate();
    const ra = lane.run(a.start, Infinity);
    const rLate = lane.run(late.start, Date.now() + 10);
    const rc = lane.run(c.start, Date.now() + 60_000);
    await new Promise((r) => setTimeout(r, 30));
    a.finish('a');
    await expect(rLate).rejects.toBeInstanceOf(PasswordDeadlineError);
    expect(late.started()).toBe(false);
    expect(await ra).toBe('a');
    c.finish('c');
    expect(await rc).toBe('c');
  });

  it('a job that throws or rejects fails alone; the lane goes on', async () => {
    const lane = new JobLane();
    const thrown = lane.run(() => {
      throw new Error('sync');
    }, Infinity);
    const rejected = lane.run(() => Promise.reject(new Error('async')), Infinity);
    const fine = lane.run(() => Promise.resolve('ok'), Infinity);
    await expect(thrown).rejects.toThrow('sync');
    await expect(rejected).rejects.toThrow('async');
    expect(await fine).toBe('ok');
  });
});

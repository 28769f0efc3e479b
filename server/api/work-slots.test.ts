import { describe, expect, it } from 'vitest';
import { WorkSlots, type SlotRelease } from './work-slots.ts';

const never = new Promise<void>(() => {});

describe('WorkSlots', () => {
  it('runs up to maxRunning at once, then queues in arrival order, then refuses', async () => {
    const slots = new WorkSlots(2, 2);
    const a = (await slots.acquire(never)) as SlotRelease;
    const b = (await slots.acquire(never)) as SlotRelease;
    expect(slots.runningCount).toBe(2);
    const order: string[] = [];
    const c = slots.acquire(never).then((r) => (order.push('c'), r as SlotRelease));
    const d = slots.acquire(never).then((r) => (order.push('d'), r as SlotRelease));
    expect(await slots.acquire(never)).toBe('full');
    expect(slots.waitingCount).toBe(2);
    b();
    b(); // a second release changes nothing
    const releaseC = await c;
    expect(order).toEqual(['c']);
    expect(slots.runningCount).toBe(2);
    a();
    const releaseD = await d;
    expect(order).toEqual(['c', 'd']);
    releaseC();
    releaseD();
    expect(slots.runningCount).toBe(0);
    expect(slots.waitingCount).toBe(0);
  });

  it('a waiting call whose client cancels leaves the queue; the slot goes to the next one', async () => {
    const slots = new WorkSlots(1, 4);
    const a = (await slots.acquire(never)) as SlotRelease;
    let cancel!: () => void;
    const cancelled = new Promise<void>((r) => (cancel = r));
    const b = slots.acquire(cancelled);
    const c = slots.acquire(never);
    cancel();
    expect(await b).toBe('cancelled');
    expect(slots.waitingCount).toBe(1);
    a();
    const releaseC = (await c) as SlotRelease;
    expect(slots.runningCount).toBe(1);
    releaseC();
    expect(slots.runningCount).toBe(0);
  });

  it('a cancel after the slot was granted leaves the slot to its holder', async () => {
    const slots = new WorkSlots(1, 1);
    let cancel!: () => void;
    const cancelled = new Promise<void>((r) => (cancel = r));
    const release = (await slots.acquire(cancelled)) as SlotRelease;
    cancel();
    await Promise.resolve();
    expect(slots.runningCount).toBe(1);
    release();
    expect(slots.runningCount).toBe(0);
  });

  it('run: the work holds its slot while it runs and frees it however it ends; full and cancelled run nothing', async () => {
    const slots = new WorkSlots(1, 1);
    const never = new Promise<void>(() => {});
    let finish!: () => void;
    const first = slots.run(never, () => new Promise<string>((r) => (finish = () => r('first'))));
    await Promise.resolve();
    expect(slots.runningCount).toBe(1);
    let cancel!: () => void;
    let ranSecond = false;
    const second = slots.run(new Promise<void>((r) => (cancel = r)), async () => void (ranSecond = true));
    expect(await slots.run(never, async () => 'third')).toBe('full');
    cancel();
    expect(await second).toBe('cancelled');
    expect(ranSecond).toBe(false);
    finish();
    expect(await first).toEqual({ value: 'first' });
    expect(slots.runningCount).toBe(0);
    await expect(slots.run(never, async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(slots.runningCount).toBe(0);
  });
});

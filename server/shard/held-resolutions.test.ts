// HeldResolutions and RideAlong (held-resolutions.ts) on their own, with fake timers: what is proposed,
// passed on or dropped, in which order, and when; the write path's use of them is covered by
// test/cross-shard-txn.test.ts (real processes) and the sharded simulation (leaderships handed over
// while resolutions are held).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HeldResolutions, LAZY_RESOLVE_MS, RideAlong, rideAlongOf, type HeldResolution } from './held-resolutions.ts';

function resolution(txnId: string): HeldResolution {
  return { data: Buffer.from(txnId), resolve: { txn_id: txnId, commit: true, revision: '10' } };
}

/** A path's HeldResolutions whose proposals, passings-on and flushes are recorded in `log`. */
function pathOf(group: RideAlong, name: string, log: string[], refuse: Set<string> = new Set()): HeldResolutions {
  return new HeldResolutions(group, {
    propose: (h) => {
      const id = h.resolve.txn_id;
      if (refuse.has(id)) throw new Error('not leader');
      log.push(`${name} propose ${id}`);
    },
    passOn: (data) => log.push(`${name} pass on ${Buffer.from(data).toString()}`),
    afterFlush: () => log.push(`${name} drain`),
  });
}

describe('held resolutions', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('proposes what nothing came for after the hold, in arrival order, once, and counts it as alone', () => {
    const log: string[] = [];
    const held = pathOf(new RideAlong(), 'a', log);
    held.hold(resolution('t1'));
    held.hold(resolution('t2'));
    vi.advanceTimersByTime(LAZY_RESOLVE_MS - 1);
    expect(log).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(log).toEqual(['a propose t1', 'a propose t2', 'a drain']);
    vi.advanceTimersByTime(10 * LAZY_RESOLVE_MS);
    expect(log).toHaveLength(3);
    expect(held.counts).toEqual({ held: 2, alone: 2, passedOn: 0, passedOnAtLoss: 0 });
    expect(held.size).toBe(0);
  });

  it('goes at once on a flush (an entry behind it, a read), and its timer no longer fires', () => {
    const log: string[] = [];
    const held = pathOf(new RideAlong(), 'a', log);
    held.hold(resolution('t1'));
    held.flush();
    expect(log).toEqual(['a propose t1', 'a drain']);
    vi.advanceTimersByTime(10 * LAZY_RESOLVE_MS);
    expect(log).toHaveLength(2);
    expect(held.counts.alone).toBe(0);
    held.flush(); // nothing held: no drain either
    expect(log).toHaveLength(2);
  });

  it('rides along: one shard of a member flushing takes the others of that member, not another member’s', () => {
    const log: string[] = [];
    const memberOne = rideAlongOf({});
    const memberTwo = rideAlongOf({});
    const a = pathOf(memberOne, 'a', log);
    const b = pathOf(memberOne, 'b', log);
    const c = pathOf(memberTwo, 'c', log);
    a.hold(resolution('t1'));
    b.hold(resolution('t2'));
    c.hold(resolution('t3'));
    expect(memberOne.holdingCount()).toBe(2);
    // Another shard of member one proposes entries: both of its holders go, member two's waits.
    memberOne.flushAll();
    expect(log).toEqual(['a propose t1', 'a drain', 'b propose t2', 'b drain']);
    expect(memberOne.holdingCount()).toBe(0);
    expect(c.size).toBe(1);
    // A timer of one holder takes the member's others along in the same turn.
    const d = pathOf(memberOne, 'd', log);
    a.hold(resolution('t4'));
    vi.advanceTimersByTime(LAZY_RESOLVE_MS / 2);
    d.hold(resolution('t5'));
    vi.advanceTimersByTime(LAZY_RESOLVE_MS / 2);
    // Member two's own timer (held since 0) goes first, alone; member one's timer takes d along.
    expect(log.slice(4)).toEqual(['c propose t3', 'c drain', 'a propose t4', 'a drain', 'd propose t5', 'd drain']);
    expect(c.counts.alone).toBe(1);
    expect(a.counts.alone).toBe(1);
    expect(d.counts.alone).toBe(0);
  });

  it('the same member object always has the same RideAlong', () => {
    const member = {};
    expect(rideAlongOf(member)).toBe(rideAlongOf(member));
    expect(rideAlongOf(member)).not.toBe(rideAlongOf({}));
  });

  it('a leadership that ends passes every held one on to the next leader, in order, and proposes none', () => {
    const log: string[] = [];
    const group = new RideAlong();
    const held = pathOf(group, 'a', log);
    held.hold(resolution('t1'));
    held.hold(resolution('t2'));
    held.passAllOn();
    expect(log).toEqual(['a pass on t1', 'a pass on t2']);
    expect(held.counts).toEqual({ held: 2, alone: 0, passedOn: 2, passedOnAtLoss: 2 });
    expect(group.holdingCount()).toBe(0);
    vi.advanceTimersByTime(10 * LAZY_RESOLVE_MS);
    expect(log).toHaveLength(2);
  });

  it('one Raft will not take is passed on; the ones after it are still proposed, in order', () => {
    const log: string[] = [];
    const held = pathOf(new RideAlong(), 'a', log, new Set(['t2']));
    for (const id of ['t1', 't2', 't3']) held.hold(resolution(id));
    held.flush();
    expect(log).toEqual(['a propose t1', 'a pass on t2', 'a propose t3', 'a drain']);
    expect(held.counts).toEqual({ held: 3, alone: 0, passedOn: 1, passedOnAtLoss: 0 });
  });

  it('a replica that stops drops them: nothing proposed, nothing passed on, no timer left', () => {
    const log: string[] = [];
    const group = new RideAlong();
    const held = pathOf(group, 'a', log);
    held.hold(resolution('t1'));
    held.drop();
    vi.advanceTimersByTime(10 * LAZY_RESOLVE_MS);
    expect(log).toEqual([]);
    expect(held.size).toBe(0);
    expect(group.holdingCount()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a flush that proposes from inside another member-wide flush does not start a third', () => {
    const log: string[] = [];
    const group = new RideAlong();
    let nested = 0;
    const a = new HeldResolutions(group, {
      propose: (h) => log.push(`a propose ${h.resolve.txn_id}`),
      passOn: () => {},
      // The write path drains its outbox after a flush, which proposes entries and so calls flushAll.
      afterFlush: () => {
        nested++;
        group.flushAll();
      },
    });
    const b = pathOf(group, 'b', log);
    a.hold(resolution('t1'));
    b.hold(resolution('t2'));
    group.flushAll();
    expect(log).toEqual(['a propose t1', 'b propose t2', 'b drain']);
    expect(nested).toBe(1);
  });
});

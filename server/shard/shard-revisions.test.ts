// ShardRevisions, the pure rules of a shard leader's revisions: start floor, one grant per turn used
// whole or dropped, stale oracle terms refused, reads raising the floor, waiting for proposed revisions.
import { describe, expect, it } from 'vitest';
import { ShardRevisions } from './shard-revisions.ts';

const grant = (first: number, last: number, term = 1) => ({ first, last, term });

describe('ShardRevisions', () => {
  it('starts above the fresh oracle revision and everything applied, and stamps increasing revisions', () => {
    const s = new ShardRevisions();
    expect(s.stamp(grant(5, 6), 2, 3)).toEqual({ ok: false, reason: 'not-leading' });
    s.begin(3, 10, 12, 1);
    expect(s.maxReadRevision).toBe(10);
    expect(s.stamp(grant(11, 12), 2, 3)).toEqual({ ok: false, reason: 'not-above-floor' }); // 12 is already applied
    expect(s.stamp(grant(13, 15), 3, 3)).toEqual({ ok: true, revisions: [13, 14, 15] });
    expect(s.stamp(grant(16, 17), 3, 3)).toEqual({ ok: false, reason: 'wrong-count' });
    expect(s.stamp(grant(15, 16), 2, 3)).toEqual({ ok: false, reason: 'not-above-floor' });
    expect(s.stamp(grant(20, 20), 1, 4)).toEqual({ ok: false, reason: 'not-leading' }); // obtained in another leadership
    expect(s.inFlightRevisions()).toEqual([13, 14, 15]);
  });

  it('refuses a grant from an oracle term below one already used', () => {
    const s = new ShardRevisions();
    s.begin(1, 1, 0, 2);
    expect(s.stamp(grant(5, 5, 1), 1, 1)).toEqual({ ok: false, reason: 'stale-oracle-term' });
    expect(s.stamp(grant(6, 6, 3), 1, 1).ok).toBe(true);
    expect(s.stamp(grant(9, 9, 2), 1, 1)).toEqual({ ok: false, reason: 'stale-oracle-term' });
  });

  it('a read at R makes every later grant at or below R unusable, even one issued before R', () => {
    const s = new ShardRevisions();
    s.begin(1, 1, 0, 1);
    s.raiseRead(50);
    expect(s.maxReadRevision).toBe(50);
    expect(s.stamp(grant(40, 41), 2, 1)).toEqual({ ok: false, reason: 'not-above-floor' });
    expect(s.stamp(grant(50, 50), 1, 1)).toEqual({ ok: false, reason: 'not-above-floor' });
    expect(s.stamp(grant(51, 52), 2, 1).ok).toBe(true);
    s.raiseRead(30); // lower reads change nothing
    expect(s.maxReadRevision).toBe(50);
    expect(s.floor).toBe(52);
  });

  it('a read at R waits for every proposed revision at or below R, and only those', () => {
    const s = new ShardRevisions();
    s.begin(1, 1, 0, 1);
    s.stamp(grant(5, 7), 3, 1);
    expect(s.readyToRead(4)).toBe(true);
    expect(s.readyToRead(5)).toBe(false);
    s.abandon(5); // its proposal failed at once: never in the log
    expect(s.readyToRead(5)).toBe(true);
    expect(s.readyToRead(6)).toBe(false);
    s.appliedThrough(6);
    expect(s.readyToRead(6)).toBe(true);
    expect(s.readyToRead(100)).toBe(false);
    s.appliedThrough(7);
    expect(s.readyToRead(100)).toBe(true);
  });

  it('leadership loss drops everything; a new leadership starts from its own fresh revision', () => {
    const s = new ShardRevisions();
    s.begin(1, 1, 0, 1);
    s.stamp(grant(5, 7), 3, 1);
    s.end();
    expect(s.leaderTerm).toBe(0);
    expect(s.inFlightRevisions()).toEqual([]);
    expect(() => s.raiseRead(3)).toThrow(/not leading/);
    s.begin(2, 20, 6, 1);
    expect(s.stamp(grant(8, 8), 1, 2)).toEqual({ ok: false, reason: 'not-above-floor' });
    expect(s.stamp(grant(21, 21), 1, 2).ok).toBe(true);
  });

  it('the mutations break exactly their rule (the simulation must catch them)', () => {
    const a = new ShardRevisions('skip-max-read-revision');
    a.begin(1, 1, 0, 1);
    a.raiseRead(50);
    expect(a.stamp(grant(40, 40), 1, 1).ok).toBe(true);
    const b = new ShardRevisions('skip-wait-for-proposed');
    b.begin(1, 1, 0, 1);
    b.stamp(grant(5, 5), 1, 1);
    expect(b.readyToRead(9)).toBe(true);
  });
});

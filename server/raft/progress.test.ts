import { describe, expect, it } from 'vitest';
import { Inflights, Progress } from './progress.ts';

describe('Inflights', () => {
  it('fills, frees by index and wraps around the ring', () => {
    const inf = new Inflights(3);
    inf.add(2);
    inf.add(4);
    inf.add(6);
    expect(inf.full()).toBe(true);
    expect(() => inf.add(7)).toThrow(/full/);
    inf.freeLE(4);
    expect(inf.size).toBe(1);
    inf.add(8);
    inf.add(10); // wraps
    expect(inf.full()).toBe(true);
    inf.freeLE(9);
    expect(inf.size).toBe(1);
    inf.freeFirstOne();
    expect(inf.size).toBe(0);
  });

  it('is full at its byte limit too, and frees bytes with the messages', () => {
    const inf = new Inflights(10, 100);
    inf.add(1, 60);
    expect(inf.full()).toBe(false);
    inf.add(2, 50); // overshoots by one message, then nothing more goes
    expect(inf.full()).toBe(true);
    expect(inf.bytes).toBe(110);
    inf.freeLE(1);
    expect(inf.bytes).toBe(50);
    expect(inf.full()).toBe(false);
    inf.reset();
    expect(inf.bytes).toBe(0);
  });

  it('requires increasing indexes', () => {
    const inf = new Inflights(4);
    inf.add(5);
    expect(() => inf.add(5)).toThrow(/not above/);
  });
});

describe('Progress', () => {
  it('probe state sends one append at a time', () => {
    const pr = new Progress(5, 4);
    expect(pr.isPaused()).toBe(false);
    pr.sentEntries(2, 6);
    expect(pr.isPaused()).toBe(true);
    expect(pr.next).toBe(5); // probing does not move next optimistically
  });

  it('a successful ack moves match/next and unpauses', () => {
    const pr = new Progress(5, 4);
    pr.sentEntries(2, 6);
    expect(pr.maybeUpdate(6)).toBe(true);
    expect(pr.match).toBe(6);
    expect(pr.next).toBe(7);
    expect(pr.isPaused()).toBe(false);
    expect(pr.maybeUpdate(3)).toBe(false); // stale ack
    expect(pr.match).toBe(6);
  });

  it('replicate state pipelines up to the inflight window', () => {
    const pr = new Progress(1, 2);
    pr.becomeReplicate();
    pr.sentEntries(3, 3);
    expect(pr.next).toBe(4);
    expect(pr.isPaused()).toBe(false);
    pr.sentEntries(2, 5);
    expect(pr.isPaused()).toBe(true);
    pr.maybeUpdate(3);
    pr.inflights.freeLE(3);
    expect(pr.isPaused()).toBe(false);
  });

  it('maybeDecrTo in probe uses the follower hint and ignores stale rejections', () => {
    const pr = new Progress(11, 4);
    pr.match = 2;
    pr.sentEntries(1, 11);
    expect(pr.maybeDecrTo(7, 5)).toBe(false); // not the outstanding probe (prevIndex 10)
    expect(pr.maybeDecrTo(10, 5)).toBe(true);
    expect(pr.next).toBe(6);
    expect(pr.isPaused()).toBe(false);
    pr.sentEntries(1, 6);
    expect(pr.maybeDecrTo(5, 0)).toBe(true);
    expect(pr.next).toBe(3); // never below match + 1
  });

  it('maybeDecrTo in replicate falls back to match + 1 unless stale', () => {
    const pr = new Progress(1, 4);
    pr.match = 5;
    pr.becomeReplicate();
    pr.sentEntries(3, 8);
    expect(pr.maybeDecrTo(4, 4)).toBe(false);
    expect(pr.maybeDecrTo(7, 4)).toBe(true);
    expect(pr.next).toBe(6);
  });
});

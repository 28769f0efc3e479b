// ReadIndexQueue (read-index.ts): pipelined heartbeat rounds for reads. An ack of round k counts for
// every round up to k, rounds complete oldest first, stale or unknown contexts are ignored, and at
// most MAX_ROUNDS_IN_FLIGHT rounds are out (later reads share the next one).
import { describe, expect, it } from 'vitest';
import { MAX_ROUNDS_IN_FLIGHT, ReadIndexQueue, encodeRoundCtx, type PendingRead } from './read-index.ts';

const majorityOf3 = (acks: ReadonlySet<number>): boolean => acks.size >= 2;
const read = (index: number): PendingRead => ({ index, from: 1, requestCtx: new Uint8Array([index]) });

describe('ReadIndexQueue', () => {
  it('starts a round per batch of reads without waiting for the one in flight', () => {
    const q = new ReadIndexQueue();
    q.add(read(5));
    const a = q.startRound(1);
    q.add(read(6));
    q.add(read(7));
    const b = q.startRound(1);
    expect(a).not.toBeNull();
    expect(b).not.toBeNull();
    expect(q.startRound(1)).toBeNull(); // nothing waits
    expect(q.inflightCtx()).toEqual(b);
    expect(q.pendingCount()).toBe(3);
  });

  it('an ack of a newer round completes the older ones too, oldest first', () => {
    const q = new ReadIndexQueue();
    q.add(read(5));
    q.startRound(1);
    q.add(read(6));
    const b = q.startRound(1)!;
    const done = q.ack(2, b, majorityOf3);
    expect(done?.map((r) => r.index)).toEqual([5, 6]);
    expect(q.pendingCount()).toBe(0);
    expect(q.inflightCtx()).toBeNull();
  });

  it('an ack of an older round does not complete a newer one', () => {
    const q = new ReadIndexQueue();
    q.add(read(5));
    const a = q.startRound(1)!;
    q.add(read(6));
    const b = q.startRound(1)!;
    expect(q.ack(2, a, majorityOf3)?.map((r) => r.index)).toEqual([5]);
    expect(q.pendingCount()).toBe(1);
    expect(q.ack(2, a, majorityOf3)).toBeNull(); // stale now
    expect(q.ack(3, b, majorityOf3)?.map((r) => r.index)).toEqual([6]);
  });

  it('ignores contexts of no round in flight', () => {
    const q = new ReadIndexQueue();
    q.add(read(5));
    q.startRound(1);
    expect(q.ack(2, encodeRoundCtx(99), majorityOf3)).toBeNull();
    expect(q.ack(2, new Uint8Array([1, 2]), majorityOf3)).toBeNull();
    expect(q.pendingCount()).toBe(1);
  });

  it(`keeps at most ${MAX_ROUNDS_IN_FLIGHT} rounds out; later reads wait for the next`, () => {
    const q = new ReadIndexQueue();
    const ctxs: Uint8Array[] = [];
    for (let i = 0; i < MAX_ROUNDS_IN_FLIGHT; i++) {
      q.add(read(i));
      ctxs.push(q.startRound(1)!);
    }
    q.add(read(100));
    q.add(read(101));
    expect(q.startRound(1)).toBeNull();
    expect(q.ack(2, ctxs[0], majorityOf3)?.map((r) => r.index)).toEqual([0]);
    const next = q.startRound(1)!;
    expect(q.ack(3, next, majorityOf3)?.map((r) => r.index)).toEqual([1, 2, 3, 100, 101]);
  });

  it('needs a quorum: one ack of five members completes nothing', () => {
    const q = new ReadIndexQueue();
    const majorityOf5 = (acks: ReadonlySet<number>): boolean => acks.size >= 3;
    q.add(read(5));
    const a = q.startRound(1)!;
    expect(q.ack(2, a, majorityOf5)).toBeNull();
    expect(q.ack(2, a, majorityOf5)).toBeNull(); // the same member twice is one ack
    expect(q.ack(4, a, majorityOf5)?.map((r) => r.index)).toEqual([5]);
  });
});

// Frames never exceed the budget: a turn's messages to one peer are split across frames, each frame
// is a complete Batch, and the budget derived from the replication limits always holds the largest
// message those limits allow (or the member refuses to start).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newMessage } from '../raft/raft.ts';
import { DEFAULT_REPLICATION_LIMITS, ENTRY_OVERHEAD_BYTES } from '../raft/replication-limits.ts';
import type { Entry, Message } from '../raft/types.ts';
import { FrameBudgetError, PEER_GRPC_MAX_MESSAGE_BYTES, frameBudgetBytes, largestMessageBytes } from './frame-budget.ts';
import { decodeBatch, encodeBatch, encodeFrames, type FrameBatch } from './frame-codec.ts';

function append(entries: Entry[]): Message {
  const m = newMessage('app', 1, 2, 7);
  m.index = 10;
  m.logTerm = 7;
  m.commit = 9;
  m.entries = entries;
  return m;
}

function entry(index: number, bytes: number): Entry {
  return { term: 7, index, type: 'normal', data: new Uint8Array(bytes).fill(index & 0xff) };
}

function batchOf(messages: Message[]): FrameBatch {
  return { clusterId: 0xabcdef, fromMember: 1, toMember: 2, envelopes: messages.map((message) => ({ groupId: 0, message })) };
}

describe('entry overhead bound', () => {
  it('an entry never adds more than ENTRY_OVERHEAD_BYTES beyond its payload, at the widest values', () => {
    const widest: Entry = { term: Number.MAX_SAFE_INTEGER, index: Number.MAX_SAFE_INTEGER, type: 'confChange', data: new Uint8Array(3 * 1024 * 1024) };
    const without = encodeBatch(batchOf([append([])])).length;
    const withEntry = encodeBatch(batchOf([append([widest])])).length;
    // The message's own length prefix may grow too: that is inside MESSAGE_OVERHEAD_BYTES' slack.
    expect(withEntry - without - widest.data.byteLength).toBeLessThanOrEqual(ENTRY_OVERHEAD_BYTES + 4);
    const one = encodeBatch(batchOf([append([widest])])).length;
    const two = encodeBatch(batchOf([append([widest, { ...widest, data: new Uint8Array(0) }])])).length;
    expect(two - one).toBeLessThanOrEqual(ENTRY_OVERHEAD_BYTES);
  });
});

describe('encodeFrames', () => {
  it('keeps small batches in one frame, byte-identical to encodeBatch', () => {
    const batch = batchOf([append([entry(11, 100)]), newMessage('heartbeat', 1, 2, 7)]);
    expect(encodeFrames(batch, 1 << 20)).toEqual([encodeBatch(batch)]);
  });

  it('splits a large batch into frames within the budget that decode to the same messages, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 40_000 }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 50_000, max: 200_000 }), (sizes, budget) => {
        const messages = sizes.map((bytes, i) => append([entry(11 + i, bytes)]));
        const frames = encodeFrames(batchOf(messages), budget);
        for (const frame of frames) expect(frame.length).toBeLessThanOrEqual(budget);
        const decoded = frames.flatMap((f) => decodeBatch(f).envelopes.map((e) => e.message));
        expect(decoded.map((m) => [m.entries[0].index, m.entries[0].data.byteLength])).toEqual(messages.map((m) => [m.entries[0].index, m.entries[0].data.byteLength]));
      }),
      { numRuns: 50 },
    );
  });

  it('a turn of 256 one-MiB appends to a follower leaves as frames under the budget, never one 256 MiB frame', () => {
    const budget = frameBudgetBytes(DEFAULT_REPLICATION_LIMITS, 1.5 * 1024 * 1024);
    const messages = Array.from({ length: 256 }, (_, i) => append([entry(11 + i, 1024 * 1024)]));
    const frames = encodeFrames(batchOf(messages), budget);
    expect(frames.length).toBeGreaterThan(1);
    expect(Math.max(...frames.map((f) => f.length))).toBeLessThanOrEqual(budget);
    expect(budget).toBeLessThanOrEqual(PEER_GRPC_MAX_MESSAGE_BYTES);
  });

  it('throws when one message exceeds the budget (limits and budget disagree)', () => {
    expect(() => encodeFrames(batchOf([append([entry(11, 200_000)])]), 100_000)).toThrow(/exceeds the frame budget/);
  });
});

describe('frame budget', () => {
  it('holds the largest message the limits allow, and stays under the gRPC limit', () => {
    const maxEntryBytes = 1.5 * 1024 * 1024;
    const budget = frameBudgetBytes(DEFAULT_REPLICATION_LIMITS, maxEntryBytes);
    expect(budget).toBeGreaterThanOrEqual(largestMessageBytes(DEFAULT_REPLICATION_LIMITS, maxEntryBytes));
    expect(budget).toBeLessThanOrEqual(PEER_GRPC_MAX_MESSAGE_BYTES);
  });

  it('refuses limits under which a message could not travel in one frame', () => {
    expect(() => frameBudgetBytes({ ...DEFAULT_REPLICATION_LIMITS, maxSizePerMsgBytes: 80 * 1024 * 1024 }, 1024)).toThrow(FrameBudgetError);
    expect(() => frameBudgetBytes(DEFAULT_REPLICATION_LIMITS, 70 * 1024 * 1024)).toThrow(/above the gRPC limit/);
  });
});

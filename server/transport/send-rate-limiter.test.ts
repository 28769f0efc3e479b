// The snapshot send pace (send-rate-limiter.ts) on a simulated clock: random chunk sizes and arrival
// times, each chunk sent when reserve says; over every window the bytes sent stay within
// burst + rate × window + one chunk, a saturated sender is never held below the rate, and 0 means
// no pacing at all.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { SendRateLimiter } from './send-rate-limiter.ts';

const MIB = 1024 * 1024;

/** Sends `chunks` (bytes, arrival gap ms) one after another as a transfer would: each waits, then leaves. */
function simulate(limiter: SendRateLimiter, chunks: Array<[number, number]>): Array<{ atMs: number; bytes: number }> {
  let nowMs = 0;
  const sent: Array<{ atMs: number; bytes: number }> = [];
  for (const [bytes, gapMs] of chunks) {
    nowMs += gapMs;
    nowMs += limiter.reserve(bytes, nowMs);
    sent.push({ atMs: nowMs, bytes });
  }
  return sent;
}

describe('SendRateLimiter', () => {
  it('never lets more than burst + rate × window + one chunk leave in any window', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 64 * 1024, max: 8 * MIB }),
        fc.integer({ min: 0, max: 2 * MIB }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: MIB }), fc.integer({ min: 0, max: 500 })), { minLength: 1, maxLength: 60 }),
        (rate, burst, chunks) => {
          const sent = simulate(new SendRateLimiter(rate, burst), chunks);
          const maxChunk = Math.max(...chunks.map(([b]) => b));
          for (let i = 0; i < sent.length; i++) {
            let bytes = 0;
            for (let j = i; j < sent.length; j++) {
              bytes += sent[j].bytes;
              const windowS = (sent[j].atMs - sent[i].atMs) / 1000;
              expect(bytes).toBeLessThanOrEqual(burst + rate * windowS + maxChunk + 1e-6);
            }
          }
        },
      ),
    );
  });

  it('holds a saturated sender at the rate, not below it', () => {
    const rate = 4 * MIB;
    const limiter = new SendRateLimiter(rate, MIB);
    const sent = simulate(limiter, Array.from({ length: 100 }, () => [256 * 1024, 0] as [number, number]));
    const last = sent[sent.length - 1];
    // 25 MiB at 4 MiB/s with 1 MiB of burst: the last chunk leaves at (25 − 1 − 0.25) / 4 s.
    expect(last.atMs).toBeCloseTo(((25 - 1 - 0.25) / 4) * 1000, 6);
    expect(limiter.stats.bytes).toBe(25 * MIB);
    expect(limiter.stats.throttledMs).toBeGreaterThan(0);
  });

  it('starts at once after an idle pause', () => {
    const limiter = new SendRateLimiter(MIB, MIB);
    expect(limiter.reserve(MIB, 0)).toBe(0);
    expect(limiter.reserve(MIB, 0)).toBe(0); // within the burst of an idle link
    expect(limiter.reserve(MIB, 0)).toBe(1000);
    expect(limiter.reserve(MIB, 60_000)).toBe(0); // a minute later: idle again
  });

  it('does not pace when the rate is 0 (unlimited)', () => {
    const limiter = new SendRateLimiter(0);
    for (let i = 0; i < 1000; i++) expect(limiter.reserve(MIB, 0)).toBe(0);
    expect(limiter.stats.bytes).toBe(1000 * MIB);
  });

  it('refuses a negative or non-finite rate', () => {
    expect(() => new SendRateLimiter(-1)).toThrow(/non-negative/);
    expect(() => new SendRateLimiter(Number.NaN)).toThrow(/non-negative/);
  });
});

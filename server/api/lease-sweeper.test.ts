// The sweeper's horizon: the cluster group's applied index as it was at least HORIZON_AGE_MS ago, from
// samples, keeping only what the next answers need.
import { describe, expect, it } from 'vitest';
import { Rng } from '../raft/rng.ts';
import { AppliedIndexHistory } from './lease-sweeper.ts';

describe('AppliedIndexHistory', () => {
  it('answers the newest sample at least the age old (0 before any), never from the future', () => {
    const h = new AppliedIndexHistory(1_000);
    expect(h.horizon(0)).toBe(0);
    h.sample(0, 5);
    expect(h.horizon(999)).toBe(0);
    expect(h.horizon(1_000)).toBe(5);
    h.sample(400, 9);
    h.sample(1_200, 20);
    expect(h.horizon(1_399)).toBe(5);
    expect(h.horizon(1_400)).toBe(9);
    expect(h.horizon(2_200)).toBe(20);
  });

  it('matches a brute force over random sampling, and keeps a bounded history (seeded)', () => {
    const rng = new Rng(7);
    const age = 500;
    const h = new AppliedIndexHistory(age);
    const all: Array<{ atMs: number; index: number }> = [];
    let now = 0;
    let index = 0;
    for (let i = 0; i < 5_000; i++) {
      now += rng.nextInt(60);
      index += rng.nextInt(5);
      h.sample(now, index);
      all.push({ atMs: now, index });
      const at = now + rng.nextInt(100);
      const want = all.filter((s) => s.atMs <= at - age).at(-1)?.index ?? 0;
      expect(h.horizon(at)).toBe(want);
    }
    expect((h as unknown as { samples: unknown[] }).samples.length).toBeLessThan(600);
  });
});

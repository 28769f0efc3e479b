// The nemesis schedule is a pure function of the seed (so SYNOD_FAULT_SEED replays a run), keeps
// faults one at a time inside the run, and leaves the last 1.5 s fault-free for healing.
import { describe, expect, it } from 'vitest';
import { planSchedule } from './nemesis.ts';

describe('nemesis schedule', () => {
  it('is determined by the seed and differs between seeds', () => {
    expect(planSchedule(7, 15_000, 3)).toEqual(planSchedule(7, 15_000, 3));
    expect(planSchedule(7, 15_000, 3)).not.toEqual(planSchedule(8, 15_000, 3));
  });

  it('runs faults one at a time, within the run, with targets among the members', () => {
    for (const members of [3, 5]) {
      for (let seed = 1; seed <= 30; seed++) {
        const steps = planSchedule(seed, 60_000, members);
        expect(steps.length).toBeGreaterThanOrEqual(10);
        steps.forEach((s, i) => {
          if (i > 0) expect(s.atMs).toBeGreaterThan(steps[i - 1].atMs + steps[i - 1].holdMs);
          expect(s.atMs + s.holdMs).toBeLessThanOrEqual(60_000 - 1_500);
          if (s.target !== 'leader') expect(s.target).toBeLessThan(members);
          if (members < 5) expect(s.kind).not.toBe('split');
        });
      }
    }
  });

  it('uses every kind of fault over a few seeds, and targets the leader as well as fixed members', () => {
    const steps = [1, 2, 3, 4, 5].flatMap((seed) => planSchedule(seed, 60_000, 5));
    expect(new Set(steps.map((s) => s.kind))).toEqual(new Set(['kill', 'pause', 'isolate', 'cut-link', 'split', 'replace']));
    expect(steps.some((s) => s.target === 'leader')).toBe(true);
    expect(steps.some((s) => s.target !== 'leader')).toBe(true);
  });
});

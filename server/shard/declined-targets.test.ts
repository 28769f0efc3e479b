import { describe, expect, it } from 'vitest';
import { DeclinedTargets } from './declined-targets.ts';

describe('DeclinedTargets', () => {
  it('passes a target over until its backoff ends, then asks it again', () => {
    let nowMs = 1_000;
    const targets = new DeclinedTargets(30_000, () => nowMs);
    expect(targets.declined(2)).toBe(false);
    targets.markDeclined(2);
    expect(targets.declined(2)).toBe(true);
    expect(targets.declined(3)).toBe(false);
    nowMs = 30_999;
    expect(targets.declined(2)).toBe(true);
    nowMs = 31_000;
    expect(targets.declined(2)).toBe(false);
  });

  it('a second decline starts a new backoff from its own moment', () => {
    let nowMs = 0;
    const targets = new DeclinedTargets(10, () => nowMs);
    targets.markDeclined(7);
    nowMs = 10;
    expect(targets.declined(7)).toBe(false);
    targets.markDeclined(7);
    nowMs = 19;
    expect(targets.declined(7)).toBe(true);
    nowMs = 20;
    expect(targets.declined(7)).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { JointConfig, MajorityConfig } from './quorum.ts';

/** By definition: the largest index that at least a majority of voters hold. */
function bruteCommitted(voters: number[], match: Map<number, number>): number {
  const q = (voters.length >> 1) + 1;
  let best = 0;
  for (const candidate of new Set(voters.map((v) => match.get(v) ?? 0))) {
    const holders = voters.filter((v) => (match.get(v) ?? 0) >= candidate).length;
    if (holders >= q) best = Math.max(best, candidate);
  }
  return best;
}

const voterSets = fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 7 });

describe('MajorityConfig', () => {
  it('committedIndex is the largest index a majority holds', () => {
    fc.assert(
      fc.property(voterSets, fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 9, maxLength: 9 }), (voters, indexes) => {
        const match = new Map(voters.map((v) => [v, indexes[v - 1]]));
        expect(new MajorityConfig(voters).committedIndex((id) => match.get(id) ?? 0)).toBe(bruteCommitted(voters, match));
      }),
    );
  });

  it('voteResult: won with a majority of grants, lost once a majority cannot grant, else pending', () => {
    const c = new MajorityConfig([1, 2, 3, 4, 5]);
    const votes = new Map<number, boolean>();
    const result = (): string => c.voteResult((id) => votes.get(id));
    expect(result()).toBe('pending');
    votes.set(1, true).set(2, true);
    expect(result()).toBe('pending');
    votes.set(3, false).set(4, false);
    expect(result()).toBe('pending'); // 5 can still decide
    votes.set(5, true);
    expect(result()).toBe('won');
    votes.set(5, false);
    expect(result()).toBe('lost');
  });

  it('hasQuorum counts only voters', () => {
    const c = new MajorityConfig([1, 2, 3]);
    expect(c.hasQuorum((id) => id === 1 || id === 7)).toBe(false);
    expect(c.hasQuorum((id) => id === 1 || id === 3)).toBe(true);
  });

  it('refuses duplicate voters', () => {
    expect(() => new MajorityConfig([1, 2, 2])).toThrow(/duplicate voter/);
  });
});

describe('JointConfig', () => {
  it('without an outgoing half it decides exactly as its incoming majority', () => {
    fc.assert(
      fc.property(voterSets, fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 9, maxLength: 9 }), (voters, indexes) => {
        const indexOf = (id: number): number => indexes[id - 1];
        expect(JointConfig.of(voters).committedIndex(indexOf)).toBe(new MajorityConfig(voters).committedIndex(indexOf));
      }),
    );
  });

  it('needs a majority of both halves: commit is the lower of the two, votes must win in both', () => {
    const joint = new JointConfig(new MajorityConfig([1, 2, 3]), new MajorityConfig([3, 4, 5]));
    expect(joint.voters).toEqual([1, 2, 3, 4, 5]);
    const match = new Map([[1, 9], [2, 9], [3, 4], [4, 4], [5, 1]]);
    expect(joint.committedIndex((id) => match.get(id) ?? 0)).toBe(4);
    const votes = new Map<number, boolean>([[1, true], [2, true]]);
    expect(joint.voteResult((id) => votes.get(id))).toBe('pending');
    votes.set(4, false).set(5, false);
    expect(joint.voteResult((id) => votes.get(id))).toBe('lost');
    votes.set(4, true).set(5, true);
    expect(joint.voteResult((id) => votes.get(id))).toBe('won');
    expect(joint.hasQuorum((id) => id <= 3)).toBe(false);
    expect(joint.hasQuorum((id) => id !== 3 && id !== 5)).toBe(false); // outgoing has only 4
    expect(joint.hasQuorum((id) => id !== 1 && id !== 5)).toBe(true);
  });
});

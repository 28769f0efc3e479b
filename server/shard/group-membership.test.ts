// nextMembershipStep, the pure decision behind a sharded cluster's groups following the cluster group's
// membership: driven to a fixed point from random starting memberships (fast-check), and the orders
// that matter for safety checked by name.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ConfState } from '../raft/types.ts';
import { nextMembershipStep, type MembershipStep } from './group-membership.ts';

const cs = (voters: number[], learners: number[] = []): ConfState => ({ voters, learners });

/** Applies a step as Raft would (a learner is promoted only if caught up: the caller checked). */
function apply(state: ConfState, step: MembershipStep): ConfState {
  switch (step.kind) {
    case 'remove':
      return cs(state.voters.filter((v) => v !== step.nodeId), state.learners.filter((l) => l !== step.nodeId));
    case 'add-learner':
      return cs(state.voters, [...state.learners, step.nodeId]);
    case 'promote':
      return cs([...state.voters, step.nodeId], state.learners.filter((l) => l !== step.nodeId));
    default:
      return state;
  }
}

describe('nextMembershipStep', () => {
  it('removes a member gone from the cluster before adding its replacement, which enters as a learner', () => {
    const desired = cs([1, 2, 4]);
    let current = cs([1, 2, 3]);
    const steps: MembershipStep[] = [];
    for (let i = 0; i < 10; i++) {
      const step = nextMembershipStep(desired, current, 1, () => true);
      if (step.kind === 'none') break;
      steps.push(step);
      current = apply(current, step);
    }
    expect(steps).toEqual([
      { kind: 'remove', nodeId: 3 },
      { kind: 'add-learner', nodeId: 4 },
      { kind: 'promote', nodeId: 4 },
    ]);
    expect(current).toEqual(cs([1, 2, 4]));
  });

  it('promotes only a caught-up learner, and never one the cluster keeps as a learner', () => {
    expect(nextMembershipStep(cs([1, 2, 3, 4]), cs([1, 2, 3], [4]), 1, () => false)).toEqual({ kind: 'none' });
    expect(nextMembershipStep(cs([1, 2, 3], [4]), cs([1, 2, 3], [4]), 1, () => true)).toEqual({ kind: 'none' });
  });

  it('a leader the cluster removed hands leadership to a voter the cluster keeps, and proposes nothing itself', () => {
    expect(nextMembershipStep(cs([2, 3]), cs([1, 2, 3]), 1, () => true)).toEqual({ kind: 'transfer-leadership', to: 2 });
    expect(nextMembershipStep(cs([3]), cs([1, 2, 3]), 1, () => true)).toEqual({ kind: 'transfer-leadership', to: 3 });
    // A target that just declined (a member about to stop) comes after the other wanted voters; alone, it is asked anyway.
    expect(nextMembershipStep(cs([2, 3]), cs([1, 2, 3]), 1, () => true, undefined, (id) => id === 2)).toEqual({ kind: 'transfer-leadership', to: 3 });
    expect(nextMembershipStep(cs([2]), cs([1, 2]), 1, () => true, undefined, (id) => id === 2)).toEqual({ kind: 'transfer-leadership', to: 2 });
  });

  it('from any membership, reaches exactly the desired one (the leader among the desired voters)', () => {
    const ids = fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(ids, ids, fc.nat(), fc.nat(), (desiredIds, currentIds, splitD, splitC) => {
        const dv = desiredIds.slice(0, 1 + (splitD % desiredIds.length));
        const desired = cs(dv, desiredIds.filter((id) => !dv.includes(id)));
        const self = dv[0];
        const cur = [...new Set([self, ...currentIds])];
        const cv = [self, ...cur.slice(1, 1 + (splitC % cur.length))];
        let current = cs(cv, cur.filter((id) => !cv.includes(id)));
        for (let i = 0; i < 50; i++) {
          const step = nextMembershipStep(desired, current, self, () => true);
          if (step.kind === 'none') break;
          expect(step.kind).not.toBe('transfer-leadership');
          // One change at a time, and a voter is only ever added by promoting a learner.
          const next = apply(current, step);
          if (step.kind === 'add-learner') expect(next.voters).toEqual(current.voters);
          current = next;
        }
        expect([...current.voters].sort()).toEqual([...desired.voters].sort());
        expect([...current.learners].sort()).toEqual([...desired.learners].sort());
      }),
      { numRuns: 500 },
    );
  });

  it('a replica moving off a live member leaves last: learner, promote, then remove (voters R → R+1 → R)', () => {
    const desired = cs([1, 2, 4]);
    let current = cs([1, 2, 3]);
    const alive = (): boolean => true;
    const steps: MembershipStep[] = [];
    for (let i = 0; i < 10; i++) {
      const step = nextMembershipStep(desired, current, 1, (id) => id === 4, alive);
      if (step.kind === 'none') break;
      steps.push(step);
      current = apply(current, step);
    }
    expect(steps).toEqual([
      { kind: 'add-learner', nodeId: 4 },
      { kind: 'promote', nodeId: 4 },
      { kind: 'remove', nodeId: 3 },
    ]);
    // A learner that has not caught up holds the old replica in place.
    expect(nextMembershipStep(desired, cs([1, 2, 3], [4]), 1, () => false, alive)).toEqual({ kind: 'none' });
    // The leaving replica leads: it hands over only once the new one votes.
    expect(nextMembershipStep(cs([2, 3, 4]), cs([1, 2, 3], [4]), 1, () => false, alive)).toEqual({ kind: 'none' });
    expect(nextMembershipStep(cs([2, 3, 4]), cs([1, 2, 3, 4]), 1, () => true, alive)).toEqual({ kind: 'transfer-leadership', to: 2 });
  });

  it('moves between live members reach the desired membership and never go below the voters wanted', () => {
    const ids = fc.uniqueArray(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(ids, ids, fc.array(fc.boolean(), { minLength: 50, maxLength: 50 }), (desiredIds, currentIds, catchUps) => {
        const desired = cs(desiredIds);
        let current = cs([...new Set(currentIds)]);
        let leader = current.voters[0];
        const floor = Math.min(desired.voters.length, current.voters.length);
        for (let i = 0; i < 50; i++) {
          const step = nextMembershipStep(desired, current, leader, () => catchUps[i] || i > 40, () => true);
          if (step.kind === 'none' && i > 40) break;
          if (step.kind === 'transfer-leadership') {
            expect(desired.voters).toContain(step.to);
            leader = step.to;
            continue;
          }
          if (step.kind === 'remove') expect(step.nodeId).not.toBe(leader);
          current = apply(current, step);
          expect(current.voters.length).toBeGreaterThanOrEqual(floor);
        }
        expect([...current.voters].sort()).toEqual([...desired.voters].sort());
        expect(current.learners).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });
});

// The "is the scale under way" predicate that decides when `make e2e` kills the operator: a converged
// cluster (the old test's accepted state) is never 'in-progress'.

import { describe, expect, it } from 'vitest';
import { describeScaleSnapshot, membersFromStatus, scaleProgress, type ScaleMember } from './scale-progress.ts';

const voter = (i: number): ScaleMember => ({ name: `demo-${i}`, isLearner: false });
const learner = (i: number, started = true): ScaleMember => ({ name: started ? `demo-${i}` : '', isLearner: true });
const voters = (n: number): ScaleMember[] => Array.from({ length: n }, (_, i) => voter(i));

describe('scaleProgress, scale out 3 → 5', () => {
  it('is not started before the operator acts, done once 5 voters run on 5 pods', () => {
    expect(scaleProgress({ members: voters(3), statefulSetReplicas: 3 }, 3, 5)).toBe('not-started');
    expect(scaleProgress({ members: voters(5), statefulSetReplicas: 5 }, 3, 5)).toBe('done');
  });

  it('is in progress with a learner added (started or not), or the StatefulSet grown before the status shows the learner', () => {
    expect(scaleProgress({ members: [...voters(3), learner(3, false)], statefulSetReplicas: 4 }, 3, 5)).toBe('in-progress');
    expect(scaleProgress({ members: [...voters(3), learner(3)], statefulSetReplicas: 4 }, 3, 5)).toBe('in-progress');
    expect(scaleProgress({ members: voters(3), statefulSetReplicas: 4 }, 3, 5)).toBe('in-progress');
    expect(scaleProgress({ members: voters(4), statefulSetReplicas: 4 }, 3, 5)).toBe('in-progress');
    expect(scaleProgress({ members: [...voters(4), learner(4)], statefulSetReplicas: 5 }, 3, 5)).toBe('in-progress');
  });

  it('is not in progress on the target size with a learner only if none is left', () => {
    expect(scaleProgress({ members: [...voters(5), learner(5)], statefulSetReplicas: 6 }, 3, 5)).toBe('in-progress');
  });
});

describe('scaleProgress, scale in 5 → 3', () => {
  it('is in progress after a member left but before the StatefulSet shrank, and between steps', () => {
    expect(scaleProgress({ members: voters(5), statefulSetReplicas: 5 }, 5, 3)).toBe('not-started');
    expect(scaleProgress({ members: voters(4), statefulSetReplicas: 5 }, 5, 3)).toBe('in-progress');
    expect(scaleProgress({ members: voters(4), statefulSetReplicas: 4 }, 5, 3)).toBe('in-progress');
    expect(scaleProgress({ members: voters(3), statefulSetReplicas: 3 }, 5, 3)).toBe('done');
  });
});

describe('reading the snapshot', () => {
  it('takes learners from status.members roles and describes the snapshot in one line', () => {
    const members = membersFromStatus([{ name: 'demo-0', role: 'leader' }, { name: 'demo-1', role: 'follower' }, { name: 'demo-2', role: 'unknown' }, { name: 'demo-3', role: 'learner' }]);
    expect(members.filter((m) => m.isLearner).map((m) => m.name)).toEqual(['demo-3']);
    expect(describeScaleSnapshot({ members, statefulSetReplicas: 4 })).toBe('3 voters + 1 learner(s) (demo-3), StatefulSet 4');
  });
});

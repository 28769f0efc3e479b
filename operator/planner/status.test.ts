// deriveStatus: the Available condition needs a quorum of voting members that answer and whose pods
// are Ready, and the MEMBERS printer column (status.memberSummary) never shows more ready members than
// members (issue 11: Available=True with 1 of 3 pods Ready; 4/3 during scale-in).

import { describe, expect, it } from 'vitest';
import type { SynodClusterStatus } from '../api/types.ts';
import type { ObservedCluster, Plan } from './model.ts';
import { desired, healthyCluster, withMember, withPod } from './observed-builder.ts';
import { deriveStatus } from './status.ts';

const CONVERGED: Plan = { actions: [], progress: null, requeueAfterMs: 60_000 };

function status(observed: ObservedCluster, replicas: number): SynodClusterStatus {
  return deriveStatus({ desired: desired(replicas), observed, plan: CONVERGED, generation: 1, selector: 's', previousConditions: [], now: '2026-01-01T00:00:00Z' });
}

function available(s: SynodClusterStatus): string | undefined {
  return s.conditions.find((c) => c.type === 'Available')?.status;
}

describe('status: Available', () => {
  it('is True on a healthy cluster', () => {
    expect(available(status(healthyCluster(3), 3))).toBe('True');
  });

  it('is False while only 1 of 3 pods is Ready, even though every member answers Status', () => {
    const observed = withPod(withPod(healthyCluster(3), 1, { ready: false }), 2, { ready: false });
    const s = status(observed, 3);
    expect(s.readyReplicas).toBe(1);
    expect(available(s)).toBe('False');
    expect(s.conditions.find((c) => c.type === 'Available')?.message).toContain('1/3 voting members ready');
  });

  it('is True with 2 of 3 pods Ready (a quorum), False when the ready pods belong to members that do not answer', () => {
    expect(available(status(withPod(healthyCluster(3), 2, { ready: false }), 3))).toBe('True');
    const unhealthy = withMember(withMember(healthyCluster(3), 1, { healthy: false }), 2, { healthy: false });
    expect(available(status(unhealthy, 3))).toBe('False');
  });

  it('does not count a ready learner towards the quorum', () => {
    const observed = withPod(withPod(withMember(healthyCluster(3), 3, { isLearner: true }), 1, { ready: false }), 2, { ready: false });
    expect(available(status({ ...observed, statefulSet: { replicas: 4 } }, 4))).toBe('False');
  });
});

describe('status: memberSummary (the MEMBERS printer column)', () => {
  it('shows ready/desired when converged and while scaling out', () => {
    expect(status(healthyCluster(3), 3).memberSummary).toBe('3/3');
    expect(status(healthyCluster(3), 5).memberSummary).toBe('3/5');
  });

  it('never shows more ready members than members during scale-in (was 4/3)', () => {
    // 5 → 3: one member already removed, the fifth pod gone, four members left, all ready.
    const observed = withMember(withPod({ ...healthyCluster(5), statefulSet: { replicas: 4 } }, 4, null), 4, null);
    expect(status(observed, 3).memberSummary).toBe('4/4');
  });
});

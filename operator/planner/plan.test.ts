// plan(desired, observed) on many observed states, each with the one safe next action.

import { describe, expect, it } from 'vitest';
import type { Action, ObservedCluster } from './model.ts';
import { peerUrl } from './naming.ts';
import { REQUEUE_IN_FLIGHT_MS, REQUEUE_STEADY_MS, plan, quorumSize } from './plan.ts';
import {
  CLUSTER, HASH_OLD, NAMESPACE, desired, healthyCluster, member, memberId, pod, pvc, withAllPods, withMember, withPod,
} from './observed-builder.ts';

/** The actions after the EnsureChildren every plan starts with. */
function steps(observed: ObservedCluster, replicas: number, overrides: Parameters<typeof desired>[1] = {}): Action[] {
  const result = plan(desired(replicas, overrides), observed);
  expect(result.actions[0]?.type).toBe('EnsureChildren');
  return result.actions.slice(1);
}

describe('plan: fresh and bootstrap', () => {
  it('creates every child with the full replica count and state new when nothing exists', () => {
    const result = plan(desired(3), { statefulSet: null, bootstrapState: null, pods: [], pvcs: [], members: null });
    expect(result.actions).toEqual([{ type: 'EnsureChildren', statefulSetReplicas: 3, clusterState: 'new' }]);
    expect(result.progress?.reason).toBe('Creating');
    expect(result.requeueAfterMs).toBe(REQUEUE_IN_FLIGHT_MS);
  });

  it('waits while the initial members are still starting', () => {
    const observed: ObservedCluster = { ...healthyCluster(3), bootstrapState: 'new', members: null, pods: [pod(0, { ready: false }), pod(1, { ready: false })] };
    const result = plan(desired(3), observed);
    expect(result.actions).toEqual([{ type: 'EnsureChildren', statefulSetReplicas: 3, clusterState: 'new' }]);
    expect(result.progress?.reason).toBe('Bootstrapping');
  });

  it('flips the ConfigMap to existing once every initial member is up', () => {
    const result = plan(desired(3), { ...healthyCluster(3), bootstrapState: 'new' });
    expect(result.actions).toEqual([{ type: 'EnsureChildren', statefulSetReplicas: 3, clusterState: 'existing' }]);
  });

  it('does not scale during bootstrap even when spec.replicas changed', () => {
    const observed: ObservedCluster = { ...withPod(healthyCluster(3), 2, { ready: false }), bootstrapState: 'new' };
    expect(steps(observed, 5)).toEqual([]);
  });

  it('replaces a crash-looping bootstrap pod whose template is outdated (a bad image fixed by the user)', () => {
    const observed: ObservedCluster = { ...withAllPods(healthyCluster(3), { ready: false, templateHash: HASH_OLD }), bootstrapState: 'new', members: null };
    expect(steps(observed, 3)).toEqual([{ type: 'DeletePod', podName: 'demo-2', reason: 'outdated and not ready' }]);
  });
});

describe('plan: steady state', () => {
  it('does nothing on a converged cluster and looks again later', () => {
    const result = plan(desired(3), healthyCluster(3));
    expect(result.actions).toEqual([{ type: 'EnsureChildren', statefulSetReplicas: 3, clusterState: 'existing' }]);
    expect(result.progress).toBeNull();
    expect(result.requeueAfterMs).toBe(REQUEUE_STEADY_MS);
  });

  it('waits (no destructive step) while a member is down on an up-to-date pod', () => {
    const observed = withMember(withPod(healthyCluster(3), 1, { ready: false }), 1, { healthy: false });
    const result = plan(desired(3), observed);
    expect(result.actions.slice(1)).toEqual([]);
    expect(result.progress?.reason).toBe('Recovering');
  });

  it('waits when no member answers MemberList', () => {
    const result = plan(desired(3), { ...healthyCluster(3), members: null });
    expect(result.actions.slice(1)).toEqual([]);
    expect(result.progress?.reason).toBe('MembersUnreachable');
  });

  it('treats a missing ConfigMap as an existing cluster (never re-bootstraps)', () => {
    const result = plan(desired(3), { ...healthyCluster(3), bootstrapState: null });
    expect(result.actions[0]).toEqual({ type: 'EnsureChildren', statefulSetReplicas: 3, clusterState: 'existing' });
  });
});

describe('plan: scale out', () => {
  it('adds the next ordinal as a learner and grows the StatefulSet by one', () => {
    expect(steps(healthyCluster(3), 5)).toEqual([
      { type: 'AddLearner', ordinal: 3, memberName: 'demo-3', peerUrl: peerUrl(CLUSTER, NAMESPACE, 3) },
      { type: 'ScaleStatefulSet', replicas: 4, reason: 'start learner demo-3' },
    ]);
  });

  it('grows a single member to three one at a time', () => {
    expect(steps(healthyCluster(1), 3)).toEqual([
      { type: 'AddLearner', ordinal: 1, memberName: 'demo-1', peerUrl: peerUrl(CLUSTER, NAMESPACE, 1) },
      { type: 'ScaleStatefulSet', replicas: 2, reason: 'start learner demo-1' },
    ]);
  });

  it('waits for the learner to catch up, then promotes it', () => {
    let observed = healthyCluster(3);
    observed = { ...observed, statefulSet: { replicas: 4 } };
    observed = withPod(observed, 3, { ready: false });
    observed = withMember(observed, 3, { name: '', isLearner: true, healthy: false, appliedIndex: 0 });
    expect(steps(observed, 5)).toEqual([]);
    observed = withPod(observed, 3, { ready: true });
    observed = withMember(observed, 3, { name: 'demo-3', healthy: true, appliedIndex: 10 });
    expect(steps(observed, 5)).toEqual([]);
    observed = withMember(observed, 3, { appliedIndex: 499 });
    expect(steps(observed, 5)).toEqual([{ type: 'PromoteLearner', memberId: memberId(3), memberName: 'demo-3' }]);
  });

  it('resumes after a restart between MemberAdd and the StatefulSet update', () => {
    const observed = withMember(healthyCluster(3), 3, { name: '', isLearner: true, healthy: false, appliedIndex: 0 });
    expect(steps(observed, 5)).toEqual([{ type: 'ScaleStatefulSet', replicas: 4, reason: 'start learner demo-3' }]);
  });

  it('adds the second new member only after the first is promoted', () => {
    let observed: ObservedCluster = { ...healthyCluster(4), statefulSet: { replicas: 4 } };
    observed = withMember(observed, 3, { isLearner: false });
    expect(steps(observed, 5)[0]).toMatchObject({ type: 'AddLearner', ordinal: 4 });
  });

  it('retires a stale PVC left by an earlier member before adding that ordinal again', () => {
    const observed: ObservedCluster = { ...healthyCluster(3), pvcs: [pvc(0), pvc(1), pvc(2), pvc(3)] };
    expect(steps(observed, 5, { retentionPolicy: 'Retain' })).toEqual([
      { type: 'DeletePvc', pvcName: 'data-demo-3', reason: 'stale data of a former demo-3' },
    ]);
    const terminating: ObservedCluster = { ...observed, pvcs: [pvc(0), pvc(1), pvc(2), pvc(3, { terminating: true })] };
    expect(steps(terminating, 5, { retentionPolicy: 'Retain' })).toEqual([]);
  });

  it('deletes a stale PVC once even when the retention policy also retires it', () => {
    const observed: ObservedCluster = { ...healthyCluster(3), pvcs: [pvc(0), pvc(1), pvc(2), pvc(3)] };
    const deletes = steps(observed, 5).filter((a) => a.type === 'DeletePvc');
    expect(deletes).toHaveLength(1);
  });

  it('does not add a member while another is not ready', () => {
    const observed = withPod(healthyCluster(3), 1, { ready: false });
    expect(steps(observed, 5)).toEqual([]);
  });

  it('does not add a member while a follower lags behind the leader', () => {
    const observed = withMember(healthyCluster(3), 2, { appliedIndex: 10 });
    expect(steps(observed, 5)).toEqual([]);
  });

  it('drops a learner that is no longer wanted after spec.replicas went back down', () => {
    let observed: ObservedCluster = { ...healthyCluster(3), statefulSet: { replicas: 4 } };
    observed = withPod(observed, 3, { ready: false });
    observed = withMember(observed, 3, { name: '', isLearner: true, healthy: false });
    expect(steps(observed, 3)).toEqual([
      { type: 'RemoveMember', memberId: memberId(3), memberName: 'demo-3', reason: 'learner no longer wanted' },
      { type: 'ScaleStatefulSet', replicas: 3, reason: 'drop the unwanted learner pod' },
    ]);
  });
});

describe('plan: scale in', () => {
  it('removes the highest ordinal member, then shrinks the StatefulSet', () => {
    expect(steps(healthyCluster(5), 3)).toEqual([
      { type: 'RemoveMember', memberId: memberId(4), memberName: 'demo-4', reason: 'scale in' },
      { type: 'ScaleStatefulSet', replicas: 4, reason: 'demo-4 left the cluster' },
    ]);
  });

  it('moves leadership away from the member to remove first', () => {
    expect(steps(healthyCluster(5, 4), 3)).toEqual([
      { type: 'MoveLeader', fromMemberId: memberId(4), toMemberId: memberId(0), toMemberName: 'demo-0', reason: 'demo-4 is being removed' },
    ]);
  });

  it('never hands leadership to another member that is about to be removed', () => {
    const observed = withMember(withMember(healthyCluster(5, 4), 0, { healthy: false }), 1, { appliedIndex: 1 });
    const action = steps(observed, 3)[0];
    expect(action).toMatchObject({ type: 'MoveLeader', toMemberId: memberId(2) });
  });

  it('removes an unhealthy member that is the one to go (does not wait for it)', () => {
    const observed = withMember(withPod(healthyCluster(5), 4, { ready: false }), 4, { healthy: false });
    expect(steps(observed, 3)[0]).toEqual({ type: 'RemoveMember', memberId: memberId(4), memberName: 'demo-4', reason: 'scale in' });
  });

  it('converges while a lower member is down, as long as a healthy quorum remains', () => {
    const observed = withMember(withPod(healthyCluster(5), 1, { ready: false }), 1, { healthy: false });
    expect(steps(observed, 3)[0]).toMatchObject({ type: 'RemoveMember', memberId: memberId(4) });
    const four = withMember({ ...observed, statefulSet: { replicas: 4 }, pods: observed.pods.filter((p) => p.ordinal < 4) }, 4, null);
    expect(steps(four, 3).find((a) => a.type === 'RemoveMember')).toMatchObject({ memberId: memberId(3) });
  });

  it('refuses a removal that would leave no healthy quorum', () => {
    let observed = healthyCluster(5);
    observed = withMember(observed, 1, { healthy: false });
    observed = withMember(observed, 2, { healthy: false });
    const result = plan(desired(3), observed);
    expect(result.actions.slice(1)).toEqual([]);
    expect(result.progress?.message).toContain('no healthy quorum');
  });

  it('finishes a scale-in cut short between MemberRemove and the StatefulSet update', () => {
    const observed = withMember(healthyCluster(5), 4, null);
    expect(steps(observed, 3)).toEqual([
      { type: 'ScaleStatefulSet', replicas: 4, reason: 'pods above the highest member' },
    ]);
  });

  it('does not restart the pod of a member already removed, even if outdated and not ready', () => {
    const observed = withPod(withMember(healthyCluster(5), 4, null), 4, { ready: false, templateHash: HASH_OLD });
    const actions = steps(observed, 3);
    expect(actions).toEqual([{ type: 'ScaleStatefulSet', replicas: 4, reason: 'pods above the highest member' }]);
    expect(actions.some((a) => a.type === 'DeletePod')).toBe(false);
  });

  it('retires the removed member\'s PVC once its pod is gone, with retention policy Delete', () => {
    const observed: ObservedCluster = { ...healthyCluster(3), pvcs: [pvc(0), pvc(1), pvc(2), pvc(3), pvc(4)] };
    expect(steps(observed, 3)).toEqual([
      { type: 'DeletePvc', pvcName: 'data-demo-3', reason: 'member removed on scale-in (retention policy Delete)' },
      { type: 'DeletePvc', pvcName: 'data-demo-4', reason: 'member removed on scale-in (retention policy Delete)' },
    ]);
  });

  it('keeps the PVC while the removed pod is still terminating', () => {
    const observed: ObservedCluster = { ...healthyCluster(3), pods: [...healthyCluster(3).pods, pod(3, { terminating: true })], pvcs: [pvc(0), pvc(1), pvc(2), pvc(3)] };
    expect(steps(observed, 3).filter((a) => a.type === 'DeletePvc')).toEqual([]);
  });

  it('keeps removed members\' PVCs with retention policy Retain', () => {
    const observed: ObservedCluster = { ...healthyCluster(3), pvcs: [pvc(0), pvc(1), pvc(2), pvc(3)] };
    expect(steps(observed, 3, { retentionPolicy: 'Retain' })).toEqual([]);
  });

  it('removes a voter that is not one of this cluster\'s ordinals first', () => {
    const foreign = member(7, { ordinal: null, id: 'beef', name: 'stranger', peerUrl: 'http://10.0.0.9:2380' });
    const observed: ObservedCluster = { ...healthyCluster(3), members: [...(healthyCluster(3).members ?? []), foreign] };
    expect(steps(observed, 3)[0]).toEqual({ type: 'RemoveMember', memberId: 'beef', memberName: 'stranger', reason: 'scale in' });
  });

  it('scales 3 → 1', () => {
    expect(steps(healthyCluster(3), 1)[0]).toMatchObject({ type: 'RemoveMember', memberId: memberId(2) });
  });
});

describe('plan: rolling upgrade', () => {
  const outdated = (size: number, leader = 0): ObservedCluster => withAllPods(healthyCluster(size, leader), { templateHash: HASH_OLD, version: '0.1.0' });

  it('restarts followers first, highest ordinal first', () => {
    expect(steps(outdated(3), 3)).toEqual([{ type: 'DeletePod', podName: 'demo-2', reason: 'rolling upgrade (follower)' }]);
  });

  it('waits while the restarted pod is not back', () => {
    const observed = withPod(outdated(3), 2, null);
    expect(steps(observed, 3)).toEqual([]);
    const restarting = withPod(outdated(3), 2, { terminating: true });
    expect(steps(restarting, 3)).toEqual([]);
  });

  it('waits until the updated member has caught up', () => {
    let observed = withPod(outdated(3), 2, { templateHash: 'bbbbbbbbbbbbbbbb', version: '0.2.0' });
    observed = withMember(observed, 2, { appliedIndex: 3 });
    expect(steps(observed, 3)).toEqual([]);
    observed = withMember(observed, 2, { appliedIndex: 500 });
    expect(steps(observed, 3)).toEqual([{ type: 'DeletePod', podName: 'demo-1', reason: 'rolling upgrade (follower)' }]);
  });

  it('moves leadership to an updated member before restarting the leader', () => {
    let observed = withAllPods(healthyCluster(3, 0), {});
    observed = withPod(observed, 0, { templateHash: HASH_OLD });
    expect(steps(observed, 3)).toEqual([
      { type: 'MoveLeader', fromMemberId: memberId(0), toMemberId: memberId(1), toMemberName: 'demo-1', reason: 'rolling upgrade (leader last)' },
    ]);
  });

  it('restarts the old leader once it is a follower', () => {
    let observed = healthyCluster(3, 1);
    observed = withPod(observed, 0, { templateHash: HASH_OLD });
    expect(steps(observed, 3)).toEqual([{ type: 'DeletePod', podName: 'demo-0', reason: 'rolling upgrade (follower)' }]);
  });

  it('replaces broken outdated pods first, even before healthy followers and without quorum', () => {
    let observed = outdated(5, 4);
    observed = withPod(observed, 1, { ready: false });
    observed = withMember(observed, 1, { healthy: false });
    expect(steps(observed, 5)).toEqual([{ type: 'DeletePod', podName: 'demo-1', reason: 'outdated and not ready' }]);
    expect(steps({ ...observed, members: null }, 5)).toEqual([{ type: 'DeletePod', podName: 'demo-1', reason: 'outdated and not ready' }]);
  });

  it('does not restart a healthy pod while another member is down', () => {
    let observed = outdated(3);
    observed = withPod(observed, 1, { templateHash: 'bbbbbbbbbbbbbbbb', ready: false });
    observed = withMember(observed, 1, { healthy: false });
    expect(steps(observed, 3)).toEqual([]);
  });

  it('updates a single-member cluster in place', () => {
    expect(steps(outdated(1), 1)).toEqual([{ type: 'DeletePod', podName: 'demo-0', reason: 'rolling upgrade (only member)' }]);
  });

  it('finishes scale-in before upgrading (fewer pods to restart)', () => {
    expect(steps(outdated(5), 3)[0]).toMatchObject({ type: 'RemoveMember', memberId: memberId(4) });
  });

  it('finishes the upgrade before scaling out', () => {
    expect(steps(outdated(3), 5)[0]).toMatchObject({ type: 'DeletePod', podName: 'demo-2' });
  });

  it('waits when no leader is known', () => {
    const observed = { ...outdated(3), members: (outdated(3).members ?? []).map((m) => ({ ...m, isLeader: false })) };
    expect(steps(observed, 3)).toEqual([]);
  });
});

describe('plan: quorum arithmetic', () => {
  it('quorumSize', () => {
    expect([1, 2, 3, 4, 5, 7].map(quorumSize)).toEqual([1, 2, 2, 3, 3, 4]);
  });
});

describe('plan: whose data the PVCs hold (spec.persistence, foreign data)', () => {
  const fresh: ObservedCluster = { statefulSet: null, bootstrapState: null, pods: [], pvcs: [], members: null };

  it('labels an unlabelled PVC of its own StatefulSet with the cluster uid, and nothing else changes', () => {
    const observed: ObservedCluster = { ...healthyCluster(3), pvcs: [pvc(0), pvc(1, { clusterUid: undefined }), pvc(2)] };
    const result = plan(desired(3), observed);
    expect(result.actions).toEqual([
      { type: 'EnsureChildren', statefulSetReplicas: 3, clusterState: 'existing' },
      { type: 'EnsurePvcMetadata', pvcName: 'data-demo-1', deleteWithCluster: false, reason: 'record whose data it holds' },
    ]);
    expect(result.foreignData).toBeUndefined();
  });

  it('gives every PVC an owner reference when whenDeleted is Delete, and takes it away again for Retain', () => {
    expect(steps(healthyCluster(3), 3, { whenDeleted: 'Delete' }).map((a) => a.type === 'EnsurePvcMetadata' && a.deleteWithCluster ? a.pvcName : a.type))
      .toEqual(['data-demo-0', 'data-demo-1', 'data-demo-2']);
    const owned: ObservedCluster = { ...healthyCluster(3), pvcs: [0, 1, 2].map((i) => pvc(i, { ownedByCluster: true })) };
    expect(steps(owned, 3, { whenDeleted: 'Delete' })).toEqual([]);
    expect(steps(owned, 3, { whenDeleted: 'Retain' })).toEqual([0, 1, 2].map((i) => ({ type: 'EnsurePvcMetadata', pvcName: `data-demo-${i}`, deleteWithCluster: false, reason: 'persistence.whenDeleted is Retain' })));
  });

  it('does not touch a PVC that is going away or about to be retired', () => {
    const observed: ObservedCluster = { ...healthyCluster(3), pvcs: [pvc(0), pvc(1), pvc(2), pvc(3, { terminating: true, ownedByCluster: true }), pvc(4, { clusterUid: undefined })] };
    expect(steps(observed, 3)).toEqual([{ type: 'DeletePvc', pvcName: 'data-demo-4', reason: 'member removed on scale-in (retention policy Delete)' }]);
  });

  it('does nothing at all on a re-created cluster that finds PVCs of an earlier cluster, and says why', () => {
    const observed: ObservedCluster = { ...fresh, pvcs: [pvc(0, { clusterUid: 'uid-old' }), pvc(1, { clusterUid: 'uid-old' })] };
    const result = plan(desired(3), observed);
    expect(result.actions).toEqual([]);
    expect(result.progress?.reason).toBe('ForeignData');
    expect(result.foreignData?.pvcs).toEqual(['data-demo-0', 'data-demo-1']);
    expect(result.foreignData?.clusterUids).toEqual(['uid-old']);
    expect(result.foreignData?.message).toMatch(/data-demo-0, data-demo-1 .*\(uid uid-old\).*synod.dev\/adopt-data=true/);
  });

  it('treats unlabelled PVCs as foreign when no StatefulSet of this cluster exists (data from before the label)', () => {
    expect(plan(desired(3), { ...fresh, pvcs: [pvc(0, { clusterUid: undefined })] }).foreignData?.clusterUids).toEqual(['unlabelled']);
    const leftover: ObservedCluster = { ...healthyCluster(3), statefulSet: { replicas: 3, ownerUid: 'uid-old' }, pvcs: [pvc(0, { clusterUid: undefined })] };
    expect(plan(desired(3), leftover).foreignData?.pvcs).toEqual(['data-demo-0']);
  });

  it('never retires another cluster\'s PVC on scale-in, even with retention policy Delete', () => {
    const observed: ObservedCluster = { ...healthyCluster(3), pvcs: [pvc(0), pvc(1), pvc(2), pvc(3, { clusterUid: 'uid-old' })] };
    const result = plan(desired(3), observed);
    expect(result.actions).toEqual([]);
    expect(result.foreignData?.pvcs).toEqual(['data-demo-3']);
  });

  it('adopts the data when annotated: relabels the PVCs and creates the cluster', () => {
    const observed: ObservedCluster = { ...fresh, pvcs: [pvc(0, { clusterUid: 'uid-old' }), pvc(1, { clusterUid: undefined })] };
    const result = plan(desired(3, { adoptData: true }), observed);
    expect(result.foreignData).toBeUndefined();
    expect(result.actions).toEqual([
      { type: 'EnsureChildren', statefulSetReplicas: 3, clusterState: 'new' },
      { type: 'EnsurePvcMetadata', pvcName: 'data-demo-0', deleteWithCluster: false, reason: 'adopt data of SynodCluster uid-old' },
      { type: 'EnsurePvcMetadata', pvcName: 'data-demo-1', deleteWithCluster: false, reason: 'record whose data it holds' },
    ]);
  });

  it('ignores PVC ownership when the cluster uid is not known', () => {
    expect(plan(desired(3, { uid: undefined }), { ...fresh, pvcs: [pvc(0, { clusterUid: 'uid-old' })] }).actions[0]?.type).toBe('EnsureChildren');
  });
});

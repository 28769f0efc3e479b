// Test helper: builds observed cluster states for the planner tests (a healthy n-member cluster, then
// tweaks: a member down, a learner in flight, outdated pods, stale PVCs ...). Not used at run time.

import type { DesiredCluster, ObservedCluster, ObservedMember, ObservedPod, ObservedPvc } from './model.ts';
import { peerUrl, podName, pvcName } from './naming.ts';

export const CLUSTER = 'demo';
export const NAMESPACE = 'prod';
export const HASH_OLD = 'aaaaaaaaaaaaaaaa';
export const HASH_NEW = 'bbbbbbbbbbbbbbbb';
export const CLUSTER_UID = 'uid-demo';

export function desired(replicas: number, overrides: Partial<DesiredCluster> = {}): DesiredCluster {
  return { name: CLUSTER, namespace: NAMESPACE, replicas, version: '0.2.0', templateHash: HASH_NEW, retentionPolicy: 'Delete', uid: CLUSTER_UID, whenDeleted: 'Retain', adoptData: false, ...overrides };
}

export function memberId(ordinal: number): string {
  return (0x1000 + ordinal).toString(16);
}

export function member(ordinal: number, overrides: Partial<ObservedMember> = {}): ObservedMember {
  return {
    id: memberId(ordinal),
    name: podName(CLUSTER, ordinal),
    peerUrl: peerUrl(CLUSTER, NAMESPACE, ordinal),
    ordinal,
    isLearner: false,
    healthy: true,
    isLeader: false,
    appliedIndex: 500,
    ...overrides,
  };
}

export function pod(ordinal: number, overrides: Partial<ObservedPod> = {}): ObservedPod {
  return { ordinal, name: podName(CLUSTER, ordinal), ready: true, terminating: false, templateHash: HASH_NEW, version: '0.2.0', ...overrides };
}

export function pvc(ordinal: number, overrides: Partial<ObservedPvc> = {}): ObservedPvc {
  return { ordinal, name: pvcName(CLUSTER, ordinal), terminating: false, clusterUid: CLUSTER_UID, ownedByCluster: false, ...overrides };
}

/** A converged, healthy cluster of `size` members, the leader at `leaderOrdinal`. */
export function healthyCluster(size: number, leaderOrdinal = 0): ObservedCluster {
  const ordinals = Array.from({ length: size }, (_, i) => i);
  return {
    statefulSet: { replicas: size, ownerUid: CLUSTER_UID },
    bootstrapState: 'existing',
    pods: ordinals.map((i) => pod(i)),
    pvcs: ordinals.map((i) => pvc(i)),
    members: ordinals.map((i) => member(i, { isLeader: i === leaderOrdinal })),
  };
}

/** Returns a copy with pod/member `ordinal` replaced by the overrides. */
export function withPod(observed: ObservedCluster, ordinal: number, overrides: Partial<ObservedPod> | null): ObservedCluster {
  const others = observed.pods.filter((p) => p.ordinal !== ordinal);
  const current = observed.pods.find((p) => p.ordinal === ordinal) ?? pod(ordinal);
  return { ...observed, pods: overrides === null ? others : [...others, { ...current, ...overrides }].sort((a, b) => a.ordinal - b.ordinal) };
}

export function withMember(observed: ObservedCluster, ordinal: number, overrides: Partial<ObservedMember> | null): ObservedCluster {
  const members = observed.members ?? [];
  const others = members.filter((m) => m.ordinal !== ordinal);
  const current = members.find((m) => m.ordinal === ordinal) ?? member(ordinal);
  return { ...observed, members: overrides === null ? others : [...others, { ...current, ...overrides }] };
}

export function withAllPods(observed: ObservedCluster, overrides: Partial<ObservedPod>): ObservedCluster {
  return { ...observed, pods: observed.pods.map((p) => ({ ...p, ...overrides })) };
}

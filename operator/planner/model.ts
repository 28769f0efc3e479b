// What the planner sees and what it decides: the desired cluster (from the SynodCluster spec), the
// observed cluster (Kubernetes objects and the etcd membership, read fresh on every reconcile), and
// the actions it may ask for. Plain data only, so plan() stays a pure function.

import type { PvcRetentionPolicy } from '../api/types.ts';

export interface DesiredCluster {
  name: string;
  namespace: string;
  replicas: number;
  version: string;
  /** Hash of the pod template the StatefulSet is given now (see render/template-hash.ts). */
  templateHash: string;
  retentionPolicy: PvcRetentionPolicy;
  /**
   * uid of the SynodCluster. When set, the planner tracks whose data each PVC holds (label
   * synod.dev/cluster-uid) and refuses to start on another cluster's; unset, PVC ownership is not
   * looked at (planner tests that do not model it).
   */
  uid?: string;
  /** spec.persistence.whenDeleted: Delete gives each PVC an owner reference to the SynodCluster. */
  whenDeleted?: PvcRetentionPolicy;
  /** The synod.dev/adopt-data=true annotation: take over PVCs another SynodCluster left behind. */
  adoptData?: boolean;
  /** The peer port serves TLS (spec.tls): new members are added with https:// peer URLs. */
  peerTls?: boolean;
  /** spec.shards / spec.replicationFactor; absent or shards 1: one Raft group (no placement to follow). */
  sharding?: DesiredSharding;
  /** spec.zones.topologyKey when spec.zones is set: server pods get their node's zone before they start. */
  zoneTopologyKey?: string;
}

export interface ObservedPod {
  ordinal: number;
  name: string;
  ready: boolean;
  /** Has a deletionTimestamp: going away, not to be counted or touched. */
  terminating: boolean;
  /** The pod's synod.dev/template-hash annotation ('' when missing). */
  templateHash: string;
  version: string;
  /** spec.nodeName once scheduled (zones). */
  nodeName?: string;
  /** The pod's synod.dev/zone annotation, once the operator wrote it (zones). */
  zone?: string;
}

export interface ObservedPvc {
  ordinal: number;
  name: string;
  terminating: boolean;
  /** The PVC's synod.dev/cluster-uid label: whose data it holds (undefined: not labelled yet). */
  clusterUid?: string;
  /** Whether it has an owner reference to this SynodCluster (garbage-collected with it). */
  ownedByCluster?: boolean;
}

export interface ObservedMember {
  /** etcd member id, hex (as etcdctl prints it). */
  id: string;
  /** Empty for a learner that has been added but has not started yet. */
  name: string;
  peerUrl: string;
  /** The StatefulSet ordinal whose stable peer URL this member has; null for a member that is not ours. */
  ordinal: number | null;
  isLearner: boolean;
  /** Maintenance.Status answered on this member's client URL. */
  healthy: boolean;
  isLeader: boolean;
  /** raft_applied_index from Maintenance.Status (0 when unknown). */
  appliedIndex: number;
}

export interface ObservedStatefulSet {
  replicas: number;
  /** uid of its controller owner; undefined when unknown. Another uid: a deleted cluster's leftover. */
  ownerUid?: string;
}

export interface ObservedCluster {
  statefulSet: ObservedStatefulSet | null;
  /** The ConfigMap's initial-cluster-state: 'new' while bootstrapping; null when the ConfigMap is missing. */
  bootstrapState: 'new' | 'existing' | null;
  pods: readonly ObservedPod[];
  pvcs: readonly ObservedPvc[];
  /** null when no member answered Cluster.MemberList. */
  members: readonly ObservedMember[] | null;
  /**
   * The placement of a sharded cluster (GetPlacement on the members); null when no member answered it,
   * absent for a one-group cluster.
   */
  placement?: ObservedPlacement | null;
  /** With spec.zones: the zone label of each node a pod waiting for its zone runs on ('' when the node has none). */
  nodeZones?: Readonly<Record<string, string>>;
}

export type Action =
  | { type: 'EnsureChildren'; statefulSetReplicas: number; clusterState: 'new' | 'existing' }
  | { type: 'AddLearner'; ordinal: number; memberName: string; peerUrl: string }
  | { type: 'PromoteLearner'; memberId: string; memberName: string }
  | { type: 'MoveLeader'; fromMemberId: string; toMemberId: string; toMemberName: string; reason: string }
  | { type: 'RemoveMember'; memberId: string; memberName: string; reason: string }
  | { type: 'ScaleStatefulSet'; replicas: number; reason: string }
  | { type: 'DeletePod'; podName: string; reason: string }
  | { type: 'DeletePvc'; pvcName: string; reason: string }
  | { type: 'EnsurePvcMetadata'; pvcName: string; deleteWithCluster: boolean; reason: string }
  | ShardingAction;

export type ActionType = Action['type'];

/** Why the cluster is not (yet) at the desired state; drives the Progressing condition. */
export interface Progress {
  reason: string;
  message: string;
}

/** PVCs holding the data of another (earlier) SynodCluster of the same name. */
export interface ForeignData {
  pvcs: string[];
  /** Their synod.dev/cluster-uid labels ('unlabelled' for PVCs from before the label existed). */
  clusterUids: string[];
  message: string;
}

export interface Plan {
  /** To run in order; the reconciler stops at the first failure and requeues with backoff. */
  actions: Action[];
  /** null when the cluster is converged. */
  progress: Progress | null;
  /** Look again after this long even without an event (the observed state includes etcd, which has no watch). */
  requeueAfterMs: number;
  /** Set when PVCs of another SynodCluster were found and not adopted: nothing else is done. */
  foreignData?: ForeignData;
}

// ---- Sharding (issue 16): what the planner sees of a sharded cluster's placement and may ask of it ----

export interface DesiredSharding {
  /** A power of two; 1 is one Raft group. */
  shards: number;
  /** Replicas per shard (0: every member hosts every shard, nothing is drained). */
  replicationFactor: number;
}

export interface ObservedShard {
  id: number;
  /** Member ids (hex) of its voting replicas, and of its learners (a move in flight). */
  voters: readonly string[];
  learners: readonly string[];
  /** '' when no leader is known. */
  leader: string;
  /** Applied revision of each replica, as the member hosting it reports it (missing: that member did not answer). */
  revisions: Readonly<Record<string, number>>;
}

export interface ObservedPlacement {
  shards: readonly ObservedShard[];
  movesPending: number;
  movesInProgress: number;
  /** The member leading the metadata group (hex); '' when unknown. */
  metadataLeader: string;
}

export type ShardingAction =
  /** Placement/Drain: the placer moves every replica off the member (repeated until none is left). */
  | { type: 'DrainMember'; memberId: string; memberName: string; replicasRemaining: number }
  /** Placement/TransferLeaderships on the member: its shard and metadata leaderships go to other voters. */
  | { type: 'TransferLeaderships'; memberId: string; memberName: string; reason: string }
  /** Placement/Drain with cancel: a wanted member left marked draining (a scale-in called off) takes replicas again. */
  | { type: 'UndrainMember'; memberId: string; memberName: string }
  /** Writes the pod's synod.dev/zone annotation (its node's zone, NO_ZONE when the node has none) for its entrypoint. */
  | { type: 'AnnotatePodZone'; podName: string; zone: string };

/** The synod.dev/zone value of a pod whose node has no zone label: no label value can be '-', so it is never a zone. */
export const NO_ZONE = '-';

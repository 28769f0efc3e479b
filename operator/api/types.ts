// The SynodCluster custom resource (group synod.dev, version v1alpha1) as TypeScript types, plus
// the names every part of the operator shares: API group, labels, annotations, field manager.
// The CRD's OpenAPI schema in crds/ is the source of truth; these types mirror it.

export const GROUP = 'synod.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'SynodCluster';
export const PLURAL = 'synodclusters';

/** The field manager of every server-side apply the operator makes. */
export const FIELD_MANAGER = 'synod-operator';

/** Default server image repository; the tag is spec.version. */
export const DEFAULT_IMAGE_REPOSITORY = 'ghcr.io/synod-dev/synod';

export const LABEL_CLUSTER = 'synod.dev/cluster';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_VERSION = 'synod.dev/version';
/** Hash of the rendered pod template; a pod whose annotation differs from the desired one is outdated. */
export const ANNOTATION_TEMPLATE_HASH = 'synod.dev/template-hash';

/** uid of the SynodCluster whose member wrote the data on a PVC; set by the operator at first sight. */
export const LABEL_CLUSTER_UID = 'synod.dev/cluster-uid';
/**
 * On a SynodCluster: "true" adopts PVCs left by an earlier SynodCluster of the same name (their data,
 * member ids and cluster id) instead of stopping at DataFromAnotherCluster.
 */
export const ANNOTATION_ADOPT_DATA = 'synod.dev/adopt-data';

/** Ports inside server pods (etcd's defaults). */
export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;
export const METRICS_PORT = 2381;

export type PvcRetentionPolicy = 'Delete' | 'Retain';

export interface StorageSpec {
  size: string;
  storageClassName?: string;
  /** What happens to a removed member's PersistentVolumeClaim after scale-in. */
  retentionPolicyOnScaleIn: PvcRetentionPolicy;
}

/** What happens to the members' PVCs when the SynodCluster is deleted (as a StatefulSet's whenDeleted). */
export interface PersistenceSpec {
  whenDeleted: PvcRetentionPolicy;
}

export interface ResourceRequirements {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

/** Fields merged into the server pods' template (labels/annotations merged, the rest replaced). */
export interface PodTemplateOverrides {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  nodeSelector?: Record<string, string>;
  tolerations?: readonly Record<string, unknown>[];
  affinity?: Record<string, unknown>;
  priorityClassName?: string;
  env?: readonly { name: string; value: string }[];
}

export interface SynodClusterSpec extends ShardingSpec {
  replicas: number;
  version: string;
  /** Full image reference; overrides `${DEFAULT_IMAGE_REPOSITORY}:${version}`. */
  image?: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  storage: StorageSpec;
  persistence: PersistenceSpec;
  resources?: ResourceRequirements;
  podTemplate?: PodTemplateOverrides;
}

export type ConditionType = 'Available' | 'Progressing' | 'Degraded' | 'Upgrading' | 'DataFromAnotherCluster' | ShardingConditionType;
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: ConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
}

export type MemberRole = 'leader' | 'follower' | 'learner' | 'unknown';

export interface MemberStatus {
  name: string;
  /** etcd member id as a hex string (etcdctl's notation). */
  id: string;
  role: MemberRole;
  ready: boolean;
  version: string;
}

export interface SynodClusterStatus extends ShardingStatus {
  observedGeneration: number;
  replicas: number;
  readyReplicas: number;
  /** Label selector of the server pods, for the scale subresource. */
  selector: string;
  leader: string;
  currentVersion: string;
  /** "ready/desired", shown as a printer column. */
  members: MemberStatus[];
  memberSummary: string;
  conditions: Condition[];
}

export interface ObjectMeta {
  name: string;
  namespace: string;
  uid: string;
  generation: number;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string;
}

export interface SynodCluster {
  apiVersion: typeof API_VERSION;
  kind: typeof KIND;
  metadata: ObjectMeta;
  spec: SynodClusterSpec;
  status?: Partial<SynodClusterStatus>;
}

// ---- Sharding (issue 16): spec.shards, spec.replicationFactor, spec.zones; status.shards; Rebalancing ----
// Kept in one block (TLS and auth live in their own) so the two halves of the issue merge cleanly.

/** The node label whose value a server pod passes as `--zone` and the spread constraint spreads over. */
export const ZONE_TOPOLOGY_KEY = 'topology.kubernetes.io/zone';
/**
 * On a server pod: the zone of the node it was scheduled to, written by the operator (which reads the
 * Node) and read by the pod's entrypoint through a downward API volume before it starts the server.
 */
export const ANNOTATION_ZONE = 'synod.dev/zone';

/** How the server pods spread over zones (spec.zones); absent: no spreading, no `--zone`. */
export interface ZoneSpreadSpec {
  /** Node label naming a node's zone; its value is each member's `--zone`. */
  topologyKey: string;
  /** topologySpreadConstraints' maxSkew: at most this many more pods in one zone than in another. */
  maxSkew: number;
  whenUnsatisfiable: 'DoNotSchedule' | 'ScheduleAnyway';
  /** When given, server pods run only on nodes in these zones (required node affinity). */
  names?: string[];
}

export interface ShardingSpec {
  /** Shard count: a power of two, 1..1024, fixed at creation (`synod server --shards`). 1: one Raft group. */
  shards: number;
  /**
   * Replicas per shard when shards > 1 (`--replication-factor`), fixed at creation; 0 puts every shard
   * on every member (nothing to drain on scale-in).
   */
  replicationFactor: number;
  zones?: ZoneSpreadSpec;
}

/** status.shards: how the shards are doing, from the members' placement views (GetPlacement). */
export interface ShardsStatus {
  total: number;
  /** Shards with a leader and every wanted replica on a healthy member, caught up. */
  healthy: number;
  /** Shards with fewer replicas on healthy members than they should have. */
  underReplicated: number;
  movesPending: number;
  movesInProgress: number;
  /** "healthy/total", shown as the SHARDS printer column. */
  summary: string;
}

export interface ShardingStatus {
  shards?: ShardsStatus;
}

export type ShardingConditionType = 'Rebalancing';

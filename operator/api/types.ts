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
  /** TLS for clients and peers (see TlsSpec below). Which ports use TLS is fixed at creation. */
  tls?: TlsSpec;
  /** etcd-style authentication, enabled by the operator after bootstrap (see AuthSpec below). */
  auth?: AuthSpec;
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

// ---- TLS and auth (spec.tls, spec.auth) ----

/** A kubernetes.io/tls Secret: tls.crt, tls.key and ca.crt (the CA bundle peers are checked against). */
export const SECRET_KEY_CERT = 'tls.crt';
export const SECRET_KEY_KEY = 'tls.key';
export const SECRET_KEY_CA = 'ca.crt';

export interface TlsClientSpec {
  /** Secret with the certificate clients see; required unless tls.generate. */
  secretName?: string;
  /** Require clients to present a certificate signed by the Secret's ca.crt (etcd's --client-cert-auth). */
  clientCertAuth: boolean;
}

export interface TlsPeerSpec {
  /** Secret with the members' peer certificate (served and presented when dialling: server and client usage). */
  secretName?: string;
}

export interface TlsSpec {
  /** The operator generates a CA and the certificates into Secrets it owns, and rotates them before expiry. */
  generate: boolean;
  /** Lifetime of the generated leaf certificates (default 90); they are renewed when a third of it is left. */
  certificateValidityDays?: number;
  /** TLS on the client port: always with generate; otherwise when client.secretName is set. */
  client?: TlsClientSpec;
  /** TLS on the peer port: always with generate; otherwise when peer.secretName is set. */
  peer?: TlsPeerSpec;
  /**
   * Secret with the client certificate the operator presents (tls.crt, tls.key) when
   * client.clientCertAuth is on; the operator makes its own with generate.
   */
  operatorClientSecretName?: string;
}

export interface RootSecretRef {
  name: string;
  /** The key holding the root user's password (default "password"). */
  passwordKey: string;
}

export interface AuthSpec {
  /** true: the operator enables auth once the cluster is up; false: it disables it (with the same credentials). */
  enabled: boolean;
  /** The root user's password; the user is always `root` (etcd's auth enable needs root with the root role). */
  rootSecret: RootSecretRef;
}

/** Where server pods mount the client and peer TLS Secrets. */
export const TLS_CLIENT_DIR = '/etc/synod/tls/client';
export const TLS_PEER_DIR = '/etc/synod/tls/peer';
/** Pod environment telling the entrypoint which ports use TLS (values "true"/absent). */
export const ENV_CLIENT_TLS = 'SYNOD_CLIENT_TLS';
export const ENV_PEER_TLS = 'SYNOD_PEER_TLS';
export const ENV_CLIENT_CERT_AUTH = 'SYNOD_CLIENT_CERT_AUTH';

/** Names of the Secrets the operator generates for spec.tls.generate. */
export function generatedSecretNames(cluster: string): { ca: string; server: string; peer: string; operatorClient: string } {
  return { ca: `${cluster}-tls-ca`, server: `${cluster}-tls-server`, peer: `${cluster}-tls-peer`, operatorClient: `${cluster}-tls-operator` };
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

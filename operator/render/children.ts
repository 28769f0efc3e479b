// Renders the children of a SynodCluster as plain Kubernetes objects for server-side apply: the
// ServiceAccount, the headless peer Service (stable peer DNS names), the client Service, the
// ConfigMap the server pods' entrypoint reads, the StatefulSet (OnDelete: the operator owns pod
// deletion order) and the PodDisruptionBudget (maxUnavailable 1). Every child carries an owner reference.

import { createHash } from 'node:crypto';
import { clientCertAuthOn, clientTlsOn, peerTlsOn, serverImage } from '../api/spec-defaults.ts';
import type { SynodClusterSpec } from '../api/types.ts';
import {
  ANNOTATION_TEMPLATE_HASH, ANNOTATION_ZONE, API_VERSION, CLIENT_PORT, ENV_CLIENT_CERT_AUTH, ENV_CLIENT_TLS, ENV_PEER_TLS, FIELD_MANAGER, KIND,
  LABEL_CLUSTER, LABEL_CLUSTER_UID, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_NAME, LABEL_VERSION, METRICS_PORT, PEER_PORT, TLS_CLIENT_DIR,
  TLS_PEER_DIR, generatedSecretNames,
} from '../api/types.ts';
import { DATA_VOLUME, clientServiceName, peerServiceName, peerUrl } from '../planner/naming.ts';

/** Where the server keeps its data inside the pod. */
export const DATA_DIR = '/var/lib/synod';
export const SERVER_UID = 10001;

export interface ClusterRef {
  name: string;
  namespace: string;
  uid: string;
}

/** A Kubernetes object as sent to server-side apply. */
export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    labels: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences: OwnerReference[];
  };
  [field: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
}

export interface RenderOptions {
  statefulSetReplicas: number;
  clusterState: 'new' | 'existing';
}

export function configMapName(cluster: string): string {
  return `${cluster}-config`;
}

export function selectorLabels(cluster: string): Record<string, string> {
  return { [LABEL_NAME]: 'synod', [LABEL_CLUSTER]: cluster };
}

export function selectorString(cluster: string): string {
  return Object.entries(selectorLabels(cluster)).map(([k, v]) => `${k}=${v}`).join(',');
}

export function commonLabels(cluster: string): Record<string, string> {
  return { ...selectorLabels(cluster), 'app.kubernetes.io/instance': cluster, [LABEL_MANAGED_BY]: FIELD_MANAGER };
}

export function ownerReference(ref: ClusterRef): OwnerReference {
  return { apiVersion: API_VERSION, kind: KIND, name: ref.name, uid: ref.uid, controller: true, blockOwnerDeletion: true };
}

/** Every child, in the order they are applied (the StatefulSet after what its pods need). */
export function renderChildren(ref: ClusterRef, spec: SynodClusterSpec, options: RenderOptions): ManifestObject[] {
  return [
    renderServiceAccount(ref),
    renderPeerService(ref),
    renderClientService(ref),
    renderConfigMap(ref, options, peerTlsOn(spec.tls)),
    renderStatefulSet(ref, spec, options.statefulSetReplicas),
    renderPodDisruptionBudget(ref),
  ];
}

function meta(ref: ClusterRef, name: string, component: string): ManifestObject['metadata'] {
  return { name, namespace: ref.namespace, labels: { ...commonLabels(ref.name), [LABEL_COMPONENT]: component }, ownerReferences: [ownerReference(ref)] };
}

export function renderServiceAccount(ref: ClusterRef): ManifestObject {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(ref, ref.name, 'server'), automountServiceAccountToken: false };
}

export function renderPeerService(ref: ClusterRef): ManifestObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(ref, peerServiceName(ref.name), 'peer'),
    spec: {
      clusterIP: 'None',
      // Peers must resolve each other before they are ready: a bootstrapping member is never ready alone.
      publishNotReadyAddresses: true,
      selector: selectorLabels(ref.name),
      ports: [
        { name: 'peer', port: PEER_PORT, targetPort: PEER_PORT, protocol: 'TCP' },
        { name: 'client', port: CLIENT_PORT, targetPort: CLIENT_PORT, protocol: 'TCP' },
        { name: 'metrics', port: METRICS_PORT, targetPort: METRICS_PORT, protocol: 'TCP' },
      ],
    },
  };
}

export function renderClientService(ref: ClusterRef): ManifestObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(ref, clientServiceName(ref.name), 'client'),
    spec: {
      type: 'ClusterIP',
      selector: selectorLabels(ref.name),
      ports: [{ name: 'client', port: CLIENT_PORT, targetPort: CLIENT_PORT, protocol: 'TCP' }],
    },
  };
}

/** The entrypoint's inputs: bootstrap (state new, fixed initial cluster) or join (state existing, MemberList). */
export function renderConfigMap(ref: ClusterRef, options: RenderOptions, peerTls = false): ManifestObject {
  const initialCluster = options.clusterState === 'new'
    ? Array.from({ length: options.statefulSetReplicas }, (_, i) => `${ref.name}-${i}=${peerUrl(ref.name, ref.namespace, i, peerTls)}`).join(',')
    : '';
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(ref, configMapName(ref.name), 'config'),
    data: {
      SYNOD_CLUSTER_NAME: ref.name,
      SYNOD_PEER_SERVICE: peerServiceName(ref.name),
      SYNOD_CLIENT_SERVICE: clientServiceName(ref.name),
      SYNOD_INITIAL_CLUSTER_STATE: options.clusterState,
      SYNOD_INITIAL_CLUSTER: initialCluster,
      SYNOD_INITIAL_CLUSTER_TOKEN: `${ref.name}-${ref.uid}`,
      SYNOD_DATA_DIR: DATA_DIR,
    },
  };
}

/** The pod template without its hash annotation; the hash is computed over exactly this. */
export function renderPodTemplate(ref: ClusterRef, spec: SynodClusterSpec): Record<string, unknown> {
  const overrides = spec.podTemplate ?? {};
  const podSpec: Record<string, unknown> = {
    serviceAccountName: ref.name,
    automountServiceAccountToken: false,
    terminationGracePeriodSeconds: 30,
    securityContext: { runAsNonRoot: true, runAsUser: SERVER_UID, runAsGroup: SERVER_UID, fsGroup: SERVER_UID, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [
      {
        name: 'synod',
        image: serverImage(spec),
        imagePullPolicy: spec.imagePullPolicy ?? 'IfNotPresent',
        env: [
          { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          ...(overrides.env ?? []).map((e) => ({ name: e.name, value: e.value })),
        ],
        envFrom: [{ configMapRef: { name: configMapName(ref.name) } }],
        ports: [
          { name: 'client', containerPort: CLIENT_PORT, protocol: 'TCP' },
          { name: 'peer', containerPort: PEER_PORT, protocol: 'TCP' },
          { name: 'metrics', containerPort: METRICS_PORT, protocol: 'TCP' },
        ],
        readinessProbe: { httpGet: { path: '/readyz', port: METRICS_PORT }, periodSeconds: 5, failureThreshold: 3 },
        livenessProbe: { httpGet: { path: '/healthz', port: METRICS_PORT }, initialDelaySeconds: 10, periodSeconds: 10, failureThreshold: 6 },
        resources: spec.resources ?? { requests: { cpu: '100m', memory: '128Mi' } },
        securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
        volumeMounts: [{ name: DATA_VOLUME, mountPath: DATA_DIR }, { name: 'tmp', mountPath: '/tmp' }],
      },
    ],
    volumes: [{ name: 'tmp', emptyDir: {} }],
  };
  addTls(podSpec, ref, spec);
  if (overrides.nodeSelector !== undefined) podSpec['nodeSelector'] = overrides.nodeSelector;
  if (overrides.tolerations !== undefined) podSpec['tolerations'] = overrides.tolerations;
  if (overrides.affinity !== undefined) podSpec['affinity'] = overrides.affinity;
  addSharding(ref, spec, podSpec);
  if (overrides.priorityClassName !== undefined) podSpec['priorityClassName'] = overrides.priorityClassName;
  return {
    metadata: {
      labels: { ...(overrides.labels ?? {}), ...commonLabels(ref.name), [LABEL_COMPONENT]: 'server', [LABEL_VERSION]: spec.version },
      annotations: { ...(overrides.annotations ?? {}) },
    },
    spec: podSpec,
  };
}

// ---- TLS (spec.tls): Secret volumes and the entrypoint's switches ----

/** The Secrets the pods mount for the client and peer ports (generated ones, or those named in the spec). */
export function tlsSecretNames(cluster: string, spec: SynodClusterSpec): { client: string | null; peer: string | null } {
  const generated = generatedSecretNames(cluster);
  return {
    client: !clientTlsOn(spec.tls) ? null : spec.tls?.generate === true ? generated.server : spec.tls?.client?.secretName ?? null,
    peer: !peerTlsOn(spec.tls) ? null : spec.tls?.generate === true ? generated.peer : spec.tls?.peer?.secretName ?? null,
  };
}

/**
 * Mounts the TLS Secrets (whole, never with subPath: kubelet then swaps renewed files in place and the
 * server reloads them) and tells the entrypoint which ports use TLS. Nothing changes without spec.tls,
 * so clusters without TLS keep their template hash (no roll on an operator upgrade). The probes stay
 * HTTP on the metrics port, which carries only health and metrics.
 */
function addTls(podSpec: Record<string, unknown>, ref: ClusterRef, spec: SynodClusterSpec): void {
  const secrets = tlsSecretNames(ref.name, spec);
  const container = (podSpec['containers'] as Record<string, unknown>[])[0];
  const env = container['env'] as { name: string; value?: string }[];
  const mounts = container['volumeMounts'] as { name: string; mountPath: string; readOnly?: boolean }[];
  const volumes = podSpec['volumes'] as Record<string, unknown>[];
  // 0440 with the pod's fsGroup: readable by the server's group only.
  const secretVolume = (name: string, secretName: string): Record<string, unknown> => ({ name, secret: { secretName, defaultMode: 0o440 } });
  if (secrets.client !== null) {
    env.push({ name: ENV_CLIENT_TLS, value: 'true' });
    if (clientCertAuthOn(spec.tls)) env.push({ name: ENV_CLIENT_CERT_AUTH, value: 'true' });
    mounts.push({ name: 'tls-client', mountPath: TLS_CLIENT_DIR, readOnly: true });
    volumes.push(secretVolume('tls-client', secrets.client));
  }
  if (secrets.peer !== null) {
    env.push({ name: ENV_PEER_TLS, value: 'true' });
    mounts.push({ name: 'tls-peer', mountPath: TLS_PEER_DIR, readOnly: true });
    volumes.push(secretVolume('tls-peer', secrets.peer));
  }
}

// ---- Sharding (issue 16): --shards / --replication-factor, zones ----

/** Where a server pod's entrypoint reads the zone the operator wrote on it (downward API volume). */
export const PODINFO_DIR = '/etc/synod/podinfo';
export const ZONE_FILE = `${PODINFO_DIR}/zone`;

/**
 * The pod spec's sharding parts. Only when asked for (shards > 1, spec.zones), so the pod template of a
 * one-group cluster without zones, and so its hash, is what it was before sharding existed: upgrading
 * the operator restarts no pod.
 */
function addSharding(ref: ClusterRef, spec: SynodClusterSpec, podSpec: Record<string, unknown>): void {
  const container = (podSpec['containers'] as Array<Record<string, unknown>>)[0];
  const env = container['env'] as Array<Record<string, unknown>>;
  if (spec.shards > 1) {
    env.push({ name: 'SYNOD_SHARDS', value: String(spec.shards) }, { name: 'SYNOD_REPLICATION_FACTOR', value: String(spec.replicationFactor) });
  }
  const zones = spec.zones;
  if (zones === undefined) return;
  podSpec['topologySpreadConstraints'] = [
    { maxSkew: zones.maxSkew, topologyKey: zones.topologyKey, whenUnsatisfiable: zones.whenUnsatisfiable, labelSelector: { matchLabels: selectorLabels(ref.name) } },
  ];
  if (zones.names !== undefined && zones.names.length > 0) {
    const affinity = (podSpec['affinity'] ?? {}) as Record<string, unknown>;
    // A nodeAffinity of the user's own wins: it may already say where the pods go.
    podSpec['affinity'] = {
      ...affinity,
      nodeAffinity: affinity['nodeAffinity'] ?? {
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: zones.topologyKey, operator: 'In', values: [...zones.names] }] }] },
      },
    };
  }
  // The zone comes from the node, which a pod cannot read without API credentials of its own: the
  // operator writes it on the pod (annotation synod.dev/zone), the kubelet updates this file, and the
  // entrypoint waits for it before starting the server with --zone.
  env.push({ name: 'SYNOD_ZONE_FILE', value: ZONE_FILE });
  (container['volumeMounts'] as Array<Record<string, unknown>>).push({ name: 'podinfo', mountPath: PODINFO_DIR, readOnly: true });
  (podSpec['volumes'] as Array<Record<string, unknown>>).push({
    name: 'podinfo',
    downwardAPI: { items: [{ path: 'zone', fieldRef: { fieldPath: `metadata.annotations['${ANNOTATION_ZONE}']` } }] },
  });
}

/**
 * The operator's annotation on a server pod: its node's zone, applied on its own (server-side apply
 * merges it into the pod the StatefulSet controller created, as renderPvcMetadata does for PVCs).
 */
export function renderPodZone(ref: ClusterRef, podName: string, zone: string): ManifestObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: podName, namespace: ref.namespace, labels: {}, annotations: { [ANNOTATION_ZONE]: zone }, ownerReferences: [] } };
}

/** sha256 of the canonical JSON of the pod template, 16 hex digits. */
export function templateHash(template: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(template)).digest('hex').slice(0, 16);
}

export function desiredTemplateHash(ref: ClusterRef, spec: SynodClusterSpec): string {
  return templateHash(renderPodTemplate(ref, spec));
}

export function renderStatefulSet(ref: ClusterRef, spec: SynodClusterSpec, replicas: number): ManifestObject {
  const template = renderPodTemplate(ref, spec);
  const hash = templateHash(template);
  const templateMeta = template['metadata'] as { labels: Record<string, string>; annotations: Record<string, string> };
  const volumeClaimSpec: Record<string, unknown> = {
    accessModes: ['ReadWriteOnce'],
    resources: { requests: { storage: spec.storage.size } },
  };
  if (spec.storage.storageClassName !== undefined) volumeClaimSpec['storageClassName'] = spec.storage.storageClassName;
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { ...meta(ref, ref.name, 'server'), annotations: { [ANNOTATION_TEMPLATE_HASH]: hash } },
    spec: {
      replicas,
      serviceName: peerServiceName(ref.name),
      // Every initial member must start together to form a quorum; the operator orders everything else.
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'OnDelete' },
      // No persistentVolumeClaimRetentionPolicy: a 1.26 server drops it (StatefulSetAutoDeletePVC is
      // alpha there) after recording it as ours, so every apply would write. Its default (Retain,
      // Retain) is what we want anyway: the operator retires PVCs itself, after MemberRemove, per
      // spec.storage.retentionPolicyOnScaleIn, and on deletion per spec.persistence (renderPvcMetadata).
      selector: { matchLabels: selectorLabels(ref.name) },
      template: { metadata: { labels: templateMeta.labels, annotations: { ...templateMeta.annotations, [ANNOTATION_TEMPLATE_HASH]: hash } }, spec: template['spec'] },
      volumeClaimTemplates: [{ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: DATA_VOLUME, labels: selectorLabels(ref.name) }, spec: volumeClaimSpec }],
    },
  };
}

/**
 * The metadata the operator owns on a member's PVC, applied on its own (server-side apply merges it
 * into the PVC the StatefulSet controller created): the uid of the SynodCluster the data belongs to,
 * and, when spec.persistence.whenDeleted is Delete, an owner reference so the garbage collector deletes
 * the PVC with the SynodCluster. With Retain the reference is left out, and apply removes the one
 * applied before. Not a controller reference (the StatefulSet controller manages those on PVCs).
 */
export function renderPvcMetadata(ref: ClusterRef, pvcName: string, deleteWithCluster: boolean): ManifestObject {
  return {
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: {
      name: pvcName,
      namespace: ref.namespace,
      labels: { [LABEL_CLUSTER_UID]: ref.uid },
      ownerReferences: deleteWithCluster ? [{ ...ownerReference(ref), controller: false, blockOwnerDeletion: false }] : [],
    },
  };
}

export function renderPodDisruptionBudget(ref: ClusterRef): ManifestObject {
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta(ref, ref.name, 'server'),
    spec: { maxUnavailable: 1, selector: { matchLabels: selectorLabels(ref.name) } },
  };
}

/** JSON with object keys sorted at every level: equal values give equal strings. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

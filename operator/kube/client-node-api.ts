// KubeApi over a real API server with @kubernetes/client-node: typed clients for reads, deletes,
// events and leases; server-side apply (application/apply-patch+yaml, field manager synod-operator,
// force) for children through KubernetesObjectApi and for the status subresource through
// CustomObjectsApi. Every request this module makes is exercised through client-node's real
// serialization and HTTP path against a recording stand-in API server in client-node-api.wire.test.ts.

import type {
  CoreV1Event, KubeConfig, KubernetesObject, V1ConfigMap, V1Lease, V1PersistentVolumeClaim, V1Pod, V1Secret, V1StatefulSet,
} from '@kubernetes/client-node';
import {
  AppsV1Api, CoordinationV1Api, CoreV1Api, CustomObjectsApi, KubernetesObjectApi, PatchStrategy, setHeaderOptions,
} from '@kubernetes/client-node';
import { withDefaults } from '../api/spec-defaults.ts';
import type { SynodCluster, SynodClusterStatus } from '../api/types.ts';
import { API_VERSION, FIELD_MANAGER, GROUP, KIND, PLURAL, VERSION } from '../api/types.ts';
import type { ManifestObject } from '../render/children.ts';
import type { KubeApi } from './kube-api.ts';
import { isNotFound } from './kube-api.ts';
import { kubeTime, microTime } from './kube-time.ts';

export class ClientNodeKubeApi implements KubeApi {
  readonly #core: CoreV1Api;
  readonly #apps: AppsV1Api;
  readonly #coordination: CoordinationV1Api;
  readonly #custom: CustomObjectsApi;
  readonly #objects: KubernetesObjectApi;

  constructor(kubeConfig: KubeConfig) {
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
    this.#apps = kubeConfig.makeApiClient(AppsV1Api);
    this.#coordination = kubeConfig.makeApiClient(CoordinationV1Api);
    this.#custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.#objects = KubernetesObjectApi.makeApiClient(kubeConfig);
  }

  async getSynodCluster(namespace: string, name: string): Promise<SynodCluster | null> {
    const raw: unknown = await orNull(this.#custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL, name }));
    return raw === null ? null : toSynodCluster(raw);
  }

  getStatefulSet(namespace: string, name: string): Promise<V1StatefulSet | null> {
    return orNull(this.#apps.readNamespacedStatefulSet({ namespace, name }));
  }

  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | null> {
    return orNull(this.#core.readNamespacedConfigMap({ namespace, name }));
  }

  getSecret(namespace: string, name: string): Promise<V1Secret | null> {
    return orNull(this.#core.readNamespacedSecret({ namespace, name }));
  }

  async listPods(namespace: string, labelSelector: string): Promise<V1Pod[]> {
    return (await this.#core.listNamespacedPod({ namespace, labelSelector })).items;
  }

  async listPvcs(namespace: string, labelSelector: string): Promise<V1PersistentVolumeClaim[]> {
    return (await this.#core.listNamespacedPersistentVolumeClaim({ namespace, labelSelector })).items;
  }

  async apply(object: ManifestObject): Promise<void> {
    await this.#objects.patch(object as KubernetesObject, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
  }

  async applyStatus(namespace: string, name: string, status: SynodClusterStatus): Promise<void> {
    await this.#custom.patchNamespacedCustomObjectStatus(
      { group: GROUP, version: VERSION, namespace, plural: PLURAL, name, body: { apiVersion: API_VERSION, kind: KIND, metadata: { name, namespace }, status }, fieldManager: FIELD_MANAGER, force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    await this.#core.deleteNamespacedPod({ namespace, name, body: { preconditions: { uid } } });
  }

  async deletePvc(namespace: string, name: string): Promise<void> {
    try {
      await this.#core.deleteNamespacedPersistentVolumeClaim({ namespace, name });
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
  }

  async createEvent(event: CoreV1Event): Promise<void> {
    // Time fields in whole seconds and eventTime as a MicroTime, as the API server writes them
    // (client-node would send plain Dates with milliseconds).
    const body: CoreV1Event = {
      ...event,
      ...(event.firstTimestamp === undefined ? {} : { firstTimestamp: kubeTime(event.firstTimestamp) }),
      ...(event.lastTimestamp === undefined ? {} : { lastTimestamp: kubeTime(event.lastTimestamp) }),
      ...(event.eventTime === undefined ? {} : { eventTime: microTime(event.eventTime) }),
    };
    await this.#core.createNamespacedEvent({ namespace: event.metadata.namespace ?? 'default', body });
  }

  getLease(namespace: string, name: string): Promise<V1Lease | null> {
    return orNull(this.#coordination.readNamespacedLease({ namespace, name }));
  }

  createLease(lease: V1Lease): Promise<V1Lease> {
    return this.#coordination.createNamespacedLease({ namespace: lease.metadata?.namespace ?? 'default', body: lease });
  }

  replaceLease(lease: V1Lease): Promise<V1Lease> {
    return this.#coordination.replaceNamespacedLease({ namespace: lease.metadata?.namespace ?? 'default', name: lease.metadata?.name ?? '', body: lease });
  }

  async getNodeLabels(name: string): Promise<Record<string, string> | null> {
    const node = await orNull(this.#core.readNode({ name }));
    return node === null ? null : node.metadata?.labels ?? {};
  }
}

/** A SynodCluster read from the API server, with the CRD's defaults filled in where missing. */
export function toSynodCluster(raw: unknown): SynodCluster {
  const object = raw as { metadata?: Record<string, unknown>; spec?: unknown; status?: SynodCluster['status'] };
  const metadata = object.metadata ?? {};
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: {
      name: String(metadata['name'] ?? ''),
      namespace: String(metadata['namespace'] ?? 'default'),
      uid: String(metadata['uid'] ?? ''),
      generation: Number(metadata['generation'] ?? 0),
      resourceVersion: metadata['resourceVersion'] === undefined ? undefined : String(metadata['resourceVersion']),
      annotations: isStringMap(metadata['annotations']) ? metadata['annotations'] : undefined,
      deletionTimestamp: metadata['deletionTimestamp'] === undefined ? undefined : String(metadata['deletionTimestamp']),
    },
    spec: withDefaults(object.spec),
    status: object.status,
  };
}

function isStringMap(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}

async function orNull<T>(promise: Promise<T>): Promise<T | null> {
  try {
    return await promise;
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
}

// The slice of the Kubernetes API the operator uses, as an interface: the real implementation is
// client-node-api.ts; tests use the in-memory API double in operator/testing/. Objects are the
// client-node model types. Errors carry the HTTP status (404, 409, 410 ...) in `statusCode`.

import type {
  CoreV1Event, V1ConfigMap, V1Lease, V1PersistentVolumeClaim, V1Pod, V1Secret, V1StatefulSet,
} from '@kubernetes/client-node';
import type { SynodCluster, SynodClusterStatus } from '../api/types.ts';
import type { ManifestObject } from '../render/children.ts';

export interface KubeApi {
  getSynodCluster(namespace: string, name: string): Promise<SynodCluster | null>;
  getStatefulSet(namespace: string, name: string): Promise<V1StatefulSet | null>;
  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | null>;
  /** A Secret named in spec.tls / spec.auth, or one the operator generated (read by name only: no list or watch). */
  getSecret(namespace: string, name: string): Promise<V1Secret | null>;
  listPods(namespace: string, labelSelector: string): Promise<V1Pod[]>;
  listPvcs(namespace: string, labelSelector: string): Promise<V1PersistentVolumeClaim[]>;
  /** Server-side apply with the operator's field manager, forcing ownership of the fields it sends. */
  apply(object: ManifestObject): Promise<void>;
  /** Server-side apply of the status subresource. */
  applyStatus(namespace: string, name: string, status: SynodClusterStatus): Promise<void>;
  /** Deletes the pod only if it is still the one observed (uid precondition; 409 otherwise). */
  deletePod(namespace: string, name: string, uid: string): Promise<void>;
  deletePvc(namespace: string, name: string): Promise<void>;
  createEvent(event: CoreV1Event): Promise<void>;
  getLease(namespace: string, name: string): Promise<V1Lease | null>;
  createLease(lease: V1Lease): Promise<V1Lease>;
  /** Replaces the lease; 409 when its resourceVersion is no longer current. */
  replaceLease(lease: V1Lease): Promise<V1Lease>;
  /** A Node's labels (spec.zones: its zone), null when it does not exist. */
  getNodeLabels(name: string): Promise<Record<string, string> | null>;
}

export class KubeApiError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.name = 'KubeApiError';
    this.statusCode = statusCode;
  }
}

/** The HTTP status of an API error from client-node or from KubeApiError, if any. */
export function statusCodeOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { statusCode?: unknown; code?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  if (typeof e.code === 'number' && e.code >= 100 && e.code < 600) return e.code;
  return undefined;
}

export function isNotFound(error: unknown): boolean {
  return statusCodeOf(error) === 404;
}

export function isConflict(error: unknown): boolean {
  return statusCodeOf(error) === 409;
}

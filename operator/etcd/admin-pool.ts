// One GrpcEtcdAdmin per SynodCluster that has spec.tls or spec.auth, since each has its own CA, client
// certificate and root password. An admin is kept while the cluster's security material stays the
// same (its channels and token are reused), and replaced when it changes (a renewed client
// certificate, a new CA bundle, a new password); released when the cluster goes away.

import { createHash } from 'node:crypto';
import type { AdminSecurity, EtcdAdmin, EtcdAuthAdmin, GrpcEtcdAdminOptions } from './etcd-admin.ts';
import { GrpcEtcdAdmin } from './etcd-admin.ts';
import { GrpcPlacementAdmin, type PlacementAdmin } from './placement-admin.ts';

export interface ClusterKey {
  namespace: string;
  name: string;
}

/** Where the reconciler gets the admin connection of a cluster with TLS or auth. */
export interface EtcdAdminSource {
  adminFor(cluster: ClusterKey, security: AdminSecurity): EtcdAdmin & EtcdAuthAdmin;
  /** The Placement client on the same connection (TLS, root token) as adminFor's; absent: not kept. */
  placementFor?(cluster: ClusterKey): PlacementAdmin | undefined;
  release(cluster: ClusterKey): void;
  close(): void;
}

function fingerprint(security: AdminSecurity): string {
  return createHash('sha256').update(JSON.stringify([security.tls?.caPem, security.tls?.certPem, security.tls?.keyPem, security.auth?.username, security.auth?.password])).digest('hex');
}

export class GrpcAdminPool implements EtcdAdminSource {
  readonly #options: Omit<GrpcEtcdAdminOptions, 'security'>;
  readonly #admins = new Map<string, { fingerprint: string; admin: GrpcEtcdAdmin; placement: GrpcPlacementAdmin }>();

  constructor(options: Omit<GrpcEtcdAdminOptions, 'security'> = {}) {
    this.#options = options;
  }

  adminFor(cluster: ClusterKey, security: AdminSecurity): GrpcEtcdAdmin {
    const key = `${cluster.namespace}/${cluster.name}`;
    const print = fingerprint(security);
    const held = this.#admins.get(key);
    if (held !== undefined && held.fingerprint === print) return held.admin;
    held?.admin.close();
    held?.placement.close();
    const admin = new GrpcEtcdAdmin({ ...this.#options, security });
    // Placement/Drain and TransferLeaderships are admin calls: the same TLS credentials and root token.
    const placement = new GrpcPlacementAdmin({ credentials: admin.credentials, metadata: (endpoint, refresh) => admin.authMetadata(endpoint, refresh) });
    this.#admins.set(key, { fingerprint: print, admin, placement });
    return admin;
  }

  placementFor(cluster: ClusterKey): PlacementAdmin | undefined {
    return this.#admins.get(`${cluster.namespace}/${cluster.name}`)?.placement;
  }

  release(cluster: ClusterKey): void {
    const key = `${cluster.namespace}/${cluster.name}`;
    this.#admins.get(key)?.admin.close();
    this.#admins.get(key)?.placement.close();
    this.#admins.delete(key);
  }

  close(): void {
    for (const { admin, placement } of this.#admins.values()) {
      admin.close();
      placement.close();
    }
    this.#admins.clear();
  }

  /** How many clusters have an admin now (for tests). */
  get size(): number {
    return this.#admins.size;
  }
}

// One GrpcEtcdAdmin per SynodCluster that has spec.tls or spec.auth, since each has its own CA, client
// certificate and root password. An admin is kept while the cluster's security material stays the
// same (its channels and token are reused), and replaced when it changes (a renewed client
// certificate, a new CA bundle, a new password); released when the cluster goes away.

import { createHash } from 'node:crypto';
import type { AdminSecurity, EtcdAdmin, EtcdAuthAdmin, GrpcEtcdAdminOptions } from './etcd-admin.ts';
import { GrpcEtcdAdmin } from './etcd-admin.ts';

export interface ClusterKey {
  namespace: string;
  name: string;
}

/** Where the reconciler gets the admin connection of a cluster with TLS or auth. */
export interface EtcdAdminSource {
  adminFor(cluster: ClusterKey, security: AdminSecurity): EtcdAdmin & EtcdAuthAdmin;
  release(cluster: ClusterKey): void;
  close(): void;
}

function fingerprint(security: AdminSecurity): string {
  return createHash('sha256').update(JSON.stringify([security.tls?.caPem, security.tls?.certPem, security.tls?.keyPem, security.auth?.username, security.auth?.password])).digest('hex');
}

export class GrpcAdminPool implements EtcdAdminSource {
  readonly #options: Omit<GrpcEtcdAdminOptions, 'security'>;
  readonly #admins = new Map<string, { fingerprint: string; admin: GrpcEtcdAdmin }>();

  constructor(options: Omit<GrpcEtcdAdminOptions, 'security'> = {}) {
    this.#options = options;
  }

  adminFor(cluster: ClusterKey, security: AdminSecurity): GrpcEtcdAdmin {
    const key = `${cluster.namespace}/${cluster.name}`;
    const print = fingerprint(security);
    const held = this.#admins.get(key);
    if (held !== undefined && held.fingerprint === print) return held.admin;
    held?.admin.close();
    const admin = new GrpcEtcdAdmin({ ...this.#options, security });
    this.#admins.set(key, { fingerprint: print, admin });
    return admin;
  }

  release(cluster: ClusterKey): void {
    const key = `${cluster.namespace}/${cluster.name}`;
    this.#admins.get(key)?.admin.close();
    this.#admins.delete(key);
  }

  close(): void {
    for (const { admin } of this.#admins.values()) admin.close();
    this.#admins.clear();
  }

  /** How many clusters have an admin now (for tests). */
  get size(): number {
    return this.#admins.size;
  }
}

// The TLS-and-auth part of a reconcile, kept apart from the membership plan: before observing, make or
// renew the generated certificates (spec.tls.generate) and resolve the admin connection's security
// from the cluster's Secrets (waiting, with a message, while one is missing); after a converged
// round, turn auth on (or off) as spec.auth says. Auth is changed only when the plan has nothing
// left to do: every member is up and voting, so the root user and auth enable reach all of them
// through the log, and no membership change is in flight that would need a token mid-way.

import type { PlacementAdmin } from '../etcd/placement-admin.ts';
import type { SynodClusterSpec } from '../api/types.ts';
import type { EtcdAdminSource } from '../etcd/admin-pool.ts';
import type { AuthChange, EtcdAdmin, EtcdAuthAdmin } from '../etcd/etcd-admin.ts';
import type { KubeApi } from '../kube/kube-api.ts';
import type { ClusterRef } from '../render/children.ts';
import { resolveClusterSecurity } from '../security/cluster-security.ts';
import { reconcileGeneratedTls } from '../security/generated-tls.ts';

export interface SecurityStep {
  /** The admin connection to use for this cluster this round. */
  etcd: EtcdAdmin;
  /** Set when spec.auth is: the Auth API on the same connection, and the root password. */
  auth: { admin: EtcdAuthAdmin; password: string } | null;
  /** Set while a Secret the spec names is missing (nothing else is done until it exists). */
  waiting: string | null;
  /** What was done to the generated certificates (for Events). */
  tlsChanges: string[];
  /** When a generated certificate falls due, ms since the epoch (for the requeue). */
  tlsReviewAtMs: number | null;
  /** The Placement client on the same connection as `etcd` (null: the shared, plaintext one). */
  placement: PlacementAdmin | null;
}

export interface SecurityDeps {
  api: KubeApi;
  /** The shared admin of clusters without TLS or auth. */
  etcd: EtcdAdmin;
  /** Per-cluster admins for clusters with TLS or auth. */
  admins?: EtcdAdminSource;
}

export async function prepareSecurity(deps: SecurityDeps, ref: ClusterRef, spec: SynodClusterSpec, nowMs: number): Promise<SecurityStep> {
  const step: SecurityStep = { etcd: deps.etcd, auth: null, waiting: null, tlsChanges: [], tlsReviewAtMs: null, placement: null };
  if (spec.tls === undefined && spec.auth === undefined) return step;
  if (spec.tls?.generate === true) {
    const generated = await reconcileGeneratedTls(deps.api, ref, spec.tls, nowMs);
    step.tlsChanges = generated.changes;
    step.tlsReviewAtMs = generated.reviewAtMs;
  }
  const resolution = await resolveClusterSecurity(deps.api, ref.name, ref.namespace, spec);
  if (!resolution.ok) {
    step.waiting = `waiting for ${resolution.missing.join('; ')}`;
    return step;
  }
  if (resolution.security === null) return step;
  if (deps.admins === undefined) throw new Error('spec.tls / spec.auth need per-cluster admin connections, and none were configured');
  const admin = deps.admins.adminFor(ref, resolution.security);
  step.etcd = admin;
  step.placement = deps.admins.placementFor?.(ref) ?? null;
  if (resolution.security.auth !== null) step.auth = { admin, password: resolution.security.auth.password };
  return step;
}

/** Brings auth to what spec.auth says; null when the spec says nothing about auth. */
export async function reconcileAuth(step: SecurityStep, spec: SynodClusterSpec, endpoints: readonly string[]): Promise<AuthChange | null> {
  if (spec.auth === undefined || step.auth === null) return null;
  return spec.auth.enabled ? step.auth.admin.enableAuth(endpoints, step.auth.password) : step.auth.admin.disableAuth(endpoints);
}

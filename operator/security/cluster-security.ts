// What a SynodCluster's spec.tls and spec.auth ask of its Secrets, and the admin connection's
// security (AdminSecurity) made from them: the CA bundle the members' certificates must chain to, the
// operator's client certificate when clients must present one, and the root password. Which Secrets
// and keys are needed is a pure function of the spec (secretsNeeded); adminSecurityFrom turns the
// Secrets as read into AdminSecurity, or says in plain words what is missing.

import type { V1Secret } from '@kubernetes/client-node';
import { clientCertAuthOn, clientTlsOn } from '../api/spec-defaults.ts';
import type { SynodClusterSpec } from '../api/types.ts';
import { SECRET_KEY_CA, SECRET_KEY_CERT, SECRET_KEY_KEY, generatedSecretNames } from '../api/types.ts';
import type { AdminSecurity } from '../etcd/etcd-admin.ts';
import { ROOT_USER } from '../etcd/etcd-admin.ts';
import type { KubeApi } from '../kube/kube-api.ts';

export interface SecretNeed {
  name: string;
  keys: string[];
  /** The spec field that names it, for messages. */
  field: string;
}

/** The Secrets (and keys) the pods and the operator's own connection need, by spec field. */
export function secretsNeeded(spec: SynodClusterSpec): SecretNeed[] {
  const needs: SecretNeed[] = [];
  const tls = spec.tls;
  // Generated Secrets are the operator's to make: never waited for.
  if (tls !== undefined && !tls.generate) {
    const pair = [SECRET_KEY_CERT, SECRET_KEY_KEY, SECRET_KEY_CA];
    if (tls.client?.secretName !== undefined) needs.push({ name: tls.client.secretName, keys: pair, field: 'spec.tls.client.secretName' });
    if (tls.peer?.secretName !== undefined) needs.push({ name: tls.peer.secretName, keys: pair, field: 'spec.tls.peer.secretName' });
    if (clientCertAuthOn(tls) && tls.operatorClientSecretName !== undefined) {
      needs.push({ name: tls.operatorClientSecretName, keys: [SECRET_KEY_CERT, SECRET_KEY_KEY], field: 'spec.tls.operatorClientSecretName' });
    }
  }
  if (spec.auth !== undefined) needs.push({ name: spec.auth.rootSecret.name, keys: [spec.auth.rootSecret.passwordKey], field: 'spec.auth.rootSecret' });
  return needs;
}

/** The Secrets adminSecurityFrom reads, generated ones included. */
export function secretsToRead(cluster: string, spec: SynodClusterSpec): string[] {
  const names = new Set(secretsNeeded(spec).map((n) => n.name));
  if (spec.tls?.generate === true) names.add(generatedSecretNames(cluster).operatorClient);
  return [...names];
}

export type SecurityResolution =
  | { ok: true; security: AdminSecurity | null }
  | { ok: false; missing: string[] };

function text(secret: V1Secret | null | undefined, key: string): string | null {
  const value = secret?.data?.[key];
  if (value !== undefined) return Buffer.from(value, 'base64').toString('utf8');
  return secret?.stringData?.[key] ?? null;
}

/**
 * AdminSecurity for a cluster from its Secrets (by name; null: not found). Missing Secrets or keys are
 * listed as "Secret ns/name (spec.field) has no key password" so the status says what to create.
 */
export function adminSecurityFrom(cluster: string, namespace: string, spec: SynodClusterSpec, secrets: ReadonlyMap<string, V1Secret | null>): SecurityResolution {
  const missing: string[] = [];
  const generated = generatedSecretNames(cluster);
  const needs = spec.tls?.generate === true
    ? [...secretsNeeded(spec), { name: generated.operatorClient, keys: [SECRET_KEY_CERT, SECRET_KEY_KEY, SECRET_KEY_CA], field: 'spec.tls.generate' }]
    : secretsNeeded(spec);
  for (const need of needs) {
    const secret = secrets.get(need.name) ?? null;
    if (secret === null) {
      missing.push(`Secret ${namespace}/${need.name} (${need.field}) not found`);
      continue;
    }
    const absent = need.keys.filter((k) => text(secret, k) === null);
    if (absent.length > 0) missing.push(`Secret ${namespace}/${need.name} (${need.field}) has no ${absent.join(', ')}`);
  }
  if (missing.length > 0) return { ok: false, missing };

  let tls: AdminSecurity['tls'] = null;
  if (clientTlsOn(spec.tls)) {
    const caSource = spec.tls?.generate === true ? generated.operatorClient : spec.tls?.client?.secretName ?? '';
    tls = { caPem: text(secrets.get(caSource), SECRET_KEY_CA)! };
    if (clientCertAuthOn(spec.tls)) {
      const certSource = spec.tls?.generate === true ? generated.operatorClient : spec.tls?.operatorClientSecretName ?? '';
      tls.certPem = text(secrets.get(certSource), SECRET_KEY_CERT)!;
      tls.keyPem = text(secrets.get(certSource), SECRET_KEY_KEY)!;
    }
  }
  const auth = spec.auth === undefined ? null : { username: ROOT_USER, password: text(secrets.get(spec.auth.rootSecret.name), spec.auth.rootSecret.passwordKey)! };
  return { ok: true, security: tls === null && auth === null ? null : { tls, auth } };
}

/** Reads the cluster's Secrets and resolves its admin security. */
export async function resolveClusterSecurity(api: KubeApi, cluster: string, namespace: string, spec: SynodClusterSpec): Promise<SecurityResolution> {
  const names = secretsToRead(cluster, spec);
  const read = await Promise.all(names.map(async (name) => [name, await api.getSecret(namespace, name)] as const));
  return adminSecurityFrom(cluster, namespace, spec, new Map(read));
}

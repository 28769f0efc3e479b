// Defaults and validation of a SynodCluster spec, the same rules the CRD enforces in the API server
// (OpenAPI defaults and CEL x-kubernetes-validations). The operator applies them again to whatever it
// reads, so a resource created before a default existed, or against a server without CEL, is still
// handled safely: an invalid spec is reported in status and never acted on.

import type { AuthSpec, PvcRetentionPolicy, ShardingSpec, SynodClusterSpec, TlsSpec, ZoneSpreadSpec } from './types.ts';
import { DEFAULT_IMAGE_REPOSITORY, ZONE_TOPOLOGY_KEY } from './types.ts';

export const DEFAULT_REPLICAS = 3;
export const DEFAULT_VERSION = '0.1.0';
export const DEFAULT_STORAGE_SIZE = '1Gi';
export const DEFAULT_RETENTION_POLICY: PvcRetentionPolicy = 'Delete';
/** Deleting a SynodCluster keeps its data unless asked otherwise, as a StatefulSet's whenDeleted does. */
export const DEFAULT_WHEN_DELETED: PvcRetentionPolicy = 'Retain';
export const MAX_REPLICAS = 9;

/** Fills the defaults the CRD declares into a raw spec read from the API server. */
export function withDefaults(raw: unknown): SynodClusterSpec {
  const spec = isRecord(raw) ? raw : {};
  const storage = isRecord(spec['storage']) ? spec['storage'] : {};
  const persistence = isRecord(spec['persistence']) ? spec['persistence'] : {};
  const result: SynodClusterSpec = {
    replicas: typeof spec['replicas'] === 'number' ? spec['replicas'] : DEFAULT_REPLICAS,
    version: typeof spec['version'] === 'string' ? spec['version'] : DEFAULT_VERSION,
    storage: {
      size: typeof storage['size'] === 'string' ? storage['size'] : DEFAULT_STORAGE_SIZE,
      retentionPolicyOnScaleIn:
        storage['retentionPolicyOnScaleIn'] === 'Retain' ? 'Retain' : DEFAULT_RETENTION_POLICY,
    },
    persistence: {
      whenDeleted: persistence['whenDeleted'] === 'Delete' ? 'Delete' : DEFAULT_WHEN_DELETED,
    },
    ...shardingWithDefaults(spec),
  };
  if (typeof storage['storageClassName'] === 'string') result.storage.storageClassName = storage['storageClassName'];
  if (typeof spec['image'] === 'string') result.image = spec['image'];
  const pullPolicy = spec['imagePullPolicy'];
  if (pullPolicy === 'Always' || pullPolicy === 'IfNotPresent' || pullPolicy === 'Never') {
    result.imagePullPolicy = pullPolicy;
  }
  if (isRecord(spec['resources'])) result.resources = spec['resources'] as SynodClusterSpec['resources'];
  if (isRecord(spec['podTemplate'])) result.podTemplate = spec['podTemplate'] as SynodClusterSpec['podTemplate'];
  const tls = tlsWithDefaults(spec['tls']);
  if (tls !== undefined) result.tls = tls;
  const auth = authWithDefaults(spec['auth']);
  if (auth !== undefined) result.auth = auth;
  return result;
}

/** The image the server pods run. */
export function serverImage(spec: SynodClusterSpec): string {
  return spec.image ?? `${DEFAULT_IMAGE_REPOSITORY}:${spec.version}`;
}

/**
 * The CRD's validation rules as code: returns one message per broken rule (empty when valid).
 * `previous` is the spec before the update, for transition rules (storage class is immutable).
 * The messages are the CRD's CEL rule messages word for word.
 */
export function validateSpec(spec: SynodClusterSpec, previous?: SynodClusterSpec): string[] {
  const errors: string[] = [];
  if (!Number.isInteger(spec.replicas) || spec.replicas < 1 || spec.replicas % 2 !== 1) {
    errors.push('replicas must be odd and at least 1');
  }
  if (spec.replicas > MAX_REPLICAS) errors.push(`replicas must be at most ${MAX_REPLICAS}`);
  if (!/^[0-9A-Za-z][0-9A-Za-z._+-]{0,127}$/.test(spec.version)) errors.push('version must be a valid image tag');
  if (previous !== undefined && previous.storage.storageClassName !== spec.storage.storageClassName) {
    errors.push('storage.storageClassName is immutable');
  }
  if (previous !== undefined && previous.storage.size !== spec.storage.size) {
    errors.push('storage.size is immutable');
  }
  errors.push(...validateSharding(spec, previous));
  errors.push(...validateSecurity(spec, previous));
  return errors;
}

// ---- TLS and auth (spec.tls, spec.auth): defaults and the CRD's CEL rules, word for word ----

export const DEFAULT_CERTIFICATE_VALIDITY_DAYS = 90;
export const DEFAULT_ROOT_PASSWORD_KEY = 'password';

function tlsWithDefaults(raw: unknown): TlsSpec | undefined {
  if (!isRecord(raw)) return undefined;
  const tls: TlsSpec = { generate: raw['generate'] === true };
  if (typeof raw['certificateValidityDays'] === 'number') tls.certificateValidityDays = raw['certificateValidityDays'];
  const client = raw['client'];
  if (isRecord(client)) {
    tls.client = { clientCertAuth: client['clientCertAuth'] === true };
    if (typeof client['secretName'] === 'string') tls.client.secretName = client['secretName'];
  }
  const peer = raw['peer'];
  if (isRecord(peer)) {
    tls.peer = {};
    if (typeof peer['secretName'] === 'string') tls.peer.secretName = peer['secretName'];
  }
  if (typeof raw['operatorClientSecretName'] === 'string') tls.operatorClientSecretName = raw['operatorClientSecretName'];
  return tls;
}

function authWithDefaults(raw: unknown): AuthSpec | undefined {
  if (!isRecord(raw)) return undefined;
  const secret = isRecord(raw['rootSecret']) ? raw['rootSecret'] : {};
  return {
    enabled: raw['enabled'] !== false,
    rootSecret: {
      name: typeof secret['name'] === 'string' ? secret['name'] : '',
      passwordKey: typeof secret['passwordKey'] === 'string' ? secret['passwordKey'] : DEFAULT_ROOT_PASSWORD_KEY,
    },
  };
}

/** Whether the client port serves TLS. */
export function clientTlsOn(tls: TlsSpec | undefined): boolean {
  return tls !== undefined && (tls.generate || tls.client?.secretName !== undefined);
}

/** Whether the peer port serves TLS (and members dial each other with TLS). */
export function peerTlsOn(tls: TlsSpec | undefined): boolean {
  return tls !== undefined && (tls.generate || tls.peer?.secretName !== undefined);
}

/** Whether clients must present a certificate (etcd's --client-cert-auth). */
export function clientCertAuthOn(tls: TlsSpec | undefined): boolean {
  return clientTlsOn(tls) && tls?.client?.clientCertAuth === true;
}

function validateSecurity(spec: SynodClusterSpec, previous: SynodClusterSpec | undefined): string[] {
  const errors: string[] = [];
  const tls = spec.tls;
  if (tls !== undefined) {
    const clientSecret = tls.client?.secretName !== undefined;
    const peerSecret = tls.peer?.secretName !== undefined;
    if (!tls.generate && tls.client === undefined && tls.peer === undefined) errors.push('tls needs generate: true, or client.secretName or peer.secretName');
    if (tls.generate && clientSecret) errors.push('tls.client.secretName cannot be set with tls.generate: the operator names the Secrets it generates');
    if (tls.generate && peerSecret) errors.push('tls.peer.secretName cannot be set with tls.generate: the operator names the Secrets it generates');
    if (!tls.generate && tls.client !== undefined && !clientSecret) errors.push('tls.client needs secretName unless tls.generate is true');
    if (!tls.generate && tls.peer !== undefined && !peerSecret) errors.push('tls.peer needs secretName unless tls.generate is true');
    if (!tls.generate && tls.client?.clientCertAuth === true && tls.operatorClientSecretName === undefined) {
      errors.push('tls.client.clientCertAuth needs tls.operatorClientSecretName (the operator\'s client certificate) unless tls.generate is true');
    }
    if (tls.generate && tls.operatorClientSecretName !== undefined) errors.push('tls.operatorClientSecretName cannot be set with tls.generate: the operator makes its own client certificate');
    if (!tls.generate && tls.certificateValidityDays !== undefined) {
      errors.push('tls.certificateValidityDays applies only to generated certificates (tls.generate: true)');
    }
  }
  if (previous !== undefined && (spec.tls === undefined) !== (previous.tls === undefined)) {
    errors.push('tls cannot be added or removed after creation: the members\' advertised URLs would change');
  } else if (previous !== undefined && (clientTlsOn(spec.tls) !== clientTlsOn(previous.tls) || peerTlsOn(spec.tls) !== peerTlsOn(previous.tls))) {
    errors.push('which ports use TLS cannot change after creation: the members\' advertised URLs would change');
  }
  if (spec.auth !== undefined && spec.auth.rootSecret.name === '') errors.push('auth.rootSecret.name is required');
  return errors;
}

// ---- Sharding (issue 16): spec.shards, spec.replicationFactor, spec.zones ----

/**
 * Shards of a SynodCluster that does not say: one Raft group, as `synod server` without --shards. The
 * sharded default (16) comes with cross-shard transactions (issue 15); this constant and the CRD's
 * `default:` of spec.shards are the two places to change.
 */
export const DEFAULT_SHARDS = 1;
export const MAX_SHARDS = 1024;
/** Replicas per shard: the placement ring's own default, so scale-in drains a member before removing it. */
export const DEFAULT_REPLICATION_FACTOR = 3;
/** `synod server --replication-factor` accepts 0..7. */
export const MAX_REPLICATION_FACTOR = 7;
export const DEFAULT_ZONE_MAX_SKEW = 1;

/** spec.shards, spec.replicationFactor and spec.zones with the CRD's defaults. */
export function shardingWithDefaults(spec: Record<string, unknown>): ShardingSpec {
  const result: ShardingSpec = {
    shards: typeof spec['shards'] === 'number' ? spec['shards'] : DEFAULT_SHARDS,
    replicationFactor: typeof spec['replicationFactor'] === 'number' ? spec['replicationFactor'] : DEFAULT_REPLICATION_FACTOR,
  };
  const zones = spec['zones'];
  if (isRecord(zones)) {
    const spread: ZoneSpreadSpec = {
      topologyKey: typeof zones['topologyKey'] === 'string' ? zones['topologyKey'] : ZONE_TOPOLOGY_KEY,
      maxSkew: typeof zones['maxSkew'] === 'number' ? zones['maxSkew'] : DEFAULT_ZONE_MAX_SKEW,
      whenUnsatisfiable: zones['whenUnsatisfiable'] === 'ScheduleAnyway' ? 'ScheduleAnyway' : 'DoNotSchedule',
    };
    if (Array.isArray(zones['names'])) spread.names = zones['names'].filter((n): n is string => typeof n === 'string');
    result.zones = spread;
  }
  return result;
}

/** The CRD's sharding rules (schema bounds and CEL), messages word for word. */
export function validateSharding(spec: ShardingSpec, previous?: ShardingSpec): string[] {
  const errors: string[] = [];
  if (!isPowerOfTwo(spec.shards) || spec.shards > MAX_SHARDS) errors.push('shards must be a power of two');
  if (previous !== undefined && previous.shards !== spec.shards) errors.push('shards is immutable');
  if (!Number.isInteger(spec.replicationFactor) || spec.replicationFactor < 0 || spec.replicationFactor > MAX_REPLICATION_FACTOR) {
    errors.push(`replicationFactor must be an integer from 0 to ${MAX_REPLICATION_FACTOR}`);
  }
  if (previous !== undefined && previous.replicationFactor !== spec.replicationFactor) errors.push('replicationFactor is immutable');
  return errors;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Defaults and validation of a SynodCluster spec, the same rules the CRD enforces in the API server
// (OpenAPI defaults and CEL x-kubernetes-validations). The operator applies them again to whatever it
// reads, so a resource created before a default existed, or against a server without CEL, is still
// handled safely: an invalid spec is reported in status and never acted on.

import type { PvcRetentionPolicy, ShardingSpec, SynodClusterSpec, ZoneSpreadSpec } from './types.ts';
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

// TEST STAND-IN for the API server's server-side apply (not the real thing): what a Kubernetes
// 1.<minor> API server stores when a field manager applies a configuration, so tests can see the
// writes a real server makes and the in-memory double cannot. Modelled, in the server's order:
//   1. fields the version's schema does not know are pruned from the applied configuration before
//      the field manager sees them (never owned, never compared: no spurious writes, just ignored);
//   2. the field manager merges the configuration into the live object (fields it owned before and
//      no longer applies are removed) and records the applied fields as owned; if the merge changed
//      the object, its managedFields entry gets a new time (managedfieldsupdater), itself a change;
//   3. the strategy drops fields that are known but disabled by a feature gate in that version
//      (dropDisabledFields), AFTER the field manager: so a disabled field is owned, missing from the
//      stored object, re-added by every merge, and every apply writes (the 1.26 StatefulSet defect).
// Not modelled: defaulting (values the server fills in are owned by nobody and never differ between
// two applies), merge keys of lists (lists are replaced whole; with one manager per list the result is
// the same), conflicts between managers (the operator always forces), second-granularity timestamps.
//
// Which fields a version knows: the newest schema is the one @kubernetes/client-node's models are
// generated from (client-node 2.0 → Kubernetes 1.34), walked through their attributeTypeMap; older
// versions are that schema minus FIELD_HISTORY, the fields of the kinds the operator renders that
// were added or gated after 1.24 (from the Kubernetes feature-gate tables and KEPs). A field in
// FIELD_HISTORY must be listed before the operator renders it: renderedFieldsMissingIn() fails a test
// otherwise, for every version from the chart's minimum to the newest.

import * as k8s from '@kubernetes/client-node';

/** The Kubernetes minor version @kubernetes/client-node 2.0's models are generated from. */
export const NEWEST_MINOR = 34;

export interface FieldHistory {
  /** First minor whose schema has the field (alpha fields are in the schema, gated off). */
  inSchemaSince: number;
  /** First minor whose API server keeps it by default (feature gate on: beta or GA). */
  enabledSince: number;
  gate?: string;
}

/** `Kind:dotted.path` (list items as `[]`) → history, for fields newer than 1.24 in the kinds we render. */
export const FIELD_HISTORY: Readonly<Record<string, FieldHistory>> = {
  // KEP-1847: alpha 1.23 (off), beta 1.27 (on), GA 1.32.
  'StatefulSet:spec.persistentVolumeClaimRetentionPolicy': { inSchemaSince: 23, enabledSince: 27, gate: 'StatefulSetAutoDeletePVC' },
  // KEP-3335: alpha 1.26 (off), beta 1.27 (on), GA 1.31.
  'StatefulSet:spec.ordinals': { inSchemaSince: 26, enabledSince: 27, gate: 'StatefulSetStartOrdinal' },
  // KEP-3017: alpha 1.26 (off), beta 1.27 (on).
  'PodDisruptionBudget:spec.unhealthyPodEvictionPolicy': { inSchemaSince: 26, enabledSince: 27, gate: 'PDBUnhealthyPodEvictionPolicy' },
  // KEP-127 user namespaces: alpha 1.25, on by default only from 1.33.
  'StatefulSet:spec.template.spec.hostUsers': { inSchemaSince: 25, enabledSince: 33, gate: 'UserNamespacesSupport' },
  // KEP-3521 scheduling gates: alpha 1.26 (off), beta 1.27 (on).
  'StatefulSet:spec.template.spec.schedulingGates': { inSchemaSince: 26, enabledSince: 27, gate: 'PodSchedulingReadiness' },
  // KEP-3063 dynamic resource allocation: alpha 1.26, on by default from 1.34.
  'StatefulSet:spec.template.spec.resourceClaims': { inSchemaSince: 26, enabledSince: 34, gate: 'DynamicResourceAllocation' },
  // KEP-1287 in-place resize: alpha 1.27, beta 1.33.
  'StatefulSet:spec.template.spec.containers[].resizePolicy': { inSchemaSince: 27, enabledSince: 33, gate: 'InPlacePodVerticalScaling' },
  // KEP-753 sidecar containers: alpha 1.28, beta 1.29.
  'StatefulSet:spec.template.spec.containers[].restartPolicy': { inSchemaSince: 28, enabledSince: 29, gate: 'SidecarContainers' },
  // KEP-2837 pod-level resources: alpha 1.32, beta 1.34.
  'StatefulSet:spec.template.spec.resources': { inSchemaSince: 32, enabledSince: 34, gate: 'PodLevelResources' },
  // KEP-4444 traffic distribution: alpha 1.30, beta 1.31.
  'Service:spec.trafficDistribution': { inSchemaSince: 30, enabledSince: 31, gate: 'ServiceTrafficDistribution' },
  // KEP-3751 volume attributes classes: alpha 1.29, beta 1.31 (off), GA 1.34.
  'StatefulSet:spec.volumeClaimTemplates[].spec.volumeAttributesClassName': { inSchemaSince: 29, enabledSince: 34, gate: 'VolumeAttributesClass' },
  'PersistentVolumeClaim:spec.volumeAttributesClassName': { inSchemaSince: 29, enabledSince: 34, gate: 'VolumeAttributesClass' },
};

type Json = Record<string, unknown>;

interface AttributeType { name: string; baseName: string; type: string }
interface ModelClass { getAttributeTypeMap(): AttributeType[] }

const MODEL_OF_KIND: Record<string, string> = {
  ServiceAccount: 'V1ServiceAccount', Service: 'V1Service', ConfigMap: 'V1ConfigMap', StatefulSet: 'V1StatefulSet',
  PodDisruptionBudget: 'V1PodDisruptionBudget', PersistentVolumeClaim: 'V1PersistentVolumeClaim', Pod: 'V1Pod',
};

function model(name: string): ModelClass | undefined {
  const candidate = (k8s as unknown as Record<string, unknown>)[name];
  return typeof candidate === 'function' && typeof (candidate as Partial<ModelClass>).getAttributeTypeMap === 'function' ? candidate as unknown as ModelClass : undefined;
}

/**
 * Prunes `value` (of client-node type `type`) to the fields the newest schema knows, collecting the
 * dotted paths of what it dropped. Free-form types (maps, any, scalars) are kept whole.
 */
function pruneToSchema(type: string, value: unknown, path: string, dropped: string[]): unknown {
  const list = /^Array<(.+)>$/.exec(type);
  if (list !== null) return Array.isArray(value) ? value.map((v) => pruneToSchema(list[1], v, `${path}[]`, dropped)) : value;
  const cls = model(type);
  if (cls === undefined || !isRecord(value)) return value;
  const attributes = new Map(cls.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  const out: Json = {};
  for (const [key, child] of Object.entries(value)) {
    const childType = attributes.get(key);
    const childPath = path === '' ? key : `${path}.${key}`;
    if (childType === undefined) dropped.push(childPath);
    else out[key] = pruneToSchema(childType, child, childPath, dropped);
  }
  return out;
}

/** Removes the field at a dotted path (with `[]` for every list item) from `value`. */
function removePath(value: unknown, segments: readonly string[]): void {
  if (segments.length === 0) return;
  const [head, ...rest] = segments;
  const isList = head.endsWith('[]');
  const key = isList ? head.slice(0, -2) : head;
  if (!isRecord(value) || !(key in value)) return;
  if (rest.length === 0) {
    delete value[key];
    return;
  }
  const child = value[key];
  if (isList && Array.isArray(child)) child.forEach((item) => removePath(item, rest));
  else if (!isList) removePath(child, rest);
}

function hasPath(value: unknown, segments: readonly string[]): boolean {
  if (segments.length === 0) return true;
  const [head, ...rest] = segments;
  const isList = head.endsWith('[]');
  const key = isList ? head.slice(0, -2) : head;
  if (!isRecord(value) || !(key in value)) return false;
  const child = value[key];
  if (isList) return Array.isArray(child) && child.some((item) => hasPath(item, rest));
  return hasPath(child, rest);
}

function historyOf(kind: string): [string[], FieldHistory][] {
  return Object.entries(FIELD_HISTORY)
    .filter(([key]) => key.startsWith(`${kind}:`))
    .map(([key, history]) => [key.slice(kind.length + 1).split('.'), history]);
}

/** Step 1: the applied configuration as the version's decoder leaves it, and what it pruned. */
export function pruneUnknownFields(minor: number, applied: Json): { pruned: Json; dropped: string[] } {
  const kind = String(applied['kind'] ?? '');
  const dropped: string[] = [];
  const modelName = MODEL_OF_KIND[kind];
  let pruned = structuredClone(applied);
  if (modelName !== undefined) pruned = pruneToSchema(modelName, pruned, '', dropped) as Json;
  for (const [segments, history] of historyOf(kind)) {
    if (minor < history.inSchemaSince && hasPath(pruned, segments)) {
      removePath(pruned, segments);
      dropped.push(segments.join('.'));
    }
  }
  return { pruned, dropped };
}

/** Step 3: fields known to the version but disabled by a feature gate that is off there. */
export function dropDisabledFields(minor: number, object: Json): { stored: Json; dropped: string[] } {
  const kind = String(object['kind'] ?? '');
  const stored = structuredClone(object);
  const dropped: string[] = [];
  for (const [segments, history] of historyOf(kind)) {
    if (minor >= history.inSchemaSince && minor < history.enabledSince && hasPath(stored, segments)) {
      removePath(stored, segments);
      dropped.push(segments.join('.'));
    }
  }
  return { stored, dropped };
}

/**
 * Every leaf field of a configuration, each as the JSON of its path segments (label keys contain
 * dots); lists are leaves, owned whole here.
 */
export function fieldPaths(value: unknown, prefix: readonly string[] = []): string[] {
  if (isRecord(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0) return prefix.length === 0 ? [] : [JSON.stringify(prefix)];
    return entries.flatMap(([k, v]) => fieldPaths(v, [...prefix, k]));
  }
  return prefix.length === 0 ? [] : [JSON.stringify(prefix)];
}

interface ManagedFieldsEntry { manager: string; operation: 'Apply' | 'Update'; time: string; fields: string[] }

const IDENTITY = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields']);

/**
 * What the server stores after `manager` applies `applied` (forced) onto `live` (undefined: create).
 * The caller decides whether that is a write: it is one exactly when the result differs from `live`
 * (managedFields included, as on a real server, where the object is compared byte for byte).
 * `now` must differ between calls that should bump a timestamp.
 */
export function serverSideApply(minor: number, live: Json | undefined, applied: Json, manager: string, now: string): Json {
  const { pruned } = pruneUnknownFields(minor, applied);
  const appliedFields = fieldPaths(withoutIdentity(pruned)).sort();
  const liveMeta = isRecord(live?.['metadata']) ? live['metadata'] : {};
  const managed = (Array.isArray(liveMeta['managedFields']) ? liveMeta['managedFields'] : []) as ManagedFieldsEntry[];
  const previous = managed.find((m) => m.manager === manager && m.operation === 'Apply');
  // Fields this manager applied before and no longer applies go away (nobody else owns them here).
  const base = structuredClone(live ?? {}) as Json;
  for (const path of previous?.fields ?? []) if (!appliedFields.includes(path)) removePath(base, JSON.parse(path) as string[]);
  const merged = deepMerge(base, pruned) as Json;
  const liveWithoutManaged = live === undefined ? undefined : withoutManagedFields(live);
  const changed = liveWithoutManaged === undefined || canonical(withoutManagedFields(merged)) !== canonical(liveWithoutManaged);
  const entry: ManagedFieldsEntry = {
    manager, operation: 'Apply', fields: appliedFields,
    time: changed || previous === undefined ? now : previous.time,
  };
  const metadata = isRecord(merged['metadata']) ? merged['metadata'] : {};
  metadata['managedFields'] = [...managed.filter((m) => m !== previous), entry];
  merged['metadata'] = metadata;
  return dropDisabledFields(minor, merged).stored;
}

function withoutIdentity(config: Json): Json {
  const copy = structuredClone(config);
  delete copy['apiVersion'];
  delete copy['kind'];
  if (isRecord(copy['metadata'])) for (const key of IDENTITY) delete copy['metadata'][key];
  return copy;
}

function withoutManagedFields(object: Json): Json {
  const copy = structuredClone(object);
  if (isRecord(copy['metadata'])) delete copy['metadata']['managedFields'];
  return copy;
}

/** Objects merge key by key; lists and scalars from `patch` replace what is there. */
function deepMerge(target: unknown, patch: unknown): unknown {
  if (!isRecord(target) || !isRecord(patch)) return structuredClone(patch);
  const out: Json = { ...target };
  for (const [key, value] of Object.entries(patch)) out[key] = key in target ? deepMerge(target[key], value) : structuredClone(value);
  return out;
}

/** JSON with sorted keys: equal objects give equal strings. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isRecord(value)) {
    return `{${Object.keys(value).filter((k) => value[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A tiny API server over serverSideApply, for tests that only apply: it counts writes (each one a
 * new resourceVersion) so "a second apply of the same configuration writes nothing" can be asserted.
 */
export class ServerSideApplyStandIn {
  readonly minor: number;
  readonly objects = new Map<string, Json>();
  resourceVersion = 0;
  #clock = 0;

  constructor(minor: number) {
    this.minor = minor;
  }

  /** Applies `config` as `manager`; returns whether the stored object changed (a write). */
  apply(config: Json, manager: string): boolean {
    const meta = isRecord(config['metadata']) ? config['metadata'] : {};
    const key = `${String(config['kind'])}/${String(meta['namespace'] ?? '')}/${String(meta['name'] ?? '')}`;
    const live = this.objects.get(key);
    this.#clock += 1;
    const stored = serverSideApply(this.minor, live, config, manager, new Date(Date.UTC(2026, 0, 1, 0, 0, this.#clock)).toISOString());
    if (live !== undefined && canonical(stored) === canonical(live)) return false;
    this.resourceVersion += 1;
    this.objects.set(key, stored);
    return true;
  }
}

/**
 * Fields of the applied configurations a Kubernetes 1.<minor> server would not keep (unknown there,
 * or disabled by default), as `Kind/name: path`. Empty means the server stores all of it.
 */
export function renderedFieldsMissingIn(minor: number, configs: readonly Json[]): string[] {
  const missing: string[] = [];
  for (const config of configs) {
    const name = `${String(config['kind'])}/${String((config['metadata'] as Json | undefined)?.['name'] ?? '')}`;
    const { pruned, dropped } = pruneUnknownFields(minor, config);
    missing.push(...dropped.map((p) => `${name}: ${p} (unknown)`));
    missing.push(...dropDisabledFields(minor, pruned).dropped.map((p) => `${name}: ${p} (disabled by default)`));
  }
  return missing;
}

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

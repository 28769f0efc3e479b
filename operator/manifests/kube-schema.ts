// Checks Kubernetes objects against Kubernetes' own published OpenAPI schemas, as packaged on npm by
// kubernetes-models (generated from the upstream OpenAPI spec of a Kubernetes release, merged with the
// APIs older releases removed): the model class for the object's apiVersion/kind is loaded and its
// validate() run. Two releases, side by side through an npm alias:
//   - '1.36': kubernetes-models 5.1.0, generated from Kubernetes v1.36.0, the newest release on npm.
//   - '1.25': kubernetes-models 4.1.0 (npm alias kubernetes-models-1-25), generated from Kubernetes
//     v1.25.0. No kubernetes-models release was generated from 1.26 (4.0/4.1 are 1.25, 4.3/4.4 are
//     1.27.1), so this is the closest release at or below 1.26, the oldest the chart supports: a 1.26
//     API server accepts what is valid for 1.25 (API versions only add optional fields).
// Used by the tests of the rendered children, of the Helm chart, and of the requests the operator
// sends (client-node-api.wire.test.ts).
//
// The published schemas give metav1.Time and metav1.MicroTime the same `format: date-time`; the
// difference is only in which definition a field references, and the generated validators accept any
// RFC 3339 text for both. timeFormatErrors adds what the API server really parses: MicroTime with
// exactly six fractional digits (anything else is a 400), Time in whole seconds as the server writes
// it. It finds those fields through @kubernetes/client-node's generated models, which keep the
// reference (a field typed V1MicroTime vs Date).

import * as clientNode from '@kubernetes/client-node';
import { MICRO_TIME_PATTERN, TIME_PATTERN } from '../kube/kube-time.ts';

interface ModelClass {
  new (data: unknown): { validate(): void };
}

export type SchemaRelease = '1.25' | '1.36';

/** Where each release's schemas come from (npm package and the Kubernetes version it was generated from). */
export const SCHEMA_RELEASES: Readonly<Record<SchemaRelease, { npmPackage: string; kubernetesVersion: string }>> = {
  '1.25': { npmPackage: 'kubernetes-models@4.1.0 (as kubernetes-models-1-25)', kubernetesVersion: 'v1.25.0' },
  '1.36': { npmPackage: 'kubernetes-models@5.1.0', kubernetesVersion: 'v1.36.0' },
};

const PACKAGE: Record<SchemaRelease, string> = { '1.25': 'kubernetes-models-1-25', '1.36': 'kubernetes-models' };

/** Module path inside kubernetes-models for an apiVersion and kind ("apps/v1", "StatefulSet"). */
export function modelModule(apiVersion: string, kind: string, release: SchemaRelease = '1.36'): string {
  return `${PACKAGE[release]}/${apiVersion}/${kind}`;
}

/** Throws with the schema errors when `object` does not match its kind's schema in `release`. */
export async function validateKubeObject(object: { apiVersion?: unknown; kind?: unknown }, release: SchemaRelease = '1.36'): Promise<void> {
  if (typeof object.apiVersion !== 'string' || typeof object.kind !== 'string') throw new Error('object has no apiVersion/kind');
  const module = (await import(modelModule(object.apiVersion, object.kind, release))) as Record<string, ModelClass>;
  const Model = module[object.kind];
  if (Model === undefined) throw new Error(`no model for ${object.apiVersion} ${object.kind}`);
  new Model(object).validate();
}

interface AttributeType { name: string; baseName: string; type: string; format: string }
interface GeneratedModel { getAttributeTypeMap(): AttributeType[] }

function generatedModel(name: string): GeneratedModel | undefined {
  const candidate = (clientNode as Record<string, unknown>)[name];
  return typeof candidate === 'function' && typeof (candidate as Partial<GeneratedModel>).getAttributeTypeMap === 'function'
    ? (candidate as unknown as GeneratedModel)
    : undefined;
}

/** client-node's model name for a built-in apiVersion/kind (core Event is CoreV1Event); undefined for custom kinds. */
export function modelTypeName(apiVersion: string, kind: string): string | undefined {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const pascal = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
  const v = pascal(version ?? '');
  const groupPrefix = (group ?? '').split('.')[0] ?? '';
  const candidates = group === '' ? [`Core${v}${kind}`, `${v}${kind}`] : [`${pascal(groupPrefix)}${v}${kind}`, `${v}${kind}`];
  return candidates.find((c) => generatedModel(c) !== undefined);
}

/**
 * The Time/MicroTime fields of a wire body (parsed JSON) that the API server would refuse or that are
 * not written as the server writes them. `typeName` defaults to the model for the body's apiVersion/kind.
 */
export function timeFormatErrors(body: unknown, typeName?: string): string[] {
  const object = body as { apiVersion?: unknown; kind?: unknown } | null;
  const type = typeName ?? (typeof object?.apiVersion === 'string' && typeof object.kind === 'string' ? modelTypeName(object.apiVersion, object.kind) : undefined);
  const errors: string[] = [];
  if (type !== undefined) walk(body, type, '', errors);
  return errors;
}

function walk(value: unknown, type: string, path: string, errors: string[]): void {
  if (value === undefined || value === null) return;
  if (type === 'V1MicroTime') {
    if (typeof value !== 'string' || !MICRO_TIME_PATTERN.test(value)) errors.push(`${path}: MicroTime must have six fractional digits (2006-01-02T15:04:05.000000Z07:00), got ${JSON.stringify(value)}`);
    return;
  }
  if (type === 'Date') {
    if (typeof value !== 'string' || !TIME_PATTERN.test(value)) errors.push(`${path}: Time must be RFC 3339 in whole seconds, got ${JSON.stringify(value)}`);
    return;
  }
  if (type.startsWith('Array<') && Array.isArray(value)) {
    const inner = type.slice('Array<'.length, -1);
    value.forEach((item, i) => walk(item, inner, `${path}/${i}`, errors));
    return;
  }
  if (type.startsWith('{ [key: string]: ') && typeof value === 'object') {
    const inner = type.slice('{ [key: string]: '.length, -'; }'.length);
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) walk(v, inner, `${path}/${k}`, errors);
    return;
  }
  const model = generatedModel(type);
  if (model === undefined || typeof value !== 'object') return;
  for (const attribute of model.getAttributeTypeMap()) {
    walk((value as Record<string, unknown>)[attribute.baseName], attribute.type, `${path}/${attribute.baseName}`, errors);
  }
}

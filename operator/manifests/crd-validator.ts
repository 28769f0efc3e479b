// Validates a custom resource against a CRD version's schema the way the API server does, for tests
// and for `synod-operator validate`: structural OpenAPI checks and defaulting with ajv, then every
// x-kubernetes-validations CEL rule evaluated with @bufbuild/cel (self, and oldSelf for transition
// rules on updates; integers are CEL ints, as in Kubernetes). Returns the defaulted object and errors.

import { run } from '@bufbuild/cel';
import { Ajv } from 'ajv';

export interface CelRule {
  rule: string;
  message?: string;
}

export interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
  'x-kubernetes-validations'?: CelRule[];
  [keyword: string]: unknown;
}

export interface ValidationResult {
  valid: boolean;
  errors: string[];
  /** The object with the schema's defaults applied. */
  defaulted: unknown;
}

/** openAPIV3Schema → JSON Schema ajv understands (drops x-kubernetes-* keywords). */
export function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
    if (key.startsWith('x-kubernetes-')) continue;
    out[key] = key === 'properties' ? Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, toJsonSchema(v)])) : toJsonSchema(value);
  }
  if ((node as SchemaNode)['x-kubernetes-int-or-string'] === true) delete out['anyOf'];
  return out;
}

export function validateAgainstCrd(schema: SchemaNode, object: unknown, oldObject?: unknown): ValidationResult {
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)));
  const defaulted = structuredClone(object);
  const check = ajv.compile(toJsonSchema(schema) as object);
  const errors: string[] = [];
  if (!check(defaulted)) {
    for (const e of check.errors ?? []) errors.push(`${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
    return { valid: false, errors, defaulted };
  }
  evaluateRules(schema, defaulted, oldObject, '', errors);
  return { valid: errors.length === 0, errors, defaulted };
}

function evaluateRules(schema: SchemaNode, value: unknown, oldValue: unknown, path: string, errors: string[]): void {
  if (value === undefined) return;
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    const transition = /\boldSelf\b/.test(rule.rule);
    // Transition rules only run on updates, where the old value exists.
    if (transition && oldValue === undefined) continue;
    const bindings: Record<string, unknown> = { self: toCel(schema, value) };
    if (transition) bindings['oldSelf'] = toCel(schema, oldValue);
    let result: unknown;
    try {
      result = run(rule.rule, bindings as Parameters<typeof run>[1]);
    } catch (error) {
      errors.push(`${path || '/'}: rule "${rule.rule}" failed to evaluate: ${error instanceof Error ? error.message : String(error)}`);
      continue;
    }
    if (result !== true) errors.push(`${path || '/'}: ${rule.message ?? `failed rule: ${rule.rule}`}`);
  }
  if (schema.properties !== undefined && isRecord(value)) {
    for (const [key, child] of Object.entries(schema.properties)) {
      evaluateRules(child, value[key], isRecord(oldValue) ? oldValue[key] : undefined, `${path}/${key}`, errors);
    }
  }
  if (schema.items !== undefined && Array.isArray(value)) {
    // List items are correlated with old items only for map lists in Kubernetes; here, by index is not
    // used: item rules run without oldSelf.
    value.forEach((item, i) => evaluateRules(schema.items as SchemaNode, item, undefined, `${path}/${i}`, errors));
  }
}

/** JSON value → CEL input: integer-typed fields become bigint (CEL int), objects stay maps. */
function toCel(schema: SchemaNode | undefined, value: unknown): unknown {
  if (schema?.type === 'integer' && typeof value === 'number') return BigInt(value);
  if (Array.isArray(value)) return value.map((v) => toCel(schema?.items, v));
  if (isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const child = schema?.properties?.[k] ?? (typeof schema?.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      out[k] = toCel(child, v);
    }
    return out;
  }
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Checks a CustomResourceDefinition and custom resources the way the Kubernetes API server does, for
// tests and for `synod-operator validate`:
//   - validateCrdSchema: the rules the API server enforces when the CRD itself is created or
//     updated: a structural schema, and every `default` valid against its own sub-schema;
//   - kubeFeaturesUsed: which Kubernetes minor version each CRD feature needs (CEL rules,
//     messageExpression, reason/fieldPath, optionalOldSelf, CEL libraries), to check a chart's
//     kubeVersion claim;
//   - validateAgainstCrd: a custom resource as the API server handles a create or update:
//     prune unknown fields, default (the API server's algorithm, not ajv's), validate the OpenAPI
//     schema with ajv, then evaluate every x-kubernetes-validations CEL rule with @bufbuild/cel
//     (self, and oldSelf for transition rules on updates; integers are CEL ints, as in Kubernetes).
//
// Defaults, as the API server has them (k8s.io/apiextensions-apiserver, schema/defaulting):
//   - When a CRD is written, ValidateDefaults checks each `default` ALONE against its sub-schema:
//     pruned (no unknown fields), valid OpenAPI, and its CEL rules pass with self = oldSelf = the
//     default. Nested defaults are NOT applied to the default first: `storage: {default: {}}` with
//     `required: [size]` is refused ("...properties[storage].default.size: Required value") even
//     though `size` has a default of its own. So a default must spell out what its sub-schema requires.
//   - When an object is read or written, Default() walks the object top-down: at each object, every
//     absent (or null and not nullable) property with a default gets a deep copy of it, THEN it
//     recurses into every property, including those just defaulted. So nested defaults do apply to
//     a defaulted value at run time; they just cannot make an invalid default valid at CRD time.
// Not modelled: CEL cost limits (estimated and runtime), which a small CRD like ours is far below;
// the exact error texts of the API server beyond the path and "Required value".

import { run } from '@bufbuild/cel';
import { Ajv } from 'ajv';

export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: string;
  fieldPath?: string;
  optionalOldSelf?: boolean;
}

export interface SchemaNode {
  type?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: SchemaNode | boolean;
  default?: unknown;
  required?: string[];
  nullable?: boolean;
  'x-kubernetes-validations'?: CelRule[];
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: string;
  [keyword: string]: unknown;
}

export interface ValidationResult {
  valid: boolean;
  errors: string[];
  /** The object as the API server would store it: unknown fields pruned, defaults applied. */
  defaulted: unknown;
}

/** openAPIV3Schema → JSON Schema ajv understands (drops x-kubernetes-* keywords and defaults). */
export function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
    // Defaulting is done by applyDefaults (the API server's algorithm), never by the validator.
    if (key.startsWith('x-kubernetes-') || key === 'default') continue;
    out[key] = key === 'properties' ? Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, toJsonSchema(v)])) : toJsonSchema(value);
  }
  if ((node as SchemaNode)['x-kubernetes-int-or-string'] === true) delete out['anyOf'];
  return out;
}

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: false, strict: false });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('date-time', (s: string) => !Number.isNaN(Date.parse(s)));
  return ajv;
}

// ---------------------------------------------------------------------------------------------
// Custom resources

export function validateAgainstCrd(schema: SchemaNode, object: unknown, oldObject?: unknown): ValidationResult {
  // The API server's order on create/update: decode, prune unknown fields, default, validate.
  const defaulted = pruneUnknownFields(schema, structuredClone(object), true);
  applyDefaults(schema, defaulted);
  const check = newAjv().compile(toJsonSchema(schema) as object);
  const errors: string[] = [];
  if (!check(defaulted)) {
    for (const e of check.errors ?? []) errors.push(`${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
    return { valid: false, errors, defaulted };
  }
  evaluateRules(schema, defaulted, oldObject, '', errors);
  return { valid: errors.length === 0, errors, defaulted };
}

/**
 * The API server's structural defaulting (schema/defaulting/algorithm.go): at each object, absent or
 * non-nullable null properties get a copy of their default, then every property is defaulted in
 * turn, so defaults nested in a defaulted value apply too. Mutates `value`.
 */
export function applyDefaults(schema: SchemaNode | undefined, value: unknown): void {
  if (schema === undefined) return;
  if (isRecord(value)) {
    for (const [key, prop] of Object.entries(schema.properties ?? {})) {
      if (prop.default === undefined) continue;
      if (!(key in value) || (value[key] === null && prop.nullable !== true)) value[key] = structuredClone(prop.default);
    }
    const additional = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
    for (const key of Object.keys(value)) {
      const prop = schema.properties?.[key] ?? additional;
      applyDefaults(prop, value[key]);
    }
  } else if (Array.isArray(value)) {
    value.forEach((item) => applyDefaults(schema.items, item));
  }
}

/**
 * Drops fields the schema does not specify (schema/pruning): not under
 * x-kubernetes-preserve-unknown-fields, and at the resource root apiVersion, kind and metadata stay.
 * Returns the pruned value (mutated in place where it is an object or array).
 */
export function pruneUnknownFields(schema: SchemaNode | undefined, value: unknown, isRoot = false): unknown {
  if (schema === undefined || schema['x-kubernetes-preserve-unknown-fields'] === true) return value;
  if (isRecord(value)) {
    const additional = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
    const embedded = isRoot || schema['x-kubernetes-embedded-resource'] === true;
    for (const key of Object.keys(value)) {
      if (embedded && (key === 'apiVersion' || key === 'kind' || key === 'metadata')) continue;
      const prop = schema.properties?.[key] ?? additional;
      if (prop === undefined) delete value[key];
      else value[key] = pruneUnknownFields(prop, value[key]);
    }
  } else if (Array.isArray(value)) {
    return value.map((item) => pruneUnknownFields(schema.items, item));
  }
  return value;
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
    // Item rules run without oldSelf: the CRD check below refuses transition rules on items of lists
    // the API server cannot correlate, and our map lists carry none.
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

// ---------------------------------------------------------------------------------------------
// The CRD itself

/** Keywords apiextensions.k8s.io/v1 refuses anywhere in a schema. */
const FORBIDDEN_KEYWORDS = ['$ref', '$schema', 'definitions', 'id', 'additionalItems', 'patternProperties', 'dependencies'];
/** What a value validation under anyOf/allOf/oneOf/not must not carry to be structural. */
const FORBIDDEN_NESTED = ['type', 'default', 'description', 'title', 'nullable', 'additionalProperties', 'externalDocs',
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource', 'x-kubernetes-int-or-string',
  'x-kubernetes-list-map-keys', 'x-kubernetes-list-type', 'x-kubernetes-map-type', 'x-kubernetes-validations'];

type Level = 'root' | 'item' | 'field';

/**
 * What the API server checks when the CRD is created or updated, for one version's
 * openAPIV3Schema: structural schema rules (schema/validation.go and the CRD API validation) and
 * defaults (schema/defaulting/validation.go, see the header). Returns errors as
 * `openAPIV3Schema.<path>: <message>`; empty when the API server would accept the schema.
 */
export function validateCrdSchema(schema: SchemaNode): string[] {
  const errors: string[] = [];
  checkStructural(schema, 'root', 'openAPIV3Schema', errors, true);
  checkDefaults(schema, 'openAPIV3Schema', errors);
  return errors;
}

function checkStructural(s: SchemaNode, level: Level, path: string, errors: string[], correlatable: boolean): void {
  const err = (where: string, message: string): void => {
    errors.push(`${where}: ${message}`);
  };
  for (const keyword of FORBIDDEN_KEYWORDS) if (keyword in s) err(`${path}.${keyword}`, 'Forbidden: not allowed in apiextensions.k8s.io/v1 schemas');
  if (s['uniqueItems'] === true) err(`${path}.uniqueItems`, 'Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic');
  const intOrString = s['x-kubernetes-int-or-string'] === true;
  const preserve = s['x-kubernetes-preserve-unknown-fields'];
  const embedded = s['x-kubernetes-embedded-resource'] === true;
  if (preserve === false) err(`${path}.x-kubernetes-preserve-unknown-fields`, 'Invalid value: must be true or undefined');
  if (intOrString && preserve === true) err(`${path}.x-kubernetes-preserve-unknown-fields`, 'Invalid value: must be false if x-kubernetes-int-or-string is true');
  if (intOrString && embedded) err(`${path}.x-kubernetes-embedded-resource`, 'Invalid value: must be false if x-kubernetes-int-or-string is true');
  if (intOrString && s.type !== undefined) err(`${path}.type`, 'Invalid value: must be empty if x-kubernetes-int-or-string is true');
  if (embedded && s.type !== 'object') err(`${path}.type`, 'Required value: must be object if x-kubernetes-embedded-resource is true');
  if (embedded && preserve !== true && Object.keys(s.properties ?? {}).length === 0) err(`${path}.properties`, 'Required value: must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields');
  if (s.type === undefined && !intOrString && preserve !== true && !embedded) {
    err(`${path}.type`, `Required value: must not be empty ${level === 'root' ? 'at the root' : level === 'item' ? 'for specified array items' : 'for specified object fields'}`);
  }
  if (level === 'root' && s.type !== undefined && s.type !== 'object') err(`${path}.type`, 'Invalid value: must be object at the root');
  if (s.type === 'array' && s.items === undefined) err(`${path}.items`, 'Required value: must be specified');
  if (s.additionalProperties !== undefined) {
    if (level === 'root') err(`${path}.additionalProperties`, 'Forbidden: must not be used at the root');
    if (s.additionalProperties === false) err(`${path}.additionalProperties`, 'Forbidden: additionalProperties cannot be set to false');
    if (s.properties !== undefined && Object.keys(s.properties).length > 0) err(`${path}.additionalProperties`, 'Forbidden: additionalProperties and properties are mutual exclusive');
    if (embedded) err(`${path}.additionalProperties`, 'Forbidden: must not be used if x-kubernetes-embedded-resource is set');
  }
  if (!intOrString && s['anyOf'] !== undefined || intOrString && !isIntOrStringAnyOf(s['anyOf'])) {
    for (const [i, nested] of asArray(s['anyOf']).entries()) checkNested(nested, `${path}.anyOf[${i}]`, errors);
  }
  for (const junctor of ['allOf', 'oneOf']) {
    for (const [i, nested] of asArray(s[junctor]).entries()) checkNested(nested, `${path}.${junctor}[${i}]`, errors);
  }
  if (isRecord(s['not'])) checkNested(s['not'], `${path}.not`, errors);

  // List and map semantics (x-kubernetes-list-type, -map-type).
  const listType = s['x-kubernetes-list-type'];
  if (listType !== undefined) {
    if (s.type !== 'array') err(`${path}.x-kubernetes-list-type`, 'Invalid value: must only be used on arrays');
    if (!['atomic', 'set', 'map'].includes(listType)) err(`${path}.x-kubernetes-list-type`, `Unsupported value: "${listType}"`);
    if (listType === 'map') {
      const keys = s['x-kubernetes-list-map-keys'] ?? [];
      if (s.items?.type !== 'object') err(`${path}.items.type`, 'Invalid value: must be object when x-kubernetes-list-type is map');
      if (keys.length === 0) err(`${path}.x-kubernetes-list-map-keys`, 'Required value: must not be empty if x-kubernetes-list-type is map');
      for (const key of keys) {
        const keySchema = s.items?.properties?.[key];
        if (keySchema === undefined) err(`${path}.x-kubernetes-list-map-keys`, `Invalid value: "${key}" is not a property of the items`);
        else if (!['string', 'integer', 'number', 'boolean'].includes(keySchema.type ?? '')) err(`${path}.x-kubernetes-list-map-keys`, `Invalid value: "${key}" must be a scalar`);
      }
    }
    if (listType === 'set' && s.items !== undefined && (s.items.type === 'object' || s.items.type === 'array') && s.items['x-kubernetes-map-type'] !== 'atomic' && s.items['x-kubernetes-list-type'] !== 'atomic') {
      err(`${path}.items`, 'Invalid value: items of a set list must be scalars or atomic');
    }
  }
  if (s['x-kubernetes-list-map-keys'] !== undefined && listType !== 'map') err(`${path}.x-kubernetes-list-map-keys`, 'Forbidden: requires x-kubernetes-list-type: map');
  const mapType = s['x-kubernetes-map-type'];
  if (mapType !== undefined) {
    if (s.type !== 'object') err(`${path}.x-kubernetes-map-type`, 'Invalid value: must only be used on objects');
    if (mapType !== 'granular' && mapType !== 'atomic') err(`${path}.x-kubernetes-map-type`, `Unsupported value: "${mapType}"`);
  }

  // CEL: a transition rule needs an old value the API server can correlate with the new one, which
  // items of a list only have in map lists (by key).
  for (const [i, rule] of (s['x-kubernetes-validations'] ?? []).entries()) {
    if (typeof rule.rule !== 'string' || rule.rule.trim() === '') err(`${path}.x-kubernetes-validations[${i}].rule`, 'Required value');
    else if (/\boldSelf\b/.test(rule.rule) && !correlatable) err(`${path}.x-kubernetes-validations[${i}].rule`, 'Invalid value: oldSelf cannot be used on the uncorrelatable portion of the schema');
  }

  // Metadata: at the root (or in an embedded resource) only name and generateName may be restricted.
  const metadata = s.properties?.['metadata'];
  if (metadata !== undefined && (level === 'root' || embedded)) {
    if (metadata.type !== 'object') err(`${path}.properties[metadata].type`, 'Invalid value: must be object');
    const extra = Object.keys(metadata).filter((k) => k !== 'type' && k !== 'properties' && k !== 'description');
    const props = Object.keys(metadata.properties ?? {}).filter((k) => k !== 'name' && k !== 'generateName');
    if (extra.length > 0 || props.length > 0) err(`${path}.properties[metadata]`, 'Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified');
  }
  for (const key of ['apiVersion', 'kind']) {
    const node = s.properties?.[key];
    if (node !== undefined && (level === 'root' || embedded) && node.type !== 'string') err(`${path}.properties[${key}].type`, 'Invalid value: must be string');
  }

  if (s.items !== undefined) checkStructural(s.items, 'item', `${path}.items`, errors, correlatable && listType === 'map');
  for (const [key, child] of Object.entries(s.properties ?? {})) {
    if ((level === 'root' || embedded) && key === 'metadata') continue;
    checkStructural(child, 'field', `${path}.properties[${key}]`, errors, correlatable);
  }
  if (isRecord(s.additionalProperties)) checkStructural(s.additionalProperties as SchemaNode, 'field', `${path}.additionalProperties`, errors, correlatable);
}

function checkNested(node: unknown, path: string, errors: string[]): void {
  if (!isRecord(node)) return;
  for (const keyword of FORBIDDEN_NESTED) if (keyword in node) errors.push(`${path}.${keyword}: Forbidden: must be undefined to be structural`);
  if (isRecord(node['properties']) && 'metadata' in node['properties']) errors.push(`${path}.properties[metadata]: Forbidden: must not be specified in a nested context`);
  for (const [key, child] of Object.entries(isRecord(node['properties']) ? node['properties'] : {})) checkNested(child, `${path}.properties[${key}]`, errors);
  if (isRecord(node['items'])) checkNested(node['items'], `${path}.items`, errors);
  for (const junctor of ['anyOf', 'allOf', 'oneOf']) for (const [i, n] of asArray(node[junctor]).entries()) checkNested(n, `${path}.${junctor}[${i}]`, errors);
  if (isRecord(node['not'])) checkNested(node['not'], `${path}.not`, errors);
}

function isIntOrStringAnyOf(anyOf: unknown): boolean {
  const list = asArray(anyOf);
  return list.length === 2 && isRecord(list[0]) && list[0]['type'] === 'integer' && isRecord(list[1]) && list[1]['type'] === 'string';
}

/**
 * Every `default` in the schema, checked on its own as ValidateDefaults does: pruned, valid
 * against its sub-schema WITHOUT nested defaulting, and passing its CEL rules with
 * self = oldSelf = the default. Defaults under metadata are not allowed at all.
 */
function checkDefaults(s: SchemaNode, path: string, errors: string[]): void {
  if (s.default !== undefined) {
    const where = `${path}.default`;
    const pruned = pruneUnknownFields(s, structuredClone(s.default));
    if (JSON.stringify(pruned) !== JSON.stringify(s.default)) errors.push(`${where}: Invalid value: must not have unknown fields`);
    const check = newAjv().compile(toJsonSchema(s) as object);
    if (!check(structuredClone(s.default))) {
      for (const e of check.errors ?? []) {
        const at = `${where}${e.instancePath.replaceAll('/', '.')}`;
        if (e.keyword === 'required') errors.push(`${at}.${String((e.params as { missingProperty: unknown }).missingProperty)}: Required value`);
        else errors.push(`${at}: Invalid value: ${e.message ?? 'is invalid'}`);
      }
    } else {
      const celErrors: string[] = [];
      evaluateRules(s, s.default, s.default, '', celErrors);
      for (const e of celErrors) errors.push(`${where}: Invalid value: ${e}`);
    }
  }
  // The API server does not follow additionalProperties: defaults are forbidden there.
  if (s.items !== undefined) checkDefaults(s.items, `${path}.items`, errors);
  for (const [key, child] of Object.entries(s.properties ?? {})) {
    if (path === 'openAPIV3Schema' && key === 'metadata') {
      if (JSON.stringify(child).includes('"default"')) errors.push(`${path}.properties[metadata]: Forbidden: defaults are not allowed in metadata here`);
      continue;
    }
    checkDefaults(child, `${path}.properties[${key}]`, errors);
  }
}

// ---------------------------------------------------------------------------------------------
// Kubernetes versions

/** A CRD feature and the first Kubernetes 1.x minor version where it is available by default. */
export interface KubeFeatureUse {
  feature: string;
  /** Where in the CRD it is used. */
  path: string;
  /** First minor version (1.x) that has it on by default. */
  sinceMinor: number;
}

/**
 * CEL functions and macros a CRD rule may call, with the first Kubernetes minor version that has them.
 * 25: CEL's standard definitions plus the libraries Kubernetes enabled with CRD validation rules
 * (beta, on by default, in 1.25): strings, lists, regex, URLs. Later libraries carry the release
 * that made them available to CRD rules, rounded up where the history is unclear (a stricter
 * claim only makes this check more cautious). A function missing here fails the check until it
 * is added with its version: this table is the list of what we know, not a guess.
 */
export const CEL_FUNCTION_SINCE: Readonly<Record<string, number>> = {
  // CEL standard definitions and macros.
  has: 25, size: 25, matches: 25, startsWith: 25, endsWith: 25, contains: 25, int: 25, uint: 25, double: 25,
  string: 25, bytes: 25, bool: 25, duration: 25, timestamp: 25, type: 25, dyn: 25, all: 25, exists: 25,
  exists_one: 25, map: 25, filter: 25, getFullYear: 25, getMonth: 25, getDate: 25, getDayOfMonth: 25,
  getDayOfWeek: 25, getDayOfYear: 25, getHours: 25, getMinutes: 25, getSeconds: 25, getMilliseconds: 25,
  // Kubernetes libraries of 1.25: strings, lists, regex, URLs.
  charAt: 25, indexOf: 25, lastIndexOf: 25, lowerAscii: 25, upperAscii: 25, replace: 25, split: 25,
  substring: 25, trim: 25, join: 25, isSorted: 25, sum: 25, min: 25, max: 25, find: 25, findAll: 25,
  url: 25, isURL: 25, getScheme: 25, getHost: 25, getHostname: 25, getPort: 25, getEscapedPath: 25, getQuery: 25,
  // Later libraries.
  isQuantity: 29, quantity: 29, sets: 30, isIP: 31, ip: 31, isCIDR: 31, cidr: 31, format: 31, isSemver: 33, semver: 33,
};

/** Lowest minor version of a Helm kubeVersion constraint such as ">=1.25.0-0". */
export function minimumKubeMinor(constraint: string): number {
  const match = />=\s*v?1\.(\d+)/.exec(constraint);
  if (match === null) throw new Error(`kubeVersion "${constraint}" has no lower bound of the form >=1.x`);
  return Number(match[1]);
}

interface CrdLike {
  spec: { versions: { name: string; schema?: { openAPIV3Schema?: SchemaNode }; selectableFields?: unknown[] }[] };
}

/** Every version-dependent feature the CRD uses, with the minor version that has it on by default. */
export function kubeFeaturesUsed(crd: CrdLike): KubeFeatureUse[] {
  const uses: KubeFeatureUse[] = [];
  for (const [i, version] of crd.spec.versions.entries()) {
    const base = `spec.versions[${i}]`;
    if (version.selectableFields !== undefined) uses.push({ feature: 'selectableFields', path: `${base}.selectableFields`, sinceMinor: 31 });
    const schema = version.schema?.openAPIV3Schema;
    if (schema !== undefined) collectFeatures(schema, `${base}.schema.openAPIV3Schema`, uses);
  }
  return uses;
}

function collectFeatures(s: SchemaNode, path: string, uses: KubeFeatureUse[]): void {
  for (const [i, rule] of (s['x-kubernetes-validations'] ?? []).entries()) {
    const at = `${path}.x-kubernetes-validations[${i}]`;
    // CRD validation rules: alpha in 1.23 (off), beta and on by default from 1.25, GA in 1.29.
    uses.push({ feature: 'x-kubernetes-validations (CEL)', path: at, sinceMinor: 25 });
    if (/\boldSelf\b/.test(rule.rule)) uses.push({ feature: 'transition rule (oldSelf)', path: at, sinceMinor: 25 });
    if (rule.messageExpression !== undefined) uses.push({ feature: 'messageExpression', path: at, sinceMinor: 27 });
    if (rule.reason !== undefined) uses.push({ feature: 'reason', path: at, sinceMinor: 28 });
    if (rule.fieldPath !== undefined) uses.push({ feature: 'fieldPath', path: at, sinceMinor: 28 });
    // optionalOldSelf: added in 1.29 behind CRDValidationRatcheting (alpha, off), on by default in 1.30.
    if (rule.optionalOldSelf !== undefined) uses.push({ feature: 'optionalOldSelf', path: at, sinceMinor: 30 });
    for (const expression of [rule.rule, rule.messageExpression ?? '']) {
      for (const match of expression.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*\(/g)) {
        const name = match[1];
        const since = CEL_FUNCTION_SINCE[name];
        // Unknown: reported as needing a version no release has, so the check fails until it is known.
        uses.push({ feature: `CEL function ${name}()`, path: at, sinceMinor: since ?? Number.POSITIVE_INFINITY });
      }
      for (const match of expression.matchAll(/\b(sets|format)\.[A-Za-z]+\s*\(/g)) {
        uses.push({ feature: `CEL library ${match[1]}`, path: at, sinceMinor: CEL_FUNCTION_SINCE[match[1]] ?? Number.POSITIVE_INFINITY });
      }
    }
  }
  if (s.items !== undefined) collectFeatures(s.items, `${path}.items`, uses);
  for (const [key, child] of Object.entries(s.properties ?? {})) collectFeatures(child, `${path}.properties[${key}]`, uses);
  if (isRecord(s.additionalProperties)) collectFeatures(s.additionalProperties as SchemaNode, `${path}.additionalProperties`, uses);
}

/** The features the CRD uses that Kubernetes 1.<minor> does not have on by default. */
export function featuresMissingIn(crd: CrdLike, minor: number): KubeFeatureUse[] {
  return kubeFeaturesUsed(crd).filter((use) => use.sinceMinor > minor);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// The SynodCluster CRD: valid against Kubernetes' own CRD schema, identical in the chart, and example
// resources (valid and rejected ones) checked against its schema with its CEL rules evaluated, and
// the operator's own spec validation agreeing with the CEL rules. The CRD itself passes the checks the
// API server makes when it is created (structural schema, every default valid on its own, with no
// nested defaulting) and uses no feature newer than the chart's minimum kubeVersion.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateSpec, withDefaults } from '../api/spec-defaults.ts';
import type { SchemaNode } from './crd-validator.ts';
import {
  applyDefaults, featuresMissingIn, kubeFeaturesUsed, minimumKubeMinor, validateAgainstCrd, validateCrdSchema,
} from './crd-validator.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CRD_PATH = path.join(ROOT, 'crds', 'synod.dev_synodclusters.yaml');
const crdText = readFileSync(CRD_PATH, 'utf8');
const crd = parse(crdText) as { spec: { versions: { name: string; schema: { openAPIV3Schema: SchemaNode }; subresources: Record<string, unknown>; additionalPrinterColumns: { name: string; jsonPath: string }[] }[] } };
const version = crd.spec.versions[0];
const schema = version.schema.openAPIV3Schema;

function example(name: string): Record<string, unknown> {
  return parse(readFileSync(path.join(ROOT, 'crds', 'examples', name), 'utf8')) as Record<string, unknown>;
}

function resource(spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'synod.dev/v1alpha1', kind: 'SynodCluster', metadata: { name: 'x' }, spec };
}

const base = { replicas: 3, version: '0.1.0', storage: { size: '1Gi' } };

describe('SynodCluster CRD', () => {
  it('is a valid apiextensions.k8s.io/v1 CustomResourceDefinition (Kubernetes schema)', () => {
    expect(() => new CustomResourceDefinition(parse(crdText)).validate()).not.toThrow();
    // The check is not vacuous: a CRD without names, or with versions of the wrong shape, is refused.
    const broken = parse(crdText) as { spec: Record<string, unknown> };
    const { names: _names, ...withoutNames } = broken.spec;
    expect(() => new CustomResourceDefinition({ ...broken, spec: withoutNames } as never).validate()).toThrow(/names/);
    expect(() => new CustomResourceDefinition({ ...broken, spec: { ...broken.spec, versions: 'v1' } } as never).validate()).toThrow(/versions/);
  });

  it('is shipped unchanged in the Helm chart', () => {
    expect(readFileSync(path.join(ROOT, 'charts', 'synod-operator', 'crds', 'synod.dev_synodclusters.yaml'), 'utf8')).toBe(crdText);
  });

  it('has status and scale subresources and the printer columns', () => {
    expect(version.subresources).toEqual({
      status: {},
      scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
    });
    expect(version.additionalPrinterColumns.map((c) => c.name)).toEqual(['Ready', 'Members', 'Leader', 'Version', 'Shards', 'Rebalancing', 'Age']);
  });

  it('accepts the examples and fills in the defaults', () => {
    const minimal = validateAgainstCrd(schema, example('synodcluster-minimal.yaml'));
    expect(minimal.errors).toEqual([]);
    expect((minimal.defaulted as { spec: { storage: unknown } }).spec.storage).toEqual({ size: '1Gi', retentionPolicyOnScaleIn: 'Delete' });
    expect((minimal.defaulted as { spec: { persistence: unknown } }).spec.persistence).toEqual({ whenDeleted: 'Retain' });
    expect(validateAgainstCrd(schema, example('synodcluster-full.yaml')).errors).toEqual([]);
  });

  it('defaults an empty spec to three members of the default version', () => {
    const result = validateAgainstCrd(schema, resource({}));
    expect(result.errors).toEqual([]);
    expect((result.defaulted as { spec: unknown }).spec).toEqual(withDefaults({}));
  });

  const rejected: [string, Record<string, unknown>, RegExp][] = [
    ['an even replica count (CEL)', { ...base, replicas: 4 }, /replicas must be odd and at least 1/],
    ['zero replicas', { ...base, replicas: 0 }, /replicas must be >= 1/],
    ['more than nine replicas', { ...base, replicas: 11 }, /replicas must be <= 9/],
    ['a fractional replica count', { ...base, replicas: 2.5 }, /replicas must be integer/],
    ['a version that is no image tag', { ...base, version: 'v1 beta' }, /version must match pattern/],
    ['a storage size that is no quantity', { ...base, storage: { size: 'lots' } }, /size must match pattern/],
    ['an unknown retention policy', { ...base, storage: { size: '1Gi', retentionPolicyOnScaleIn: 'Keep' } }, /must be equal to one of the allowed values/],
    ['an unknown pull policy', { ...base, imagePullPolicy: 'Sometimes' }, /must be equal to one of the allowed values/],
    ['env without a value', { ...base, podTemplate: { env: [{ name: 'A' }] } }, /must have required property 'value'/],
  ];
  for (const [what, spec, message] of rejected) {
    it(`rejects ${what}`, () => {
      const result = validateAgainstCrd(schema, resource(spec));
      expect(result.valid).toBe(false);
      expect(result.errors.join('\n')).toMatch(message);
    });
  }

  it('rejects a resource without a spec', () => {
    expect(validateAgainstCrd(schema, { apiVersion: 'synod.dev/v1alpha1', kind: 'SynodCluster', metadata: { name: 'x' } }).errors.join()).toMatch(/required property 'spec'/);
  });

  it('rejects changing, adding or removing the storage class on update (CEL transition rules)', () => {
    const old = resource({ ...base, storage: { size: '1Gi', storageClassName: 'standard' } });
    expect(validateAgainstCrd(schema, resource({ ...base, storage: { size: '1Gi', storageClassName: 'fast' } }), old).errors)
      .toContain('/spec/storage/storageClassName: storage.storageClassName is immutable');
    expect(validateAgainstCrd(schema, resource(base), old).errors).toContain('/spec/storage: storage.storageClassName is immutable');
    expect(validateAgainstCrd(schema, old, resource(base)).errors).toContain('/spec/storage: storage.storageClassName is immutable');
    expect(validateAgainstCrd(schema, resource({ ...base, storage: { size: '2Gi' } }), resource(base)).errors).toContain('/spec/storage/size: storage.size is immutable');
  });

  it('accepts scaling and upgrading on update', () => {
    const old = resource({ ...base, storage: { size: '1Gi', storageClassName: 'standard' } });
    const next = resource({ ...base, replicas: 5, version: '0.2.0', storage: { size: '1Gi', storageClassName: 'standard' } });
    expect(validateAgainstCrd(schema, next, old).errors).toEqual([]);
  });

  it('agrees with the operator\'s own spec validation on the CEL rules', () => {
    for (const replicas of [1, 2, 3, 4, 5, 7, 9]) {
      const crdErrors = validateAgainstCrd(schema, resource({ ...base, replicas })).errors;
      const operatorErrors = validateSpec(withDefaults({ ...base, replicas }));
      expect(operatorErrors.length === 0, `replicas ${replicas}`).toBe(crdErrors.length === 0);
      if (operatorErrors.length > 0) expect(crdErrors.join()).toContain(operatorErrors[0]);
    }
    const old = withDefaults({ ...base, storage: { size: '1Gi', storageClassName: 'a' } });
    expect(validateSpec(withDefaults({ ...base, storage: { size: '1Gi', storageClassName: 'b' } }), old)).toEqual(['storage.storageClassName is immutable']);
  });
});

// ---- Sharding (issue 16) ----
describe('SynodCluster CRD: shards, replicationFactor, zones', () => {
  it('accepts the sharded example (16 shards, 3 zones) and defaults what it leaves out', () => {
    const result = validateAgainstCrd(schema, example('synodcluster-sharded.yaml'));
    expect(result.errors).toEqual([]);
    const spec = (result.defaulted as { spec: Record<string, unknown> }).spec;
    expect(spec['shards']).toBe(16);
    expect(spec['zones']).toEqual({ topologyKey: 'topology.kubernetes.io/zone', maxSkew: 1, whenUnsatisfiable: 'DoNotSchedule', names: ['zone-a', 'zone-b', 'zone-c'] });
    expect(withDefaults(spec)).toMatchObject({ shards: 16, replicationFactor: 3, zones: spec['zones'] });
    const partial = validateAgainstCrd(schema, resource({ ...base, shards: 4, zones: {} }));
    expect((partial.defaulted as { spec: Record<string, unknown> }).spec['zones']).toEqual({ topologyKey: 'topology.kubernetes.io/zone', maxSkew: 1, whenUnsatisfiable: 'DoNotSchedule' });
  });

  it('refuses shards that are not a power of two, with a clear message (CEL)', () => {
    for (const shards of [3, 12, 24, 1000]) {
      const result = validateAgainstCrd(schema, resource({ ...base, shards }));
      expect(result.errors, `shards ${shards}`).toContain('/spec/shards: shards must be a power of two');
    }
    const example12 = { ...example('synodcluster-sharded.yaml') };
    example12['spec'] = { ...(example12['spec'] as object), shards: 12 };
    expect(validateAgainstCrd(schema, example12).errors).toEqual(['/spec/shards: shards must be a power of two']);
    expect(validateAgainstCrd(schema, resource({ ...base, shards: 2048 })).errors.join()).toMatch(/shards must be <= 1024/);
    expect(validateAgainstCrd(schema, resource({ ...base, shards: 0 })).errors.join()).toMatch(/shards must be >= 1/);
  });

  it('refuses a changed shards or replicationFactor on update (CEL transition rules), accepts other changes', () => {
    const old = example('synodcluster-sharded.yaml');
    const withSpec = (patch: Record<string, unknown>): Record<string, unknown> => ({ ...old, spec: { ...(old['spec'] as object), ...patch } });
    expect(validateAgainstCrd(schema, withSpec({ shards: 32 }), old).errors).toEqual(['/spec/shards: shards is immutable']);
    expect(validateAgainstCrd(schema, withSpec({ replicationFactor: 5 }), old).errors).toEqual(['/spec/replicationFactor: replicationFactor is immutable']);
    // Left out on update: the default (1) differs from the stored 16, so it is a change, refused.
    const { shards: _shards, ...withoutShards } = old['spec'] as Record<string, unknown>;
    expect(validateAgainstCrd(schema, { ...old, spec: withoutShards }, old).errors).toEqual(['/spec/shards: shards is immutable']);
    expect(validateAgainstCrd(schema, withSpec({ replicas: 7, version: '0.2.0' }), old).errors).toEqual([]);
    // A cluster created before spec.shards existed reads as 1 (defaulted on read): it stays 1.
    expect(validateAgainstCrd(schema, resource({ ...base, replicas: 5 }), resource(base)).errors).toEqual([]);
  });

  it('refuses a replicationFactor the server refuses, and unknown zone policies', () => {
    expect(validateAgainstCrd(schema, resource({ ...base, replicationFactor: 8 })).errors.join()).toMatch(/replicationFactor must be <= 7/);
    expect(validateAgainstCrd(schema, resource({ ...base, zones: { whenUnsatisfiable: 'Sometimes' } })).errors.join()).toMatch(/must be equal to one of the allowed values/);
  });

  it('agrees with the operator\'s own spec validation', () => {
    for (const shards of [1, 2, 3, 4, 12, 16, 1024, 2048]) {
      const crdErrors = validateAgainstCrd(schema, resource({ ...base, shards })).errors;
      const operatorErrors = validateSpec(withDefaults({ ...base, shards }));
      expect(operatorErrors.length === 0, `shards ${shards}`).toBe(crdErrors.length === 0);
      if (crdErrors.some((e) => e.includes('power of two'))) expect(operatorErrors).toContain('shards must be a power of two');
    }
    for (const replicationFactor of [0, 3, 7, 8]) {
      const crdOk = validateAgainstCrd(schema, resource({ ...base, replicationFactor })).errors.length === 0;
      expect(validateSpec(withDefaults({ ...base, replicationFactor })).length === 0, `replicationFactor ${replicationFactor}`).toBe(crdOk);
    }
    const old = withDefaults({ ...base, shards: 16 });
    expect(validateSpec(withDefaults({ ...base, shards: 32 }), old)).toEqual(['shards is immutable']);
    expect(validateSpec(withDefaults({ ...base, shards: 16, replicationFactor: 5 }), old)).toEqual(['replicationFactor is immutable']);
  });
});

/** A deep copy of the schema with `edit` applied to it. */
function edited(edit: (s: SchemaNode & { properties: Record<string, SchemaNode> }) => void): SchemaNode {
  const copy = structuredClone(schema) as SchemaNode & { properties: Record<string, SchemaNode> };
  edit(copy);
  return copy;
}

function specProps(s: SchemaNode): Record<string, SchemaNode> {
  return (s.properties as Record<string, SchemaNode>)['spec'].properties as Record<string, SchemaNode>;
}

describe('SynodCluster CRD as the API server checks it on create', () => {
  it('is a structural schema whose every default is valid on its own', () => {
    expect(validateCrdSchema(schema)).toEqual([]);
  });

  it('refuses a default that is valid only after nested defaulting (what a real 1.26 API server said)', () => {
    const bad = edited((s) => { specProps(s)['storage'].default = {}; });
    expect(validateCrdSchema(bad)).toContain('openAPIV3Schema.properties[spec].properties[storage].default.size: Required value');
  });

  it('refuses defaults with unknown fields, of the wrong type, or breaking their CEL rules', () => {
    const unknown = edited((s) => { specProps(s)['persistence'].default = { whenDeleted: 'Retain', keep: true }; });
    expect(validateCrdSchema(unknown)).toContain('openAPIV3Schema.properties[spec].properties[persistence].default: Invalid value: must not have unknown fields');
    const wrongEnum = edited((s) => { specProps(s)['persistence'].default = { whenDeleted: 'Keep' }; });
    expect(validateCrdSchema(wrongEnum).join('\n')).toMatch(/properties\[persistence\]\.default\.whenDeleted: Invalid value: must be equal to one of the allowed values/);
    const evenDefault = edited((s) => {
      const spec = (s.properties as Record<string, SchemaNode>)['spec'];
      spec.default = { replicas: 4, version: '0.1.0', storage: { size: '1Gi' } };
    });
    expect(validateCrdSchema(evenDefault).join('\n')).toMatch(/properties\[spec\]\.default: Invalid value: .*replicas must be odd/);
  });

  it('refuses what is not structural', () => {
    const noType = edited((s) => { delete specProps(s)['version'].type; });
    expect(validateCrdSchema(noType)).toContain('openAPIV3Schema.properties[spec].properties[version].type: Required value: must not be empty for specified object fields');
    const both = edited((s) => { specProps(s)['podTemplate'].additionalProperties = { type: 'string' }; });
    expect(validateCrdSchema(both)).toContain('openAPIV3Schema.properties[spec].properties[podTemplate].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive');
    const typedAnyOf = edited((s) => { specProps(s)['image'].anyOf = [{ type: 'string', maxLength: 3 }]; });
    expect(validateCrdSchema(typedAnyOf)).toContain('openAPIV3Schema.properties[spec].properties[image].anyOf[0].type: Forbidden: must be undefined to be structural');
    const arrayWithoutItems = edited((s) => { delete (specProps(s)['podTemplate'].properties as Record<string, SchemaNode>)['env'].items; });
    expect(validateCrdSchema(arrayWithoutItems)).toContain('openAPIV3Schema.properties[spec].properties[podTemplate].properties[env].items: Required value: must be specified');
    const mapKeyMissing = edited((s) => {
      const status = (s.properties as Record<string, SchemaNode>)['status'].properties as Record<string, SchemaNode>;
      status['conditions']['x-kubernetes-list-map-keys'] = ['kind'];
    });
    expect(validateCrdSchema(mapKeyMissing).join('\n')).toMatch(/properties\[conditions\]\.x-kubernetes-list-map-keys: Invalid value: "kind" is not a property/);
  });

  it('refuses a transition rule the API server cannot correlate (items of an atomic list)', () => {
    const bad = edited((s) => {
      const env = (specProps(s)['podTemplate'].properties as Record<string, SchemaNode>)['env'];
      (env.items as SchemaNode)['x-kubernetes-validations'] = [{ rule: 'self.name == oldSelf.name' }];
    });
    expect(validateCrdSchema(bad)).toContain('openAPIV3Schema.properties[spec].properties[podTemplate].properties[env].items.x-kubernetes-validations[0].rule: Invalid value: oldSelf cannot be used on the uncorrelatable portion of the schema');
  });
});

describe('SynodCluster defaulting as the API server does it', () => {
  it('applies nested defaults inside a defaulted object (defaulting runs top-down on the result)', () => {
    const object: Record<string, unknown> = {};
    applyDefaults((schema.properties as Record<string, SchemaNode>)['spec'], object);
    expect(object).toEqual({ replicas: 3, version: '0.1.0', storage: { size: '1Gi', retentionPolicyOnScaleIn: 'Delete' }, persistence: { whenDeleted: 'Retain' }, shards: 1, replicationFactor: 3 });
  });

  it('fills what is missing in a partly given object and keeps what is given', () => {
    const result = validateAgainstCrd(schema, resource({ ...base, storage: { storageClassName: 'fast' } }));
    expect(result.errors).toEqual([]);
    expect((result.defaulted as { spec: { storage: unknown } }).spec.storage).toEqual({ size: '1Gi', storageClassName: 'fast', retentionPolicyOnScaleIn: 'Delete' });
  });

  it('replaces an explicit null of a non-nullable field with its default, and prunes unknown fields', () => {
    const result = validateAgainstCrd(schema, resource({ ...base, replicas: null, colour: 'blue', storage: { size: '1Gi', tier: 'gold' } }));
    expect(result.errors).toEqual([]);
    const spec = (result.defaulted as { spec: Record<string, unknown> }).spec;
    expect(spec['replicas']).toBe(3);
    expect(spec['colour']).toBeUndefined();
    expect(spec['storage']).toEqual({ size: '1Gi', retentionPolicyOnScaleIn: 'Delete' });
  });

  it('rejects an unknown deletion policy', () => {
    expect(validateAgainstCrd(schema, resource({ ...base, persistence: { whenDeleted: 'Archive' } })).errors.join()).toMatch(/whenDeleted must be equal to one of the allowed values/);
  });
});

describe('SynodCluster CRD against the Kubernetes versions the chart claims', () => {
  const chart = parse(readFileSync(path.join(ROOT, 'charts', 'synod-operator', 'Chart.yaml'), 'utf8')) as { kubeVersion: string };
  const minimum = minimumKubeMinor(chart.kubeVersion);

  it('reads the minimum from Chart.yaml', () => {
    expect(minimum).toBe(25);
    expect(minimumKubeMinor('>=1.27.0-0 <1.40.0-0')).toBe(27);
    expect(() => minimumKubeMinor('<1.30')).toThrow(/lower bound/);
  });

  it('uses no CRD feature newer than the chart\'s minimum Kubernetes version', () => {
    expect(featuresMissingIn(crd, minimum)).toEqual([]);
    // It does use CEL rules, which need 1.25: the check is not vacuous.
    expect(kubeFeaturesUsed(crd).map((f) => f.feature)).toContain('x-kubernetes-validations (CEL)');
    expect(featuresMissingIn(crd, 24).length).toBeGreaterThan(0);
  });

  it('flags rule features and CEL libraries a 1.25 API server does not have', () => {
    const withNewer = structuredClone(crd);
    const replicas = specProps(withNewer.spec.versions[0].schema.openAPIV3Schema)['replicas'];
    replicas['x-kubernetes-validations'] = [
      { rule: 'self % 2 == 1', messageExpression: '"even: " + string(self)', reason: 'FieldValueInvalid', fieldPath: '.x' },
      { rule: 'isQuantity("1Gi")' },
      { rule: 'self.frobnicate()' },
    ];
    const missing = featuresMissingIn(withNewer, minimum).map((f) => `${f.feature}@${f.sinceMinor}`);
    expect(missing).toEqual(expect.arrayContaining(['messageExpression@27', 'reason@28', 'fieldPath@28', 'CEL function isQuantity()@29', 'CEL function frobnicate()@Infinity']));
  });
});


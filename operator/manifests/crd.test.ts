// The SynodCluster CRD: valid against Kubernetes' own CRD schema, identical in the chart, and example
// resources (valid and rejected ones) checked against its schema with its CEL rules evaluated, and
// the operator's own spec validation agreeing with the CEL rules.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateSpec, withDefaults } from '../api/spec-defaults.ts';
import type { SchemaNode } from './crd-validator.ts';
import { validateAgainstCrd } from './crd-validator.ts';

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
    expect(version.additionalPrinterColumns.map((c) => c.name)).toEqual(['Ready', 'Members', 'Leader', 'Version', 'Age']);
  });

  it('accepts the examples and fills in the defaults', () => {
    const minimal = validateAgainstCrd(schema, example('synodcluster-minimal.yaml'));
    expect(minimal.errors).toEqual([]);
    expect((minimal.defaulted as { spec: { storage: unknown } }).spec.storage).toEqual({ size: '1Gi', retentionPolicyOnScaleIn: 'Delete' });
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

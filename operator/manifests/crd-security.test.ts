// spec.tls and spec.auth in the SynodCluster CRD: the TLS-and-auth example is accepted (with its
// defaults filled in), every inconsistent combination is refused with its CEL message, which ports use
// TLS cannot change on update, and the operator's own validation (spec-defaults.ts) says the same.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { clientCertAuthOn, clientTlsOn, peerTlsOn, validateSpec, withDefaults } from '../api/spec-defaults.ts';
import type { SchemaNode } from './crd-validator.ts';
import { featuresMissingIn, minimumKubeMinor, validateAgainstCrd, validateCrdSchema } from './crd-validator.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const crd = parse(readFileSync(path.join(ROOT, 'crds', 'synod.dev_synodclusters.yaml'), 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] } };
const schema = crd.spec.versions[0].schema.openAPIV3Schema;
const base = { replicas: 3, version: '0.1.0', storage: { size: '1Gi' } };

function resource(spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'synod.dev/v1alpha1', kind: 'SynodCluster', metadata: { name: 'x' }, spec };
}

function example(name: string): Record<string, unknown> {
  return parse(readFileSync(path.join(ROOT, 'crds', 'examples', name), 'utf8')) as Record<string, unknown>;
}

describe('SynodCluster CRD: spec.tls and spec.auth', () => {
  it('accepts the TLS-and-auth example (3 members, generated certificates, client certificates, auth on)', () => {
    const result = validateAgainstCrd(schema, example('synodcluster-tls-auth.yaml'));
    expect(result.errors).toEqual([]);
    const spec = (result.defaulted as { spec: Record<string, unknown> }).spec;
    expect(spec['replicas']).toBe(3);
    expect(spec['tls']).toEqual({ generate: true, certificateValidityDays: 90, client: { clientCertAuth: true } });
    expect(spec['auth']).toEqual({ enabled: true, rootSecret: { name: 'payments-root', passwordKey: 'password' } });
    const parsed = withDefaults(spec);
    expect([clientTlsOn(parsed.tls), peerTlsOn(parsed.tls), clientCertAuthOn(parsed.tls)]).toEqual([true, true, true]);
    expect(validateSpec(parsed)).toEqual([]);
  });

  it('fills the defaults: generate false, clientCertAuth false, auth enabled, password key "password"', () => {
    const result = validateAgainstCrd(schema, resource({ ...base, tls: { client: { secretName: 'c' } }, auth: { rootSecret: { name: 'root' } } }));
    expect(result.errors).toEqual([]);
    const spec = (result.defaulted as { spec: Record<string, unknown> }).spec;
    expect(spec['tls']).toEqual({ generate: false, client: { secretName: 'c', clientCertAuth: false } });
    expect(spec['auth']).toEqual({ enabled: true, rootSecret: { name: 'root', passwordKey: 'password' } });
    expect(withDefaults(spec).auth).toEqual(spec['auth']);
  });

  it('accepts certificates from Secrets: client only, peer only, both with client certificates', () => {
    const accepted = [
      { client: { secretName: 'c' } },
      { peer: { secretName: 'p' } },
      { client: { secretName: 'c', clientCertAuth: true }, peer: { secretName: 'p' }, operatorClientSecretName: 'op' },
    ];
    for (const tls of accepted) {
      expect(validateAgainstCrd(schema, resource({ ...base, tls })).errors, JSON.stringify(tls)).toEqual([]);
      expect(validateSpec(withDefaults({ ...base, tls })), JSON.stringify(tls)).toEqual([]);
    }
  });

  const refused: [string, Record<string, unknown>, string][] = [
    ['TLS with nothing to use', { tls: {} }, 'tls needs generate: true, or client.secretName or peer.secretName'],
    ['a client Secret with generate', { tls: { generate: true, client: { secretName: 'c' } } }, 'tls.client.secretName cannot be set with tls.generate: the operator names the Secrets it generates'],
    ['a peer Secret with generate', { tls: { generate: true, peer: { secretName: 'p' } } }, 'tls.peer.secretName cannot be set with tls.generate: the operator names the Secrets it generates'],
    ['client TLS without a Secret', { tls: { client: { clientCertAuth: false } } }, 'tls.client needs secretName unless tls.generate is true'],
    ['peer TLS without a Secret', { tls: { peer: {} } }, 'tls.peer needs secretName unless tls.generate is true'],
    ['client certificates required but none for the operator', { tls: { client: { secretName: 'c', clientCertAuth: true } } }, 'tls.client.clientCertAuth needs tls.operatorClientSecretName (the operator\'s client certificate) unless tls.generate is true'],
    ['an operator certificate Secret with generate', { tls: { generate: true, operatorClientSecretName: 'op' } }, 'tls.operatorClientSecretName cannot be set with tls.generate: the operator makes its own client certificate'],
    ['a validity for certificates it does not make', { tls: { client: { secretName: 'c' }, certificateValidityDays: 30 } }, 'tls.certificateValidityDays applies only to generated certificates (tls.generate: true)'],
  ];
  for (const [what, extra, message] of refused) {
    it(`refuses ${what}, with a clear message (CEL and the operator agree)`, () => {
      const result = validateAgainstCrd(schema, resource({ ...base, ...extra }));
      expect(result.valid).toBe(false);
      expect(result.errors).toContain(`/spec/tls: ${message}`);
      expect(validateSpec(withDefaults({ ...base, ...extra }))).toEqual([message]);
    });
  }

  it('refuses auth without the root password Secret, or with an empty name', () => {
    expect(validateAgainstCrd(schema, resource({ ...base, auth: { enabled: true } })).errors.join()).toMatch(/required property 'rootSecret'/);
    expect(validateAgainstCrd(schema, resource({ ...base, auth: { rootSecret: { name: '' } } })).errors.join()).toMatch(/name must NOT have fewer than 1 characters/);
    expect(validateSpec(withDefaults({ ...base, auth: { enabled: true } }))).toEqual(['auth.rootSecret.name is required']);
  });

  it('refuses adding or removing tls, or turning TLS on or off for a port, on update; allows switching generated to own Secrets', () => {
    const plain = resource(base);
    const generated = resource({ ...base, tls: { generate: true } });
    const addMessage = '/spec: tls cannot be added or removed after creation: the members\' advertised URLs would change';
    expect(validateAgainstCrd(schema, generated, plain).errors).toContain(addMessage);
    expect(validateAgainstCrd(schema, plain, generated).errors).toContain(addMessage);
    const clientOnly = resource({ ...base, tls: { client: { secretName: 'c' } } });
    expect(validateAgainstCrd(schema, clientOnly, generated).errors).toContain('/spec/tls: which ports use TLS cannot change after creation: the members\' advertised URLs would change');
    const ownSecrets = resource({ ...base, tls: { client: { secretName: 'c' }, peer: { secretName: 'p' } } });
    expect(validateAgainstCrd(schema, ownSecrets, generated).errors).toEqual([]);
    // Auth may be turned on and off at any time: the operator does it through the Auth API.
    expect(validateAgainstCrd(schema, resource({ ...base, auth: { rootSecret: { name: 'r' } } }), plain).errors).toEqual([]);

    const spec = (o: Record<string, unknown>): ReturnType<typeof withDefaults> => withDefaults(o['spec']);
    expect(validateSpec(spec(generated), spec(plain))).toEqual(['tls cannot be added or removed after creation: the members\' advertised URLs would change']);
    expect(validateSpec(spec(clientOnly), spec(generated))).toEqual(['which ports use TLS cannot change after creation: the members\' advertised URLs would change']);
    expect(validateSpec(spec(ownSecrets), spec(generated))).toEqual([]);
  });

  it('keeps the CRD structural with valid defaults, within the chart\'s minimum Kubernetes version', () => {
    expect(validateCrdSchema(schema)).toEqual([]);
    const chart = parse(readFileSync(path.join(ROOT, 'charts', 'synod-operator', 'Chart.yaml'), 'utf8')) as { kubeVersion: string };
    expect(featuresMissingIn(crd as never, minimumKubeMinor(chart.kubeVersion))).toEqual([]);
  });
});

// The chart with TLS and auth on (real helm, `.tools/bin/helm`): the optional SynodCluster carries
// spec.tls and spec.auth from values and is valid against the CRD (CEL rules included); every object
// validates against Kubernetes' schema; the operator may read and write Secrets but not list, watch or
// delete them, and not at all with rbac.secrets=false; inconsistent values are refused with a message.
// The StatefulSet the operator renders for that SynodCluster mounts the Secrets and is valid too.

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { withDefaults } from '../api/spec-defaults.ts';
import { renderChildren } from '../render/children.ts';
import type { SchemaNode } from './crd-validator.ts';
import { validateAgainstCrd } from './crd-validator.ts';
import { validateKubeObject } from './kube-schema.ts';
import type { RenderedObject } from './rendered-rbac.ts';
import { CHART, HELM, rbacAllows, renderChart } from './rendered-rbac.ts';

const crd = parse(readFileSync(path.join(CHART, 'crds', 'synod.dev_synodclusters.yaml'), 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] } };
const schema = crd.spec.versions[0].schema.openAPIV3Schema;
const NS = 'synod-system';
const SA = { namespace: NS, name: 'rel-synod-operator' };

const TLS_AND_AUTH = ['cluster.enabled=true', 'cluster.tls.enabled=true', 'cluster.tls.clientCertAuth=true', 'cluster.tls.certificateValidityDays=30', 'cluster.auth.enabled=true', 'cluster.auth.rootSecretName=synod-root'];

async function renderError(...set: string[]): Promise<string> {
  const scratch = mkdtempSync(path.join(tmpdir(), 'synod-helm-sec-'));
  try {
    await promisify(execFile)(HELM, ['template', 'rel', CHART, '--namespace', NS, ...set.flatMap((s) => ['--set', s])], { env: { ...process.env, HELM_CACHE_HOME: scratch, HELM_CONFIG_HOME: scratch, HELM_DATA_HOME: scratch } });
  } catch (error) {
    return String((error as { stderr?: string }).stderr ?? error);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  throw new Error(`helm template ${set.join(' ')} succeeded, expected a failure`);
}

function clusterOf(objects: readonly RenderedObject[]): RenderedObject & { spec: Record<string, unknown> } {
  const cluster = objects.find((o) => o.kind === 'SynodCluster');
  if (cluster === undefined) throw new Error('no SynodCluster rendered');
  return cluster as RenderedObject & { spec: Record<string, unknown> };
}

describe('Helm chart with TLS and auth on (real helm)', () => {
  it('renders a SynodCluster with generated TLS, client certificates and auth, valid against the CRD; every object valid against Kubernetes\' schema', async () => {
    const objects = await renderChart(NS, ...TLS_AND_AUTH);
    const cluster = clusterOf(objects);
    expect(cluster.spec['tls']).toEqual({ generate: true, certificateValidityDays: 30, client: { clientCertAuth: true } });
    expect(cluster.spec['auth']).toEqual({ enabled: true, rootSecret: { name: 'synod-root', passwordKey: 'password' } });
    const result = validateAgainstCrd(schema, cluster);
    expect(result.errors).toEqual([]);
    for (const o of objects.filter((x) => x.kind !== 'SynodCluster')) await expect(validateKubeObject(o), `${o.kind}/${o.metadata.name}`).resolves.toBeUndefined();

    // What the operator makes of it: the StatefulSet mounts the generated Secrets, and is valid.
    const spec = withDefaults((result.defaulted as { spec: unknown }).spec);
    const children = renderChildren({ name: cluster.metadata.name, namespace: NS, uid: 'u' }, spec, { statefulSetReplicas: 3, clusterState: 'new' });
    for (const child of children) await expect(validateKubeObject(child), `${child.kind}/${child.metadata.name}`).resolves.toBeUndefined();
    const sts = children.find((c) => c.kind === 'StatefulSet') as unknown as { spec: { template: { spec: { volumes: { name: string; secret?: { secretName: string } }[] } } } };
    expect(sts.spec.template.spec.volumes.filter((v) => v.secret !== undefined).map((v) => v.secret?.secretName)).toEqual(['synod-tls-server', 'synod-tls-peer']);
  });

  it('renders TLS from named Secrets', async () => {
    const objects = await renderChart(NS, 'cluster.enabled=true', 'cluster.tls.enabled=true', 'cluster.tls.generate=false', 'cluster.tls.clientSecretName=client-tls',
      'cluster.tls.peerSecretName=peer-tls', 'cluster.tls.clientCertAuth=true', 'cluster.tls.operatorClientSecretName=operator-tls');
    const cluster = clusterOf(objects);
    expect(cluster.spec['tls']).toEqual({ generate: false, client: { secretName: 'client-tls', clientCertAuth: true }, peer: { secretName: 'peer-tls' }, operatorClientSecretName: 'operator-tls' });
    expect(validateAgainstCrd(schema, cluster).errors).toEqual([]);
  });

  it('lets the operator get, create and patch Secrets in the watched namespace, but not list, watch or delete them; none with rbac.secrets=false', async () => {
    for (const set of [[], ['watchNamespace=team-a']]) {
      const objects = await renderChart(NS, ...set);
      const request = (verb: string, name?: string): Parameters<typeof rbacAllows>[2] => ({ verb, group: '', resource: 'secrets', namespace: 'team-a', ...(name === undefined ? {} : { name }) });
      for (const verb of ['get', 'patch']) expect(rbacAllows(objects, SA, request(verb, 'demo-tls-ca')), verb).toBe(true);
      expect(rbacAllows(objects, SA, request('create'))).toBe(true);
      for (const verb of ['list', 'watch']) expect(rbacAllows(objects, SA, request(verb)), verb).toBe(false);
      expect(rbacAllows(objects, SA, request('delete', 'demo-tls-ca'))).toBe(false);
      expect(rbacAllows(objects, SA, request('update', 'demo-tls-ca'))).toBe(false);
    }
    const without = await renderChart(NS, 'rbac.secrets=false');
    expect(rbacAllows(without, SA, { verb: 'get', group: '', resource: 'secrets', namespace: 'team-a', name: 'x' })).toBe(false);
  });

  it('refuses inconsistent TLS and auth values with a clear message', async () => {
    expect(await renderError('cluster.enabled=true', 'cluster.tls.enabled=true', 'cluster.tls.generate=false')).toContain('cluster.tls: set generate: true, or clientSecretName and/or peerSecretName');
    expect(await renderError('cluster.enabled=true', 'cluster.tls.enabled=true', 'cluster.tls.generate=false', 'cluster.tls.clientSecretName=c', 'cluster.tls.clientCertAuth=true'))
      .toContain('cluster.tls.clientCertAuth needs cluster.tls.operatorClientSecretName');
    expect(await renderError('cluster.enabled=true', 'cluster.auth.enabled=true')).toContain('cluster.auth.rootSecretName');
    expect(await renderError('cluster.tls.certificateValidityDays=1000')).toContain('cluster.tls.certificateValidityDays');
    expect(await renderError('cluster.tls.colour=blue')).toMatch(/colour/);
  });
});

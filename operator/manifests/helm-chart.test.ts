// The Helm chart with the real helm binary (.tools/bin/helm, installed by `make test` through
// scripts/install-helm.sh): lint, render, every rendered object valid against Kubernetes' schema,
// least-privilege RBAC, values.schema.json rejecting bad values, the optional SynodCluster valid
// against the CRD, and NOTES.txt rendering.

import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import type { SchemaNode } from './crd-validator.ts';
import { validateAgainstCrd } from './crd-validator.ts';
import { validateKubeObject } from './kube-schema.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const HELM = path.join(ROOT, '.tools', 'bin', 'helm');
const CHART = path.join(ROOT, 'charts', 'synod-operator');
const run = promisify(execFile);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  [field: string]: unknown;
}

interface Rule { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }

async function helm(...args: string[]): Promise<string> {
  const { stdout } = await run(HELM, args, { env: { ...process.env, HELM_CACHE_HOME: scratch, HELM_CONFIG_HOME: scratch, HELM_DATA_HOME: scratch } });
  return stdout;
}

async function render(...set: string[]): Promise<K8sObject[]> {
  const out = await helm('template', 'rel', CHART, '--namespace', 'synod-system', ...set.flatMap((s) => ['--set', s]));
  return parseAllDocuments(out).map((d) => d.toJS() as K8sObject | null).filter((o): o is K8sObject => o !== null);
}

async function renderError(...set: string[]): Promise<string> {
  try {
    await render(...set);
  } catch (error) {
    return String((error as { stderr?: string }).stderr ?? error);
  }
  throw new Error(`helm template ${set.join(' ')} succeeded, expected a failure`);
}

let scratch = '';
beforeAll(() => {
  if (!existsSync(HELM)) throw new Error(`${HELM} is missing: run \`make helm\` (scripts/install-helm.sh)`);
  scratch = mkdtempSync(path.join(tmpdir(), 'synod-helm-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('Helm chart charts/synod-operator (real helm)', () => {
  it('passes helm lint --strict', async () => {
    const out = await helm('lint', '--strict', CHART);
    expect(out).toContain('1 chart(s) linted, 0 chart(s) failed');
  });

  it('renders the operator with leader election on by default, every object valid against Kubernetes\' schema', async () => {
    const objects = await render();
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'ClusterRole/synod-system-rel-synod-operator', 'ClusterRole/synod-system-rel-synod-operator-nodes',
      'ClusterRoleBinding/synod-system-rel-synod-operator', 'ClusterRoleBinding/synod-system-rel-synod-operator-nodes', 'Deployment/rel-synod-operator',
      'Role/rel-synod-operator-leader-election', 'RoleBinding/rel-synod-operator-leader-election',
      'Service/rel-synod-operator-metrics', 'ServiceAccount/rel-synod-operator',
    ]);
    for (const o of objects) await expect(validateKubeObject(o), `${o.kind}/${o.metadata.name}`).resolves.toBeUndefined();
    const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: { env: { name: string; value?: string }[]; securityContext: unknown }[]; securityContext: unknown } } } };
    const container = deployment.spec.template.spec.containers[0];
    expect(container.env.find((e) => e.name === 'SYNOD_OPERATOR_LEADER_ELECTION')?.value).toBe('true');
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(deployment.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true });
  });

  it('grants least privilege: no wildcards, deletes only pods and PVCs, the Lease only by name in its namespace', async () => {
    const objects = await render();
    const clusterRole = objects.find((o) => o.kind === 'ClusterRole') as unknown as { rules: Rule[] };
    for (const rule of clusterRole.rules) {
      expect([...rule.apiGroups, ...rule.resources, ...rule.verbs]).not.toContain('*');
      expect(rule.verbs).not.toContain('deletecollection');
      if (rule.verbs.includes('delete')) expect(rule.resources.every((r) => r === 'pods' || r === 'persistentvolumeclaims')).toBe(true);
      // Secrets (spec.tls / spec.auth): read by name and written, never listed, watched or deleted.
      if (rule.resources.includes('secrets')) expect({ resources: rule.resources, verbs: rule.verbs }).toEqual({ resources: ['secrets'], verbs: ['get', 'create', 'patch'] });
      expect(rule.resources).not.toContain('leases');
    }
    const role = objects.find((o) => o.kind === 'Role') as unknown as { metadata: { namespace: string }; rules: Rule[] };
    expect(role.metadata.namespace).toBe('synod-system');
    expect(role.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['synod-operator-leader'], verbs: ['get', 'update'] },
    ]);
  });

  it('uses a namespaced Role when watching one namespace', async () => {
    const objects = await render('watchNamespace=team-a');
    // The one cluster-scoped grant left: get on nodes (nodes are cluster-scoped; spec.zones reads them).
    expect(objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding').map((o) => `${o.kind}/${o.metadata.name}`))
      .toEqual(['ClusterRole/synod-system-rel-synod-operator-nodes', 'ClusterRoleBinding/synod-system-rel-synod-operator-nodes']);
    expect((objects.find((o) => o.kind === 'ClusterRole') as unknown as { rules: Rule[] }).rules).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }]);
    const role = objects.find((o) => o.kind === 'Role' && o.metadata.name === 'synod-system-rel-synod-operator');
    expect(role?.metadata.namespace).toBe('team-a');
    expect(objects.find((o) => o.kind === 'RoleBinding' && o.metadata.name === 'synod-system-rel-synod-operator')?.metadata.namespace).toBe('team-a');
  });

  it('names cluster-scoped RBAC (and the Role in a watched namespace) per release and namespace, so two installs do not collide', async () => {
    const names = async (namespace: string, ...set: string[]): Promise<string[]> => {
      const out = await helm('template', 'rel', CHART, '--namespace', namespace, ...set.flatMap((s) => ['--set', s]));
      const objects = parseAllDocuments(out).map((d) => d.toJS() as K8sObject | null).filter((o): o is K8sObject => o !== null);
      // Objects that do not live in the release namespace are shared with other releases.
      return objects.filter((o) => o.kind.startsWith('Cluster') || (o.metadata.namespace !== undefined && o.metadata.namespace !== namespace))
        .map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    };
    for (const set of [[], ['watchNamespace=team-a']]) {
      const a = await names('team-x', ...set);
      const b = await names('team-y', ...set);
      expect(a.length).toBeGreaterThan(0);
      expect(a.filter((n) => b.includes(n))).toEqual([]);
    }
    const objects = await render();
    const binding = objects.find((o) => o.kind === 'ClusterRoleBinding') as unknown as { roleRef: { name: string } };
    expect(binding.roleRef.name).toBe('synod-system-rel-synod-operator');
  });

  it('lets the operator set blockOwnerDeletion on children: update on synodclusters/finalizers (OwnerReferencesPermissionEnforcement)', async () => {
    for (const set of [[], ['watchNamespace=team-a']]) {
      const objects = await render(...set);
      const role = objects.find((o) => (o.kind === 'ClusterRole' || o.kind === 'Role') && !o.metadata.name.endsWith('-leader-election') && !o.metadata.name.endsWith('-nodes')) as unknown as { rules: Rule[] };
      expect(role.rules.some((r) => r.apiGroups.includes('synod.dev') && r.resources.includes('synodclusters/finalizers') && r.verbs.includes('update'))).toBe(true);
    }
  });

  it('creates an optional SynodCluster from values, valid against the CRD', async () => {
    const objects = await render('cluster.enabled=true', 'cluster.name=orders', 'cluster.replicas=5', 'cluster.storage.storageClassName=fast');
    const cluster = objects.find((o) => o.kind === 'SynodCluster');
    expect(cluster?.metadata).toMatchObject({ name: 'orders', namespace: 'synod-system' });
    const crd = parse(readFileSync(path.join(CHART, 'crds', 'synod.dev_synodclusters.yaml'), 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] } };
    const result = validateAgainstCrd(crd.spec.versions[0].schema.openAPIV3Schema, cluster);
    expect(result.errors).toEqual([]);
    expect((cluster as unknown as { spec: unknown }).spec).toMatchObject({ replicas: 5, storage: { storageClassName: 'fast', retentionPolicyOnScaleIn: 'Delete' } });
  });

  it('creates a sharded SynodCluster from values (16 shards, 3 zones), valid against the CRD; refuses 12 shards', async () => {
    const objects = await render('cluster.enabled=true', 'cluster.replicas=5', 'cluster.shards=16', 'cluster.replicationFactor=3', 'cluster.zones.names={zone-a,zone-b,zone-c}');
    const cluster = objects.find((o) => o.kind === 'SynodCluster');
    const crd = parse(readFileSync(path.join(CHART, 'crds', 'synod.dev_synodclusters.yaml'), 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] } };
    expect(validateAgainstCrd(crd.spec.versions[0].schema.openAPIV3Schema, cluster).errors).toEqual([]);
    expect((cluster as unknown as { spec: unknown }).spec).toMatchObject({ shards: 16, replicationFactor: 3, zones: { names: ['zone-a', 'zone-b', 'zone-c'] } });
    const plain = (await render('cluster.enabled=true')).find((o) => o.kind === 'SynodCluster') as unknown as { spec: Record<string, unknown> };
    expect(plain.spec['shards']).toBeUndefined();
    expect(await renderError('cluster.enabled=true', 'cluster.shards=12')).toContain('cluster.shards');
  });

  it('ships the CRD in crds/ (installed by helm before the templates)', async () => {
    const out = await helm('show', 'crds', CHART);
    expect(parse(out)).toMatchObject({ kind: 'CustomResourceDefinition', metadata: { name: 'synodclusters.synod.dev' } });
  });

  it('rejects bad values through values.schema.json', async () => {
    expect(await renderError('cluster.replicas=4')).toContain('cluster.replicas');
    expect(await renderError('logLevel=loud')).toContain('logLevel');
    expect(await renderError('replicaCount=0')).toContain('replicaCount');
    expect(await renderError('surprise=1')).toMatch(/additional properties 'surprise' not allowed|surprise/);
  });

  it('refuses two operator replicas without leader election', async () => {
    expect(await renderError('replicaCount=2', 'leaderElection.enabled=false')).toContain('replicaCount > 1 needs leaderElection.enabled');
    const two = await render('replicaCount=2');
    expect((two.find((o) => o.kind === 'Deployment') as unknown as { spec: { replicas: number } }).spec.replicas).toBe(2);
  });

  it('renders NOTES.txt with the next steps', async () => {
    // helm renders NOTES.txt only on install, which needs a cluster; render a copy as a plain template.
    const copy = path.join(scratch, 'chart-copy');
    cpSync(CHART, copy, { recursive: true });
    const notesText = readFileSync(path.join(copy, 'templates', 'NOTES.txt'), 'utf8');
    rmSync(path.join(copy, 'templates', 'NOTES.txt'));
    writeFileSync(path.join(copy, 'templates', '_notes-preview.tpl'), `{{- define "notes-preview" -}}\n${notesText}{{- end -}}\n`);
    writeFileSync(path.join(copy, 'templates', 'notes-preview.yaml'), 'notes: {{ include "notes-preview" . | toJson }}\n');
    const rendered = await helm('template', 'rel', copy, '--namespace', 'synod-system', '--show-only', 'templates/notes-preview.yaml');
    const notes = (parse(rendered) as { notes: string }).notes;
    expect(notes).toContain('kubectl -n synod-system rollout status deployment/rel-synod-operator');
    expect(notes).toContain('kind: SynodCluster');
    expect(notes).toContain('Leader election is on (Lease synod-system/synod-operator-leader)');
    expect(notes).toContain('kubectl -n synod-system scale synodcluster/demo --replicas=5');
  });
});

// What a real API server sees of the operator. Every request that ClientNodeKubeApi and the
// informers make goes through @kubernetes/client-node's real serialization and HTTP path (a real
// KubeConfig pointing at http://127.0.0.1:<port>) to a recording stand-in API server
// (operator/testing/recording-api-server.ts). Then each recorded body is checked against Kubernetes'
// published OpenAPI schemas for two releases (kube-schema.ts: kubernetes-models 4.1.0 = Kubernetes
// v1.25.0, the closest published to 1.26 — no schema package was generated from 1.26 itself — and
// kubernetes-models 5.1.0 = Kubernetes v1.36.0, the newest), including the formats the API server
// really parses (MicroTime: six fractional digits; Time: whole seconds); the SynodCluster status
// against the CRD; and each verb/resource/subresource/namespace/name against the chart's RBAC as
// rendered by helm (default values, and watchNamespace), including the update on
// synodclusters/finalizers that OwnerReferencesPermissionEnforcement demands for children with
// blockOwnerDeletion.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import type { V1Lease } from '@kubernetes/client-node';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { withDefaults } from '../api/spec-defaults.ts';
import type { SynodClusterStatus } from '../api/types.ts';
import { API_VERSION, KIND, LABEL_CLUSTER } from '../api/types.ts';
import { Controller } from '../controller/controller.ts';
import { EventRecorder } from '../controller/event-recorder.ts';
import { LeaderElector } from '../controller/leader-election.ts';
import { OperatorMetrics } from '../controller/operator-metrics.ts';
import type { Reconciler } from '../controller/reconciler.ts';
import type { SchemaNode } from '../manifests/crd-validator.ts';
import { validateAgainstCrd } from '../manifests/crd-validator.ts';
import type { SchemaRelease } from '../manifests/kube-schema.ts';
import { SCHEMA_RELEASES, timeFormatErrors, validateKubeObject } from '../manifests/kube-schema.ts';
import type { RenderedObject, RequestAttributes } from '../manifests/rendered-rbac.ts';
import { rbacAllows, renderChart, verbOf } from '../manifests/rendered-rbac.ts';
import type { ManifestObject } from '../render/children.ts';
import { configMapName, renderChildren, renderPodZone, renderPvcMetadata, selectorLabels, selectorString } from '../render/children.ts';
import type { RecordedRequest } from '../testing/recording-api-server.ts';
import { RecordingApiServer, resourceTarget } from '../testing/recording-api-server.ts';
import { ClientNodeKubeApi } from './client-node-api.ts';
import { clientNodeSources } from './client-node-sources.ts';
import { reconcileGeneratedTls } from '../security/generated-tls.ts';
import { MICRO_TIME_PATTERN } from './kube-time.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CRD = parse(readFileSync(path.join(ROOT, 'crds', 'synod.dev_synodclusters.yaml'), 'utf8')) as { spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] } };
const RELEASES: SchemaRelease[] = ['1.25', '1.36'];
const OPERATOR_NAMESPACE = 'synod-system';
const SERVICE_ACCOUNT = { namespace: OPERATOR_NAMESPACE, name: 'rel-synod-operator' };
const LEASE_NAME = 'synod-operator-leader';
const NS = 'team-a';
const logger = pino({ level: 'silent' });
const SEEDED_SPEC = { replicas: 3 };

let server: RecordingApiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function eventually(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Drives every ClientNodeKubeApi method, the event recorder, the leader elector and the informers. */
async function driveOperator(stand: RecordingApiServer, watchNamespace: string | undefined): Promise<{ applied: ManifestObject[] }> {
  const kubeConfig = stand.kubeConfig();
  const api = new ClientNodeKubeApi(kubeConfig);

  stand.seed(`/apis/synod.dev/v1alpha1/namespaces/${NS}/synodclusters/demo`, {
    apiVersion: API_VERSION, kind: KIND, metadata: { name: 'demo', generation: 1 }, spec: SEEDED_SPEC,
  });
  const cluster = await api.getSynodCluster(NS, 'demo');
  expect(cluster?.metadata.uid).not.toBe('');
  expect(await api.getSynodCluster(NS, 'missing')).toBeNull();
  expect(await api.getStatefulSet(NS, 'demo')).toBeNull();
  expect(await api.getConfigMap(NS, configMapName('demo'))).toBeNull();

  const ref = { name: 'demo', namespace: NS, uid: cluster?.metadata.uid ?? '' };
  const applied = renderChildren(ref, withDefaults(cluster?.spec), { statefulSetReplicas: 3, clusterState: 'new' });
  // Twice: the first apply creates, the second updates.
  for (const child of applied) await api.apply(child);
  for (const child of applied) await api.apply(child);
  expect((await api.getStatefulSet(NS, 'demo'))?.metadata?.name).toBe('demo');
  expect((await api.getConfigMap(NS, configMapName('demo')))?.metadata?.name).toBe(configMapName('demo'));
  // spec.tls.generate: the generated Secrets are read by name, created, and read again on the next round.
  expect(await api.getSecret(NS, 'demo-tls-ca')).toBeNull();
  await reconcileGeneratedTls(api, ref, { generate: true }, Date.now());
  expect((await api.getSecret(NS, 'demo-tls-ca'))?.type).toBe('Opaque');
  expect((await reconcileGeneratedTls(api, ref, { generate: true }, Date.now())).changes).toEqual([]);

  const pod = stand.seed(`/api/v1/namespaces/${NS}/pods/demo-0`, {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'demo-0', labels: selectorLabels('demo') }, spec: { containers: [{ name: 'synod', image: 'synod' }] },
  });
  stand.seed(`/api/v1/namespaces/${NS}/pods/other-0`, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'other-0', labels: { app: 'other' } }, spec: { containers: [] } });
  stand.seed(`/api/v1/namespaces/${NS}/persistentvolumeclaims/data-demo-3`, {
    apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data-demo-3', labels: selectorLabels('demo') }, spec: {},
  });
  stand.seed(`/api/v1/namespaces/${NS}/persistentvolumeclaims/data-demo-0`, {
    apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'data-demo-0', labels: selectorLabels('demo') }, spec: {},
  });
  expect((await api.listPods(NS, selectorString('demo'))).map((p) => p.metadata?.name)).toEqual(['demo-0']);
  expect((await api.listPvcs(NS, selectorString('demo'))).map((p) => p.metadata?.name).sort()).toEqual(['data-demo-0', 'data-demo-3']);
  // Zones: the node's labels, and the zone written on the pod (spec.zones).
  stand.seed('/api/v1/nodes/node-a', { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-a', labels: { 'topology.kubernetes.io/zone': 'zone-a' } }, spec: {} });
  expect(await api.getNodeLabels('node-a')).toMatchObject({ 'topology.kubernetes.io/zone': 'zone-a' });
  expect(await api.getNodeLabels('node-missing')).toBeNull();
  const podZone = renderPodZone(ref, 'demo-0', 'zone-a');
  await api.apply(podZone);
  await api.apply(podZone);
  applied.push(podZone);
  // The PVC's ownership metadata (issue 11 item 8), applied to the PVC the StatefulSet created.
  const pvcMetadata = [renderPvcMetadata(ref, 'data-demo-0', true), renderPvcMetadata(ref, 'data-demo-0', false)];
  for (const object of pvcMetadata) await api.apply(object);
  applied.push(...pvcMetadata.slice(0, 1));

  const status: SynodClusterStatus = {
    observedGeneration: 1, replicas: 3, readyReplicas: 0, selector: selectorString('demo'), leader: '', currentVersion: '',
    members: [], memberSummary: '0/3',
    conditions: [{ type: 'Available', status: 'False', reason: 'Creating', message: 'creating members', observedGeneration: 1, lastTransitionTime: '2026-12-02T21:25:54Z' }],
  };
  await api.applyStatus(NS, 'demo', status);

  await expect(api.deletePod(NS, 'demo-0', 'not-the-uid')).rejects.toMatchObject({ code: 409 });
  await api.deletePod(NS, 'demo-0', pod.metadata.uid ?? '');
  await api.deletePvc(NS, 'data-demo-3');
  await api.deletePvc(NS, 'data-demo-3'); // already gone: not an error

  await new EventRecorder(api, logger, 'op-1').record(ref, 'Normal', 'MembersCreating', 'creating 3 members');

  const elector = new LeaderElector({ api, namespace: OPERATOR_NAMESPACE, leaseName: LEASE_NAME, identity: 'op-1', logger });
  const standby = new LeaderElector({ api, namespace: OPERATOR_NAMESPACE, leaseName: LEASE_NAME, identity: 'op-2', logger });
  expect(await elector.tryAcquireOrRenew()).toBe(true); // 404, then create
  expect(await elector.tryAcquireOrRenew()).toBe(true); // get, then update
  expect(await standby.tryAcquireOrRenew()).toBe(false); // sees it held
  expect(standby.status()).toMatchObject({ observedHolder: 'op-1', observedFresh: true, consecutiveFailures: 0 });
  await elector.stop(); // release
  expect(await standby.tryAcquireOrRenew()).toBe(true); // takes over the released Lease

  // The informers, as the controller runs them: list, then watch from the list's resourceVersion.
  const reconciled: string[] = [];
  const reconciler = { reconcile: async (namespace: string, name: string) => { reconciled.push(`${namespace}/${name}`); return { requeueAfterMs: null }; } } as unknown as Reconciler;
  const controller = new Controller({ sources: clientNodeSources(kubeConfig, watchNamespace), reconciler, metrics: new OperatorMetrics(), logger, namespace: watchNamespace, workers: 1 });
  await controller.start();
  await eventually(() => stand.openWatches === 4 && controller.informers.every((i) => i.synced), 'four informers listed and watching');
  const statefulSetPath = `/apis/apps/v1/namespaces/${NS}/statefulsets/demo`;
  stand.emit('MODIFIED', statefulSetPath, { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'demo', labels: { [LABEL_CLUSTER]: 'demo' } }, spec: {} });
  await eventually(() => reconciled.includes(`${NS}/demo`), 'a watch event to reach the work queue');
  await controller.stop();
  return { applied };
}

/** The RBAC attributes of a recorded request; null for discovery (allowed to every authenticated user). */
function attributesOf(request: RecordedRequest): RequestAttributes | null {
  const target = resourceTarget(request.path);
  if (target === null) return null;
  return {
    verb: verbOf(request.method, target.name !== undefined, request.query),
    group: target.group,
    resource: target.resource,
    ...(target.subresource === undefined ? {} : { subresource: target.subresource }),
    ...(target.namespace === undefined ? {} : { namespace: target.namespace }),
    ...(target.name === undefined ? {} : { name: target.name }),
  };
}

/** Every permission a request needs on a real API server, beyond its own verb. */
function permissionsFor(request: RecordedRequest): RequestAttributes[] {
  const own = attributesOf(request);
  if (own === null) return [];
  const needed = [own];
  // Server-side apply of an object that does not exist yet creates it: create is authorized too.
  if (request.method === 'PATCH' && request.responseStatus === 201) needed.push({ ...own, verb: 'create' });
  // OwnerReferencesPermissionEnforcement: setting blockOwnerDeletion needs update on the owner's finalizers.
  const owners = (request.body as { metadata?: { ownerReferences?: { apiVersion: string; kind: string; name: string; blockOwnerDeletion?: boolean }[] } } | undefined)?.metadata?.ownerReferences ?? [];
  for (const owner of owners) {
    if (owner.blockOwnerDeletion !== true) continue;
    expect(owner.kind).toBe(KIND);
    needed.push({ verb: 'update', group: 'synod.dev', resource: 'synodclusters', subresource: 'finalizers', namespace: own.namespace, name: owner.name });
  }
  return needed;
}

/** Schema and format errors of a recorded body, for both schema releases. */
async function bodyErrors(request: RecordedRequest): Promise<string[]> {
  const body = request.body as { apiVersion?: string; kind?: string } | undefined;
  if (body === undefined) return [];
  const where = `${request.method} ${request.path}`;
  if (body.kind === KIND) {
    // A status apply is merged into the live object, and the API server validates the result.
    const object = request.path.endsWith('/status') ? { ...body, spec: SEEDED_SPEC } : body;
    return validateAgainstCrd(CRD.spec.versions[0]!.schema.openAPIV3Schema, object).errors.map((e) => `${where}: CRD: ${JSON.stringify(e)}`);
  }
  if (body.kind === undefined) {
    // Delete options: client-node sends a bare V1DeleteOptions.
    expect(request.method).toBe('DELETE');
    return timeFormatErrors(body, 'V1DeleteOptions').map((e) => `${where}: ${e}`);
  }
  const errors = timeFormatErrors(body).map((e) => `${where}: ${e}`);
  for (const release of RELEASES) {
    try {
      await validateKubeObject(body, release);
    } catch (error) {
      errors.push(`${where}: Kubernetes ${SCHEMA_RELEASES[release].kubernetesVersion} schema: ${String(error)}`);
    }
  }
  return errors;
}

function summary(requests: readonly RecordedRequest[]): string[] {
  return [...new Set(requests.map((r) => {
    const a = attributesOf(r);
    return a === null ? `discovery ${r.path}` : `${a.verb} ${a.group === '' ? 'core' : a.group}/${a.resource}${a.subresource === undefined ? '' : `/${a.subresource}`}${a.namespace === undefined ? ' (all namespaces)' : ''}`;
  }))].sort();
}

describe('ClientNodeKubeApi and the informers on the wire (client-node → recording stand-in API server)', () => {
  it('names the schema releases it checks against', () => {
    expect(SCHEMA_RELEASES['1.25'].kubernetesVersion).toBe('v1.25.0');
    expect(SCHEMA_RELEASES['1.36'].kubernetesVersion).toBe('v1.36.0');
  });

  for (const watchNamespace of [undefined, NS]) {
    const mode = watchNamespace === undefined ? 'all namespaces (ClusterRole)' : `watchNamespace=${watchNamespace} (Role)`;

    it(`sends only schema-valid bodies that the rendered RBAC allows — ${mode}`, async () => {
      server = await RecordingApiServer.start();
      const { applied } = await driveOperator(server, watchNamespace);
      const requests = server.requests;

      // Every operation the operator uses reached the server.
      const all = watchNamespace === undefined ? ' (all namespaces)' : '';
      expect(summary(requests)).toEqual(expect.arrayContaining([
        'get synod.dev/synodclusters', 'get apps/statefulsets', 'get core/configmaps', 'list core/pods', 'list core/persistentvolumeclaims',
        'get core/secrets', 'patch core/secrets',
        'patch core/serviceaccounts', 'patch core/services', 'patch core/persistentvolumeclaims', 'patch core/configmaps', 'patch apps/statefulsets', 'patch policy/poddisruptionbudgets',
        'patch synod.dev/synodclusters/status', 'delete core/pods', 'delete core/persistentvolumeclaims', 'create core/events',
        'get coordination.k8s.io/leases', 'create coordination.k8s.io/leases', 'update coordination.k8s.io/leases',
        'get core/nodes (all namespaces)', 'patch core/pods',
        `list synod.dev/synodclusters${all}`, `watch synod.dev/synodclusters${all}`, `list apps/statefulsets${all}`, `watch apps/statefulsets${all}`,
        `list core/pods${all}`, `watch core/pods${all}`, `list core/persistentvolumeclaims${all}`, `watch core/persistentvolumeclaims${all}`,
      ]));
      // Apply and status apply go as server-side apply with the operator's field manager.
      for (const r of requests.filter((q) => q.method === 'PATCH')) {
        expect(r.contentType).toMatch(/^application\/apply-patch\+yaml/);
        expect(r.query).toMatchObject({ fieldManager: 'synod-operator', force: 'true' });
      }
      // client-node serializes applies through its typed models: nothing of the rendered objects is dropped.
      for (const child of applied) {
        const sent = requests.filter((r) => r.method === 'PATCH' && r.path.endsWith(`/${child.metadata.name}`) && (r.body as { kind?: string }).kind === child.kind);
        expect(sent.length).toBe(2);
        expect(sent.some((r) => isDeepStrictEqual(r.body, JSON.parse(JSON.stringify(child)))), `${child.kind}/${child.metadata.name} sent as rendered`).toBe(true);
        for (const r of sent) expect(Object.keys(r.body as object).sort()).toEqual(Object.keys(child).sort());
      }

      const errors: string[] = [];
      for (const r of requests) errors.push(...(await bodyErrors(r)));
      expect(errors).toEqual([]);

      const leases = requests.filter((r) => r.path.includes('/leases') && r.body !== undefined).map((r) => (r.body as V1Lease).spec);
      expect(leases.length).toBeGreaterThanOrEqual(4);
      for (const spec of leases) {
        expect(spec?.renewTime).toMatch(MICRO_TIME_PATTERN);
        expect(spec?.acquireTime).toMatch(MICRO_TIME_PATTERN);
      }

      const rbac: RenderedObject[] = await renderChart(OPERATOR_NAMESPACE, ...(watchNamespace === undefined ? [] : [`watchNamespace=${watchNamespace}`]));
      const denied: string[] = [];
      for (const r of requests) {
        for (const need of permissionsFor(r)) {
          if (!rbacAllows(rbac, SERVICE_ACCOUNT, need)) denied.push(`${r.method} ${r.path} needs ${JSON.stringify(need)}`);
        }
      }
      expect(denied).toEqual([]);
      // The finalizers permission is really exercised: children carry blockOwnerDeletion owner references.
      expect(requests.some((r) => permissionsFor(r).some((p) => p.subresource === 'finalizers'))).toBe(true);
    }, 30_000);
  }

  it('catches what a real API server refuses: a Lease with plain Dates (milliseconds) is a 400 and fails the format check', async () => {
    server = await RecordingApiServer.start();
    const api = new ClientNodeKubeApi(server.kubeConfig());
    const now = new Date(Date.UTC(2026, 11, 2, 21, 25, 54, 4));
    // The Lease body as leader-election.ts built it before MicroTime: plain Dates.
    const lease: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: LEASE_NAME, namespace: OPERATOR_NAMESPACE },
      spec: { holderIdentity: 'op-1', leaseDurationSeconds: 15, acquireTime: now, renewTime: now, leaseTransitions: 0 },
    };
    await expect(api.createLease(lease)).rejects.toMatchObject({ code: 400 });
    const [request] = server.requests;
    expect((request?.body as V1Lease).spec?.renewTime).toBe('2026-12-02T21:25:54.004Z');
    // The published schemas alone accept it (format date-time); the MicroTime check does not.
    for (const release of RELEASES) await expect(validateKubeObject(request?.body as object, release)).resolves.toBeUndefined();
    expect(await bodyErrors(request!)).toEqual([
      'POST /apis/coordination.k8s.io/v1/namespaces/synod-system/leases: /spec/acquireTime: MicroTime must have six fractional digits (2006-01-02T15:04:05.000000Z07:00), got "2026-12-02T21:25:54.004Z"',
      'POST /apis/coordination.k8s.io/v1/namespaces/synod-system/leases: /spec/renewTime: MicroTime must have six fractional digits (2006-01-02T15:04:05.000000Z07:00), got "2026-12-02T21:25:54.004Z"',
    ]);
  });

  it('catches a request the rendered RBAC does not allow (a Lease under another name; deleting a StatefulSet)', async () => {
    const rbac = await renderChart(OPERATOR_NAMESPACE);
    expect(rbacAllows(rbac, SERVICE_ACCOUNT, { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: OPERATOR_NAMESPACE, name: LEASE_NAME })).toBe(true);
    expect(rbacAllows(rbac, SERVICE_ACCOUNT, { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: OPERATOR_NAMESPACE, name: 'other' })).toBe(false);
    expect(rbacAllows(rbac, SERVICE_ACCOUNT, { verb: 'delete', group: 'apps', resource: 'statefulsets', namespace: NS, name: 'demo' })).toBe(false);
    const scoped = await renderChart(OPERATOR_NAMESPACE, `watchNamespace=${NS}`);
    expect(rbacAllows(scoped, SERVICE_ACCOUNT, { verb: 'list', group: '', resource: 'pods', namespace: NS })).toBe(true);
    expect(rbacAllows(scoped, SERVICE_ACCOUNT, { verb: 'list', group: '', resource: 'pods' })).toBe(false);
    expect(rbacAllows(scoped, SERVICE_ACCOUNT, { verb: 'list', group: '', resource: 'pods', namespace: 'elsewhere' })).toBe(false);
  });
});

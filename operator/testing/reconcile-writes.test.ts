// The real reconciler against the in-memory API double, whose applies follow server-side apply of a
// chosen Kubernetes version (ssa-stand-in.ts): a reconcile of a converged cluster writes nothing, on
// 1.26 and on the newest release; and what happens to the data when a SynodCluster is deleted and
// re-created (spec.persistence, the DataFromAnotherCluster condition, adoption).

import type { V1PersistentVolumeClaim } from '@kubernetes/client-node';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Condition, SynodClusterStatus } from '../api/types.ts';
import { API_VERSION, KIND } from '../api/types.ts';
import { EventRecorder } from '../controller/event-recorder.ts';
import { OperatorMetrics } from '../controller/operator-metrics.ts';
import { Reconciler } from '../controller/reconciler.ts';
import { InMemoryApiDouble } from './in-memory-api-double.ts';
import { NEWEST_MINOR } from './ssa-stand-in.ts';

const NS = 'apps';
const NAME = 'kv';
const logger = pino({ level: 'silent' });

function reconcilerFor(api: InMemoryApiDouble): Reconciler {
  return new Reconciler({
    api, etcd: api.etcdAdmin(NS, NAME), events: new EventRecorder(api, logger, 'test'), metrics: new OperatorMetrics(), logger,
    now: () => new Date('2026-01-01T00:00:00Z'),
  });
}

function putCluster(api: InMemoryApiDouble, spec: Record<string, unknown>, annotations?: Record<string, string>): void {
  const existing = api.get('SynodCluster', NS, NAME);
  api.put({
    apiVersion: API_VERSION, kind: KIND,
    metadata: { name: NAME, namespace: NS, ...(annotations === undefined ? {} : { annotations }) },
    spec: { replicas: 3, version: '0.1.0', storage: { size: '1Gi', retentionPolicyOnScaleIn: 'Delete' }, ...spec },
    status: existing?.status,
  });
}

function status(api: InMemoryApiDouble): Partial<SynodClusterStatus> {
  return (api.get('SynodCluster', NS, NAME)?.status ?? {}) as Partial<SynodClusterStatus>;
}

function condition(api: InMemoryApiDouble, type: string): Condition | undefined {
  return status(api).conditions?.find((c) => c.type === type);
}

/** Reconciles and runs the cluster's machinery until a round plans nothing more to do. */
async function converge(api: InMemoryApiDouble, reconciler: Reconciler): Promise<void> {
  for (let round = 0; round < 200; round++) {
    const result = await reconciler.reconcile(NS, NAME);
    if (result.plan?.progress === null && result.executed.every((a) => a.type === 'EnsureChildren')) return;
    api.tick();
  }
  throw new Error(`did not converge: ${JSON.stringify(status(api))}`);
}

type Pvc = V1PersistentVolumeClaim & { kind: string; metadata: { name: string } };

function pvcs(api: InMemoryApiDouble): Pvc[] {
  return (api.objectsOf('PersistentVolumeClaim', NS) as unknown as Pvc[]).sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

/** Deletes the SynodCluster as Kubernetes would: the garbage collector takes whatever it owns, pods go with the StatefulSet. */
function deleteCluster(api: InMemoryApiDouble): string {
  const uid = api.get('SynodCluster', NS, NAME)?.metadata?.uid ?? '';
  api.remove('SynodCluster', NS, NAME);
  for (const object of [...api.objects.values()]) {
    const owned = object.metadata?.ownerReferences?.some((o) => o.uid === uid) === true;
    if (owned || object.kind === 'Pod') api.remove(object.kind ?? '', object.metadata?.namespace ?? '', object.metadata?.name ?? '');
  }
  api.members.delete(`${NS}/${NAME}`);
  api.leaders.delete(`${NS}/${NAME}`);
  return uid;
}

describe('a reconcile that has nothing to change writes nothing', () => {
  for (const minor of [26, NEWEST_MINOR]) {
    it(`on Kubernetes 1.${minor}`, async () => {
      const api = new InMemoryApiDouble();
      api.kubeMinor = minor;
      const reconciler = reconcilerFor(api);
      putCluster(api, { persistence: { whenDeleted: 'Delete' } });
      await converge(api, reconciler);
      expect(condition(api, 'Available')?.status).toBe('True');

      const resourceVersion = api.resourceVersion;
      const events = api.events.length;
      const result = await reconciler.reconcile(NS, NAME);
      expect(result.executed.map((a) => a.type)).toEqual(['EnsureChildren']);
      expect(api.resourceVersion, 'a write happened (new resourceVersion)').toBe(resourceVersion);
      expect(api.events.length).toBe(events);
    });
  }
});

describe('deleting and re-creating a SynodCluster (spec.persistence)', () => {
  it('labels every PVC with the cluster uid, and owns them exactly while whenDeleted is Delete', async () => {
    const api = new InMemoryApiDouble();
    const reconciler = reconcilerFor(api);
    putCluster(api, { persistence: { whenDeleted: 'Delete' } });
    await converge(api, reconciler);
    const uid = api.get('SynodCluster', NS, NAME)?.metadata?.uid;
    expect(pvcs(api).map((c) => [c.metadata.name, c.metadata.labels?.['synod.dev/cluster-uid'], c.metadata.ownerReferences?.map((o) => o.uid)])).toEqual(
      [0, 1, 2].map((i) => [`data-${NAME}-${i}`, uid, [uid]]),
    );
    // The StatefulSet controller's labels stay: the operator only adds its own.
    expect(pvcs(api)[0].metadata.labels?.['synod.dev/cluster']).toBe(NAME);

    putCluster(api, { persistence: { whenDeleted: 'Retain' } });
    await converge(api, reconciler);
    expect(pvcs(api).map((c) => c.metadata.ownerReferences ?? [])).toEqual([[], [], []]);
    expect(pvcs(api).every((c) => c.metadata.labels?.['synod.dev/cluster-uid'] === uid)).toBe(true);
  });

  it('a re-created cluster that finds the retained data of the old one says so, starts nothing, and adopts it only when asked', async () => {
    const api = new InMemoryApiDouble();
    const reconciler = reconcilerFor(api);
    putCluster(api, {});
    await converge(api, reconciler);
    const oldUid = deleteCluster(api);
    expect(pvcs(api)).toHaveLength(3);

    putCluster(api, {});
    const result = await reconciler.reconcile(NS, NAME);
    expect(result.executed).toEqual([]);
    expect(api.get('StatefulSet', NS, NAME)).toBeUndefined();
    const found = condition(api, 'DataFromAnotherCluster');
    expect(found).toMatchObject({ status: 'True', reason: 'ForeignData' });
    expect(found?.message).toContain(`data-${NAME}-0, data-${NAME}-1, data-${NAME}-2`);
    expect(found?.message).toContain(oldUid);
    expect(api.events.filter((e) => e.reason === 'ForeignData').map((e) => e.type)).toEqual(['Warning']);

    // Said once: a second round neither writes nor repeats the Event.
    const resourceVersion = api.resourceVersion;
    await reconciler.reconcile(NS, NAME);
    expect(api.resourceVersion).toBe(resourceVersion);
    expect(api.events.filter((e) => e.reason === 'ForeignData')).toHaveLength(1);

    putCluster(api, {}, { 'synod.dev/adopt-data': 'true' });
    await converge(api, reconciler);
    const newUid = api.get('SynodCluster', NS, NAME)?.metadata?.uid;
    expect(newUid).not.toBe(oldUid);
    expect(pvcs(api).map((c) => c.metadata.labels?.['synod.dev/cluster-uid'])).toEqual([newUid, newUid, newUid]);
    expect(condition(api, 'DataFromAnotherCluster')).toMatchObject({ status: 'False', reason: 'NoForeignData' });
    expect(condition(api, 'Available')?.status).toBe('True');
  });

  it('a re-created cluster starts afresh once the user deleted the old PVCs', async () => {
    const api = new InMemoryApiDouble();
    const reconciler = reconcilerFor(api);
    putCluster(api, {});
    await converge(api, reconciler);
    deleteCluster(api);
    putCluster(api, {});
    await reconciler.reconcile(NS, NAME);
    expect(condition(api, 'DataFromAnotherCluster')?.status).toBe('True');
    for (const c of pvcs(api)) api.remove('PersistentVolumeClaim', NS, c.metadata.name);
    await converge(api, reconciler);
    expect(condition(api, 'DataFromAnotherCluster')?.status).toBe('False');
    expect(condition(api, 'Available')?.status).toBe('True');
  });
});

// ---- Sharding (issue 16) ----
describe('a changed spec.shards on an API server that did not enforce the CRD\'s CEL rules', () => {
  it('is reported as InvalidSpec and not acted on: the StatefulSet keeps the shard count its members were created with', async () => {
    const api = new InMemoryApiDouble();
    const reconciler = reconcilerFor(api);
    putCluster(api, { shards: 4 });
    await reconciler.reconcile(NS, NAME);
    const envOf = (): unknown => (api.get('StatefulSet', NS, NAME)?.spec as { template: { spec: { containers: { env: unknown[] }[] } } }).template.spec.containers[0].env;
    expect(envOf()).toContainEqual({ name: 'SYNOD_SHARDS', value: '4' });
    putCluster(api, { shards: 8 });
    const result = await reconciler.reconcile(NS, NAME);
    expect(result.executed).toEqual([]);
    expect(condition(api, 'Degraded')).toMatchObject({ status: 'True', reason: 'InvalidSpec', message: 'shards is immutable' });
    expect(envOf()).toContainEqual({ name: 'SYNOD_SHARDS', value: '4' });
    putCluster(api, { shards: 4, replicationFactor: 5 });
    await reconciler.reconcile(NS, NAME);
    expect(condition(api, 'Degraded')).toMatchObject({ reason: 'InvalidSpec', message: 'replicationFactor is immutable' });
  });
});

describe('spec.zones: each pod gets its node\'s zone', () => {
  it('annotates every scheduled pod once with its node\'s zone ("-" without the label), then writes nothing', async () => {
    const api = new InMemoryApiDouble();
    api.nodes.set('node-a', { 'topology.kubernetes.io/zone': 'zone-a' });
    api.nodes.set('node-b', { 'topology.kubernetes.io/zone': 'zone-b' });
    api.nodes.set('node-x', {});
    const reconciler = reconcilerFor(api);
    putCluster(api, { zones: {} });
    await converge(api, reconciler);
    const zones = Object.fromEntries(api.objectsOf('Pod', NS).map((p) => [p.metadata?.name, [(p as { spec?: { nodeName?: string } }).spec?.nodeName, p.metadata?.annotations?.['synod.dev/zone']]]));
    expect(zones).toEqual({ 'kv-0': ['node-a', 'zone-a'], 'kv-1': ['node-b', 'zone-b'], 'kv-2': ['node-x', '-'] });
    // The rest of each pod is untouched by the annotation's apply.
    for (const pod of api.objectsOf('Pod', NS)) expect(pod.metadata?.annotations?.['synod.dev/template-hash']).toMatch(/^[0-9a-f]{16}$/);
    const resourceVersion = api.resourceVersion;
    const calls = api.calls.length;
    await reconciler.reconcile(NS, NAME);
    expect(api.resourceVersion).toBe(resourceVersion);
    expect(api.calls.slice(calls).filter((c) => c.startsWith('getNode:'))).toEqual([]);
  });
});

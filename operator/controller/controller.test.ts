// The whole control loop (informers → work queue → reconciler → plan → actions → status) end to end
// against the in-memory API double: bootstrap, scale 3 → 5 → 3, a rolling upgrade with the leader
// last, injected 409 conflicts, 410 Gone on every watch (re-list), a member down during scale-in,
// and the operator stopped mid-scale and started again.

import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Condition, SynodClusterStatus } from '../api/types.ts';
import { API_VERSION, KIND } from '../api/types.ts';
import { InMemoryApiDouble } from '../testing/in-memory-api-double.ts';
import { Controller } from './controller.ts';
import { EventRecorder } from './event-recorder.ts';
import { OperatorMetrics } from './operator-metrics.ts';
import { Reconciler } from './reconciler.ts';

const NS = 'apps';
const NAME = 'kv';
const logger = pino({ level: 'silent' });

interface Harness {
  api: InMemoryApiDouble;
  controller: Controller;
  metrics: OperatorMetrics;
}

const running: Controller[] = [];

function startController(api: InMemoryApiDouble): Harness {
  const metrics = new OperatorMetrics();
  const reconciler = new Reconciler({ api, etcd: api.etcdAdmin(NS, NAME), events: new EventRecorder(api, logger, 'test'), metrics, logger });
  const controller = new Controller({ sources: api, reconciler, metrics, logger, workers: 2, informerRestartBaseDelayMs: 5, maxRequeueAfterMs: 5 });
  running.push(controller);
  return { api, controller, metrics };
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop()));
});

function putCluster(api: InMemoryApiDouble, replicas: number, version = '0.1.0'): void {
  const existing = api.get('SynodCluster', NS, NAME);
  api.put({
    apiVersion: API_VERSION, kind: KIND,
    metadata: { name: NAME, namespace: NS },
    spec: { replicas, version, storage: { size: '1Gi', retentionPolicyOnScaleIn: 'Delete' } },
    status: existing?.status,
  });
}

function status(api: InMemoryApiDouble): Partial<SynodClusterStatus> {
  return (api.get('SynodCluster', NS, NAME)?.status ?? {}) as Partial<SynodClusterStatus>;
}

function condition(api: InMemoryApiDouble, type: string): Condition | undefined {
  return status(api).conditions?.find((c) => c.type === type);
}

function converged(api: InMemoryApiDouble, replicas: number, version: string): boolean {
  const s = status(api);
  const generation = api.get('SynodCluster', NS, NAME)?.metadata?.generation;
  return s.observedGeneration === generation &&
    condition(api, 'Available')?.status === 'True' &&
    condition(api, 'Progressing')?.status === 'False' &&
    condition(api, 'Upgrading')?.status === 'False' &&
    s.members?.length === replicas && s.members.every((m) => m.ready && m.role !== 'learner') &&
    s.currentVersion === version;
}

/** Runs the cluster's machinery (StatefulSet controller, kubelet, Raft) until `done` or the deadline. */
async function until(api: InMemoryApiDouble, done: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; status ${JSON.stringify(status(api))}`);
    api.tick();
    await new Promise((resolve) => setTimeout(resolve, 3));
  }
}

function reasons(api: InMemoryApiDouble): string[] {
  return api.events.map((e) => e.reason ?? '');
}

describe('the operator end to end against the in-memory API double', () => {
  it('bootstraps, scales 3 → 5 → 3, upgrades leader last, through conflicts and re-lists', async () => {
    const api = new InMemoryApiDouble();
    putCluster(api, 3);
    const { controller } = startController(api);
    await controller.start();

    await until(api, () => converged(api, 3, '0.1.0'), 'bootstrap of 3');
    const cm = api.get('ConfigMap', NS, `${NAME}-config`);
    expect(cm?.data?.['SYNOD_INITIAL_CLUSTER_STATE']).toBe('existing');
    for (const kind of ['ServiceAccount', 'Service', 'ConfigMap', 'StatefulSet', 'PodDisruptionBudget']) {
      const child = api.objectsOf(kind, NS)[0];
      expect(child?.metadata?.ownerReferences?.[0]).toMatchObject({ kind: KIND, name: NAME, controller: true });
    }
    expect(status(api).leader).toMatch(/^kv-\d$/);

    // Scale out one learner at a time; a 410 Gone on every watch in the middle forces re-lists.
    putCluster(api, 5);
    await until(api, () => api.calls.includes('etcd:MemberAdd'), 'first MemberAdd');
    const streamsBefore = api.watch.streams.length;
    api.expireWatches();
    await until(api, () => converged(api, 5, '0.1.0'), 'scale out to 5');
    expect(api.watch.streams.length).toBeGreaterThanOrEqual(streamsBefore + 4);
    expect(api.calls.filter((c) => c === 'etcd:MemberAdd')).toHaveLength(2);
    expect(api.calls.filter((c) => c === 'etcd:MemberPromote')).toHaveLength(2);
    expect(reasons(api)).toEqual(expect.arrayContaining(['AddLearner', 'PromoteLearner', 'ScaleStatefulSet']));

    // Rolling upgrade, with the next pod delete and the next status write answered 409.
    api.conflictNext.add('deletePod');
    api.conflictNext.add('applyStatus');
    const leaderBefore = status(api).leader;
    const deletesBefore = api.calls.length;
    putCluster(api, 5, '0.2.0');
    await until(api, () => converged(api, 5, '0.2.0'), 'rolling upgrade to 0.2.0');
    const upgradeCalls = api.calls.slice(deletesBefore);
    const moveLeader = upgradeCalls.indexOf('etcd:MoveLeader');
    expect(moveLeader).toBeGreaterThan(-1);
    // Four followers first, then MoveLeader, then the old leader's pod.
    expect(upgradeCalls.slice(0, moveLeader).filter((c) => c === 'deletePod').length).toBeGreaterThanOrEqual(4);
    expect(upgradeCalls.slice(moveLeader).filter((c) => c === 'deletePod')).toHaveLength(1);
    expect(status(api).leader).not.toBe(leaderBefore);
    expect(Object.values(api.podVersions(NS, NAME)).every((v) => v.startsWith('0.2.0@'))).toBe(true);

    // Scale in with kv-1 down: the highest ordinals go, their PVCs are retired.
    api.down.add(`${NS}/${NAME}/1`);
    putCluster(api, 3, '0.2.0');
    await until(api, () => status(api).members?.length === 3 && api.objectsOf('PersistentVolumeClaim', NS).length === 3, 'scale in to 3 with a member down');
    expect(api.objectsOf('PersistentVolumeClaim', NS).map((p) => p.metadata?.name).sort()).toEqual(['data-kv-0', 'data-kv-1', 'data-kv-2']);
    expect(condition(api, 'Degraded')?.status).toBe('True');
    api.down.clear();
    await until(api, () => converged(api, 3, '0.2.0'), 'recovery after scale in');
    expect(condition(api, 'Degraded')?.status).toBe('False');
    expect(reasons(api)).toEqual(expect.arrayContaining(['RemoveMember', 'DeletePvc', 'MoveLeader', 'DeletePod']));
  });

  it('converges after the operator is stopped between MemberAdd and the StatefulSet update', async () => {
    const api = new InMemoryApiDouble();
    putCluster(api, 3);
    const first = startController(api);
    await first.controller.start();
    await until(api, () => converged(api, 3, '0.1.0'), 'bootstrap');
    // The StatefulSet apply after MemberAdd fails and the operator dies before retrying.
    api.refuseApply = (o) => o.kind === 'StatefulSet' && (o['spec'] as { replicas: number }).replicas === 4;
    putCluster(api, 5);
    await until(api, () => api.calls.includes('etcd:MemberAdd'), 'MemberAdd');
    await first.controller.stop();
    running.splice(running.indexOf(first.controller), 1);
    expect((api.get('StatefulSet', NS, NAME)?.spec as { replicas: number }).replicas).toBe(3);

    api.refuseApply = null;
    const second = startController(api);
    await second.controller.start();
    await until(api, () => converged(api, 5, '0.1.0'), 'scale out after restart');
    expect(api.calls.filter((c) => c === 'etcd:MemberAdd')).toHaveLength(2);
  });

  it('reports an invalid spec in status and an event, and changes nothing', async () => {
    const api = new InMemoryApiDouble();
    putCluster(api, 4);
    const { controller } = startController(api);
    await controller.start();
    await until(api, () => condition(api, 'Degraded')?.reason === 'InvalidSpec', 'InvalidSpec condition');
    expect(api.get('StatefulSet', NS, NAME)).toBeUndefined();
    // The Warning event is recorded by its own write, which may land just after the status.
    await until(api, () => api.events.some((e) => e.reason === 'InvalidSpec' && e.type === 'Warning'), 'InvalidSpec event');
    expect(condition(api, 'Degraded')?.message).toBe('replicas must be odd and at least 1');
  });

  it('counts reconciles and actions in its metrics', async () => {
    const api = new InMemoryApiDouble();
    putCluster(api, 1);
    const { controller, metrics } = startController(api);
    await controller.start();
    await until(api, () => converged(api, 1, '0.1.0'), 'single member');
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/synod_operator_reconciles_total\{result="ok"\} [1-9]/);
    expect(text).toMatch(/synod_operator_actions_total\{action="EnsureChildren",result="ok"\} [1-9]/);
    expect(text).toContain('synod_operator_cluster_members{namespace="apps",cluster="kv",state="ready"} 1');
  });
});

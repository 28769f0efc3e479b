// One reconcile of one SynodCluster: observe → plan → execute the plan's actions in order → write
// status. Every action gets an Event and a metric; the first failing action stops the round and the
// error goes back to the work queue (rate-limited requeue). A 409 on a pod delete means the pod is
// no longer the one observed (already replaced): the round ends and is re-planned from scratch.

import type { Logger } from 'pino';
import { peerTlsOn, validateSpec } from '../api/spec-defaults.ts';
import type { SynodCluster, SynodClusterStatus } from '../api/types.ts';
import { ANNOTATION_ADOPT_DATA } from '../api/types.ts';
import type { EtcdAdminSource } from '../etcd/admin-pool.ts';
import type { EtcdAdmin } from '../etcd/etcd-admin.ts';
import type { PlacementAdmin } from '../etcd/placement-admin.ts';
import type { KubeApi } from '../kube/kube-api.ts';
import { isConflict, isNotFound } from '../kube/kube-api.ts';
import type { Action, DesiredCluster, Plan, ShardingAction } from '../planner/model.ts';
import { plan } from '../planner/plan.ts';
import { deriveStatus } from '../planner/status.ts';
import type { ClusterRef } from '../render/children.ts';
import { canonicalJson, desiredTemplateHash, renderChildren, renderPodZone, renderPvcMetadata, renderStatefulSet, selectorString } from '../render/children.ts';
import type { EventRecorder } from './event-recorder.ts';
import type { Observation } from './observe.ts';
import { observeCluster } from './observe.ts';
import type { OperatorMetrics } from './operator-metrics.ts';
import { kubeTime } from '../kube/kube-time.ts';
import type { SecurityStep } from './security-step.ts';
import { prepareSecurity, reconcileAuth } from './security-step.ts';

export interface ReconcilerDeps {
  api: KubeApi;
  /** The admin connection of clusters without spec.tls or spec.auth. */
  etcd: EtcdAdmin;
  /** Admin connections of clusters with spec.tls or spec.auth (their own CA, certificate, password). */
  admins?: EtcdAdminSource;
  /** Synod's Placement service, for sharded clusters (spec.shards > 1); absent: they are observed without placement. */
  placement?: PlacementAdmin;
  events: EventRecorder;
  metrics: OperatorMetrics;
  logger: Logger;
  now?: () => Date;
}

export interface ReconcileResult {
  /** null when the resource is gone (nothing to requeue). */
  requeueAfterMs: number | null;
  plan: Plan | null;
  executed: Action[];
}

/** Thrown when the round was cut short by a conflict: requeue at once, re-planning from scratch. */
export class ReconcileConflict extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReconcileConflict';
  }
}

export class Reconciler {
  readonly #deps: ReconcilerDeps;

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
  }

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const { api, logger } = this.#deps;
    const cluster = await api.getSynodCluster(namespace, name);
    if (cluster === null || cluster.metadata.deletionTimestamp !== undefined) {
      // Children go with it through their owner references.
      this.#deps.admins?.release({ namespace, name });
      return { requeueAfterMs: null, plan: null, executed: [] };
    }
    const log = logger.child({ cluster: `${namespace}/${name}`, generation: cluster.metadata.generation });
    const ref: ClusterRef = { name, namespace, uid: cluster.metadata.uid };
    // TLS and auth first: generated certificates must exist before pods mount them, and the admin
    // connection needs the cluster's CA, client certificate and password to observe the members.
    const nowMs = (this.#deps.now ?? (() => new Date()))().getTime();
    const security: SecurityStep = validateSpec(cluster.spec).length === 0
      ? await prepareSecurity(this.#deps, ref, cluster.spec, nowMs)
      : { etcd: this.#deps.etcd, auth: null, waiting: null, tlsChanges: [], tlsReviewAtMs: null, placement: null };
    for (const change of security.tlsChanges) {
      log.info(change);
      await this.#deps.events.record(ref, 'Normal', 'Certificates', change);
    }
    // A cluster with TLS or auth is asked for its placement on its own connection (its CA, the root token).
    const placement = security.placement ?? this.#deps.placement;
    const observation = await observeCluster(api, security.etcd, cluster, placement);

    const errors = validateSpec(cluster.spec);
    const current = observation.statefulSetStorageClass;
    if (observation.observed.statefulSet !== null && current !== cluster.spec.storage.storageClassName) {
      errors.push('storage.storageClassName is immutable');
    }
    // The servers refuse to start with another --shards or --replication-factor than their cluster's:
    // a change (on an API server without the CRD's CEL rules) would crash-loop every restarted pod.
    const running = observation.statefulSetSharding;
    if (running !== undefined && running.shards !== cluster.spec.shards) errors.push('shards is immutable');
    if (running !== undefined && running.shards > 1 && running.replicationFactor !== cluster.spec.replicationFactor) errors.push('replicationFactor is immutable');
    const desired: DesiredCluster = {
      name, namespace,
      replicas: cluster.spec.replicas,
      version: cluster.spec.version,
      templateHash: desiredTemplateHash(ref, cluster.spec),
      retentionPolicy: cluster.spec.storage.retentionPolicyOnScaleIn,
      uid: cluster.metadata.uid,
      whenDeleted: cluster.spec.persistence.whenDeleted,
      adoptData: cluster.metadata.annotations?.[ANNOTATION_ADOPT_DATA] === 'true',
      peerTls: peerTlsOn(cluster.spec.tls),
      sharding: { shards: cluster.spec.shards, replicationFactor: cluster.spec.replicationFactor },
      ...(cluster.spec.zones === undefined ? {} : { zoneTopologyKey: cluster.spec.zones.topologyKey }),
    };
    if (errors.length > 0) {
      const message = errors.join('; ');
      log.warn({ errors }, 'invalid spec, not acting on it');
      const idle: Plan = { actions: [], progress: null, requeueAfterMs: 60_000 };
      await this.#writeStatus(cluster, desired, observation, idle, message);
      if (!cluster.status?.conditions?.some((c) => c.type === 'Degraded' && c.reason === 'InvalidSpec' && c.message === message)) {
        await this.#deps.events.record(ref, 'Warning', 'InvalidSpec', message);
      }
      return { requeueAfterMs: idle.requeueAfterMs, plan: idle, executed: [] };
    }
    if (security.waiting !== null) {
      // A Secret the spec names is missing: pods could not mount it, nor the operator authenticate.
      const waiting: Plan = { actions: [], progress: { reason: 'WaitingForSecrets', message: security.waiting }, requeueAfterMs: 15_000 };
      log.warn({ message: security.waiting }, 'waiting for Secrets');
      await this.#writeStatus(cluster, desired, observation, waiting);
      if (!cluster.status?.conditions?.some((c) => c.type === 'Progressing' && c.reason === 'WaitingForSecrets' && c.message === security.waiting)) {
        await this.#deps.events.record(ref, 'Warning', 'WaitingForSecrets', security.waiting);
      }
      return { requeueAfterMs: waiting.requeueAfterMs, plan: waiting, executed: [] };
    }

    const decided = plan(desired, observation.observed);
    log.debug({ actions: decided.actions, progress: decided.progress }, 'planned');
    if (decided.foreignData !== undefined) {
      const { message } = decided.foreignData;
      log.warn({ pvcs: decided.foreignData.pvcs, clusterUids: decided.foreignData.clusterUids }, 'PVCs hold another cluster\'s data, not acting');
      // Once per finding, as for InvalidSpec: the condition stays, the Event is not repeated every round.
      if (!cluster.status?.conditions?.some((c) => c.type === 'DataFromAnotherCluster' && c.status === 'True' && c.message === message)) {
        await this.#deps.events.record(ref, 'Warning', 'ForeignData', message);
      }
    }
    const executed: Action[] = [];
    for (const action of decided.actions) {
      await this.#execute(cluster, ref, observation, action, log, security.etcd, placement);
      executed.push(action);
    }
    // Auth changes wait for a converged cluster (security-step.ts says why).
    if (decided.progress === null && observation.observed.members !== null) {
      let change: Awaited<ReturnType<typeof reconcileAuth>>;
      try {
        change = await reconcileAuth(security, cluster.spec, observation.endpoints);
      } catch (error) {
        // E.g. a root password that no longer matches the Secret's: say so where people look.
        await this.#deps.events.record(ref, 'Warning', 'AuthFailed', `${cluster.spec.auth?.enabled === false ? 'disabling' : 'enabling'} authentication failed: ${errorMessage(error)}`);
        throw error;
      }
      if (change === 'enabled' || change === 'disabled') {
        const message = change === 'enabled' ? 'enabled authentication (user root with the root role)' : 'disabled authentication';
        log.info(message);
        await this.#deps.events.record(ref, 'Normal', change === 'enabled' ? 'AuthEnabled' : 'AuthDisabled', message);
      }
    }
    await this.#writeStatus(cluster, desired, observation, decided);
    const untilTlsReview = security.tlsReviewAtMs === null ? Infinity : Math.max(1_000, security.tlsReviewAtMs - nowMs);
    return { requeueAfterMs: Math.min(decided.requeueAfterMs, untilTlsReview), plan: decided, executed };
  }

  async #execute(cluster: SynodCluster, ref: ClusterRef, observation: Observation, action: Action, log: Logger, etcd: EtcdAdmin, placement: PlacementAdmin | undefined): Promise<void> {
    const { api, events, metrics } = this.#deps;
    const { namespace } = ref;
    const describe = describeAction(action);
    try {
      switch (action.type) {
        case 'EnsureChildren':
          for (const child of renderChildren(ref, cluster.spec, { statefulSetReplicas: action.statefulSetReplicas, clusterState: action.clusterState })) {
            await api.apply(child);
          }
          break;
        case 'AddLearner':
          await etcd.memberAddLearner(observation.endpoints, action.peerUrl);
          break;
        case 'PromoteLearner':
          await etcd.memberPromote(observation.endpoints, action.memberId);
          break;
        case 'MoveLeader': {
          const leaderEndpoint = observation.memberEndpoints.get(action.fromMemberId);
          if (leaderEndpoint === undefined) throw new Error(`no client endpoint for leader ${action.fromMemberId}`);
          await etcd.moveLeader(leaderEndpoint, action.toMemberId);
          break;
        }
        case 'RemoveMember':
          await etcd.memberRemove(observation.endpoints, action.memberId);
          break;
        case 'ScaleStatefulSet':
          await api.apply(renderStatefulSet(ref, cluster.spec, action.replicas));
          break;
        case 'DeletePod': {
          const uid = observation.podUids.get(action.podName);
          if (uid === undefined) throw new ReconcileConflict(`pod ${action.podName} vanished`);
          try {
            await api.deletePod(namespace, action.podName, uid);
          } catch (error) {
            if (isNotFound(error) || isConflict(error)) throw new ReconcileConflict(`pod ${action.podName} changed since observed`);
            throw error;
          }
          break;
        }
        case 'DeletePvc':
          await api.deletePvc(namespace, action.pvcName);
          break;
        case 'EnsurePvcMetadata':
          await api.apply(renderPvcMetadata(ref, action.pvcName, action.deleteWithCluster));
          break;
        case 'DrainMember':
        case 'UndrainMember':
        case 'TransferLeaderships':
          await this.#executeSharding(observation, action, placement);
          break;
        case 'AnnotatePodZone':
          await api.apply(renderPodZone(ref, action.podName, action.zone));
          break;
      }
    } catch (error) {
      const result = error instanceof ReconcileConflict ? 'conflict' : 'error';
      metrics.actionsTotal.inc({ action: action.type, result });
      log.warn({ err: error, action }, `action failed: ${describe}`);
      if (result === 'error') await events.record(ref, 'Warning', `${action.type}Failed`, `${describe}: ${errorMessage(error)}`);
      throw error;
    }
    metrics.actionsTotal.inc({ action: action.type, result: 'ok' });
    if (action.type !== 'EnsureChildren' || observation.observed.statefulSet === null || observation.observed.bootstrapState !== action.clusterState) {
      log.info({ action }, describe);
      await events.record(ref, 'Normal', action.type, describe);
    }
  }

  /** Placement calls (sharded clusters); a TransferLeaderships that leaves leaderships behind fails the round before the pod delete. */
  async #executeSharding(observation: Observation, action: Exclude<ShardingAction, { type: 'AnnotatePodZone' }>, placement: PlacementAdmin | undefined): Promise<void> {
    if (placement === undefined) throw new Error(`${action.type} needs the Placement admin client`);
    switch (action.type) {
      case 'DrainMember':
        await placement.drain(observation.endpoints, action.memberId);
        return;
      case 'UndrainMember':
        await placement.drain(observation.endpoints, action.memberId, true);
        return;
      case 'TransferLeaderships': {
        const endpoint = observation.memberEndpoints.get(action.memberId);
        if (endpoint === undefined) throw new Error(`no client endpoint for member ${action.memberId}`);
        const out = await placement.transferLeaderships(endpoint);
        if (out.remaining > 0) throw new Error(`${action.memberName} still leads ${out.remaining} group(s) after handing ${out.transferred} over`);
        return;
      }
    }
  }

  async #writeStatus(cluster: SynodCluster, desired: DesiredCluster, observation: Observation, decided: Plan, invalidSpecMessage?: string): Promise<void> {
    const status = deriveStatus({
      desired,
      observed: observation.observed,
      plan: decided,
      generation: cluster.metadata.generation,
      selector: selectorString(desired.name),
      previousConditions: cluster.status?.conditions ?? [],
      // metav1.Time has whole seconds: what the API server stores, so a kept condition compares equal.
      now: kubeTime((this.#deps.now ?? (() => new Date()))()).toISOString(),
      invalidSpecMessage,
    });
    const { metrics } = this.#deps;
    const labels = { namespace: desired.namespace, cluster: desired.name };
    metrics.clusterMembers.set({ ...labels, state: 'ready' }, status.members.filter((m) => m.ready).length);
    metrics.clusterMembers.set({ ...labels, state: 'total' }, status.members.length);
    metrics.clusterMembers.set({ ...labels, state: 'desired' }, desired.replicas);
    // Unchanged status is not written: a write would trigger a watch event and another reconcile.
    if (sameStatus(cluster.status, status)) return;
    await this.#deps.api.applyStatus(desired.namespace, desired.name, status);
  }
}

export function describeAction(action: Action): string {
  switch (action.type) {
    case 'EnsureChildren': return `applied children (StatefulSet replicas ${action.statefulSetReplicas}, initial-cluster-state ${action.clusterState})`;
    case 'AddLearner': return `added ${action.memberName} (${action.peerUrl}) as a learner`;
    case 'PromoteLearner': return `promoted learner ${action.memberName} (${action.memberId}) to voting member`;
    case 'MoveLeader': return `moved leadership from ${action.fromMemberId} to ${action.toMemberName}: ${action.reason}`;
    case 'RemoveMember': return `removed member ${action.memberName} (${action.memberId}): ${action.reason}`;
    case 'ScaleStatefulSet': return `scaled the StatefulSet to ${action.replicas}: ${action.reason}`;
    case 'DeletePod': return `deleted pod ${action.podName}: ${action.reason}`;
    case 'DeletePvc': return `deleted PVC ${action.pvcName}: ${action.reason}`;
    case 'EnsurePvcMetadata': return `labelled PVC ${action.pvcName} as this cluster's data${action.deleteWithCluster ? ', deleted with it' : ', kept after it'}: ${action.reason}`;
    case 'DrainMember': return `draining ${action.memberName} (${action.memberId}): ${action.replicasRemaining} shard replica(s) to move off`;
    case 'UndrainMember': return `marked ${action.memberName} (${action.memberId}) up again: it hosts no replica`;
    case 'TransferLeaderships': return `moved the shard and metadata leaderships of ${action.memberName} (${action.memberId}) away: ${action.reason}`;
    case 'AnnotatePodZone': return `gave pod ${action.podName} its node's zone (${action.zone})`;
  }
}

function sameStatus(previous: Partial<SynodClusterStatus> | undefined, next: SynodClusterStatus): boolean {
  if (previous === undefined) return false;
  return canonicalJson(previous) === canonicalJson(next);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

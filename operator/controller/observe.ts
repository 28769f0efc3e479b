// Reads the observed state of one SynodCluster, fresh on every reconcile: its StatefulSet, ConfigMap,
// pods and PVCs from the Kubernetes API, and the membership and per-member Raft status from the
// members themselves (Cluster.MemberList, Maintenance.Status on each member's stable client URL).
// Nothing is remembered between reconciles: this is what makes every step restart-safe.

import type { V1Pod } from '@kubernetes/client-node';
import type { SynodCluster } from '../api/types.ts';
import { ANNOTATION_TEMPLATE_HASH, ANNOTATION_ZONE, LABEL_CLUSTER_UID, LABEL_VERSION } from '../api/types.ts';
import type { EtcdAdmin, EtcdEndpointStatus } from '../etcd/etcd-admin.ts';
import type { PlacementAdmin, PlacementSnapshot } from '../etcd/placement-admin.ts';
import { endpointOf } from '../etcd/etcd-admin.ts';
import type { KubeApi } from '../kube/kube-api.ts';
import type { ObservedCluster, ObservedMember, ObservedPlacement, ObservedPod, ObservedPvc } from '../planner/model.ts';
import { DATA_VOLUME, clientServiceName, clientUrl, ordinalOf, ordinalOfPeerUrl } from '../planner/naming.ts';
import { configMapName, selectorString } from '../render/children.ts';

export interface Observation {
  observed: ObservedCluster;
  /** uid of each observed pod, for delete preconditions. */
  podUids: ReadonlyMap<string, string>;
  /** Client endpoint (host:port) of each member id, for MoveLeader. */
  memberEndpoints: ReadonlyMap<string, string>;
  /** Client endpoints to send membership calls to, healthiest first. */
  endpoints: readonly string[];
  /** storageClassName of the StatefulSet's data volume claim template, if it exists. */
  statefulSetStorageClass: string | undefined;
  /** The StatefulSet's shard count and replication factor (its pods' SYNOD_SHARDS / SYNOD_REPLICATION_FACTOR; 1 and unset without). */
  statefulSetSharding: { shards: number; replicationFactor: number | undefined } | undefined;
}

export async function observeCluster(api: KubeApi, etcd: EtcdAdmin, cluster: SynodCluster, placementAdmin?: PlacementAdmin): Promise<Observation> {
  const { name, namespace } = cluster.metadata;
  const selector = selectorString(name);
  const [sts, configMap, pods, pvcs] = await Promise.all([
    api.getStatefulSet(namespace, name),
    api.getConfigMap(namespace, configMapName(name)),
    api.listPods(namespace, selector),
    api.listPvcs(namespace, selector),
  ]);
  const observedPods: ObservedPod[] = [];
  const podUids = new Map<string, string>();
  for (const pod of pods) {
    const podNameValue = pod.metadata?.name ?? '';
    const ordinal = ordinalOf(name, podNameValue);
    if (ordinal === null) continue;
    podUids.set(podNameValue, pod.metadata?.uid ?? '');
    observedPods.push({
      ordinal,
      name: podNameValue,
      ready: isPodReady(pod),
      terminating: pod.metadata?.deletionTimestamp !== undefined && pod.metadata?.deletionTimestamp !== null,
      templateHash: pod.metadata?.annotations?.[ANNOTATION_TEMPLATE_HASH] ?? '',
      version: pod.metadata?.labels?.[LABEL_VERSION] ?? '',
      ...(pod.spec?.nodeName === undefined ? {} : { nodeName: pod.spec.nodeName }),
      ...(pod.metadata?.annotations?.[ANNOTATION_ZONE] === undefined ? {} : { zone: pod.metadata.annotations[ANNOTATION_ZONE] }),
    });
  }
  const observedPvcs: ObservedPvc[] = [];
  for (const pvc of pvcs) {
    const pvcNameValue = pvc.metadata?.name ?? '';
    const ordinal = ordinalOf(`${DATA_VOLUME}-${name}`, pvcNameValue);
    if (ordinal === null) continue;
    const clusterUid = pvc.metadata?.labels?.[LABEL_CLUSTER_UID];
    observedPvcs.push({
      ordinal,
      name: pvcNameValue,
      terminating: pvc.metadata?.deletionTimestamp !== undefined && pvc.metadata?.deletionTimestamp !== null,
      ...(clusterUid === undefined ? {} : { clusterUid }),
      ownedByCluster: pvc.metadata?.ownerReferences?.some((o) => o.uid === cluster.metadata.uid) === true,
    });
  }

  const podEndpoints = observedPods
    .filter((p) => !p.terminating)
    .sort((a, b) => Number(b.ready) - Number(a.ready) || a.ordinal - b.ordinal)
    .map((p) => endpointOf(clientUrl(name, namespace, p.ordinal)));
  const endpoints = [...podEndpoints, `${clientServiceName(name)}.${namespace}.svc:2379`];
  const memberEndpoints = new Map<string, string>();
  let members: ObservedMember[] | null = null;
  if (sts !== null) {
    try {
      const list = await etcd.memberList(endpoints);
      const statuses = await Promise.all(
        list.map(async (m) => {
          const ordinal = firstOrdinal(name, namespace, m.peerUrls);
          const endpoint = ordinal !== null ? endpointOf(clientUrl(name, namespace, ordinal)) : m.clientUrls[0] !== undefined ? endpointOf(m.clientUrls[0]) : null;
          if (endpoint !== null) memberEndpoints.set(m.id, endpoint);
          const status = endpoint === null ? null : await etcd.status(endpoint).catch((): null => null);
          return { member: m, ordinal, status };
        }),
      );
      const leaderId = agreedLeader(statuses.map((s) => s.status));
      members = statuses.map(({ member, ordinal, status }) => ({
        id: member.id,
        name: member.name,
        peerUrl: member.peerUrls[0] ?? '',
        ordinal,
        isLearner: member.isLearner,
        healthy: status !== null,
        isLeader: leaderId !== null && member.id === leaderId,
        appliedIndex: status?.raftAppliedIndex ?? 0,
      }));
    } catch {
      members = null;
    }
  }
  // Sharded: every answering member's placement view (each reports its own replicas' revisions).
  let placement: ObservedPlacement | null | undefined;
  if (cluster.spec.shards > 1) {
    placement = members === null || placementAdmin === undefined ? null : await observePlacement(placementAdmin, members, memberEndpoints);
  }
  // Zones: the nodes of the pods still waiting for their zone annotation (each read once).
  let nodeZones: Record<string, string> | undefined;
  const zones = cluster.spec.zones;
  if (zones !== undefined) {
    nodeZones = {};
    const waiting = [...new Set(observedPods.filter((p) => p.zone === undefined && p.nodeName !== undefined).map((p) => p.nodeName as string))];
    for (const node of waiting) {
      const labels = await api.getNodeLabels(node);
      if (labels !== null) nodeZones[node] = labels[zones.topologyKey] ?? '';
    }
  }
  const template = sts?.spec?.volumeClaimTemplates?.find((t) => t.metadata?.name === DATA_VOLUME);
  return {
    observed: {
      statefulSet: sts === null ? null : { replicas: sts.spec?.replicas ?? 0, ...controllerUid(sts.metadata?.ownerReferences) },
      bootstrapState: configMap === null ? null : configMap.data?.['SYNOD_INITIAL_CLUSTER_STATE'] === 'new' ? 'new' : 'existing',
      pods: observedPods.sort((a, b) => a.ordinal - b.ordinal),
      pvcs: observedPvcs.sort((a, b) => a.ordinal - b.ordinal),
      members,
      ...(placement === undefined ? {} : { placement }),
      ...(nodeZones === undefined ? {} : { nodeZones }),
    },
    podUids,
    memberEndpoints,
    endpoints,
    statefulSetStorageClass: template?.spec?.storageClassName,
    statefulSetSharding: sts === null ? undefined : shardingOfTemplate(sts.spec?.template?.spec?.containers?.[0]?.env ?? []),
  };
}

/** The controller owner's uid, as an ObservedStatefulSet field (absent when it has none). */
function controllerUid(owners: readonly { uid: string; controller?: boolean }[] | undefined): { ownerUid?: string } {
  const uid = owners?.find((o) => o.controller === true)?.uid;
  return uid === undefined ? {} : { ownerUid: uid };
}

export function isPodReady(pod: V1Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
}

/** The leader the answering members report at the highest term (null if none is known). */
export function agreedLeader(statuses: readonly (EtcdEndpointStatus | null)[]): string | null {
  let best: EtcdEndpointStatus | null = null;
  for (const s of statuses) {
    if (s === null || s.leaderId === '0') continue;
    if (best === null || s.raftTerm > best.raftTerm) best = s;
  }
  return best?.leaderId ?? null;
}

function firstOrdinal(cluster: string, namespace: string, urls: readonly string[]): number | null {
  for (const url of urls) {
    const ordinal = ordinalOfPeerUrl(cluster, namespace, url);
    if (ordinal !== null) return ordinal;
  }
  return null;
}

/**
 * The placement as the cluster group's leader sees it (else the first member that answers), with each
 * shard's replica revisions as the members hosting them report them: a member's GetPlacement shows
 * its own replica's applied revision for every shard it hosts. null when no member answers.
 */
async function observePlacement(admin: PlacementAdmin, members: readonly ObservedMember[], endpoints: ReadonlyMap<string, string>): Promise<ObservedPlacement | null> {
  const answers = await Promise.all(
    members.filter((m) => m.healthy).map(async (m) => {
      const endpoint = endpoints.get(m.id);
      const view = endpoint === undefined ? null : await admin.getPlacement(endpoint).catch((): null => null);
      return { member: m, view };
    }),
  );
  const answered = answers.filter((a): a is { member: ObservedMember; view: PlacementSnapshot } => a.view !== null);
  const primary = (answered.find((a) => a.member.isLeader) ?? answered[0])?.view;
  if (primary === undefined) return null;
  return {
    shards: primary.shards.map((shard) => {
      const revisions: Record<string, number> = {};
      for (const { member, view } of answered) {
        const own = view.shards.find((s) => s.id === shard.id);
        if (own !== undefined && (own.voters.includes(member.id) || own.learners.includes(member.id))) revisions[member.id] = own.revision;
      }
      return { id: shard.id, voters: shard.voters, learners: shard.learners, leader: shard.leader, revisions };
    }),
    movesPending: primary.moves.pending,
    movesInProgress: primary.moves.inProgress,
    metadataLeader: primary.metadataLeader,
  };
}

/** --shards and --replication-factor as the StatefulSet's pods are given them (operator/render/children.ts). */
function shardingOfTemplate(env: readonly { name: string; value?: string }[]): { shards: number; replicationFactor: number | undefined } {
  const value = (name: string): string | undefined => env.find((e) => e.name === name)?.value;
  const factor = value('SYNOD_REPLICATION_FACTOR');
  return { shards: Number(value('SYNOD_SHARDS') ?? 1), replicationFactor: factor === undefined ? undefined : Number(factor) };
}

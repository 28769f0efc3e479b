// Derives the SynodCluster status (conditions, members, leader, versions) from the observed state and
// the plan. Pure, like plan(): the time is passed in, and a condition keeps its lastTransitionTime while
// its status does not change.

import type { Condition, ConditionStatus, ConditionType, MemberStatus, ShardsStatus, SynodClusterStatus } from '../api/types.ts';
import type { DesiredCluster, ObservedCluster, Plan } from './model.ts';
import { podName } from './naming.ts';
import { isHealthy, quorumSize } from './plan.ts';
import { assessShards, isRebalancing, shardingOf } from './shard-health.ts';

export interface StatusInputs {
  desired: DesiredCluster;
  observed: ObservedCluster;
  plan: Plan;
  generation: number;
  selector: string;
  previousConditions: readonly Condition[];
  now: string;
  /** Set when the spec is invalid: nothing is done and Degraded says why. */
  invalidSpecMessage?: string;
}

export function deriveStatus(input: StatusInputs): SynodClusterStatus {
  const { desired, observed, plan, generation } = input;
  const stsReplicas = observed.statefulSet?.replicas ?? 0;
  const pods = observed.pods.filter((p) => p.ordinal < stsReplicas && !p.terminating);
  const members = observed.members ?? [];
  const voters = members.filter((m) => !m.isLearner);
  const leader = members.find((m) => m.isLeader) ?? null;
  const memberStatuses: MemberStatus[] = members
    .map((m): MemberStatus => {
      const pod = pods.find((p) => p.ordinal === m.ordinal);
      const name = m.name !== '' ? m.name : m.ordinal !== null ? podName(desired.name, m.ordinal) : m.id;
      return {
        name,
        id: m.id,
        role: m.isLearner ? 'learner' : m.isLeader ? 'leader' : m.healthy ? 'follower' : 'unknown',
        ready: m.healthy && pod !== undefined && pod.ready,
        version: pod?.version ?? '',
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  const readyReplicas = pods.filter((p) => p.ready).length;
  const outdated = pods.filter((p) => p.templateHash !== desired.templateHash);
  const versions = new Set(pods.map((p) => p.version));
  const currentVersion = outdated.length === 0 && pods.length > 0 ? desired.version : versions.size === 1 ? [...versions][0] : outdated[0]?.version ?? '';
  const healthyVoters = voters.filter((m) => m.healthy).length;
  // Available needs a quorum of voters that answer AND whose pods are Ready: a member that answers
  // Status while its pod is not Ready gets no client traffic through the Service, so it does not
  // make the cluster available (the issue saw Available=True with 1 of 3 pods Ready).
  const readyVoters = voters.filter((m) => memberStatuses.find((s) => s.id === m.id)?.ready === true).length;
  const available = observed.members !== null && leader !== null && readyVoters >= quorumSize(voters.length);
  const healthy = isHealthy(voters, leader, pods, stsReplicas);

  const conditions: Condition[] = [];
  const set = (type: ConditionType, status: ConditionStatus, reason: string, message: string): void => {
    const previous = input.previousConditions.find((c) => c.type === type);
    const lastTransitionTime = previous !== undefined && previous.status === status ? previous.lastTransitionTime : input.now;
    conditions.push({ type, status, reason, message, observedGeneration: generation, lastTransitionTime });
  };
  set('Available', available ? 'True' : 'False', available ? 'QuorumHealthy' : 'NoQuorum',
    available ? `${readyVoters}/${voters.length} voting members ready, leader ${leaderName(desired, leader)}` : observed.members === null ? 'no member answered' : `no quorum of ready members with a leader (${readyVoters}/${voters.length} voting members ready)`);
  if (input.invalidSpecMessage !== undefined) {
    set('Progressing', 'False', 'InvalidSpec', input.invalidSpecMessage);
    set('Degraded', 'True', 'InvalidSpec', input.invalidSpecMessage);
  } else {
    set('Progressing', plan.progress === null ? 'False' : 'True', plan.progress?.reason ?? 'Converged', plan.progress?.message ?? `${voters.length} members at ${desired.version}`);
    set('Degraded', healthy ? 'False' : 'True', healthy ? 'AllMembersReady' : 'MembersNotReady',
      healthy ? 'every member is ready and caught up' : `${readyReplicas}/${stsReplicas} pods ready, ${healthyVoters}/${voters.length} voting members healthy`);
  }
  set('Upgrading', outdated.length > 0 ? 'True' : 'False', outdated.length > 0 ? 'RollingUpdate' : 'UpToDate',
    outdated.length > 0 ? `${outdated.length} pod(s) still to update to ${desired.version}` : `every pod runs ${desired.version}`);
  // Another SynodCluster's data on our PVCs (plan.ts, foreignData): True, and nothing done, until the
  // user deletes the PVCs or adopts the data.
  const foreign = plan.foreignData;
  set('DataFromAnotherCluster', foreign !== undefined ? 'True' : 'False', foreign !== undefined ? 'ForeignData' : 'NoForeignData',
    foreign?.message ?? "every PVC holds this cluster's data");

  const shards = shardsStatus(desired, observed);
  if (shards !== undefined) {
    const rebalancing = rebalancingCondition(observed, plan, shards);
    set('Rebalancing', rebalancing.status, rebalancing.reason, rebalancing.message);
  }

  return {
    ...(shards === undefined ? {} : { shards }),
    observedGeneration: generation,
    replicas: stsReplicas,
    readyReplicas,
    selector: input.selector,
    leader: leaderName(desired, leader),
    currentVersion,
    members: memberStatuses,
    memberSummary: memberSummary(memberStatuses, desired.replicas),
    conditions,
  };
}

/**
 * The MEMBERS printer column, "ready/of": `of` counts the members that exist or are wanted, so it
 * never reads more ready than there are (scale-in 5 → 3 shows 5/5, 4/4, 3/3, not 4/3) and a scale-out
 * shows how far it has to go (3/5).
 */
export function memberSummary(members: readonly MemberStatus[], desiredReplicas: number): string {
  return `${members.filter((m) => m.ready).length}/${Math.max(desiredReplicas, members.length)}`;
}

function leaderName(desired: DesiredCluster, leader: { name: string; ordinal: number | null; id: string } | null): string {
  if (leader === null) return '';
  if (leader.name !== '') return leader.name;
  return leader.ordinal !== null ? podName(desired.name, leader.ordinal) : leader.id;
}

// ---- Sharding (issue 16): status.shards and the Rebalancing condition ----

/** status.shards of a sharded cluster (undefined for a one-group cluster), from the observed placement. */
export function shardsStatus(desired: DesiredCluster, observed: ObservedCluster): ShardsStatus | undefined {
  const sharding = shardingOf(desired);
  if (sharding === null || observed.placement === undefined) return undefined;
  const placement = observed.placement;
  if (placement === null) {
    return { total: sharding.shards, healthy: 0, underReplicated: 0, movesPending: 0, movesInProgress: 0, summary: `?/${sharding.shards}` };
  }
  const assessed = assessShards(sharding, observed.members ?? [], placement);
  const healthy = assessed.filter((a) => a.healthy).length;
  return {
    total: placement.shards.length,
    healthy,
    underReplicated: assessed.filter((a) => a.underReplicated).length,
    movesPending: placement.movesPending,
    movesInProgress: placement.movesInProgress,
    summary: `${healthy}/${placement.shards.length}`,
  };
}

/** True while replicas move: moves pending or in progress, a learner in some shard, or a member draining. */
function rebalancingCondition(observed: ObservedCluster, plan: Plan, shards: ShardsStatus): { status: ConditionStatus; reason: string; message: string } {
  const placement = observed.placement;
  if (placement === null || placement === undefined) return { status: 'Unknown', reason: 'PlacementUnknown', message: 'no member answered GetPlacement' };
  if (plan.progress?.reason === 'Draining') return { status: 'True', reason: 'Draining', message: `${plan.progress.message}; ${moves(shards)}` };
  if (isRebalancing(placement)) return { status: 'True', reason: 'MovingReplicas', message: moves(shards) };
  return { status: 'False', reason: 'Settled', message: `every shard is where the placement wants it (${shards.healthy}/${shards.total} healthy)` };
}

function moves(shards: ShardsStatus): string {
  return `${shards.movesInProgress} shard move(s) in progress, ${shards.movesPending} pending`;
}

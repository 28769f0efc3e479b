// How the shards of a sharded cluster are doing, from the observed placement (pure): which shards are
// healthy (a leader, every wanted replica on a member that answers, every replica caught up), which are
// under-replicated, whether replicas are moving, and what a member still hosts or leads. plan() gates
// its steps on it (a pod is deleted only while every shard is healthy and nothing moves; a member is
// removed only once it hosts no replica) and status.ts reports it (status.shards, Rebalancing).

import type { DesiredCluster, DesiredSharding, ObservedMember, ObservedPlacement, ObservedShard } from './model.ts';

/**
 * A replica whose applied revision is within this many revisions of its leader's counts as caught up.
 * Revisions are cluster-wide (the oracle hands them to every shard), so a replica one entry behind can
 * be many revisions behind under load; the members are also asked one after the other. 1000 is about a
 * second of a busy cluster's writes, and far less than a replica that needs a snapshot is behind.
 */
export const CAUGHT_UP_MAX_LAG_REVISIONS = 1_000;

/** The sharding the planner follows, or null for a one-group cluster. */
export function shardingOf(desired: DesiredCluster): DesiredSharding | null {
  const sharding = desired.sharding;
  return sharding !== undefined && sharding.shards > 1 ? sharding : null;
}

/** Whether scale-in moves a member's replicas off it first (placement on a subset). */
export function drainsOnScaleIn(sharding: DesiredSharding | null): boolean {
  return sharding !== null && sharding.replicationFactor > 0;
}

/** Replicas each shard should have with `clusterVoters` voting members (every member when R is 0, or fewer than R). */
export function wantedReplicas(sharding: DesiredSharding, clusterVoters: number): number {
  return sharding.replicationFactor === 0 ? clusterVoters : Math.min(sharding.replicationFactor, clusterVoters);
}

export interface ShardAssessment {
  id: number;
  healthy: boolean;
  underReplicated: boolean;
  /** Why it is not healthy; null when it is. */
  problem: string | null;
}

/** The ids of the members that answer. */
function answeringIds(members: readonly ObservedMember[]): Set<string> {
  return new Set(members.filter((m) => m.healthy).map((m) => m.id));
}

export function assessShards(sharding: DesiredSharding, members: readonly ObservedMember[], placement: ObservedPlacement): ShardAssessment[] {
  const clusterVoters = members.filter((m) => !m.isLearner).length;
  const answering = answeringIds(members);
  const wanted = wantedReplicas(sharding, clusterVoters);
  return placement.shards.map((shard) => assessShard(shard, wanted, answering));
}

function assessShard(shard: ObservedShard, wanted: number, answering: ReadonlySet<string>): ShardAssessment {
  const live = shard.voters.filter((v) => answering.has(v));
  const underReplicated = live.length < wanted;
  const leaderRevision = shard.revisions[shard.leader];
  const lagging = shard.voters.filter((v) => {
    const revision = shard.revisions[v];
    return revision === undefined || leaderRevision === undefined || revision + CAUGHT_UP_MAX_LAG_REVISIONS < leaderRevision;
  });
  let problem: string | null = null;
  if (shard.leader === '' || !shard.voters.includes(shard.leader) || !answering.has(shard.leader)) problem = `shard ${shard.id} has no leader`;
  else if (underReplicated) problem = `shard ${shard.id} is under-replicated (${live.length}/${wanted} replicas on members that answer)`;
  else if (live.length < shard.voters.length) problem = `shard ${shard.id} has a replica on a member that does not answer`;
  else if (lagging.length > 0) problem = `shard ${shard.id}'s replica on ${lagging[0]} is not caught up`;
  return { id: shard.id, healthy: problem === null, underReplicated, problem };
}

/** Replicas are moving: moves pending or in progress, or a learner in some shard. */
export function isRebalancing(placement: ObservedPlacement): boolean {
  return placement.movesPending > 0 || placement.movesInProgress > 0 || placement.shards.some((s) => s.learners.length > 0);
}

/** Shard replicas (voters and learners) on a member. */
export function replicasOn(placement: ObservedPlacement, memberId: string): number {
  return placement.shards.filter((s) => s.voters.includes(memberId) || s.learners.includes(memberId)).length;
}

/** Shards a member leads, plus one when it leads the metadata group. */
export function leadershipsOf(placement: ObservedPlacement, memberId: string): number {
  return placement.shards.filter((s) => s.leader === memberId).length + (placement.metadataLeader === memberId ? 1 : 0);
}

/**
 * Why a pod may not be deleted now on a sharded cluster (null: it may): every shard healthy and caught
 * up, no replica moving (a move's learner catching up counts on every replica it has), and the metadata
 * group's leader known to an answering member — without it, the planner cannot keep that leader's pod
 * for last, and would delete it as if it were a follower.
 */
export function shardsBlockingDisruption(sharding: DesiredSharding, members: readonly ObservedMember[], placement: ObservedPlacement | null | undefined): string | null {
  if (placement === null || placement === undefined) return 'no member answered GetPlacement';
  const problem = assessShards(sharding, members, placement).find((a) => !a.healthy)?.problem;
  if (problem !== undefined && problem !== null) return problem;
  if (isRebalancing(placement)) return `replicas are moving (${placement.movesInProgress} in progress, ${placement.movesPending} pending)`;
  if (placement.metadataLeader === '') return 'the metadata group has no leader';
  if (!answeringIds(members).has(placement.metadataLeader)) return `the metadata group's leader ${placement.metadataLeader} does not answer`;
  return null;
}

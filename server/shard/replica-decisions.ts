// The decisions a member makes about its own shard replicas on a sharded cluster, as plain functions of
// what it has applied (server/cli/shard-hosting.ts runs them every hosting round and acts on them):
// which membership a shard should have, whether a replica should be hosted here, and whether a replica
// placed elsewhere may be deleted. Why each is safe is said at each function; docs/sharding.md,
// "Placement on a subset", tells the whole story.
import type { ConfState, NodeId } from '../raft/types.ts';
import { MajorityConfig } from '../raft/quorum.ts';
import { shardSettled } from './placer.ts';
import type { ShardConf } from './metadata-state-machine.ts';

/** What a member knows of one shard when it decides. */
export interface ShardFacts {
  /** The placer's desired replicas, or null before its first write. */
  readonly desired: readonly NodeId[] | null;
  /** The membership the shard's leader last reported, or null. */
  readonly reported: ShardConf | null;
  /** The voters the shard was created with (every bootstrap member with R = 0). */
  readonly bootstrapVoters: readonly NodeId[];
  /** Replicas per shard; 0: every member of the cluster hosts every shard. */
  readonly replicationFactor: number;
}

const inConf = (conf: { readonly voters: readonly NodeId[]; readonly learners: readonly NodeId[] }, id: NodeId): boolean => conf.voters.includes(id) || conf.learners.includes(id);

/**
 * The membership a shard's leader moves its group towards. Before any placement: the cluster group's
 * (R = 0) or the voters it was created with. After: its desired replicas still in the cluster — unless
 * it is away from them and not among the shards allowed to move now (`mayMove`), when it only lets
 * members that left the cluster go (a move waits its turn; a dead voter never does).
 */
export function desiredMembership(facts: ShardFacts, cluster: ConfState, current: ConfState, mayMove: boolean): ConfState {
  if (facts.desired === null) return facts.replicationFactor === 0 ? cluster : { voters: [...facts.bootstrapVoters], learners: [] };
  const inCluster = (id: NodeId): boolean => inConf(cluster, id);
  if (!shardSettled(facts.desired, facts.reported) && !mayMove) {
    return { voters: current.voters.filter(inCluster), learners: current.learners.filter(inCluster) };
  }
  return { voters: facts.desired.filter(inCluster), learners: [] };
}

/** Whether `self` should host a replica of the shard: placed here, or (before any placement) one of its first members. */
export function placedHere(facts: ShardFacts, self: NodeId, cluster: ConfState): boolean {
  if (facts.desired !== null) return facts.desired.includes(self);
  return facts.replicationFactor === 0 ? inConf(cluster, self) : facts.bootstrapVoters.includes(self);
}

/** A replica's own state, as Raft on this member has it. */
export interface ReplicaState {
  readonly lastIndex: number;
  readonly conf: ConfState;
  /** The leader this replica knows (0: none). */
  readonly leaderId: NodeId;
  /** How long it has known no leader while its group's report excludes it (ms; 0 when not so). */
  readonly leftBehindForMs: number;
  /**
   * An entry of its log after its applied index is a membership change naming this member: one that may add it
   * back, and that it may have acknowledged (Member.unappliedConfChangeNames).
   */
  readonly unappliedNamesSelf: boolean;
}

/** How long a replica that never learned its removal waits, hearing no leader, before it is deleted. */
export const LEFT_BEHIND_AFTER_MS = 30_000;

/**
 * Whether a replica of a shard placed elsewhere may be deleted (for good: the member id is also the
 * replica's id, so the shard's leader must have forgotten this replica, or it would take a later, empty
 * replica here for this one — its match index, its commit). True when:
 *   - it never received anything (it acknowledged nothing: the leader holds nothing of it);
 *   - the membership it applied excludes it (that removal is committed), and no entry after it in its log
 *     names it. A later re-addition this replica acknowledged anything after would be in its log; one it
 *     never received left the leader with a fresh progress for it (nothing matched), which an empty
 *     replica serves as well. Its log may hold unapplied entries past its removal: appends the leader
 *     sent before the removal applied there, whose commit it never hears of (it is out of the group);
 *     waiting for them to apply kept such a replica, and its stale membership in /placement, for good;
 *   - it never learned its removal (its member was down meanwhile): its group's leader reported a
 *     membership without it, and it has heard from no leader for LEFT_BEHIND_AFTER_MS. A replica added
 *     back hears from its leader, so it is never taken for one.
 */
export function mayDeleteReplica(replica: ReplicaState, self: NodeId): boolean {
  if (replica.lastIndex === 0) return true;
  if (!inConf(replica.conf, self) && !replica.unappliedNamesSelf) return true;
  return replica.leftBehindForMs >= LEFT_BEHIND_AFTER_MS;
}

/** Whether the replica is, right now, one that may have been left behind (see mayDeleteReplica). */
export function looksLeftBehind(leaderId: NodeId, reported: ShardConf | null, self: NodeId): boolean {
  return leaderId === 0 && reported !== null && !inConf(reported, self);
}

/** What a member knows of its own replica of a shard when its API decides whether to serve the shard from it. */
export interface ServingFacts {
  /** The membership this replica applied. */
  readonly conf: ConfState;
  /** The placer's desired replicas, or null before its first write. */
  readonly desired: readonly NodeId[] | null;
  /** The membership the shard's leader last reported, or null. */
  readonly reported: ShardConf | null;
}

/**
 * Whether this member's API serves the shard from its replica (otherwise it forwards the request to a
 * member that does, server/shard/shard-forwarder.ts). Only a voter serves — a learner's store may not be
 * the shard's yet — and not one on its way out, whose writes could land where it never applies them
 * (docs/sharding.md, "Writes while shards move"):
 *   - one whose applied membership excludes it (it applied its own removal; it is deleted next round);
 *   - one placed elsewhere, while another voter placed there serves (its removal follows once the new
 *     replicas caught up: a write proposed through it around then would land after the removal);
 *   - one left behind: its group's leader reported a membership without it.
 */
export function servesFromReplica(f: ServingFacts, self: NodeId): boolean {
  if (!f.conf.voters.includes(self)) return false;
  if (f.desired !== null && !f.desired.includes(self) && f.desired.some((id) => id !== self && f.conf.voters.includes(id))) return false;
  return f.reported === null || f.reported.voters.includes(self);
}

/** One shard as the member deciding a voter's removal from the cluster sees it. */
export interface ShardRemovalView {
  readonly index: number;
  readonly facts: ShardFacts;
  /** This member's replica's applied membership, when it hosts one. */
  readonly local: ConfState | null;
}

/** Why a voter may not leave the cluster now: a shard still moving or short of a quorum, or one whose staying voters are not started. */
export interface ShardRemovalBlock {
  /** 'not-started': etcd's "not enough started members", per shard; 'unhealthy': everything else (retried). */
  readonly kind: 'unhealthy' | 'not-started';
  readonly why: string;
}

/**
 * Why removing voter `memberId` from the cluster now could leave a shard without a quorum of live voters,
 * or null when it cannot (`staying`: still a cluster member once it is gone; `started`: heard from
 * recently by the cluster's leader, as etcd's strict reconfiguration check counts members).
 *
 * A shard whose replica on a departed member is re-placed drops that replica first and adds the new one
 * after: for a while it has fewer voters, and each of them is needed. So while any shard is still moving
 * (its leader's last report differs from the placer's target, or a learner is on its way), no voter
 * leaves: this member's views of that shard may be behind its actual membership, and the one missing
 * (a removal it has not seen) is exactly the dangerous one. A settled shard's report is its membership
 * (moves only start from a new target, which this member would see first); then every view that names
 * `memberId` must keep a majority of staying voters, and a majority of started ones: etcd refuses a
 * removal that leaves the cluster fewer started members than a quorum, and each shard is a cluster of its
 * own. Both found by the sharded fault soak: a second member removed while shards were down to two
 * voters, one of them the removed member, left 12 shards without a quorum for good (seed 303); a member
 * removed while another voter of the same shards was down left those shards without a quorum until it
 * came back (seed 308).
 */
export function shardRemovalBlocker(
  memberId: NodeId,
  shards: readonly ShardRemovalView[],
  staying: (id: NodeId) => boolean,
  started: (id: NodeId) => boolean,
): ShardRemovalBlock | null {
  const hex = (ids: readonly NodeId[]): string => ids.map((v) => v.toString(16)).join(',');
  for (const { index, facts, local } of shards) {
    if (!shardSettled(facts.desired, facts.reported)) {
      return { kind: 'unhealthy', why: `shard ${index} is still moving (placed on ${hex(facts.desired ?? [])}, last reported ${facts.reported === null ? 'nothing' : `voters ${hex(facts.reported.voters)}, learners ${hex(facts.reported.learners)}`})` };
    }
    // Settled, a placed shard's report has its placed replicas as voters: the target adds no view of its own.
    const views = [local?.voters, facts.reported?.voters].filter((v): v is readonly NodeId[] => v !== undefined);
    if (views.length === 0) views.push(facts.bootstrapVoters);
    for (const voters of views) {
      if (!voters.includes(memberId)) continue;
      // Until the shard removes it, the departed member still counts in its quorum.
      const majority = new MajorityConfig(voters);
      if (!majority.hasQuorum(staying)) return { kind: 'unhealthy', why: `shard ${index} would keep ${voters.filter(staying).length} of its ${voters.length} voters (${hex(voters)})` };
      if (!majority.hasQuorum((id) => staying(id) && started(id))) {
        const left = voters.filter(staying);
        return { kind: 'not-started', why: `shard ${index} would keep ${left.filter(started).length} started of its ${voters.length} voters (${hex(voters)}; not started: ${hex(left.filter((id) => !started(id)))})` };
      }
    }
  }
  return null;
}

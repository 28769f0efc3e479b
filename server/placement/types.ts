// Shared vocabulary of the placement layer: members as the placer sees them, a shard's placement, and the
// input/result of the pure placement function. No behaviour here.

/** A member's id as Raft knows it (the same numbers as raft's NodeId; placement does not import raft). */
export type MemberId = number;

/** up: may host replicas. draining: being emptied (scale-in). dead: failed past its grace period. */
export type MemberState = 'up' | 'draining' | 'dead';

export interface PlacementMember {
  readonly id: MemberId;
  /** Failure domain (topology.kubernetes.io/zone under the operator, `--zone` locally). */
  readonly zone: string;
  /** Relative capacity; a member of weight 2 gets twice the replicas of one of weight 1. Positive. */
  readonly weight: number;
  readonly state: MemberState;
}

export interface ShardPlacement {
  readonly shard: number;
  /** Members holding a voting replica, ascending by id. */
  readonly replicas: readonly MemberId[];
  /** The member that should lead this shard (a replica), or null when the shard has no replica. */
  readonly leader: MemberId | null;
}

export interface PlacementInput {
  readonly members: readonly PlacementMember[];
  readonly shards: readonly number[];
  /** Replicas per shard; default 3; all eligible members when fewer. */
  readonly replicationFactor?: number;
  /** The placement in force now; the result stays as close to it as the constraints allow. */
  readonly current?: readonly ShardPlacement[];
}

export interface PlacementResult {
  /** One entry per input shard, ascending by shard id. */
  readonly shards: readonly ShardPlacement[];
  /** min(replicationFactor, number of up members). */
  readonly effectiveReplicationFactor: number;
  /** Most replicas of one shard allowed in one zone (1 when there are at least R zones). */
  readonly zoneSpread: number;
  /** Constraints that could not be met (empty when every balance bound holds). Never a safety rule. */
  readonly problems: readonly string[];
}

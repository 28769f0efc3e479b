// Where the placement view's data comes from on today's cluster: one shard (the data group,
// DATA_GROUP_ID) owning all 16,384 slots, replicated on every member of the group. This module is the
// one place that knows that; hosting S shards replaces it with a reader of the metadata group's slot
// map and placement and of each hosted shard's status, and nothing that shows the view changes.
//
// Safe because it only reads what this member has applied (the replicated membership, its published
// attributes) and its own Raft status: the view is this member's view at one instant, never a guess.
import type { ApiContext } from './context.ts';
import { DATA_GROUP_ID } from './context.ts';
import { SlotMap } from '../routing/slots.ts';
import type { PlacementObservation } from '../placement/placement-view.ts';

/** Today's slot map: one shard, all slots (version 1, as SlotMap.create gives it). */
const ONE_SHARD = SlotMap.create(1);

/** The one shard's id in the slot map (its Raft group is DATA_GROUP_ID). */
const ONLY_SHARD = 0;

/** One group on every member never moves: nothing is ever pending, running or done. */
const NO_MOVES = Object.freeze({ pending: 0, inProgress: 0, done: 0 });

export function observePlacement(ctx: ApiContext): PlacementObservation {
  const members = ctx.members(); // removed members are not listed
  return {
    // The Raft index of the last applied membership change: see docs/sharding.md for what it counts.
    version: ctx.shards === null ? ctx.sm.membershipVersion() : Math.max(ctx.sm.membershipVersion(), ctx.shards.placementProgress().version),
    slotMap: ctx.shards?.slotMap ?? ONE_SHARD,
    members: members.map((m) => ({ id: m.id, name: m.name, zone: m.zone ?? '', clientUrls: m.clientUrls, peerUrls: m.peerUrls })),
    shards: ctx.shards === null
      ? [
          {
            shard: ONLY_SHARD,
            voters: members.filter((m) => !m.isLearner).map((m) => m.id),
            learners: members.filter((m) => m.isLearner).map((m) => m.id),
            leader: ctx.member.leaderId(DATA_GROUP_ID),
            revision: ctx.sm.store.currentRevision(),
          },
        ]
      : // A sharded cluster: each shard's own Raft membership, leader and applied revision on this member
        // (as last reported, for a shard hosted elsewhere).
        ctx.shards.shardViews().map((v) => ({ shard: v.shard, voters: [...v.voters], learners: [...v.learners], leader: v.leader, revision: v.revision })),
    moves: ctx.shards === null ? NO_MOVES : (({ pending, inProgress, done }) => ({ pending, inProgress, done }))(ctx.shards.placementProgress()),
  };
}

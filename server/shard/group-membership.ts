// Membership of a sharded cluster's other groups (the metadata group and every shard), following the
// cluster group's. `etcdctl member add/promote/remove` change the cluster group (group 0) exactly as on
// a one-group cluster; every member then reconciles each group it leads towards group 0's membership,
// one Raft membership change at a time. Every member hosts every group until placement on a subset of
// members is wired (docs/sharding.md), so "towards group 0" means: the same voters and learners.
//
// The decision (nextMembershipStep) is a pure function of what group 0 wants, what the group has, and
// which learners are caught up; the shell (GroupMembershipReconciler) runs it on a timer and proposes.
// Why it is safe and converges:
//   - only a group's leader proposes its changes, one at a time (Raft refuses a second one until the
//     first applies; the shell retries on the next round), and each is an ordinary single-member change;
//   - a member removed from group 0 is removed from a group before anything is added to it: its process
//     has stopped (a removed member stops), so keeping it would count a dead voter in the quorum while
//     a new one catches up; a leader that is itself no longer wanted hands leadership over first;
//   - a new member always enters a group as a learner and becomes a voter only when the leader judges it
//     caught up (learnerReady) and group 0 has it as a voter, so a joiner that is still receiving the
//     group's snapshot never counts towards its quorum;
//   - the rounds repeat until nothing differs, so a leader change or a crash mid-way only delays it.
import type { Logger } from 'pino';
import type { ConfChange, ConfState, NodeId } from '../raft/types.ts';
import { DeclinedTargets } from './declined-targets.ts';

export type MembershipStep =
  | { readonly kind: 'remove'; readonly nodeId: NodeId }
  | { readonly kind: 'add-learner'; readonly nodeId: NodeId }
  | { readonly kind: 'promote'; readonly nodeId: NodeId }
  | { readonly kind: 'transfer-leadership'; readonly to: NodeId }
  | { readonly kind: 'none' };

/**
 * The next change that brings `current` (led by `self`) closer to `desired`; 'none' when they agree.
 * `caughtUp(id)`: whether learner `id` may be promoted (the leader's learnerReady).
 * `inCluster(id)`: whether `id` is still a member of the cluster (its process runs). By default every
 * unwanted replica counts as gone, which is right when `desired` is the cluster group's membership.
 *
 * Two orders, because two situations:
 *   - a replica whose member left the cluster is removed first (it is dead weight in the quorum), and
 *     a leader that left hands over before anything else;
 *   - a replica moving off a live member (placement, Drain) leaves last: the new replica is added as a
 *     learner, promoted once caught up, and only when every wanted voter votes is the old one removed
 *     (its leader hands over first). Voters go R → R+1 → R, so a move never costs fault tolerance.
 */
export function nextMembershipStep(
  desired: ConfState,
  current: ConfState,
  self: NodeId,
  caughtUp: (id: NodeId) => boolean,
  inCluster?: (id: NodeId) => boolean,
  /** Members a handover goes to only if no other wanted voter is left (one just declined: see the reconciler). */
  declined?: (id: NodeId) => boolean,
): MembershipStep {
  const wanted = new Set([...desired.voters, ...desired.learners]);
  const wantedVoters = new Set(desired.voters);
  const alive = inCluster ?? ((id: NodeId) => wanted.has(id));
  const present = [...current.voters, ...current.learners].sort((a, b) => a - b);
  const voters = [...current.voters].sort((a, b) => a - b);
  const handOver = (): MembershipStep => {
    // Raft's transfer itself waits for the target to catch up (within its timeout).
    const targets = voters.filter((id) => id !== self && wantedVoters.has(id));
    const to = targets.find((id) => !(declined?.(id) ?? false)) ?? targets[0];
    return to === undefined ? { kind: 'none' } : { kind: 'transfer-leadership', to };
  };
  if (!wantedVoters.has(self) && !alive(self)) return handOver();
  for (const id of present) if (!wanted.has(id) && !alive(id)) return { kind: 'remove', nodeId: id };
  // Raft cannot demote: a voter the cluster has only as a learner (never made by etcd's API) leaves, and
  // comes back as a learner.
  const demoted = voters.find((id) => !wantedVoters.has(id) && wanted.has(id));
  if (demoted !== undefined) return demoted === self ? handOver() : { kind: 'remove', nodeId: demoted };
  const missing = [...wanted].sort((a, b) => a - b).find((id) => !present.includes(id));
  if (missing !== undefined) return { kind: 'add-learner', nodeId: missing };
  const learners = [...current.learners].sort((a, b) => a - b);
  const promotable = learners.find((id) => wantedVoters.has(id) && caughtUp(id));
  if (promotable !== undefined) return { kind: 'promote', nodeId: promotable };
  const strayLearner = learners.find((id) => !wanted.has(id));
  if (strayLearner !== undefined) return { kind: 'remove', nodeId: strayLearner };
  // Moving off live members: only once every wanted voter votes.
  if (![...wantedVoters].every((id) => voters.includes(id))) return { kind: 'none' };
  const leaving = voters.filter((id) => !wantedVoters.has(id));
  if (leaving.length === 0) return { kind: 'none' };
  if (leaving.includes(self)) return handOver();
  return { kind: 'remove', nodeId: leaving[0] };
}

/** What the reconciler needs of a Member (server/member/member.ts has it). */
export interface MembershipMember {
  readonly memberId: NodeId;
  role(groupId: number): string;
  confState(groupId: number): ConfState;
  learnerReady(groupId: number, id: NodeId): boolean;
  proposeConfChange(groupId: number, change: ConfChange): void;
  transferLeadership(groupId: number, targetId: NodeId, timeoutMs: number): Promise<void>;
}

export interface GroupMembershipOptions {
  member: MembershipMember;
  /** The groups to keep in line (those hosted here now). */
  groupIds: () => readonly number[];
  /** The membership wanted for a group (the cluster group's, or a shard's placement). */
  desired: (groupId: number) => ConfState;
  /** Whether a member is still in the cluster (nextMembershipStep's `inCluster`); default: wanted means alive. */
  inCluster?: (id: NodeId) => boolean;
  /** A member's peer URLs, carried in the change's context as the cluster group's changes carry them. */
  peerUrlsOf: (id: NodeId) => string[];
  logger: Logger;
  intervalMs?: number;
  transferTimeoutMs?: number;
}

export class GroupMembershipReconciler {
  private readonly opts: GroupMembershipOptions;
  private timer: NodeJS.Timeout | null = null;
  private readonly transferring = new Set<number>();
  /** Handover targets that did not take over: asked after the other wanted voters for a while. */
  private readonly declinedTargets = new DeclinedTargets();
  /** Changes proposed, by kind (for logs and tests). */
  readonly proposed = { remove: 0, 'add-learner': 0, promote: 0, 'transfer-leadership': 0 };

  constructor(opts: GroupMembershipOptions) {
    this.opts = opts;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.round(), this.opts.intervalMs ?? 250);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One pass over the groups this member leads; at most one change proposed per group. */
  round(): void {
    const { member, logger } = this.opts;
    for (const groupId of this.opts.groupIds()) {
      if (member.role(groupId) !== 'leader' || this.transferring.has(groupId)) continue;
      const step = nextMembershipStep(this.opts.desired(groupId), member.confState(groupId), member.memberId, (id) => member.learnerReady(groupId, id), this.opts.inCluster, (id) => this.declinedTargets.declined(id));
      if (step.kind === 'none') continue;
      if (step.kind === 'transfer-leadership') {
        this.transferring.add(groupId);
        this.proposed['transfer-leadership']++;
        logger.info({ group: groupId, to: step.to.toString(16) }, 'handing group leadership over: this member leaves the group');
        void member
          .transferLeadership(groupId, step.to, this.opts.transferTimeoutMs ?? 3_000)
          .catch((err: unknown) => {
            this.declinedTargets.markDeclined(step.to);
            logger.warn({ group: groupId, to: step.to.toString(16), err: String(err) }, 'leadership handover failed; retrying next round, with another voter first');
          })
          .finally(() => this.transferring.delete(groupId));
        continue;
      }
      const type = step.kind === 'remove' ? 'removeNode' : step.kind === 'add-learner' ? 'addLearner' : 'promoteLearner';
      const context = Buffer.from(JSON.stringify({ peerUrls: this.opts.peerUrlsOf(step.nodeId) }));
      try {
        member.proposeConfChange(groupId, { type, nodeId: step.nodeId, context });
        this.proposed[step.kind]++;
        logger.info({ group: groupId, change: type, node: step.nodeId.toString(16) }, 'group membership change (following the cluster or a placement)');
      } catch (err) {
        // An earlier change not yet applied, or leadership just lost: the next round tries again.
        if (!(err instanceof Error) || (err.name !== 'ConfChangeInProgressError' && err.name !== 'NoLeaderError')) {
          logger.warn({ group: groupId, change: type, err: String(err) }, 'group membership change refused');
        }
      }
    }
  }
}

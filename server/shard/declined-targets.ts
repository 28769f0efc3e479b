// Leadership handover targets that did not take over, passed over for a while. A member about to stop
// declines handovers (Member.declineLeadershipHandovers); the leader balancer and a shard move's handover
// would otherwise ask it again every round, each attempt holding the shard's writes for an election
// timeout, for nothing. One notion, shared by both (leader-balancer.ts, group-membership.ts).
import type { NodeId } from '../raft/types.ts';

/**
 * How long a target that did not take a handover is passed over. Shorter than a decline (60 s): a member
 * still declining then costs one failed attempt per backoff, and one that no longer declines is soon asked again.
 */
export const DECLINED_TARGET_BACKOFF_MS = 30_000;

export class DeclinedTargets {
  private readonly untilMs = new Map<NodeId, number>();
  private readonly backoffMs: number;
  private readonly nowMs: () => number;

  constructor(backoffMs = DECLINED_TARGET_BACKOFF_MS, nowMs: () => number = () => performance.now()) {
    this.backoffMs = backoffMs;
    this.nowMs = nowMs;
  }

  /** A handover to `id` did not complete: pass it over until the backoff ends. */
  markDeclined(id: NodeId): void {
    this.untilMs.set(id, this.nowMs() + this.backoffMs);
  }

  /** Whether `id` is still passed over (and forgets those whose backoff ended). */
  declined(id: NodeId): boolean {
    const until = this.untilMs.get(id);
    if (until === undefined) return false;
    if (until > this.nowMs()) return true;
    this.untilMs.delete(id);
    return false;
  }
}

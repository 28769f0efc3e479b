// Keeps shard leaderships spread over members (issue 14: leaders per member max/mean ≤ 1.20). Elections
// alone put them wherever timers fired first — 9, 4 and 3 of 16 shards on a fresh 3-member cluster —
// and a shard's writes are sequenced by its leader, so the member leading most shards did most of the
// work. Every member, every few seconds, computes the preferred leader of every shard with
// server/placement/leaders.ts (pure: the same view gives every member the same answer; a current leader
// within its fair share keeps its leadership) and hands over the shards it leads that should be led
// elsewhere, one transfer at a time, and only while the shard is idle (see round()).
//
// Why it is safe: a leadership transfer is Raft's own (the target catches up, then campaigns with the
// leader's consent); nothing about data or revisions changes hands (a new shard leader starts its write
// path above a fresh oracle revision, as after any election). A transfer only goes to a voter this
// leader heard from recently; a target that cannot take over in time leaves the leadership where it was,
// and is passed over for a while (a member about to stop declines handovers: Member.declineLeadershipHandovers).
// Why it settles: the assignment keeps every current leader that is within its cap, and the target of a
// transfer is within its cap after it, so in a stable membership each shard moves at most once.
import type { Logger } from 'pino';
import { assignLeaders, type LeaderInput } from '../placement/leaders.ts';
import type { ConfState, NodeId } from '../raft/types.ts';
import { DeclinedTargets } from './declined-targets.ts';

export interface LeaderBalancerMember {
  readonly memberId: NodeId;
  role(groupId: number): string;
  leaderId(groupId: number): NodeId;
  confState(groupId: number): ConfState;
  activeMembers(groupId: number): NodeId[];
  isQuiesced(groupId: number): boolean;
  transferLeadership(groupId: number, targetId: NodeId, timeoutMs: number): Promise<void>;
}

/** The shards this member leads that should be led by another member now, with that member. */
export function leadershipsToHandOver(shards: readonly LeaderInput[], self: NodeId): Array<{ shard: number; to: NodeId }> {
  const preferred = assignLeaders(shards, new Map());
  const out: Array<{ shard: number; to: NodeId }> = [];
  for (const s of shards) {
    const to = preferred.get(s.shard) ?? null;
    if (s.currentLeader === self && to !== null && to !== self) out.push({ shard: s.shard, to });
  }
  return out;
}

export interface LeaderBalancerOptions {
  member: LeaderBalancerMember;
  /**
   * The preferred leader of a shard group as the placement wrote it (placement on a subset, where no
   * member sees every shard), or absent: computed here from this member's view of every shard.
   */
  preferred?: (groupId: number) => NodeId | null;
  /** The shard groups to balance (not the metadata group); empty when the view is incomplete. */
  groupIds: () => readonly number[];
  logger: Logger;
  intervalMs?: number;
  transferTimeoutMs?: number;
  /** How long a member that did not take a handover is passed over as a target (default DECLINED_TARGET_BACKOFF_MS). */
  failedTargetBackoffMs?: number;
  /** The clock the backoff is measured on (performance.now() by default; tests pass their own). */
  nowMs?: () => number;
}

export class LeaderBalancer {
  private readonly opts: LeaderBalancerOptions;
  private timer: NodeJS.Timeout | null = null;
  private transferring = false;
  /** Targets that did not take a handover: passed over for a while. */
  private readonly declinedTargets: DeclinedTargets;
  transfers = 0;

  constructor(opts: LeaderBalancerOptions) {
    this.opts = opts;
    this.declinedTargets = new DeclinedTargets(opts.failedTargetBackoffMs, opts.nowMs);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.round(), this.opts.intervalMs ?? 2_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  round(): void {
    const { member, logger } = this.opts;
    if (this.transferring) return;
    const shards: LeaderInput[] = this.opts.groupIds().map((groupId) => ({
      shard: groupId,
      replicas: [...member.confState(groupId).voters].sort((a, b) => a - b),
      currentLeader: member.leaderId(groupId) || null,
    }));
    // Every shard needs a known leader for the view to be the same everywhere; mid-election, wait.
    if (this.opts.preferred === undefined && shards.some((s) => s.currentLeader === null)) return;
    // Only an idle (quiesced) shard is handed over: while a leadership transfer is under way Raft drops
    // proposals, and the writes arriving meanwhile are held and passed on until the new leader takes them
    // (ShardWritePath.reforward, server/member/forwarded-proposal.ts): they wait. A shard under constant
    // writes keeps its leader (imbalance costs speed; a handover costs every write in flight a wait).
    const prefer = this.opts.preferred;
    const wanted =
      prefer === undefined
        ? leadershipsToHandOver(shards, member.memberId)
        : shards.flatMap((s) => {
            const to = prefer(s.shard);
            return s.currentLeader === member.memberId && to !== null && to !== member.memberId && s.replicas.includes(to) ? [{ shard: s.shard, to }] : [];
          });
    const next = wanted.find(
      ({ shard, to }) => member.role(shard) === 'leader' && member.isQuiesced(shard) && member.activeMembers(shard).includes(to) && !this.declinedTargets.declined(to),
    );
    if (!next) return;
    this.transferring = true;
    this.transfers++;
    logger.info({ group: next.shard, to: next.to.toString(16) }, 'handing a shard leadership over to spread leaders');
    void member
      .transferLeadership(next.shard, next.to, this.opts.transferTimeoutMs ?? 3_000)
      .catch((err: unknown) => {
        this.declinedTargets.markDeclined(next.to);
        logger.warn({ group: next.shard, to: next.to.toString(16), err: String(err) }, 'leadership handover to spread leaders did not complete');
      })
      .finally(() => {
        this.transferring = false;
      });
  }
}

// leadershipsToHandOver: which of its shards a member hands over so leaderships spread (the assignment
// itself is server/placement/leaders.ts's, tested there); LeaderBalancer's rounds with a stand-in member:
// a target that did not take a handover is passed over for a while.
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { LeaderInput } from '../placement/leaders.ts';
import type { ConfState } from '../raft/types.ts';
import { LeaderBalancer, leadershipsToHandOver, type LeaderBalancerMember } from './leader-balancer.ts';

const members = [1, 2, 3];
const shardsLedBy = (leaders: number[]): LeaderInput[] => leaders.map((leader, i) => ({ shard: 100 + i, replicas: members, currentLeader: leader }));

describe('leadershipsToHandOver', () => {
  it('a member leading 9 of 16 shards hands 3 to the others; they keep theirs; then nobody moves', () => {
    const leaders = [...Array(9).fill(1), ...Array(4).fill(2), ...Array(3).fill(3)] as number[];
    const shards = shardsLedBy(leaders);
    const fromOne = leadershipsToHandOver(shards, 1);
    expect(fromOne).toHaveLength(3);
    expect(leadershipsToHandOver(shards, 2)).toEqual([]);
    expect(leadershipsToHandOver(shards, 3)).toEqual([]);
    // After the handovers, every member leads at most ceil(16 / 3) = 6 and nothing moves again.
    const after = shards.map((s) => ({ ...s, currentLeader: fromOne.find((h) => h.shard === s.shard)?.to ?? s.currentLeader }));
    const counts = members.map((m) => after.filter((s) => s.currentLeader === m).length);
    expect(Math.max(...counts)).toBeLessThanOrEqual(6);
    for (const m of members) expect(leadershipsToHandOver(after, m)).toEqual([]);
  });

  it('a balanced cluster moves nothing', () => {
    const shards = shardsLedBy([1, 2, 3, 1, 2, 3, 1, 2]);
    for (const m of members) expect(leadershipsToHandOver(shards, m)).toEqual([]);
  });
});

describe('LeaderBalancer rounds (stand-in member)', () => {
  it('a target that declined a handover is not asked again until its backoff ends', async () => {
    // Member 1 leads shard 100, whose placement prefers member 2; member 2 declines every handover.
    const attempts: Array<{ shard: number; to: number }> = [];
    const member: LeaderBalancerMember = {
      memberId: 1,
      role: () => 'leader',
      leaderId: () => 1,
      confState: (): ConfState => ({ voters: [1, 2, 3], learners: [] }),
      activeMembers: () => [1, 2, 3],
      isQuiesced: () => true,
      transferLeadership: async (shard, to) => {
        attempts.push({ shard, to });
        throw new Error('leader transfer: deadline exceeded');
      },
    };
    let nowMs = 0;
    const balancer = new LeaderBalancer({
      member,
      groupIds: () => [100],
      preferred: () => 2,
      logger: pino({ level: 'silent' }),
      failedTargetBackoffMs: 30_000,
      nowMs: () => nowMs,
    });
    const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
    balancer.round();
    await settle();
    expect(attempts).toEqual([{ shard: 100, to: 2 }]);
    for (nowMs = 2_000; nowMs < 30_000; nowMs += 2_000) {
      balancer.round();
      await settle();
    }
    expect(attempts).toHaveLength(1);
    nowMs = 30_000;
    balancer.round();
    await settle();
    expect(attempts).toEqual([{ shard: 100, to: 2 }, { shard: 100, to: 2 }]);
  });
});

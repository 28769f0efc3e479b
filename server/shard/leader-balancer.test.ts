// leadershipsToHandOver: which of its shards a member hands over so leaderships spread (the assignment
// itself is server/placement/leaders.ts's, tested there).
import { describe, expect, it } from 'vitest';
import type { LeaderInput } from '../placement/leaders.ts';
import { leadershipsToHandOver } from './leader-balancer.ts';

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

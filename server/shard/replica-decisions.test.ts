// The replica decisions, case by case: each case is one a real-process run got wrong before the rule
// existed (docs/sharding.md, "Placement on a subset").
import { describe, expect, it } from 'vitest';
import { LEFT_BEHIND_AFTER_MS, desiredMembership, looksLeftBehind, mayDeleteReplica, placedHere, servesFromReplica, shardRemovalBlocker, type ShardFacts } from './replica-decisions.ts';

const cs = (voters: number[], learners: number[] = []) => ({ voters, learners });
const cluster = cs([1, 2, 3, 4]);

describe('desiredMembership', () => {
  it('before any placement: the cluster group (R = 0) or the voters the shard was created with', () => {
    const facts: ShardFacts = { desired: null, reported: null, bootstrapVoters: [1, 2, 3], replicationFactor: 0 };
    expect(desiredMembership(facts, cluster, cs([1, 2, 3]), true)).toEqual(cluster);
    expect(desiredMembership({ ...facts, replicationFactor: 3 }, cluster, cs([1, 2, 3]), true)).toEqual(cs([1, 2, 3]));
  });

  it('placed: the desired replicas still in the cluster', () => {
    const facts: ShardFacts = { desired: [2, 3, 5], reported: cs([1, 2, 3]), bootstrapVoters: [1, 2, 3], replicationFactor: 3 };
    expect(desiredMembership(facts, cluster, cs([1, 2, 3]), true)).toEqual(cs([2, 3]));
  });

  it('a shard waiting its turn to move keeps its membership, only letting members that left the cluster go', () => {
    const facts: ShardFacts = { desired: [2, 3, 4], reported: cs([1, 2, 3, 5]), bootstrapVoters: [1, 2, 3], replicationFactor: 3 };
    expect(desiredMembership(facts, cluster, cs([1, 2, 3, 5]), false)).toEqual(cs([1, 2, 3]));
    expect(desiredMembership(facts, cluster, cs([1, 2, 3, 5]), true)).toEqual(cs([2, 3, 4]));
    // A settled shard is not waiting for anything.
    expect(desiredMembership({ ...facts, reported: cs([2, 3, 4]) }, cluster, cs([2, 3, 4]), false)).toEqual(cs([2, 3, 4]));
  });
});

describe('placedHere', () => {
  it('follows the desired replicas once written; before, the cluster (R = 0) or the first members', () => {
    expect(placedHere({ desired: [1, 2, 3], reported: null, bootstrapVoters: [1, 2, 3], replicationFactor: 3 }, 4, cluster)).toBe(false);
    expect(placedHere({ desired: [2, 3, 4], reported: null, bootstrapVoters: [1, 2, 3], replicationFactor: 3 }, 4, cluster)).toBe(true);
    expect(placedHere({ desired: null, reported: null, bootstrapVoters: [1, 2, 3], replicationFactor: 0 }, 4, cluster)).toBe(true);
    // With R > 0 a member never creates a replica it was not placed on (4 bootstrap members, R = 3).
    expect(placedHere({ desired: null, reported: null, bootstrapVoters: [1, 2, 3], replicationFactor: 3 }, 4, cluster)).toBe(false);
  });
});

describe('mayDeleteReplica', () => {
  const base = { lastIndex: 30, conf: cs([1, 2, 3]), leaderId: 1, leftBehindForMs: 0, unappliedNamesSelf: false };

  it('a replica that never received anything may go', () => {
    expect(mayDeleteReplica({ ...base, lastIndex: 0 }, 4)).toBe(true);
  });

  it('a replica whose whole log is applied and excludes it may go', () => {
    expect(mayDeleteReplica(base, 4)).toBe(true);
  });

  it('a replica replaying an old removal of itself may not when an entry after it names it (it may add it back)', () => {
    expect(mayDeleteReplica({ ...base, unappliedNamesSelf: true }, 4)).toBe(false);
  });

  it('a removed replica holding unapplied entries past its removal that do not name it may go', () => {
    // The leader appended them before the removal applied there; their commit never reaches it.
    expect(mayDeleteReplica(base, 4)).toBe(true);
  });

  it('a replica still in its membership may not (its leader counts it)', () => {
    expect(mayDeleteReplica({ ...base, conf: cs([1, 2, 3, 4]) }, 4)).toBe(false);
    expect(mayDeleteReplica({ ...base, conf: cs([1, 2, 3], [4]) }, 4)).toBe(false);
  });

  it('a replica left behind goes once it has heard no leader long enough, and only then', () => {
    const left = { ...base, conf: cs([1, 2, 3, 4]), leaderId: 0 };
    expect(mayDeleteReplica({ ...left, leftBehindForMs: LEFT_BEHIND_AFTER_MS - 1 }, 4)).toBe(false);
    expect(mayDeleteReplica({ ...left, leftBehindForMs: LEFT_BEHIND_AFTER_MS }, 4)).toBe(true);
    expect(looksLeftBehind(0, cs([1, 2, 3]), 4)).toBe(true);
    expect(looksLeftBehind(2, cs([1, 2, 3]), 4)).toBe(false); // it hears a leader: added back
    expect(looksLeftBehind(0, cs([1, 2, 3], [4]), 4)).toBe(false); // the report has it
    expect(looksLeftBehind(0, null, 4)).toBe(false); // nothing reported yet
  });
});

describe('servesFromReplica', () => {
  it('a voter of a settled shard serves; a replica not among its applied voters does not', () => {
    expect(servesFromReplica({ conf: cs([1, 2, 3]), desired: [1, 2, 3], reported: cs([1, 2, 3]) }, 1)).toBe(true);
    // It applied its own removal (the leader's farewell append): a write through it would land after it.
    expect(servesFromReplica({ conf: cs([2, 3, 4]), desired: [2, 3, 4], reported: cs([1, 2, 3]) }, 1)).toBe(false);
    expect(servesFromReplica({ conf: cs([2, 3], [1]), desired: [1, 2, 3], reported: null }, 1)).toBe(false);
  });

  it('placed elsewhere: served by the voters placed there, unless none of them is a voter yet', () => {
    // Moving 1 → 4 while 2 and 3 stay: 1 is on its way out, 2 and 3 serve.
    expect(servesFromReplica({ conf: cs([1, 2, 3], [4]), desired: [2, 3, 4], reported: cs([1, 2, 3], [4]) }, 1)).toBe(false);
    expect(servesFromReplica({ conf: cs([1, 2, 3], [4]), desired: [2, 3, 4], reported: cs([1, 2, 3], [4]) }, 2)).toBe(true);
    // Every replica moving (1, 2, 3 → 4, 5, 6), the new ones still learners: the old ones go on serving.
    expect(servesFromReplica({ conf: cs([1, 2, 3], [4, 5, 6]), desired: [4, 5, 6], reported: cs([1, 2, 3]) }, 1)).toBe(true);
    // Before any placement, the voters serve.
    expect(servesFromReplica({ conf: cs([1, 2, 3]), desired: null, reported: null }, 1)).toBe(true);
  });

  it('left behind: its group reported a membership without it', () => {
    expect(servesFromReplica({ conf: cs([1, 2, 3]), desired: [1, 2, 3], reported: cs([2, 3, 4]) }, 1)).toBe(false);
  });
});

describe('shardRemovalBlocker', () => {
  // Members 1 (here), 2, 4 and 5 in the cluster; 3 left it earlier, and 2 is the one to remove.
  const members = [1, 2, 4, 5];
  const staying = (id: number): boolean => id !== 2 && members.includes(id);
  const allStarted = (): boolean => true;
  const shard = (index: number, desired: number[] | null, reported: ReturnType<typeof cs> | null, local: ReturnType<typeof cs> | null = null) => ({
    index,
    facts: { desired, reported, bootstrapVoters: [1, 2, 3], replicationFactor: 3 },
    local,
  });

  it('allows it when every shard is settled and keeps a majority of staying voters', () => {
    expect(shardRemovalBlocker(2, [shard(0, [1, 2, 4], cs([1, 2, 4]), cs([1, 2, 4])), shard(1, [1, 4, 5], cs([1, 4, 5]))], staying, allStarted)).toBeNull();
  });

  it('the sharded fault soak (seed 303): a shard down to two voters while the departed one is re-placed is moving, so the removal waits', () => {
    // Shard 4 dropped departed member 3 and has not added 5 yet: voters {1, 2}, placed on {1, 2, 5}. The
    // deciding member does not host it, and its leader's last report may still show the old membership.
    const stale = shard(4, [1, 2, 5], cs([1, 3, 4]));
    expect(shardRemovalBlocker(2, [stale], staying, allStarted)?.why).toMatch(/^shard 4 is still moving/);
    const fresh = shard(4, [1, 2, 5], cs([1, 2]));
    expect(shardRemovalBlocker(2, [fresh], staying, allStarted)?.why).toMatch(/^shard 4 is still moving/);
    // Once it settled on {1, 2, 5}, removing 2 keeps 1 and 5.
    expect(shardRemovalBlocker(2, [shard(4, [1, 2, 5], cs([1, 2, 5]))], staying, allStarted)).toBeNull();
  });

  it('a learner on its way is a move too', () => {
    expect(shardRemovalBlocker(2, [shard(0, [1, 2, 4], cs([1, 2, 4], [5]))], staying, allStarted)?.why).toMatch(/still moving/);
  });

  it('refuses when any view that names the member keeps fewer than a majority, this replica’s included', () => {
    // Settled by the report, yet this member's replica still applies an older membership with 3 in it.
    expect(shardRemovalBlocker(2, [shard(0, [1, 2, 4], cs([1, 2, 4]), cs([2, 3, 4]))], staying, allStarted)).toEqual({ kind: 'unhealthy', why: 'shard 0 would keep 1 of its 3 voters (2,3,4)' });
    // A two-voter shard: the other voter alone is not a majority.
    expect(shardRemovalBlocker(2, [shard(0, [1, 2], cs([1, 2]))], staying, allStarted)).toEqual({ kind: 'unhealthy', why: 'shard 0 would keep 1 of its 2 voters (1,2)' });
  });

  it('the sharded fault soak (seed 308): refuses as etcd does ("not enough started") when a staying voter of a shard it leaves is down', () => {
    // Shard 0 on {1, 2, 4}: member 4 is down. Removing 2 would leave {1, 4}, one of them running.
    const down4 = (id: number): boolean => id !== 4;
    expect(shardRemovalBlocker(2, [shard(0, [1, 2, 4], cs([1, 2, 4]))], staying, down4)).toEqual({
      kind: 'not-started',
      why: 'shard 0 would keep 1 started of its 3 voters (1,2,4; not started: 4)',
    });
    // A shard without member 2 is no concern of its removal, whoever is down there.
    expect(shardRemovalBlocker(2, [shard(1, [1, 4, 5], cs([1, 4, 5]))], staying, down4)).toBeNull();
    // Member 2 itself being down changes nothing: it is the one leaving.
    expect(shardRemovalBlocker(2, [shard(0, [1, 2, 4], cs([1, 2, 4]))], staying, (id) => id !== 2)).toBeNull();
    // Five voters, one other down: three of five still started.
    expect(shardRemovalBlocker(2, [shard(0, [1, 2, 4, 5, 6], cs([1, 2, 4, 5, 6]))], (id) => id !== 2, down4)).toBeNull();
  });

  it('before any placement, the bootstrap voters count', () => {
    expect(shardRemovalBlocker(2, [shard(0, null, null)], staying, allStarted)).toEqual({ kind: 'unhealthy', why: 'shard 0 would keep 1 of its 3 voters (1,2,3)' });
    expect(shardRemovalBlocker(2, [shard(0, null, null)], (id) => id !== 2, allStarted)).toBeNull();
  });
});

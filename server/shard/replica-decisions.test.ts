// The replica decisions, case by case: each case is one a real-process run got wrong before the rule
// existed (docs/sharding.md, "Placement on a subset").
import { describe, expect, it } from 'vitest';
import { LEFT_BEHIND_AFTER_MS, desiredMembership, looksLeftBehind, mayDeleteReplica, placedHere, servesFromReplica, type ShardFacts } from './replica-decisions.ts';

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

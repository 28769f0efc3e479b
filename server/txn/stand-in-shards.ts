// TEST SUPPORT: a TxnCoordinator's dependencies with stand-in shards, for unit tests of what the
// coordinator proposes and when. Every key is in shard group 1, nothing is read, revisions count up from
// 100, a client's deadline is 5 s away; the test gives `propose`, with `nextRevision` for its prepares.
import type { CoordinatorDeps } from './coordinator.ts';

export function standInDeps(propose: (nextRevision: () => number) => CoordinatorDeps['propose']): CoordinatorDeps {
  let revision = 100;
  let ids = 0;
  const nextRevision = (): number => ++revision;
  return {
    freshRevision: async () => nextRevision(),
    groupOfKey: () => 1,
    groupsOfRange: () => [1],
    rangeAt: async () => {
      throw new Error('no reads in these tests');
    },
    propose: propose(nextRevision),
    deadlineMs: () => Date.now() + 5_000,
    newTxnId: () => `t${++ids}`,
    pauseBeforeDecisionMs: 0,
    random: () => 0.5,
  };
}

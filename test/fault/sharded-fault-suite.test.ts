// The fault suite on a sharded cluster (issue 14): 3 members, 16 shards, real processes. The same
// nemesis as the one-group suite (kill -9 — with "the leader" meaning the member leading the most
// shards —, SIGSTOP, isolation, cut links, a member replaced), the same per-key linearizability and watch checks with each key on its own shard, and
// the bank: transfers in single-shard and cross-shard transactions while readers sum multi-shard snapshots, every
// snapshot re-read at its revision afterwards. `make test` runs one short seed; SYNOD_SOAK=1 runs
// more and longer ones; SYNOD_SHARDED_FAULT_SEED=<n> replays one.
import { describe, expect, it } from 'vitest';
import { runFaultTest, type FaultRunOptions } from './run-fault-test.ts';
import { expectCleanRun } from './expect-clean-run.ts';
import { skewedClockEnv } from '../support/skewed-clock.ts';

const soak = process.env.SYNOD_SOAK === '1';
const replay = process.env.SYNOD_SHARDED_FAULT_SEED ? Number(process.env.SYNOD_SHARDED_FAULT_SEED) : null;
const SHARDS = 16;

function optionsFor(seed: number): FaultRunOptions {
  return soak ? { seed, members: 3, durationMs: 60_000, clients: 6, shards: SHARDS } : { seed, members: 3, durationMs: 15_000, shards: SHARDS };
}

const seeds = replay !== null ? [replay] : soak ? [201, 202, 203] : [12];

describe(`fault suite on ${SHARDS} shards (${soak ? 'soak' : 'short'})`, () => {
  for (const run of seeds.map(optionsFor)) {
    it(
      `seed ${run.seed}: ${run.members} members, ${run.durationMs / 1000}s of faults; keys linearizable, watches exact, every bank snapshot sums and never changes`,
      async () => {
        const report = await runFaultTest(run);
        expectCleanRun(report);
        expect(report.bank!.transfersCommitted).toBeGreaterThan(20);
        expect(report.bank!.crossShardCommitted).toBeGreaterThan(10);
        expect(report.bank!.snapshotReads).toBeGreaterThan(20);
        expect(report.bank!.snapshotsReread).toBeGreaterThan(0);
      },
      run.durationMs + 120_000,
    );
  }

  // Placement on a subset: 4 members, 3 replicas per shard. Every member forwards the KV requests of the
  // shards it does not host (the ShardKv peer RPC) and follows them in watches over WatchShard streams,
  // and the nemesis's member replacement makes shards move (re-placed off the removed member, back onto
  // it when it returns) while clients run. The members' wall clocks disagree (libfaketime): half a minute
  // ahead, right, half a minute behind and seven minutes behind — past the five minutes of a fence
  // horizon, which the coordinators' recoveries under these faults lay (docs/architecture.md, clocks).
  const SUBSET_CLOCKS = ['+30s', '', '-30s', '-420s'];
  const subset: FaultRunOptions = { ...optionsFor(replay ?? 13), members: 4, memberArgs: () => ['--replication-factor', '3'], memberEnv: (i) => skewedClockEnv(SUBSET_CLOCKS[i]) };
  it(
    `seed ${subset.seed}, 4 members, 3 replicas per shard (placement on a subset, moves under faults), clocks ${SUBSET_CLOCKS.map((c) => c || '±0').join(' ')}: keys linearizable, watches exact, bank snapshots sum`,
    async () => {
      const report = await runFaultTest(subset);
      expectCleanRun(report);
      expect(report.bank!.transfersCommitted).toBeGreaterThan(20);
      expect(report.bank!.crossShardCommitted).toBeGreaterThan(10);
      expect(report.bank!.snapshotReads).toBeGreaterThan(20);
    },
    subset.durationMs + 120_000,
  );

  // TEST-ONLY --test-forward-shards: the first member serves no shard itself and forwards every KV
  // request to another member (the ShardKv peer RPC), under the same faults and checks. Soak only: the
  // subset run above forwards too, for real.
  if (soak) {
    const forwarding: FaultRunOptions = { ...optionsFor(replay ?? 13), memberArgs: (i) => (i === 0 ? ['--test-forward-shards', 'all'] : []) };
    it(
      `seed ${forwarding.seed}, one member forwarding every shard (TEST-ONLY --test-forward-shards all): keys linearizable, watches exact, bank snapshots sum`,
      async () => {
        const report = await runFaultTest(forwarding);
        expectCleanRun(report);
        expect(report.bank!.transfersCommitted).toBeGreaterThan(20);
        expect(report.bank!.snapshotReads).toBeGreaterThan(20);
      },
      forwarding.durationMs + 120_000,
    );
  }
});

// The sharded write and read path on real Members under crashes, partitions and leader changes
// (shard-sim.ts): 3 members hosting the metadata group and 4 shards, writers, txn writers reading every
// shard, cross-shard txn writers (two-phase commit, coordinators crashing at any step), multi-shard
// snapshot readers and a closer; exact replay; and the mutation check (a shard leader
// that skips the maxReadRevision rule, does not wait for its proposed revisions ≤ R before reading at R,
// closes at R over a write turn's grant still on its way, proposes a txn before its reads on other
// shards answered, or proposes writes while a cross-shard transaction is prepared, must be caught).
//
// Replay a failure `seed=S: ...` with
//   SHARD_SIM_SEED=S node_modules/.bin/node node_modules/vitest/vitest.mjs run server/shard/sim/shard-sim.test.ts
// Scale up: SHARD_SIM_SEEDS=500, SHARD_SIM_FAULT_MS=3000; SHARD_SIM_FIRST_SEED=1001 explores seeds past those
// already run (the main and cross-shard runs start there; the mutation checks always start at 1).
import { describe, expect, it } from 'vitest';
import { BCRYPT_PASSWORD_RULES, CONCURRENT_PREPARE_RULES } from '../../member/member.ts';
import { runShardSim, type ShardSimOptions, type ShardSimResult } from './shard-sim.ts';

const replaySeed = process.env.SHARD_SIM_SEED === undefined ? null : Number(process.env.SHARD_SIM_SEED);
const seeds = Number(process.env.SHARD_SIM_SEEDS ?? 50);
const firstSeed = Number(process.env.SHARD_SIM_FIRST_SEED ?? 1);
const faultMs = Number(process.env.SHARD_SIM_FAULT_MS ?? 1500);
const mutation = process.env.SHARD_SIM_MUTATION as ShardSimOptions['mutation'];
/** Runs of at least this many seeds must meet the coverage floors (the default run is 50). */
const FLOOR_SEEDS = 50;

function configOf(): ShardSimOptions {
  return { faultMs, ...(mutation ? { mutation } : {}) };
}

/** Seeds 1, 2, … (at most `seeds`) until one fails: its message ('' if none did), and how many ran. */
async function firstFailure(seeds: number, options: ShardSimOptions): Promise<{ caught: string; tried: number }> {
  for (let seed = 1; seed <= seeds; seed++) {
    try {
      await runShardSim(seed, options);
    } catch (err) {
      return { caught: err instanceof Error ? err.message : String(err), tried: seed };
    }
  }
  return { caught: '', tried: seeds };
}

describe('sharded write and read path simulation', () => {
  it('3 members, metadata group + 4 shards: no lost write, unique increasing revisions, immutable snapshots', async () => {
    const list = replaySeed !== null ? [replaySeed] : Array.from({ length: seeds }, (_, i) => firstSeed + i);
    const results: ShardSimResult[] = [];
    const started = performance.now();
    for (const seed of list) results.push(await runShardSim(seed, configOf()));
    const sum = (f: (r: ShardSimResult) => number): number => results.reduce((n, r) => n + f(r), 0);
    console.log(
      `shard sim: ${results.length} seeds × ${faultMs} ms of faults in ${Math.round(performance.now() - started)} ms: ` +
        `${sum((r) => r.writesAcked)} writes acknowledged (${sum((r) => r.txnsAcked)} of them txns counting every shard; ${sum((r) => r.writesProposed)} proposed, ${sum((r) => r.entries)} stamped entries applied) ` +
        `in ${sum((r) => r.oracleRequests)} oracle requests (${sum((r) => r.grantsRetried)} grants dropped and retried); ` +
        `${sum((r) => r.multiShardSnapshots)} multi-shard snapshots, ${sum((r) => r.rereads)} re-read at the same revision; ` +
        `${sum((r) => r.closes)} closes (${sum((r) => r.closesAfterGrants)} waited for grants on their way, ${sum((r) => r.closesAtFloor)} of them then at the leader's floor, below R); ` +
        `${sum((r) => r.crossTxnsAcked)} cross-shard txns acknowledged (${sum((r) => r.crossTxnsOnStateAcked)} with compares on the state, ${sum((r) => r.crossTxnsOnStateFailed)} of them failing), ${sum((r) => r.crossTxnsCommitted)} committed and ${sum((r) => r.crossTxnsAborted)} aborted in the logs ` +
        `(${sum((r) => r.coordinatorsCrashed)} coordinators crashed mid-transaction, ${sum((r) => r.txnRecoveries)} recoveries by shard leaders, ${sum((r) => r.committedRecordsAtHeal)} committed records left at healing, all finished; ` +
        `${sum((r) => r.resolvesHeld)} resolutions held back to ride along, ${sum((r) => r.resolvesPassedOn)} of them passed on to the next leader, ${sum((r) => r.resolvesPassedOnAtLoss)} of those as the leadership ended mid-hold; ${sum((r) => r.handovers)} leadership transfers started and ${sum((r) => r.lateTimeouts)} late timeoutNows delivered while holding); ` +
        `${sum((r) => r.crashes)} crashes, ${sum((r) => r.leaderChanges)} leader changes seen`,
    );
    if (replaySeed !== null) return;
    // How much of the protocol the run reached: what each simulated run does is checked inside
    // runShardSim; these floors say the seeds exercised it. They are statistical: the default 50 seeds
    // and every explored range of 50 or more have met them, but a handful of explored seeds may fall
    // under them without a bug (SHARD_SIM_SEEDS=3 gave 5 txns where the floor asks 9), so such a run
    // prints them instead.
    const floors: Array<[string, number, number]> = [
      ['writes acknowledged', sum((r) => r.writesAcked), 20 * results.length],
      ['txns acknowledged', sum((r) => r.txnsAcked), 3 * results.length],
      ['multi-shard snapshots', sum((r) => r.multiShardSnapshots), 5 * results.length],
      ['re-reads', sum((r) => r.rereads), 2 * results.length],
      ['closes', sum((r) => r.closes), 10 * results.length],
      ['crashes', sum((r) => r.crashes), results.length],
      // Few under this fault rate (a prepared shard waits for its transaction; crashes abort most: 12 to
      // 18 in 50 seeds as the protocol changed; on 2026-12-06 8 to 19 in 50 over seeds 1, 51, 1001 and
      // 3001, and 24 in the 200 from 3001), but every one of them, and every aborted one, is checked.
      ['cross-shard txns acknowledged', sum((r) => r.crossTxnsAcked), results.length / 16],
      // Rare paths, a few times each in the default seeds.
      ['closes that waited for grants', sum((r) => r.closesAfterGrants), 0],
      ['coordinators crashed', sum((r) => r.coordinatorsCrashed), 0],
      ['txn recoveries', sum((r) => r.txnRecoveries), 0],
      ['resolutions held', sum((r) => r.resolvesHeld), 0],
      // Resolutions held back and then passed on to the next leader: when Raft refuses them during a
      // leadership transfer, and when the leadership ends while they are held (HeldResolutions.passAllOn:
      // 0 in the default seeds until late timeoutNows were sent at the moment of a hold, 5 since).
      ['resolutions passed on', sum((r) => r.resolvesPassedOn), 0],
      ['resolutions passed on as the leadership ended mid-hold', sum((r) => r.resolvesPassedOnAtLoss), 0],
    ];
    if (results.length >= FLOOR_SEEDS) {
      for (const [what, count, floor] of floors) expect(count, what).toBeGreaterThan(floor);
    } else {
      const under = floors.filter(([, count, floor]) => count <= floor).map(([what, count, floor]) => `${what} ${count} (floor ${floor})`);
      console.log(`shard sim: ${results.length} seeds, under the ${FLOOR_SEEDS} the floors need; ${under.length === 0 ? 'every floor met' : `under a floor: ${under.join(', ')}`}`);
    }
  });

  it('replays a seed exactly', async () => {
    const seed = replaySeed ?? 4242;
    const a = await runShardSim(seed, configOf());
    const b = await runShardSim(seed, configOf());
    expect(b).toEqual(a);
  });

  // Cross-shard txns whose compares depend on the state (each key not written since a revision), more of
  // them than above, under network faults but no crashes or partitions (under the faults above few get
  // through): each must take the branch its compares give on the final history just below its revision,
  // whether the prepares decided it or reads at R0 did. A tenth of the plain writes go to four of the
  // transactions' keys: those wait for a transaction prepared on them, and the others are deferred behind
  // it (apply rules 6).
  const crossConfig = (): ShardSimOptions => ({ ...configOf(), crossTxnWriters: 3, faultEveryMs: 1_000_000, handoverChancePerMs: 0.01, crossTxnDeadlineMs: 1000, maxDropRate: 0.01, writesOnTxnKeys: 0.1 });
  const crossSeeds = Number(process.env.SHARD_SIM_CROSS_SEEDS ?? 20);
  it('cross-shard txns with compares on the state take the branch the history gives at C − 1', async () => {
    if (replaySeed !== null) return;
    const results: ShardSimResult[] = [];
    for (let seed = firstSeed; seed < firstSeed + crossSeeds; seed++) results.push(await runShardSim(seed, crossConfig()));
    const sum = (f: (r: ShardSimResult) => number): number => results.reduce((n, r) => n + f(r), 0);
    console.log(
      `shard sim, cross-shard txns: ${crossSeeds} seeds, ${sum((r) => r.crossTxnsAcked)} acknowledged, ${sum((r) => r.crossTxnsOnStateAcked)} with compares on the state (${sum((r) => r.crossTxnsOnStateFailed)} of them failing), ` +
        `${sum((r) => r.concurrentPrepares)} prepares laid beside another prepared on their shard, ${sum((r) => r.writesDeferred)} writes deferred behind an undecided one, ${sum((r) => r.writesParked)} parked at a leader for the transactions there, ${sum((r) => r.pastReadWritesAcked)} txns reading a past revision acknowledged, ${sum((r) => r.coordinatorsCrashed)} coordinators crashed mid-transaction`,
    );
    expect(sum((r) => r.crossTxnsOnStateAcked)).toBeGreaterThan(crossSeeds / 2);
    expect(sum((r) => r.concurrentPrepares)).toBeGreaterThan(0);
    expect(sum((r) => r.writesDeferred)).toBeGreaterThan(0);
    expect(sum((r) => r.writesParked)).toBeGreaterThan(0);
    expect(sum((r) => r.pastReadWritesAcked)).toBeGreaterThan(0);
    expect(sum((r) => r.crossTxnsOnStateFailed)).toBeGreaterThan(0);
    expect(sum((r) => r.crossTxnsOnStateAcked - r.crossTxnsOnStateFailed)).toBeGreaterThan(0);
  });

  /** The cross-shard run with members that say apply rules `rules`: its results' sum of `f`, printed. */
  async function withPeerRules(rules: number, seeds: number): Promise<(f: (r: ShardSimResult) => number) => number> {
    const results: ShardSimResult[] = [];
    for (let seed = firstSeed; seed < firstSeed + Math.min(crossSeeds, seeds); seed++) results.push(await runShardSim(seed, { ...crossConfig(), peerApplyRules: rules }));
    const sum = (f: (r: ShardSimResult) => number): number => results.reduce((n, r) => n + f(r), 0);
    console.log(`shard sim, apply rules ${rules}: ${results.length} seeds, ${sum((r) => r.crossTxnsAcked)} cross-shard txns acknowledged, ${sum((r) => r.concurrentPrepares)} prepares laid beside another, ${sum((r) => r.writesDeferred)} writes deferred`);
    return sum;
  }

  it('members that say apply rules 4 (the build before several prepares per shard): one prepare at a time per shard, and the same checks hold', async () => {
    if (replaySeed !== null) return;
    const sum = await withPeerRules(BCRYPT_PASSWORD_RULES, 10);
    expect(sum((r) => r.concurrentPrepares)).toBe(0);
    expect(sum((r) => r.writesDeferred)).toBe(0);
    expect(sum((r) => r.crossTxnsAcked)).toBeGreaterThan(0);
  });

  it('members that say apply rules 5 (the build before deferred writes): prepares beside one another, but no write beside them', async () => {
    if (replaySeed !== null) return;
    const sum = await withPeerRules(CONCURRENT_PREPARE_RULES, 5);
    expect(sum((r) => r.writesDeferred)).toBe(0);
    expect(sum((r) => r.concurrentPrepares)).toBeGreaterThan(0);
  });

  it('members whose wall clocks disagree by 20 s each way: the same checks hold, and cross-shard txns still commit', async () => {
    if (replaySeed !== null) return;
    const skewed = { clockSkewsMs: [20_000, 0, -20_000] };
    const skewSeeds = Number(process.env.SHARD_SIM_SKEW_SEEDS ?? 10);
    const main: ShardSimResult[] = [];
    const cross: ShardSimResult[] = [];
    for (let seed = firstSeed; seed < firstSeed + skewSeeds; seed++) {
      main.push(await runShardSim(seed, { ...configOf(), ...skewed }));
      cross.push(await runShardSim(seed, { ...crossConfig(), ...skewed }));
    }
    const sum = (rs: ShardSimResult[], f: (r: ShardSimResult) => number): number => rs.reduce((n, r) => n + f(r), 0);
    console.log(
      `shard sim, clocks +20 s / 0 / -20 s: ${skewSeeds} seeds: ${sum(main, (r) => r.writesAcked)} writes acknowledged, ${sum(main, (r) => r.crossTxnsAcked)} cross-shard txns (${sum(main, (r) => r.coordinatorsCrashed)} coordinators crashed); ` +
        `the cross-shard run: ${sum(cross, (r) => r.crossTxnsAcked)} acknowledged, ${sum(cross, (r) => r.crossTxnsOnStateAcked)} on compares on the state`,
    );
    // Each prepare's deadline is set by the leader that stamps it, and a later leader counts it only once
    // it has seen the transaction prepared a while (shard-write-path.ts preparedOverdue). Read through a
    // later leader's clock 20 s behind, it left a shard frozen for those 20 s: seed 2 did not converge.
    expect(sum(cross, (r) => r.crossTxnsAcked)).toBeGreaterThan(skewSeeds);
  });

  it('catches shard replicas whose deciding prepares ignore their compares', async () => {
    if (replaySeed !== null) return;
    const { caught, tried } = await firstFailure(30, { ...crossConfig(), replicaMutation: 'decide-ignoring-compares' });
    console.log(`mutation decide-ignoring-compares: caught after ${tried} seeds: ${caught.split('\n')[0]}`);
    // Caught by the state compares' check, or by a compare that never holds answered with its success branch.
    expect(caught).toMatch(/^seed=\d+: cross-shard txn \S+ (at \d+ took its success branch|branch success with comparing=true)/);
  });

  it.each(['prepare-overlapping', 'materialize-at-once', 'prepare-over-deferred'] as const)('catches shards that %s (several transactions prepared at once, writes deferred behind them)', async (m) => {
    if (replaySeed !== null) return;
    const { caught, tried } = await firstFailure(60, { ...crossConfig(), txnMutation: m });
    console.log(`mutation ${m}: caught after ${tried} seeds: ${caught.split('\n')[0]}`);
    expect(caught).toMatch(/^seed=\d+: (cross-shard txn \S+ at \d+ took its|history changed|snapshot at \d+ differs|member \d+ loop failed: Error: invariant|shard group \d+: txn \S+ prepared at index \d+ on keys of the write)/);
  });

  it.each(['skip-wait-for-proposed', 'skip-max-read-revision', 'close-over-pending-grant', 'propose-before-reads-elsewhere', 'propose-while-txn-prepared', 'propose-below-logged-commit', 'propose-undeferrable-beside-txn'] as const)('catches a shard leader that does %s', async (m) => {
    if (replaySeed !== null) return;
    // A write stamped below a logged commit and waiting for it to apply is now a lease sweep or a txn
    // reading a past revision (an ordinary write on its keys is parked and stamped again above C): rare
    // here, so that mutation runs in the cross-shard run with members that say apply rules 5, whose
    // writes on other keys wait in the outbox too.
    // A txn reading a past revision beside a prepared transaction needs the cross-shard run, where some
    // plain writes are such txns.
    const config = m === 'propose-below-logged-commit' ? { ...crossConfig(), peerApplyRules: 5 } : m === 'propose-undeferrable-beside-txn' ? crossConfig() : configOf();
    const { caught, tried } = await firstFailure(60, { ...config, mutation: m });
    console.log(`mutation ${m}: caught after ${tried} seeds: ${caught.split('\n')[0]}`);
    expect(caught).toMatch(/^seed=\d+: (history changed|snapshot at \d+ differs|lost or invisible|close broken|txn putting \S+ at revision \d+ counted|member \d+ loop failed: Error: invariant)/);
  });
});

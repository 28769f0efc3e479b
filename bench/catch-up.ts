// Benchmark: how fast a follower catches up after falling behind (issue 12's figure). A 3-member
// cluster of real processes with fsync on, one follower SIGSTOPped while `values` × 1 MiB are put
// through the leader (and for at least 20 s, so the leader's stream to it breaks), then SIGCONTed; prints the catch-up time and rate. Run by `make bench`, or:
//   node bench/catch-up.ts [values=220] [valueBytes=1048576] [rounds=3]
import { ProcessCluster } from '../test/support/process-cluster.ts';
import { measureFollowerCatchUp } from '../test/support/follower-catch-up.ts';

const values = Number(process.argv[2] ?? 220);
const valueBytes = Number(process.argv[3] ?? 1024 * 1024);
const rounds = Number(process.argv[4] ?? 3);

const rates: number[] = [];
for (let round = 1; round <= rounds; round++) {
  // A fresh cluster each round: every round starts from an empty log and a cold follower.
  const cluster = await ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: 1000 });
  try {
    await cluster.waitReady(60_000);
    const r = await measureFollowerCatchUp(cluster, { values, valueBytes, holdMs: 20_000, timeoutMs: 300_000 });
    rates.push(r.mibPerSecond);
    console.log(
      `round ${round}: follower ${r.entriesBehind} entries / ${(r.bytesBehind / 2 ** 20).toFixed(0)} MiB behind, ` +
        `caught up in ${(r.catchUpMs / 1000).toFixed(2)} s = ${r.mibPerSecond.toFixed(1)} MiB/s; ` +
        `stream breaks while catching up: ${r.streamBreaks.length}`,
    );
  } finally {
    await cluster.destroy();
  }
}
rates.sort((a, b) => a - b);
console.log(`follower catch-up: median ${rates[rates.length >> 1].toFixed(1)} MiB/s over ${rounds} rounds (target >= 10 MiB/s)`);

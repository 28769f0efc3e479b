// Benchmark: large ranges and deletes must not stall Raft (issue 13, item 2). A 3-member cluster of
// real processes (heartbeat 100 ms, election timeout 1 s, as etcd's defaults); `values` × `valueBytes`
// are stored (default 1024 × 1 MiB = 1 GiB), several clients range over all of them at once, then one
// deletes them all while the others keep ranging; other clients' small puts are timed throughout.
//   node bench/no-stall.ts [values=1024] [valueBytes=1048576] [clients=3] [rangeRounds=2]
import { ProcessCluster } from '../test/support/process-cluster.ts';
import { formatNoStall, measureNoStall } from '../test/support/no-stall.ts';

const opts = {
  values: Number(process.argv[2] ?? 1024),
  valueBytes: Number(process.argv[3] ?? 1024 * 1024),
  clients: Number(process.argv[4] ?? 3),
  rangeRounds: Number(process.argv[5] ?? 2),
};
const cluster = await ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: 1000 });
try {
  const r = await measureNoStall(cluster, opts);
  console.log(formatNoStall(r, opts));
  const gap = Math.max(...r.leaderGapMaxMs.filter((_, i) => i !== r.leaderIndex));
  console.log(`verdict: leader changes ${r.leaderChanges} (must be 0), longest leader silence ${Math.round(gap)} ms (must be < 500 ms), put p99 ${r.putP99Ms.toFixed(1)} ms (target < 100 ms)`);
} finally {
  await cluster.destroy();
}

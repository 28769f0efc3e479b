// Benchmark: restart to ready after kill -9 with a large log (issue 13, item 6; target <= 5 s with
// 500 MiB). A 3-member cluster of real processes; `values` × `valueBytes` are put, one follower is
// killed with SIGKILL and restarted (the leader, with `leader`), and the time until its /readyz says
// ready is printed.
//   node bench/restart-time.ts [values=500] [valueBytes=1048576] [rounds=1] [follower|leader]
import { ProcessCluster } from '../test/support/process-cluster.ts';
import { measureRestartToReady } from '../test/support/restart-ready.ts';

const values = Number(process.argv[2] ?? 500);
const valueBytes = Number(process.argv[3] ?? 1024 * 1024);
const rounds = Number(process.argv[4] ?? 1);
const killLeader = process.argv[5] === 'leader';

for (let round = 1; round <= rounds; round++) {
  const cluster = await ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: 1000 });
  try {
    const r = await measureRestartToReady(cluster, { values, valueBytes, killLeader });
    console.log(
      `round ${round}: ${killLeader ? 'leader' : 'follower'} killed; ${values} × ${valueBytes} B put in ${(r.putMs / 1000).toFixed(1)} s; member ${r.memberIndex} ` +
        `ready ${(r.readyMs / 1000).toFixed(2)} s after restart (target <= 5 s; loaded at ${r.phases.loaded} ms, serving at ${r.phases.serving} ms, ` +
        `leader known at ${r.phases.leaderKnown} ms), RSS ${r.rssMiB.toFixed(0)} MiB`,
    );
  } finally {
    await cluster.destroy();
  }
}

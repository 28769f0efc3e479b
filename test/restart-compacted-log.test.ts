// A member restarted with more than 64 MiB of applied log compacts its log to its applied index instead of
// reading it (issue 13, restart to ready: restart-time.test.ts). Here such a member is made to lead, and a
// follower that missed everything below that point is caught up by a snapshot, with every key. Nothing
// here is timed, yet it runs alone (vitest.config.ts, exclusive): beside the process lane the follower's
// 80 MiB catch-up outlasted the server's request timeout.
import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdctlOk } from './support/etcdctl.ts';
import { KvClient } from './support/kv-client.ts';
import { ProcessCluster } from './support/process-cluster.ts';
import { fillValues } from './support/restart-ready.ts';

describe('a member that compacted its log at restart', () => {
  let cluster: ProcessCluster;
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('leads, and catches up a follower behind its compaction point with a snapshot', async () => {
    cluster = await ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: 3000 });
    const leader = await cluster.leaderIndex();
    const [a, b] = [(leader + 1) % 3, (leader + 2) % 3];
    await cluster.kill9(b); // b misses everything below
    await fillValues(cluster, 80, 1024 * 1024, 'snap/');
    await cluster.kill9(a);
    const logSize = fs.statSync(cluster.members[a].logFile).size;
    cluster.startMember(a);
    await cluster.waitReady(60_000);
    const restartLog = fs.readFileSync(cluster.members[a].logFile, 'utf8').slice(logSize);
    expect(restartLog).toContain('"logCompactedToApplied":true');
    const aClient = new KvClient(cluster.addressOf(a));
    try {
      const aId = BigInt((await aClient.status()).header.member_id).toString(16);
      await etcdctlOk(cluster.endpointOf(leader), ['move-leader', aId]);
      expect(await cluster.leaderIndex()).toBe(a);
      await aClient.put('after-move', 'y');
    } finally {
      aClient.close();
    }
    cluster.startMember(b);
    await cluster.waitReady(120_000);
    const bClient = new KvClient(cluster.addressOf(b));
    try {
      const count = await bClient.range('snap/', { range_end: Buffer.from('snap0'), count_only: true }, 30_000);
      expect(Number(count.count)).toBe(80);
      expect((await bClient.range('after-move')).kvs[0]?.value.toString()).toBe('y');
    } finally {
      bClient.close();
    }
    expect(await cluster.metrics(a)).toMatch(/^synod_snapshots_sent_total [1-9]/m);
  }, 300_000);
});

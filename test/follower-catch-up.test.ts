// A follower 200 MiB behind in the retained log catches up over the peer stream without breaking it
// (issue 12): the leader splits its appends into frames within the budget derived from the
// replication limits, and byte-based flow control keeps a bounded window in flight. The figure is
// printed; speed itself is checked by `make bench` (bench/catch-up.ts), not here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient } from './support/kv-client.ts';
import { ProcessCluster } from './support/process-cluster.ts';
import { measureFollowerCatchUp } from './support/follower-catch-up.ts';

describe('follower catch-up', () => {
  let cluster: ProcessCluster;
  beforeAll(async () => {
    cluster = await ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: 1000 });
    await cluster.waitReady();
  }, 60_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('a follower 200 MiB behind catches up without a broken peer stream', async () => {
    const result = await measureFollowerCatchUp(cluster, { values: 200, valueBytes: 1024 * 1024, holdMs: 20_000, timeoutMs: 150_000 });
    console.log(
      `follower catch-up: ${result.entriesBehind} entries, ${(result.bytesBehind / 2 ** 20).toFixed(0)} MiB behind; ` +
        `put in ${result.putMs} ms; caught up in ${result.catchUpMs} ms (${result.mibPerSecond.toFixed(1)} MiB/s)`,
    );
    expect(result.entriesBehind).toBeGreaterThanOrEqual(200);
    expect(result.streamBreaks).toEqual([]);
    // Everything is on the follower: read the last key from its own state (serializable).
    const client = new KvClient(cluster.addressOf(result.followerIndex));
    try {
      const res = await client.range('catch-up/000199', { serializable: true });
      expect(res.kvs[0]?.value.length).toBe(1024 * 1024);
    } finally {
      client.close();
    }
    await cluster.waitReady(30_000);
  }, 240_000);
});

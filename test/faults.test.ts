// Real processes, real faults: kill -9 of the leader under concurrent writes, a full-cluster
// restart, and loss of quorum. Every write the cluster acknowledged must be readable afterwards.
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { KvClient } from './support/kv-client.ts';
import { etcdctlOk } from './support/etcdctl.ts';

let cluster: ProcessCluster | null = null;
const clients: KvClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await cluster?.destroy();
  cluster = null;
});

/**
 * Writers that keep putting unique keys, each against its own member, and record which puts were
 * acknowledged. A failed put is retried on the next member (it may or may not have been applied).
 */
function startWriters(c: ProcessCluster, writers: number): { stop: () => Promise<Map<string, string>> } {
  const acked = new Map<string, string>();
  let running = true;
  const loops: Promise<void>[] = [];
  for (let w = 0; w < writers; w++) {
    const perMember = c.members.map((_, i) => {
      const client = new KvClient(c.endpointOf(i));
      clients.push(client);
      return client;
    });
    loops.push(
      (async () => {
        let seq = 0;
        let target = w % perMember.length;
        while (running) {
          const key = `w${w}/k${seq}`;
          const value = `v${seq}`;
          try {
            await perMember[target].put(key, value, {}, 2_000);
            acked.set(key, value);
            seq++;
          } catch {
            target = (target + 1) % perMember.length;
            await new Promise((r) => setTimeout(r, 20));
          }
        }
      })(),
    );
  }
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return acked;
    },
  };
}

async function expectAllReadable(c: ProcessCluster, acked: Map<string, string>): Promise<void> {
  for (let i = 0; i < c.members.length; i++) {
    if (!c.isRunning(i)) continue;
    const client = new KvClient(c.endpointOf(i));
    clients.push(client);
    const res = await client.range('w', { range_end: Buffer.from('x') }, 10_000);
    const seen = new Map(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
    const missing = [...acked].filter(([k, v]) => seen.get(k) !== v);
    expect(missing, `member ${i} lost acknowledged writes`).toEqual([]);
  }
}

describe('faults against real server processes', () => {
  it('kill -9 of the leader under concurrent writes: a new leader serves within seconds, nothing acknowledged is lost', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    const writers = startWriters(cluster, 4);
    await new Promise((r) => setTimeout(r, 1_500));
    const oldLeader = await cluster.leaderIndex();
    const killedAt = Date.now();
    await cluster.kill9(oldLeader);

    const survivor = new KvClient(cluster.endpointOf((oldLeader + 1) % 3));
    clients.push(survivor);
    let recoveredMs = -1;
    while (Date.now() - killedAt < 10_000) {
      try {
        await survivor.put('after-failover', 'ok', {}, 1_000);
        recoveredMs = Date.now() - killedAt;
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    expect(recoveredMs, 'a new leader accepted a write').toBeGreaterThan(0);
    expect(recoveredMs).toBeLessThan(5_000);
    console.log(`failover: new leader serving writes ${recoveredMs} ms after kill -9 of the leader`);
    await new Promise((r) => setTimeout(r, 1_000));
    const acked = await writers.stop();
    expect(acked.size).toBeGreaterThan(50);
    await expectAllReadable(cluster, acked);

    // The killed member comes back and catches up on everything it missed.
    cluster.startMember(oldLeader);
    await cluster.waitReady();
    const back = new KvClient(cluster.endpointOf(oldLeader));
    clients.push(back);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const res = await back.range('w', { range_end: Buffer.from('x'), serializable: true, count_only: true });
      if (Number(res.count) >= acked.size || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await expectAllReadable(cluster, acked);
    console.log(`kill -9 leader: ${acked.size} acknowledged writes, all readable on every member`);
  });

  it('a full-cluster restart (kill -9 of every member) loses nothing', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    const writers = startWriters(cluster, 3);
    await new Promise((r) => setTimeout(r, 2_000));
    const acked = await writers.stop();
    expect(acked.size).toBeGreaterThan(50);
    const before = await etcdctlOk(cluster.endpoints, ['endpoint', 'status', '-w', 'json']);
    const revisionBefore = Math.max(...(JSON.parse(before) as Array<{ Status: { header: { revision: number } } }>).map((s) => s.Status.header.revision));

    for (let i = 0; i < 3; i++) await cluster.kill9(i);
    for (let i = 0; i < 3; i++) cluster.startMember(i);
    await cluster.waitReady();
    await expectAllReadable(cluster, acked);
    const client = new KvClient(cluster.endpointOf(0));
    clients.push(client);
    const res = await client.range('w', { range_end: Buffer.from('x'), count_only: true });
    expect(Number(res.header.revision)).toBeGreaterThanOrEqual(revisionBefore);
    // Revisions continue where they left off.
    const put = await client.put('after-restart', 'x');
    expect(Number(put.header.revision)).toBeGreaterThan(revisionBefore);
    console.log(`full restart: ${acked.size} acknowledged writes survived, revision ${revisionBefore} -> ${put.header.revision}`);
  });

  it('without a quorum, requests fail fast with "etcdserver: no leader" instead of hanging', async () => {
    cluster = await ProcessCluster.start({ size: 3 });
    await cluster.kill9(1);
    await cluster.kill9(2);
    const client = new KvClient(cluster.endpointOf(0));
    clients.push(client);
    // check-quorum makes the lone member give up leadership within an election timeout.
    const deadline = Date.now() + 10_000;
    while ((await cluster.readyz(0)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(await cluster.readyz(0)).toBe(false);
    // Each waits at most a second for a leader (a leadership handover is not an error), then says so
    // (2.5 s leaves room for a loaded 2-core machine; the client deadline is 10 s).
    let started = Date.now();
    await expect(client.put('k', 'v', {}, 10_000)).rejects.toMatchObject({ code: 14, details: 'etcdserver: no leader' });
    expect(Date.now() - started).toBeLessThan(2_500);
    started = Date.now();
    await expect(client.range('k', {}, 10_000)).rejects.toMatchObject({ code: 14, details: 'etcdserver: no leader' });
    expect(Date.now() - started).toBeLessThan(2_500);
    // Serializable reads are still served locally.
    await expect(client.range('k', { serializable: true })).resolves.toMatchObject({ kvs: [] });
  });
});

// Leadership transfer: etcdctl move-leader, and a leader that is stopped (SIGTERM) hands over
// leadership first, so a rolling restart never waits out an election timeout.
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';

let cluster: ProcessCluster | null = null;

afterEach(async () => {
  await cluster?.destroy();
  cluster = null;
});

async function memberIds(c: ProcessCluster): Promise<string[]> {
  const status = JSON.parse(await etcdctlOk(c.endpoints, ['endpoint', 'status', '-w', 'json'])) as Array<{
    Endpoint: string;
    Status: { header: { member_id: number } };
  }>;
  return c.members.map((m) => {
    const s = status.find((x) => x.Endpoint === `127.0.0.1:${m.clientPort}`)!;
    return BigInt(s.Status.header.member_id).toString(16);
  });
}

describe('leadership transfer', () => {
  it('etcdctl move-leader moves leadership to the named member', async () => {
    // A long election timeout: only a transfer can change the leader within this test.
    cluster = await ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: 3000 });
    const ids = await memberIds(cluster);
    const leader = await cluster.leaderIndex();
    const target = (leader + 1) % 3;
    const started = Date.now();
    const out = await etcdctlOk(cluster.endpointOf(leader), ['move-leader', ids[target]]);
    expect(out).toContain(`Leadership transferred from ${ids[leader]} to ${ids[target]}`);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await cluster.leaderIndex()).toBe(target);
    // etcdctl itself refuses when the endpoint it was given is not the leader (as with etcd).
    const wrong = await etcdctl(cluster.endpointOf(leader), ['move-leader', ids[leader]]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toContain('no leader endpoint given');
    // A transferee that is no member.
    const bad = await etcdctl(cluster.endpointOf(target), ['move-leader', 'abcdef']);
    expect(bad.stderr).toContain('etcdserver: bad leader transferee');
  });

  it('a leader stopped with SIGTERM hands over leadership before it exits', async () => {
    cluster = await ProcessCluster.start({ size: 3, tickMs: 100, electionTimeoutMs: 3000 });
    const leader = await cluster.leaderIndex();
    const started = Date.now();
    await cluster.stopMember(leader);
    const next = await cluster.leaderIndex(5_000);
    const tookMs = Date.now() - started;
    console.log(`graceful stop of the leader: new leader m${next + 1} after ${tookMs} ms (election timeout 3000 ms)`);
    expect(next).not.toBe(leader);
    expect(tookMs).toBeLessThan(2_500);
    expect(await etcdctlOk(cluster.endpoints, ['put', 'after', 'transfer'])).toBe('OK\n');
  });
});

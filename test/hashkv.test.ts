// `etcdctl endpoint hashkv` (issue 13 item 4): after a run of writes every member of a 3-member
// cluster reports the same hash at the same revision; a member whose stored data was altered behind
// its back (stopped, one record changed in its LevelDB with classic-level, restarted) reports a
// different one, while the others still agree.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { alarmClient } from './support/alarm-client.ts';
import { alterStoredValue } from './support/synod-backup.ts';

let cluster: ProcessCluster;

/** Each member's HashKV at `rev`, asked of that member alone. */
async function hashes(rev: number): Promise<number[]> {
  const out: number[] = [];
  for (let m = 0; m < cluster.members.length; m++) {
    const json = JSON.parse(await etcdctlOk(cluster.endpointOf(m), ['endpoint', 'hashkv', `--rev=${rev}`, '-w', 'json'])) as Array<{ HashKV: { hash: number; compact_revision: number } }>;
    out.push(json[0].HashKV.hash);
  }
  return out;
}

async function revision(): Promise<number> {
  return (JSON.parse(await etcdctlOk(cluster.endpoints, ['get', 'x', '-w', 'json'])) as { header: { revision: number } }).header.revision;
}

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3 });
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe('etcdctl endpoint hashkv', () => {
  it('is the same on every member after a run of writes, at the current and at past revisions', async () => {
    const ep = cluster.endpoints;
    for (let i = 0; i < 40; i++) await etcdctlOk(cluster.endpointOf(i % 3), ['put', `key/${i % 13}`, `value ${i}`]);
    await etcdctlOk(ep, ['del', '--prefix', 'key/1']);
    const middle = await revision();
    await etcdctlOk(ep, ['compaction', String(middle - 5)]);
    for (let i = 0; i < 10; i++) await etcdctlOk(ep, ['put', `more/${i}`, 'v']);
    const now = await revision();
    const atNow = await hashes(now);
    expect(new Set(atNow).size).toBe(1);
    const atMiddle = await hashes(middle);
    expect(new Set(atMiddle).size).toBe(1);
    expect(atMiddle[0]).not.toBe(atNow[0]);
    // Without --rev: each member's current revision; the same once they have all applied the writes.
    const plain = await etcdctlOk(ep, ['endpoint', 'hashkv']);
    expect(new Set(plain.trim().split('\n').map((l) => l.split(', ')[1])).size).toBe(1);
    // The response fields, as etcd 3.6 defines them.
    const client = alarmClient(cluster.addressOf(0));
    try {
      const r = await client.hashKv(middle);
      expect(r).toMatchObject({ hash: atMiddle[0], compact_revision: String(middle - 5), hash_revision: String(middle), header: { revision: String(now) } });
      await expect(client.hashKv(middle - 6)).rejects.toMatchObject({ details: 'etcdserver: mvcc: required revision has been compacted' });
      await expect(client.hashKv(now + 100)).rejects.toMatchObject({ details: 'etcdserver: mvcc: required revision is a future revision' });
    } finally {
      client.close();
    }
  }, 60_000);

  it('differs on a member whose stored data was altered, and only there', async () => {
    const now = await revision();
    const before = await hashes(now);
    expect(new Set(before).size).toBe(1);
    await cluster.stopMember(2);
    // Change the last byte of one stored MVCC record's value (a user value byte) directly in LevelDB.
    const altered = await alterStoredValue(cluster.members[2].dataDir, [0], 'more/3');
    expect(altered).toBe(true);
    cluster.startMember(2);
    await cluster.waitReady(30_000);
    const after = await hashes(now);
    expect(after[0]).toBe(before[0]);
    expect(after[1]).toBe(before[1]);
    expect(after[2]).not.toBe(before[2]);
    // etcdctl prints it too (a user compares the lines).
    const r = await etcdctl(cluster.endpointOf(2), ['endpoint', 'hashkv', `--rev=${now}`]);
    expect(r.stdout).toContain(String(after[2]));
  }, 60_000);
});

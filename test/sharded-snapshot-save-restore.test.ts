// Backups of a sharded cluster (issue 13 item 4 on the sharded default): Debian's real `etcdctl snapshot
// save` against a 3-member, 16-shard Synod writes every key at one oracle revision R
// (server/api/sharded-backup.ts); `synod snapshot restore` turns it into a NEW 16-shard cluster that serves
// the same keys (create and mod revisions, versions, values), the lease with its keys on several shards,
// the users and roles, and goes on above R; and into a one-group cluster. `etcdctl endpoint hashkv` gives
// one hash on every member of the restored cluster (each hosts every shard), and another on a member whose
// stored shard data was altered.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { alterStoredValue, restoreInto } from './support/synod-backup.ts';
import { EtcdReference } from './support/etcd-reference.ts';
import { FIRST_SHARD_GROUP_ID } from '../server/cli/shard-hosting.ts';

const SHARDED = ['--shards', '16'];

let source: ProcessCluster;
const others: ProcessCluster[] = [];

interface Kv {
  key: string;
  value: string;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease?: number;
}

/** Every key now, and the header revision. Lease ids are compared as "has one" (a restore keeps the id). */
async function everything(ep: string, rev = 0): Promise<{ revision: number; kvs: Kv[] }> {
  const out = JSON.parse(await etcdctlOk(ep, ['get', '', '--prefix', '-w', 'json', ...(rev ? [`--rev=${rev}`] : [])])) as { header: { revision: number }; kvs?: Kv[] };
  return { revision: out.header.revision, kvs: out.kvs ?? [] };
}

let file: string;
let saved: { revision: number; kvs: Kv[] };
let leaseId: string;
const LEASED = ['lt/1', 'lt/2', 'lt/3'];

beforeAll(async () => {
  source = await ProcessCluster.start({ size: 3, memberArgs: () => [...SHARDED] });
  const ep = source.endpoints;
  // Keys on every shard, overwrites and deletes, a cross-shard txn, a compaction, a lease whose keys sit
  // on three shards, a user and a role.
  for (let i = 0; i < 40; i++) await etcdctlOk(ep, ['put', `k/${i}`, `v${i}`]);
  for (let i = 0; i < 40; i += 7) await etcdctlOk(ep, ['put', `k/${i}`, `again ${i}`]);
  await etcdctlOk(ep, ['del', 'k/1']);
  const compactAt = (await everything(ep)).revision;
  await etcdctlOk(ep, ['compaction', String(compactAt)]);
  await etcdctlOk(ep, ['txn'], { input: '\nput x/a 1\nput x/b 2\nput x/c 3\n\n\n' });
  leaseId = (await etcdctlOk(ep, ['lease', 'grant', '600'])).match(/lease ([0-9a-f]+) granted/)![1];
  await etcdctlOk(ep, ['txn'], { input: `\n${LEASED.map((k) => `put ${k} leased --lease=${leaseId}`).join('\n')}\n\n\n` });
  await etcdctlOk(ep, ['role', 'add', 'reader']);
  await etcdctlOk(ep, ['user', 'add', 'alice:secret']);
  saved = await everything(ep);
  file = path.join(source.rootDir, 'sharded-backup.db');
  const out = await etcdctl(source.endpointOf(1), ['snapshot', 'save', file]);
  expect(out.code, out.stderr).toBe(0);
  expect(out.stdout).toContain(`Snapshot saved at ${file}`);
}, 120_000);

afterAll(async () => {
  for (const c of others) await c.destroy();
  await source?.destroy();
});

describe('etcdctl snapshot save on a 16-shard cluster', () => {
  it('writes a file with etcd\'s shape, holding every key of every shard', () => {
    expect(fs.statSync(file).size % 512).toBe(32);
    expect(saved.kvs.length).toBe(39 + 3 + LEASED.length);
  });

  it('is an etcd snapshot: etcdctl snapshot status reads it, and etcd 3.4 restores it and serves every key as the shards did at R', async () => {
    const status = JSON.parse(await etcdctlOk(source.endpointOf(0), ['snapshot', 'status', file, '-w', 'json'])) as { revision: number; totalKey: number };
    expect(status.revision).toBeGreaterThan(0);
    // The cross-shard txn's three keys share one revision, numbered per shard in the cut: renumbered in
    // the file (etcd keys its records by revision), so none is lost.
    const etcd = await EtcdReference.start({ restoreFrom: file });
    try {
      expect((await everything(etcd.endpoint)).kvs).toEqual(saved.kvs);
      // etcd lists a lease's keys in no set order.
      const ttl = await etcdctlOk(etcd.endpoint, ['lease', 'timetolive', '--keys', leaseId]);
      expect(ttl.match(/attached keys\(\[([^\]]*)\]\)/)?.[1].split(' ').sort()).toEqual(LEASED);
    } finally {
      await etcd.stop();
    }
  });
});

describe('synod snapshot restore of a sharded backup', () => {
  it('a new 3-member, 16-shard cluster serves the same keys, lease, users and roles, and continues above the backup\'s revision', async () => {
    const restored = await ProcessCluster.unstarted({ size: 3, memberArgs: () => [...SHARDED] });
    others.push(restored);
    const outputs = await restoreInto(restored, file, []);
    for (const o of outputs) expect(o).toMatch(/^restored \d+ records of a Synod backup \(revision \d+, compacted at \d+, 16 of 16 shards\)/);
    for (let m = 0; m < 3; m++) {
      const now = await everything(restored.endpointOf(m));
      expect(now.kvs, `member ${m}`).toEqual(saved.kvs);
      // History below the backup's revision is not in it: the restored cluster starts compacted there.
      const below = await etcdctl(restored.endpointOf(m), ['get', 'k/3', `--rev=${saved.revision - 1}`]);
      expect(below.stderr).toContain('required revision has been compacted');
    }
    // One hash on every member: each hosts every shard, and they applied the same.
    const hashes = (await etcdctlOk(restored.endpoints, ['endpoint', 'hashkv'])).trim().split('\n').map((l) => l.split(', ')[1]);
    expect(hashes).toHaveLength(3);
    expect(new Set(hashes).size).toBe(1);
    // The lease came with its id and its keys on three shards.
    expect(await etcdctlOk(restored.endpoints, ['lease', 'timetolive', '--keys', leaseId])).toMatch(new RegExp(`attached keys\\(\\[(${LEASED.join('|')}) (${LEASED.join('|')}) (${LEASED.join('|')})\\]\\)`));
    expect(await etcdctlOk(restored.endpoints, ['user', 'list'])).toContain('alice');
    expect(await etcdctlOk(restored.endpoints, ['role', 'list'])).toContain('reader');
    // New writes go above every restored revision, on any shard; new leases and leased puts work.
    const put = JSON.parse(await etcdctlOk(restored.endpoints, ['put', 'after', 'restore', '-w', 'json'])) as { header: { revision: number } };
    expect(put.header.revision).toBeGreaterThan(saved.revision);
    const fresh = (await etcdctlOk(restored.endpoints, ['lease', 'grant', '600'])).match(/lease ([0-9a-f]+) granted/)![1];
    expect(await etcdctlOk(restored.endpoints, ['put', 'new-leased', 'x', `--lease=${fresh}`])).toBe('OK\n');
    // Revoking the restored lease deletes its keys on the three shards at one revision.
    const before = await everything(restored.endpoints);
    await etcdctlOk(restored.endpoints, ['lease', 'revoke', leaseId]);
    const events = await etcdctl(restored.endpoints, ['watch', '--prefix', 'lt/', `--rev=${before.revision + 1}`, '-w', 'json'], { timeoutMs: 2_000, quietMs: 700 });
    const deletes = events.stdout.split('\n').filter((l) => l.startsWith('{')).flatMap((l) => (JSON.parse(l) as { Events?: Array<{ type?: number; kv: { mod_revision: number } }> }).Events ?? []);
    expect(deletes).toHaveLength(LEASED.length);
    expect(new Set(deletes.map((e) => e.kv.mod_revision)).size).toBe(1);
    expect((await everything(restored.endpoints)).kvs.filter((kv) => LEASED.includes(Buffer.from(kv.key, 'base64').toString()))).toEqual([]);

    // A member whose stored shard data is altered behind its back (stopped, one value byte changed in its
    // LevelDB) reports another hash; the other two still agree.
    const rev = (await everything(restored.endpoints)).revision;
    await restored.stopMember(2);
    const altered = await alterStoredValue(restored.members[2].dataDir, Array.from({ length: 16 }, (_, i) => FIRST_SHARD_GROUP_ID + i), 'k/');
    expect(altered).toBe(true);
    restored.startMember(2);
    await restored.waitReady(60_000);
    const after: number[] = [];
    for (let m = 0; m < 3; m++) {
      const json = JSON.parse(await etcdctlOk(restored.endpointOf(m), ['endpoint', 'hashkv', `--rev=${rev}`, '-w', 'json'])) as Array<{ HashKV: { hash: number } }>;
      after.push(json[0].HashKV.hash);
    }
    expect(after[1]).toBe(after[0]);
    expect(after[2]).not.toBe(after[0]);
  }, 150_000);

  it('a one-group cluster from the same file (--shards 1) serves the same keys', async () => {
    const single = await ProcessCluster.unstarted({ size: 1 });
    others.push(single);
    const outputs = await restoreInto(single, file, ['--shards', '1']);
    expect(outputs[0]).toMatch(/^restored \d+ records of a Synod backup \(revision \d+, compacted at \d+\)/);
    const now = await everything(single.endpoints);
    expect(now.kvs).toEqual(saved.kvs);
    expect(now.revision).toBeGreaterThanOrEqual(saved.revision);
    expect(await etcdctlOk(single.endpoints, ['lease', 'timetolive', '--keys', leaseId])).toMatch(/attached keys\(\[lt\/1 lt\/2 lt\/3\]\)/);
  }, 90_000);
});

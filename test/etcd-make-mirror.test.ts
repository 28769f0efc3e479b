// Moving from etcd while it serves: Debian's `etcdctl make-mirror` copies a live etcd 3.4 into a
// 3-member, 16-shard Synod cluster (a first sync of every key, then a watch replayed as one Txn per
// revision: cross-shard transactions here). etcd takes puts, overwrites, deletes, multi-key txns and a
// prefix delete while the mirror runs; Synod must end up holding exactly etcd's keys and values.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { EtcdReference } from './support/etcd-reference.ts';
import { etcdctlOk } from './support/etcdctl.ts';
import { eventually } from './support/eventually.ts';
import { KvClient } from './support/kv-client.ts';
import { ProcessCluster } from './support/process-cluster.ts';

let etcd: EtcdReference;
let synod: ProcessCluster;
let mirror: ChildProcess | null = null;

async function keysAndValues(endpoints: string): Promise<Map<string, string>> {
  const out = JSON.parse(await etcdctlOk(endpoints, ['get', '', '--prefix', '-w', 'json'])) as { kvs?: Array<{ key: string; value: string }> };
  return new Map((out.kvs ?? []).map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]));
}

beforeAll(async () => {
  [etcd, synod] = await Promise.all([EtcdReference.start(), ProcessCluster.start({ size: 3, memberArgs: () => ['--shards', '16'] })]);
  const kv = new KvClient(etcd.endpoint);
  try {
    for (let i = 0; i < 200; i++) await kv.put(`app/${i}`, `initial ${i}`);
  } finally {
    kv.close();
  }
}, 120_000);

afterAll(async () => {
  if (mirror && mirror.exitCode === null) mirror.kill('SIGKILL');
  await synod?.destroy();
  await etcd?.stop();
});

describe('etcdctl make-mirror from etcd into a 16-shard cluster', () => {
  it('copies what etcd held, then follows its writes, txns and deletes until both hold the same', async () => {
    mirror = spawn('etcdctl', [`--endpoints=${etcd.endpoint}`, 'make-mirror', synod.endpointOf(1)], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore' });
    await eventually('the first sync', async () => ((await keysAndValues(synod.endpoints)).size === 200 ? true : null), 30_000);
    const kv = new KvClient(etcd.endpoint);
    try {
      for (let i = 0; i < 100; i++) await kv.put(`app/${i * 2}`, `changed ${i}`);
      for (let i = 0; i < 20; i++) await kv.deleteRange(`app/${i * 3 + 1}`);
      for (let i = 0; i < 10; i++) {
        await kv.txn({ success: [0, 1, 2].map((j) => ({ request_put: { key: Buffer.from(`txn/${i}/${j}`), value: Buffer.from(`in txn ${i}`) } })) });
      }
      await kv.deleteRange('app/19', { range_end: Buffer.from('app/2') }); // app/19 and app/190..199
    } finally {
      kv.close();
    }
    const want = await keysAndValues(etcd.endpoint);
    expect(want.size).toBeGreaterThan(150);
    const got = await eventually('the mirror to catch up', async () => {
      const now = await keysAndValues(synod.endpoints);
      return now.size === want.size && [...want].every(([k, v]) => now.get(k) === v) ? now : null;
    }, 30_000);
    expect(got).toEqual(want);
    expect(mirror.exitCode).toBeNull(); // still following
  }, 90_000);
});

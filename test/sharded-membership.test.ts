// Membership changes of a sharded cluster (issue 14), with real processes and Debian's etcdctl: `member
// add --learner` / `member promote` / `member remove` change the cluster group as on one group, and the
// metadata group and every shard follow (server/shard/group-membership.ts): a joiner enters each shard as
// a learner, receives its data (by snapshot: the logs are compacted every 50 writes), becomes a voter
// once promoted, and serves every key; a removed member leaves every shard and the rest serve on with no
// acknowledged write lost. This is the cluster created with `--replication-factor 0` (every member hosts
// every shard); the default, three replicas placed by the ring, is test/sharded-placement.test.ts's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { KvClient } from './support/kv-client.ts';
import { eventually } from './support/eventually.ts';
import { putKeys } from './support/put-keys.ts';

const SHARDS = 4;
let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3, extraArgs: ['--snapshot-count', '50'], memberArgs: () => ['--shards', String(SHARDS), '--replication-factor', '0'] });
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

interface ShardView {
  id: number;
  replicas: string[];
  learners: string[];
  leader: string | null;
}

async function placement(i: number): Promise<ShardView[]> {
  const res = await fetch(`http://127.0.0.1:${cluster.members[i].metricsPort}/placement`);
  return ((await res.json()) as { shards: ShardView[] }).shards;
}

async function readAll(endpoint: string, prefix: string): Promise<Map<string, string>> {
  const kv = new KvClient(endpoint);
  try {
    const end = Buffer.from(prefix);
    end[end.length - 1]++;
    const r = await kv.range(prefix, { range_end: end }, 10_000);
    return new Map(r.kvs.map((x) => [x.key.toString(), x.value.toString()]));
  } finally {
    kv.close();
  }
}

describe(`membership changes of a ${SHARDS}-shard cluster`, () => {
  const acked = new Map<string, string>();
  let joinerId = '';

  it('a learner added with etcdctl joins every shard as a learner, is promoted everywhere, and serves every key', async () => {
    await putKeys(cluster.endpointOf(0), 'k/', 300, acked);
    const i = await cluster.addMemberSlot('m4');
    const added = await etcdctlOk(cluster.endpointOf(0), ['member', 'add', 'm4', '--learner', `--peer-urls=${cluster.peerUrlOf(i)}`]);
    joinerId = /Member\s+([0-9a-f]+) added to cluster/.exec(added)?.[1] ?? '';
    expect(joinerId).not.toBe('');
    cluster.startMember(i);
    // Every shard (and the metadata group, which /placement does not list) takes it as a learner.
    await eventually('m4 a learner of every shard', async () => {
      const view = await placement(0);
      return view.every((s) => s.learners.includes(joinerId) && !s.replicas.includes(joinerId)) ? view : null;
    });
    await eventually('promote m4', async () => {
      const r = await etcdctl(cluster.endpointOf(0), ['member', 'promote', joinerId]);
      if (r.code === 0) return r.stdout;
      expect(r.stderr).toContain('can only promote a learner member which is in sync with leader');
      return null;
    });
    const promoted = await eventually('m4 a voter of every shard', async () => {
      const view = await placement(1);
      return view.every((s) => s.replicas.includes(joinerId) && s.learners.length === 0 && s.replicas.length === 4) ? view : null;
    });
    expect(promoted).toHaveLength(SHARDS);
    // Writes go on through the new member, and it reads back everything written before it joined.
    await putKeys(cluster.endpointOf(i), 'j/', 40, acked);
    const seen = await eventually('m4 serves every key', async () => {
      const all = await readAll(cluster.endpointOf(i), 'k/');
      return all.size === 300 ? all : null;
    });
    for (const [k, v] of acked) if (k.startsWith('k/')) expect(seen.get(k)).toBe(v);
    expect((await readAll(cluster.endpointOf(i), 'j/')).size).toBe(40);
  }, 120_000);

  it('a member removed with etcdctl leaves every shard and stops; the others serve every acknowledged write', async () => {
    // The member leading the most shards among the first three: its shards must elect new leaders.
    const rows = (await etcdctlOk(cluster.endpointOf(3), ['member', 'list'])).trim().split('\n').map((l) => l.split(', '));
    const led = new Map<string, number>();
    for (const s of await placement(3)) if (s.leader) led.set(s.leader, (led.get(s.leader) ?? 0) + 1);
    const candidates = rows.filter((r) => r[2] !== 'm4').sort((a, b) => (led.get(b[0]) ?? 0) - (led.get(a[0]) ?? 0));
    const m1 = candidates[0][0];
    const victim = cluster.members.findIndex((m) => m.name === candidates[0][2]);
    console.log(`removing ${candidates[0][2]}, which leads ${led.get(m1) ?? 0} of ${SHARDS} shards`);
    expect(await etcdctlOk(cluster.endpointOf(3), ['member', 'remove', m1])).toMatch(/Member\s+[0-9a-f]+ removed from cluster/);
    expect(await cluster.waitExit(victim, 20_000)).toBe(true);
    cluster.members[victim].retired = true;
    const survivors = [0, 1, 2, 3].filter((j) => j !== victim);
    const view = await eventually('the removed member gone from every shard, each with a leader', async () => {
      const v = await placement(survivors[0]);
      return v.every((s) => !s.replicas.includes(m1) && !s.learners.includes(m1) && s.replicas.length === 3 && s.leader !== null && s.leader !== m1) ? v : null;
    });
    expect(view).toHaveLength(SHARDS);
    await putKeys(cluster.endpointOf(survivors[1]), 'r/', 40, acked);
    for (const survivor of survivors) {
      const all = new Map([...(await readAll(cluster.endpointOf(survivor), 'k/')), ...(await readAll(cluster.endpointOf(survivor), 'j/')), ...(await readAll(cluster.endpointOf(survivor), 'r/'))]);
      for (const [k, v] of acked) expect(all.get(k), `${k} on ${cluster.members[survivor].name}`).toBe(v);
    }
  }, 120_000);
});

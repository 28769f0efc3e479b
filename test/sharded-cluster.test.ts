// A sharded cluster of real processes (`--shards 4`, 3 members), driven by Debian's real etcdctl (issue 14):
// keys land on their shards, one Range over every shard is one consistent snapshot at one oracle revision
// (sorted, limited, history by --rev, compaction on every shard), hash-tagged keys keep a prefix on one shard (txn, del --prefix,
// watch --prefix; a watch over several shards: test/sharded-watch.test.ts), /placement shows every shard with 3 voters and a leader, hashkv agrees on
// every member and snapshot save backs up every shard. A txn writing
// several shards, and del --prefix over several, commit at one revision (two-phase commit, issue 15). A member
// killed with -9 loses no acknowledged write, and the cluster serves on.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';

const SHARDS = 4;
let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3, memberArgs: () => ['--shards', String(SHARDS)] });
}, 60_000);

afterAll(async () => {
  if (process.env.KEEP_SHARDED !== "1") await cluster?.destroy();
  else console.log(`kept ${cluster.rootDir}`);
});

interface JsonKv {
  key: string;
  value?: string;
  mod_revision: number;
  create_revision: number;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString();

async function getJson(args: string[]): Promise<{ header: { revision: number }; kvs?: JsonKv[]; count?: number; more?: boolean }> {
  return JSON.parse(await etcdctlOk(cluster.endpoints, ['get', ...args, '-w', 'json'])) as { header: { revision: number }; kvs?: JsonKv[]; count?: number; more?: boolean };
}

async function placement(i: number): Promise<{ shards: Array<{ id: number; slots: number[]; replicas: string[]; leader: string | null }> }> {
  const res = await fetch(`http://127.0.0.1:${cluster.members[i].metricsPort}/placement`);
  return (await res.json()) as { shards: Array<{ id: number; slots: number[]; replicas: string[]; leader: string | null }> };
}

describe(`a ${SHARDS}-shard cluster`, () => {
  const written = new Map<string, string>();

  it('serves puts on every shard from any member, and one Range over all shards at one revision', async () => {
    for (let i = 0; i < 40; i++) {
      const key = `user/${String(i).padStart(2, '0')}`;
      await etcdctlOk(cluster.endpointOf(i % 3), ['put', key, `v${i}`]);
      written.set(key, `v${i}`);
    }
    const all = await getJson(['--prefix', 'user/']);
    expect(all.count).toBe(40);
    expect(all.kvs!.map((kv) => unb64(kv.key))).toEqual([...written.keys()].sort());
    expect(all.kvs!.map((kv) => unb64(kv.value!))).toEqual([...written.keys()].sort().map((k) => written.get(k)));
    // One revision sequence: every write has its own revision, all at or below the header's.
    const revisions = all.kvs!.map((kv) => kv.mod_revision);
    expect(new Set(revisions).size).toBe(40);
    expect(Math.max(...revisions)).toBeLessThanOrEqual(all.header.revision);

    const limited = await getJson(['--prefix', 'user/', '--limit', '5']);
    expect(limited.kvs!.map((kv) => unb64(kv.key))).toEqual([...written.keys()].sort().slice(0, 5));
    expect(limited.more).toBe(true);
    expect(limited.count).toBe(40);
    const byModDesc = (await etcdctlOk(cluster.endpoints, ['get', '--prefix', 'user/', '--keys-only', '--order', 'DESCEND', '--sort-by', 'MODIFY'])).split('\n').filter(Boolean);
    const expected = [...all.kvs!].sort((a, b) => b.mod_revision - a.mod_revision).map((kv) => unb64(kv.key));
    expect(byModDesc).toEqual(expected);

    // History: the snapshot at a past revision holds exactly the writes up to it, and stays so.
    const cut = revisions.slice().sort((a, b) => a - b)[19];
    await etcdctlOk(cluster.endpoints, ['put', 'user/00', 'changed']);
    const past = await getJson(['--prefix', 'user/', '--rev', String(cut)]);
    expect(past.kvs!.map((kv) => unb64(kv.key))).toEqual(all.kvs!.filter((kv) => kv.mod_revision <= cut).map((kv) => unb64(kv.key)));
    expect(past.kvs!.find((kv) => unb64(kv.key) === 'user/00')?.value).toBe(b64('v0'));
    expect((await getJson(['--prefix', 'user/', '--rev', String(cut)])).kvs).toEqual(past.kvs);
    written.set('user/00', 'changed');
    // One key at a revision past its own shard's last write (other shards wrote since): its state then.
    const newest = await getJson(['--prefix', 'user/']);
    const first = all.kvs!.find((kv) => unb64(kv.key) === 'user/05')!;
    const atNewest = await getJson(['user/05', '--rev', String(newest.header.revision)]);
    expect(atNewest.kvs!.map((kv) => kv.mod_revision)).toEqual([first.mod_revision]);

    // Compact(cut) compacts every shard: reads below cut are refused as etcd refuses them, at cut still served.
    await etcdctlOk(cluster.endpoints, ['compaction', String(cut)]);
    const below = await etcdctl(cluster.endpoints, ['get', '--prefix', 'user/', '--rev', String(cut - 1)]);
    expect(below.stderr).toContain('mvcc: required revision has been compacted');
    expect((await getJson(['--prefix', 'user/', '--rev', String(cut)])).kvs).toEqual(past.kvs);
    const again = await etcdctl(cluster.endpoints, ['compaction', String(cut - 1)]);
    expect(again.stderr).toContain('mvcc: required revision has been compacted');
  }, 120_000);

  it('a write that changes nothing uses up its revision, and a later read of its shard does not go below it', async () => {
    // A txn whose compare fails writes nothing, but its answer carries the revision its shard's leader
    // stamped it with; the next read of that shard must not report an older revision.
    await etcdctlOk(cluster.endpointOf(0), ['put', 'gap/{g}/a', '1']);
    await etcdctlOk(cluster.endpointOf(1), ['put', 'other/key', '1']); // another shard moves the sequence on
    const failed = JSON.parse(
      await etcdctlOk(cluster.endpointOf(0), ['txn', '-w', 'json'], { input: 'value("gap/{g}/a") = "2"\n\nput gap/{g}/a 3\n\nget gap/{g}/a\n\n' }),
    ) as { header: { revision: number }; succeeded?: boolean };
    expect(failed.succeeded ?? false).toBe(false);
    for (let m = 0; m < 3; m++) {
      const read = JSON.parse(await etcdctlOk(cluster.endpointOf(m), ['get', 'gap/{g}/a', '-w', 'json'])) as { header: { revision: number } };
      expect(read.header.revision).toBeGreaterThanOrEqual(failed.header.revision);
    }
  });

  it('etcdctl member list and endpoint status answer from every member', async () => {
    const list = await etcdctlOk(cluster.endpointOf(2), ['member', 'list']);
    const lines = list.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const m of cluster.members) expect(list).toContain(`, started, ${m.name}, http://127.0.0.1:${m.peerPort}`);
    const status = await etcdctlOk(cluster.endpoints, ['endpoint', 'status']);
    expect(status.trim().split('\n')).toHaveLength(3);
  });

  it('GET /health on the client port reads the "health" key through its shard, from every member', async () => {
    for (let i = 0; i < 3; i++) {
      for (const path of ['/health', '/health?serializable=true']) {
        const res = await fetch(`http://${cluster.addressOf(i)}${path}`);
        expect(res.status, `member ${i} ${path}`).toBe(200);
        expect(await res.text()).toBe('{"health":"true","reason":""}');
      }
    }
  });

  it('/placement shows every shard with three voters and a leader', async () => {
    const view = await placement(0);
    expect(view.shards.map((s) => s.id)).toEqual([0, 1, 2, 3]);
    expect(view.shards.map((s) => s.slots)).toEqual([[0, 4095], [4096, 8191], [8192, 12287], [12288, 16383]]);
    for (const s of view.shards) {
      expect(s.replicas).toHaveLength(3);
      expect(s.leader).not.toBeNull();
    }
  });

  it('keys sharing a {hash tag} stay on one shard: txn, watch --prefix and del --prefix work on them', async () => {
    const ep = cluster.endpoints;
    await etcdctlOk(ep, ['put', '/app/{t1}/a', '1']);
    await etcdctlOk(ep, ['put', '/app/{t1}/b', '2']);
    const expected = ['PUT\n/app/{t1}/b\ntxn-ok', 'DELETE\n/app/{t1}/a', 'DELETE\n/app/{t1}/b'];
    const watch = etcdctl(ep, ['watch', '--prefix', '/app/{t1}/'], { timeoutMs: 6_000, doneWhen: (out) => expected.every((e) => out.includes(e)) });
    await new Promise((r) => setTimeout(r, 1_000));
    const txn = await etcdctlOk(ep, ['txn'], { input: 'value("/app/{t1}/a") = "1"\n\nput /app/{t1}/b txn-ok\n\nput /app/{t1}/b txn-failed\n\n' });
    expect(txn).toContain('SUCCESS');
    expect((await etcdctlOk(ep, ['get', '/app/{t1}/b', '--print-value-only'])).trim()).toBe('txn-ok');
    expect((await etcdctlOk(ep, ['del', '--prefix', '/app/{t1}/'])).trim()).toBe('2');
    const events = (await watch).stdout;
    for (const e of expected) expect(events).toContain(e);
  }, 60_000);

  it('a txn writing several shards commits at one revision, atomically, and del --prefix deletes over every shard at one revision', async () => {
    const ep = cluster.endpoints;
    for (let i = 0; i < 12; i++) await etcdctlOk(ep, ['put', `xs/${String(i).padStart(2, '0')}`, 'v0']);
    const keys = Array.from({ length: 12 }, (_, i) => `xs/${String(i).padStart(2, '0')}`);
    const watch = etcdctl(ep, ['watch', '--prefix', 'xs/', '-w', 'json'], { timeoutMs: 15_000, doneWhen: (out) => (out.match(/"type":1/g) ?? []).length >= 12 });
    await new Promise((r) => setTimeout(r, 1_000));
    // Compares on several shards, writes on several: the success branch runs whole.
    const ok = await etcdctlOk(ep, ['txn', '-w', 'json'], { input: `value("xs/00") = "v0"\nvalue("xs/07") = "v0"\n\n${keys.slice(0, 6).map((k) => `put ${k} t1`).join('\n')}\n\nput xs/00 failed\n\n` });
    const okJson = JSON.parse(ok) as { succeeded?: boolean; header: { revision: number } };
    expect(okJson.succeeded).toBe(true);
    const after = await getJson(['--prefix', 'xs/']);
    const t1 = (after.kvs ?? []).filter((kv) => unb64(kv.value ?? '') === 't1');
    expect(t1.map((kv) => unb64(kv.key))).toEqual(keys.slice(0, 6));
    // One revision for every write, the txn's header revision.
    expect(new Set(t1.map((kv) => kv.mod_revision))).toEqual(new Set([okJson.header.revision]));
    // The failure branch, over several shards too: nothing of the success branch is applied.
    const failed = await etcdctlOk(ep, ['txn', '-w', 'json'], { input: `value("xs/00") = "nope"\n\nput xs/00 bad\nput xs/07 bad\n\nput xs/08 f\nput xs/09 f\ndel xs/10\n\n` });
    expect((JSON.parse(failed) as { succeeded?: boolean }).succeeded).toBeFalsy();
    const values = new Map((await getJson(['--prefix', 'xs/'])).kvs!.map((kv) => [unb64(kv.key), unb64(kv.value ?? '')]));
    expect(values.get('xs/00')).toBe('t1');
    expect(values.get('xs/07')).toBe('v0');
    expect(values.get('xs/08')).toBe('f');
    expect(values.get('xs/09')).toBe('f');
    expect(values.has('xs/10')).toBe(false);
    // del --prefix over every shard: one revision for all its events.
    expect((await etcdctlOk(ep, ['del', '--prefix', 'xs/'])).trim()).toBe('11');
    expect((await getJson(['--prefix', 'xs/'])).count ?? 0).toBe(0);
    const lines = (await watch).stdout.split('\n').filter((l) => l.startsWith('{'));
    const deletes = lines.flatMap((l) => ((JSON.parse(l) as { Events?: Array<{ type?: number; kv: { mod_revision: number } }> }).Events ?? []).filter((e) => e.type === 1));
    // The failure branch's delete of xs/10, then the 11 of del --prefix, all at one revision.
    expect(deletes).toHaveLength(12);
    expect(new Set(deletes.slice(1).map((e) => e.kv.mod_revision)).size).toBe(1);
    expect(deletes[1].kv.mod_revision).toBeGreaterThan(deletes[0].kv.mod_revision);
  }, 60_000);

  it('hashkv agrees on every member, and snapshot save backs up every shard (restore: sharded-snapshot-save-restore.test.ts)', async () => {
    const hashes = (await etcdctlOk(cluster.endpoints, ['endpoint', 'hashkv'])).trim().split('\n').map((l) => l.split(', ')[1]);
    expect(hashes).toHaveLength(3);
    expect(new Set(hashes).size).toBe(1);
    const save = await etcdctl(cluster.endpointOf(0), ['snapshot', 'save', `${cluster.rootDir}/backup.db`]);
    expect(save.code, save.stderr).toBe(0);
    expect(fs.statSync(`${cluster.rootDir}/backup.db`).size % 512).toBe(32);
  }, 60_000);

  it('a member killed with -9: writes go on through the others, nothing acknowledged is lost, and it catches up', async () => {
    await cluster.kill9(2);
    const others = `${cluster.endpointOf(0)},${cluster.endpointOf(1)}`;
    // A write forwarded to a leader that just died is lost unacknowledged ("request timed out"), as on
    // etcd; the client tries again (same key, same value) until it is acknowledged.
    const killedAt = Date.now();
    let firstAckMs = -1;
    for (let i = 40; i < 60; i++) {
      const key = `user/${i}`;
      for (let attempt = 0; ; attempt++) {
        const r = await etcdctl(others, ['put', key, `v${i}`]);
        if (r.code === 0) break;
        console.log(`attempt ${attempt} for ${key} failed after kill: ${r.stderr.split("\n").filter(Boolean).at(-1)}`);
        expect(r.stderr).toMatch(/request timed out|no leader/);
        expect(attempt).toBeLessThan(5);
      }
      if (firstAckMs < 0) firstAckMs = Date.now() - killedAt;
      written.set(key, `v${i}`);
    }
    console.log(`sharded cluster: first write acknowledged ${firstAckMs} ms after kill -9 of a member`);
    cluster.startMember(2);
    await cluster.waitReady();
    for (const i of [0, 1, 2]) {
      const got = JSON.parse(await etcdctlOk(cluster.endpointOf(i), ['get', '--prefix', 'user/', '-w', 'json'])) as { kvs: JsonKv[] };
      expect(new Map(got.kvs.map((kv) => [unb64(kv.key), unb64(kv.value!)]))).toEqual(new Map([...written].sort()));
    }
  }, 120_000);
});

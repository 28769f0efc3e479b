// Moving from etcd: a real etcd 3.4 (Debian's etcd-server) takes writes with history, a compaction, leases
// and auth; Debian's `etcdctl snapshot save` writes its bbolt snapshot; `synod snapshot restore` turns that
// file into a new Synod cluster, 3 members on 16 shards and one member on one group. Each serves what etcd
// served: every key with its value, create and mod revisions, version and lease; the history above the
// compaction point, and etcd's refusal below it; the leases with their keys; the users with their etcd
// passwords (bcrypt) and the roles' permissions. The one-group cluster also goes on at etcd's next revision.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EtcdReference } from './support/etcd-reference.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { KvClient } from './support/kv-client.ts';
import { ProcessCluster } from './support/process-cluster.ts';
import { restoreInto, synodCli } from './support/synod-backup.ts';

const ROOT = ['--user', 'root:rootpw'];
/** Keys enough for several levels of bbolt pages, and values that span pages of their own. */
const BULK_KEYS = 3000;
const BIG_VALUE_BYTES = 300 * 1024;

interface Kv {
  key: string;
  value?: string;
  create_revision: number;
  mod_revision: number;
  version: number;
  lease?: number;
}

interface Listing {
  revision: number;
  kvs: Kv[];
}

async function listing(endpoints: string, rev = 0): Promise<Listing> {
  const r = await etcdctl(endpoints, [...ROOT, 'get', '', '--prefix', '-w', 'json', ...(rev ? [`--rev=${rev}`] : [])], { maxOutputBytes: 64 * 1024 * 1024 });
  // Not the output in the error: it holds the 300 KB value.
  if (r.code !== 0) throw new Error(`etcdctl get --prefix --rev=${rev} failed (${r.code}): ${r.stderr} (${r.stdout.length} bytes out)`);
  const parsed = JSON.parse(r.stdout) as { header: { revision: number }; kvs?: Kv[] };
  return { revision: parsed.header.revision, kvs: parsed.kvs ?? [] };
}

let etcd: EtcdReference;
let dir: string;
let snapshotFile: string;
let atSave: Listing;
let compactAt: number;
let revisionsToCompare: number[];
const atRevision = new Map<number, Kv[]>();
const etcdHashes = new Map<number, number>();
let leaseId: string;
const clusters: ProcessCluster[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-snapshot-'));
  etcd = await EtcdReference.start();
  const ep = etcd.endpoint;
  const kv = new KvClient(ep);
  try {
    for (let i = 0; i < BULK_KEYS; i++) await kv.put(`bulk/${String(i).padStart(5, '0')}`, `value ${i} `.repeat(20));
    // Keys with zero bytes (Synod escapes them in its records), overwrites, deletes, a big value.
    await kv.put(Buffer.from([0x62, 0x00, 0x01]), 'zero inside');
    await kv.put(Buffer.from([0x62, 0x00]), 'zero at the end');
    await kv.put('big', Buffer.alloc(BIG_VALUE_BYTES, 7));
    for (let i = 0; i < 20; i++) await kv.put(`h/${i % 4}`, `round ${i}`);
    await kv.deleteRange('bulk/00100', { range_end: Buffer.from('bulk/00200') });
    compactAt = Number((await kv.put('h/compacted-here', 'x')).header.revision);
    await kv.compact(compactAt);
    for (let i = 0; i < 10; i++) await kv.put(`h/${i % 3}`, `after ${i}`);
    await kv.deleteRange('h/1');
    await kv.txn({ success: [{ request_put: { key: Buffer.from('t/a'), value: Buffer.from('1') } }, { request_put: { key: Buffer.from('t/b'), value: Buffer.from('2') } }] });
  } finally {
    kv.close();
  }
  leaseId = (await etcdctlOk(ep, ['lease', 'grant', '900'])).match(/lease ([0-9a-f]+) granted/)![1];
  for (const key of ['lt/1', 'lt/2', 'lt/3', 'h/0']) await etcdctlOk(ep, ['put', key, 'leased', `--lease=${leaseId}`]);
  await etcdctlOk(ep, ['lease', 'grant', '600']); // a lease with no keys
  await etcdctlOk(ep, ['user', 'add', 'root:rootpw']);
  await etcdctlOk(ep, ['user', 'grant-role', 'root', 'root']);
  await etcdctlOk(ep, ['role', 'add', 'hreader']);
  await etcdctlOk(ep, ['role', 'grant-permission', 'hreader', 'read', 'h/', '--prefix']);
  await etcdctlOk(ep, ['role', 'grant-permission', 'hreader', 'readwrite', 't/a']);
  await etcdctlOk(ep, ['user', 'add', 'alice:alicepw']);
  await etcdctlOk(ep, ['user', 'grant-role', 'alice', 'hreader']);
  await etcdctlOk(ep, ['auth', 'enable']);

  atSave = await listing(ep);
  revisionsToCompare = [compactAt, compactAt + 3, atSave.revision - 2, atSave.revision];
  for (const rev of revisionsToCompare) atRevision.set(rev, (await listing(ep, rev)).kvs);
  for (const rev of revisionsToCompare.filter((r) => r > compactAt)) etcdHashes.set(rev, await hashKv(ep, rev));
  snapshotFile = path.join(dir, 'etcd.db');
  const saved = await etcdctl(ep, [...ROOT, 'snapshot', 'save', snapshotFile]);
  expect(saved.code, saved.stderr).toBe(0);
}, 240_000);

afterAll(async () => {
  for (const c of clusters) await c.destroy();
  await etcd?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function restored(size: number, shards: number): Promise<ProcessCluster> {
  const cluster = await ProcessCluster.unstarted({ size, memberArgs: () => ['--shards', String(shards)] });
  clusters.push(cluster);
  const outputs = await restoreInto(cluster, snapshotFile, ['--shards', String(shards)]);
  const layout = shards > 1 ? `, \\d+ of ${shards} shards` : '';
  for (const out of outputs) {
    expect(out).toMatch(new RegExp(`^restored \\d+ records of an etcd snapshot \\(revision ${atSave.revision}, compacted at ${compactAt}${layout}\\)`));
  }
  return cluster;
}

/** `etcdctl endpoint hashkv --rev` of one endpoint. */
async function hashKv(endpoint: string, rev: number): Promise<number> {
  const out = JSON.parse(await etcdctlOk(endpoint, [...ROOT, 'endpoint', 'hashkv', `--rev=${rev}`, '-w', 'json'])) as Array<{ HashKV: { hash: number } }>;
  return out[0].HashKV.hash;
}

async function expectServesWhatEtcdServed(cluster: ProcessCluster): Promise<void> {
  const ep = cluster.endpoints;
  // etcd's own HashKV, number for number, at every compared revision above the compaction point, on
  // every member: the same records, revisions and compaction point as etcd's.
  for (const rev of revisionsToCompare.filter((r) => r > compactAt)) {
    for (let m = 0; m < cluster.members.length; m++) expect(await hashKv(cluster.endpointOf(m), rev), `hashkv at ${rev} on member ${m}`).toBe(etcdHashes.get(rev));
  }
  // At the compaction point itself, and below it, what etcd answers.
  for (const rev of [compactAt, compactAt - 1]) {
    const args = [...ROOT, 'endpoint', 'hashkv', `--rev=${rev}`, '-w', 'json'];
    const [mine, etcds] = [await etcdctl(ep.split(',')[0], args), await etcdctl(etcd.endpoint, args)];
    expect({ code: mine.code, out: mine.stdout.replace(/"(cluster_id|member_id|revision|raft_term|Endpoint)":"?[^,}"]*"?/g, '') }, `hashkv at ${rev}`).toEqual({
      code: etcds.code,
      out: etcds.stdout.replace(/"(cluster_id|member_id|revision|raft_term|Endpoint)":"?[^,}"]*"?/g, ''),
    });
    if (mine.code !== 0) expect(mine.stderr).toContain(etcds.stderr.match(/etcdserver: [^"\n]*/)?.[0] ?? 'no etcdserver error');
  }
  const now = await listing(ep);
  expect(now.kvs.length).toBe(atSave.kvs.length);
  expect(now.kvs).toEqual(atSave.kvs);
  for (const rev of revisionsToCompare) expect((await listing(ep, rev)).kvs, `at revision ${rev}`).toEqual(atRevision.get(rev));
  const below = await etcdctl(ep, [...ROOT, 'get', 'h/0', `--rev=${compactAt - 1}`]);
  expect(below.code).not.toBe(0);
  expect(below.stderr).toContain('etcdserver: mvcc: required revision has been compacted');

  const ttl = await etcdctlOk(ep, [...ROOT, 'lease', 'timetolive', leaseId, '--keys']);
  expect(ttl).toMatch(new RegExp(`lease ${leaseId} granted with TTL\\(900s\\), remaining\\(\\d+s\\), attached keys\\(\\[(h/0 lt/1 lt/2 lt/3)\\]\\)`));
  expect((await etcdctlOk(ep, [...ROOT, 'lease', 'list'])).split('\n').filter((l) => /^[0-9a-f]+$/.test(l.trim()))).toHaveLength(2);

  // etcd's users log in with their etcd passwords, and the roles hold as on etcd.
  expect(await etcdctlOk(ep, ['--user', 'alice:alicepw', 'get', 'h/2', '--print-value-only'])).toBe('after 8\n');
  await etcdctlOk(ep, ['--user', 'alice:alicepw', 'put', 't/a', 'by alice']);
  const denied = await etcdctl(ep, ['--user', 'alice:alicepw', 'put', 'h/2', 'no']);
  expect(denied.stderr).toContain('etcdserver: permission denied');
  const wrong = await etcdctl(ep, ['--user', 'alice:wrong', 'get', 'h/2']);
  expect(wrong.stderr).toContain('etcdserver: authentication failed, invalid user ID or password');
  const anonymous = await etcdctl(ep, ['put', 'x', 'y']);
  expect(anonymous.stderr).toContain('etcdserver: user name is empty');
  expect(await etcdctlOk(ep, [...ROOT, 'role', 'get', 'hreader'])).toBe(await etcdctlOk(etcd.endpoint, [...ROOT, 'role', 'get', 'hreader']));
}

describe('synod snapshot restore of an etcd snapshot', () => {
  it('the saved file is a real etcd snapshot (etcdctl snapshot status reads it)', async () => {
    const status = JSON.parse(await etcdctlOk(etcd.endpoint, ['snapshot', 'status', snapshotFile, '-w', 'json'])) as { revision: number; totalKey: number };
    expect(status.revision).toBe(atSave.revision);
    expect(status.totalKey).toBeGreaterThan(BULK_KEYS - 100);
  });

  it('into 3 members on 16 shards: every key, the history above the compaction, leases and auth, as etcd served them', async () => {
    const cluster = await restored(3, 16);
    await expectServesWhatEtcdServed(cluster);
    // New writes land above every restored revision.
    const put = JSON.parse(await etcdctlOk(cluster.endpoints, [...ROOT, 'put', 'after/restore', '1', '-w', 'json'])) as { header: { revision: number } };
    expect(put.header.revision).toBeGreaterThan(atSave.revision);
  }, 180_000);

  it('into one member on one group: the same, and the next write takes etcd\'s next revision', async () => {
    const cluster = await restored(1, 1);
    await expectServesWhatEtcdServed(cluster);
    // alice's put above went at atSave.revision + 1, as it would have on etcd.
    expect((await listing(cluster.endpoints)).revision).toBe(atSave.revision + 1);
    const put = JSON.parse(await etcdctlOk(cluster.endpoints, [...ROOT, 'put', 'after/restore', '1', '-w', 'json'])) as { header: { revision: number } };
    expect(put.header.revision).toBe(atSave.revision + 2);
  }, 120_000);

  it('refuses a file without the sha256 trailer unless told to skip the check, and a truncated one always', async () => {
    const bytes = fs.readFileSync(snapshotFile);
    const bare = path.join(dir, 'bare.db'); // an etcd member's member/snap/db has no trailer
    fs.writeFileSync(bare, bytes.subarray(0, bytes.length - 32));
    const target = (name: string): string[] => ['--name', 'm', '--data-dir', path.join(dir, name), '--initial-cluster', 'm=http://127.0.0.1:2380'];
    const refused = await synodCli(['snapshot', 'restore', bare, ...target('a')]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('no sha256 trailer');
    const skipped = await synodCli(['snapshot', 'restore', bare, '--skip-hash-check', ...target('b')]);
    expect(skipped.code, skipped.stderr).toBe(0);
    expect(skipped.stdout).toContain('of an etcd snapshot');
    const truncated = path.join(dir, 'truncated.db');
    fs.writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2 / 4096) * 4096));
    const cut = await synodCli(['snapshot', 'restore', truncated, '--skip-hash-check', ...target('c')]);
    expect(cut.code).not.toBe(0);
    expect(cut.stderr).toMatch(/truncated bbolt database|runs past the end of the file|outside the file/);
    expect(fs.existsSync(path.join(dir, 'c'))).toBe(false);
  }, 60_000);
});

// Backups (issue 13 item 4): Debian's real `etcdctl snapshot save` against a 3-member Synod cluster
// writes a file with etcd's sha256 trailer, `synod snapshot restore` turns it into the data dirs of a
// NEW cluster (3 members, and 1), and the restored cluster serves the same keys at the same
// revisions, current and past, and goes on from the same revision.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { restoreInto, synodCli } from './support/synod-backup.ts';
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../server/etcd/proto.ts';
import { KvClient } from './support/kv-client.ts';
import { EtcdReference } from './support/etcd-reference.ts';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { encodeBackup } from '../server/storage/backup-file.ts';
import { readEtcdSnapshot, readEtcdSnapshotHeader } from '../server/cli/etcd-snapshot-import.ts';

/** A whole Maintenance.Snapshot stream from `address`, its blobs joined. */
function snapshotBytes(address: string): Promise<Buffer> {
  const { Maintenance } = etcdClients();
  const client = new Maintenance(address, grpc.credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    const blobs: Buffer[] = [];
    const call = (client as unknown as { Snapshot(req: object): grpc.ClientReadableStream<{ blob: Buffer }> }).Snapshot({});
    call.on('data', (m: { blob: Buffer }) => blobs.push(m.blob));
    call.on('end', () => resolve(Buffer.concat(blobs)));
    call.on('error', reject);
  }).finally(() => client.close());
}


let source: ProcessCluster;
const others: ProcessCluster[] = [];

interface GetJson {
  header: { revision: number };
  kvs?: Array<{ key: string; value: string; create_revision: number; mod_revision: number; version: number }>;
  count?: number;
}

/** Everything visible at `rev` (0: now), without the header's member and cluster ids. */
async function everything(ep: string, rev = 0): Promise<{ revision: number; kvs: GetJson['kvs']; count: number }> {
  const out = JSON.parse(await etcdctlOk(ep, ['get', '', '--prefix', '-w', 'json', ...(rev ? [`--rev=${rev}`] : [])])) as GetJson;
  return { revision: out.header.revision, kvs: out.kvs ?? [], count: out.count ?? 0 };
}

/** restoreInto (support/synod-backup.ts), checking what each restore printed. */
async function restoreChecked(cluster: ProcessCluster, file: string, restoreArgs: string[] = []): Promise<void> {
  for (const out of await restoreInto(cluster, file, restoreArgs)) expect(out).toMatch(/^restored \d+ records of a Synod backup \(revision \d+, compacted at \d+(, \d+ of \d+ shards)?\)/);
}

let file: string;
let revisions: number[];
let expected: Map<number, Awaited<ReturnType<typeof everything>>>;
let compactedAt: number;

beforeAll(async () => {
  source = await ProcessCluster.start({ size: 3 });
  const ep = source.endpoints;
  revisions = [];
  const rev = async (): Promise<number> => (await everything(ep)).revision;
  // Several revisions of puts, overwrites and deletes, a compaction in the middle, a leased key.
  for (let i = 0; i < 10; i++) await etcdctlOk(ep, ['put', `k/${i}`, `v${i}`]);
  await etcdctlOk(ep, ['put', 'k/3', 'three again']);
  await etcdctlOk(ep, ['del', 'k/5']);
  compactedAt = await rev();
  await etcdctlOk(ep, ['compaction', String(compactedAt)]);
  revisions.push(compactedAt);
  await etcdctlOk(ep, ['put', 'k/3', 'three, third time']);
  revisions.push(await rev());
  await etcdctlOk(ep, ['del', 'k/0', 'k/2']); // a range delete: k/0 and k/1
  revisions.push(await rev());
  const lease = (await etcdctlOk(ep, ['lease', 'grant', '600'])).match(/lease ([0-9a-f]+) granted/)![1];
  await etcdctlOk(ep, ['put', 'leased', 'x', `--lease=${lease}`]);
  await etcdctlOk(ep, ['put', 'k/5', 'back']);
  revisions.push(await rev());
  expected = new Map();
  for (const r of revisions) expected.set(r, await everything(ep, r));
  file = path.join(source.rootDir, 'backup.db');
  // etcdctl saves from one endpoint, as etcd requires.
  const saved = await etcdctl(source.endpointOf(1), ['snapshot', 'save', file]);
  expect(saved.code, saved.stderr).toBe(0);
  expect(saved.stdout).toContain(`Snapshot saved at ${file}`);
}, 90_000);

afterAll(async () => {
  for (const c of others) await c.destroy();
  await source?.destroy();
});

describe('etcdctl snapshot save', () => {
  it('writes a file with etcd\'s shape: a multiple of 512 bytes plus a sha256 trailer', () => {
    expect(fs.statSync(file).size % 512).toBe(32);
  });

  it('a backup taken the moment a write is answered holds it (the lazily flushed state is written first)', async () => {
    for (let i = 0; i < 6; i++) {
      const kv = new KvClient(source.addressOf(i % 3));
      try {
        const value = `written-just-before-backup-${i}-${Date.now()}`;
        await kv.put(`late/${i}`, value);
        expect((await snapshotBytes(source.addressOf(i % 3))).includes(Buffer.from(value)), `backup ${i} through member ${i % 3}`).toBe(true);
      } finally {
        kv.close();
      }
    }
  });

  it('a backup cut short by its client leaves no spool behind on the member', async () => {
    // Several 1 MiB chunks, so the stream is still being written (its spool in use) when it is cancelled.
    const kv = new KvClient(source.addressOf(2));
    try {
      for (let i = 0; i < 6; i++) await kv.put(`cancel/${i}`, Buffer.alloc(1024 * 1024, i));
    } finally {
      kv.close();
    }
    const { Maintenance } = etcdClients();
    const client = new Maintenance(source.addressOf(2), grpc.credentials.createInsecure());
    try {
      await new Promise<void>((resolve, reject) => {
        const call = (client as unknown as { Snapshot(req: object): grpc.ClientReadableStream<{ blob: Buffer }> }).Snapshot({});
        call.once('data', () => {
          call.cancel();
          resolve();
        });
        call.on('error', (err: grpc.ServiceError) => (err.code === grpc.status.CANCELLED ? resolve() : reject(err)));
      });
    } finally {
      client.close();
    }
    const spool = path.join(source.members[2].dataDir, 'backup-spool');
    const deadline = Date.now() + 5_000;
    while (fs.existsSync(spool) && fs.readdirSync(spool).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(spool) ? fs.readdirSync(spool) : []).toEqual([]);
  });

  it('makes two backups at once on a member; more wait their turn, and one past eight waiting is refused with etcd\'s "too many requests"', async () => {
    // 16 MiB: more than a stalled client's HTTP/2 stream and the member's session buffers absorb (about
    // 10 MiB, node's maxSessionMemory), so a backup to a client that stops reading stays unfinished.
    const kv = new KvClient(source.addressOf(1));
    try {
      for (let i = 0; i < 16; i++) await kv.put(`slots/${i}`, Buffer.alloc(1024 * 1024, i));
    } finally {
      kv.close();
    }
    const { Maintenance } = etcdClients();
    const client = new Maintenance(source.addressOf(1), grpc.credentials.createInsecure());
    type SnapshotCall = grpc.ClientReadableStream<{ blob: Buffer }>;
    const open = (client as unknown as { Snapshot(req: object): SnapshotCall }).Snapshot.bind(client);
    const calls: Array<{ call: SnapshotCall; served: boolean; error: grpc.ServiceError | null }> = [];
    try {
      for (let i = 0; i < 11; i++) {
        const entry = { call: open({}), served: false, error: null as grpc.ServiceError | null };
        // A client that reads one message and then nothing: its backup holds its slot, stalled on flow control.
        entry.call.once('data', () => {
          entry.served = true;
          entry.call.pause();
        });
        entry.call.on('error', (err: grpc.ServiceError) => (entry.error = err));
        calls.push(entry);
      }
      const until = async (what: string, done: () => boolean): Promise<void> => {
        const deadline = Date.now() + 15_000;
        while (!done()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      await until('two served and one refused', () => calls.filter((c) => c.served).length === 2 && calls.some((c) => c.error !== null));
      await new Promise((r) => setTimeout(r, 300)); // nothing more moves while the two stall
      expect(calls.filter((c) => c.served)).toHaveLength(2);
      const refused = calls.filter((c) => c.error !== null);
      expect(refused).toHaveLength(1);
      expect(refused[0].error!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(refused[0].error!.details).toBe('etcdserver: too many requests');
      const gauges = async (): Promise<string> => {
        const text = await source.metrics(1);
        return ['synod_backups_running', 'synod_backups_waiting'].map((name) => text.split('\n').find((l) => l.startsWith(`${name} `))).join(', ');
      };
      expect(await gauges()).toBe('synod_backups_running 2, synod_backups_waiting 8');
      // One of the stalled backups cancelled by its client: the first waiting one is served.
      calls.find((c) => c.served)!.call.cancel();
      await until('a waiting backup served', () => calls.filter((c) => c.served).length === 3);
    } finally {
      for (const c of calls) c.call.cancel();
      client.close();
    }
    const deadline = Date.now() + 10_000;
    let text = await source.metrics(1);
    while (!text.includes('synod_backups_running 0') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      text = await source.metrics(1);
    }
    expect(text).toContain('synod_backups_running 0');
    expect(text).toContain('synod_backups_waiting 0');
    expect(text).toContain('synod_hashes_running 0'); // Hash and HashKV have their own slots
    // Every slot is free again: a whole backup through the same member.
    const again = path.join(source.rootDir, 'after-slots.db');
    const saved = await etcdctl(source.endpointOf(1), ['snapshot', 'save', again]);
    expect(saved.code, saved.stderr).toBe(0);
  }, 60_000);

  it('is an etcd snapshot: etcdctl snapshot status reads it (bbolt\'s integrity check included)', async () => {
    const status = JSON.parse(await etcdctlOk(source.endpointOf(0), ['snapshot', 'status', file, '-w', 'json'])) as { revision: number; totalKey: number };
    expect(status.revision).toBe(revisions.at(-1));
    expect(status.totalKey).toBeGreaterThan(10);
  });

  it('etcd itself restores it (etcdctl snapshot restore, then etcd 3.4 serves the same keys at the same revisions)', async () => {
    const etcd = await EtcdReference.start({ restoreFrom: file });
    try {
      for (const r of revisions) {
        const got = await everything(etcd.endpoint, r);
        expect(got.kvs, `at revision ${r}`).toEqual(expected.get(r)!.kvs);
      }
      const below = await etcdctl(etcd.endpoint, ['get', 'k/1', `--rev=${compactedAt - 1}`]);
      expect(below.stderr).toContain('etcdserver: mvcc: required revision has been compacted');
      const leases = await etcdctlOk(etcd.endpoint, ['lease', 'list']);
      expect(leases).toMatch(/found 1 leases/);
      // And etcd's HashKV of it is Synod's, number for number (the same records, byte for byte).
      const hashAt = async (endpoint: string, r: number): Promise<number> =>
        (JSON.parse(await etcdctlOk(endpoint, ['endpoint', 'hashkv', `--rev=${r}`, '-w', 'json'])) as Array<{ HashKV: { hash: number } }>)[0].HashKV.hash;
      for (const r of revisions.filter((x) => x > compactedAt)) expect(await hashAt(etcd.endpoint, r), `hashkv at ${r}`).toBe(await hashAt(source.endpointOf(0), r));
    } finally {
      await etcd.stop();
    }
  });
});

describe('synod snapshot restore', () => {
  it('a new 3-member cluster serves the same keys at the same revisions, current and past, and continues from there', async () => {
    const restored = await ProcessCluster.unstarted({ size: 3 });
    others.push(restored);
    await restoreChecked(restored, file);
    const latest = revisions.at(-1)!;
    for (let m = 0; m < 3; m++) {
      const ep = restored.endpointOf(m);
      for (const r of revisions) expect(await everything(ep, r), `member ${m} at revision ${r}`).toEqual(expected.get(r));
      expect((await everything(ep)).revision).toBe(latest);
      const below = await etcdctl(ep, ['get', 'k/3', `--rev=${compactedAt - 1}`]);
      expect(below.stderr).toContain('required revision has been compacted');
    }
    // The lease came along and still holds its key; the old membership did not.
    expect(await etcdctlOk(restored.endpoints, ['lease', 'list'])).toMatch(/found 1 leases/);
    const members = await etcdctlOk(restored.endpoints, ['member', 'list']);
    for (const m of restored.members) expect(members).toContain(`http://127.0.0.1:${m.peerPort}`);
    for (const m of source.members) expect(members).not.toContain(`http://127.0.0.1:${m.peerPort}`);
    // New writes continue the revision sequence.
    expect(await etcdctlOk(restored.endpoints, ['put', 'new', 'after restore'])).toBe('OK\n');
    expect((await everything(restored.endpointOf(2))).revision).toBe(latest + 1);
  }, 90_000);

  it('a single-member cluster from the same file serves the same data', async () => {
    const single = await ProcessCluster.unstarted({ size: 1 });
    others.push(single);
    await restoreChecked(single, file);
    for (const r of revisions) expect(await everything(single.endpoints, r)).toEqual(expected.get(r));
  }, 60_000);

  it('a backup in the form earlier versions wrote (Synod\'s record stream) still restores', async () => {
    // The same records, written as a backup taken before 2026-12-06 was.
    const legacy = path.join(source.rootDir, 'legacy-backup.db');
    const records = async function* (): AsyncGenerator<[Buffer, Buffer]> {
      for (const batch of readEtcdSnapshot(file)) yield* batch;
    };
    await pipeline(Readable.from(encodeBackup(readEtcdSnapshotHeader(file)!, records())), fs.createWriteStream(legacy));
    expect(fs.readFileSync(legacy).subarray(0, 8).toString()).toBe('SYNODBAK');
    const single = await ProcessCluster.unstarted({ size: 1 });
    others.push(single);
    await restoreChecked(single, legacy);
    for (const r of revisions) expect(await everything(single.endpoints, r)).toEqual(expected.get(r));
  }, 60_000);

  it('a 16-shard cluster from the same file (--shards 16) serves the same keys at the same revisions, history included', async () => {
    const sharded = await ProcessCluster.unstarted({ size: 3, memberArgs: () => ['--shards', '16'] });
    others.push(sharded);
    await restoreChecked(sharded, file, ['--shards', '16']);
    // The keys and their history are split over the shards by slot; every read at a past revision sees
    // the same keys as the one group did (the header is a fresh oracle revision: compared apart).
    for (const r of revisions) {
      const got = await everything(sharded.endpointOf(r % 3), r);
      expect({ kvs: got.kvs, count: got.count }, `at revision ${r}`).toEqual({ kvs: expected.get(r)!.kvs, count: expected.get(r)!.count });
    }
    const below = await etcdctl(sharded.endpoints, ['get', 'k/3', `--rev=${compactedAt - 1}`]);
    expect(below.stderr).toContain('required revision has been compacted');
    const put = JSON.parse(await etcdctlOk(sharded.endpoints, ['put', 'new', 'after restore', '-w', 'json'])) as { header: { revision: number } };
    expect(put.header.revision).toBeGreaterThan(revisions.at(-1)!);
    expect(await etcdctlOk(sharded.endpoints, ['lease', 'list'])).toMatch(/found 1 leases/);
  }, 90_000);

  it('refuses a damaged file, a non-empty data dir, and a name missing from --initial-cluster', async () => {
    const dir = path.join(source.rootDir, 'restore-checks');
    const damaged = path.join(source.rootDir, 'damaged.db');
    const bytes = fs.readFileSync(file);
    bytes[100] ^= 0xff;
    fs.writeFileSync(damaged, bytes);
    const bad = await synodCli(['snapshot', 'restore', damaged, '--name', 'a', '--data-dir', dir, '--initial-cluster', 'a=http://127.0.0.1:1']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('sha256 mismatch');
    expect(fs.existsSync(dir)).toBe(false);
    const notListed = await synodCli(['snapshot', 'restore', file, '--name', 'b', '--data-dir', dir, '--initial-cluster', 'a=http://127.0.0.1:1']);
    expect(notListed.stderr).toContain('no member named "b"');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'something'), 'x');
    const notEmpty = await synodCli(['snapshot', 'restore', file, '--name', 'a', '--data-dir', dir, '--initial-cluster', 'a=http://127.0.0.1:1']);
    expect(notEmpty.stderr).toContain('exists and is not empty');
  }, 60_000);
});

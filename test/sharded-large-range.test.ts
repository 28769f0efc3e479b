// Ranges larger than one peer message on a sharded cluster (real processes: 3 members, 16 shards). A
// multi-shard read is made at one oracle revision on each shard's leader, most of them on other members,
// and a single-shard read through a member that does not host the shard is forwarded: both answers cross
// the peer port, whose messages are capped at 64 MiB. etcd answers such a read (its server sends up to
// 2 GiB), so Synod must too: past 16 MiB a shard's part comes in pages (server/shard/range-pages.ts).
// 72 values of 1 MiB on one shard ({big} hash tag, 72 MiB) and small keys on the others, then through
// every member: everything (count and every value exact), key order with a limit (stops early), sorted by
// value descending with a limit (a top-k over every page), keys only; then through a member started with
// --test-forward-shards all, the big shard alone (its forwarded answer is larger than a peer message, as
// etcd's may be) and a range delete of it with --prev-kv.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdClients } from '../server/etcd/proto.ts';
import { ProcessCluster } from './support/process-cluster.ts';
import { KvClient, type WireKv } from './support/kv-client.ts';

const SHARDS = 16;
const BIG_VALUES = 72;
const MIB = 1024 * 1024;
const FORWARDING = 2;

let cluster: ProcessCluster;

interface RangeReply {
  kvs: WireKv[];
  more: boolean;
  count: string;
}

/** A KV call through member `i` on a client that takes answers of any size (as etcdctl's does). */
function call<T>(i: number, method: 'Range' | 'DeleteRange', req: object): Promise<T> {
  const client = new (etcdClients().KV)(cluster.endpointOf(i), grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
  type Unary = (r: object, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: Error | null, r: T) => void) => void;
  return new Promise<T>((resolve, reject) => {
    (client as unknown as Record<string, Unary>)[method].call(client, req, new grpc.Metadata(), { deadline: Date.now() + 60_000 }, (err, res) => {
      client.close();
      if (err) reject(err);
      else resolve(res);
    });
  });
}

/**
 * A Range through member `i`, asked again on UNAVAILABLE (a shard between leaders: moving 72 MiB on a loaded
 * machine can cost an election) as etcd's clients retry reads; anything else fails the test.
 */
async function range(i: number, req: object): Promise<RangeReply> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call<RangeReply>(i, 'Range', req);
    } catch (err) {
      if ((err as grpc.ServiceError).code !== grpc.status.UNAVAILABLE || attempt === 5) throw err;
      console.log(`range through member ${i}, attempt ${attempt}: ${(err as Error).message}; asking again`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** The name of the member leading the big keys' shard now (GET /placement), or null while none leads it. */
async function bigShardLeader(): Promise<string | null> {
  const metrics = `http://127.0.0.1:${cluster.members[0].metricsPort}`;
  const { shard } = (await (await fetch(`${metrics}/placement?key=${encodeURIComponent(bigKey(0))}`)).json()) as { shard: number };
  const view = (await (await fetch(`${metrics}/placement`)).json()) as { members: Array<{ id: string; name: string }>; shards: Array<{ id: number; leader: string | null }> };
  const leader = view.shards.find((s) => s.id === shard)?.leader ?? null;
  return view.members.find((m) => m.id === leader)?.name ?? null;
}

const bigKey = (i: number): string => `{big}/${String(i).padStart(3, '0')}`;
const bigValue = (i: number): Buffer => Buffer.alloc(MIB, i);

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3, memberArgs: (i) => ['--shards', String(SHARDS), ...(i === FORWARDING ? ['--test-forward-shards', 'all'] : [])] });
  const kv = new KvClient(cluster.endpointOf(0));
  try {
    for (let i = 0; i < BIG_VALUES; i++) await kv.put(bigKey(i), bigValue(i), {}, 20_000);
    for (let i = 0; i < 40; i++) await kv.put(`small/${i}`, `v${i}`);
  } finally {
    kv.close();
  }
}, 180_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe('a range of more than one peer message', () => {
  it('over every shard, through every member: every key and value, as one store would answer', async () => {
    // A member reads the big shard in pages when its leader is another member, and says so on /metrics.
    // Leaderships may move between reads (the leader balancer), so each read is judged by who led the
    // shard around it.
    const pagesOf = async (i: number): Promise<number> => Number(/^synod_shard_read_pages_total (\d+)$/m.exec(await cluster.metrics(i))?.[1] ?? -1);
    let pagedReads = 0;
    for (let i = 0; i < 3; i++) {
      const leaderBefore = await bigShardLeader();
      const pagesBefore = await pagesOf(i);
      expect(pagesBefore).toBeGreaterThanOrEqual(0);
      const all = await range(i, { key: Buffer.from([0]), range_end: Buffer.from([0]) });
      expect(Number(all.count)).toBe(BIG_VALUES + 40);
      expect(all.kvs).toHaveLength(BIG_VALUES + 40);
      expect(all.more).toBe(false);
      const keys = all.kvs.map((kv) => kv.key.toString());
      expect(keys).toEqual([...keys].sort());
      const big = all.kvs.filter((kv) => kv.key.toString().startsWith('{big}'));
      expect(big.map((kv) => kv.key.toString())).toEqual(Array.from({ length: BIG_VALUES }, (_, n) => bigKey(n)));
      big.forEach((kv, n) => expect(kv.value.equals(bigValue(n))).toBe(true));
      const leaderAfter = await bigShardLeader();
      if (leaderBefore !== null && leaderBefore === leaderAfter && leaderBefore !== cluster.members[i].name) {
        expect(await pagesOf(i), `member ${i} read the big shard from ${leaderBefore}`).toBeGreaterThan(pagesBefore);
        pagedReads++;
      }
    }
    expect(pagedReads).toBeGreaterThanOrEqual(1);
  }, 120_000);

  it('key order with a limit, a top-k by value, keys only: each as one store would answer', async () => {
    const limited = await range(0, { key: Buffer.from('{'), range_end: Buffer.from([0]), limit: 30 });
    expect(limited.kvs.map((kv) => kv.key.toString())).toEqual(Array.from({ length: 30 }, (_, n) => bigKey(n)));
    expect(limited).toMatchObject({ more: true, count: String(BIG_VALUES) });
    // Values descending (ties by key ascending, as etcd's stable sort of a key-ordered scan): the small
    // values ("v…") first, then the big ones (byte n repeated) from the last.
    const top = await range(1, { key: Buffer.from([0]), range_end: Buffer.from([0]), limit: 60, sort_order: 'DESCEND', sort_target: 'VALUE' });
    const all = (await range(0, { key: Buffer.from([0]), range_end: Buffer.from([0]) })).kvs;
    const want = [...all].sort((a, b) => Buffer.compare(b.value, a.value) || Buffer.compare(a.key, b.key)).slice(0, 60);
    expect(top.kvs.map((kv) => kv.key.toString())).toEqual(want.map((kv) => kv.key.toString()));
    expect(top.kvs.filter((kv) => kv.key.toString().startsWith('{big}'))).toHaveLength(20);
    expect(top).toMatchObject({ more: true, count: String(BIG_VALUES + 40) });
    const keysOnly = await range(2, { key: Buffer.from([0]), range_end: Buffer.from([0]), keys_only: true });
    expect(keysOnly.kvs).toHaveLength(BIG_VALUES + 40);
  }, 120_000);

  it('the big shard alone through a member that forwards every request: its whole answer forwarded', async () => {
    const mine = await range(FORWARDING, { key: Buffer.from('{big}/'), range_end: Buffer.from('{big}0') });
    expect(mine.kvs).toHaveLength(BIG_VALUES);
    mine.kvs.forEach((kv, n) => expect(kv.value.equals(bigValue(n))).toBe(true));
  }, 120_000);

  it('a forwarded range delete answers with every previous key-value (last: it deletes the big keys)', async () => {
    const deleted = await call<{ deleted: string; prev_kvs: WireKv[] }>(FORWARDING, 'DeleteRange', { key: Buffer.from('{big}/'), range_end: Buffer.from('{big}0'), prev_kv: true });
    expect(deleted.deleted).toBe(String(BIG_VALUES));
    expect(deleted.prev_kvs).toHaveLength(BIG_VALUES);
    deleted.prev_kvs.forEach((kv, n) => expect(kv.value.equals(bigValue(n))).toBe(true));
    expect((await range(0, { key: Buffer.from('{big}/'), range_end: Buffer.from('{big}0'), count_only: true })).count).toBe('0');
  }, 120_000);
});

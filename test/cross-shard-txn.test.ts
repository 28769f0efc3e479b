// Cross-shard transactions on real processes (issue 15, docs/transactions.md): 3 members, 4 shards.
// Member 0 coordinates with a TEST-ONLY pause between its prepares and its answer and resolutions
// (--test-txn-pause-before-decision-ms), which lets the test kill it -9 exactly there: every participant
// is prepared, so the transaction is committed (parallel commits), and the participants' recoverers
// resolve it so — at one revision — with no reader waiting longer than 2 s; a client
// that gives up mid-commit leaves the transaction whole (committed or aborted, never half, never stuck);
// a txn over more ops than --max-txn-ops is refused as etcd refuses it; a recoverer's fence goes once
// the shard leaders move the fence horizon past its transaction (--test-txn-fence-keep-ms shortens
// the five minutes a fence is kept); many transactions over the same two shards on disjoint keys are
// prepared side by side and all commit; a put on a prepared transaction's key waits for its decision,
// one on another key of the same shard does not, nor one behind a lease revoke's sweep of that shard.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { everyShardServes } from './support/every-shard-serves.ts';
import { KvClient } from './support/kv-client.ts';
import { LeaseLockClient } from './support/lease-lock-client.ts';
import { eventually } from './support/eventually.ts';
import { WatchStream } from './support/watch-client.ts';
import { SlotMap } from '../server/routing/slots.ts';
import { ShardPeerChannels, shardKvOnPeer } from '../server/shard/peer-shard-rpc.ts';
import { encodeForwardedEntry } from '../server/shard/forwarded-entry.ts';
import { FIRST_SHARD_GROUP_ID } from '../server/cli/shard-hosting.ts';

const SHARDS = 4;
const PAUSE_MS = 4_000;
/** Fences go once their transaction is this old (TEST-ONLY knob; five minutes by default). */
const FENCE_KEEP_MS = 2_000;
let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start({
    size: 3,
    memberArgs: (i) => ['--shards', String(SHARDS), '--test-txn-fence-keep-ms', String(FENCE_KEEP_MS), ...(i === 0 ? ['--test-txn-pause-before-decision-ms', String(PAUSE_MS)] : [])],
  });
  // Ready members, but a shard may still be electing its first leader on a loaded machine.
  await everyShardServes(cluster.endpointOf(1), SHARDS);
}, 90_000);

afterAll(async () => {
  await cluster?.destroy();
});

async function shardOf(key: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${cluster.members[1].metricsPort}/placement?key=${encodeURIComponent(key)}`);
  return ((await res.json()) as { shard: number }).shard;
}

/** Two keys with prefix `prefix` on different shards. */
async function keysOnTwoShards(prefix: string): Promise<[string, string]> {
  const first = `${prefix}0`;
  const shard = await shardOf(first);
  for (let i = 1; i < 100; i++) if ((await shardOf(`${prefix}${i}`)) !== shard) return [first, `${prefix}${i}`];
  throw new Error('no two shards found');
}

/** A key with prefix `prefix` on the shard of `key`. */
async function keyOnShardOf(key: string, prefix: string): Promise<string> {
  const shard = await shardOf(key);
  for (let i = 0; i < 100; i++) if ((await shardOf(`${prefix}${i}`)) === shard) return `${prefix}${i}`;
  throw new Error(`no key ${prefix}* on the shard of ${key}`);
}

const transfer = (a: string, b: string, value: string): object => ({
  compare: [],
  success: [
    { request_put: { key: Buffer.from(a), value: Buffer.from(value) } },
    { request_put: { key: Buffer.from(b), value: Buffer.from(value) } },
  ],
  failure: [],
});

async function values(kv: KvClient, keys: string[]): Promise<string[]> {
  return Promise.all(keys.map(async (k) => (await kv.range(k, {}, 10_000)).kvs[0]?.value.toString() ?? '<none>'));
}

/** A counter or gauge summed over every member's /metrics. */
async function metricSum(name: string): Promise<number> {
  let total = 0;
  for (let i = 0; i < cluster.members.length; i++) total += Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await cluster.metrics(i))?.[1] ?? NaN);
  return total;
}

/**
 * A transfer of value 'txn' to `a` and `b` through member 0, which pauses PAUSE_MS between its prepares and
 * its decision: returns once it is prepared on every replica (two participants, three replicas each: 4
 * shards on 3 members, every member hosts every shard), with the prepared gauge's sum before it, when it
 * was seen prepared, and its answer to come.
 */
async function pausedTransfer(kv0: KvClient, a: string, b: string): Promise<{ preparedBefore: number; preparedAt: number; txnAnswer: Promise<{ header: { revision: string }; succeeded: boolean; at: number }> }> {
  const preparedBefore = await metricSum('synod_cross_shard_txns_prepared');
  const txnAnswer = kv0.txn(transfer(a, b, 'txn'), 20_000).then((r) => ({ ...r, at: Date.now() }));
  await eventually('the transaction is prepared on every replica', async () => expect(await metricSum('synod_cross_shard_txns_prepared')).toBe(preparedBefore + 6), PAUSE_MS - 500, 50);
  return { preparedBefore, preparedAt: Date.now(), txnAnswer };
}

/** Committed cross-shard transactions whose prepares decided their branch, over every member. */
const decidedAtPrepare = (): Promise<number> => metricSum('synod_cross_shard_txns_decided_at_prepare_total');

/** Every member's synod_cross_shard_txn_aborted_records (fences held by its shard replicas). */
async function fencesPerMember(): Promise<number[]> {
  return Promise.all(cluster.members.map(async (_, i) => Number(/^synod_cross_shard_txn_aborted_records (\S+)$/m.exec(await cluster.metrics(i))?.[1] ?? NaN)));
}

describe('cross-shard transactions under coordinator faults', () => {
  it('a recoverer\'s fence is kept until the fence horizon passes its transaction, then goes from every replica', async () => {
    // The fence a recoverer lays on a participant its transaction never prepared: txn_recover through the
    // ShardKv peer RPC, as a shard leader recovering an overdue transaction sends it.
    const channels = new ShardPeerChannels({ peerAddress: (id) => (id === 1 ? `127.0.0.1:${cluster.members[1].peerPort}` : undefined) });
    try {
      const txnId = `fence-test-${Date.now()}`;
      const entry = encodeForwardedEntry({ txn_recover: { txn_id: txnId, abort_pending: false, priority: String(Date.now()) } }, undefined);
      const outcome = await shardKvOnPeer(channels, 1, { groupId: FIRST_SHARD_GROUP_ID, deadlineMs: Date.now() + 10_000, op: { kind: 'write', entry, internal: true } });
      expect(outcome.kind).toBe('done');
      await eventually('the fence is on every replica', async () => expect(await fencesPerMember()).toEqual([1, 1, 1]), 10_000, 100);
      const laidAt = Date.now();
      // The leader moves the horizon to FENCE_KEEP_MS ago at most every FENCE_KEEP_MS (hosting rounds every
      // 500 ms): the fence goes between FENCE_KEEP_MS and about three times that after it was laid.
      await eventually('the fence is dropped on every replica', async () => expect(await fencesPerMember()).toEqual([0, 0, 0]), 15_000, 100);
      const goneAfterMs = Date.now() - laidAt;
      console.log(`fence dropped ${goneAfterMs} ms after it was laid (kept for ${FENCE_KEEP_MS} ms)`);
      expect(goneAfterMs).toBeGreaterThanOrEqual(FENCE_KEEP_MS - 1_000);
    } finally {
      channels.close();
    }
  });

  it('a coordinator killed -9 after its prepares: committed by the recoverers at one revision, no reader blocked past 2 s', async () => {
    const [a, b] = await keysOnTwoShards('kill/');
    const kv1 = new KvClient(cluster.endpointOf(1));
    const kv0 = new KvClient(cluster.endpointOf(0));
    try {
      await kv1.put(a, 'before');
      await kv1.put(b, 'before');
      const pending = kv0.txn(transfer(a, b, 'after'), 20_000).catch((e: unknown) => e);
      // Its prepares are laid within a few hundred ms; then it pauses for PAUSE_MS before deciding.
      await new Promise((r) => setTimeout(r, 700));
      await cluster.kill9(0);
      const killedAt = Date.now();
      const [readA, readB] = await Promise.all([a, b].map(async (k) => {
        const r = await kv1.range(k, {}, 10_000);
        return { value: r.kvs[0]?.value.toString(), modRevision: r.kvs[0]?.mod_revision, ms: Date.now() - killedAt };
      }));
      console.log(`reads after the coordinator's kill: ${a} in ${readA.ms} ms, ${b} in ${readB.ms} ms`);
      expect(readA.ms).toBeLessThan(2_000);
      expect(readB.ms).toBeLessThan(2_000);
      // Every participant was prepared when its coordinator died: committed, both keys at one revision.
      expect([readA.value, readB.value]).toEqual(['after', 'after']);
      expect(readA.modRevision).toBe(readB.modRevision);
      expect(await pending).toBeInstanceOf(Error);
      // Both shards take writes again, across shards too.
      const ok = await kv1.txn(transfer(a, b, 'later'), 10_000);
      expect(ok.succeeded).toBe(true);
      expect(await values(kv1, [a, b])).toEqual(['later', 'later']);
    } finally {
      kv0.close();
      kv1.close();
    }
    cluster.startMember(0);
    await cluster.waitReady();
  }, 60_000);

  it('a client that gives up mid-commit leaves the transaction whole and nothing stuck', async () => {
    const [a, b] = await keysOnTwoShards('gone/');
    const kv2 = new KvClient(cluster.endpointOf(2));
    try {
      await kv2.put(a, 'before');
      await kv2.put(b, 'before');
      // Through member 2 (no pause): the client's deadline is far shorter than the commit.
      const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => kv2.txn(transfer(a, b, `v${i}`), 2 + (i % 5))));
      const gaveUp = results.filter((r) => r.status === 'rejected').length;
      const started = Date.now();
      // One read of both keys, at one revision: a transaction whose client gave up may still commit (its
      // prepares were on their way), so two separate reads could straddle its commit.
      const both = await kv2.range('gone/', { range_end: Buffer.from('gone0') }, 10_000);
      const valueOf = (k: string): string => both.kvs.find((kv) => kv.key.toString() === k)?.value.toString() ?? '<none>';
      const [va, vb] = [valueOf(a), valueOf(b)];
      console.log(`${gaveUp} of 20 clients gave up mid-commit; a read then took ${Date.now() - started} ms and found ${va}/${vb}`);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(va).toBe(vb);
      const after = await kv2.txn(transfer(a, b, 'after'), 10_000);
      expect(after.succeeded).toBe(true);
    } finally {
      kv2.close();
    }
  }, 60_000);

  it('a coordinator killed -9 right after its commits leaves no record behind: the shard leaders finish what it left', async () => {
    const recordsOn = async (i: number): Promise<number> => Number(/^synod_cross_shard_txn_committed_records (\d+)/m.exec(await cluster.metrics(i))?.[1] ?? NaN);
    const finishedOn = async (i: number): Promise<number> => Number(/^synod_cross_shard_txns_finished_total (\d+)/m.exec(await cluster.metrics(i))?.[1] ?? NaN);
    // A committed transaction's records go with its coordinator's forgets, which wait up to 200 ms for a
    // later resolve to carry them: killed just after the answers, member 2 leaves records on the shards.
    let leftBehind = 0;
    for (let round = 0; round < 5 && leftBehind === 0; round++) {
      const pairs = await Promise.all(Array.from({ length: 4 }, (_, i) => keysOnTwoShards(`left${round}-${i}/`)));
      const kv2 = new KvClient(cluster.endpointOf(2));
      try {
        await Promise.all(pairs.map(([a, b]) => kv2.txn(transfer(a, b, 'committed'), 10_000)));
      } finally {
        kv2.close();
      }
      await cluster.kill9(2);
      leftBehind = (await recordsOn(0)) + (await recordsOn(1));
      if (leftBehind === 0) {
        cluster.startMember(2);
        await cluster.waitReady();
      }
    }
    console.log(`records left behind by the killed coordinator: ${leftBehind} on members 0 and 1`);
    expect(leftBehind).toBeGreaterThan(0);
    // The leaders of the shards holding them finish the transactions (resolve everywhere, then forget)
    // once the records look stale; with member 2 down, members 0 and 1 hold a quorum of every shard.
    await eventually('no cross-shard transaction records left', async () => {
      const left = (await recordsOn(0)) + (await recordsOn(1));
      if (left !== 0) throw new Error(`${left} records still held`);
    }, 30_000, 500);
    expect((await finishedOn(0)) + (await finishedOn(1))).toBeGreaterThan(0);
    cluster.startMember(2);
    await cluster.waitReady();
  }, 120_000);

  it('a txn over more ops than --max-txn-ops is refused with etcd\'s error', async () => {
    const kv2 = new KvClient(cluster.endpointOf(2));
    try {
      const many = { compare: [], success: Array.from({ length: 129 }, (_, i) => ({ request_put: { key: Buffer.from(`many/${i}`), value: Buffer.from('x') } })), failure: [] };
      await expect(kv2.txn(many, 10_000)).rejects.toMatchObject({ code: 3, details: 'etcdserver: too many operations in txn request' });
      expect((await kv2.range('many/', { range_end: Buffer.from('many0') }, 10_000)).kvs).toHaveLength(0);
    } finally {
      kv2.close();
    }
  }, 30_000);

  it('resolutions held back by the shard leaders: a read right after sees the transaction, a write rides with them, and with nothing after they still go', async () => {
    const [a, b] = await keysOnTwoShards('held/');
    const watch = new WatchStream(cluster.endpointOf(2));
    const kv1 = new KvClient(cluster.endpointOf(1));
    const kv3 = new KvClient(cluster.endpointOf(0));
    try {
      watch.create({ key: Buffer.from(a) });
      expect((await watch.next(10_000)).created).toBe(true);
      const heldBefore = await metricSum('synod_cross_shard_txn_resolves_held_total');
      // A linearizable read through another member right after the answer: it sees the whole transaction.
      const first = await kv1.txn(transfer(a, b, 'r1'), 10_000);
      expect(await values(kv3, [a, b])).toEqual(['r1', 'r1']);
      // A write to one participant's shard right after: it goes in behind the resolution, above C.
      const second = await kv1.txn(transfer(a, b, 'r2'), 10_000);
      const put = await kv1.put(a, 'after', {}, 10_000);
      expect(Number(put.header.revision)).toBeGreaterThan(Number(second.header.revision));
      // Nothing follows the third: its resolutions go on their own, and every replica applies them.
      const third = await kv1.txn(transfer(a, b, 'r3'), 10_000);
      for (let i = 0; i < cluster.members.length; i++) {
        const kv = new KvClient(cluster.endpointOf(i));
        try {
          await eventually(`member ${i} applied the third transaction`, async () => {
            const got = await Promise.all([a, b].map(async (k) => (await kv.range(k, { serializable: true }, 10_000)).kvs[0]?.mod_revision));
            expect(got).toEqual([third.header.revision, third.header.revision]);
          }, 5_000, 10);
        } finally {
          kv.close();
        }
      }
      // The watcher on one participant's key saw each write once, at its transaction's revision, in order.
      const seen: Array<[string, string]> = [];
      while (seen.length < 4) for (const e of (await watch.next(5_000)).events) seen.push([e.kv.value.toString(), e.kv.mod_revision]);
      expect(seen).toEqual([
        ['r1', first.header.revision],
        ['r2', second.header.revision],
        ['after', put.header.revision],
        ['r3', third.header.revision],
      ]);
      // The leaders held resolutions back (each shard's leader, for a transaction prepared there).
      expect(await metricSum('synod_cross_shard_txn_resolves_held_total')).toBeGreaterThan(heldBefore);
      expect(Number.isInteger(await metricSum('synod_cross_shard_txn_resolves_alone_total'))).toBe(true);
      await eventually('no transaction left prepared', async () => expect(await metricSum('synod_cross_shard_txns_prepared')).toBe(0), 10_000, 50);
    } finally {
      watch.close();
      kv1.close();
      kv3.close();
    }
  }, 60_000);

  it('compares on two shards decided by the prepares: each branch answers as etcd\'s, at one revision, with no read first', async () => {
    const [a, b] = await keysOnTwoShards('cas/');
    const kv = new KvClient(cluster.endpointOf(1));
    try {
      await kv.put(a, '1');
      const bRev = (await kv.put(b, '1')).header.revision;
      const before = await decidedAtPrepare();
      const cas = (aValue: string, bMod: string): object => ({
        compare: [
          { result: 'EQUAL', target: 'VALUE', key: Buffer.from(a), value: Buffer.from(aValue) },
          { result: 'EQUAL', target: 'MOD', key: Buffer.from(b), mod_revision: bMod },
        ],
        success: [{ request_put: { key: Buffer.from(a), value: Buffer.from('2'), prev_kv: true } }, { request_put: { key: Buffer.from(b), value: Buffer.from('2') } }],
        failure: [{ request_range: { key: Buffer.from(a) } }, { request_range: { key: Buffer.from(b) } }],
      });
      type Answer = { header: { revision: string }; succeeded: boolean; responses: Array<{ response_put?: { prev_kv: { value: Buffer } | null }; response_range?: { kvs: Array<{ value: Buffer; mod_revision: string }> } }> };
      // Both compares hold: the success branch, its prev_kv from before, both keys at the answer's revision.
      const won = (await kv.txn(cas('1', bRev), 10_000)) as unknown as Answer;
      expect(won.succeeded).toBe(true);
      expect(won.responses[0].response_put?.prev_kv?.value.toString()).toBe('1');
      const [ra, rb] = await Promise.all([kv.range(a), kv.range(b)]);
      expect([ra.kvs[0].value.toString(), rb.kvs[0].value.toString()]).toEqual(['2', '2']);
      expect([ra.kvs[0].mod_revision, rb.kvs[0].mod_revision]).toEqual([won.header.revision, won.header.revision]);
      // Now b's compare fails on its shard alone (a's still holds on the other): the failure branch
      // everywhere, its ranges showing the state the success branch left.
      const lost = (await kv.txn(cas('2', bRev), 10_000)) as unknown as Answer;
      expect(lost.succeeded).toBe(false);
      expect(lost.responses.map((r) => r.response_range?.kvs.map((x) => [x.value.toString(), x.mod_revision]))).toEqual([[['2', won.header.revision]], [['2', won.header.revision]]]);
      // A failure branch that writes: both keys at one revision, and nothing of the success branch.
      const failing = {
        compare: [{ result: 'EQUAL', target: 'VALUE', key: Buffer.from(a), value: Buffer.from('never') }],
        success: [{ request_put: { key: Buffer.from(a), value: Buffer.from('s') } }],
        failure: [{ request_put: { key: Buffer.from(a), value: Buffer.from('f') } }, { request_put: { key: Buffer.from(b), value: Buffer.from('f'), prev_kv: true } }],
      };
      const wrote = (await kv.txn(failing, 10_000)) as unknown as Answer;
      expect(wrote.succeeded).toBe(false);
      expect(wrote.responses[1].response_put?.prev_kv?.value.toString()).toBe('2');
      const [fa, fb] = await Promise.all([kv.range(a), kv.range(b)]);
      expect([fa.kvs[0].value.toString(), fb.kvs[0].value.toString()]).toEqual(['f', 'f']);
      expect([fa.kvs[0].mod_revision, fb.kvs[0].mod_revision]).toEqual([wrote.header.revision, wrote.header.revision]);
      expect(await decidedAtPrepare()).toBeGreaterThanOrEqual(before + 3);
    } finally {
      kv.close();
    }
  }, 30_000);

  it('a coordinator killed -9 after prepares that decide the failure branch: the recoverers commit that branch', async () => {
    const [a, b] = await keysOnTwoShards('killcas/');
    const kv1 = new KvClient(cluster.endpointOf(1));
    const kv0 = new KvClient(cluster.endpointOf(0));
    try {
      await kv1.put(a, 'before');
      await kv1.put(b, 'before');
      // b's compare fails at its prepare; only the prepares know it when the coordinator dies.
      const req = {
        compare: [{ result: 'EQUAL', target: 'VALUE', key: Buffer.from(a), value: Buffer.from('before') }, { result: 'EQUAL', target: 'VALUE', key: Buffer.from(b), value: Buffer.from('other') }],
        success: [{ request_put: { key: Buffer.from(a), value: Buffer.from('success') } }, { request_put: { key: Buffer.from(b), value: Buffer.from('success') } }],
        failure: [{ request_put: { key: Buffer.from(a), value: Buffer.from('failure') } }, { request_put: { key: Buffer.from(b), value: Buffer.from('failure') } }],
      };
      const pending = kv0.txn(req, 20_000).catch((e: unknown) => e);
      // Its prepares are laid within a few hundred ms; then it pauses before answering and resolving.
      await new Promise((r) => setTimeout(r, 700));
      await cluster.kill9(0);
      const [ra, rb] = await Promise.all([kv1.range(a, {}, 10_000), kv1.range(b, {}, 10_000)]);
      expect([ra.kvs[0]?.value.toString(), rb.kvs[0]?.value.toString()]).toEqual(['failure', 'failure']);
      expect(ra.kvs[0].mod_revision).toBe(rb.kvs[0].mod_revision);
      expect(await pending).toBeInstanceOf(Error);
    } finally {
      kv0.close();
      kv1.close();
    }
    cluster.startMember(0);
    await cluster.waitReady();
  }, 60_000);

  it('a compare over a hash-tagged range (one shard) is decided by the prepares too', async () => {
    const kv = new KvClient(cluster.endpointOf(2));
    try {
      const tagShard = await shardOf('{cmp}/1');
      let b = 'cmpother/0';
      for (let i = 1; (await shardOf(b)) === tagShard; i++) b = `cmpother/${i}`;
      await kv.put('{cmp}/1', 'x');
      const last = (await kv.put('{cmp}/2', 'x')).header.revision;
      const before = await decidedAtPrepare();
      const txn = (below: string): object => ({
        compare: [{ result: 'LESS', target: 'MOD', key: Buffer.from('{cmp}/'), range_end: Buffer.from('{cmp}0'), mod_revision: below }],
        success: [{ request_put: { key: Buffer.from(b), value: Buffer.from('r') } }, { request_put: { key: Buffer.from('{cmp}/3'), value: Buffer.from('r') } }],
        failure: [{ request_range: { key: Buffer.from('{cmp}/'), range_end: Buffer.from('{cmp}0'), count_only: true } }, { request_range: { key: Buffer.from(b) } }],
      });
      // Every key of the range last written at or below `last`: the compare holds.
      const held = await kv.txn(txn(String(Number(last) + 1)), 10_000);
      expect(held.succeeded).toBe(true);
      // Now one of them is above it: the failure branch, counting the range's three keys.
      const failed = (await kv.txn(txn(String(Number(last) + 1)), 10_000)) as unknown as { succeeded: boolean; responses: Array<{ response_range?: { count: string } }> };
      expect(failed.succeeded).toBe(false);
      expect(failed.responses[0].response_range?.count).toBe('3');
      expect(await decidedAtPrepare()).toBeGreaterThanOrEqual(before + 2);
    } finally {
      kv.close();
    }
  }, 30_000);

  it('an etcd refusal in the branch not taken does not answer the client: the branch is chosen first and the txn goes through', async () => {
    const [a, b] = await keysOnTwoShards('refusal/');
    const kv = new KvClient(cluster.endpointOf(1));
    try {
      await kv.put(a, 'v');
      // The failure branch names a lease that does not exist and puts b (missing) with ignore_value:
      // dry-run at the prepares, both are refusals, but the compare holds and etcd takes the success branch.
      const req = {
        compare: [{ result: 'EQUAL', target: 'VALUE', key: Buffer.from(a), value: Buffer.from('v') }],
        success: [{ request_put: { key: Buffer.from(a), value: Buffer.from('ok') } }, { request_put: { key: Buffer.from(b), value: Buffer.from('ok') } }],
        failure: [{ request_put: { key: Buffer.from(a), value: Buffer.from('x'), lease: '123456789' } }, { request_put: { key: Buffer.from(b), ignore_value: true } }],
      };
      const aborts = (): Promise<number> => metricSum('synod_cross_shard_txn_aborts_total');
      const abortsBefore = await aborts();
      const answer = await kv.txn(req, 10_000);
      expect(answer.succeeded).toBe(true);
      expect(await values(kv, [a, b])).toEqual(['ok', 'ok']);
      // Its prepares met the refusal and were aborted; the attempt that went through chose its branch first.
      expect(await aborts()).toBeGreaterThan(abortsBefore);
      // The same refusal in the branch taken answers the client with etcd's error, and writes nothing.
      await expect(kv.txn({ ...req, compare: [{ result: 'EQUAL', target: 'VALUE', key: Buffer.from(a), value: Buffer.from('v') }] }, 10_000)).rejects.toMatchObject({ details: 'etcdserver: requested lease not found' });
      expect(await values(kv, [a, b])).toEqual(['ok', 'ok']);
    } finally {
      kv.close();
    }
  }, 30_000);

  it('many compare-and-swaps over the same two shards on disjoint keys at once: all commit, each at one revision, prepared side by side', async () => {
    // Through members 1 and 2 (member 0 pauses before its decisions): 40 transactions, each creating one
    // key on each of two shards if it does not exist yet (mod_revision 0), all in flight together.
    const [a] = await keysOnTwoShards('side/a');
    const shardA = await shardOf(a);
    const onA: string[] = [];
    const onB: string[] = [];
    let shardB = -1;
    for (let i = 0; onA.length < 40 || onB.length < 40; i++) {
      const key = `side/k${i}`;
      const shard = await shardOf(key);
      if (shard === shardA) onA.push(key);
      else if (shardB === -1 || shard === shardB) {
        shardB = shard;
        onB.push(key);
      }
    }
    const clients = [new KvClient(cluster.endpointOf(1)), new KvClient(cluster.endpointOf(2))];
    const besideBefore = await metricSum('synod_cross_shard_txn_prepares_beside_total');
    try {
      const create = (x: string, y: string): object => ({
        compare: [x, y].map((key) => ({ result: 'EQUAL', target: 'MOD', key: Buffer.from(key), mod_revision: '0' })),
        success: [x, y].map((key) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(`${x}+${y}`) } })),
        failure: [],
      });
      type Answer = { header: { revision: string }; succeeded: boolean };
      const answers = (await Promise.all(onA.slice(0, 40).map((x, i) => clients[i % 2].txn(create(x, onB[i]), 20_000)))) as unknown as Answer[];
      expect(answers.every((r) => r.succeeded)).toBe(true);
      for (const [i, r] of answers.entries()) {
        const [ra, rb] = await Promise.all([clients[0].range(onA[i]), clients[0].range(onB[i])]);
        expect([ra.kvs[0].mod_revision, rb.kvs[0].mod_revision]).toEqual([r.header.revision, r.header.revision]);
        expect(ra.kvs[0].value.toString()).toBe(`${onA[i]}+${onB[i]}`);
      }
      expect(new Set(answers.map((r) => r.header.revision)).size).toBe(40);
    } finally {
      for (const c of clients) c.close();
    }
    expect(await metricSum('synod_cross_shard_txn_prepares_beside_total')).toBeGreaterThan(besideBefore);
    await eventually('no transaction left prepared', async () => expect(await metricSum('synod_cross_shard_txns_prepared')).toBe(0), 10_000, 100);
  }, 60_000);

  it('puts on other keys of shards holding prepared transactions go beside them: deferred at apply, answered, readable at their revisions', async () => {
    // Rounds of 30 two-shard compare-and-swaps, all in flight together, with 30 puts to other keys on the
    // same two shards: the puts are proposed while transactions are prepared there (deferred by every
    // replica until those are decided, apply rules 6), and every one is answered and then read back at
    // its own revision, with each transaction's keys at its one revision. Hash tags keep every key of a
    // side on one shard.
    const [tagA, tagB] = (await keysOnTwoShards('beside-')).map((k) => `{${k}}`);
    expect(await shardOf(`${tagA}k`)).not.toBe(await shardOf(`${tagB}k`));
    const clients = [new KvClient(cluster.endpointOf(1)), new KvClient(cluster.endpointOf(2))];
    const besideBefore = await metricSum('synod_shard_writes_beside_txns_total');
    const deferredBefore = await metricSum('synod_shard_writes_deferred_total');
    try {
      for (let round = 0; round < 3; round++) {
        const txnKeys = (i: number): [string, string] => [`${tagA}t${round}.${i}`, `${tagB}t${round}.${i}`];
        const putKey = (i: number): string => `${i % 2 === 0 ? tagA : tagB}p${round}.${i}`;
        const create = ([x, y]: [string, string]): object => ({
          compare: [x, y].map((key) => ({ result: 'EQUAL', target: 'MOD', key: Buffer.from(key), mod_revision: '0' })),
          success: [x, y].map((key) => ({ request_put: { key: Buffer.from(key), value: Buffer.from(`${x}+${y}`) } })),
          failure: [],
        });
        type Answer = { header: { revision: string }; succeeded: boolean };
        const txns = Array.from({ length: 30 }, (_, i) => clients[i % 2].txn(create(txnKeys(i)), 20_000) as unknown as Promise<Answer>);
        const puts = Array.from({ length: 30 }, (_, i) => clients[(i + 1) % 2].put(putKey(i), `p${round}.${i}`, {}, 20_000));
        const [txnAnswers, putAnswers] = await Promise.all([Promise.all(txns), Promise.all(puts)]);
        expect(txnAnswers.every((r) => r.succeeded)).toBe(true);
        for (const [i, r] of putAnswers.entries()) {
          const got = await clients[0].range(putKey(i));
          expect([got.kvs[0]?.value.toString(), got.kvs[0]?.mod_revision]).toEqual([`p${round}.${i}`, r.header.revision]);
        }
        for (const [i, r] of txnAnswers.entries()) {
          const [x, y] = txnKeys(i);
          const [rx, ry] = await Promise.all([clients[0].range(x), clients[0].range(y)]);
          expect([rx.kvs[0].mod_revision, ry.kvs[0].mod_revision]).toEqual([r.header.revision, r.header.revision]);
        }
        if ((await metricSum('synod_shard_writes_deferred_total')) > deferredBefore) break;
      }
    } finally {
      for (const c of clients) c.close();
    }
    expect(await metricSum('synod_shard_writes_beside_txns_total')).toBeGreaterThan(besideBefore);
    expect(await metricSum('synod_shard_writes_deferred_total')).toBeGreaterThan(deferredBefore);
    await eventually('no transaction left prepared', async () => expect(await metricSum('synod_cross_shard_txns_prepared')).toBe(0), 10_000, 100);
  }, 90_000);

  it('a put on a prepared transaction\'s key waits for its decision and lands after it; a put on another key of that shard does not wait', async () => {
    // Member 0 coordinates and pauses PAUSE_MS between its prepares and its decision. Once every replica
    // holds the prepares, a put on one of the transaction's keys waits at its shard's leader for the
    // resolution, and lands after it: its prev_kv is the transaction's value, its revision above the
    // transaction's. The pause outlasts the intents' deadline, so the resolution here is a recoverer's
    // (every participant prepared: committed), before the coordinator's. A put on another key of the same
    // shard, sent right after the put on the key, is answered at once: the leader parks the waiting put out
    // of its outbox (synod_shard_writes_parked_total) rather than hold every write stamped after it.
    const [a, b] = await keysOnTwoShards('held/');
    const other = await keyOnShardOf(a, 'held-other/');
    const kv0 = new KvClient(cluster.endpointOf(0));
    const kv1 = new KvClient(cluster.endpointOf(1));
    try {
      await kv1.put(a, 'before');
      await kv1.put(b, 'before');
      const { preparedBefore, preparedAt, txnAnswer } = await pausedTransfer(kv0, a, b);
      const parkedBefore = await metricSum('synod_shard_writes_parked_total');
      const onKey = kv1.put(a, 'put', { prev_kv: true }, 20_000).then((r) => ({ ...r, at: Date.now() }));
      const beside = await kv1.put(other, 'beside', {}, 10_000);
      const besideAt = Date.now();
      const preparedAfterBeside = await metricSum('synod_cross_shard_txns_prepared');
      const [txn, put] = await Promise.all([txnAnswer, onKey]);
      console.log(`put on another key answered ${besideAt - preparedAt} ms after the prepares; the put on the transaction's key ${put.at - preparedAt} ms after (the coordinator answered after ${txn.at - preparedAt} ms)`);
      expect(txn.succeeded).toBe(true);
      // The other key's put did not wait for the transaction's resolution: it was answered while the
      // transaction was still prepared, before the put on the key, and lies below it.
      expect(preparedAfterBeside).toBeGreaterThan(preparedBefore);
      expect(besideAt).toBeLessThan(put.at);
      expect(besideAt).toBeLessThan(txn.at);
      expect(await metricSum('synod_shard_writes_parked_total')).toBeGreaterThan(parkedBefore);
      expect(Number(beside.header.revision)).toBeLessThan(Number(put.header.revision));
      expect((await kv1.range(other)).kvs[0]?.mod_revision).toBe(beside.header.revision);
      // The put on the transaction's key came after the transaction, over its value.
      expect(Number(put.header.revision)).toBeGreaterThan(Number(txn.header.revision));
      expect([put.prev_kv?.value.toString(), put.prev_kv?.mod_revision]).toEqual(['txn', txn.header.revision]);
      expect(await values(kv1, [a, b])).toEqual(['put', 'txn']);
    } finally {
      kv0.close();
      kv1.close();
    }
  }, 60_000);

  it('a lease revoke\'s sweep waits for a prepared transaction on its shard without holding a put on another key of that shard', async () => {
    // A revoke sweeps every shard (server/api/lease-sweeper.ts); a sweep waits for every transaction
    // prepared on its shard, whatever their keys. Member 0 coordinates and pauses PAUSE_MS before its
    // decision, so the recoverers resolve the transaction ~1.2 s after its prepares. Meanwhile the sweep
    // reaches the shard's leader, which parks it; a put on another key of that shard, sent once the sweep is
    // parked, is answered while the transaction is still prepared on every replica. The revoke ends after
    // the transaction, with the lease's key gone.
    const [a, b] = await keysOnTwoShards('sweep/');
    const other = await keyOnShardOf(a, 'sweep-other/');
    const kv0 = new KvClient(cluster.endpointOf(0));
    const kv1 = new KvClient(cluster.endpointOf(1));
    const leases = new LeaseLockClient(cluster.endpointOf(1));
    try {
      const lease = (await leases.grant(60)).ID;
      await leases.put('sweep-leased/x', 'v', lease);
      const { preparedBefore, preparedAt, txnAnswer } = await pausedTransfer(kv0, a, b);
      const parkedBefore = await metricSum('synod_shard_writes_parked_total');
      const revoked = leases.revoke(lease, 20_000).then(() => Date.now());
      await eventually('the sweep is parked at the prepared shard\'s leader', async () => expect(await metricSum('synod_shard_writes_parked_total')).toBeGreaterThan(parkedBefore), 1_000, 20);
      const beside = await kv1.put(other, 'beside', {}, 10_000);
      const besideAt = Date.now();
      // Read after the put's answer: a gauge that only falls, so the transaction was prepared on every
      // replica when the put was answered (held behind the sweep, it would have followed the resolution).
      expect(await metricSum('synod_cross_shard_txns_prepared')).toBe(preparedBefore + 6);
      const [txn, revokedAt] = await Promise.all([txnAnswer, revoked]);
      console.log(`put beside a parked sweep answered ${besideAt - preparedAt} ms after the prepares; the revoke ${revokedAt - preparedAt} ms after; the coordinator ${txn.at - preparedAt} ms after`);
      expect(txn.succeeded).toBe(true);
      expect(besideAt).toBeLessThan(revokedAt);
      expect((await kv1.range(other)).kvs[0]?.mod_revision).toBe(beside.header.revision);
      expect((await kv1.range('sweep-leased/x')).kvs).toEqual([]);
      expect(await values(kv1, [a, b])).toEqual(['txn', 'txn']);
    } finally {
      kv0.close();
      kv1.close();
      leases.close();
    }
  }, 60_000);

  it('/metrics shows the shard leaders\' prepares, and none stays prepared once the transactions are done', async () => {
    const kv = new KvClient(cluster.endpointOf(1));
    try {
      const [a, b] = await keysOnTwoShards('metrics/');
      for (let i = 0; i < 5; i++) expect((await kv.txn(transfer(a, b, `m${i}`), 10_000)).succeeded).toBe(true);
    } finally {
      kv.close();
    }
    // Two prepares per transaction, each proposed by its shard's leader (more after retries).
    expect(await metricSum('synod_cross_shard_txn_prepares_total')).toBeGreaterThanOrEqual(10);
    expect(await metricSum('synod_shard_writes_proposed_total')).toBeGreaterThanOrEqual(10);
    expect(await metricSum('synod_shard_oracle_requests_total')).toBeGreaterThan(0);
    // Exported (a sum over members, never NaN); one client at a time meets no other transaction, so 0 here.
    expect(Number.isInteger(await metricSum('synod_cross_shard_txn_prepares_refused_total'))).toBe(true);
    // Exported too (lost writes need a leader change; server/member/lost-proposal.test.ts makes one).
    expect(Number.isInteger(await metricSum('synod_shard_writes_lost_total'))).toBe(true);
    await eventually('no transaction left prepared', async () => expect(await metricSum('synod_cross_shard_txns_prepared')).toBe(0), 10_000, 100);
  }, 30_000);
});

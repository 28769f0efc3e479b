// Members whose wall clocks disagree (libfaketime, Debian's faketime package, shifts one process's
// CLOCK_REALTIME; its monotonic clock is left alone): 3 members, 4 shards, member 0 a minute ahead,
// member 1 half a minute behind, member 2 ten minutes behind. Requests between members carry the time
// left, not an absolute deadline, so forwarded writes and reads and the oracle's grants work through each;
// cross-shard transactions coordinated by each commit, with none aborted by a shard's recoverer for
// looking overdue (their prepares' deadlines are set by the shard leaders' clocks); once the shards hold
// fences, the member ten minutes behind learns from their fence horizons how far behind it is and its
// transactions, and a lease revoked through it, still go through; and a coordinator a minute ahead
// killed -9 between its prepares and its answer blocks no reader past 2 s.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { everyShardServes } from './support/every-shard-serves.ts';
import { KvClient } from './support/kv-client.ts';
import { eventually } from './support/eventually.ts';
import { LeaseLockClient } from './support/lease-lock-client.ts';
import { AuthClient } from './support/auth-client.ts';
import { skewedClockEnv } from './support/skewed-clock.ts';
import { WatchStream } from './support/watch-client.ts';
import { SlotMap } from '../server/routing/slots.ts';
import { ShardPeerChannels, shardKvOnPeer } from '../server/shard/peer-shard-rpc.ts';
import { encodeForwardedEntry } from '../server/shard/forwarded-entry.ts';
import { FIRST_SHARD_GROUP_ID } from '../server/cli/shard-hosting.ts';

const SHARDS = 4;
const PAUSE_MS = 4_000;
/** Auth tokens' lifetime (--auth-token-ttl), short enough to see one expire. */
const TOKEN_TTL_S = 3;
/** Each member's clock against the machine's, as libfaketime's FAKETIME says it. */
const SKEWS = ['+60s', '-30s', '-600s'];
let cluster: ProcessCluster;
/** Member 0 restarts with a TEST-ONLY pause between its prepares and its answer, to be killed there. */
let pauseMember0 = false;

beforeAll(async () => {
  cluster = await ProcessCluster.start({
    size: 3,
    memberArgs: (i) => ['--shards', String(SHARDS), '--auth-token-ttl', String(TOKEN_TTL_S), ...(i === 0 && pauseMember0 ? ['--test-txn-pause-before-decision-ms', String(PAUSE_MS)] : [])],
    memberEnv: (i) => skewedClockEnv(SKEWS[i]),
  });
  await everyShardServes(cluster.endpointOf(2), SHARDS);
}, 90_000);

afterAll(async () => {
  await cluster?.destroy();
});

/** Two keys with `prefix` on different shards. */
function keysOnTwoShards(prefix: string): [string, string] {
  const slots = SlotMap.create(SHARDS);
  const first = `${prefix}0`;
  for (let i = 1; i < 100; i++) if (slots.shardOfKey(Buffer.from(`${prefix}${i}`)) !== slots.shardOfKey(Buffer.from(first))) return [first, `${prefix}${i}`];
  throw new Error('no two shards found');
}

/** A metric of member `i`'s /metrics (0 when absent). */
async function metric(i: number, name: string): Promise<number> {
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await cluster.metrics(i))?.[1] ?? 0);
}

/** A counter summed over every member's /metrics. */
async function metricSum(name: string): Promise<number> {
  let total = 0;
  for (let i = 0; i < cluster.members.length; i++) total += await metric(i, name);
  return total;
}

const casTransfer = (a: string, b: string, revA: string, revB: string, value: string): object => ({
  compare: [
    { target: 'MOD', result: 'EQUAL', key: Buffer.from(a), mod_revision: revA },
    { target: 'MOD', result: 'EQUAL', key: Buffer.from(b), mod_revision: revB },
  ],
  success: [
    { request_put: { key: Buffer.from(a), value: Buffer.from(value) } },
    { request_put: { key: Buffer.from(b), value: Buffer.from(value) } },
  ],
  failure: [],
});

describe('members whose clocks disagree by minutes', () => {
  it('commit cross-shard transactions coordinated by any of them, none aborted for looking overdue', async () => {
    const recoveriesBefore = await metricSum('synod_cross_shard_txn_recoveries_total');
    for (let i = 0; i < 3; i++) {
      const [a, b] = keysOnTwoShards(`skew${i}/`);
      const kv = new KvClient(cluster.endpointOf(i));
      try {
        await kv.put(a, '0');
        await kv.put(b, '0');
        const ms: number[] = [];
        for (let n = 1; n <= 20; n++) {
          const [ra, rb] = await Promise.all([kv.range(a), kv.range(b)]);
          const started = performance.now();
          const out = await kv.txn(casTransfer(a, b, ra.kvs[0].mod_revision, rb.kvs[0].mod_revision, String(n)), 5_000);
          ms.push(performance.now() - started);
          expect(out.succeeded, `transfer ${n} through member ${i} (${SKEWS[i]})`).toBe(true);
        }
        ms.sort((x, y) => x - y);
        console.log(`member ${i} (clock ${SKEWS[i]}): 20 two-shard compare-and-swaps, p50 ${ms[10].toFixed(1)} ms, max ${ms[19].toFixed(1)} ms`);
        const [ra, rb] = await Promise.all([kv.range(a), kv.range(b)]);
        expect([ra.kvs[0].value.toString(), rb.kvs[0].value.toString()]).toEqual(['20', '20']);
      } finally {
        kv.close();
      }
    }
    expect(await metricSum('synod_cross_shard_txn_recoveries_total')).toBe(recoveriesBefore);
  }, 120_000);

  it('once the shards hold fences, the member ten minutes behind learns it from their horizons and its transactions still commit', async () => {
    // A fence on every shard (what a recoverer lays when it aborts): a shard holding one has its leader
    // move its fence horizon to five minutes ago by the leader's clock, and prepares of transactions
    // older than that are refused. Member 2's transactions take their age from a clock ten minutes behind.
    const channels = new ShardPeerChannels({ peerAddress: (id) => (id === 1 ? `127.0.0.1:${cluster.members[1].peerPort}` : undefined) });
    try {
      for (let shard = 0; shard < SHARDS; shard++) {
        const entry = encodeForwardedEntry({ txn_recover: { txn_id: `fence-${shard}-${Date.now()}`, abort_pending: false, priority: String(Date.now()) } }, undefined);
        const outcome = await shardKvOnPeer(channels, 1, { groupId: FIRST_SHARD_GROUP_ID + shard, deadlineMs: Date.now() + 10_000, op: { kind: 'write', entry, internal: true } });
        expect(outcome.kind).toBe('done');
      }
    } finally {
      channels.close();
    }
    const [a, b] = keysOnTwoShards('behind/');
    const kv = new KvClient(cluster.endpointOf(2));
    try {
      await kv.put(a, '0');
      await kv.put(b, '0');
      let n = 0;
      // Each transfer must commit; the horizons move within a second or so of the fences, and then the
      // member's first refused prepare teaches it how far behind it is (its retry commits).
      await eventually('member 2 learns how far behind its clock is', async () => {
        const [ra, rb] = await Promise.all([kv.range(a), kv.range(b)]);
        const out = await kv.txn(casTransfer(a, b, ra.kvs[0].mod_revision, rb.kvs[0].mod_revision, String(++n)), 5_000);
        expect(out.succeeded).toBe(true);
        expect(await metric(2, 'synod_cross_shard_txn_clock_behind_seconds')).toBeGreaterThan(0);
      }, 20_000, 200);
    } finally {
      kv.close();
    }
    const behind = await Promise.all([0, 1, 2].map((i) => metric(i, 'synod_cross_shard_txn_clock_behind_seconds')));
    console.log(`clock behind the shard leaders, as each member learnt it: ${behind.map((x) => `${x.toFixed(0)} s`).join(', ')}`);
    // Half a minute behind is within every horizon (five minutes): only member 2 was refused.
    expect(behind.slice(0, 2)).toEqual([0, 0]);
  }, 60_000);

  it('a watch over every shard from revision 1, through each member, delivers every event in order', async () => {
    const kv = new KvClient(cluster.endpointOf(1));
    const written: string[] = [];
    try {
      for (let i = 0; i < 24; i++) {
        await kv.put(`w/${i}`, `v${i}`);
        written.push(`w/${i}`);
      }
    } finally {
      kv.close();
    }
    for (let i = 0; i < 3; i++) {
      const watch = new WatchStream(cluster.endpointOf(i));
      try {
        watch.create({ key: Buffer.from('w/'), range_end: Buffer.from('w0'), start_revision: '1' });
        const started = performance.now();
        const seen: Array<{ key: string; revision: number }> = [];
        while (seen.length < written.length) {
          const r = await watch.next(10_000);
          for (const e of r.events ?? []) seen.push({ key: e.kv.key.toString(), revision: Number(e.kv.mod_revision) });
        }
        console.log(`member ${i} (clock ${SKEWS[i]}): a watch over every shard replayed ${seen.length} events in ${(performance.now() - started).toFixed(0)} ms`);
        expect(seen.map((e) => e.key)).toEqual(written);
        expect(seen.map((e) => e.revision)).toEqual([...seen.map((e) => e.revision)].sort((a, b) => a - b));
      } finally {
        watch.close();
      }
    }
  }, 60_000);

  it('a lease revoked through the member ten minutes behind takes its keys on every shard', async () => {
    const leases = new LeaseLockClient(cluster.endpointOf(2));
    const kv = new KvClient(cluster.endpointOf(2));
    try {
      const { ID } = await leases.grant(60);
      const keys = Array.from({ length: 8 }, (_, i) => `leased/${i}`);
      for (const k of keys) await kv.put(k, 'v', { lease: ID });
      await leases.revoke(ID);
      for (const k of keys) expect((await kv.range(k)).kvs, k).toHaveLength(0);
    } finally {
      leases.close();
      kv.close();
    }
  }, 60_000);

  it('an auth token lives its TTL on every member: one from the member ten minutes behind works on the one a minute ahead, and one from that member expires on time on the one behind', async () => {
    const admin = new AuthClient(cluster.addressOf(1));
    const behind = new AuthClient(cluster.addressOf(2));
    const ahead = new AuthClient(cluster.addressOf(0));
    try {
      await admin.call('Auth', 'UserAdd', { name: 'root', password: 'root-pw' });
      await admin.call('Auth', 'UserGrantRole', { user: 'root', role: 'root' });
      await admin.call('Auth', 'AuthEnable', {});
      // Issued by member 2 in its clock (ten minutes behind): expired long ago by member 0's clock alone.
      const fromBehind = ((await behind.call('Auth', 'Authenticate', { name: 'root', password: 'root-pw' })) as { token: string }).token;
      ahead.token = fromBehind;
      await ahead.call('KV', 'Put', { key: Buffer.from('auth/a'), value: Buffer.from('1') });
      // Issued by member 0 (a minute ahead): by member 2's clock alone it would last eleven minutes.
      const fromAhead = ((await ahead.call('Auth', 'Authenticate', { name: 'root', password: 'root-pw' })) as { token: string }).token;
      behind.token = fromAhead;
      await behind.call('KV', 'Put', { key: Buffer.from('auth/b'), value: Buffer.from('1') });
      await new Promise((r) => setTimeout(r, TOKEN_TTL_S * 1_000 + 500));
      await expect(behind.call('KV', 'Put', { key: Buffer.from('auth/b'), value: Buffer.from('2') })).rejects.toMatchObject({ details: 'etcdserver: invalid auth token' });
      // Authenticated again, it works; and auth goes off for the test after this one.
      behind.token = ((await behind.call('Auth', 'Authenticate', { name: 'root', password: 'root-pw' })) as { token: string }).token;
      await behind.call('Auth', 'AuthDisable', {});
    } finally {
      admin.close();
      behind.close();
      ahead.close();
    }
  }, 60_000);

  it('a coordinator a minute ahead killed -9 after its prepares: the shard leaders recover its transaction within 2 s', async () => {
    await cluster.stopMember(0);
    pauseMember0 = true;
    cluster.startMember(0);
    await cluster.waitReady();
    const [a, b] = keysOnTwoShards('kill/');
    const kv1 = new KvClient(cluster.endpointOf(1));
    const kv0 = new KvClient(cluster.endpointOf(0));
    try {
      await eventually('member 0 serves', () => kv0.put(a, 'before', {}, 2_000), 30_000, 200);
      await kv1.put(b, 'before');
      const pending = kv0.txn({ compare: [], success: [a, b].map((k) => ({ request_put: { key: Buffer.from(k), value: Buffer.from('after') } })), failure: [] }, 20_000).catch((e: unknown) => e);
      // Its prepares are laid within a few hundred ms; then it pauses before answering and resolving.
      await new Promise((r) => setTimeout(r, 700));
      await cluster.kill9(0);
      const killedAt = Date.now();
      // Its prepares' deadlines were set by the shard leaders' clocks, not by its own minute-ahead one.
      const reads = await Promise.all([a, b].map(async (k) => {
        const r = await kv1.range(k, {}, 10_000);
        return { value: r.kvs[0]?.value.toString(), modRevision: r.kvs[0]?.mod_revision, ms: Date.now() - killedAt };
      }));
      console.log(`reads after the coordinator's kill: ${reads.map((r) => `${r.ms} ms`).join(', ')}`);
      for (const r of reads) expect(r.ms).toBeLessThan(2_000);
      expect(reads.map((r) => r.value)).toEqual(['after', 'after']);
      expect(reads[0].modRevision).toBe(reads[1].modRevision);
      expect(await pending).toBeInstanceOf(Error);
    } finally {
      kv0.close();
      kv1.close();
    }
  }, 90_000);
});

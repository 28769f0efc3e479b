// TEST-ONLY remote shards (--experimental-test-remote-watch-shards): a merged watch on a member that reads
// some shards from a replica on another member over the peer port (WatchShard, server/shard/
// remote-watch-source.ts), on a real 3-member, 4-shard cluster. Today every member hosts every shard, so the
// option makes member 1 read shards 0, 1 and 3 remotely although it hosts them (shard 2 stays local): the
// path of a shard not placed on a member. A prefix watch through member 1 from a start revision in the past
// sees every event once, in revision order, replay then live; the put → event delay of keys on the remote
// shards is printed; the member serving the remote streams is killed with -9 during live writes and the watch
// goes on from the remaining replica with no gap and no duplicate; then the member serving them is cut off
// from the others (test-only partition): its streams stay open and it answers the asks, but its replica no
// longer resolves — the watch notices (marks not moving) and goes on from the other replica.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlotMap } from '../server/routing/slots.ts';
import { memberIdFor } from '../server/api/cluster-info.ts';
import { ProcessCluster } from './support/process-cluster.ts';
import { KvClient } from './support/kv-client.ts';
import { WatchStream, type WatchResponse } from './support/watch-client.ts';

const SHARDS = 4;
const REMOTE = [0, 1, 3];
let cluster: ProcessCluster;
const clients: KvClient[] = [];
const slots = SlotMap.create(SHARDS);

beforeAll(async () => {
  cluster = await ProcessCluster.start({
    size: 3,
    memberArgs: (i) => ['--shards', String(SHARDS), '--experimental-fault-injection', ...(i === 0 ? ['--experimental-test-remote-watch-shards', REMOTE.join(',')] : [])],
  });
  for (let i = 0; i < 3; i++) clients.push(new KvClient(cluster.endpointOf(i)));
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  if (process.env.KEEP_SHARDED !== '1') await cluster?.destroy();
  else console.log(`kept ${cluster.rootDir}`);
});

interface Written {
  key: string;
  revision: number;
  ackMs: number;
}

interface Seen {
  key: string;
  revision: number;
  atMs: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what} not seen in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function metric(i: number, name: string): Promise<number> {
  const line = (await cluster.metrics(i)).split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no ${name} in /metrics of member ${i}`);
  return Number(line.split(' ')[1]);
}

/** A put acknowledged by the cluster, retried when a leader died under it (unacknowledged, so not in the history). */
async function put(client: KvClient, key: string, value: string): Promise<Written> {
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await client.put(key, value, {}, 8_000);
      return { key, revision: Number(r.header.revision), ackMs: Date.now() };
    } catch (err) {
      if (attempt >= 5) throw err;
    }
  }
}

describe(`TEST-ONLY --experimental-test-remote-watch-shards ${REMOTE.join(',')} on member 1 of 3 (${SHARDS} shards)`, () => {
  it('a prefix watch through member 1 reads shards 0, 1, 3 from other members: history from a past revision then live, every event once in revision order, through a kill -9 of the member serving the streams', async () => {
    // History before the watch, on every shard.
    const history: Written[] = [];
    for (let i = 0; i < 40; i++) history.push(await put(clients[i % 3], `/rw/h/${String(i).padStart(2, '0')}`, `h${i}`));
    const shardsTouched = new Set(history.map((h) => slots.shardOfKey(Buffer.from(h.key))));
    expect(shardsTouched.size).toBe(SHARDS);
    const start = history[5].revision;

    const ws = new WatchStream(cluster.endpointOf(0));
    const seen: Seen[] = [];
    const responses: WatchResponse[] = [];
    ws.subscribe((r) => {
      const now = Date.now();
      responses.push(r);
      for (const e of r.events) seen.push({ key: e.kv.key.toString(), revision: Number(e.kv.mod_revision), atMs: now });
    });
    try {
      ws.create({ key: Buffer.from('/rw/'), range_end: Buffer.from('/rw0'), start_revision: start });
      const want = history.filter((h) => h.revision >= start);
      await until(() => want.every((h) => seen.some((s) => s.key === h.key && s.revision === h.revision)), 15_000, 'the history from the start revision');

      // Which member serves the remote streams: it holds its closing rounds for them (member 3 holds none unless it serves).
      const serving = (await metric(1, 'synod_shard_closing_active')) === 1 ? 1 : 2;
      expect(await metric(serving, 'synod_shard_closing_active')).toBe(1);
      const other = serving === 1 ? 2 : 1;
      // The other member serves nothing yet: after the kill, its hold shows the streams moved to it.
      expect(await metric(other, 'synod_shard_closing_active')).toBe(0);

      // Live, light load: one write per 20 ms through the members in turn.
      const live: Written[] = [];
      for (let i = 0; i < 120; i++) {
        live.push(await put(clients[i % 3], `/rw/l/${String(i).padStart(3, '0')}`, `l${i}`));
        await new Promise((r) => setTimeout(r, 20));
      }
      await until(() => live.every((h) => seen.some((s) => s.key === h.key && s.revision === h.revision)), 15_000, 'every live write');
      const remoteDelays = live
        .filter((h) => REMOTE.includes(slots.shardOfKey(Buffer.from(h.key))))
        .map((h) => seen.find((s) => s.key === h.key && s.revision === h.revision)!.atMs - h.ackMs)
        .sort((x, y) => x - y);
      const localDelays = live
        .filter((h) => !REMOTE.includes(slots.shardOfKey(Buffer.from(h.key))))
        .map((h) => seen.find((s) => s.key === h.key && s.revision === h.revision)!.atMs - h.ackMs)
        .sort((x, y) => x - y);
      console.log(
        `remote watch path (shards ${REMOTE.join(',')} over WatchShard from member ${serving + 1}): put ack → event, ${remoteDelays.length} writes at 1 per 20 ms: p50 ${percentile(remoteDelays, 50)} ms, p99 ${percentile(remoteDelays, 99)} ms, max ${remoteDelays[remoteDelays.length - 1]} ms; local shard: p50 ${percentile(localDelays, 50)} ms, p99 ${percentile(localDelays, 99)} ms`,
      );
      for (const h of live) {
        const d = seen.find((x) => x.key === h.key && x.revision === h.revision)!.atMs - h.ackMs;
        if (d > 200) console.log(`slow: ${h.key} rev ${h.revision} shard ${slots.shardOfKey(Buffer.from(h.key))} ${d} ms`);
      }
      // Loose bounds for a loaded, shared 2-core machine (the p99 is printed; a leadership move or a slow close
      // during the run shows there as a single outlier of up to the close timeout, 2 s).
      expect(percentile(remoteDelays, 50)).toBeLessThan(100);
      expect(remoteDelays[remoteDelays.length - 1]).toBeLessThan(5_000);

      // kill -9 the member serving the remote streams, with writes going on through members 1 and the other.
      const afterKill: Written[] = [];
      const writer = (async () => {
        for (let i = 0; i < 60; i++) {
          afterKill.push(await put(clients[i % 2 === 0 ? 0 : other], `/rw/k/${String(i).padStart(2, '0')}`, `k${i}`));
          await new Promise((r) => setTimeout(r, 15));
        }
      })();
      await new Promise((r) => setTimeout(r, 200));
      await cluster.kill9(serving);
      await writer;
      await until(() => afterKill.every((h) => seen.some((s) => s.key === h.key && s.revision === h.revision)), 30_000, 'every write around the kill');
      await new Promise((r) => setTimeout(r, 300));
      const killDelays = afterKill.map((h) => seen.find((s) => s.key === h.key && s.revision === h.revision)!.atMs - h.ackMs).sort((x, y) => x - y);
      console.log(`remote watch path through kill -9 of member ${serving + 1}: ${afterKill.length} writes, ack → event p50 ${percentile(killDelays, 50)} ms, max ${killDelays[killDelays.length - 1]} ms`);
      expect(await metric(other, 'synod_shard_closing_active')).toBe(1);

      // A progress request right after a write: its header (after a closing round here and resolve answers
      // from the remote shards' new serving member) covers the write, whose event came first.
      const progressed = await put(clients[0], '/rw/progress', 'p');
      const before = responses.length;
      ws.progress();
      await until(() => responses.slice(before).some((r) => String(r.watch_id) === '-1'), 5_000, 'a progress reply');
      const reply = responses.slice(before).find((r) => String(r.watch_id) === '-1')!;
      expect(Number(reply.header.revision)).toBeGreaterThanOrEqual(progressed.revision);
      expect(responses.slice(0, responses.indexOf(reply)).some((r) => r.events.some((e) => e.kv.key.toString() === '/rw/progress'))).toBe(true);

      // Exactly the writes made under /rw/ from the start revision, in revision order, each once.
      const all = [...history, ...live, ...afterKill, progressed].filter((h) => h.revision >= start).sort((x, y) => x.revision - y.revision);
      expect(seen.map((s) => `${s.revision}:${s.key}`)).toEqual(all.map((h) => `${h.revision}:${h.key}`));
      expect(responses.some((r) => r.canceled)).toBe(false);
      // Headers never go backwards and cover their events.
      let last = 0;
      for (const r of responses.filter((x) => !x.created)) {
        const h = Number(r.header.revision);
        expect(h).toBeGreaterThanOrEqual(last);
        for (const e of r.events) expect(Number(e.kv.mod_revision)).toBeLessThanOrEqual(h);
        last = h;
      }
    } finally {
      ws.close();
      if (!cluster.isRunning(1) || !cluster.isRunning(2)) {
        for (const i of [1, 2]) if (!cluster.isRunning(i)) cluster.startMember(i);
        await cluster.waitReady();
      }
    }
  }, 180_000);

  // About 6 s; in `make soak` (SYNOD_SOAK=1), not `make test`, whose fault suite's subset run already cuts
  // members off with remote shards followed in its watches on every run.
  it.skipIf(process.env.SYNOD_SOAK !== '1')('the member serving the remote streams is cut off from the others (its streams stay open, its replica stops): the watch moves to the other replica, every write once, in order', async () => {
    const ids = cluster.members.map((m) => memberIdFor([`http://127.0.0.1:${m.peerPort}`], 'it').toString(16));
    const block = async (i: number, peers: number[]): Promise<void> => {
      const res = await fetch(`http://127.0.0.1:${cluster.members[i].metricsPort}/debug/fault/partition`, {
        method: 'POST',
        body: JSON.stringify({ blockedPeers: peers.map((j) => ids[j]) }),
        signal: AbortSignal.timeout(2_000),
      });
      expect(res.status).toBe(200);
    };
    const ws = new WatchStream(cluster.endpointOf(0));
    const seen: Seen[] = [];
    ws.subscribe((r) => {
      const now = Date.now();
      for (const e of r.events) seen.push({ key: e.kv.key.toString(), revision: Number(e.kv.mod_revision), atMs: now });
    });
    let serving = -1;
    try {
      ws.create({ key: Buffer.from('/rp/'), range_end: Buffer.from('/rp0') });
      const first = await put(clients[0], '/rp/first', 'x');
      await until(() => seen.some((e) => e.revision === first.revision), 10_000, 'the first write');
      await until(() => seen.length > 0, 1_000, 'x');
      const active = await Promise.all([1, 2].map((i) => metric(i, 'synod_shard_closing_active')));
      expect(active.filter((a) => a === 1).length).toBe(1);
      serving = active[0] === 1 ? 1 : 2;
      const other = serving === 1 ? 2 : 1;
      await block(serving, [0, other]);
      await block(0, [serving]);
      await block(other, [serving]);
      const cutAt = Date.now();
      const written: Written[] = [first];
      for (let i = 0; i < 40; i++) {
        written.push(await put(clients[i % 2 === 0 ? 0 : other], `/rp/${String(i).padStart(2, '0')}`, `p${i}`));
        await new Promise((r) => setTimeout(r, 20));
      }
      await until(() => written.every((h) => seen.some((e) => e.key === h.key && e.revision === h.revision)), 30_000, 'every write made while the serving member is cut off');
      await new Promise((r) => setTimeout(r, 300));
      const lastAt = Math.max(...seen.map((e) => e.atMs));
      console.log(`remote watch path, serving member ${serving + 1} cut off: every write delivered ${lastAt - cutAt} ms after the cut`);
      expect(seen.map((e) => `${e.revision}:${e.key}`)).toEqual([...written].sort((a, b) => a.revision - b.revision).map((h) => `${h.revision}:${h.key}`));
      expect(await metric(other, 'synod_shard_closing_active')).toBe(1);
    } finally {
      ws.close();
      for (const i of [0, 1, 2]) await block(i, []).catch(() => undefined);
    }
  }, 120_000);
});

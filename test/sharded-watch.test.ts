// One watch over several shards on a real sharded cluster (`--shards 4`, 3 member processes), watched
// with Debian's real `etcdctl watch --prefix` (issue 14): writes from every member and from several
// clients at once reach the watch exactly once, in revision order; the delay from a write's
// acknowledgement to its event at the watcher is measured under light load and printed; `--rev` replays
// history and goes on live; progress notifications and progress requests carry the merged delivered
// revision (every event at or below it was sent before, and a request right after a write covers it);
// NOPUT/NODELETE filters with prev_kv; a range delete over every shard heavier than the merge's budget
// arrives whole, in key order; a reader that stops reading catches up exactly; a start below the
// compaction is canceled with etcd's compact_revision; a member killed with -9 does not stop a watch on a
// surviving member; closing rounds run only while a member holds a merged watch, and not while it idles.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { KvClient } from './support/kv-client.ts';
import { CLOSE_HEARTBEAT_MS, CLOSE_MIN_GAP_MS } from '../server/shard/shard-closer.ts';
import { RawWatchStream, WatchStream, type WatchResponse } from './support/watch-client.ts';

const SHARDS = 4;
const PROGRESS_MS = 300;
let cluster: ProcessCluster;
const clients: KvClient[] = [];

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3, memberArgs: () => ['--shards', String(SHARDS), '--watch-progress-notify-interval', String(PROGRESS_MS)] });
  for (let i = 0; i < 3; i++) clients.push(new KvClient(cluster.endpointOf(i)));
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  if (process.env.KEEP_SHARDED !== '1') await cluster?.destroy();
  else console.log(`kept ${cluster.rootDir}`);
});

interface Seen {
  type: 'PUT' | 'DELETE';
  key: string;
  value: string;
  revision: number;
  /** When the test process read it from etcdctl's output (ms). */
  atMs: number;
  /** The header revision of the response that carried it. */
  header: number;
}

/** A running `etcdctl watch -w json`, its events parsed as they arrive. */
class EtcdctlWatch {
  readonly child: ChildProcess;
  readonly events: Seen[] = [];
  readonly headers: number[] = [];
  stderr = '';
  private buffered = '';
  private readonly exited: Promise<number>;

  constructor(endpoint: string, args: string[]) {
    this.child = spawn('etcdctl', [`--endpoints=${endpoint}`, '--dial-timeout=3s', 'watch', ...args, '-w', 'json'], { env: { ...process.env, ETCDCTL_API: '3' } });
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      const now = Date.now();
      this.buffered += chunk;
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl).trim();
        this.buffered = this.buffered.slice(nl + 1);
        if (!line.startsWith('{')) continue;
        // etcdctl prints the event type as the enum's number (PUT = 0 is left out, DELETE = 1).
        const r = JSON.parse(line) as { Header: { revision: number }; Events?: Array<{ type?: number | string; kv: { key: string; value?: string; mod_revision: number } }> };
        this.headers.push(r.Header.revision);
        for (const e of r.Events ?? []) {
          this.events.push({
            type: e.type === 1 || e.type === 'DELETE' ? 'DELETE' : 'PUT',
            key: Buffer.from(e.kv.key, 'base64').toString(),
            value: Buffer.from(e.kv.value ?? '', 'base64').toString(),
            revision: e.kv.mod_revision,
            atMs: now,
            header: r.Header.revision,
          });
        }
      }
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code ?? -1)));
  }

  async until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`watch: ${what} not seen in ${timeoutMs} ms (${this.events.length} events; stderr: ${this.stderr})`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  has(key: string, revision: number): boolean {
    return this.events.some((e) => e.key === key && e.revision === revision);
  }

  async stop(): Promise<void> {
    this.child.kill('SIGTERM');
    await this.exited;
  }

  exit(timeoutMs: number): Promise<number | null> {
    return Promise.race([this.exited, new Promise<null>((r) => setTimeout(() => r(null), timeoutMs))]);
  }
}

interface Written {
  type: 'PUT' | 'DELETE';
  key: string;
  revision: number;
  ackMs: number;
}

/** Checks the watch's stream: revisions never go backwards, no event twice, headers cover their events. */
function checkOrderAndOnce(w: EtcdctlWatch): void {
  for (let i = 1; i < w.events.length; i++) {
    expect(w.events[i].revision, `event ${i} (${w.events[i].key})`).toBeGreaterThanOrEqual(w.events[i - 1].revision);
  }
  const ids = w.events.map((e) => `${e.revision}:${e.key}`);
  expect(new Set(ids).size).toBe(ids.length);
  for (const e of w.events) expect(e.header).toBeGreaterThanOrEqual(e.revision);
  for (let i = 1; i < w.headers.length; i++) expect(w.headers[i]).toBeGreaterThanOrEqual(w.headers[i - 1]);
}

/** Puts `<prefix>sentinel-n` until the watch shows one: the watch is then created and live. */
async function sentinel(w: EtcdctlWatch, tag: string, prefix = '/app/'): Promise<number> {
  for (let n = 0; n < 50; n++) {
    const r = await clients[n % 2].put(`${prefix}sentinel-${tag}-${n}`, 'x');
    const rev = Number(r.header.revision);
    try {
      await w.until(() => w.has(`${prefix}sentinel-${tag}-${n}`, rev), 500, 'sentinel');
      return rev;
    } catch {
      // Not created yet: try again.
    }
  }
  throw new Error(`watch never became live (stderr: ${w.stderr})`);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const history: Written[] = [];

describe(`one watch over ${SHARDS} shards`, () => {
  let live: EtcdctlWatch;

  it('delivers every write from every member and several clients exactly once, in revision order; events arrive without a stall (p99 printed)', async () => {
    live = new EtcdctlWatch(cluster.endpointOf(0), ['--prefix', '/app/']);
    const from = await sentinel(live, 'a');

    // Several clients on every member writing at once, puts and deletes.
    await Promise.all(
      [0, 1, 2].map(async (c) => {
        for (let i = 0; i < 40; i++) {
          const key = `/app/c${c}/${String(i).padStart(2, '0')}`;
          const r = await clients[c].put(key, `v${i}`);
          history.push({ type: 'PUT', key, revision: Number(r.header.revision), ackMs: Date.now() });
          if (i % 10 === 9) {
            const d = await clients[(c + 1) % 3].deleteRange(`/app/c${c}/${String(i - 5).padStart(2, '0')}`);
            expect(d.deleted).toBe('1');
            history.push({ type: 'DELETE', key: `/app/c${c}/${String(i - 5).padStart(2, '0')}`, revision: Number(d.header.revision), ackMs: Date.now() });
          }
        }
      }),
    );
    // And the real etcdctl writing through another member.
    for (let i = 0; i < 4; i++) {
      await etcdctlOk(cluster.endpointOf(2), ['put', `/app/ctl/${i}`, `e${i}`]);
      const got = JSON.parse(await etcdctlOk(cluster.endpointOf(2), ['get', `/app/ctl/${i}`, '-w', 'json'])) as { kvs: Array<{ mod_revision: number }> };
      history.push({ type: 'PUT', key: `/app/ctl/${i}`, revision: got.kvs[0].mod_revision, ackMs: Date.now() });
    }

    // Light load: one write every 20 ms, from the members in turn; the delay from each acknowledgement to
    // its event at the watcher.
    const timed: Written[] = [];
    for (let i = 0; i < 150; i++) {
      const key = `/app/t/${String(i).padStart(3, '0')}`;
      const r = await clients[i % 3].put(key, `t${i}`);
      const w: Written = { type: 'PUT', key, revision: Number(r.header.revision), ackMs: Date.now() };
      timed.push(w);
      history.push(w);
      await new Promise((res) => setTimeout(res, 20));
    }
    await live.until(() => history.every((h) => live.has(h.key, h.revision)), 15_000, 'every acknowledged write');
    checkOrderAndOnce(live);
    // Exactly the writes made: nothing else under /app/ after the first sentinel.
    const after = live.events.filter((e) => e.revision > from && !e.key.startsWith('/app/sentinel-'));
    expect(after.map((e) => `${e.revision}:${e.type}:${e.key}`)).toEqual([...history].sort((a, b) => a.revision - b.revision).map((h) => `${h.revision}:${h.type}:${h.key}`));

    const delays = timed.map((t) => live.events.find((e) => e.key === t.key && e.revision === t.revision)!.atMs - t.ackMs).sort((a, b) => a - b);
    const p50 = percentile(delays, 50);
    const p99 = percentile(delays, 99);
    console.log(`merged watch over ${SHARDS} shards: acknowledgement → event at the etcdctl watcher, ${delays.length} writes at 1 per 20 ms: p50 ${p50} ms, p99 ${p99} ms, max ${delays[delays.length - 1]} ms`);
    // The brief's figure is 100 ms p99, measured (printed above) and by `make bench`; here only a stall
    // fails the test: one GC pause or a neighbouring test's burst on a loaded 2-core machine took p99
    // to 1.3 s once in `make test`.
    expect(p99).toBeLessThan(2_000);
  }, 120_000);

  it('--rev replays history over every shard in revision order, then goes on live', async () => {
    const first = Math.min(...history.map((h) => h.revision));
    const replay = new EtcdctlWatch(cluster.endpointOf(2), ['--prefix', '/app/', '--rev', String(first)]);
    try {
      await replay.until(() => history.every((h) => replay.has(h.key, h.revision)), 15_000, 'the history');
      const r = await clients[1].put('/app/after-replay', 'live');
      await replay.until(() => replay.has('/app/after-replay', Number(r.header.revision)), 5_000, 'a live write after the replay');
      checkOrderAndOnce(replay);
      // The same stream as the live watch saw from `first` on.
      const want = live.events.filter((e) => e.revision >= first).map((e) => `${e.revision}:${e.type}:${e.key}:${e.value}`);
      expect(replay.events.slice(0, want.length).map((e) => `${e.revision}:${e.type}:${e.key}:${e.value}`)).toEqual(want);
      expect(replay.events[0].revision).toBe(first);
    } finally {
      await replay.stop();
    }
  }, 60_000);

  it('progress notifications and progress requests name the merged delivered revision', async () => {
    const ws = new WatchStream(cluster.endpointOf(1));
    const got: WatchResponse[] = [];
    try {
      ws.subscribe((r) => got.push(r));
      ws.create({ key: Buffer.from('/app/'), range_end: Buffer.from('/app0'), progress_notify: true });
      const until = async (pred: () => boolean, ms: number, what: string): Promise<void> => {
        const deadline = Date.now() + ms;
        while (!pred()) {
          if (Date.now() > deadline) throw new Error(`${what} not seen`);
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      await until(() => got.some((r) => r.created), 5_000, 'created');
      const created = got.find((r) => r.created)!;
      expect(created.canceled).toBe(false);
      const id = created.watch_id;
      const w = await clients[2].put('/app/progress', 'p');
      const wrote = Number(w.header.revision);
      // A notification (empty events, this watch's id) whose header covers the write, after its event.
      await until(() => got.some((r) => r.watch_id === id && r.events.length === 0 && !r.created && Number(r.header.revision) >= wrote), 5_000, 'a progress notification past the write');
      const eventAt = got.findIndex((r) => r.events.some((e) => e.kv.key.toString() === '/app/progress'));
      const notifyAt = got.findIndex((r) => r.watch_id === id && r.events.length === 0 && !r.created && Number(r.header.revision) >= wrote);
      expect(eventAt).toBeGreaterThanOrEqual(0);
      expect(eventAt).toBeLessThan(notifyAt);
      // A progress request right after a write: watch id -1, and its header (the delivered revision, after a
      // closing round started by the request) covers the write, whose event came first.
      for (let n = 0; n < 5; n++) {
        const w2 = await clients[n % 3].put(`/app/progress-${n}`, 'p');
        const wrote2 = Number(w2.header.revision);
        const before = got.length;
        ws.progress();
        await until(() => got.slice(before).some((r) => r.watch_id === '-1'), 5_000, 'a progress reply');
        const reply = got.slice(before).find((r) => r.watch_id === '-1')!;
        expect(Number(reply.header.revision)).toBeGreaterThanOrEqual(wrote2);
        const at = got.indexOf(reply);
        expect(got.slice(0, at).some((r) => r.events.some((e) => e.kv.key.toString() === `/app/progress-${n}`))).toBe(true);
      }
      // Headers never go backwards on the stream.
      const hs = got.filter((r) => !r.created).map((r) => Number(r.header.revision));
      for (let i = 1; i < hs.length; i++) expect(hs[i]).toBeGreaterThanOrEqual(hs[i - 1]);
      // Cancel: acknowledged, then nothing more for it.
      ws.cancel(id);
      await until(() => got.some((r) => r.watch_id === id && r.canceled), 5_000, 'the cancel');
      const n = got.length;
      await clients[1].put('/app/after-cancel', 'x');
      await new Promise((r) => setTimeout(r, PROGRESS_MS * 2));
      expect(got.slice(n).filter((r) => r.watch_id === id)).toEqual([]);
    } finally {
      ws.close();
    }
  }, 60_000);

  it('a watch on one key (one shard): progress notifications and requests name its shard\'s revision, past its events; Status names the newest', async () => {
    const ws = new WatchStream(cluster.endpointOf(0));
    const got: WatchResponse[] = [];
    const until = async (pred: () => boolean, ms: number, what: string): Promise<void> => {
      const deadline = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`${what} not seen`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    try {
      ws.subscribe((r) => got.push(r));
      ws.create({ key: Buffer.from('one-key'), progress_notify: true });
      await until(() => got.some((r) => r.created), 5_000, 'created');
      const id = got.find((r) => r.created)!.watch_id;
      for (let n = 0; n < 3; n++) {
        // Writes on other shards first: the revision moves on without this watch's shard.
        for (let k = 0; k < 4; k++) await clients[k % 3].put(`elsewhere-${n}-${k}`, 'x');
        const w = await clients[n % 3].put('one-key', `v${n}`);
        const wrote = Number(w.header.revision);
        await until(() => got.some((r) => r.events.some((e) => Number(e.kv.mod_revision) === wrote)), 5_000, `the event at ${wrote}`);
        const before = got.length;
        ws.progress();
        await until(() => got.slice(before).some((r) => r.watch_id === '-1'), 5_000, 'a progress reply');
        // Was the cluster group's revision (1) before: useless to a client waiting to see a revision.
        expect(Number(got.slice(before).find((r) => r.watch_id === '-1')!.header.revision)).toBeGreaterThanOrEqual(wrote);
        await until(() => got.slice(before).some((r) => r.watch_id === id && r.events.length === 0 && Number(r.header.revision) >= wrote), 5_000, 'a progress notification past the write');
      }
      // Never a header above an event still to come: the headers and events on the stream only go up.
      const hs = got.filter((r) => !r.created).map((r) => Math.max(Number(r.header.revision), ...r.events.map((e) => Number(e.kv.mod_revision))));
      for (let i = 1; i < hs.length; i++) expect(hs[i]).toBeGreaterThanOrEqual(hs[i - 1]);
      const events = got.flatMap((r) => r.events.map((e) => ({ at: got.indexOf(r), rev: Number(e.kv.mod_revision) })));
      for (const e of events) {
        for (const r of got.slice(e.at + 1)) expect(Number(r.header.revision), 'a header after an event').toBeGreaterThanOrEqual(e.rev);
      }
    } finally {
      ws.close();
    }
    // Status names the newest revision this member applied (was the cluster group's, 1).
    const last = Number((await clients[0].put('status-probe', 's')).header.revision);
    const status = JSON.parse(await etcdctlOk(cluster.endpointOf(0), ['endpoint', 'status', '-w', 'json'])) as Array<{ Status: { header: { revision: number } } }>;
    expect(status[0].Status.header.revision).toBeGreaterThanOrEqual(last);
  }, 60_000);

  it('filters and prev_kv as etcd: NOPUT with prev_kv gives only the deletes, each with the value it removed', async () => {
    const ws = new WatchStream(cluster.endpointOf(2));
    const got: WatchResponse[] = [];
    try {
      ws.subscribe((r) => got.push(r));
      ws.create({ key: Buffer.from('/app/f/'), range_end: Buffer.from('/app/f0'), filters: ['NOPUT'], prev_kv: true });
      ws.create({ key: Buffer.from('/app/f/'), range_end: Buffer.from('/app/f0'), filters: ['NODELETE'] });
      const deadline = Date.now() + 5_000;
      while (got.filter((r) => r.created).length < 2) {
        if (Date.now() > deadline) throw new Error('watches not created');
        await new Promise((r) => setTimeout(r, 10));
      }
      const [noPut, noDelete] = got.filter((r) => r.created).map((r) => r.watch_id);
      const wantDeletes: string[] = [];
      const wantPuts: string[] = [];
      for (let i = 0; i < 12; i++) {
        const key = `/app/f/${i}`;
        const p = await clients[i % 3].put(key, `f${i}`);
        wantPuts.push(`${p.header.revision}:${key}`);
        if (i % 2 === 0) {
          const d = await clients[(i + 1) % 3].deleteRange(key);
          wantDeletes.push(`${d.header.revision}:${key}:f${i}`);
        }
      }
      const events = (id: string): WatchResponse['events'] => got.filter((r) => r.watch_id === id).flatMap((r) => r.events);
      const until = Date.now() + 10_000;
      while (events(noPut).length < wantDeletes.length || events(noDelete).length < wantPuts.length) {
        if (Date.now() > until) throw new Error(`filtered events missing: ${events(noPut).length}/${wantDeletes.length}, ${events(noDelete).length}/${wantPuts.length}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      await new Promise((r) => setTimeout(r, 200));
      expect(events(noPut).map((e) => `${e.kv.mod_revision}:${e.kv.key.toString()}:${e.prev_kv?.value.toString()}`)).toEqual(wantDeletes);
      expect(events(noPut).every((e) => e.type === 'DELETE')).toBe(true);
      expect(events(noDelete).map((e) => `${e.kv.mod_revision}:${e.kv.key.toString()}`)).toEqual(wantPuts);
      expect(events(noDelete).every((e) => e.type === 'PUT' && e.prev_kv === null)).toBe(true);
    } finally {
      ws.close();
    }
  }, 60_000);

  it('a range delete over every shard far heavier than the merge budget (prev_kv): every DELETE arrives, in key order, at one revision', async () => {
    // 240 deletes carrying 2 KB prev values weigh ~500 KB, ~125 KB a shard, against the merge's 256 KiB
    // budget: any three shards' groups of the one revision are over it while the fourth is missing.
    // Until 2026-12-05 the merge then shed those groups and re-read them for ever: no event came, and
    // the watching member spun at 100% of a core.
    const value = 'v'.repeat(2_000);
    const keys = Array.from({ length: 240 }, (_, i) => `/app/bulk/${String(i).padStart(3, '0')}`);
    for (let i = 0; i < keys.length; i += 10) await Promise.all(keys.slice(i, i + 10).map((k, j) => clients[(i + j) % 3].put(k, value)));
    const ws = new WatchStream(cluster.endpointOf(2));
    const got: WatchResponse[] = [];
    try {
      ws.subscribe((r) => got.push(r));
      ws.create({ key: Buffer.from('/app/bulk/'), range_end: Buffer.from('/app/bulk0'), prev_kv: true });
      const created = Date.now() + 5_000;
      while (!got.some((r) => r.created)) {
        if (Date.now() > created) throw new Error('watch not created');
        await new Promise((r) => setTimeout(r, 10));
      }
      const d = await clients[0].deleteRange('/app/bulk/', { range_end: Buffer.from('/app/bulk0') });
      expect(Number(d.deleted)).toBe(keys.length);
      const events = (): WatchResponse['events'] => got.flatMap((r) => r.events);
      const until = Date.now() + 15_000;
      while (events().length < keys.length) {
        if (Date.now() > until) throw new Error(`${events().length} of ${keys.length} deletes arrived`);
        await new Promise((r) => setTimeout(r, 10));
      }
      const all = events();
      expect(all.map((e) => e.kv.key.toString())).toEqual(keys); // etcd's order: by key
      expect(all.every((e) => e.type === 'DELETE' && Number(e.kv.mod_revision) === Number(d.header.revision) && e.prev_kv?.value.toString() === value)).toBe(true);
      // The member still answers at once.
      const t0 = Date.now();
      await clients[2].put('/app/bulk-after', 'x');
      expect(Date.now() - t0).toBeLessThan(2_000);
    } finally {
      ws.close();
    }
  }, 90_000);

  it('a reader that stops reading: the merged output pauses at the stream budget, and every event arrives once, in order, when it reads again', async () => {
    const raw = new RawWatchStream(cluster.addressOf(1), { key: Buffer.from('/app/big/'), range_end: Buffer.from('/app/big0') });
    const revisions: number[] = [];
    raw.onResponse = (r) => {
      for (const e of r.events) revisions.push(Number(e.kv.mod_revision));
    };
    try {
      expect((await raw.whenCreated()).created).toBe(true);
      const value = Buffer.alloc(64 * 1024, 7);
      const want: number[] = [];
      // ~19 MiB of events while the reader reads nothing (far past the 256 KiB send budget).
      for (let i = 0; i < 300; i += 6) {
        const batch = await Promise.all([0, 1, 2, 3, 4, 5].map((j) => clients[(i + j) % 3].put(`/app/big/${i + j}`, value)));
        for (const r of batch) want.push(Number(r.header.revision));
      }
      await new Promise((r) => setTimeout(r, 300));
      raw.resume();
      want.sort((a, b) => a - b);
      const deadline = Date.now() + 20_000;
      while (revisions.length < want.length) {
        if (Date.now() > deadline) throw new Error(`only ${revisions.length} of ${want.length} events after the reader resumed`);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(revisions).toEqual(want);
    } finally {
      raw.close();
    }
  }, 90_000);

  it('a start below the compaction is canceled with compact_revision, as etcd cancels it', async () => {
    const sorted = history.map((h) => h.revision).sort((a, b) => a - b);
    const c = sorted[Math.floor(sorted.length / 2)];
    await etcdctlOk(cluster.endpoints, ['compaction', String(c)]);
    const ctl = await etcdctl(cluster.endpointOf(1), ['watch', '--prefix', '/app/', '--rev', String(c - 1)], { timeoutMs: 10_000 });
    expect(ctl.stdout + ctl.stderr).toContain('watch was canceled (etcdserver: mvcc: required revision has been compacted)');
    const ws = new WatchStream(cluster.endpointOf(0));
    try {
      ws.create({ key: Buffer.from('/app/'), range_end: Buffer.from('/app0'), start_revision: c - 1 });
      const created = await ws.next();
      expect(created.created).toBe(true);
      const canceled = created.canceled ? created : await ws.next();
      expect(canceled.canceled).toBe(true);
      expect(Number(canceled.compact_revision)).toBe(c);
      // At the compaction revision itself the history is still there.
      ws.create({ key: Buffer.from('/app/'), range_end: Buffer.from('/app0'), start_revision: c });
      const ok = await ws.next();
      expect(ok.created && !ok.canceled).toBe(true);
      const first = await ws.next();
      expect(Number(first.events[0].kv.mod_revision)).toBe(c);
    } finally {
      ws.close();
    }
  }, 60_000);

  it('a member killed with -9: a watch on a surviving member keeps delivering every acknowledged write, once, in order', async () => {
    const survivor = new EtcdctlWatch(cluster.endpointOf(0), ['--prefix', '/app/k9/']);
    try {
      await sentinel(survivor, 'k9', '/app/k9/');
      await cluster.kill9(2);
      const acked: Written[] = [];
      for (let i = 0; i < 30; i++) {
        const key = `/app/k9/${String(i).padStart(2, '0')}`;
        for (let attempt = 0; ; attempt++) {
          try {
            const r = await clients[i % 2].put(key, `a${attempt}`, {}, 8_000);
            acked.push({ type: 'PUT', key, revision: Number(r.header.revision), ackMs: Date.now() });
            break;
          } catch (err) {
            // A write forwarded to a leader that just died is lost unacknowledged; try again.
            expect(attempt).toBeLessThan(5);
            console.log(`put ${key} attempt ${attempt} failed after kill -9: ${(err as Error).message}`);
          }
        }
      }
      await survivor.until(() => acked.every((h) => survivor.has(h.key, h.revision)), 20_000, 'every acknowledged write after the kill');
      checkOrderAndOnce(survivor);
      const delays = acked.map((t) => survivor.events.find((e) => e.key === t.key && e.revision === t.revision)!.atMs - t.ackMs).sort((a, b) => a - b);
      console.log(`merged watch after kill -9 of a member: ${acked.length} writes, ack → event p50 ${percentile(delays, 50)} ms, max ${delays[delays.length - 1]} ms`);
    } finally {
      await survivor.stop();
      if (!cluster.isRunning(2)) {
        cluster.startMember(2);
        await cluster.waitReady();
      }
    }
  }, 120_000);

  it('closing rounds run on a member only while it holds a watch over several shards (idle: none)', async () => {
    const metric = async (name: string): Promise<number> => {
      const line = (await cluster.metrics(2)).split('\n').find((l) => l.startsWith(`${name} `));
      if (line === undefined) throw new Error(`no ${name} in /metrics`);
      return Number(line.split(' ')[1]);
    };
    // Member 3 holds no merged watch (the etcdctl watchers are on the others): no rounds.
    const idle = await metric('synod_shard_closing_rounds_total');
    await new Promise((r) => setTimeout(r, 500));
    expect(await metric('synod_shard_closing_rounds_total')).toBe(idle);
    expect(await metric('synod_shard_closing_active')).toBe(0);
    const ws = new WatchStream(cluster.endpointOf(2));
    try {
      ws.create({ key: Buffer.from('/app/'), range_end: Buffer.from('/app0') });
      expect((await ws.next()).created).toBe(true);
      await new Promise((r) => setTimeout(r, 1_000));
      // Nothing written under the range: the first round, then none (every shard resolved alike).
      const quiet = (await metric('synod_shard_closing_rounds_total')) - idle;
      expect(await metric('synod_shard_closing_active')).toBe(1);
      expect(quiet).toBeGreaterThanOrEqual(1);
      expect(quiet).toBeLessThanOrEqual(2);
      expect(await metric('synod_shard_closes_total')).toBeGreaterThan(0);
      // Writes under the range: rounds on demand, coalesced. Two bounds hold whatever the machine's
      // speed: rounds start at least CLOSE_MIN_GAP_MS apart, and each starts for a delivered event (one
      // per write here: the writes are sequential) or a heartbeat. The window spans both metric reads,
      // since a round counted by the second read may have started while the first was in flight.
      const writes = 40;
      const windowStart = Date.now();
      const before = await metric('synod_shard_closing_rounds_total');
      const started = Date.now();
      for (let i = 0; i < writes; i++) await clients[i % 3].put(`/app/busy/${i}`, 'x');
      const busyMs = Date.now() - started;
      const busy = (await metric('synod_shard_closing_rounds_total')) - before;
      const windowMs = Date.now() - windowStart;
      expect(busy).toBeLessThanOrEqual(Math.ceil(windowMs / CLOSE_MIN_GAP_MS) + 1);
      expect(busy).toBeLessThanOrEqual(writes + Math.ceil(windowMs / CLOSE_HEARTBEAT_MS) + 1);
      console.log(`closing rounds with one merged watch open: ${quiet} in 1 s idle (the first); ${busy} during ${writes} writes in ${busyMs} ms (${SHARDS} shard closes each)`);
      ws.cancel(0);
      for (;;) {
        const r = await ws.next(); // the busy writes' events, then the cancel
        if (r.canceled) break;
        expect(r.events.length).toBeGreaterThan(0);
      }
    } finally {
      ws.close();
    }
    await new Promise((r) => setTimeout(r, 100));
    const after = await metric('synod_shard_closing_rounds_total');
    await new Promise((r) => setTimeout(r, 500));
    expect(await metric('synod_shard_closing_rounds_total')).toBe(after);
    expect(await metric('synod_shard_closing_active')).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await live?.stop();
  });
});

// The Watch stream protocol over real gRPC: several watches on one stream, history replay,
// filters, prev_kv, cancel, progress requests and notifications, compaction cancel.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { KvClient } from './support/kv-client.ts';
import { WatchStream, type WatchResponse } from './support/watch-client.ts';

let cluster: ProcessCluster;
let kv: KvClient;
const streams: WatchStream[] = [];

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 1, extraArgs: ['--watch-progress-notify-interval', '300'] });
  kv = new KvClient(cluster.endpointOf(0));
});

afterEach(() => {
  for (const s of streams.splice(0)) s.close();
});

afterAll(async () => {
  kv?.close();
  await cluster?.destroy();
});

function open(): WatchStream {
  const s = new WatchStream(cluster.endpointOf(0));
  streams.push(s);
  return s;
}

const b = (s: string): Buffer => Buffer.from(s);

describe('Watch API', () => {
  it('several watches on one stream, each with its own id, events routed by id', async () => {
    const s = open();
    s.create({ key: b('a') });
    const c1 = await s.next();
    s.create({ key: b('b') });
    const c2 = await s.next();
    expect(c1.created && c2.created).toBe(true);
    expect(c1.watch_id).not.toBe(c2.watch_id);
    await kv.put('b', '1');
    await kv.put('a', '2');
    const e1 = await s.next();
    const e2 = await s.next();
    expect(e1.watch_id).toBe(c2.watch_id);
    expect(e1.events[0].kv.key.toString()).toBe('b');
    expect(e2.watch_id).toBe(c1.watch_id);
    expect(e2.events[0].kv.value.toString()).toBe('2');
    expect(Number(e2.header.revision)).toBe(Number(e2.events[0].kv.mod_revision));
  });

  it('replays history from start_revision, then follows live, with prev_kv and filters', async () => {
    const r1 = await kv.put('h/x', 'v1');
    await kv.put('h/x', 'v2');
    await kv.deleteRange('h/x');
    const s = open();
    s.create({ key: b('h/'), range_end: b('h0'), start_revision: r1.header.revision, prev_kv: true });
    expect((await s.next()).created).toBe(true);
    const events: WatchResponse['events'] = [];
    while (events.length < 3) events.push(...(await s.next()).events);
    expect(events.map((e) => `${e.type}:${e.kv.value.toString()}:${e.prev_kv?.value.toString() ?? '-'}`)).toEqual([
      'PUT:v1:-',
      'PUT:v2:v1',
      'DELETE::v2',
    ]);
    await kv.put('h/y', 'live');
    expect((await s.next()).events[0].kv.key.toString()).toBe('h/y');

    const noPut = open();
    noPut.create({ key: b('f'), filters: ['NOPUT'] });
    await noPut.next();
    await kv.put('f', '1');
    await kv.deleteRange('f');
    const got = await noPut.next();
    expect(got.events.map((e) => e.type)).toEqual(['DELETE']);
    expect(got.events[0].prev_kv).toBeNull();
  });

  it('a stream the client half-closed keeps delivering events until cancelled, as etcd\'s does', async () => {
    const s = open();
    s.create({ key: b('half/'), range_end: b('half0') });
    expect((await s.next()).created).toBe(true);
    s.halfClose();
    await kv.put('half/1', 'after');
    const e = await s.next();
    expect(e.events.map((ev) => ev.kv.value.toString())).toEqual(['after']);
  });

  it('cancel answers canceled and stops events', async () => {
    const s = open();
    s.create({ key: b('c') });
    const created = await s.next();
    s.cancel(created.watch_id);
    const canceled = await s.next();
    expect(canceled).toMatchObject({ watch_id: created.watch_id, canceled: true });
    await kv.put('c', 'x');
    expect(await s.quiet(300)).toBe(true);
  });

  it('progress requests and progress_notify report the current revision', async () => {
    const s = open();
    s.create({ key: b('p'), progress_notify: true });
    const created = await s.next();
    const put = await kv.put('other', 'x');
    const notify = await s.next(3_000);
    expect(notify.watch_id).toBe(created.watch_id);
    expect(notify.events).toEqual([]);
    expect(Number(notify.header.revision)).toBeGreaterThanOrEqual(Number(put.header.revision));
    s.progress();
    for (;;) {
      const r = await s.next();
      if (r.watch_id === '-1') {
        expect(Number(r.header.revision)).toBeGreaterThanOrEqual(Number(put.header.revision));
        break;
      }
    }
  });

  it('a watch from a compacted revision is created, then canceled with compact_revision', async () => {
    const r1 = await kv.put('cp', '1');
    const r2 = await kv.put('cp', '2');
    await kv.compact(Number(r2.header.revision));
    const s = open();
    s.create({ key: b('cp'), start_revision: r1.header.revision });
    expect((await s.next()).created).toBe(true);
    const canceled = await s.next();
    expect(canceled).toMatchObject({
      canceled: true,
      compact_revision: r2.header.revision,
      cancel_reason: 'etcdserver: mvcc: required revision has been compacted',
    });
  });

  it('a user-chosen watch id is kept, and a duplicate is refused', async () => {
    const s = open();
    s.create({ key: b('u'), watch_id: 42 });
    expect(await s.next()).toMatchObject({ watch_id: '42', created: true });
    s.create({ key: b('u2'), watch_id: 42 });
    expect(await s.next()).toMatchObject({ watch_id: '-1', canceled: true });
  });
});

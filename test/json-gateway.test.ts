// etcd's JSON gateway (POST /v3/...) on the client port, against a real etcd (Debian's etcd 3.4): the same
// requests, sent with curl-like HTTP/1.1 to both, must get the same status and the same JSON once what
// legitimately differs is masked (cluster and member ids, raft terms, lease ids, tokens, versions and
// sizes). One shard, so revisions are etcd's exactly. Then a watch and a lease keep-alive as streams,
// a sharded cluster's gateway, and auth through the Authorization header. (api/json-gateway.ts)
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { EtcdReference } from './support/etcd-reference.ts';
import { httpRequest, type HttpAnswer } from './support/http-request.ts';

let synod: ProcessCluster;
let etcd: EtcdReference | null = null;

beforeAll(async () => {
  [synod, etcd] = await Promise.all([ProcessCluster.start({ size: 3 }), EtcdReference.available() ? EtcdReference.start() : null]);
});

afterAll(async () => {
  await Promise.all([synod?.destroy(), etcd?.stop()]);
});

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function post(address: string, path: string, body: string, headers: Record<string, string> = {}, method = 'POST'): Promise<HttpAnswer> {
  return httpRequest(address, path, { method, body, headers: { 'content-type': 'application/json', ...headers } });
}

/** The JSON with what differs between two clusters masked (ids, terms, tokens, versions, sizes). */
function masked(body: string): string {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return body.trim();
  }
  const MASK = new Set(['cluster_id', 'member_id', 'raft_term', 'ID', 'token', 'dbSize', 'dbSizeInUse', 'leader', 'raftIndex', 'raftTerm', 'raftAppliedIndex']);
  const walk = (v: unknown, key: string): unknown => {
    if (Array.isArray(v)) return v.map((x) => walk(x, key));
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
    return MASK.has(key) ? '<masked>' : v;
  };
  return JSON.stringify(walk(value, ''));
}

describe('the JSON gateway against real etcd', () => {
  const steps: Array<{ name: string; path: string; body: string; method?: string }> = [
    { name: 'put', path: '/v3/kv/put', body: JSON.stringify({ key: b64('foo'), value: b64('bar') }) },
    { name: 'put with prev_kv', path: '/v3/kv/put', body: JSON.stringify({ key: b64('foo'), value: b64('baz'), prev_kv: true }) },
    { name: 'range one key', path: '/v3/kv/range', body: JSON.stringify({ key: b64('foo') }) },
    { name: 'range a missing key', path: '/v3/kv/range', body: JSON.stringify({ key: b64('none') }) },
    { name: 'range count_only', path: '/v3/kv/range', body: JSON.stringify({ key: b64('a'), range_end: b64('z'), count_only: true }) },
    { name: 'range sorted, limited, an unknown field ignored', path: '/v3/kv/range', body: JSON.stringify({ key: b64('a'), range_end: b64('z'), sort_order: 'DESCEND', sort_target: 'KEY', limit: '1', unknown_field: 1 }) },
    { name: 'empty key refused', path: '/v3/kv/put', body: JSON.stringify({ key: '' }) },
    { name: 'future revision refused', path: '/v3/kv/range', body: JSON.stringify({ key: b64('foo'), revision: '100' }) },
    { name: 'txn', path: '/v3/kv/txn', body: JSON.stringify({ compare: [{ key: b64('foo'), result: 'EQUAL', target: 'VALUE', value: b64('baz') }], success: [{ request_range: { key: b64('foo') } }, { request_put: { key: b64('t'), value: b64('1') } }], failure: [] }) },
    { name: 'txn failure branch', path: '/v3/kv/txn', body: JSON.stringify({ compare: [{ key: b64('foo'), result: 'EQUAL', target: 'VALUE', value: b64('nope') }], success: [], failure: [{ request_delete_range: { key: b64('t'), prev_kv: true } }] }) },
    // Each inner response's header names the revision at its op: before the txn until it changes something,
    // then the txn's; a delete of nothing before any change, the one before; a nested txn's header is empty.
    {
      name: 'txn: each op\'s own header revision, a nested txn',
      path: '/v3/kv/txn',
      body: JSON.stringify({
        success: [
          { request_delete_range: { key: b64('nothing-here') } },
          { request_range: { key: b64('foo') } },
          { request_put: { key: b64('t2'), value: b64('2') } },
          { request_range: { key: b64('t2') } },
          { request_delete_range: { key: b64('nothing-here') } },
          { request_txn: { success: [{ request_range: { key: b64('t2') } }] } },
        ],
      }),
    },
    { name: 'lease grant', path: '/v3/lease/grant', body: JSON.stringify({ TTL: '60' }) },
    { name: 'put with a lease that does not exist', path: '/v3/kv/put', body: JSON.stringify({ key: b64('l'), value: b64('v'), lease: '123' }) },
    { name: 'revoke a lease that does not exist (the kv/ alias)', path: '/v3/kv/lease/revoke', body: JSON.stringify({ ID: '123' }) },
    { name: 'deleterange with prev_kv', path: '/v3/kv/deleterange', body: JSON.stringify({ key: b64('foo'), prev_kv: true }) },
    { name: 'compaction', path: '/v3/kv/compaction', body: JSON.stringify({ revision: '3' }) },
    { name: 'range at a compacted revision', path: '/v3/kv/range', body: JSON.stringify({ key: b64('foo'), revision: '2' }) },
    { name: 'empty body', path: '/v3/kv/range', body: '' },
    { name: 'unknown path', path: '/v3/kv/nothing', body: '{}' },
    { name: 'GET on a gateway path', path: '/v3/kv/range', body: '', method: 'GET' },
  ];

  it.skipIf(!EtcdReference.available())('answers every request as etcd does', async () => {
    const mismatches: string[] = [];
    for (const step of steps) {
      const [theirs, ours] = await Promise.all([post(etcd!.endpoint, step.path, step.body, {}, step.method), post(synod.addressOf(0), step.path, step.body, {}, step.method)]);
      const left = `${theirs.status} ${masked(theirs.body)}`;
      const right = `${ours.status} ${masked(ours.body)}`;
      if (left !== right) mismatches.push(`${step.name}: ${step.method ?? 'POST'} ${step.path} ${step.body}\n--- etcd\n${left}\n--- synod\n${right}`);
    }
    expect(mismatches, mismatches.join('\n\n')).toEqual([]);
  });

  it.skipIf(!EtcdReference.available())('a watch and a keep-alive stream the same lines as etcd\'s', async () => {
    const lease = async (address: string): Promise<string> => (JSON.parse((await post(address, '/v3/lease/grant', JSON.stringify({ TTL: '60' }))).body) as { ID: string }).ID;
    const run = async (address: string): Promise<string[]> => {
      const watch = openStream(address, '/v3/watch', JSON.stringify({ create_request: { key: b64('sw/'), range_end: b64('sw0'), prev_kv: true } }));
      const keep = openStream(address, '/v3/lease/keepalive', JSON.stringify({ ID: await lease(address) }));
      try {
        // Both answered before the writes, so the revisions their headers name are the same on both systems.
        await until('created', () => watch.lines.length >= 1);
        await until('a keep-alive answer', () => keep.lines.length >= 1);
        await post(address, '/v3/kv/put', JSON.stringify({ key: b64('sw/a'), value: b64('1') }));
        await post(address, '/v3/kv/put', JSON.stringify({ key: b64('sw/a'), value: b64('2') }));
        await post(address, '/v3/kv/deleterange', JSON.stringify({ key: b64('sw/a') }));
        await until('three events', () => watch.lines.length >= 4);
        return [...watch.lines, ...keep.lines].map(masked);
      } finally {
        watch.stop();
        keep.stop();
      }
    };
    const [theirs, ours] = await Promise.all([run(etcd!.endpoint.replace(/^https?:\/\//, '')), run(synod.addressOf(0))]);
    expect(ours).toEqual(theirs);
  });

  it.skipIf(!EtcdReference.available())('refuses malformed JSON with a 400 and code 3, as etcd does', async () => {
    for (const address of [etcd!.endpoint, synod.addressOf(1)]) {
      const a = await post(address, '/v3/kv/range', '{bad json');
      expect(a.status).toBe(400);
      expect(JSON.parse(a.body)).toMatchObject({ code: 3 });
    }
  });
});

/** Opens a streaming gateway call; the lines received so far, and a way to stop it. */
function openStream(address: string, path: string, body: string): { lines: string[]; status: Promise<number>; stop(): void } {
  const [host, port] = address.split(':');
  const lines: string[] = [];
  let buffered = '';
  const req = http.request({ host, port: Number(port), path, method: 'POST', agent: false });
  const status = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      resolve(res.statusCode ?? 0);
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buffered += d;
        const parts = buffered.split('\n');
        buffered = parts.pop() ?? '';
        lines.push(...parts.filter((l) => l !== ''));
      });
    });
    req.on('error', (err) => (lines.length > 0 ? undefined : reject(err)));
  });
  req.end(body);
  return { lines, status, stop: () => req.destroy() };
}

async function until(what: string, ok: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what}: gave up`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('streaming calls through the gateway', () => {
  it('a watch streams {"result":...} lines after the request body ended: created, then each event', async () => {
    const watch = openStream(synod.addressOf(2), '/v3/watch', JSON.stringify({ create_request: { key: b64('w/'), range_end: b64('w0') } }));
    try {
      expect(await watch.status).toBe(200);
      await until('created', () => watch.lines.length >= 1);
      expect(JSON.parse(watch.lines[0])).toMatchObject({ result: { created: true } });
      await post(synod.addressOf(0), '/v3/kv/put', JSON.stringify({ key: b64('w/1'), value: b64('one') }));
      await post(synod.addressOf(1), '/v3/kv/put', JSON.stringify({ key: b64('w/2'), value: b64('two') }));
      await until('two events', () => watch.lines.length >= 3);
      const events = watch.lines.slice(1).flatMap((l) => (JSON.parse(l) as { result: { events?: Array<{ kv: { key: string; value: string } }> } }).result.events ?? []);
      expect(events.map((e) => [Buffer.from(e.kv.key, 'base64').toString(), Buffer.from(e.kv.value, 'base64').toString()])).toEqual([
        ['w/1', 'one'],
        ['w/2', 'two'],
      ]);
    } finally {
      watch.stop();
    }
  });

  it('a lease keep-alive answers with the lease\'s TTL; a bad body ends the stream with an error line', async () => {
    const granted = JSON.parse((await post(synod.addressOf(0), '/v3/lease/grant', JSON.stringify({ TTL: '30' }))).body) as { ID: string };
    const keep = openStream(synod.addressOf(1), '/v3/lease/keepalive', JSON.stringify({ ID: granted.ID }));
    try {
      await until('keep-alive answered', () => keep.lines.length >= 1);
      expect(JSON.parse(keep.lines[0])).toMatchObject({ result: { ID: granted.ID, TTL: '30' } });
    } finally {
      keep.stop();
    }
    const bad = await post(synod.addressOf(1), '/v3/lease/keepalive', '{"ID": ');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ code: 3 });
  });
});

describe('auth through the gateway', () => {
  it('authenticate gives a token; the Authorization header carries it; without it a read is refused', async () => {
    const at = synod.addressOf(0);
    expect((await post(at, '/v3/kv/put', JSON.stringify({ key: b64('auth/k'), value: b64('v') }))).status).toBe(200);
    expect((await post(at, '/v3/auth/user/add', JSON.stringify({ name: 'root', password: 'rootpw' }))).status).toBe(200);
    expect((await post(at, '/v3/auth/user/grant', JSON.stringify({ user: 'root', role: 'root' }))).status).toBe(200);
    expect((await post(at, '/v3/auth/enable', '{}')).status).toBe(200);
    try {
      const refused = await post(at, '/v3/kv/range', JSON.stringify({ key: b64('foo') }));
      expect(refused.status).not.toBe(200);
      const token = (JSON.parse((await post(at, '/v3/auth/authenticate', JSON.stringify({ name: 'root', password: 'rootpw' }))).body) as { token: string }).token;
      expect(token).toMatch(/./);
      const read = await post(at, '/v3/kv/range', JSON.stringify({ key: b64('auth/k') }), { authorization: token });
      expect(read.status).toBe(200);
      expect(JSON.parse(read.body)).toMatchObject({ count: '1' });
      const wrong = await post(at, '/v3/kv/range', JSON.stringify({ key: b64('auth/k') }), { authorization: 'not-a-token' });
      expect(wrong.status).toBe(401);
      expect(JSON.parse(wrong.body)).toEqual({ error: 'etcdserver: invalid auth token', message: 'etcdserver: invalid auth token', code: 16 });
      expect((await post(at, '/v3/auth/disable', '{}', { authorization: token })).status).toBe(200);
    } finally {
      await post(at, '/v3/auth/disable', '{}').catch(() => undefined);
    }
  });
});

describe('the gateway on a 16-shard cluster', () => {
  it('puts and ranges over shards, and a txn across shards', async () => {
    const sharded = await ProcessCluster.start({ size: 3, memberArgs: () => ['--shards', '16'] });
    try {
      for (let i = 0; i < 6; i++) expect((await post(sharded.addressOf(i % 3), '/v3/kv/put', JSON.stringify({ key: b64(`s/${i}`), value: b64(String(i)) }))).status).toBe(200);
      const all = JSON.parse((await post(sharded.addressOf(1), '/v3/kv/range', JSON.stringify({ key: b64('s/'), range_end: b64('s0') }))).body) as { kvs: Array<{ key: string }>; count: string };
      expect(all.count).toBe('6');
      expect(all.kvs.map((kv) => Buffer.from(kv.key, 'base64').toString())).toEqual(['s/0', 's/1', 's/2', 's/3', 's/4', 's/5']);
      const txn = await post(sharded.addressOf(2), '/v3/kv/txn', JSON.stringify({ success: [{ request_put: { key: b64('x/a'), value: b64('1') } }, { request_put: { key: b64('y/b'), value: b64('2') } }] }));
      expect(txn.status).toBe(200);
      expect(JSON.parse(txn.body)).toMatchObject({ succeeded: true });
      // A one-shard txn (a hash tag) through every member, forwarded to its shard's leader from two of
      // them: each inner header names the revision at its op, as on one group.
      type Inner = { header?: { revision?: string } };
      for (let i = 0; i < 3; i++) {
        const one = JSON.parse(
          (await post(sharded.addressOf(i), '/v3/kv/txn', JSON.stringify({ success: [{ request_range: { key: b64('{h}a') } }, { request_put: { key: b64('{h}a'), value: b64(String(i)) } }, { request_range: { key: b64('{h}a') } }, { request_txn: {} }] }))).body,
        ) as { header: { revision: string }; responses: Array<{ response_range?: Inner; response_put?: Inner; response_txn?: Inner }> };
        const [before, put, after, nested] = one.responses;
        expect(Number(before.response_range!.header!.revision)).toBeLessThan(Number(put.response_put!.header!.revision));
        expect(put.response_put!.header!.revision).toBe(one.header.revision);
        expect(after.response_range!.header!.revision).toBe(one.header.revision);
        expect(nested.response_txn!.header).toEqual({});
      }
    } finally {
      await sharded.destroy();
    }
  }, 60_000);
});

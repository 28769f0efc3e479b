// HTTP/1.1 on the client port, as etcd serves it there (3 real Synod processes, Debian's etcdctl and etcd):
// GET /health (etcd 3.5's JSON, 503 with the reason when unhealthy), /version and /metrics beside gRPC
// on the same port — what Kubernetes probes, load balancers, Prometheus scrapes of 2379 and `etcdctl
// check datascale` ask for. api/authority-repair.ts tells HTTP/1.x from HTTP/2 by a connection's first
// bytes; api/etcd-health.ts makes the check.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { EtcdReference } from './support/etcd-reference.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { alarmClient } from './support/alarm-client.ts';
import { eventually } from './support/eventually.ts';
import { httpRequest, type HttpAnswer } from './support/http-request.ts';

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3 });
});

afterAll(async () => {
  await cluster?.destroy();
});

/** One HTTP/1.1 request to `address` (host:port), through `agent` when given (keep-alive). */
function request(address: string, path: string, method = 'GET', agent?: http.Agent): Promise<HttpAnswer> {
  return httpRequest(address, path, { method, agent });
}

describe('HTTP on the client port, as etcd answers it', () => {
  it('GET /health answers {"health":"true","reason":""} on every member, linearizable and serializable', async () => {
    for (let i = 0; i < 3; i++) {
      for (const path of ['/health', '/health?serializable=true']) {
        const a = await request(cluster.addressOf(i), path);
        expect(a.status, path).toBe(200);
        expect(a.contentType).toBe('text/plain; charset=utf-8');
        expect(a.body).toBe('{"health":"true","reason":""}');
      }
    }
  });

  it('/version, /metrics (with the unprefixed process metrics), 405 for POST /health, 404 elsewhere', async () => {
    const address = cluster.addressOf(0);
    const version = await request(address, '/version');
    expect(version.status).toBe(200);
    expect(JSON.parse(version.body)).toEqual({ etcdserver: '3.5.0', etcdcluster: '3.5.0' });
    const metrics = await request(address, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^process_resident_memory_bytes \d+/m);
    expect(metrics.body).toMatch(/^synod_raft_term /m);
    expect((await request(address, '/health', 'POST')).status).toBe(405);
    expect((await request(address, '/nothing-here')).status).toBe(404);
    // The fault-injection door is the metrics port's alone (and only with its flag).
    expect((await request(address, '/debug/fault/partition', 'POST')).status).toBe(404);
  });

  it('answers with etcd\'s CORS headers, and a preflight OPTIONS with an empty 200', async () => {
    const preflight = await request(cluster.addressOf(0), '/v3/kv/range', 'OPTIONS');
    expect(preflight.status).toBe(200);
    expect(preflight.body).toBe('');
    const res = await fetch(`http://${cluster.addressOf(0)}/health`, { headers: { origin: 'http://example' } });
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(res.headers.get('access-control-allow-methods')).toBe('POST, GET, OPTIONS, PUT, DELETE');
    expect(res.headers.get('access-control-allow-headers')).toBe('accept, content-type, authorization');
  });

  it('keeps an HTTP/1.1 connection alive across requests, and gRPC on the same port is untouched', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await request(cluster.addressOf(1), '/health', 'GET', agent);
      const second = await request(cluster.addressOf(1), '/version', 'GET', agent);
      expect(first.status).toBe(200);
      expect(second.status).toBe(200);
      expect(second.socketPort).toBe(first.socketPort); // one connection
    } finally {
      agent.destroy();
    }
    expect(await etcdctlOk(cluster.endpointOf(1), ['put', 'http/after', 'grpc'])).toBe('OK\n');
    expect(await etcdctlOk(cluster.endpoints, ['get', 'http/after', '--print-value-only'])).toBe('grpc\n');
  });

  it('an alarm makes /health 503 with etcd\'s reason; ?exclude=NOSPACE ignores it', async () => {
    const alarms = alarmClient(cluster.addressOf(0));
    try {
      const memberId = (await etcdctlOk(cluster.endpointOf(0), ['endpoint', 'status', '-w', 'json'])).match(/"member_id":(\d+)/)?.[1];
      expect(memberId).toBeDefined();
      await alarms.alarm('ACTIVATE', memberId!, 'NOSPACE');
      const down = await eventually('the alarm seen by member 2', async () => {
        const a = await request(cluster.addressOf(2), '/health');
        return a.status === 503 ? a : null;
      }, 10_000);
      expect(down.body).toBe('{"health":"false","reason":"ALARM NOSPACE"}\n');
      expect((await request(cluster.addressOf(2), '/health?exclude=NOSPACE')).body).toBe('{"health":"true","reason":""}');
      await alarms.alarm('DEACTIVATE', memberId!, 'NOSPACE');
      await eventually('healthy again', async () => ((await request(cluster.addressOf(2), '/health')).status === 200 ? true : null), 10_000);
    } finally {
      alarms.close();
    }
  });

  it('etcdctl check datascale reads process_resident_memory_bytes from the client port and passes', async () => {
    const out = await etcdctl(cluster.endpoints, ['check', 'datascale', '--load=s'], { timeoutMs: 120_000 });
    expect(out.stdout + out.stderr).toMatch(/PASS: Approximate system memory used/);
    expect(out.code).toBe(0);
  }, 150_000);

  it.skipIf(!EtcdReference.available())('/health and /version have the keys real etcd answers with', async () => {
    const etcd = await EtcdReference.start();
    try {
      const address = etcd.endpoint.replace(/^https?:\/\//, '');
      const [theirs, ours] = await Promise.all([request(address, '/health'), request(cluster.addressOf(0), '/health')]);
      expect(theirs.status).toBe(ours.status);
      expect(JSON.parse(ours.body).health).toBe(JSON.parse(theirs.body).health);
      const [theirVersion, ourVersion] = await Promise.all([request(address, '/version'), request(cluster.addressOf(0), '/version')]);
      expect(Object.keys(JSON.parse(ourVersion.body))).toEqual(Object.keys(JSON.parse(theirVersion.body)));
    } finally {
      await etcd.stop();
    }
  });

  it('a member that lost its quorum answers 503 with the reason', async () => {
    await cluster.stopMember(1);
    await cluster.stopMember(2);
    const a = await eventually('member 0 unhealthy', async () => {
      const r = await request(cluster.addressOf(0), '/health');
      return r.status === 503 ? r : null;
    }, 15_000);
    expect(a.body).toMatch(/^\{"health":"false","reason":"(RAFT NO LEADER|QGET ERROR:.+)"\}\n$/);
  }, 30_000);
});

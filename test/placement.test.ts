// The placement surface on a real 3-member cluster of processes (today: one shard owning every slot,
// hosted by every voter): GET /placement's JSON shape and values against etcdctl's view of the cluster,
// ?key= against slots.ts, gRPC synod.v1.Placement, `synod placement`, the placement gauges, --zone,
// and a learner added and removed with `etcdctl member add --learner` / `member remove`.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctlOk } from './support/etcdctl.ts';
import { freePorts } from './support/ports.ts';
import { RawGrpc } from './support/raw-grpc.ts';
import { slotOf, SLOT_COUNT } from '../server/routing/slots.ts';
import { placementClientConstructor, wireToView, type GetPlacementWire, type LocateKeyWire } from '../server/api/placement-service.ts';
import type { PlacementView } from '../server/placement/placement-view.ts';

const SYNOD_CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'server', 'cli', 'synod.ts');
/** Each member's --zone; read at every (re)start, so a test can restart a member in another zone. */
const ZONES = ['zone-a', 'zone-b', 'zone-c'];

let cluster: ProcessCluster;
/** Member ids in etcdctl's hex, by member index. */
let ids: string[];

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3, memberArgs: (i) => ['--zone', ZONES[i]] });
  const status = JSON.parse(await etcdctlOk(cluster.endpoints, ['endpoint', 'status', '-w', 'json'])) as Array<{ Endpoint: string; Status: { header: { member_id: number } } }>;
  ids = cluster.members.map((m) => BigInt(status.find((s) => s.Endpoint === `127.0.0.1:${m.clientPort}`)!.Status.header.member_id).toString(16));
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

async function getJson(i: number, query = ''): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${cluster.members[i].metricsPort}/placement${query}`, { signal: AbortSignal.timeout(3_000) });
  expect(res.headers.get('content-type')).toBe('application/json');
  return { status: res.status, body: await res.json() };
}

const placement = async (i: number): Promise<PlacementView> => (await getJson(i)).body as PlacementView;

async function eventually<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function synod(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SYNOD_CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function grpcCall<Res>(client: grpc.Client, method: string, req: object): Promise<Res> {
  const fn = (client as unknown as Record<string, (r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: Res) => void) => void>)[method];
  return new Promise((resolve, reject) => fn.call(client, req, { deadline: Date.now() + 5_000 }, (e, r) => (e ? reject(e) : resolve(r))));
}

describe('placement surface on a 3-member cluster', () => {
  it('GET /placement: 3 voters on one shard owning every slot, the real leader, zones, and a put\'s revision', async () => {
    // Zones arrive through the log (each member publishes its own): wait until member 0 applied all three.
    const view = await eventually('all zones published', async () => {
      const v = await placement(0);
      return v.members.every((m) => m.zone !== '') ? v : null;
    });
    expect(Object.keys(view)).toEqual(['version', 'members', 'shards', 'moves']);
    expect(view.version).toBe(0); // the bootstrap membership: no conf change applied yet
    const byId = [...cluster.members.keys()].sort((a, b) => (BigInt(`0x${ids[a]}`) < BigInt(`0x${ids[b]}`) ? -1 : 1));
    expect(view.members).toEqual(
      byId.map((i) => ({
        id: ids[i],
        name: cluster.members[i].name,
        zone: ZONES[i],
        clientURLs: [`http://127.0.0.1:${cluster.members[i].clientPort}`],
        peerURLs: [cluster.peerUrlOf(i)],
      })),
    );
    // The same ids etcdctl member list prints.
    const listed = (await etcdctlOk(cluster.endpoints, ['member', 'list'])).trim().split('\n').map((l) => l.split(', ')[0]);
    expect(view.members.map((m) => m.id).sort()).toEqual([...listed].sort());

    const leader = ids[await cluster.leaderIndex()];
    expect(view.shards).toHaveLength(1);
    const shard = view.shards[0];
    expect(Object.keys(shard)).toEqual(['id', 'slots', 'replicas', 'learners', 'leader', 'revision']);
    expect(shard).toMatchObject({ id: 0, slots: [0, SLOT_COUNT - 1], replicas: byId.map((i) => ids[i]), learners: [], leader });
    expect(view.moves).toEqual({ pending: 0, inProgress: 0, done: 0 });
    // Every member sees the same leader.
    for (let i = 1; i < 3; i++) await eventually(`member ${i} sees leader ${leader}`, async () => ((await placement(i)).shards[0].leader === leader ? true : null));

    const put = JSON.parse(await etcdctlOk(cluster.endpointOf(0), ['put', 'placement-probe', 'v', '-w', 'json'])) as { header: { revision: number } };
    expect((await placement(0)).shards[0].revision).toBe(put.header.revision); // member 0 applied the put it answered
    for (let i = 1; i < 3; i++) {
      await eventually(`member ${i} at revision ${put.header.revision}`, async () => ((await placement(i)).shards[0].revision === put.header.revision ? true : null));
    }
    console.log(`placement: members ${view.members.map((m) => `${m.id}@${m.zone}`).join(' ')}, leader ${leader}, revision after put ${put.header.revision}`);
  });

  it('GET /placement?key= agrees with slots.ts; a bad query is a 400 with a JSON error', async () => {
    for (const key of ['foo', '/app/{tenant-7}/cfg', '/app/{tenant-7}/state', 'a b&c=d', 'é€{}', '{}x']) {
      const r = await getJson(1, `?key=${encodeURIComponent(key)}`);
      expect(r).toEqual({ status: 200, body: { key, slot: slotOf(Buffer.from(key)), shard: 0 } });
    }
    for (const [query, message] of [
      ['?key=', 'key is empty'],
      ['?key=%zz', 'percent-encoding'],
      ['?key=a&key=b', 'more than once'],
      ['?shard=1', 'unknown query parameter'],
      ['?key=%FF', 'not UTF-8'],
    ]) {
      const r = await getJson(1, query);
      expect(r.status).toBe(400);
      expect((r.body as { error: string }).error).toContain(message);
    }
  });

  it('gRPC synod.v1.Placement answers the same view and key lookups, behind the wire checks', async () => {
    const Client = placementClientConstructor();
    const client = new Client(cluster.addressOf(2), grpc.credentials.createInsecure());
    try {
      const wire = await grpcCall<GetPlacementWire>(client, 'GetPlacement', {});
      expect(wire.header?.member_id).toBe(String(BigInt(`0x${ids[2]}`)));
      expect(wireToView(wire)).toEqual(await placement(2));
      const loc = await grpcCall<LocateKeyWire>(client, 'LocateKey', { key: Buffer.from([0xff, 0x00, 0x7b]) });
      expect({ slot: loc.slot, shard: loc.shard }).toEqual({ slot: slotOf(Buffer.from([0xff, 0x00, 0x7b])), shard: 0 });
      await expect(grpcCall(client, 'LocateKey', { key: Buffer.alloc(0) })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: key is not provided' });
    } finally {
      client.close();
    }
    // A malformed request is refused before the handler, as for the etcd services (field 1 sent as a varint).
    const raw = new RawGrpc(cluster.addressOf(2));
    const bad = await raw.call('/synod.v1.Placement/LocateKey', RawGrpc.frame(Buffer.from([0x08, 0x01])));
    expect(bad.code).toBe(grpc.status.INTERNAL);
    expect(bad.message).toContain('grpc: error unmarshalling request');
  });

  it('synod placement prints the table, a key\'s slot and shard, and the JSON view', async () => {
    const leader = ids[await cluster.leaderIndex()];
    const table = await synod(['placement', '--endpoints', `127.0.0.1:1,${cluster.addressOf(0)}`]);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0].split(/\s+/)).toEqual(['SHARD', 'SLOTS', 'REPLICAS', 'LEARNERS', 'LEADER', 'REVISION']);
    const row = lines[1].split(/\s+/);
    expect(row.slice(0, 5)).toEqual(['0', `0-${SLOT_COUNT - 1}`, [...ids].sort((a, b) => (BigInt(`0x${a}`) < BigInt(`0x${b}`) ? -1 : 1)).join(','), '-', leader]);
    expect(Number(row[5])).toBeGreaterThan(0);
    expect(lines[2]).toMatch(/^moves: 0 pending, 0 in progress, 0 done \(placement version \d+\)$/);
    console.log(`synod placement:\n${table.stdout}`);

    const key = await synod(['placement', '--endpoints', cluster.addressOf(1), '--key', '/app/{tenant-7}/cfg']);
    expect(key.stdout).toBe(`key "/app/{tenant-7}/cfg": slot ${slotOf(Buffer.from('tenant-7'))}, shard 0\n`);
    const json = await synod(['placement', '--endpoints', cluster.addressOf(1), '--json']);
    expect(JSON.parse(json.stdout)).toEqual(await placement(1));
    const down = await synod(['placement', '--endpoints', '127.0.0.1:1', '--dial-timeout', '500']);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('no endpoint answered');
  });

  it('/metrics: replicas and leaders per member and moves by state', async () => {
    const leader = ids[await cluster.leaderIndex()];
    const text = await cluster.metrics(0);
    for (const id of ids) {
      expect(text).toMatch(new RegExp(`^synod_placement_replicas\\{member="${id}"\\} 1$`, 'm'));
      expect(text).toMatch(new RegExp(`^synod_placement_leaders\\{member="${id}"\\} ${id === leader ? 1 : 0}$`, 'm'));
    }
    for (const state of ['pending', 'in_progress', 'done']) expect(text).toMatch(new RegExp(`^synod_placement_moves\\{state="${state}"\\} 0$`, 'm'));
  });

  it('a member added as a learner appears in learners and the version moves; once removed it is not listed', async () => {
    const before = (await placement(0)).version;
    const [peerPort] = await freePorts(1);
    const added = await etcdctlOk(cluster.endpoints, ['member', 'add', 'm4', '--learner', `--peer-urls=http://127.0.0.1:${peerPort}`]);
    const learner = /Member\s+([0-9a-f]+) added to cluster/.exec(added)?.[1];
    expect(learner).toBeDefined();
    for (let i = 0; i < 3; i++) {
      const v = await eventually(`member ${i} lists the learner`, async () => {
        const view = await placement(i);
        return view.shards[0].learners.includes(learner!) ? view : null;
      });
      expect(v.shards[0].learners).toEqual([learner]);
      expect(v.shards[0].replicas).toHaveLength(3);
      expect(v.shards[0].replicas).not.toContain(learner);
      expect(v.members.map((m) => m.id)).toContain(learner);
      expect(v.version).toBeGreaterThan(before);
    }
    const withLearner = (await placement(0)).version;
    await etcdctlOk(cluster.endpoints, ['member', 'remove', learner!]);
    for (let i = 0; i < 3; i++) {
      const v = await eventually(`member ${i} dropped the learner`, async () => {
        const view = await placement(i);
        return view.members.some((m) => m.id === learner) ? null : view;
      });
      expect(v.shards[0].learners).toEqual([]);
      expect(v.version).toBeGreaterThan(withLearner);
    }
    console.log(`placement version: ${before} at bootstrap, ${withLearner} with the learner, ${(await placement(0)).version} after its removal`);
  });

  it('with auth on, Placement stays open like MemberList but refuses a bad token; a bad --zone stops the start', async () => {
    const ep = cluster.endpointOf(0);
    await etcdctlOk(ep, ['user', 'add', 'root:root-pw']);
    // etcdctl adds the root role and grants it to root when auth enable reports it missing.
    await etcdctlOk(ep, ['auth', 'enable']);
    const Client = placementClientConstructor();
    const client = new Client(cluster.addressOf(0), grpc.credentials.createInsecure());
    try {
      const wire = await grpcCall<GetPlacementWire>(client, 'GetPlacement', {});
      expect(wire.shards[0].replicas).toHaveLength(3);
      const withBadToken = new Promise((resolve, reject) => {
        const meta = new grpc.Metadata();
        meta.set('token', 'not-a-token');
        (client as unknown as { LocateKey: (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: unknown) => void) => void }).LocateKey(
          { key: Buffer.from('k') },
          meta,
          (e, r) => (e ? reject(e) : resolve(r)),
        );
      });
      await expect(withBadToken).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'etcdserver: invalid auth token' });
    } finally {
      client.close();
    }
    await etcdctlOk(ep, ['--user', 'root:root-pw', 'auth', 'disable']);

    const bad = await synod(['server', '--name', 'z', '--data-dir', path.join(cluster.rootDir, 'bad-zone'), '--zone', 'eu west']);
    expect(bad.code).toBe(2);
    expect(bad.stdout + bad.stderr).toContain('--zone must be empty or a Kubernetes label value');
  });

  it('a member restarted with another --zone publishes it through the log; every member shows it', async () => {
    ZONES[2] = 'zone-d';
    await cluster.stopMember(2);
    cluster.startMember(2);
    await cluster.waitReady();
    for (let i = 0; i < 3; i++) {
      await eventually(`member ${i} shows zone-d`, async () => ((await placement(i)).members.find((m) => m.id === ids[2])?.zone === 'zone-d' ? true : null));
    }
  });
});

// Live membership changes against real server processes, driven by Debian's etcdctl: growing a
// running cluster 3 -> 5 with learners that are promoted once caught up, shrinking it 5 -> 3 (the
// leader included) while a client writes, etcd's errors for changes etcd refuses, and a member that
// is wiped and re-added catching up from a snapshot because the log it needs was compacted, at the
// pace --max-snapshot-send-bytes-per-second sets.
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../server/etcd/proto.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { KvClient } from './support/kv-client.ts';
import { eventually } from './support/eventually.ts';

const SNAPSHOT_COUNT = 100;
/** The snapshot send pace of every member here: the wiped member's ~3 MiB snapshot must wait for it. */
const SNAPSHOT_SEND_BYTES_PER_SECOND = 1024 * 1024;

interface Writer {
  stop(): Promise<{ acked: Map<string, string>; attempts: number }>;
}

/** Writes w/<n> = n in a loop through one member; remembers every acknowledged write. */
function startWriter(endpoint: string): Writer {
  const client = new KvClient(endpoint);
  const acked = new Map<string, string>();
  let attempts = 0;
  let running = true;
  const loop = (async () => {
    for (let n = 0; running; n++) {
      const key = `w/${String(n).padStart(6, '0')}`;
      attempts++;
      try {
        await client.put(key, String(n), {}, 3_000);
        acked.set(key, String(n));
      } catch {
        await new Promise((r) => setTimeout(r, 50)); // outcome unknown: not counted as acknowledged
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      client.close();
      return { acked, attempts };
    },
  };
}

/** `member list` rows: id, status, name, peer URLs, client URLs, is learner. */
async function memberList(endpoint: string): Promise<string[][]> {
  const out = await etcdctlOk(endpoint, ['member', 'list']);
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(', '));
}

async function addLearnerAndPromote(cluster: ProcessCluster, endpoint: string, i: number): Promise<string> {
  const m = cluster.members[i];
  const added = await etcdctlOk(endpoint, ['member', 'add', m.name, '--learner', `--peer-urls=${cluster.peerUrlOf(i)}`]);
  const id = /Member\s+([0-9a-f]+) added to cluster/.exec(added)?.[1];
  expect(id, added).toBeDefined();
  expect(added).toContain('ETCD_INITIAL_CLUSTER_STATE="existing"');
  cluster.startMember(i);
  // A learner serves serializable reads only, as in etcd.
  await eventually(`${m.name} answers as a learner`, async () => {
    const r = await etcdctl(cluster.endpointOf(i), ['get', 'w/', '--prefix', '--limit=1']);
    return r.stderr.includes('etcdserver: rpc not supported for learner') ? true : null;
  });
  await eventually(`promote ${m.name}`, async () => {
    const r = await etcdctl(endpoint, ['member', 'promote', id!]);
    if (r.code === 0) return r.stdout;
    // Until the learner has caught up, etcd's answer; anything else is a failure.
    expect(r.stderr).toContain('can only promote a learner member which is in sync with leader');
    return null;
  });
  return id!;
}

describe('membership changes with etcdctl', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start({
      size: 3,
      extraArgs: ['--snapshot-count', String(SNAPSHOT_COUNT), '--max-snapshot-send-bytes-per-second', String(SNAPSHOT_SEND_BYTES_PER_SECOND)],
    });
  }, 60_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('grows 3 -> 5 with learners and shrinks 5 -> 3 (the leader too) while a client writes; no acknowledged write is lost', async () => {
    const writerEndpoint = cluster.endpointOf(1);
    const writer = startWriter(writerEndpoint);
    const ep = cluster.endpointOf(0);
    for (const name of ['m4', 'm5']) {
      const i = await cluster.addMemberSlot(name);
      await addLearnerAndPromote(cluster, ep, i);
    }
    const grown = await eventually('5 started voters', async () => {
      const rows = await memberList(ep);
      return rows.length === 5 && rows.every((r) => r[1] === 'started' && r[5] === 'false') ? rows : null;
    });
    expect(grown.map((r) => r[2]).sort()).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    await cluster.waitReady();

    // Shrink: the newest member, then whoever leads (unless it is the writer's member; then m1).
    const idOf = (rows: string[][], name: string): string => rows.find((r) => r[2] === name)![0];
    expect(await etcdctlOk(ep, ['member', 'remove', idOf(grown, 'm5')])).toMatch(/Member\s+[0-9a-f]+ removed from cluster/);
    expect(await cluster.waitExit(4, 15_000)).toBe(true);
    cluster.members[4].retired = true;
    const leader = await cluster.leaderIndex();
    const victim = leader === 1 || leader === 4 ? 0 : leader;
    const victimEp = cluster.endpointOf(victim === 0 ? 2 : 0);
    expect(await etcdctlOk(victimEp, ['member', 'remove', idOf(grown, cluster.members[victim].name)])).toMatch(/removed from cluster/);
    expect(await cluster.waitExit(victim, 15_000)).toBe(true);
    cluster.members[victim].retired = true;

    // Let the writer run on the shrunk cluster for a moment, then check every acknowledged write.
    await new Promise((r) => setTimeout(r, 1_000));
    const { acked, attempts } = await writer.stop();
    const remaining = cluster.members.map((_, i) => i).filter((i) => cluster.isRunning(i));
    expect(remaining).toHaveLength(3);
    const rows = await memberList(cluster.endpointOf(remaining[0]));
    expect(rows).toHaveLength(3);
    expect(acked.size).toBeGreaterThan(50);
    for (const i of remaining) {
      const client = new KvClient(cluster.endpointOf(i));
      try {
        // A linearizable read first, so this member has applied everything; then compare.
        const res = await client.range('w/', { range_end: Buffer.from('w0') }, 10_000);
        const seen = new Map(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
        for (const [k, v] of acked) expect(seen.get(k), `${k} on ${cluster.members[i].name}`).toBe(v);
      } finally {
        client.close();
      }
    }
    console.log(`membership 3 -> 5 -> 3 under writes: ${acked.size} acknowledged of ${attempts} attempted, all present on the 3 remaining members`);
  }, 180_000);

  it("refuses what etcd refuses, with etcd's errors", async () => {
    const running = cluster.members.map((_, i) => i).filter((i) => cluster.isRunning(i) && !cluster.members[i].retired);
    const ep = cluster.endpointOf(running[0]);
    const rows = await memberList(ep);
    const voter = rows[0][0];
    const expectError = async (args: string[], text: string): Promise<void> => {
      const r = await etcdctl(ep, args);
      expect(r.code, r.stdout).not.toBe(0);
      expect(r.stderr).toContain(text);
    };
    await expectError(['member', 'promote', voter], 'etcdserver: can only promote a learner member');
    await expectError(['member', 'remove', 'abcdef'], 'etcdserver: member not found');
    await expectError(['member', 'update', 'abcdef', '--peer-urls=http://127.0.0.1:1'], 'etcdserver: member not found');
    await expectError(['member', 'add', 'dup', `--peer-urls=${cluster.peerUrlOf(running[0])}`], 'etcdserver: Peer URLs already exists');
    // etcdctl validates URLs itself; a raw gRPC client reaches the server's own check.
    const raw = new (etcdClients().Cluster)(ep, grpc.credentials.createInsecure());
    const bad = await new Promise<grpc.ServiceError | null>((resolve) =>
      (raw as unknown as { MemberAdd(req: object, cb: (err: grpc.ServiceError | null) => void): void }).MemberAdd({ peerURLs: ['ftp://x'] }, resolve),
    );
    raw.close();
    expect(bad?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad?.details).toBe('etcdserver: given member URLs are invalid');
    // A voter that is not running would leave too few started members for quorum of 3 + 2.
    const first = await etcdctlOk(ep, ['member', 'add', 'ghost1', '--learner', '--peer-urls=http://127.0.0.1:9']);
    const ghost = /Member\s+([0-9a-f]+) added/.exec(first)![1];
    await expectError(['member', 'add', 'ghost2', '--learner', '--peer-urls=http://127.0.0.1:10'], 'etcdserver: too many learner members in cluster');
    // A learner that never started is not in sync: promote is refused.
    await expectError(['member', 'promote', ghost], 'etcdserver: can only promote a learner member which is in sync with leader');
    expect(await etcdctlOk(ep, ['member', 'remove', ghost])).toContain('removed from cluster');
    // MemberUpdate changes a member's peer URLs through the log.
    const target = rows[rows.length - 1];
    expect(await etcdctlOk(ep, ['member', 'update', target[0], `--peer-urls=${target[3]}`])).toContain('updated in cluster');
  }, 60_000);

  it('a member wiped and re-added catches up from a snapshot, serves reads, and restarts from snapshot + log tail', async () => {
    const running = cluster.members.map((_, i) => i).filter((i) => cluster.isRunning(i) && !cluster.members[i].retired);
    const leader = await cluster.leaderIndex();
    const wiped = running.find((i) => i !== leader)!;
    const ep = cluster.endpointOf(running.find((i) => i !== wiped)!);
    const client = new KvClient(ep);
    // 3 MiB the snapshot must carry (over the pacer's 1 MiB burst; written first, so the last snapshot
    // point holds them).
    const bigValue = 'x'.repeat(64 * 1024);
    for (let n = 0; n < 48; n++) await client.put(`big/${n}`, bigValue);
    // Enough writes that every member compacts its log several times over.
    for (let n = 0; n < 5 * SNAPSHOT_COUNT; n++) await client.put(`s/${String(n).padStart(4, '0')}`, `v${n}`);
    client.close();
    const snapshotSendFigures = async (): Promise<{ bytes: number; throttledS: number }> => {
      let bytes = 0;
      let throttledS = 0;
      for (const i of running.filter((j) => j !== wiped)) {
        const text = await cluster.metrics(i);
        bytes += Number(/^synod_snapshot_sent_bytes_total (\S+)/m.exec(text)?.[1] ?? NaN);
        throttledS += Number(/^synod_snapshot_send_throttled_seconds_total (\S+)/m.exec(text)?.[1] ?? NaN);
      }
      return { bytes, throttledS };
    };
    const sendBefore = await snapshotSendFigures();
    const addStartedMs = Date.now();

    const rows = await memberList(ep);
    const wipedName = cluster.members[wiped].name;
    await etcdctlOk(ep, ['member', 'remove', rows.find((r) => r[2] === wipedName)![0]]);
    expect(await cluster.waitExit(wiped, 15_000)).toBe(true);
    cluster.members[wiped].retired = true;
    fs.rmSync(cluster.members[wiped].dataDir, { recursive: true, force: true });

    const again = await cluster.addMemberSlot(`${wipedName}b`, wiped);
    await addLearnerAndPromote(cluster, ep, again);
    // The snapshot left at the pace: more than 3 MiB sent, chunks held back, and the transfer took at
    // least (3 MiB − burst − one chunk) / rate = 1 s.
    const sendAfter = await snapshotSendFigures();
    expect(sendAfter.bytes - sendBefore.bytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(sendAfter.throttledS - sendBefore.throttledS).toBeGreaterThan(0);
    expect(Date.now() - addStartedMs).toBeGreaterThanOrEqual(1000);
    const metrics = await cluster.metrics(again);
    expect(Number(/^synod_snapshots_installed_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    expect(fs.readFileSync(cluster.members[again].logFile, 'utf8')).toContain('installed snapshot');

    const local = async (): Promise<string> =>
      etcdctlOk(cluster.endpointOf(again), ['get', 's/', '--prefix', '--consistency=s', '--keys-only']);
    const count = (out: string): number => out.split('\n').filter((l) => l.startsWith('s/')).length;
    await eventually('re-added member has every key', async () => (count(await local()) === 5 * SNAPSHOT_COUNT ? true : null));
    expect(await etcdctlOk(cluster.endpointOf(again), ['get', 's/0042'])).toBe('s/0042\nv42\n');

    // Restart it: it loads the snapshot point, the state at its applied index and the log tail.
    await cluster.stopMember(again);
    cluster.startMember(again);
    await cluster.waitReady();
    expect(count(await local())).toBe(5 * SNAPSHOT_COUNT);
    expect(await etcdctlOk(cluster.endpointOf(again), ['put', 'after-restart', 'ok'])).toBe('OK\n');
  }, 180_000);
});

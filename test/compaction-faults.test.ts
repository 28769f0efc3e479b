// Kill -9 with a log that is compacted every few entries: the member writes applied state lazily
// (with the next batch it must write anyway), so these check that a restart still resumes from a
// persisted applied index the compacted log can replay from, and that a member brought back after
// missing more than the retained log catches up through a snapshot. Nothing acknowledged is lost.
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { KvClient } from './support/kv-client.ts';

const SNAPSHOT_COUNT = '25';

let cluster: ProcessCluster | null = null;
const clients: KvClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await cluster?.destroy();
  cluster = null;
});

function client(c: ProcessCluster, i: number): KvClient {
  const k = new KvClient(c.endpointOf(i));
  clients.push(k);
  return k;
}

/**
 * Puts unique keys through every live member in turn until `count` are acknowledged (a count, not a
 * duration: how many fit in a second depends on what else shares the cores); returns them.
 */
async function writeCount(c: ProcessCluster, count: number, prefix: string): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  const perMember = c.members.map((_, i) => client(c, i));
  const deadline = Date.now() + 60_000;
  let seq = 0;
  let target = 0;
  while (acked.size < count && Date.now() < deadline) {
    if (!c.isRunning(target)) {
      target = (target + 1) % perMember.length;
      continue;
    }
    const key = `${prefix}${String(seq).padStart(6, '0')}`;
    try {
      await perMember[target].put(key, `v${seq}`, {}, 2_000);
      acked.set(key, `v${seq}`);
      seq++;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
    target = (target + 1) % perMember.length;
  }
  return acked;
}

async function expectReadable(c: ProcessCluster, i: number, acked: Map<string, string>, prefix: string): Promise<void> {
  const k = client(c, i);
  const end = Buffer.from(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1));
  const deadline = Date.now() + 15_000;
  let missing: string[] = [];
  for (;;) {
    const res = await k.range(prefix, { range_end: end, serializable: true }, 10_000);
    const seen = new Map(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()]));
    missing = [...acked].filter(([key, v]) => seen.get(key) !== v).map(([key]) => key);
    if (missing.length === 0 || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(missing.slice(0, 5), `member ${i} lacks ${missing.length} acknowledged writes`).toEqual([]);
}

describe('kill -9 with a frequently compacted log', () => {
  it('every member killed at once and restarted loses nothing', async () => {
    cluster = await ProcessCluster.start({ size: 3, extraArgs: ['--snapshot-count', SNAPSHOT_COUNT] });
    const acked = await writeCount(cluster, 150, 'a/');
    expect(acked.size).toBe(150);
    for (let i = 0; i < 3; i++) await cluster.kill9(i);
    for (let i = 0; i < 3; i++) cluster.startMember(i);
    await cluster.waitReady();
    for (let i = 0; i < 3; i++) await expectReadable(cluster, i, acked, 'a/');
  });

  it('a follower killed, left behind by many compactions, restarted: catches up through a snapshot', async () => {
    cluster = await ProcessCluster.start({ size: 3, extraArgs: ['--snapshot-count', SNAPSHOT_COUNT] });
    const leader = await cluster.leaderIndex();
    const follower = (leader + 1) % 3;
    const first = await writeCount(cluster, 50, 'b/');
    await cluster.kill9(follower);
    const second = await writeCount(cluster, 5 * Number(SNAPSHOT_COUNT), 'b/x');
    expect(second.size).toBe(5 * Number(SNAPSHOT_COUNT));
    cluster.startMember(follower);
    await cluster.waitReady();
    await expectReadable(cluster, follower, new Map([...first, ...second]), 'b/');
    expect(fs.readFileSync(cluster.members[follower].logFile, 'utf8')).toContain('installed snapshot');
  });
});

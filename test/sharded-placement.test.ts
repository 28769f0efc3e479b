// Placement on a subset of members (issue 14), with real processes and Debian's etcdctl: a 3-member,
// 8-shard cluster with --replication-factor 3 takes a fourth member (etcdctl member add/promote) and the
// placer moves a share of the replicas onto it; one of the first members is removed and its replicas are
// re-placed; a fifth joins and receives its share. At each step: every shard has 3 voters on distinct
// members, replicas per member max/mean ≤ 1.10, replica moves ≤ 1.1× the ideal, every acknowledged key
// readable where /placement says it lives, and a member that lost a replica deleted its data. Then a
// member killed past the grace period (--dead-member-grace 4) loses its replicas and gets a share back
// when it returns, a prefix watch through a member hosting only some shards, and a drain.
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { KvClient } from './support/kv-client.ts';
import { eventually } from './support/eventually.ts';
import { putKeys } from './support/put-keys.ts';
import { SlotMap } from '../server/routing/slots.ts';

const SYNOD_CLI = path.join(import.meta.dirname, '..', 'server', 'cli', 'synod.ts');
const SHARDS = 8;
const SLOT_MAP = SlotMap.create(SHARDS);

/** `synod placement ...` as a user runs it. */
function synodPlacement(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SYNOD_CLI, 'placement', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
const R = 3;
let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start({
    size: 3,
    extraArgs: ['--snapshot-count', '50'],
    // (--experimental-fault-injection: the TEST-ONLY partition door, for the member cut off below.)
    memberArgs: () => ['--shards', String(SHARDS), '--replication-factor', String(R), '--dead-member-grace', '4', '--experimental-fault-injection'],
  });
}, 60_000);

afterAll(async () => {
  if (process.env.KEEP_LOGS) for (const m of cluster?.members ?? []) fs.copyFileSync(m.logFile, `/tmp/placement-${m.name}.log`);
  await cluster?.destroy();
});

interface View {
  members: Array<{ id: string; name: string; clientURLs: string[] }>;
  shards: Array<{ id: number; replicas: string[]; learners: string[]; leader: string | null; revision: number }>;
  moves: { pending: number; inProgress: number; done: number };
}

async function view(i: number): Promise<View> {
  const res = await fetch(`http://127.0.0.1:${cluster.members[i].metricsPort}/placement`);
  return (await res.json()) as View;
}

async function shardOfKey(i: number, key: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${cluster.members[i].metricsPort}/placement?key=${encodeURIComponent(key)}`);
  return ((await res.json()) as { shard: number }).shard;
}

/** Replicas per member id over the view's shards. */
function loads(v: View): Map<string, number> {
  const out = new Map(v.members.map((m) => [m.id, 0]));
  for (const s of v.shards) for (const id of s.replicas) out.set(id, (out.get(id) ?? 0) + 1);
  return out;
}

/** The view once every shard has R voters on distinct live members, no learner, and no move is left. */
async function converged(i: number, what: string, live: () => Set<string>): Promise<View> {
  return eventually(
    what,
    async () => {
      const v = await view(i);
      const l = loads(v);
      // Every live member holds at least its floor share (a joiner must have received its part).
      const floor = Math.floor((SHARDS * R) / live().size);
      const ok =
        // Every live member has published its client URLs (checkEveryKey reads through them).
        v.members.every((m) => !live().has(m.id) || m.clientURLs.length > 0) &&
        v.moves.inProgress === 0 &&
        v.moves.pending === 0 &&
        [...live()].every((id) => (l.get(id) ?? 0) >= floor) &&
        v.shards.every((s) => s.replicas.length === R && new Set(s.replicas).size === R && s.learners.length === 0 && s.replicas.every((id) => live().has(id)));
      if (!ok) throw new Error(`not yet: moves ${JSON.stringify(v.moves)}, shards ${JSON.stringify(v.shards.map((s) => [s.id, s.replicas, s.learners, s.leader]))}`);
      return v;
    },
    150_000,
  );
}

const ratio = (m: Map<string, number>): number => Math.max(...m.values()) / ([...m.values()].reduce((a, b) => a + b, 0) / m.size);

/** Leaders per member over every shard, each shard's leader as a member hosting it reports it. */
async function leadersPerMember(): Promise<Map<string, number>> {
  const views = await Promise.all(cluster.members.map((m, i) => (m.retired || !cluster.isRunning(i) ? null : view(i).catch(() => null))));
  const leaderOf = new Map<number, string>();
  for (const v of views) {
    if (v === null) continue;
    const self = v.members.find((m) => m.clientURLs.some((u) => views.indexOf(v) >= 0 && u.endsWith(`:${cluster.members[views.indexOf(v)].clientPort}`)))?.id;
    for (const s of v.shards) if (s.leader !== null && self !== undefined && s.replicas.includes(self)) leaderOf.set(s.id, s.leader);
  }
  const out = new Map<string, number>();
  for (const leader of leaderOf.values()) out.set(leader, (out.get(leader) ?? 0) + 1);
  return leaderOf.size === SHARDS ? out : new Map();
}

/** Replicas that appeared on members between two views (each is one move). */
function moved(before: View, after: View): number {
  let n = 0;
  for (const s of after.shards) {
    const old = new Set(before.shards.find((b) => b.id === s.id)?.replicas ?? []);
    n += s.replicas.filter((id) => !old.has(id)).length;
  }
  return n;
}

describe(`placement on a subset: ${SHARDS} shards, R = ${R}`, () => {
  const acked = new Map<string, string>();
  const live = new Set<string>();
  const idOf = new Map<string, string>(); // name → member id

  /** Every acknowledged key, read on each member that /placement says hosts its shard. */
  async function checkEveryKey(v: View): Promise<void> {
    const clientOf = new Map(v.members.map((m) => [m.id, m.clientURLs[0].replace(/^https?:\/\//, '')]));
    const byShard = new Map<number, string[]>();
    // The slot map every member computes (pinned by golden vectors); /placement?key= agrees (checked once below).
    for (const k of acked.keys()) {
      const s = SLOT_MAP.shardOfKey(Buffer.from(k));
      byShard.set(s, [...(byShard.get(s) ?? []), k]);
    }
    const first = acked.keys().next();
    if (!first.done) {
      const at = cluster.members.findIndex((m) => !m.retired && live.has(idOf.get(m.name) ?? ''));
      expect(await shardOfKey(at, first.value)).toBe(SLOT_MAP.shardOfKey(Buffer.from(first.value)));
    }
    // Each replica of each shard, read on its own member (a member answers its own shards from its replica).
    const reads = v.shards.flatMap((s) =>
      s.replicas.map(async (id) => {
        const kv = new KvClient(clientOf.get(id)!);
        try {
          for (const k of byShard.get(s.id) ?? []) {
            const r = await kv.range(k, {}, 5_000);
            expect(r.kvs[0]?.value.toString(), `${k} (shard ${s.id}) on member ${id}`).toBe(acked.get(k));
          }
        } finally {
          kv.close();
        }
      }),
    );
    await Promise.all(reads);
  }

  it('three members host every shard; writes are placed where /placement says', async () => {
    for (const line of (await etcdctlOk(cluster.endpointOf(0), ['member', 'list'])).trim().split('\n')) {
      const [id, , name] = line.split(', ');
      idOf.set(name, id);
      live.add(id);
    }
    const v = await converged(0, 'the first placement written', () => live);
    expect(ratio(loads(v))).toBe(1);
    // Keys through each member's own shards (a member answers only for shards it hosts until forwarding).
    await putKeys(cluster.endpointOf(0), 'a/', 120, acked);
    await checkEveryKey(v);
  }, 120_000);

  let beforeJoin: View;
  it('a fourth member joins and receives its share: max/mean ≤ 1.10, moves ≤ 1.1× the ideal', async () => {
    beforeJoin = await view(0);
    const i = await cluster.addMemberSlot('m4');
    const added = await etcdctlOk(cluster.endpointOf(0), ['member', 'add', 'm4', '--learner', `--peer-urls=${cluster.peerUrlOf(i)}`]);
    const id = /Member\s+([0-9a-f]+) added to cluster/.exec(added)![1];
    idOf.set('m4', id);
    cluster.startMember(i);
    await eventually('promote m4', async () => {
      const r = await etcdctl(cluster.endpointOf(0), ['member', 'promote', id]);
      return r.code === 0 ? r.stdout : null;
    });
    live.add(id);
    const startedMs = Date.now();
    const v = await converged(i, 'placement converged with m4', () => live);
    const l = loads(v);
    const ideal = Math.ceil((SHARDS * R) / 4);
    console.log(`join: converged in ${((Date.now() - startedMs) / 1000).toFixed(1)} s; replicas/member ${JSON.stringify(Object.fromEntries(l))}, max/mean ${ratio(l).toFixed(3)}, moves ${moved(beforeJoin, v)} / ideal ${ideal}`);
    expect(ratio(l)).toBeLessThanOrEqual(1.1);
    expect(l.get(id)).toBeGreaterThan(0);
    expect(moved(beforeJoin, v)).toBeLessThanOrEqual(Math.ceil(1.1 * ideal));
    await checkEveryKey(v);
    // Leaders spread too: each shard's leader hands over to the placer's preferred leader (idle shards).
    const led = await eventually('leaders spread over the 4 members', async () => {
      const counts = await leadersPerMember();
      return Math.max(...counts.values()) <= Math.ceil(SHARDS / 4) && counts.size === 4 ? counts : null;
    }, 60_000);
    console.log(`join: leaders per member ${JSON.stringify(Object.fromEntries(led))}`);
    // Each member's own /placement names every shard's leader, hosted there or not (its hosts answer
    // ShardStatus), and a revision for every shard that holds a key.
    const written = new Set([...acked.keys()].map((k) => SLOT_MAP.shardOfKey(Buffer.from(k))));
    await eventually('every member\'s view names every shard\'s leader', async () => {
      for (let j = 0; j < cluster.members.length; j++) {
        if (cluster.members[j].retired || !cluster.isRunning(j)) continue;
        const mine = await view(j);
        const missing = mine.shards.filter((s) => s.leader === null || !s.replicas.includes(s.leader) || (written.has(s.id) && !(s.revision > 0)));
        if (missing.length > 0) throw new Error(`member ${cluster.members[j].name}: ${JSON.stringify(missing)}`);
      }
      return true;
    }, 20_000);
    // The members that gave replicas up deleted them (a log line per removed replica).
    const removals = cluster.members.slice(0, 3).map((m) => (fs.readFileSync(m.logFile, 'utf8').match(/shard replica removed from this member/g) ?? []).length);
    expect(removals.reduce((a, b) => a + b, 0)).toBe(moved(beforeJoin, v));
  }, 200_000);

  it('a first member is removed: its replicas are re-placed; a fifth joins and takes its share', async () => {
    const before = await view(3);
    const victimName = 'm1';
    const victimId = idOf.get(victimName)!;
    const held = before.shards.filter((s) => s.replicas.includes(victimId)).length;
    // Removal waits for every group to be where it should be (etcd's "unhealthy cluster" meanwhile).
    await eventually('remove m1', async () => {
      const r = await etcdctl(cluster.endpointOf(3), ['member', 'remove', victimId]);
      return r.code === 0 ? r.stdout : null;
    });
    const victim = cluster.members.findIndex((m) => m.name === victimName);
    expect(await cluster.waitExit(victim, 20_000)).toBe(true);
    cluster.members[victim].retired = true;
    live.delete(victimId);
    const afterRemove = await converged(3, 'placement converged without m1', () => live);
    console.log(`leave: re-placed ${moved(before, afterRemove)} replicas (m1 held ${held})`);
    expect(moved(before, afterRemove)).toBe(held);
    expect(ratio(loads(afterRemove))).toBeLessThanOrEqual(1.1);
    await putKeys(cluster.endpointOf(3), 'b/', 60, acked);

    const i = await cluster.addMemberSlot('m5');
    const added = await etcdctlOk(cluster.endpointOf(3), ['member', 'add', 'm5', '--learner', `--peer-urls=${cluster.peerUrlOf(i)}`]);
    const id = /Member\s+([0-9a-f]+) added to cluster/.exec(added)![1];
    idOf.set('m5', id);
    cluster.startMember(i);
    await eventually('promote m5', async () => {
      const r = await etcdctl(cluster.endpointOf(3), ['member', 'promote', id]);
      return r.code === 0 ? r.stdout : null;
    });
    live.add(id);
    const v = await converged(i, 'placement converged with m5', () => live);
    const l = loads(v);
    const ideal = Math.ceil((SHARDS * R) / 4);
    console.log(`second join: replicas/member ${JSON.stringify(Object.fromEntries(l))}, max/mean ${ratio(l).toFixed(3)}, moves ${moved(afterRemove, v)} / ideal ${ideal}`);
    expect(ratio(l)).toBeLessThanOrEqual(1.1);
    expect(moved(afterRemove, v)).toBeLessThanOrEqual(Math.ceil(1.1 * ideal));
    await checkEveryKey(v);
  }, 300_000);

  it('a member down past the grace period has its replicas placed elsewhere; back, it gets its share again', async () => {
    const before = await view(3);
    const victimName = 'm3';
    const victimId = idOf.get(victimName)!;
    const victim = cluster.members.findIndex((m) => m.name === victimName);
    const held = before.shards.filter((s) => s.replicas.includes(victimId)).length;
    await cluster.kill9(victim);
    live.delete(victimId);
    const without = await converged(3, 'placement converged without the dead m3', () => live);
    console.log(`dead member: ${moved(before, without)} replicas re-placed (it held ${held})`);
    expect(moved(before, without)).toBe(held);
    await putKeys(cluster.endpointOf(3), 'd/', 40, acked);
    cluster.startMember(victim);
    live.add(victimId);
    // Its replicas were removed from their shards while it was down: left behind, they never hear a
    // leader again and go only after LEFT_BEHIND_AFTER_MS (30 s). Its readiness must not wait for them.
    const restartedMs = Date.now();
    await eventually('m3 ready again', async () => ((await cluster.readyz(victim)) ? true : null), 20_000);
    console.log(`dead member back: ready ${Date.now() - restartedMs} ms after its restart`);
    const back = await converged(3, 'placement converged with m3 back', () => live);
    expect(ratio(loads(back))).toBeLessThanOrEqual(1.1);
    await checkEveryKey(back);
  }, 300_000);

  it('a member cut off past the grace period comes back ready at once, though its old replicas were left behind', async () => {
    // Unlike a member that was down, this one keeps running: its replicas, removed from their shards while
    // it heard nothing, are left behind (no leader ever again; deleted after LEFT_BEHIND_AFTER_MS, 30 s).
    // They serve nothing, so its readiness must not wait for them (the sharded fault soak, seed 309).
    const victimName = 'm3';
    const victimId = idOf.get(victimName)!;
    const victim = cluster.members.findIndex((m) => m.name === victimName);
    const others = [...live].filter((id) => id !== victimId);
    const cut = async (i: number, blocked: string[]): Promise<void> => {
      const res = await fetch(`http://127.0.0.1:${cluster.members[i].metricsPort}/debug/fault/partition`, { method: 'POST', body: JSON.stringify({ blockedPeers: blocked }) });
      expect(res.status).toBe(200);
    };
    const running = cluster.members.map((_, i) => i).filter((i) => !cluster.members[i].retired && cluster.isRunning(i));
    const before = await view(3);
    const held = before.shards.filter((s) => s.replicas.includes(victimId)).length;
    expect(held).toBeGreaterThan(0);
    await Promise.all(running.map((i) => cut(i, i === victim ? others : [victimId])));
    live.delete(victimId);
    const without = await converged(3, 'placement converged without the cut-off m3', () => live);
    expect(moved(before, without)).toBe(held);
    await Promise.all(running.map((i) => cut(i, [])));
    live.add(victimId);
    const healedMs = Date.now();
    await eventually('m3 ready again after the cut', async () => ((await cluster.readyz(victim)) ? true : null), 20_000);
    console.log(`cut-off member back: ready ${Date.now() - healedMs} ms after the heal (${held} replicas left behind)`);
    const back = await converged(3, 'placement converged with m3 reconnected', () => live);
    await checkEveryKey(back);
  }, 300_000);

  it('watch --prefix through a member hosting only some shards sees every event once, in order, from history and live', async () => {
    const v = await view(3);
    const m4 = idOf.get('m4')!;
    const hostedByM4 = v.shards.filter((s) => s.replicas.includes(m4)).length;
    expect(hostedByM4).toBeLessThan(SHARDS); // some shards come from other members
    const first = JSON.parse((await etcdctlOk(cluster.endpointOf(2), ['put', 'w/0000', 'x', '-w', 'json']))) as { header: { revision: number } };
    const child = spawn('etcdctl', [`--endpoints=${cluster.endpointOf(3)}`, 'watch', '--prefix', 'w/', `--rev=${first.header.revision}`], { env: { ...process.env, ETCDCTL_API: '3' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await new Promise((r) => setTimeout(r, 500));
      await putKeys(cluster.endpointOf(2), 'w/', 60, new Map());
      const lines = await eventually('every event', async () => {
        const l = out.split('\n');
        return l.filter((x) => x === 'PUT').length >= 61 ? l : null;
      }, 30_000);
      const keys = lines.filter((x) => x.startsWith('w/'));
      expect(keys[0]).toBe('w/0000');
      expect(keys.slice(1)).toEqual(Array.from({ length: 60 }, (_, i) => `w/${String(i).padStart(4, '0')}`));
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);

  it('synod placement --drain moves every replica off a member; then it is removed with no acknowledged key lost', async () => {
    const before = await view(3);
    const victimName = 'm5';
    const victimId = idOf.get(victimName)!;
    const held = before.shards.filter((s) => s.replicas.includes(victimId)).length;
    expect(held).toBeGreaterThan(0);
    await putKeys(cluster.endpointOf(3), 'c/', 40, acked);
    const first = synodPlacement(['--endpoints', cluster.endpointOf(3), '--drain', victimId]);
    expect(first.stderr).toBe('');
    expect(first.stdout).toMatch(new RegExp(`^member ${victimId} draining: \\d+ shard replicas still on it\n$`));
    const done = await eventually(
      'm5 drained',
      async () => {
        const r = synodPlacement(['--endpoints', cluster.endpointOf(2), '--drain', victimId, '--json']);
        const out = JSON.parse(r.stdout) as { draining: boolean; replicasRemaining: number };
        return out.replicasRemaining === 0 ? out : null;
      },
      150_000,
      500,
    );
    expect(done.draining).toBe(true);
    live.delete(victimId);
    const v = await converged(3, 'placement converged without m5', () => live);
    expect(loads(v).get(victimId)).toBe(0);
    console.log(`drain: moved ${moved(before, v)} replicas off m5 (it held ${held})`);
    expect(moved(before, v)).toBe(held);
    await eventually('remove m5', async () => {
      const r = await etcdctl(cluster.endpointOf(3), ['member', 'remove', victimId]);
      return r.code === 0 ? r.stdout : null;
    });
    const victim = cluster.members.findIndex((m) => m.name === victimName);
    expect(await cluster.waitExit(victim, 20_000)).toBe(true);
    cluster.members[victim].retired = true;
    await checkEveryKey(await view(3));
    // Bad input: not a hex id, and a member that is not in the cluster.
    expect(synodPlacement(['--endpoints', cluster.endpointOf(3), '--drain', 'm5']).stderr).toMatch(/member id in hex/);
    expect(synodPlacement(['--endpoints', cluster.endpointOf(3), '--drain', victimId]).stderr).toMatch(/member not found/);
  }, 200_000);
});

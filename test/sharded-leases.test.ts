// Leases, locks and elections on a sharded cluster of real processes (`--shards 16`, 3 members), driven by
// Debian's real etcdctl (issue 14): keys attached to one lease sit on many shards; `lease timetolive
// --keys` lists them all; `lease revoke` and expiry delete them all (at one revision: a cross-shard transaction); a put naming a missing lease is
// refused as etcd refuses it; puts racing a revoke leave no key behind; `etcdctl lock` (etcd's client-side concurrency package: a Txn writing one
// key and ranging over every shard) excludes mutually, and hands the lock over when a holder's lease
// ends; `etcdctl elect` makes the next candidate leader when the leader resigns or dies; a member
// killed with -9 (the cluster group's leader) leaves no attached key behind.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { SlotMap } from '../server/routing/slots.ts';
import { KvClient } from './support/kv-client.ts';
import { LeaseLockClient } from './support/lease-lock-client.ts';

const SHARDS = 16;
let cluster: ProcessCluster;
const slots = SlotMap.create(SHARDS);
const shardOf = (key: string): number => slots.shardOfKey(Buffer.from(key));

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3, memberArgs: () => ['--shards', String(SHARDS)] });
}, 90_000);

afterAll(async () => {
  for (const p of running) p.kill('SIGKILL');
  await cluster?.destroy();
});

const running = new Set<ChildProcess>();

/** A long-running etcdctl (lock, elect): its output so far, and a way to stop it. */
function startEtcdctl(args: string[]): { out: () => string; proc: ChildProcess; exited: Promise<number | null> } {
  let out = '';
  const proc = spawn('etcdctl', [`--endpoints=${cluster.endpoints}`, '--dial-timeout=3s', '--command-timeout=8s', ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(proc);
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => {
    running.delete(proc);
    resolve(code);
  }));
  return { out: () => out, proc, exited };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - start;
}

/** TTL of the leases whose expiry the tests wait for: room for ten etcdctl puts on a busy machine. */
const EXPIRY_TTL_S = 5;

/** Puts each key attached to `lease`, all at once (each is an etcdctl process). */
async function putAll(lease: string, keys: readonly string[]): Promise<void> {
  await Promise.all(keys.map((key) => etcdctlOk(cluster.endpoints, ['put', `--lease=${lease}`, key, 'x'])));
}

async function grant(ttl: number): Promise<string> {
  const out = await etcdctlOk(cluster.endpoints, ['lease', 'grant', String(ttl)]);
  const id = /lease ([0-9a-f]+) granted/.exec(out)?.[1];
  if (!id) throw new Error(`no lease in ${out}`);
  return id;
}

async function count(prefix: string, endpoints = cluster.endpoints): Promise<number> {
  const out = JSON.parse(await etcdctlOk(endpoints, ['get', '--prefix', prefix, '--keys-only', '-w', 'json'])) as { count?: number };
  return out.count ?? 0;
}

/** `n` keys under `prefix`, on at least `minShards` distinct shards. */
function keysOnShards(prefix: string, n: number, minShards: number): string[] {
  const keys = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  expect(new Set(keys.map(shardOf)).size).toBeGreaterThanOrEqual(minShards);
  return keys;
}

describe(`leases, locks and elections on a ${SHARDS}-shard cluster`, () => {
  it('attaches keys on many shards to one lease, lists them all, and revoke deletes them all at one revision', async () => {
    const lease = await grant(100);
    const keys = keysOnShards('lk/', 12, 6);
    for (const [i, key] of keys.entries()) await etcdctlOk(cluster.endpointOf(i % 3), ['put', `--lease=${lease}`, key, `v${i}`]);
    const ttl = await etcdctlOk(cluster.endpoints, ['lease', 'timetolive', '--keys', lease]);
    expect(ttl).toMatch(/granted with TTL\(100s\), remaining\(\d+s\)/);
    const listed = /attached keys\(\[(.*)\]\)/.exec(ttl)?.[1].split(' ').sort();
    expect(listed).toEqual([...keys].sort());
    expect(await count('lk/')).toBe(12);
    // Lease ids are 64-bit: read them from the JSON text, not through a JS number.
    const leased = [...(await etcdctlOk(cluster.endpoints, ['get', '--prefix', 'lk/', '-w', 'json'])).matchAll(/"lease":(\d+)/g)].map((m) => BigInt(m[1]).toString(16));
    // etcdctl prints ids as 16 hex digits, zero-padded; compare the numbers.
    expect(leased).toEqual(keys.map(() => BigInt(`0x${lease}`).toString(16)));

    const watch = etcdctl(cluster.endpoints, ['watch', '--prefix', 'lk/', '-w', 'json'], { timeoutMs: 15_000, doneWhen: (out) => (out.match(/"type":1/g) ?? []).length >= 12 });
    await new Promise((r) => setTimeout(r, 1_000));
    const revoked = await etcdctlOk(cluster.endpoints, ['lease', 'revoke', lease]);
    expect(revoked).toContain(`lease ${lease} revoked`);
    // One cross-shard transaction deleted them all: one revision, as etcd's revoke (the watch shows it).
    const deletes = (await watch).stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .flatMap((l) => ((JSON.parse(l) as { Events?: Array<{ type?: number; kv: { mod_revision: number } }> }).Events ?? []).filter((e) => e.type === 1));
    expect(deletes).toHaveLength(12);
    expect(new Set(deletes.map((e) => e.kv.mod_revision)).size).toBe(1);
    // Answered once every shard deleted them: nothing is left to see, from any member.
    for (let i = 0; i < 3; i++) expect(await etcdctlOk(cluster.endpointOf(i), ['get', '--prefix', 'lk/', '--consistency=s'])).toBe('');
    const again = await etcdctl(cluster.endpoints, ['lease', 'revoke', lease]);
    expect(again.stderr).toContain('etcdserver: requested lease not found');
    expect(await etcdctlOk(cluster.endpoints, ['lease', 'timetolive', lease])).toContain('already expired');
  }, 60_000);

  it('refuses a put naming a lease that does not exist, exactly as etcd, on any shard', async () => {
    for (const key of keysOnShards('nolease/', 4, 3)) {
      const r = await etcdctl(cluster.endpoints, ['put', '--lease=1234', key, 'x']);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain('etcdserver: requested lease not found');
    }
    const lease = await grant(100);
    await etcdctlOk(cluster.endpoints, ['lease', 'revoke', lease]);
    const afterRevoke = await etcdctl(cluster.endpoints, ['put', `--lease=${lease}`, 'nolease/x', 'x']);
    expect(afterRevoke.stderr).toContain('etcdserver: requested lease not found');
    expect(await count('nolease/')).toBe(0);
  }, 60_000);

  it('puts racing a revoke on every shard: none of their keys outlives the revoke', async () => {
    const clients = [0, 1, 2].map((i) => ({ kv: new KvClient(cluster.addressOf(i)), lease: new LeaseLockClient(cluster.addressOf(i)) }));
    let acked = 0;
    let refused = 0;
    for (let round = 0; round < 3; round++) {
      const { ID } = await clients[0].lease.grant(60);
      // 300 puts on every shard from every member over about a second, the revoke early among them: on a
      // slow machine the revoke itself may take a few hundred milliseconds, and puts keep coming after it.
      const puts = Array.from({ length: 300 }, async (_, i) => {
        await new Promise((r) => setTimeout(r, (i % 100) * 10));
        try {
          await clients[i % 3].kv.put(`race${round}/${i}`, 'x', { lease: ID });
          acked++;
        } catch (err) {
          expect(String(err)).toContain('requested lease not found');
          refused++;
        }
      });
      await new Promise((r) => setTimeout(r, 50));
      await clients[1].lease.revoke(ID, 8_000);
      await Promise.all(puts);
      // A put after the revoke answered is refused on every shard, whatever the race above came to.
      for (const [j, key] of keysOnShards(`late${round}/`, 16, 5).entries()) {
        await expect(clients[j % 3].kv.put(key, 'x', { lease: ID })).rejects.toThrow('requested lease not found');
      }
      // Every put has answered and the revoke too: no key is left, now or later.
      expect(await count(`race${round}/`)).toBe(0);
      await new Promise((r) => setTimeout(r, 500));
      expect(await count(`race${round}/`)).toBe(0);
    }
    console.log(`puts racing a revoke: ${acked} acknowledged before it took effect (then deleted), ${refused} refused`);
    expect(acked).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    for (const c of clients) {
      c.kv.close();
      c.lease.close();
    }
  }, 60_000);

  it('a lease id granted again right after its revoke: the new keys survive, the old ones go', async () => {
    const kv = new KvClient(cluster.addressOf(0));
    const leases = [0, 1, 2].map((i) => new LeaseLockClient(cluster.addressOf(i)));
    const id = '777';
    let waited = 0;
    for (let round = 0; round < 5; round++) {
      await leases[0].grant(60, 3_000, id);
      const keys = keysOnShards(`regrant${round}/`, 16, 8);
      await Promise.all(keys.map((k) => kv.put(`${k}/old`, 'old', { lease: id })));
      // Revoke from one member; from the others, grant the id again as soon as it is free and put at once:
      // those puts name the new generation and must not be swept by the old one's sweep.
      const revoked = leases[1].revoke(id, 8_000);
      const started = Date.now();
      for (;;) {
        try {
          await leases[2].grant(60, 3_000, id);
          break;
        } catch (err) {
          expect(String(err)).toContain('lease already exists');
        }
      }
      const putStarted = Date.now();
      await Promise.all(keys.map((k) => kv.put(`${k}/new`, 'new', { lease: id })));
      waited = Math.max(waited, Date.now() - putStarted);
      await revoked;
      expect(Date.now() - started).toBeLessThan(8_000);
      await new Promise((r) => setTimeout(r, 300));
      const left = (await etcdctlOk(cluster.endpoints, ['get', '--prefix', `regrant${round}/`, '--keys-only'])).split('\n').filter(Boolean).sort();
      expect(left).toEqual(keys.map((k) => `${k}/new`).sort());
      await leases[0].revoke(id, 8_000);
      expect(await count(`regrant${round}/`)).toBe(0);
    }
    console.log(`lease id re-granted right after its revoke: 16 new keys each time, longest put wait ${waited} ms`);
    kv.close();
    for (const l of leases) l.close();
  }, 90_000);

  it('a txn reading other shards whose answers would not fit in one entry is refused as too large', async () => {
    const kv = new KvClient(cluster.addressOf(0));
    const client = new LeaseLockClient(cluster.addressOf(1));
    const keys = keysOnShards('big/', 20, 8);
    const value = Buffer.alloc(100 * 1024, 'x'); // 20 × 100 KiB over many shards: more than --max-request-bytes
    for (const k of keys) await kv.put(k, value);
    const rangeAll = { request_range: { key: Buffer.from('big/'), range_end: Buffer.from('big0') } };
    const own = { request_put: { key: Buffer.from('bigtxn'), value: Buffer.from('x') } };
    await expect(client.txn({ compare: [], success: [own, rangeAll], failure: [] }, 10_000)).rejects.toThrow('etcdserver: request is too large');
    expect(await etcdctlOk(cluster.endpoints, ['get', 'bigtxn'])).toBe('');
    // The same txn with keys only fits, and sees every key.
    const keysOnly = { request_range: { ...rangeAll.request_range, keys_only: true } };
    const ok = (await client.txn({ compare: [], success: [own, keysOnly], failure: [] }, 10_000)) as unknown as { responses: Array<{ response_range?: { count: string } }> };
    expect(Number(ok.responses[1].response_range?.count)).toBe(20);
    kv.close();
    client.close();
  }, 60_000);

  it('expiry deletes the keys on every shard', async () => {
    // The TTL leaves room for the ten puts on a busy machine (each an etcdctl process: a 2 s lease once
    // expired before the eighth put, while another test's cluster shared the cores).
    const lease = await grant(EXPIRY_TTL_S);
    const keys = keysOnShards('exp/', 10, 5);
    await putAll(lease, keys);
    expect(await count('exp/')).toBe(10);
    const tookMs = await until('the expired lease\'s keys to go', async () => (await count('exp/')) === 0, 15_000);
    console.log(`expiry: 10 keys on ${new Set(keys.map(shardOf)).size} shards gone ${tookMs} ms after the last put (TTL ${EXPIRY_TTL_S} s)`);
    expect(await etcdctlOk(cluster.endpoints, ['lease', 'list'])).not.toContain(lease);
  }, 60_000);

  it('etcdctl lock: two holders never overlap, and the lock passes on when the holder ends', async () => {
    const log = path.join(cluster.rootDir, 'lock.log');
    fs.writeFileSync(log, '');
    // Each holder appends in, waits, appends out: overlapping holders would interleave.
    const holder = (name: string): string[] => ['lock', 'mylock', '--', 'sh', '-c', `echo ${name}-in >> ${log}; sleep 1; echo ${name}-out >> ${log}`];
    const runs = await Promise.all(['a', 'b', 'c'].map((n) => etcdctl(cluster.endpoints, holder(n), { timeoutMs: 30_000 })));
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const lines = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(6);
    for (let i = 0; i < 6; i += 2) {
      expect(lines[i]).toMatch(/^[abc]-in$/);
      expect(lines[i + 1]).toBe(lines[i].replace('-in', '-out'));
    }

    // A holder that dies (kill -9: its lease is not revoked) keeps the lock until its lease expires.
    const first = startEtcdctl(['lock', '--ttl=3', 'mylock']);
    await until('the first holder to hold the lock', () => first.out().includes('mylock/'), 15_000);
    const second = startEtcdctl(['lock', '--ttl=3', 'mylock']);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(second.out()).toBe('');
    const killedAt = Date.now();
    first.proc.kill('SIGKILL');
    await until('the second holder to get the lock', () => second.out().includes('mylock/'), 15_000);
    const handover = Date.now() - killedAt;
    console.log(`lock handed over ${handover} ms after its holder was killed (lease TTL 3 s)`);
    expect(handover).toBeGreaterThan(1_000); // not before the dead holder's lease ended
    second.proc.kill('SIGINT');
    await second.exited;
  }, 90_000);

  it('etcdctl lock under a member killed and restarted: holders never overlap, and the lock keeps moving', async () => {
    const log = path.join(cluster.rootDir, 'lock-kill.log');
    fs.writeFileSync(log, '');
    let running = true;
    let acquired = 0;
    const loop = async (name: string): Promise<void> => {
      while (running) {
        const r = await etcdctl(cluster.endpoints, ['lock', '--ttl=5', 'killlock', '--', 'sh', '-c', `echo ${name}-in >> ${log}; sleep 0.2; echo ${name}-out >> ${log}`], { timeoutMs: 20_000 });
        if (r.code === 0) acquired++;
      }
    };
    const loops = ['a', 'b', 'c'].map(loop);
    await until('a few holds before the kill', () => acquired >= 3, 20_000);
    const victim = (await cluster.leaderIndex()) === 0 ? 1 : 0; // not the cluster group's leader: lease clocks stay
    await cluster.kill9(victim);
    const beforeKill = acquired;
    // A holder whose client was connected to the victim may keep the lock until its session is closed
    // through another member or its 5 s lease ends: the others wait, as on etcd.
    await new Promise((r) => setTimeout(r, 8_000));
    const whileDown = acquired - beforeKill;
    cluster.startMember(victim);
    await cluster.waitReady(30_000);
    // The lock keeps moving with the member back: holds after the restart, not just before it.
    const beforeRestart = acquired;
    await until('holds after the restart', () => acquired >= beforeRestart + 2, 20_000);
    running = false;
    await Promise.all(loops);
    const afterKill = acquired - beforeKill;
    const lines = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
    for (let i = 0; i + 1 < lines.length; i += 2) {
      expect(lines[i], lines.slice(Math.max(0, i - 4), i + 4).join(' ')).toMatch(/^[abc]-in$/);
      expect(lines[i + 1], lines.slice(Math.max(0, i - 4), i + 4).join(' ')).toBe(lines[i].replace('-in', '-out'));
    }
    console.log(`lock under kill -9 of a member: ${acquired} holds, ${whileDown} of them in the 8 s it was down, ${afterKill} after the kill, none overlapping`);
    // Progress after the kill, though not necessarily while the member is down: a client whose lock Txn
    // was forwarded to a shard leader that died waits its whole request timeout, and a holder that exits
    // on that error leaves its key until its 5 s lease ends (as with etcd).
    expect(afterKill).toBeGreaterThan(0);
  }, 90_000);

  it('etcdctl elect: the next candidate becomes leader when the leader resigns, and when its session ends', async () => {
    // etcdctl 3.4's elect has no --ttl (sessions last 60 s): a dead leader's session is ended by
    // revoking its lease (the key is myelection/<lease>), the very deletion its expiry would make.
    const a = startEtcdctl(['elect', 'myelection', 'alpha']);
    await until('alpha to lead', () => a.out().includes('alpha'), 15_000);
    const b = startEtcdctl(['elect', 'myelection', 'beta']);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(b.out()).toBe('');
    const observed = await etcdctl(cluster.endpoints, ['elect', '-l', 'myelection'], { timeoutMs: 2_000, doneWhen: (out) => out.includes('alpha') });
    expect(observed.stdout).toContain('alpha');
    // Resigning (SIGINT): beta leads at once.
    a.proc.kill('SIGINT');
    await a.exited;
    await until('beta to lead', () => b.out().includes('beta'), 10_000);
    const c = startEtcdctl(['elect', 'myelection', 'gamma']);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(c.out()).toBe('');
    // Dying (kill -9, then its lease ends): gamma leads.
    const betaLease = /myelection\/([0-9a-f]+)/.exec(b.out())?.[1];
    expect(betaLease).toBeDefined();
    b.proc.kill('SIGKILL');
    await b.exited;
    await etcdctlOk(cluster.endpoints, ['lease', 'revoke', betaLease!]);
    await until('gamma to lead', () => c.out().includes('gamma'), 10_000).catch(async (err: unknown) => {
      console.log({ a: a.out(), b: b.out(), c: c.out(), keys: await etcdctl(cluster.endpoints, ['get', '--prefix', 'myelection/', '-w', 'json']) });
      throw err;
    });
    c.proc.kill('SIGINT');
    await c.exited;
  }, 90_000);

  it('a killed cluster-group leader leaves no attached key behind: another member finishes the sweep', async () => {
    const lease = await grant(EXPIRY_TTL_S);
    const keys = keysOnShards('kill/', 10, 5);
    await putAll(lease, keys);
    // Kill the member leading the cluster group (it keeps the lease clocks and drives expiry sweeps).
    const leader = await cluster.leaderIndex();
    await cluster.kill9(leader);
    const others = cluster.members.map((_, i) => i).filter((i) => i !== leader).map((i) => cluster.endpointOf(i)).join(',');
    const killedAt = Date.now();
    let leaseGoneMs = -1;
    const tookMs = await until('the keys of the expired lease to go after the kill', async () => {
      if (leaseGoneMs < 0) {
        const ttl = await etcdctl(others, ['lease', 'timetolive', lease]);
        if (ttl.stdout.includes('already expired')) leaseGoneMs = Date.now() - killedAt;
      }
      return (await count('kill/', others).catch(() => -1)) === 0;
    }, 30_000);
    console.log(`after kill -9 of the cluster group's leader: the ${EXPIRY_TTL_S} s lease expired after ${leaseGoneMs} ms, its 10 keys were gone after ${tookMs} ms`);
    cluster.startMember(leader);
    await cluster.waitReady(30_000);
  }, 90_000);
});

// Client writes never stall while shard replicas move (issue 14, "requests during a move"): a 5-member,
// 8-shard cluster with --replication-factor 3 (placement on a subset) drains one member, takes it back
// (undrain: the placer moves a share of the replicas onto it again, as for a join), then drains and
// removes it, while writers put keys continuously through members that are not drained and through the
// drained one itself (whose puts are all forwarded once it hosts nothing) until it is removed. Every put has a 5 s deadline. Asserted: no put waits
// out its deadline (a proposal caught by a leadership handed over or a replica moving is passed on to the
// shard's leader, not dropped unanswered — docs/sharding.md, "Writes while shards move"), any failure is a
// quick UNAVAILABLE (e.g. etcd's "server stopped" for a write waiting on a replica that left its shard),
// and every acknowledged put reads back at its value. A fourth writer does cross-shard Txns (two keys on two
// shards, whose participants may be moving): the same deadline, and both keys read back at one revision. Prints per phase the count, p50, p99, max and the
// slowest puts (key, shard, start time: to find them in the members' logs, kept with SYNOD_KEEP_TEST_DATA=1).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { KvClient } from './support/kv-client.ts';
import { eventually } from './support/eventually.ts';
import { SlotMap } from '../server/routing/slots.ts';

const SYNOD_CLI = path.join(import.meta.dirname, '..', 'server', 'cli', 'synod.ts');
const SHARDS = 8;
const R = 3;
const SIZE = 5;
const SLOT_MAP = SlotMap.create(SHARDS);
/** Each put's deadline, as a client sets it. */
const PUT_DEADLINE_MS = 5_000;
/** No put may take longer than this: well under the deadline, so none waited for an answer that never came. */
const MAX_PUT_LATENCY_MS = 2_500;

let cluster: ProcessCluster;

beforeAll(async () => {
  cluster = await ProcessCluster.start({
    size: SIZE,
    memberArgs: () => ['--shards', String(SHARDS), '--replication-factor', String(R)],
  });
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

/** `synod placement ...` as a user runs it; asynchronously, so that the writers in this process go on meanwhile. */
function synodPlacement(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [SYNOD_CLI, 'placement', ...args], { encoding: 'utf8', timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr })));
  });
}

interface View {
  members: Array<{ id: string; name: string }>;
  shards: Array<{ id: number; replicas: string[]; learners: string[]; leader: string | null }>;
  moves: { pending: number; inProgress: number; done: number };
}

async function view(i: number): Promise<View> {
  const res = await fetch(`http://127.0.0.1:${cluster.members[i].metricsPort}/placement`, { signal: AbortSignal.timeout(2_000) });
  return (await res.json()) as View;
}

/** Every shard has R voters, no learner, no move left, and `holds(member's replica count)` holds for each member. */
async function converged(what: string, holds: (id: string, replicas: number) => boolean): Promise<View> {
  try {
    return await convergedOrThrow(what, holds);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${await placementDiagnostics()}`);
  }
}

/**
 * What every member saw when a convergence gave up: its own /placement moves and shards, and its last log
 * lines about placement and drains (the members' logs go with the test's data dirs; CI keeps only this).
 */
async function placementDiagnostics(): Promise<string> {
  const out: string[] = [];
  for (let i = 0; i < cluster.members.length; i++) {
    const m = cluster.members[i];
    let seen: string;
    try {
      const v = await view(i);
      seen = `moves ${JSON.stringify(v.moves)} shards ${JSON.stringify(v.shards.map((s) => [s.id, s.replicas, s.learners, s.leader]))}`;
    } catch (error) {
      seen = `no view (${String(error)})`;
    }
    const log = fs.existsSync(m.logFile) ? fs.readFileSync(m.logFile, 'utf8').split('\n') : [];
    const lines = log.filter((line) => /placement|drain|member-state|metadata/i.test(line)).slice(-12);
    out.push(`${m.name}: ${seen}\n${lines.map((line) => `  ${line.slice(0, 400)}`).join('\n')}`);
  }
  return out.join('\n');
}

async function convergedOrThrow(what: string, holds: (id: string, replicas: number) => boolean): Promise<View> {
  return eventually(
    what,
    async () => {
      const v = await view(0);
      const count = new Map(v.members.map((m) => [m.id, 0]));
      for (const s of v.shards) for (const id of s.replicas) count.set(id, (count.get(id) ?? 0) + 1);
      const ok =
        v.moves.inProgress === 0 &&
        v.moves.pending === 0 &&
        v.shards.every((s) => s.replicas.length === R && s.learners.length === 0) &&
        [...count].every(([id, n]) => holds(id, n));
      if (!ok) throw new Error(`not yet: moves ${JSON.stringify(v.moves)}, shards ${JSON.stringify(v.shards.map((s) => [s.id, s.replicas, s.learners]))}`);
      return v;
    },
    120_000,
    250,
  );
}

interface PutRecord {
  writer: string;
  key: string;
  value: string;
  latencyMs: number;
  /** Wall clock at the put's start (to find it in the members' logs). */
  startedAtMs: number;
  /** null: acknowledged. */
  code: grpc.status | null;
  details: string;
  /** A cross-shard txn's second key, written with the same value in the same transaction. */
  pairKey?: string;
}

/**
 * Puts `prefix<n>` = `v<n>` through `endpoint` one after another until stopped, recording each; with
 * `crossShard`, each write is a Txn putting `v<n>` to two keys on two shards (a cross-shard transaction
 * whose participants may be moving).
 */
class Writer {
  readonly records: PutRecord[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  readonly name: string;

  constructor(name: string, endpoint: string, crossShard = false) {
    this.name = name;
    const kv = new KvClient(endpoint);
    this.done = (async () => {
      try {
        for (let n = 0; !this.stopped; n++) {
          const key = `${name}/${String(n).padStart(6, '0')}`;
          const value = `v${n}`;
          let pairKey: string | undefined;
          if (crossShard) for (let k = 0; pairKey === undefined || SLOT_MAP.shardOfKey(Buffer.from(pairKey)) === SLOT_MAP.shardOfKey(Buffer.from(key)); k++) pairKey = `${key}/pair${k}`;
          const startedMs = performance.now();
          const startedAtMs = Date.now();
          try {
            if (pairKey === undefined) await kv.put(key, value, {}, PUT_DEADLINE_MS);
            else {
              const put = (k: string): object => ({ request_put: { key: Buffer.from(k), value: Buffer.from(value) } });
              const res = await kv.txn({ compare: [], success: [put(key), put(pairKey)], failure: [] }, PUT_DEADLINE_MS);
              if (!res.succeeded) throw new Error('a txn without compares did not succeed');
            }
            this.records.push({ writer: name, key, value, latencyMs: performance.now() - startedMs, startedAtMs, code: null, details: '', ...(pairKey ? { pairKey } : {}) });
          } catch (err) {
            const e = err as grpc.ServiceError;
            this.records.push({ writer: name, key, value, latencyMs: performance.now() - startedMs, startedAtMs, code: e.code ?? grpc.status.UNKNOWN, details: e.details ?? String(err), ...(pairKey ? { pairKey } : {}) });
          }
        }
      } finally {
        kv.close();
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

/** A failure a client may simply retry: the cluster said so at once (no leader right now, unavailable). */
const RETRYABLE = new Set<grpc.status>([grpc.status.UNAVAILABLE]);

function summary(phase: string, records: PutRecord[]): void {
  const latencies = records.map((r) => r.latencyMs).sort((a, b) => a - b);
  const p = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  const failed = records.filter((r) => r.code !== null);
  console.log(
    `${phase}: ${records.length} puts, ${failed.length} failed, p50 ${p(0.5).toFixed(0)} ms, p99 ${p(0.99).toFixed(0)} ms, max ${(latencies.at(-1) ?? 0).toFixed(0)} ms` +
      `; slowest ${JSON.stringify([...records].sort((a, b) => b.latencyMs - a.latencyMs).slice(0, 3).map((r) => [r.key, SLOT_MAP.shardOfKey(Buffer.from(r.key)), new Date(r.startedAtMs).toISOString().slice(11, 23), Math.round(r.latencyMs)]))}` + (failed.length > 0 ? `; failures ${JSON.stringify(failed.slice(0, 5).map((r) => [r.writer, r.code, r.details, Math.round(r.latencyMs)]))}` : ''),
  );
}

/** The members' forwarded-proposal counters, summed (the paths a proposal caught by a move takes). */
async function forwardedProposals(): Promise<string> {
  const names = ['synod_forwarded_proposal_retries_total', 'synod_forwarded_proposals_passed_on_total', 'synod_forwarded_proposals_dropped_total'];
  const sums = names.map(() => 0);
  for (let i = 0; i < cluster.members.length; i++) {
    if (!cluster.isRunning(i)) continue;
    const text = await cluster.metrics(i).catch(() => '');
    names.forEach((n, k) => (sums[k] += Number(new RegExp(`^${n} (\\d+)`, 'm').exec(text)?.[1] ?? 0)));
  }
  return `forwarded proposals so far: ${sums[0]} retries, ${sums[1]} passed on, ${sums[2]} dropped`;
}

/** Every put answered in time; failures were quick and retryable; every acknowledged put reads back at its value. */
async function check(phase: string, records: PutRecord[]): Promise<void> {
  summary(phase, records);
  console.log(`${phase}: ${await forwardedProposals()}`);
  const slow = records.filter((r) => r.latencyMs >= MAX_PUT_LATENCY_MS);
  expect(slow.map((r) => `${r.writer} ${r.key} at ${new Date(r.startedAtMs).toISOString()}: ${Math.round(r.latencyMs)} ms, ${r.code === null ? 'ok' : `${grpc.status[r.code]} ${r.details}`}`), `${phase}: puts slower than ${MAX_PUT_LATENCY_MS} ms`).toEqual([]);
  const badFailures = records.filter((r) => r.code !== null && !RETRYABLE.has(r.code));
  expect(badFailures.map((r) => `${r.writer} ${r.key}: ${grpc.status[r.code!]} ${r.details}`), `${phase}: failures that are not retryable`).toEqual([]);
  expect(records.filter((r) => r.code === null).length).toBeGreaterThan(50);
  const kv = new KvClient(cluster.endpointOf(0));
  try {
    for (const r of records) {
      if (r.code !== null) continue;
      // What is checked is the value; a read answered UNAVAILABLE (a leadership still settling) is asked again.
      const got = await eventually(`read ${r.key}`, () => kv.range(r.key, {}, 5_000), 10_000, 100);
      expect(got.kvs[0]?.value.toString(), `${r.key} acknowledged`).toBe(r.value);
      if (r.pairKey !== undefined) {
        const pair = await eventually(`read ${r.pairKey}`, () => kv.range(r.pairKey!, {}, 5_000), 10_000, 100);
        expect(pair.kvs[0]?.value.toString(), `${r.pairKey} acknowledged with ${r.key}`).toBe(r.value);
        expect(pair.kvs[0]?.mod_revision, `${r.key} and ${r.pairKey}: one revision`).toBe(got.kvs[0]?.mod_revision);
      }
    }
  } finally {
    kv.close();
  }
}

describe(`writes while shards move: ${SIZE} members, ${SHARDS} shards, R = ${R}`, () => {
  let drainedId = '';
  let writers: Writer[] = [];
  const startWriters = (phase: string): void => {
    // Through two members that keep their replicas, and through the drained one (forwarded once it hosts nothing).
    writers = [new Writer(`${phase}-a`, cluster.endpointOf(0)), new Writer(`${phase}-b`, cluster.endpointOf(2)), new Writer(`${phase}-txn`, cluster.endpointOf(1), true), new Writer(`${phase}-drained`, cluster.endpointOf(SIZE - 1))];
  };
  const stopWriters = async (): Promise<PutRecord[]> => {
    await Promise.all(writers.map((w) => w.stop()));
    return writers.flatMap((w) => w.records);
  };

  it('placement converges on the five members', async () => {
    for (const line of (await etcdctlOk(cluster.endpointOf(0), ['member', 'list'])).trim().split('\n')) {
      const [id, , name] = line.split(', ');
      if (name === `m${SIZE}`) drainedId = id;
    }
    expect(drainedId).not.toBe('');
    // The placer's first placement written and carried out (each member holds its share), so that the
    // moves below are the drain's and the undrain's.
    await converged('the first placement', (_id, n) => n >= Math.floor((SHARDS * R) / SIZE));
  }, 120_000);

  /** One phase: writers run while `synod placement <flags>` moves replicas, until `settled`; then the checks. */
  async function moveUnderWrites(phase: string, flags: string[], what: string, settled: Parameters<typeof converged>[1]): Promise<void> {
    startWriters(phase);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const out = await synodPlacement(['--endpoints', cluster.endpointOf(0), ...flags]);
      expect(out.stderr).toBe('');
      await converged(what, settled);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await check(phase, await stopWriters());
    }
  }

  it('a drain under continuous writes: no put waits out its deadline, none is lost', async () => {
    await moveUnderWrites('drain', ['--drain', drainedId], 'drained', (id, n) => (id === drainedId ? n === 0 : true));
  }, 180_000);

  it('undrained under continuous writes (replicas move back, as for a join): no put waits out its deadline', async () => {
    await moveUnderWrites('undrain', ['--drain', drainedId, '--undrain'], 'replicas back on the undrained member', (_id, n) => n >= Math.floor((SHARDS * R) / SIZE));
  }, 180_000);

  it('drained again and removed under continuous writes (writes through it until it leaves): no put waits out its deadline', async () => {
    startWriters('remove');
    const stoppedEarly: PutRecord[] = [];
    try {
      await new Promise((r) => setTimeout(r, 500));
      const out = await synodPlacement(['--endpoints', cluster.endpointOf(0), '--drain', drainedId]);
      expect(out.stderr).toBe('');
      await converged('drained again', (id, n) => (id === drainedId ? n === 0 : true));
      // Its own writer stops as it is removed (its client would then be refused a connection).
      const viaDrained = writers.pop()!;
      await viaDrained.stop();
      stoppedEarly.push(...viaDrained.records);
      // An attempt that timed out may still have removed it (as with etcd): a later one then hears
      // "member not found", which is the removal done.
      const refusals: string[] = [];
      await eventually('remove the drained member', async () => {
        const r = await etcdctl(cluster.endpointOf(0), ['member', 'remove', drainedId]);
        if (r.code === 0) return r.stdout;
        const refusal = /error: ?"?([^"]*)"?/.exec(r.stderr)?.[1] ?? r.stderr.trim();
        if (refusals.length > 0 && refusal.includes('etcdserver: member not found')) return 'removed by an earlier attempt';
        refusals.push(refusal);
        return null;
      }).catch((err: unknown) => {
        throw new Error(`${err instanceof Error ? err.message : String(err)}; refusals: ${JSON.stringify(refusals.slice(-5))}`);
      });
      if (refusals.length > 0) console.log(`remove: ${refusals.length} attempts refused first: ${JSON.stringify(refusals.slice(0, 3))}`);
      expect(await cluster.waitExit(SIZE - 1, 20_000)).toBe(true);
      cluster.members[SIZE - 1].retired = true;
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      await check('remove', [...stoppedEarly, ...(await stopWriters())]);
    }
  }, 180_000);
});

// A load-generator worker thread: opens its own gRPC connections, runs its share of one job
// (closed-loop KV requests, the lease lifecycle, or watchers), and reports each phase's counts
// and latency histogram to the main thread. Phases start only on the main thread's `go`, so all
// workers measure the same window.
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { EtcdConnection, UNIMPLEMENTED, describeError, grpcCode, type WatchResponse } from './etcd-rpc.ts';
import { encodeHistogram, newHistogram, recordMs, type Histogram } from './histogram.ts';
import type { ClosedLoopJob, LeaseJob, MainMessage, PhaseResult, WatchJob, WorkerInput, WorkerMessage } from './job-types.ts';
import { casTxn, txnKeyPair } from './txn-keys.ts';

const input = workerData as WorkerInput;
const port = parentPort!;

/** Keys that txn-cas contends on: small enough that workers race on the same keys. */
const CAS_KEYSPACE = 1000;
const MAX_ERROR_SAMPLES = 8;

const inbox: MainMessage[] = [];
let inboxWaiter: (() => void) | null = null;
port.on('message', (m: MainMessage) => {
  inbox.push(m);
  inboxWaiter?.();
});

async function nextMessage(): Promise<MainMessage> {
  while (inbox.length === 0) await new Promise<void>((r) => (inboxWaiter = r));
  inboxWaiter = null;
  return inbox.shift()!;
}

function send(m: WorkerMessage): void {
  port.postMessage(m);
}

/** Signals readiness for `phase` and waits for the main thread's go. */
async function awaitGo(phase: string): Promise<number> {
  send({ type: 'ready', phase });
  const m = await nextMessage();
  if (m.type !== 'go' || m.phase !== phase) throw new Error(`expected go for ${phase}, got ${JSON.stringify(m)}`);
  return m.durationMs;
}

class Recorder {
  readonly histogram: Histogram = newHistogram();
  ok = 0;
  errors = 0;
  unsupported: string | undefined;
  readonly errorSamples: Record<string, number> = {};
  readonly counters: Record<string, number> = {};

  error(err: unknown): void {
    this.errors++;
    if (grpcCode(err) === UNIMPLEMENTED && this.unsupported === undefined) this.unsupported = describeError(err);
    const d = describeError(err);
    if (d in this.errorSamples || Object.keys(this.errorSamples).length < MAX_ERROR_SAMPLES) {
      this.errorSamples[d] = (this.errorSamples[d] ?? 0) + 1;
    }
  }

  result(phase: string, elapsedMs: number): PhaseResult {
    return {
      phase,
      workerIndex: input.workerIndex,
      ok: this.ok,
      errors: this.errors,
      errorSamples: this.errorSamples,
      histogram: encodeHistogram(this.histogram),
      elapsedMs,
      unsupported: this.unsupported,
      counters: this.counters,
    };
  }
}

function openConnections(): EtcdConnection[] {
  const conns: EtcdConnection[] = [];
  for (let i = 0; i < input.connections; i++) {
    const endpoint = input.endpoints[(input.workerIndex * input.connections + i) % input.endpoints.length];
    conns.push(new EtcdConnection(endpoint));
  }
  return conns;
}

/** Keys one 'range-span' read covers. */
const RANGE_SPAN_KEYS = 100;

function fixedKey(prefix: string, index: number, keyBytes: number): Buffer {
  return Buffer.from(prefix + String(index).padStart(keyBytes - prefix.length, '0'));
}

type Operation = (conn: EtcdConnection, rec: Recorder) => Promise<void>;

function closedLoopOperation(job: ClosedLoopJob, nextFillIndex: () => number): Operation {
  const value = randomBytes(job.valueBytes);
  const randomKey = (): Buffer => fixedKey('k', Math.floor(Math.random() * job.keyspaceSize), job.keyBytes);
  switch (job.op) {
    case 'put':
      return async (conn) => {
        await conn.put({ key: randomKey(), value });
      };
    case 'range-linearizable':
      return async (conn) => {
        await conn.range({ key: randomKey() });
      };
    case 'range-serializable':
      return async (conn) => {
        await conn.range({ key: randomKey(), serializable: true });
      };
    case 'range-span':
      // 100 consecutive key indexes: on a sharded cluster their hashes spread them over every shard,
      // so this is one linearizable snapshot over several shards.
      return async (conn) => {
        const first = Math.floor(Math.random() * (job.keyspaceSize / RANGE_SPAN_KEYS)) * RANGE_SPAN_KEYS;
        await conn.range({ key: fixedKey('k', first, job.keyBytes), range_end: fixedKey('k', first + RANGE_SPAN_KEYS, job.keyBytes) });
      };
    case 'fill':
      return async (conn) => {
        const i = nextFillIndex();
        if (i < 0) return;
        await conn.put({ key: fixedKey('m', i, job.keyBytes), value });
      };
    case 'txn-one-shard':
    case 'txn-two-shards': {
      // Two puts in one Txn, on one shard or on two (txn-keys.ts).
      const twoShards = job.op === 'txn-two-shards';
      return async (conn) => {
        const [a, b] = txnKeyPair(Math.floor(Math.random() * job.keyspaceSize), twoShards);
        await conn.txn({ compare: [], success: [{ request_put: { key: a, value } }, { request_put: { key: b, value } }], failure: [] });
      };
    }
    case 'txn-cas-one-shard':
    case 'txn-cas-two-shards': {
      // A compare-and-swap of two keys, on one shard or on two: both keys' mod revisions compared with
      // what this worker last saw of them; the success branch puts both, the failure branch reads both.
      const twoShards = job.op === 'txn-cas-two-shards';
      const lastSeen = new Map<string, string>();
      return async (conn, rec) => {
        const keys = txnKeyPair(Math.floor(Math.random() * job.keyspaceSize), twoShards);
        if (!(await casTxn(conn, keys, value, lastSeen))) rec.counters.casFailed = (rec.counters.casFailed ?? 0) + 1;
      };
    }
    case 'txn-cas': {
      // Compare-and-swap on a contended keyspace: succeed (put) when our last-seen mod revision
      // still holds, otherwise read the key (failure branch) and learn its current revision.
      const lastSeen = new Map<number, string>();
      return async (conn, rec) => {
        const i = Math.floor(Math.random() * CAS_KEYSPACE);
        const key = fixedKey('c', i, job.keyBytes);
        const res = await conn.txn({
          compare: [{ result: 'EQUAL', target: 'MOD', key, mod_revision: lastSeen.get(i) ?? '0' }],
          success: [{ request_put: { key, value } }],
          failure: [{ request_range: { key } }],
        });
        if (res.succeeded) {
          lastSeen.set(i, res.header.revision);
          rec.counters.casSucceeded = (rec.counters.casSucceeded ?? 0) + 1;
        } else {
          lastSeen.set(i, res.responses[0]?.response_range?.kvs[0]?.mod_revision ?? '0');
          rec.counters.casFailed = (rec.counters.casFailed ?? 0) + 1;
        }
      };
    }
  }
}

/** Runs `slots` closed loops over the connections until `more()` is false. */
async function runSlots(slots: number, conns: EtcdConnection[], op: Operation, rec: Recorder, more: () => boolean, record: boolean): Promise<void> {
  const loop = async (slot: number): Promise<void> => {
    const conn = conns[slot % conns.length];
    while (more() && rec.unsupported === undefined) {
      const t0 = performance.now();
      try {
        await op(conn, rec);
        if (record) {
          recordMs(rec.histogram, performance.now() - t0);
          rec.ok++;
        }
      } catch (err) {
        rec.error(err);
        if (grpcCode(err) !== UNIMPLEMENTED) await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  await Promise.all(Array.from({ length: slots }, (_, s) => loop(s)));
}

async function runClosedLoop(job: ClosedLoopJob): Promise<void> {
  const conns = openConnections();
  let nextFill = job.fillStart;
  const nextFillIndex = (): number => (nextFill < job.fillEnd ? nextFill++ : -1);
  const op = closedLoopOperation(job, nextFillIndex);
  if (job.op !== 'fill' && job.warmupMs > 0) {
    const warm = new Recorder();
    const until = performance.now() + job.warmupMs;
    await runSlots(job.inFlight, conns, op, warm, () => performance.now() < until, false);
  }
  const durationMs = await awaitGo('measure');
  const rec = new Recorder();
  const t0 = performance.now();
  const more = job.op === 'fill' ? () => nextFill < job.fillEnd : () => performance.now() - t0 < durationMs;
  await runSlots(job.inFlight, conns, op, rec, more, true);
  send({ type: 'result', result: rec.result('measure', performance.now() - t0) });
  for (const c of conns) c.close();
}

async function runLease(job: LeaseJob): Promise<void> {
  const conns = openConnections();
  const ids: string[] = [];

  // Grant: count-bound.
  await awaitGo('grant');
  const grant = new Recorder();
  let t0 = performance.now();
  let toGrant = job.leases;
  await runSlots(job.inFlight, conns, async (conn) => {
    if (toGrant <= 0) return;
    toGrant--;
    const res = await conn.leaseGrant(job.ttlSeconds);
    ids.push(res.ID);
  }, grant, () => toGrant > 0, true);
  send({ type: 'result', result: grant.result('grant', performance.now() - t0) });

  // Keep-alive: time-bound, over one LeaseKeepAlive stream per connection, cycling through the leases.
  const durationMs = await awaitGo('keepalive');
  const ka = new Recorder();
  if (grant.unsupported !== undefined || ids.length === 0) {
    ka.unsupported = grant.unsupported ?? 'no leases granted';
    send({ type: 'result', result: ka.result('keepalive', 0) });
  } else {
    t0 = performance.now();
    let cursor = 0;
    const running = (): boolean => performance.now() - t0 < durationMs;
    await Promise.all(
      conns.map(
        (conn, ci) =>
          new Promise<void>((resolve) => {
            const stream = conn.keepAliveStream();
            const sentAt: number[] = [];
            const slots = Math.max(1, Math.floor(job.inFlight / conns.length) + (ci < job.inFlight % conns.length ? 1 : 0));
            let finished = false;
            const finish = (): void => {
              if (finished) return;
              finished = true;
              stream.end();
              resolve();
            };
            const sendNext = (): void => {
              sentAt.push(performance.now());
              stream.write({ ID: ids[cursor++ % ids.length] });
            };
            stream.on('data', (res: { ID: string; TTL: string }) => {
              const t = sentAt.shift();
              if (t !== undefined) recordMs(ka.histogram, performance.now() - t);
              if (res.TTL === '0') ka.error(new Error('lease not found (TTL 0)'));
              else ka.ok++;
              if (running()) sendNext();
              else if (sentAt.length === 0) finish();
            });
            stream.on('error', (err) => {
              ka.error(err);
              finish();
            });
            stream.on('end', finish);
            for (let s = 0; s < slots; s++) sendNext();
          }),
      ),
    );
    send({ type: 'result', result: ka.result('keepalive', performance.now() - t0) });
  }

  // Revoke: count-bound, every lease this worker granted.
  await awaitGo('revoke');
  const revoke = new Recorder();
  t0 = performance.now();
  let next = 0;
  if (ids.length > 0) {
    await runSlots(job.inFlight, conns, async (conn) => {
      const i = next++;
      if (i < ids.length) await conn.leaseRevoke(ids[i]);
    }, revoke, () => next < ids.length, true);
  } else {
    revoke.unsupported = grant.unsupported ?? 'no leases granted';
  }
  send({ type: 'result', result: revoke.result('revoke', performance.now() - t0) });
  for (const c of conns) c.close();
}

/** Absolute time in ms, comparable across threads of this process (the writer stamps values with it). */
function nowAbsMs(): number {
  return performance.timeOrigin + performance.now();
}

async function runWatch(job: WatchJob): Promise<void> {
  const conn = new EtcdConnection(input.endpoints[0]);
  const rec = new Recorder();
  let measuring = false;
  const streams: Array<ReturnType<EtcdConnection['watchStream']>> = [];
  const key = Buffer.from(job.key);
  let created = 0;
  await new Promise<void>((resolve, reject) => {
    let remaining = job.watchers;
    if (remaining === 0) resolve();
    const timer = setTimeout(() => reject(new Error(`only ${created}/${job.watchers} watchers created in 60 s`)), 60_000);
    while (remaining > 0) {
      const n = Math.min(remaining, job.watchersPerStream);
      remaining -= n;
      const stream = conn.watchStream();
      streams.push(stream);
      stream.on('data', (res: WatchResponse) => {
        if (res.created) {
          if (++created === job.watchers) {
            clearTimeout(timer);
            resolve();
          }
        }
        if (!measuring) return;
        const now = nowAbsMs();
        for (const ev of res.events) {
          const v = ev.kv?.value;
          if (v === undefined || v.length < 8) continue;
          recordMs(rec.histogram, now - v.readDoubleLE(0));
          rec.ok++;
        }
      });
      stream.on('error', (err) => {
        if (grpcCode(err) !== 1 /* CANCELLED by us */) rec.error(err);
      });
      for (let i = 0; i < n; i++) stream.write({ create_request: { key } });
    }
  });
  await awaitGo('deliver');
  measuring = true;
  const t0 = performance.now();
  const m = await nextMessage();
  if (m.type !== 'stop') throw new Error(`expected stop, got ${m.type}`);
  measuring = false;
  rec.counters.watchers = created;
  send({ type: 'result', result: rec.result('deliver', performance.now() - t0) });
  for (const s of streams) s.cancel();
  conn.close();
}

async function main(): Promise<void> {
  const job = input.job;
  if (job.kind === 'closed-loop') await runClosedLoop(job);
  else if (job.kind === 'lease') await runLease(job);
  else await runWatch(job);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    send({ type: 'failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  },
);

// No-stall measurement (issue 13, item 2): with `values` × `valueBytes` stored, several clients range
// over all of them at once, then one deletes them all while the others keep ranging; meanwhile other
// clients put small keys and time each put. Reported: leader changes and terms, the longest silence
// from the leader each follower saw (synod_raft_leader_message_gap_max_seconds), the longest
// event-loop delay of every member (synod_event_loop_delay_max_seconds), and the small puts' p99.
// Shared by test/no-stall.test.ts and bench/no-stall.ts.
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../../server/etcd/proto.ts';
import type { ProcessCluster } from './process-cluster.ts';
import { fillValues } from './restart-ready.ts';
import { scanRangeReply, type ScannedRange } from './range-reply-scan.ts';

type Unary = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

/** A KV client that accepts replies of any size (grpc-js's default limit is 4 MiB; etcd clients use 2 GiB).
 * Range replies are scanned, not decoded (test/support/range-reply-scan.ts says why). */
class BigKvClient {
  private readonly kv: grpc.Client;
  private readonly service: grpc.ServiceDefinition;
  constructor(address: string) {
    const KV = etcdClients().KV;
    this.service = KV.service;
    this.kv = new KV(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      // grpc-js advertises HTTP/2's default 64 KiB receive window and never grows it, so a 1 GiB reply
      // would cost the member 16,000 window round trips; etcd's Go clients grow theirs by BDP estimation
      // up to 16 MiB (grpc-go), which is what a client reading gigabytes has.
      'grpc-node.flow_control_window': 16 * 1024 * 1024,
    });
  }
  call<T>(method: string, req: object, timeoutMs: number): Promise<T> {
    const fn = (this.kv as unknown as Record<string, Unary>)[method].bind(this.kv);
    return new Promise<T>((resolve, reject) => fn(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T))));
  }
  range(req: object, timeoutMs: number): Promise<ScannedRange> {
    const def = this.service.Range;
    return new Promise<ScannedRange>((resolve, reject) =>
      this.kv.makeUnaryRequest(
        def.path,
        def.requestSerialize,
        (raw: Buffer) => raw,
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, raw) => {
          if (err || raw === undefined) reject(err ?? new Error('no reply'));
          else {
            try {
              resolve(scanRangeReply(raw));
            } catch (e) {
              reject(e as Error);
            }
          }
        },
      ),
    );
  }
  close(): void {
    this.kv.close();
  }
}

export interface NoStallOptions {
  values: number;
  valueBytes: number;
  /** Clients ranging at once (one of them deletes in the second phase). */
  clients: number;
  /** Full ranges each client makes in the first phase. */
  rangeRounds: number;
}

export interface NoStallResult {
  leaderIndex: number;
  fillMs: number;
  termsBefore: number[];
  termsAfter: number[];
  leaderChanges: number;
  /** Per member: longest silence from the leader seen (followers), ms. */
  leaderGapMaxMs: number[];
  /** Per member: longest event-loop delay, ms. */
  loopDelayMaxMs: number[];
  /** Per member: longest batch write (fsync) a turn waited for, ms. */
  batchWriteMaxMs: number[];
  rangeMs: number[];
  deleteMs: number;
  /** Counts the ranges concurrent with the delete saw (each must be 0 or `values`: the delete is atomic). */
  countsDuringDelete: number[];
  puts: number;
  putP50Ms: number;
  putP99Ms: number;
  putMaxMs: number;
}

function metric(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

export async function measureNoStall(cluster: ProcessCluster, opts: NoStallOptions): Promise<NoStallResult> {
  const fillMs = await fillValues(cluster, opts.values, opts.valueBytes, 'big/');
  // After the fill: a fill of 1 MiB puts on a busy shared disk may itself move leadership (turns wait
  // for their fsync, see synod_disk_batch_write_max_seconds), and the measured window starts here.
  const leaderIndex = await cluster.leaderIndex();
  const members = cluster.members.map((_, i) => i);
  // Scraping resets the maxima: from here on they cover only the measured window.
  const before = await Promise.all(members.map((i) => cluster.metrics(i)));
  const termsBefore = before.map((t) => metric(t, 'synod_raft_term'));
  const changesBefore = before.reduce((sum, t) => sum + metric(t, 'synod_server_leader_changes_seen_total'), 0);

  // Small puts from other clients, on the leader and on a follower, timed one by one in processes
  // of their own (this one's event loop is busy decoding the large replies).
  const putterScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'no-stall-putter.ts');
  const putters: ChildProcess[] = [leaderIndex, (leaderIndex + 1) % members.length].map((i, n) =>
    fork(putterScript, [cluster.addressOf(i), `small/${n}/`], { execPath: process.execPath, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
  );
  const putterResults = putters.map(
    (child) =>
      new Promise<{ latencies: number[]; errors: string[] }>((resolve, reject) => {
        child.on('message', (m) => {
          if (typeof m === 'object' && m !== null) resolve(m as { latencies: number[]; errors: string[] });
        });
        child.once('exit', (code) => reject(new Error(`putter exited with ${code}`)));
      }),
  );
  for (const r of putterResults) r.catch(() => undefined);
  await Promise.all(putters.map((child) => new Promise((resolve) => child.once('message', resolve))));

  const range = { key: Buffer.from('big/'), range_end: Buffer.from('big0') };
  const clients = Array.from({ length: opts.clients }, () => new BigKvClient(cluster.addressOf(leaderIndex)));
  const rangeMs: number[] = [];
  let deleteMs = 0;
  const countsDuringDelete: number[] = [];
  try {
    await Promise.all(
      clients.map(async (client) => {
        for (let round = 0; round < opts.rangeRounds; round++) {
          const started = performance.now();
          const reply = await client.range(range, 180_000);
          rangeMs.push(performance.now() - started);
          if (reply.count !== opts.values || reply.valueLengths.length !== opts.values) {
            throw new Error(`range saw ${reply.count} keys (${reply.valueLengths.length} returned), expected ${opts.values}`);
          }
          const wrong = reply.valueLengths.findIndex((n) => n !== opts.valueBytes);
          if (wrong >= 0) throw new Error(`value ${wrong} of the range has ${reply.valueLengths[wrong]} bytes`);
        }
      }),
    );
    // One client deletes everything while the others keep ranging over it.
    let deleting = true;
    await Promise.all([
      (async () => {
        const started = performance.now();
        const reply = await clients[0].call<{ deleted: string }>('DeleteRange', range, 180_000);
        deleteMs = performance.now() - started;
        deleting = false;
        if (Number(reply.deleted) !== opts.values) throw new Error(`deleted ${reply.deleted}, expected ${opts.values}`);
      })(),
      ...clients.slice(1).map(async (client) => {
        while (deleting) {
          const reply = await client.range(range, 180_000);
          countsDuringDelete.push(reply.count);
          if (reply.valueLengths.length !== reply.count) throw new Error('a range returned fewer keys than it counted');
        }
      }),
    ]);
  } finally {
    for (const child of putters) child.send('stop');
    for (const c of clients) c.close();
  }
  const putterOut = await Promise.all(putterResults);
  const latencies = putterOut.flatMap((r) => r.latencies);
  const putErrors = putterOut.flatMap((r) => r.errors);
  if (putErrors.length > 0) throw new Error(`other clients' puts failed: ${putErrors.slice(0, 3).join('; ')}`);
  const after = await Promise.all(members.map((i) => cluster.metrics(i)));
  latencies.sort((a, b) => a - b);
  return {
    leaderIndex,
    fillMs,
    termsBefore,
    termsAfter: after.map((t) => metric(t, 'synod_raft_term')),
    leaderChanges: after.reduce((sum, t) => sum + metric(t, 'synod_server_leader_changes_seen_total'), 0) - changesBefore,
    leaderGapMaxMs: after.map((t) => metric(t, 'synod_raft_leader_message_gap_max_seconds') * 1000),
    loopDelayMaxMs: after.map((t) => metric(t, 'synod_event_loop_delay_max_seconds') * 1000),
    batchWriteMaxMs: after.map((t) => metric(t, 'synod_disk_batch_write_max_seconds') * 1000),
    rangeMs,
    deleteMs,
    countsDuringDelete,
    puts: latencies.length,
    putP50Ms: percentile(latencies, 50),
    putP99Ms: percentile(latencies, 99),
    putMaxMs: latencies.at(-1) ?? NaN,
  };
}

export function formatNoStall(r: NoStallResult, opts: NoStallOptions): string {
  const ms = (x: number): string => `${Math.round(x)} ms`;
  return [
    `${opts.values} × ${opts.valueBytes} B stored (filled in ${(r.fillMs / 1000).toFixed(1)} s); ${opts.clients} clients × ${opts.rangeRounds} full ranges, then one DeleteRange over all with concurrent ranges`,
    `  leader changes: ${r.leaderChanges}; terms before ${r.termsBefore.join('/')} after ${r.termsAfter.join('/')}`,
    `  longest silence from the leader seen by each follower: ${r.leaderGapMaxMs.map((x, i) => (i === r.leaderIndex ? 'leader' : ms(x))).join(', ')}`,
    `  longest event-loop delay per member: ${r.loopDelayMaxMs.map((x, i) => `${ms(x)}${i === r.leaderIndex ? ' (leader)' : ''}`).join(', ')}`,
    `  longest batch write (fsync) per member: ${r.batchWriteMaxMs.map((x, i) => `${ms(x)}${i === r.leaderIndex ? ' (leader)' : ''}`).join(', ')}`,
    `  full ranges: ${r.rangeMs.map(ms).join(', ')}; delete: ${ms(r.deleteMs)}; counts seen during the delete: ${[...new Set(r.countsDuringDelete)].join(',') || 'none'}`,
    `  other clients' puts: ${r.puts}, p50 ${r.putP50Ms.toFixed(1)} ms, p99 ${r.putP99Ms.toFixed(1)} ms, max ${r.putMaxMs.toFixed(1)} ms`,
  ].join('\n');
}

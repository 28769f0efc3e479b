// Delivery latency of one prefix watch whose keys span every shard (bench/sharding.ts's watch row; the
// brief's figure: events within 100 ms p99 of commit under light load). An open-loop writer puts to
// distinct keys under the prefix through member 1 at a fixed rate; the watch is opened through member 2,
// so on a sharded cluster it merges every shard's events in revision order. Each value carries the
// time its put was sent; an event's latency is receipt − send, which bounds receipt − commit from above.
// The run also checks what the brief promises of such a watch: each put's event arrives once, in
// revision order; the counts of missed, duplicated and out-of-order events are part of the result.
import type { Cluster } from './clusters.ts';
import { EtcdConnection, type WatchResponse } from './etcd-rpc.ts';
import { newHistogram, recordMs, summarise } from './histogram.ts';

export interface PrefixWatchLatency {
  puts: number;
  putErrors: number;
  delivered: number;
  missed: number;
  duplicates: number;
  outOfOrder: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface PrefixWatchOptions {
  putsPerSecond: number;
  durationMs: number;
  /** Distinct keys the writer cycles through (spread over every shard by the slot hash). */
  keys: number;
}

const PREFIX = 'bench/prefix-watch/';

export async function measurePrefixWatchLatency(cluster: Cluster, opts: PrefixWatchOptions): Promise<PrefixWatchLatency> {
  const writer = new EtcdConnection(cluster.endpoints[0]);
  const watcher = new EtcdConnection(cluster.endpoints[1 % cluster.endpoints.length]);
  const histogram = newHistogram();
  let delivered = 0;
  const seen = new Set<string>();
  let duplicates = 0;
  let outOfOrder = 0;
  let lastRevision = 0n;
  const stream = watcher.watchStream();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('prefix watch not created in 30 s')), 30_000);
      stream.on('data', (res: WatchResponse) => {
        if (res.created) {
          clearTimeout(timer);
          resolve();
        }
        const nowMs = performance.timeOrigin + performance.now();
        for (const ev of res.events) {
          const kv = ev.kv;
          if (!kv) continue;
          const revision = BigInt(kv.mod_revision);
          if (revision <= lastRevision) outOfOrder++;
          lastRevision = revision > lastRevision ? revision : lastRevision;
          const id = `${kv.key.toString()}@${kv.mod_revision}`;
          if (seen.has(id)) {
            duplicates++;
            continue;
          }
          seen.add(id);
          if (kv.value.length < 8) continue;
          recordMs(histogram, nowMs - kv.value.readDoubleLE(0));
          delivered++;
        }
      });
      stream.on('error', (err) => reject(err));
      const end = Buffer.from(PREFIX);
      end[end.length - 1]++;
      stream.write({ create_request: { key: Buffer.from(PREFIX), range_end: end } });
    });
    let puts = 0;
    let putErrors = 0;
    const intervalMs = 1000 / opts.putsPerSecond;
    const t0 = performance.now();
    const inFlight: Array<Promise<void>> = [];
    for (let i = 0; performance.now() - t0 < opts.durationMs; i++) {
      const waitMs = t0 + i * intervalMs - performance.now();
      if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
      const value = Buffer.alloc(64);
      value.writeDoubleLE(performance.timeOrigin + performance.now(), 0);
      inFlight.push(
        writer.put({ key: Buffer.from(`${PREFIX}${i % opts.keys}`), value }).then(
          () => void puts++,
          () => void putErrors++,
        ),
      );
    }
    await Promise.all(inFlight);
    // Every acknowledged put's event is due: wait for the stragglers, at most 5 s.
    const settleBy = performance.now() + 5000;
    while (delivered < puts && performance.now() < settleBy) await new Promise((r) => setTimeout(r, 50));
    const latency = summarise(histogram);
    return { puts, putErrors, delivered, missed: Math.max(0, puts - delivered), duplicates, outOfOrder, p50Ms: latency.p50Ms, p99Ms: latency.p99Ms, maxMs: latency.maxMs };
  } finally {
    stream.cancel();
    writer.close();
    watcher.close();
  }
}

// Probe: latency at 1 in flight of a put, a two-key txn on one shard ({hash tag}) and a two-key txn over
// two shards (a cross-shard transaction), each without compares and as a compare-and-swap (both keys'
// mod revisions compared with what the probe last saw; the failure branch reads both), through each
// member of a running 16-shard cluster in turn (`make run`). Prints each one's p50 and p90 and the
// two-shard txns' p50 against the one-shard txns' (issue 15's target: at most 2×).
// Usage: node bench/txn-c1-probe.ts <seconds per member> <host:port> ...
import { randomBytes } from 'node:crypto';
import { EtcdConnection } from './etcd-rpc.ts';
import { casTxn, txnKeyPair } from './txn-keys.ts';

const KEYSPACE = 100_000;
type Kind = 'put' | 'txn, 1 shard' | 'txn, 2 shards' | 'CAS txn, 1 shard' | 'CAS txn, 2 shards';
const KINDS: readonly Kind[] = ['put', 'txn, 1 shard', 'txn, 2 shards', 'CAS txn, 1 shard', 'CAS txn, 2 shards'];
/** The mod revision the probe last saw of each key (a compare-and-swap's compares). */
const lastSeen = new Map<string, string>();

const [secondsArg, ...endpoints] = process.argv.slice(2);
if (endpoints.length === 0) {
  console.error('usage: node bench/txn-c1-probe.ts <seconds per member> <host:port> ...');
  process.exit(2);
}
const seconds = Number(secondsArg);
const value = randomBytes(256);
const conns = endpoints.map((e) => new EtcdConnection(e));

async function once(kind: Kind, conn: EtcdConnection): Promise<void> {
  const keys = txnKeyPair(Math.floor(Math.random() * KEYSPACE), kind.endsWith('2 shards'));
  if (kind === 'put') {
    await conn.put({ key: keys[0], value } as never);
    return;
  }
  if (kind.startsWith('CAS')) await casTxn(conn, keys, value, lastSeen);
  else await conn.txn({ compare: [], success: keys.map((key) => ({ request_put: { key, value } })), failure: [] } as never);
}

/** Latencies (ms, sorted) of `kind` one after another through `conn` for `ms`. */
async function loop(kind: Kind, conn: EtcdConnection, ms: number): Promise<number[]> {
  const latencies: number[] = [];
  const endMs = performance.now() + ms;
  while (performance.now() < endMs) {
    const startMs = performance.now();
    await once(kind, conn);
    latencies.push(performance.now() - startMs);
  }
  return latencies.sort((x, y) => x - y);
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];

for (const conn of conns) for (const kind of KINDS) await loop(kind, conn, 700); // warm-up
const p50s = new Map<Kind, number>();
for (const kind of KINDS) {
  const all: number[] = [];
  const perMember: string[] = [];
  for (const conn of conns) {
    const latencies = await loop(kind, conn, seconds * 1_000);
    all.push(...latencies);
    perMember.push(quantile(latencies, 0.5).toFixed(2));
  }
  all.sort((x, y) => x - y);
  p50s.set(kind, quantile(all, 0.5));
  console.log(`${kind}: ${all.length} at c=1, p50 ${quantile(all, 0.5).toFixed(2)} ms (through each member ${perMember.join(' / ')}), p90 ${quantile(all, 0.9).toFixed(2)} ms`);
}
console.log(`two-shard txn p50 / one-shard txn p50: ${(p50s.get('txn, 2 shards')! / p50s.get('txn, 1 shard')!).toFixed(2)}×`);
console.log(`two-shard CAS txn p50 / one-shard CAS txn p50: ${(p50s.get('CAS txn, 2 shards')! / p50s.get('CAS txn, 1 shard')!).toFixed(2)}×`);
for (const conn of conns) conn.close();
process.exit(0);

// The keys of the bench's two-key txns: sharing a {hash tag} (one shard of a 16-shard cluster: one Raft
// entry), or the second moved on from tag to tag until it lands on another shard (a cross-shard
// transaction). On etcd and on one shard both are the same single-entry txn. Used by the load generator
// (load-worker.ts) and the probes (counters-probe.ts, txn-c1-probe.ts).
import { SlotMap } from '../server/routing/slots.ts';
import type { EtcdConnection } from './etcd-rpc.ts';

const SIXTEEN_SHARDS = SlotMap.create(16);

/** The pair for index `i`: on one shard, or (`twoShards`) on two shards of a 16-shard cluster. */
export function txnKeyPair(i: number, twoShards: boolean): [Buffer, Buffer] {
  const a = Buffer.from(`{t${i}}a`);
  let b = Buffer.from(`{t${i}}b`);
  for (let j = i + 1; twoShards && SIXTEEN_SHARDS.shardOfKey(b) === SIXTEEN_SHARDS.shardOfKey(a); j++) b = Buffer.from(`{t${j}}b`);
  return [a, b];
}

/**
 * A compare-and-swap of `keys` through `conn`: both keys' mod revisions compared with what `lastSeen` holds
 * of them (0 when never seen); the success branch puts `value` on both, the failure branch reads both, and
 * `lastSeen` learns either way. Whether it succeeded.
 */
export async function casTxn(conn: EtcdConnection, keys: readonly Buffer[], value: Buffer, lastSeen: Map<string, string>): Promise<boolean> {
  const res = await conn.txn({
    compare: keys.map((key) => ({ result: 'EQUAL', target: 'MOD', key, mod_revision: lastSeen.get(key.toString('latin1')) ?? '0' })),
    success: keys.map((key) => ({ request_put: { key, value } })),
    failure: keys.map((key) => ({ request_range: { key } })),
  });
  keys.forEach((key, i) => lastSeen.set(key.toString('latin1'), res.succeeded ? res.header.revision : (res.responses[i]?.response_range?.kvs[0]?.mod_revision ?? '0')));
  return res.succeeded;
}

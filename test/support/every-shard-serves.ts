// Waits until every shard of a new sharded cluster takes a write through `endpoint`: members answer
// ready before each shard has elected its first leader on a loaded machine, and a test's first
// cross-shard write would otherwise meet a shard still electing.
import { SlotMap } from '../../server/routing/slots.ts';
import { KvClient } from './kv-client.ts';
import { eventually } from './eventually.ts';

export async function everyShardServes(endpoint: string, shards: number, timeoutMs = 30_000): Promise<void> {
  const kv = new KvClient(endpoint);
  try {
    const slots = SlotMap.create(shards);
    const served = new Set<number>();
    for (let i = 0; served.size < shards; i++) {
      const shard = slots.shardOfKey(Buffer.from(`warm/${i}`));
      if (served.has(shard)) continue;
      await eventually(`shard ${shard} serves`, () => kv.put(`warm/${i}`, 'x', {}, 2_000), timeoutMs, 200);
      served.add(shard);
    }
  } finally {
    kv.close();
  }
}

// etcdHashKv against the rule written out plainly: every record as etcd stores it, sorted by revision,
// filtered by etcd's compaction rule, checksummed in one piece. Random stores with histories, tombstones,
// re-created keys, keys with zero bytes, compaction points and hash revisions anywhere, one store or
// several (a sharded member's replicas). The numbers themselves are checked against etcd 3.4 in
// test/etcd-snapshot-restore.test.ts.
import { describe, expect, it } from 'vitest';
import { crc32c } from './crc32c.ts';
import { encodeLiveValue, encodeRevKey, TOMBSTONE_VALUE } from './codec.ts';
import { etcdRecordOf, etcdRevisionKey } from './etcd-records.ts';
import { etcdHashKv } from './etcd-hash-kv.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

type Rec = [Buffer, Buffer];

/** Stores whose revisions never collide across stores (one oracle sequence). */
function randomStores(seed: number): { stores: Rec[][]; compacted: number[]; top: number } {
  const r = rng(seed);
  const storeCount = 1 + Math.floor(r() * 3);
  const stores: Rec[][] = Array.from({ length: storeCount }, () => []);
  const alive = new Map<string, { create: number; version: number }>();
  let main = 1;
  for (let i = 0; i < 20 + Math.floor(r() * 80); i++) {
    main += 1;
    const store = Math.floor(r() * storeCount);
    const writes = 1 + Math.floor(r() * 3);
    const keys = [...new Set(Array.from({ length: writes }, () => `${store}/${Math.floor(r() * 6)}${r() < 0.1 ? '\u0000' : ''}`))];
    keys.forEach((name, sub) => {
      const key = Buffer.from(name);
      const before = alive.get(name);
      if (before && r() < 0.3) {
        stores[store].push([encodeRevKey(key, main, sub), TOMBSTONE_VALUE]);
        alive.delete(name);
      } else {
        const now = before ? { create: before.create, version: before.version + 1 } : { create: main, version: 1 };
        alive.set(name, now);
        stores[store].push([encodeRevKey(key, main, sub), Buffer.from(encodeLiveValue(now.create, now.version, r() < 0.2 ? '7' : '0', Buffer.from(`v${main}`)).buf)]);
      }
    });
  }
  for (const s of stores) s.sort(([a], [b]) => Buffer.compare(a, b));
  return { stores, compacted: stores.map(() => (r() < 0.5 ? 0 : Math.floor(r() * main))), top: main };
}

/** etcd's hashByRev, plainly: filter, sort by revision, one CRC over the concatenation. */
function reference(stores: Rec[][], compacted: number[], revision: number): number {
  const all = stores.flatMap((records, s) => records.map(([k, v]) => ({ ...etcdRecordOf(k, v), store: s, key: k.subarray(1, k.length - 14).toString('hex') })));
  const kept = new Set<string>();
  const byKey = new Map<string, typeof all>();
  for (const rec of all) byKey.set(`${rec.store}:${rec.key}`, [...(byKey.get(`${rec.store}:${rec.key}`) ?? []), rec]);
  for (const recs of byKey.values()) {
    const latest = recs.filter((x) => x.main <= revision).sort((a, b) => a.main - b.main || a.sub - b.sub).at(-1);
    if (latest && !latest.tombstone) kept.add(`${latest.main}/${latest.sub}/${latest.store}`);
  }
  const chosen = all
    .filter((x) => x.main <= revision && (x.main > compacted[x.store] || kept.size === 0 || kept.has(`${x.main}/${x.sub}/${x.store}`)))
    .sort((a, b) => a.main - b.main || a.sub - b.sub || a.store - b.store);
  const bytes = Buffer.concat([Buffer.from('key'), ...chosen.flatMap((x) => [etcdRevisionKey(x.main, x.sub, x.tombstone), Buffer.from(x.keyValue)])]);
  return crc32c(bytes);
}

async function* iterate(records: Rec[]): AsyncGenerator<Rec> {
  yield* records;
}

describe('etcdHashKv', () => {
  it('gives what etcd\'s rule gives, over 200 random stores at random revisions', async () => {
    for (let seed = 1; seed <= 200; seed++) {
      const { stores, compacted, top } = randomStores(seed);
      const r = rng(seed * 7919);
      for (const revision of [top, Math.max(1, Math.floor(r() * top)), Math.max(...compacted) + 1]) {
        const got = await etcdHashKv(stores.map((records, s) => ({ records: iterate(records), compactedRevision: compacted[s] })), revision);
        expect(got, `seed ${seed} at ${revision}`).toBe(reference(stores, compacted, revision));
      }
    }
  });

  it('of an empty store is the CRC of "key" alone', async () => {
    expect(await etcdHashKv([{ records: iterate([]), compactedRevision: 0 }], 1)).toBe(crc32c(Buffer.from('key')));
  });
});

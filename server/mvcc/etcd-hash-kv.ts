// etcd's HashKV over a store's records: the number `etcdctl endpoint hashkv` prints, equal to etcd's own
// for the same keys, revisions and compaction point. So a cluster restored from an etcd snapshot (or an
// etcd restored from a Synod backup) can be checked against its source revision by revision.
//
// etcd's rule (mvcc hashByRev): CRC-32C over "key", then, in revision order, each record of its "key"
// bucket (revision key, then mvccpb.KeyValue; etcd-records.ts) with revision ≤ R, leaving out those at or
// below the compaction point C that a compaction at R would drop — every one but each key's latest at R
// unless that is a tombstone — except when that would leave out all of them (no key has a version to keep).
//
// Synod's store is in key order, etcd's in revision order: each record's CRC is taken as the records come
// (a key's versions together, so its latest at R is known), kept with its revision and length (24 bytes
// a record), and the CRCs are combined in revision order at the end (crc32c.ts) — no record is read twice.
import { crc32c, crc32cCombine } from './crc32c.ts';
import { doubled } from './doubled.ts';
import { decodeRevKey, decodeValue, isRevKey } from './codec.ts';
import { etcdKeyValue, etcdRevisionKey } from './etcd-records.ts';
import { keyValueParts } from './key-value-encoding.ts';

/** One store's MVCC records (store-relative keys, in key order) and its compaction point. */
export interface HashKvStore {
  records: AsyncIterable<[Buffer, Buffer]>;
  compactedRevision: number;
}

const ABOVE_COMPACTION = 1;
const KEPT = 2;

class Included {
  mains = new Float64Array(1024);
  subs = new Float64Array(1024);
  crcs = new Uint32Array(1024);
  lengths = new Float64Array(1024);
  flags = new Uint8Array(1024);
  stores = new Uint16Array(1024);
  count = 0;

  add(main: number, sub: number, crc: number, length: number, flags: number, store: number): number {
    if (this.count === this.mains.length) this.grow();
    const i = this.count++;
    this.mains[i] = main;
    this.subs[i] = sub;
    this.crcs[i] = crc;
    this.lengths[i] = length;
    this.flags[i] = flags;
    this.stores[i] = store;
    return i;
  }

  private grow(): void {
    this.mains = doubled(this.mains);
    this.subs = doubled(this.subs);
    this.crcs = doubled(this.crcs);
    this.lengths = doubled(this.lengths);
    this.flags = doubled(this.flags);
    this.stores = doubled(this.stores);
  }
}

/**
 * etcd's HashKV at `revision` over `stores` (one for a one-group cluster; a sharded member's replicas, whose
 * records are taken together in revision order, ties by store order).
 */
export async function etcdHashKv(stores: HashKvStore[], revision: number): Promise<number> {
  const all = new Included();
  for (let s = 0; s < stores.length; s++) {
    const { records, compactedRevision } = stores[s];
    let currentKey: Buffer | null = null;
    let latestAtRevision = -1; // index in `all` of the current key's latest record at or below `revision`
    let latestIsTombstone = false;
    const closeKey = (): void => {
      if (latestAtRevision >= 0 && !latestIsTombstone) all.flags[latestAtRevision] |= KEPT;
      latestAtRevision = -1;
    };
    for await (const [storeKey, value] of records) {
      if (!isRevKey(storeKey)) continue;
      const { key, main, sub } = decodeRevKey(storeKey);
      if (currentKey === null || !key.equals(currentKey)) {
        closeKey();
        currentKey = key;
      }
      if (main > revision) continue;
      const v = decodeValue(value);
      // The record as etcd stores it, checksummed in pieces: the value is read where it lies.
      const revisionKey = etcdRevisionKey(main, sub, v.tombstone);
      const kv = keyValueParts(etcdKeyValue(key, main, v, value));
      const crc = crc32c(kv.tail, crc32c(kv.value, crc32c(kv.head, crc32c(revisionKey))));
      const bytes = revisionKey.length + kv.head.length + kv.value.length + kv.tail.length;
      latestAtRevision = all.add(main, sub, crc, bytes, main > compactedRevision ? ABOVE_COMPACTION : 0, s);
      latestIsTombstone = v.tombstone;
    }
    closeKey();
  }
  let anyKept = false;
  for (let i = 0; i < all.count && !anyKept; i++) anyKept = (all.flags[i] & KEPT) !== 0;
  const order: number[] = [];
  for (let i = 0; i < all.count; i++) if (!anyKept || all.flags[i] !== 0) order.push(i);
  const { mains, subs, stores: storeOf } = all;
  order.sort((a, b) => mains[a] - mains[b] || subs[a] - subs[b] || storeOf[a] - storeOf[b]);
  let hash = crc32c(Buffer.from('key'));
  for (const i of order) hash = crc32cCombine(hash, all.crcs[i], all.lengths[i]);
  return hash;
}

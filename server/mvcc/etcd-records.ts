// A store's MVCC records in etcd's own encoding, byte for byte what etcd's backend holds in its "key"
// bucket: the revision as the key (8-byte main, '_', 8-byte sub, big-endian; 't' after a tombstone's)
// and the mvccpb.KeyValue as the value (a tombstone's carries the key alone). Backups written as etcd
// snapshots (api/etcd-backup.ts) and etcd's HashKV (etcd-hash-kv.ts) are made of these.
import { decodeRevKey, decodeValue, type DecodedValue } from './codec.ts';
import type { KeyValue } from './types.ts';
import { encodeKeyValue } from './key-value-encoding.ts';

const TOMBSTONE_MARK = 0x74; // 't'
const EMPTY = Buffer.alloc(0);

export function etcdRevisionKey(main: number, sub: number, tombstone: boolean): Buffer {
  // Safe integers in two 32-bit halves: no BigInt per record (HashKV makes one for every record).
  const key = Buffer.alloc(tombstone ? 18 : 17);
  key.writeUInt32BE(Math.floor(main / 0x100000000), 0);
  key.writeUInt32BE(main >>> 0, 4);
  key[8] = 0x5f;
  key.writeUInt32BE(Math.floor(sub / 0x100000000), 9);
  key.writeUInt32BE(sub >>> 0, 13);
  if (tombstone) key[17] = TOMBSTONE_MARK;
  return key;
}

export interface EtcdRecord {
  main: number;
  sub: number;
  tombstone: boolean;
  /** The mvccpb.KeyValue etcd stores for it. */
  keyValue: Uint8Array;
}

/** The KeyValue etcd stores for a record of `key` at `main`, from its decoded value (`record` is the stored value). */
export function etcdKeyValue(key: Buffer, main: number, v: DecodedValue, record: Buffer): KeyValue {
  return v.tombstone
    ? { key, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: '0' }
    : { key, createRevision: v.create, modRevision: main, version: v.version, value: record.subarray(v.valueOffset), lease: v.lease };
}

/** One of the store's revision records (its store-relative key and value) as etcd stores it. */
export function etcdRecordOf(storeKey: Buffer, value: Buffer): EtcdRecord {
  const { key, main, sub } = decodeRevKey(storeKey);
  const v = decodeValue(value);
  return { main, sub, tombstone: v.tombstone, keyValue: encodeKeyValue(etcdKeyValue(key, main, v, value)) };
}

/** etcd's revision key → main and sub revisions, and whether it marks a tombstone (the inverse of etcdRevisionKey). */
export function decodeEtcdRevisionKey(key: Buffer): { main: number; sub: number; tombstone: boolean } {
  const tombstone = key.length === 18 && key[17] === TOMBSTONE_MARK;
  if ((key.length !== 17 && !tombstone) || key[8] !== 0x5f) throw new Error(`etcd revision key malformed: ${key.toString('hex')}`);
  const main = Number(key.readBigUInt64BE(0));
  const sub = Number(key.readBigUInt64BE(9));
  if (!Number.isSafeInteger(main) || sub > 0xffffffff) throw new Error(`etcd revision key out of range: ${key.toString('hex')}`);
  return { main, sub, tombstone };
}

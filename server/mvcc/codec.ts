// Binary encoding of the store's persisted records (store-relative keyspace).
//
//   meta      key 0x00                                        value: 0x01 (format) | varint currentRevision | varint compactedRevision
//   revision  key 0x01 | escaped(userKey) | 0x00 0x01 | main (u64 BE) | sub (u32 BE)
//             value, live:      0x00 | varint createRevision | varint version | varint leaseLen | lease (ASCII decimal, "" = "0") | value bytes
//             value, tombstone: 0x01
//
// escaped(k) replaces every 0x00 byte by 0x00 0xFF; the terminator 0x00 0x01 sorts below both an escaped
// zero and any non-zero byte, so byte order of record keys = (userKey, main, sub) order. Restore can thus
// rebuild the index from a key-sorted scan without sorting.
import { numberVarintBytes, writeNumberVarint } from '../protobuf/varint.ts';

export const META_KEY: Buffer = Buffer.from([0x00]);
const REV_PREFIX = 0x01;
const META_FORMAT = 0x01;
const FLAG_TOMBSTONE = 0x01;
export const TOMBSTONE_VALUE: Buffer = Buffer.from([FLAG_TOMBSTONE]);


interface Cursor {
  off: number;
}

function readVarint(buf: Buffer, c: Cursor): number {
  let result = 0;
  let mul = 1;
  for (;;) {
    if (c.off >= buf.length) throw new Error('mvcc codec: truncated varint');
    const b = buf[c.off++];
    result += (b & 0x7f) * mul;
    if (b < 0x80) return result;
    mul *= 128;
  }
}

export function encodeRevKey(key: Buffer, main: number, sub: number): Buffer {
  // A plain loop: Buffer.indexOf is a call into C++ per zero byte, and binary keys (etcdctl check perf
  // writes random ones) made it a tenth of the leader's CPU.
  let zeros = 0;
  for (let i = 0; i < key.length; i++) if (key[i] === 0) zeros++;
  const len = key.length + zeros;
  const out = Buffer.allocUnsafe(1 + len + 2 + 12);
  out[0] = REV_PREFIX;
  let off = 1;
  if (zeros === 0) {
    key.copy(out, 1);
    off += key.length;
  } else {
    for (let i = 0; i < key.length; i++) {
      const b = key[i];
      out[off++] = b;
      if (b === 0) out[off++] = 0xff;
    }
  }
  out[off++] = 0x00;
  out[off++] = 0x01;
  out.writeUInt32BE(Math.floor(main / 0x100000000), off);
  out.writeUInt32BE(main >>> 0, off + 4);
  out.writeUInt32BE(sub >>> 0, off + 8);
  return out;
}

export interface DecodedRevKey {
  key: Buffer;
  main: number;
  sub: number;
}

export function isRevKey(k: Buffer): boolean {
  return k.length > 0 && k[0] === REV_PREFIX;
}

export function isMetaKey(k: Buffer): boolean {
  return k.length === 1 && k[0] === META_KEY[0];
}

/** Decodes a revision record key; the user key returned is a fresh copy (own allocation). */
export function decodeRevKey(k: Buffer): DecodedRevKey {
  if (k.length < 15 || k[0] !== REV_PREFIX) throw new Error('mvcc codec: not a revision key');
  const tail = k.length - 12;
  const end = tail - 2;
  if (k[end] !== 0x00 || k[end + 1] !== 0x01) throw new Error('mvcc codec: bad key terminator');
  const first0 = k.indexOf(0, 1);
  let key: Buffer;
  if (first0 === end) {
    key = Buffer.allocUnsafeSlow(end - 1);
    k.copy(key, 0, 1, end);
  } else {
    const bytes: number[] = [];
    for (let i = 1; i < end; i++) {
      const b = k[i];
      bytes.push(b);
      if (b === 0) {
        if (k[i + 1] !== 0xff) throw new Error('mvcc codec: bad key escape');
        i++;
      }
    }
    key = Buffer.from(bytes);
  }
  const main = k.readUInt32BE(tail) * 0x100000000 + k.readUInt32BE(tail + 4);
  const sub = k.readUInt32BE(tail + 8);
  return { key, main, sub };
}

/** Encodes a live record. Returns the record and the offset of the value bytes in it. */
export function encodeLiveValue(create: number, version: number, lease: string, value: Buffer): { buf: Buffer; valueOffset: number } {
  const leaseLen = lease === '0' ? 0 : lease.length;
  const head = 1 + numberVarintBytes(create) + numberVarintBytes(version) + numberVarintBytes(leaseLen) + leaseLen;
  // From Node's shared pool: a record lives only until its batch is written (the store keeps its
  // fields, not the encoding), so it pins a pool slab only briefly.
  const buf = Buffer.allocUnsafe(head + value.length);
  buf[0] = 0;
  let off = writeNumberVarint(buf, 1, create);
  off = writeNumberVarint(buf, off, version);
  off = writeNumberVarint(buf, off, leaseLen);
  if (leaseLen > 0) off += buf.write(lease, off, 'latin1');
  value.copy(buf, off);
  return { buf, valueOffset: off };
}

export interface DecodedValue {
  tombstone: boolean;
  create: number;
  version: number;
  lease: string;
  /** Offset of the value bytes in the record (the value is record.subarray(valueOffset)). */
  valueOffset: number;
}

export function decodeValue(buf: Buffer): DecodedValue {
  if (buf.length === 0) throw new Error('mvcc codec: empty record');
  if (buf[0] & FLAG_TOMBSTONE) return { tombstone: true, create: 0, version: 0, lease: '0', valueOffset: buf.length };
  const c: Cursor = { off: 1 };
  const create = readVarint(buf, c);
  const version = readVarint(buf, c);
  const leaseLen = readVarint(buf, c);
  let lease = '0';
  if (leaseLen > 0) {
    lease = buf.toString('latin1', c.off, c.off + leaseLen);
    c.off += leaseLen;
  }
  if (c.off > buf.length) throw new Error('mvcc codec: truncated record');
  return { tombstone: false, create, version, lease, valueOffset: c.off };
}

export function encodeMeta(currentRevision: number, compactedRevision: number): Buffer {
  const buf = Buffer.allocUnsafe(1 + numberVarintBytes(currentRevision) + numberVarintBytes(compactedRevision));
  buf[0] = META_FORMAT;
  writeNumberVarint(buf, writeNumberVarint(buf, 1, currentRevision), compactedRevision);
  return buf;
}

export function decodeMeta(buf: Buffer): { currentRevision: number; compactedRevision: number } {
  if (buf.length < 3 || buf[0] !== META_FORMAT) throw new Error('mvcc codec: unknown meta format');
  const c: Cursor = { off: 1 };
  const currentRevision = readVarint(buf, c);
  const compactedRevision = readVarint(buf, c);
  return { currentRevision, compactedRevision };
}

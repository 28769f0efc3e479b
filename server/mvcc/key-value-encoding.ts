// mvccpb.KeyValue as protobuf bytes, as etcd's Go encoder writes it: fields in number order (key = 1,
// create_revision = 2, mod_revision = 3, version = 4, value = 5, lease = 6), proto3 zeros and empty
// bytes left out, a lease as its int64. Its size is what the response encoder (api/kv-response-encoder.ts,
// which copies keys and values a slice at a time) lays out; its bytes are what etcd's backend stores
// (etcd-records.ts).
import type { KeyValue } from './types.ts';
import { numberVarintBytes, varintBytes, writeNumberVarint, writeVarint } from '../protobuf/varint.ts';

const LEN = 2;
const VARINT = 0;

/** A lease id as its int64 field value (negative values as their 64-bit two's complement; "0" and "" are none). */
export function leaseFieldValue(lease: string): bigint {
  return lease === '0' || lease === '' ? 0n : BigInt.asUintN(64, BigInt(lease));
}

/** A length-delimited field's whole size: tag, length, bytes. */
export function lenFieldBytes(fieldNo: number, len: number): number {
  return numberVarintBytes(fieldNo << 3) + numberVarintBytes(len) + len;
}

/** Encoded size of one KeyValue message body (without a field tag and length around it). */
export function keyValueBodyBytes(kv: KeyValue, lease: bigint): number {
  let n = 0;
  if (kv.key.length > 0) n += lenFieldBytes(1, kv.key.length);
  if (kv.createRevision !== 0) n += 1 + numberVarintBytes(kv.createRevision);
  if (kv.modRevision !== 0) n += 1 + numberVarintBytes(kv.modRevision);
  if (kv.version !== 0) n += 1 + numberVarintBytes(kv.version);
  if (kv.value.length > 0) n += lenFieldBytes(5, kv.value.length);
  if (lease !== 0n) n += 1 + varintBytes(lease);
  return n;
}

/** Writes fields 2–4 (create_revision, mod_revision, version; zeros left out) at `p`; returns the position after. */
export function writeRevisionFields(out: Buffer, p: number, kv: KeyValue): number {
  if (kv.createRevision !== 0) {
    out[p++] = (2 << 3) | VARINT;
    p = writeNumberVarint(out, p, kv.createRevision);
  }
  if (kv.modRevision !== 0) {
    out[p++] = (3 << 3) | VARINT;
    p = writeNumberVarint(out, p, kv.modRevision);
  }
  if (kv.version !== 0) {
    out[p++] = (4 << 3) | VARINT;
    p = writeNumberVarint(out, p, kv.version);
  }
  return p;
}

/**
 * The KeyValue's bytes around its value, which the caller reads where it lies (HashKV checksums a
 * store's values without copying them): head (fields 1–4 and the value's tag and length), the value,
 * tail (the lease).
 */
export function keyValueParts(kv: KeyValue): { head: Buffer; value: Buffer; tail: Buffer } {
  const lease = leaseFieldValue(kv.lease);
  const valueField = kv.value.length > 0 ? lenFieldBytes(5, kv.value.length) - kv.value.length : 0;
  const tailBytes = lease !== 0n ? 1 + varintBytes(lease) : 0;
  const head = Buffer.allocUnsafe(keyValueBodyBytes(kv, lease) - kv.value.length - tailBytes);
  let p = 0;
  if (kv.key.length > 0) {
    head[p++] = (1 << 3) | LEN;
    p = writeNumberVarint(head, p, kv.key.length);
    p += kv.key.copy(head, p);
  }
  p = writeRevisionFields(head, p, kv);
  if (valueField > 0) {
    head[p++] = (5 << 3) | LEN;
    p = writeNumberVarint(head, p, kv.value.length);
  }
  if (p !== head.length) throw new Error(`KeyValue encoding: wrote ${p} bytes of ${head.length}`);
  const tail = Buffer.allocUnsafe(tailBytes);
  if (tailBytes > 0) {
    tail[0] = (6 << 3) | VARINT;
    writeVarint(tail, 1, lease);
  }
  return { head, value: kv.value, tail };
}

/** The KeyValue's bytes, in one buffer (for a message of its own; large responses use the sliced encoder). */
export function encodeKeyValue(kv: KeyValue): Buffer {
  const { head, value, tail } = keyValueParts(kv);
  return Buffer.concat([head, value, tail]);
}

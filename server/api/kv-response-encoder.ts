// RangeResponse and DeleteRangeResponse bytes written by hand, a slice at a time, yielding to the
// event loop between slices. Raft ticks, heartbeats and peer I/O share the one event loop with
// requests (docs/architecture.md, "Bounded work per turn"): protobufjs encoded a Range over
// 300 × 1 MiB values in one synchronous call (and copied every value twice on the way), long enough
// for the followers to elect a new leader. Here the size is computed first (cheap: one pass over the
// key-values), one buffer is allocated (with the gRPC frame header in front, so grpc-js sends it
// without copying it again: preframed-response.ts), and keys and values are copied into it in slices
// that every encoding on the member shares, one per event-loop turn (copy-slices.ts). The key-values
// themselves were collected synchronously by the store at one revision, and their buffers are
// immutable, so what is encoded is exactly one consistent read.
//
// Fields go in number order with proto3 zeros left out, as etcd's Go encoder writes them; clients
// decode the same message protobufjs's encoding gives (tested). The KV service's serializer passes a
// Buffer through (proto.ts).
import type { KeyValue, ResponseOp, TxnResult } from '../mvcc/types.ts';
import type { ResponseHeader } from '../etcd/wire-types.ts';
import { numberVarintBytes, uint64Of, varintBytes, writeNumberVarint, writeVarint } from '../protobuf/varint.ts';
import { keyValueBodyBytes, leaseFieldValue, lenFieldBytes, writeRevisionFields } from '../mvcc/key-value-encoding.ts';
import { encodePutResponse } from './put-response-encoder.ts';
import { allocPreframed } from './preframed-response.ts';
import { SlicedCopier } from './copy-slices.ts';

/** etcd's server sends at most math.MaxInt32 bytes per message (grpc.MaxSendMsgSize); so do we. */
export const MAX_RESPONSE_BYTES = 2 ** 31 - 1;

/** The response would exceed MAX_RESPONSE_BYTES: grpc-go's ResourceExhausted in etcd. */
export class ResponseTooLargeError extends Error {
  constructor(bytes: number) {
    super(`grpc: trying to send message larger than max (${bytes} vs. ${MAX_RESPONSE_BYTES})`);
    this.name = 'ResponseTooLargeError';
  }
}

const LEN = 2;
const VARINT = 0;

/** Writes `kvs` as repeated field `fieldNo`, copying in `copier`'s slices; returns the position after. */
async function writeKvs(copier: SlicedCopier, out: Buffer, p: number, fieldNo: number, kvs: KeyValue[], bodies: number[], leases: bigint[]): Promise<number> {
  for (let i = 0; i < kvs.length; i++) {
    const kv = kvs[i];
    p = writeNumberVarint(out, p, (fieldNo << 3) | LEN);
    p = writeNumberVarint(out, p, bodies[i]);
    if (kv.key.length > 0) {
      out[p++] = (1 << 3) | LEN;
      p = writeNumberVarint(out, p, kv.key.length);
      const q = copier.tryCopy(kv.key, out, p);
      p = q >= 0 ? q : await copier.copy(kv.key, out, p);
    }
    p = writeRevisionFields(out, p, kv);
    if (kv.value.length > 0) {
      out[p++] = (5 << 3) | LEN;
      p = writeNumberVarint(out, p, kv.value.length);
      const q = copier.tryCopy(kv.value, out, p);
      p = q >= 0 ? q : await copier.copy(kv.value, out, p);
    }
    if (leases[i] !== 0n) {
      out[p++] = (6 << 3) | VARINT;
      p = writeVarint(out, p, leases[i]);
    }
  }
  return p;
}

function measureKvs(fieldNo: number, kvs: KeyValue[]): { bytes: number; bodies: number[]; leases: bigint[] } {
  const bodies = new Array<number>(kvs.length);
  const leases = new Array<bigint>(kvs.length);
  let bytes = 0;
  for (let i = 0; i < kvs.length; i++) {
    leases[i] = leaseFieldValue(kvs[i].lease);
    bodies[i] = keyValueBodyBytes(kvs[i], leases[i]);
    bytes += lenFieldBytes(fieldNo, bodies[i]);
  }
  return { bytes, bodies, leases };
}

/**
 * RangeResponse{header=1, kvs=2, more=3, count=4} as protobuf bytes; with `wrapField`, as the only
 * field of an enclosing message (RangeStreamResponse{range_response=1}).
 */
export async function encodeRangeResponse(header: ResponseHeader, kvs: KeyValue[], more: boolean, count: number, wrapField?: number): Promise<Buffer> {
  const headerField = encodePutResponse(header); // PutResponse is header = 1 alone: the same bytes
  const measured = measureKvs(2, kvs);
  const inner = headerField.length + measured.bytes + (more ? 2 : 0) + (count !== 0 ? 1 + numberVarintBytes(count) : 0);
  const total = wrapField === undefined ? inner : lenFieldBytes(wrapField, inner);
  if (total > MAX_RESPONSE_BYTES) throw new ResponseTooLargeError(total);
  const out = allocPreframed(total);
  let p = 0;
  if (wrapField !== undefined) {
    p = writeNumberVarint(out, p, (wrapField << 3) | LEN);
    p = writeNumberVarint(out, p, inner);
  }
  p += headerField.copy(out, p);
  p = await writeKvs(new SlicedCopier(), out, p, 2, kvs, measured.bodies, measured.leases);
  if (more) {
    out[p++] = (3 << 3) | VARINT;
    out[p++] = 1;
  }
  if (count !== 0) {
    out[p++] = (4 << 3) | VARINT;
    p = writeNumberVarint(out, p, count);
  }
  if (p !== total) throw new Error(`range response encoder wrote ${p} of ${total} bytes`);
  return out;
}

/** DeleteRangeResponse{header=1, deleted=2, prev_kvs=3} as protobuf bytes. */
export async function encodeDeleteRangeResponse(header: ResponseHeader, deleted: number, prevKvs: KeyValue[]): Promise<Buffer> {
  const headerField = encodePutResponse(header);
  const measured = measureKvs(3, prevKvs);
  const total = headerField.length + (deleted !== 0 ? 1 + numberVarintBytes(deleted) : 0) + measured.bytes;
  if (total > MAX_RESPONSE_BYTES) throw new ResponseTooLargeError(total);
  const out = allocPreframed(total);
  let p = headerField.copy(out, 0);
  if (deleted !== 0) {
    out[p++] = (2 << 3) | VARINT;
    p = writeNumberVarint(out, p, deleted);
  }
  p = await writeKvs(new SlicedCopier(), out, p, 3, prevKvs, measured.bodies, measured.leases);
  if (p !== total) throw new Error(`delete response encoder wrote ${p} of ${total} bytes`);
  return out;
}

// ---------------------------------------------------------------- Txn

/** A piece of a message being encoded: bytes written already, or key-values to copy in slices. */
type Segment = Buffer | { fieldNo: number; kvs: KeyValue[]; bodies: number[]; leases: bigint[]; bytes: number };

interface Encoded {
  segments: Segment[];
  bytes: number;
}

function segmentBytes(seg: Segment): number {
  return Buffer.isBuffer(seg) ? seg.length : seg.bytes;
}

/** A length-delimited field `fieldNo` holding `inner`. */
function wrap(fieldNo: number, inner: Encoded): Encoded {
  const prefix = Buffer.allocUnsafe(numberVarintBytes(fieldNo << 3) + numberVarintBytes(inner.bytes));
  writeNumberVarint(prefix, writeNumberVarint(prefix, 0, (fieldNo << 3) | LEN), inner.bytes);
  return { segments: [prefix, ...inner.segments], bytes: prefix.length + inner.bytes };
}

function concat(parts: Array<Encoded | Segment>): Encoded {
  const segments: Segment[] = [];
  let bytes = 0;
  for (const part of parts) {
    if (Buffer.isBuffer(part) || 'fieldNo' in part) {
      segments.push(part);
      bytes += segmentBytes(part);
    } else {
      segments.push(...part.segments);
      bytes += part.bytes;
    }
  }
  return { segments, bytes };
}

function varintField(fieldNo: number, v: number): Buffer {
  if (v === 0) return Buffer.alloc(0);
  const out = Buffer.allocUnsafe(1 + numberVarintBytes(v));
  out[0] = (fieldNo << 3) | VARINT;
  writeNumberVarint(out, 1, v);
  return out;
}

/** ResponseHeader as field 1, with the fields it has (a txn's inner responses carry only the revision). */
function headerField(h: Partial<ResponseHeader>): Buffer {
  const values = [h.cluster_id, h.member_id, h.revision, h.raft_term].map((v, i) => (v === undefined ? 0n : uint64Of(v, ['cluster_id', 'member_id', 'revision', 'raft_term'][i])));
  let len = 0;
  for (const v of values) if (v !== 0n) len += 1 + varintBytes(v);
  const out = Buffer.allocUnsafe(1 + numberVarintBytes(len) + len);
  out[0] = (1 << 3) | LEN;
  let p = writeNumberVarint(out, 1, len);
  for (let i = 0; i < values.length; i++) {
    if (values[i] === 0n) continue;
    out[p++] = ((i + 1) << 3) | VARINT;
    p = writeVarint(out, p, values[i]);
  }
  return out;
}

function kvsSegment(fieldNo: number, kvs: KeyValue[]): Segment {
  return { fieldNo, kvs, ...measureKvs(fieldNo, kvs) };
}

/** An inner response's header: its own revision when the store gave one (see ResponseOp), else the txn's. */
function opHeader(revision: number | undefined, txnHeader: Partial<ResponseHeader>): Partial<ResponseHeader> {
  return revision === undefined ? txnHeader : { revision: String(revision) };
}

function responseOp(op: ResponseOp, header: Partial<ResponseHeader>): Encoded {
  switch (op.type) {
    case 'range':
      return wrap(1, concat([headerField(opHeader(op.revision, header)), kvsSegment(2, op.range.kvs), op.range.more ? Buffer.from([(3 << 3) | VARINT, 1]) : Buffer.alloc(0), varintField(4, op.range.count)]));
    case 'put':
      return wrap(2, concat([headerField(opHeader(op.revision, header)), kvsSegment(2, op.put.prevKv ? [op.put.prevKv] : [])]));
    case 'deleteRange':
      return wrap(3, concat([headerField(opHeader(op.revision, header)), varintField(2, op.deleteRange.deleted), kvsSegment(3, op.deleteRange.prevKvs)]));
    case 'txn':
      // etcd leaves a nested txn's own header empty; its ops carry theirs.
      return wrap(4, txnBody(op.txn, {}, header));
  }
}

function txnBody(r: TxnResult, header: Partial<ResponseHeader>, inner: Partial<ResponseHeader>): Encoded {
  return concat([headerField(header), varintField(2, r.succeeded ? 1 : 0), ...r.responses.map((op) => wrap(3, responseOp(op, inner)))]);
}

/**
 * TxnResponse{header=1, succeeded=2, responses=3} as protobuf bytes; the responses inside carry only
 * the revision in their headers, as etcd's do (convert.ts txnResultToWire).
 */
export async function encodeTxnResponse(header: ResponseHeader, r: TxnResult): Promise<Buffer> {
  const body = txnBody(r, header, { revision: header.revision });
  if (body.bytes > MAX_RESPONSE_BYTES) throw new ResponseTooLargeError(body.bytes);
  const out = allocPreframed(body.bytes);
  let p = 0;
  const copier = new SlicedCopier();
  for (const seg of body.segments) {
    if (Buffer.isBuffer(seg)) {
      const q = copier.tryCopy(seg, out, p);
      p = q >= 0 ? q : await copier.copy(seg, out, p);
    }
    else p = await writeKvs(copier, out, p, seg.fieldNo, seg.kvs, seg.bodies, seg.leases);
  }
  if (p !== body.bytes) throw new Error(`txn response encoder wrote ${p} of ${body.bytes} bytes`);
  return out;
}

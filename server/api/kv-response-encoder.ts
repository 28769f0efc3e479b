// RangeResponse and DeleteRangeResponse bytes written by hand, a slice at a time, yielding to the
// event loop between slices. Raft ticks, heartbeats and peer I/O share the one event loop with
// requests (docs/architecture.md, "Bounded work per turn"): protobufjs encoded a Range over
// 300 × 1 MiB values in one synchronous call (and copied every value twice on the way), long enough
// for the followers to elect a new leader. Here the size is computed first (cheap: one pass over the
// key-values), one buffer is allocated (with the gRPC frame header in front, so grpc-js sends it
// without copying it again: preframed-response.ts), and values are copied into it at most
// YIELD_EVERY_BYTES per turn. The key-values themselves were collected synchronously by the store at one revision, and
// their buffers are immutable, so what is encoded is exactly one consistent read.
//
// Fields go in number order with proto3 zeros left out, as etcd's Go encoder writes them; clients
// decode the same message protobufjs's encoding gives (tested). The KV service's serializer passes a
// Buffer through (proto.ts).
import type { KeyValue } from '../mvcc/types.ts';
import type { ResponseHeader } from './wire-types.ts';
import { numberVarintBytes, varintBytes, writeNumberVarint, writeVarint } from '../protobuf/varint.ts';
import { encodePutResponse } from './put-response-encoder.ts';
import { allocPreframed } from './preframed-response.ts';

/** etcd's server sends at most math.MaxInt32 bytes per message (grpc.MaxSendMsgSize); so do we. */
export const MAX_RESPONSE_BYTES = 2 ** 31 - 1;
/** Bytes copied per event-loop turn (a few ms of memcpy on a slow core). */
export const YIELD_EVERY_BYTES = 4 * 1024 * 1024;

/** The response would exceed MAX_RESPONSE_BYTES: grpc-go's ResourceExhausted in etcd. */
export class ResponseTooLargeError extends Error {
  constructor(bytes: number) {
    super(`grpc: trying to send message larger than max (${bytes} vs. ${MAX_RESPONSE_BYTES})`);
    this.name = 'ResponseTooLargeError';
  }
}

const LEN = 2;
const VARINT = 0;

function lenFieldBytes(fieldNo: number, len: number): number {
  return numberVarintBytes(fieldNo << 3) + numberVarintBytes(len) + len;
}

/** int64 as protobuf writes it: negative values as their 64-bit two's complement. */
function int64Of(text: string): bigint {
  return BigInt.asUintN(64, BigInt(text));
}

/** Encoded size of one KeyValue message body (without its field tag and length). */
function kvBodyBytes(kv: KeyValue, lease: bigint): number {
  let n = 0;
  if (kv.key.length > 0) n += lenFieldBytes(1, kv.key.length);
  if (kv.createRevision !== 0) n += 1 + numberVarintBytes(kv.createRevision);
  if (kv.modRevision !== 0) n += 1 + numberVarintBytes(kv.modRevision);
  if (kv.version !== 0) n += 1 + numberVarintBytes(kv.version);
  if (kv.value.length > 0) n += lenFieldBytes(5, kv.value.length);
  if (lease !== 0n) n += 1 + varintBytes(lease);
  return n;
}

const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Writes `kvs` as repeated field `fieldNo`, yielding between slices; returns the position after. */
async function writeKvs(out: Buffer, p: number, fieldNo: number, kvs: KeyValue[], bodies: number[], leases: bigint[]): Promise<number> {
  let sinceYield = 0;
  for (let i = 0; i < kvs.length; i++) {
    const kv = kvs[i];
    p = writeNumberVarint(out, p, (fieldNo << 3) | LEN);
    p = writeNumberVarint(out, p, bodies[i]);
    if (kv.key.length > 0) {
      out[p++] = (1 << 3) | LEN;
      p = writeNumberVarint(out, p, kv.key.length);
      p += kv.key.copy(out, p);
    }
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
    if (kv.value.length > 0) {
      out[p++] = (5 << 3) | LEN;
      p = writeNumberVarint(out, p, kv.value.length);
      p += kv.value.copy(out, p);
    }
    if (leases[i] !== 0n) {
      out[p++] = (6 << 3) | VARINT;
      p = writeVarint(out, p, leases[i]);
    }
    sinceYield += bodies[i];
    if (sinceYield >= YIELD_EVERY_BYTES) {
      sinceYield = 0;
      await yieldTurn();
    }
  }
  return p;
}

function measureKvs(fieldNo: number, kvs: KeyValue[]): { bytes: number; bodies: number[]; leases: bigint[] } {
  const bodies = new Array<number>(kvs.length);
  const leases = new Array<bigint>(kvs.length);
  let bytes = 0;
  for (let i = 0; i < kvs.length; i++) {
    leases[i] = kvs[i].lease === '0' || kvs[i].lease === '' ? 0n : int64Of(kvs[i].lease);
    bodies[i] = kvBodyBytes(kvs[i], leases[i]);
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
  p = await writeKvs(out, p, 2, kvs, measured.bodies, measured.leases);
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
  p = await writeKvs(out, p, 3, prevKvs, measured.bodies, measured.leases);
  if (p !== total) throw new Error(`delete response encoder wrote ${p} of ${total} bytes`);
  return out;
}

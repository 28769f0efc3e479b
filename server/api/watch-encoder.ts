// Encodes watch event responses for the fan-out once per event, not once per watcher. A
// WatchResponse is a header, a watch id and events; protobuf lets fields come in any order, so a
// delivery is the watcher's `watch_id` field followed by the shared, already-encoded header and
// event fields. An event object is encoded the first time any watcher gets it (the hub hands the
// same objects to every watcher of a revision; watchers without prev_kv share one stripped copy),
// and the header once per revision and term.
//
// Bytes are copied as few times as possible: a replay or slow-watcher catch-up encodes every event
// afresh (they come from the store, not from the shared fan-out), and each copy of a 64 KiB value is
// garbage the member carries until the next GC. An event is encoded by hand as parts: small framing
// bytes (tags, lengths, revisions, short keys and values) in one buffer, and a large key or value
// referenced, not copied, when it owns its memory (the store's replay copies do). A value that is a
// view into a larger buffer (a put's value inside its Raft entry or peer frame) is copied, so a
// queued response never pins more than its own bytes. responseParts() hands the parts to the stream
// writer, which gives them to HTTP/2 without concatenating them when they are large.
import protobuf from 'protobufjs';
import type { KeyValue, MvccEvent } from '../mvcc/types.ts';
import { internalProtoRoot } from '../shard/request-codec.ts';
import type { ResponseHeader } from '../etcd/wire-types.ts';
import { numberVarintBytes, varintBytes, writeNumberVarint, writeVarint } from '../protobuf/varint.ts';

const HEADER_FIELD = 1;
const WATCH_ID_FIELD = 2;
const EVENTS_FIELD = 11;

let headerType: protobuf.Type | undefined;
function loadHeaderType(): protobuf.Type {
  // internalProtoRoot is already loaded for Raft entries; it imports rpc.proto.
  headerType ??= internalProtoRoot().lookupType('etcdserverpb.ResponseHeader');
  return headerType;
}

/** `message` as a length-delimited field `field` (tag, length, bytes). */
function asField(field: number, message: Uint8Array): Buffer {
  const w = protobuf.Writer.create();
  w.uint32((field << 3) | 2).bytes(message);
  return Buffer.from(w.finish());
}

export class WatchEncoder {
  private readonly events = new WeakMap<MvccEvent, Buffer[]>();
  private headerRevision = '';
  private headerTerm = '';
  private headerBytes: Buffer = Buffer.alloc(0);

  /**
   * The same bytes as response(), as parts to be written one after the other: the first holds the
   * reserved bytes, the watch id and the header; each further part is one event's field (shared with
   * every other watcher of that event: read-only).
   */
  responseParts(watchId: number, header: ResponseHeader, events: MvccEvent[], reserveBytes: number): Buffer[] {
    if (!Number.isSafeInteger(watchId) || watchId < 0) throw new Error(`watch id ${watchId} is not a non-negative integer`);
    const headerBytes = this.header(header);
    let length = reserveBytes + headerBytes.length;
    if (watchId !== 0) length += 1 + numberVarintBytes(watchId);
    const head = Buffer.allocUnsafe(length);
    let offset = reserveBytes;
    if (watchId !== 0) {
      head[offset++] = WATCH_ID_FIELD << 3;
      offset = writeNumberVarint(head, offset, watchId);
    }
    headerBytes.copy(head, offset);
    const parts: Buffer[] = [head];
    for (const e of events) for (const p of this.event(e)) parts.push(p);
    return parts;
  }

  /**
   * A complete, encoded WatchResponse carrying `events` for watch `watchId`, after `reserveBytes`
   * bytes left for the caller (a gRPC frame prefix: stream-writer.ts).
   */
  response(watchId: number, header: ResponseHeader, events: MvccEvent[], reserveBytes: number): Buffer {
    const parts = this.responseParts(watchId, header, events, reserveBytes);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  private header(h: ResponseHeader): Buffer {
    if (h.revision !== this.headerRevision || h.raft_term !== this.headerTerm) {
      const t = loadHeaderType();
      this.headerBytes = asField(HEADER_FIELD, t.encode(t.fromObject(h)).finish());
      this.headerRevision = h.revision;
      this.headerTerm = h.raft_term;
    }
    return this.headerBytes;
  }

  private event(e: MvccEvent): Buffer[] {
    let parts = this.events.get(e);
    if (parts === undefined) {
      parts = encodeEventField(e);
      this.events.set(e, parts);
    }
    return parts;
  }

}

/** Bytes or values up to this size are copied into the framing buffer; larger ones may be referenced. */
const INLINE_MAX_BYTES = 1024;
const KV_KEY = 1;
const KV_CREATE_REVISION = 2;
const KV_MOD_REVISION = 3;
const KV_VERSION = 4;
const KV_VALUE = 5;
const KV_LEASE = 6;
const EVENT_TYPE = 1;
const EVENT_KV = 2;
const EVENT_PREV_KV = 3;
const DELETE_TYPE = 1;

/** Whether `b` is referenced rather than copied: large, and owning its whole ArrayBuffer. */
function referenced(b: Buffer): boolean {
  return b.length > INLINE_MAX_BYTES && b.byteOffset === 0 && b.buffer.byteLength === b.length;
}

const bytesFieldLength = (b: Buffer): number => (b.length === 0 ? 0 : 1 + numberVarintBytes(b.length) + b.length);
const numberFieldLength = (n: number): number => (n === 0 ? 0 : 1 + numberVarintBytes(n));

function kvLength(kv: KeyValue, lease: bigint): number {
  return (
    bytesFieldLength(kv.key) +
    numberFieldLength(kv.createRevision) +
    numberFieldLength(kv.modRevision) +
    numberFieldLength(kv.version) +
    (lease === 0n ? 0 : 1 + varintBytes(lease)) +
    bytesFieldLength(kv.value)
  );
}

/** Writes framing into one buffer and cuts it around the referenced keys and values. */
class PartsBuilder {
  readonly parts: Buffer[] = [];
  private readonly buf: Buffer;
  private pos = 0;
  private start = 0;
  constructor(inlineBytes: number) {
    this.buf = Buffer.allocUnsafe(inlineBytes);
  }
  byte(v: number): void {
    this.buf[this.pos++] = v;
  }
  varint(v: number): void {
    this.pos = writeNumberVarint(this.buf, this.pos, v);
  }
  bigVarint(v: bigint): void {
    this.pos = writeVarint(this.buf, this.pos, v);
  }
  numberField(field: number, v: number): void {
    if (v === 0) return;
    this.byte(field << 3);
    this.varint(v);
  }
  bytesField(field: number, b: Buffer): void {
    if (b.length === 0) return;
    this.byte((field << 3) | 2);
    this.varint(b.length);
    if (!referenced(b)) {
      this.pos += b.copy(this.buf, this.pos);
      return;
    }
    if (this.pos > this.start) this.parts.push(this.buf.subarray(this.start, this.pos));
    this.parts.push(b);
    this.start = this.pos;
  }
  finish(): Buffer[] {
    if (this.pos > this.start) this.parts.push(this.buf.subarray(this.start, this.pos));
    return this.parts;
  }
}

/** Framing bytes of a KeyValue when its referenced key and value are left out. */
function kvInlineBytes(kv: KeyValue, length: number): number {
  return length - (referenced(kv.key) ? kv.key.length : 0) - (referenced(kv.value) ? kv.value.length : 0);
}

function writeKv(w: PartsBuilder, kv: KeyValue, lease: bigint): void {
  w.bytesField(KV_KEY, kv.key);
  w.numberField(KV_CREATE_REVISION, kv.createRevision);
  w.numberField(KV_MOD_REVISION, kv.modRevision);
  w.numberField(KV_VERSION, kv.version);
  if (lease !== 0n) {
    w.byte(KV_LEASE << 3);
    w.bigVarint(lease);
  }
  // Protobuf readers take fields in any order: the value goes last so a referenced one ends a part.
  w.bytesField(KV_VALUE, kv.value);
}

const leaseOf = (kv: KeyValue): bigint => (kv.lease === '0' || kv.lease === '' ? 0n : BigInt.asUintN(64, BigInt(kv.lease)));

/**
 * One event as a WatchResponse `events` field (mvccpb.Event: type, kv, prev_kv), in parts. Lease ids
 * are int64 on the wire; a negative one (never granted by Synod) is written as its two's complement.
 */
function encodeEventField(e: MvccEvent): Buffer[] {
  const lease = leaseOf(e.kv);
  const kvLen = kvLength(e.kv, lease);
  const prev = e.prevKv;
  const prevLease = prev === null ? 0n : leaseOf(prev);
  const prevLen = prev === null ? 0 : kvLength(prev, prevLease);
  const bodyLen =
    (e.type === 'DELETE' ? 2 : 0) +
    1 + numberVarintBytes(kvLen) + kvLen +
    (prev === null ? 0 : 1 + numberVarintBytes(prevLen) + prevLen);
  const total = 1 + numberVarintBytes(bodyLen) + bodyLen;
  const inline = total - (kvLen - kvInlineBytes(e.kv, kvLen)) - (prev === null ? 0 : prevLen - kvInlineBytes(prev, prevLen));
  const w = new PartsBuilder(inline);
  w.byte((EVENTS_FIELD << 3) | 2);
  w.varint(bodyLen);
  if (e.type === 'DELETE') {
    w.byte(EVENT_TYPE << 3);
    w.byte(DELETE_TYPE);
  }
  w.byte((EVENT_KV << 3) | 2);
  w.varint(kvLen);
  writeKv(w, e.kv, lease);
  if (prev !== null) {
    w.byte((EVENT_PREV_KV << 3) | 2);
    w.varint(prevLen);
    writeKv(w, prev, prevLease);
  }
  return w.finish();
}

// Encodes watch event responses for the fan-out once per event, not once per watcher. A
// WatchResponse is a header, a watch id and events; protobuf lets fields come in any order, so a
// delivery is the watcher's `watch_id` field followed by the shared, already-encoded header and
// event fields. An event object is encoded the first time any watcher gets it (the hub hands the
// same objects to every watcher of a revision; watchers without prev_kv share one stripped copy),
// and the header once per revision and term.
//
// Bytes are copied as few times as possible: a replay or slow-watcher catch-up encodes every event
// afresh (they come from the store, not from the shared fan-out), and each copy of a 64 KiB value is
// garbage the member carries until the next GC. An event is encoded straight into its field (one
// copy of its value), and responseParts() hands the parts to the stream writer, which copies them
// once more into the HTTP/2 write.
import protobuf from 'protobufjs';
import type { MvccEvent } from '../mvcc/types.ts';
import { eventToWire } from './convert.ts';
import { internalProtoRoot } from './request-codec.ts';
import type { ResponseHeader } from './wire-types.ts';
import { numberVarintBytes, writeNumberVarint } from '../protobuf/varint.ts';

const HEADER_FIELD = 1;
const WATCH_ID_FIELD = 2;
const EVENTS_FIELD = 11;

interface Types {
  header: protobuf.Type;
  event: protobuf.Type;
}

let types: Types | undefined;
function loadTypes(): Types {
  if (types) return types;
  const root = internalProtoRoot(); // already loaded for Raft entries; it imports rpc.proto
  types = { header: root.lookupType('etcdserverpb.ResponseHeader'), event: root.lookupType('mvccpb.Event') };
  return types;
}

/** `message` as a length-delimited field `field` (tag, length, bytes). */
function asField(field: number, message: Uint8Array): Buffer {
  const w = protobuf.Writer.create();
  w.uint32((field << 3) | 2).bytes(message);
  return Buffer.from(w.finish());
}

export class WatchEncoder {
  private readonly events = new WeakMap<MvccEvent, Buffer>();
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
    for (const e of events) parts.push(this.event(e));
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
      const t = loadTypes().header;
      this.headerBytes = asField(HEADER_FIELD, t.encode(t.fromObject(h)).finish());
      this.headerRevision = h.revision;
      this.headerTerm = h.raft_term;
    }
    return this.headerBytes;
  }

  private event(e: MvccEvent): Buffer {
    let bytes = this.events.get(e);
    if (bytes === undefined) {
      const t = loadTypes().event;
      // The hub has already dropped prev_kv for watchers that did not ask for it. fork/ldelim writes
      // the field's tag and length around the message in one buffer: the value is copied once.
      const w = protobuf.Writer.create();
      w.uint32((EVENTS_FIELD << 3) | 2).fork();
      t.encode(t.fromObject(eventToWire(e, true) as Record<string, unknown>), w);
      const out = w.ldelim().finish();
      bytes = Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
      this.events.set(e, bytes);
    }
    return bytes;
  }
}

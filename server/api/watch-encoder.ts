// Encodes watch event responses for the fan-out once per event, not once per watcher. A
// WatchResponse is a header, a watch id and events; protobuf lets fields come in any order, so a
// delivery is the watcher's `watch_id` field followed by the shared, already-encoded header and
// event fields. An event object is encoded the first time any watcher gets it (the hub hands the
// same objects to every watcher of a revision; watchers without prev_kv share one stripped copy),
// and the header once per revision and term.
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
   * A complete, encoded WatchResponse carrying `events` for watch `watchId`, after `reserveBytes`
   * bytes left for the caller (a gRPC frame prefix: stream-writer.ts).
   */
  response(watchId: number, header: ResponseHeader, events: MvccEvent[], reserveBytes: number): Buffer {
    if (!Number.isSafeInteger(watchId) || watchId < 0) throw new Error(`watch id ${watchId} is not a non-negative integer`);
    const headerBytes = this.header(header);
    const eventBytes = events.map((e) => this.event(e));
    let length = reserveBytes + headerBytes.length;
    // proto3 leaves a zero watch_id out, as protobufjs does.
    if (watchId !== 0) length += 1 + numberVarintBytes(watchId);
    for (const b of eventBytes) length += b.length;
    const out = Buffer.allocUnsafe(length);
    let offset = reserveBytes;
    if (watchId !== 0) {
      out[offset++] = WATCH_ID_FIELD << 3;
      offset = writeNumberVarint(out, offset, watchId);
    }
    offset += headerBytes.copy(out, offset);
    for (const b of eventBytes) offset += b.copy(out, offset);
    return out;
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
      // The hub has already dropped prev_kv for watchers that did not ask for it.
      bytes = asField(EVENTS_FIELD, t.encode(t.fromObject(eventToWire(e, true) as Record<string, unknown>)).finish());
      this.events.set(e, bytes);
    }
    return bytes;
  }
}

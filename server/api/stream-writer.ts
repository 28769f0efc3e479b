// Coalesced writes for a server-streaming gRPC call: every message a stream is given during one
// event-loop turn leaves in a single HTTP/2 write when the turn's synchronous work is done.
//
// Why: grpc-js writes a stream's messages one at a time, each waiting for the previous write's
// completion callback, so a stream with 100 watches that all match one event sends 100 responses
// in 100 successive socket flushes. The watch fan-out's delivery latency was that queue. Here the
// messages are framed as gRPC does (a zero compression flag and a 4-byte big-endian length) and
// written together to the call's HTTP/2 stream, after grpc-js has sent the response headers.
//
// That needs the HTTP/2 stream under grpc-js's call object, which is not public API. It is looked
// up defensively; when it is not where grpc-js 1.x keeps it, messages go through call.write one by
// one, as before (same bytes, only slower).
import * as grpc from '@grpc/grpc-js';
import type { ServerHttp2Stream as Http2Stream } from 'node:http2';

/** Bytes grpc-js puts before each message: compression flag and length. */
export const GRPC_FRAME_PREFIX_BYTES = 5;

/** Writes the gRPC message prefix into the first 5 bytes of `frame` (the message follows it). */
export function writeFramePrefix(frame: Buffer): Buffer {
  frame[0] = 0;
  frame.writeUInt32BE(frame.length - GRPC_FRAME_PREFIX_BYTES, 1);
  return frame;
}

/** `value` serialized into a new frame (prefix room, then the message), ready for write(). */
export function frameOf(serialize: (value: object) => Buffer, value: object): Buffer {
  const body = serialize(value);
  const frame = Buffer.allocUnsafe(GRPC_FRAME_PREFIX_BYTES + body.length);
  body.copy(frame, GRPC_FRAME_PREFIX_BYTES);
  return frame;
}

/** The HTTP/2 stream under a grpc-js server call without interceptors, or null if it is not there. */
function http2StreamOf(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>): Http2Stream | null {
  const inner = (call as unknown as { call?: { stream?: unknown; sendMetadata?: unknown } }).call;
  const stream = inner?.stream as Partial<Http2Stream> | undefined;
  if (stream === undefined || typeof stream.write !== 'function' || typeof stream.respond !== 'function' || typeof inner?.sendMetadata !== 'function') {
    return null;
  }
  return stream as Http2Stream;
}

export class CoalescingStreamWriter {
  private readonly call: grpc.ServerDuplexStream<unknown, unknown>;
  private readonly stream: Http2Stream | null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushQueued = false;
  private headersSent = false;
  private closed = false;

  constructor(call: grpc.ServerDuplexStream<unknown, unknown>) {
    this.call = call;
    this.stream = http2StreamOf(call);
  }

  /** Whether messages go out coalesced (false: grpc-js internals not found, one write per message). */
  get coalescing(): boolean {
    return this.stream !== null;
  }

  /**
   * Queues one message. `frame` holds GRPC_FRAME_PREFIX_BYTES of room, then the encoded message
   * (the prefix is filled in here).
   */
  write(frame: Buffer): void {
    if (this.closed) return;
    if (this.stream === null) {
      this.call.write(frame.subarray(GRPC_FRAME_PREFIX_BYTES));
      return;
    }
    this.pending.push(writeFramePrefix(frame));
    this.pendingBytes += frame.length;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Sends what is queued now (also called before the call ends, so nothing queued is lost). */
  flush(): void {
    this.flushQueued = false;
    const stream = this.stream;
    if (stream === null || this.pending.length === 0) return;
    const chunk = this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.closed || stream.destroyed || stream.closed) return;
    if (!this.headersSent) {
      // grpc-js sends the response headers with its first message; messages written beneath it
      // need them sent first (a no-op if grpc-js already did, and synchronous: HEADERS go first).
      this.call.sendMetadata(new grpc.Metadata());
      this.headersSent = true;
      if (stream.destroyed || stream.closed) return;
    }
    // Errors (a reset stream) surface through grpc-js's own stream listeners; nothing to add here.
    stream.write(chunk, () => {});
  }

  /** Flushes and stops writing (the call is ending or gone). */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.pending = [];
  }
}

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
//
// It also counts what it holds: bytes given to write() whose HTTP/2 (or grpc-js) write has not
// completed. Node completes a stream write only when the DATA frames have gone out, which a client
// that stops reading prevents (its flow-control window closes), so `queuedBytes` is exactly the
// memory a slow reader pins on this member. `overBudget` tells the caller to stop producing (the
// watch service then parks the stream's watchers: "Slow watchers" in docs/architecture.md), and
// `onDrained` says when the queue is back under half the budget.
import * as grpc from '@grpc/grpc-js';
import type { ServerHttp2Stream as Http2Stream } from 'node:http2';

/** Parts at least this large are handed to HTTP/2 as they are instead of being copied together. */
const UNCOPIED_PART_BYTES = 16 * 1024;

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
  private readonly budgetBytes: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes handed to the HTTP/2 stream (or call.write) whose write has not completed. */
  private inFlightBytes = 0;
  /** Set once queuedBytes reached the budget; cleared (and onDrained called) at half of it. */
  private saturated = false;
  private flushQueued = false;
  private headersSent = false;
  private closed = false;
  /** Called (once per saturation) when the queue falls back to half the budget. */
  onDrained: (() => void) | null = null;

  /** `budgetBytes`: how much may be queued before `overBudget` turns true (Infinity: never). */
  constructor(call: grpc.ServerDuplexStream<unknown, unknown>, budgetBytes = Infinity) {
    this.call = call;
    this.stream = http2StreamOf(call);
    this.budgetBytes = budgetBytes;
  }

  /** Bytes written and not yet sent: coalesced in this turn, or held by HTTP/2 flow control. */
  get queuedBytes(): number {
    return this.pendingBytes + this.inFlightBytes;
  }

  /** True once the queue reached the budget, until it drains to half of it. */
  get overBudget(): boolean {
    if (!this.saturated && this.queuedBytes >= this.budgetBytes) this.saturated = true;
    return this.saturated;
  }

  private written(bytes: number): void {
    this.inFlightBytes -= bytes;
    if (this.saturated && this.queuedBytes <= this.budgetBytes / 2) {
      this.saturated = false;
      if (!this.closed) this.onDrained?.();
    }
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
      const n = frame.length;
      this.inFlightBytes += n;
      this.call.write(frame.subarray(GRPC_FRAME_PREFIX_BYTES), () => this.written(n));
      return;
    }
    this.pending.push(writeFramePrefix(frame));
    this.pendingBytes += frame.length;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  /**
   * Queues one message given as parts (written back to back): the first part starts with
   * GRPC_FRAME_PREFIX_BYTES of room for the prefix. The parts are copied once, into the HTTP/2 write.
   */
  writeParts(parts: Buffer[]): void {
    if (this.closed) return;
    if (parts.length === 1) {
      this.write(parts[0]);
      return;
    }
    let length = 0;
    for (const p of parts) length += p.length;
    if (this.stream === null) {
      this.write(Buffer.concat(parts, length));
      return;
    }
    const head = parts[0];
    head[0] = 0;
    head.writeUInt32BE(length - GRPC_FRAME_PREFIX_BYTES, 1);
    for (const p of parts) this.pending.push(p);
    this.pendingBytes += length;
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
    const parts = this.pending;
    const bytes = this.pendingBytes;
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
    // Callbacks run once the bytes left (or the stream was destroyed): only then are they freed.
    if (parts.length === 1 || !parts.some((p) => p.length >= UNCOPIED_PART_BYTES)) {
      const chunk = parts.length === 1 ? parts[0] : Buffer.concat(parts, bytes);
      this.inFlightBytes += bytes;
      stream.write(chunk, () => this.written(bytes));
      return;
    }
    // Large parts (event values) go as they are, runs of small ones joined; corked, they still reach
    // HTTP/2 together (one writev), without a copy of every value into one buffer first.
    stream.cork();
    let run: Buffer[] = [];
    let runBytes = 0;
    const send = (chunk: Buffer): void => {
      const n = chunk.length;
      this.inFlightBytes += n;
      stream.write(chunk, () => this.written(n));
    };
    const sendRun = (): void => {
      if (run.length === 0) return;
      send(run.length === 1 ? run[0] : Buffer.concat(run, runBytes));
      run = [];
      runBytes = 0;
    };
    for (const p of parts) {
      if (p.length >= UNCOPIED_PART_BYTES) {
        sendRun();
        send(p);
      } else {
        run.push(p);
        runBytes += p.length;
      }
    }
    sendRun();
    stream.uncork();
  }

  /** Flushes and stops writing (the call is ending or gone). */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.onDrained = null;
  }
}

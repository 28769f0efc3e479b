// Large unary responses without grpc-js's synchronous copy. grpc-js frames every response message by
// allocating a new buffer of its length + 5 and copying the message into it, in one synchronous call
// (BaseServerInterceptingCall.serializeMessage): for a 300 MiB Range response that copy alone held the
// event loop — and with it Raft's ticks, heartbeats and peer I/O — for hundreds of ms. A message
// encoded into a buffer from allocPreframed already has the frame header (uncompressed flag, length)
// written in the 5 bytes in front of it, so the frame is a view of the same memory and no copy is made.
//
// serializeMessage is not public API of grpc-js (1.14): the patch is installed defensively, any other
// value takes grpc-js's own path, and if the method is not found the responses are still correct,
// only copied (kv-response-encoder.test.ts fails then, so an upgrade that moves it is noticed).
import { createRequire } from 'node:module';

const FRAME_HEADER_BYTES = 5;
const preframed = new WeakSet<Buffer>();
/** Responses framed without a copy (for tests: proves the fast path is taken). */
export const preframedStats = { served: 0 };

/** A buffer for a message of `bytes` bytes, with gRPC's frame header already written in front of it. */
export function allocPreframed(bytes: number): Buffer {
  const whole = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bytes);
  whole[0] = 0; // not compressed
  whole.writeUInt32BE(bytes, 1);
  const body = whole.subarray(FRAME_HEADER_BYTES);
  preframed.add(body);
  return body;
}

interface SerializingCall {
  serializeMessage(value: unknown): Buffer;
}

let installed: boolean | null = null;

/** Teaches grpc-js's server calls to send a preframed buffer as is; true if the hook is in place. */
export function installPreframedResponses(): boolean {
  if (installed !== null) return installed;
  installed = false;
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@grpc/grpc-js/build/src/server-interceptors.js') as { BaseServerInterceptingCall?: { prototype: SerializingCall } };
    const proto = mod.BaseServerInterceptingCall?.prototype;
    if (!proto || typeof proto.serializeMessage !== 'function') return false;
    const original = proto.serializeMessage;
    proto.serializeMessage = function serializeMessage(this: SerializingCall, value: unknown): Buffer {
      if (Buffer.isBuffer(value) && preframed.has(value)) {
        preframedStats.served++;
        return Buffer.from(value.buffer, value.byteOffset - FRAME_HEADER_BYTES, value.length + FRAME_HEADER_BYTES);
      }
      return original.call(this, value);
    };
    installed = true;
  } catch {
    installed = false;
  }
  return installed;
}

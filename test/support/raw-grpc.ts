// Raw gRPC over HTTP/2 for protocol tests: sends exactly the bytes given (any message body, any
// compressed flag, any headers) and reads back the status, with no client library in between that
// would refuse or fix up a malformed request. Used to compare Synod's answers with a real etcd's.
import http2 from 'node:http2';

export interface RawCallOptions {
  /** The 5-byte gRPC frame prefix's compressed flag (byte 0). */
  compressedFlag?: boolean;
  /** Extra request headers (e.g. grpc-encoding). */
  headers?: Record<string, string>;
  /** The whole call fails with code -1 after this long (a hang). */
  deadlineMs?: number;
  /** Send several frames (a stream's messages) instead of one; `body` is then ignored. */
  frames?: Uint8Array[];
  /** Leave the request stream open after the frames (bidi calls answered before the client's end). */
  keepOpen?: boolean;
}

export interface RawCallResult {
  /** grpc-status, or -1 when none came (hang, reset, connection loss). */
  code: number;
  message: string;
  /** The response messages' bodies (frame prefixes removed). */
  messages: Buffer[];
}

/** One HTTP/2 session to a gRPC server; many calls may share it. */
export class RawGrpc {
  private readonly session: http2.ClientHttp2Session;

  /** Why the server ended the session, if it did (GOAWAY error code), for failure messages. */
  goaway: number | null = null;

  constructor(address: string) {
    this.session = http2.connect(`http://${address}`);
    this.session.on('error', () => undefined);
    this.session.on('goaway', (code: number) => {
      this.goaway = code;
    });
  }

  /** Frames a message as gRPC does: flag byte, 4-byte big-endian length, body. */
  static frame(body: Uint8Array, compressed = false): Buffer {
    const out = Buffer.alloc(5 + body.length);
    out[0] = compressed ? 1 : 0;
    out.writeUInt32BE(body.length, 1);
    Buffer.from(body.buffer, body.byteOffset, body.byteLength).copy(out, 5);
    return out;
  }

  call(path: string, body: Uint8Array, opts: RawCallOptions = {}): Promise<RawCallResult> {
    return new Promise((resolve) => {
      let settled = false;
      const chunks: Buffer[] = [];
      let headers: http2.IncomingHttpHeaders = {};
      let stream: http2.ClientHttp2Stream;
      const finish = (code: number, message: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // A call that ended with a status is half-closed from our side too (no RST_STREAM: a burst of
        // resets reads as a rapid-reset attack and costs the whole session); only a hang is cancelled.
        if (!stream.closed) {
          if (code === -1) stream.close(http2.constants.NGHTTP2_CANCEL);
          else if (!stream.writableEnded) stream.end();
        }
        resolve({ code, message, messages: parseFrames(Buffer.concat(chunks)) });
      };
      const timer = setTimeout(() => finish(-1, 'deadline'), opts.deadlineMs ?? 5_000);
      try {
        stream = this.session.request({
          ':method': 'POST',
          ':path': path,
          'content-type': 'application/grpc',
          te: 'trailers',
          ...opts.headers,
        });
      } catch (err) {
        settled = true;
        clearTimeout(timer);
        resolve({ code: -1, message: String(err), messages: [] });
        return;
      }
      const fromHeaders = (h: http2.IncomingHttpHeaders): void => {
        const status = h['grpc-status'];
        if (status === undefined) return;
        const raw = String(h['grpc-message'] ?? '');
        let message = raw;
        try {
          message = decodeURIComponent(raw);
        } catch {
          // keep it percent-encoded
        }
        finish(Number(status), message);
      };
      stream.on('response', (h) => {
        headers = h;
        // A trailers-only response carries the status in the headers.
        if (h['grpc-status'] !== undefined) fromHeaders(h);
      });
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('trailers', fromHeaders);
      stream.on('error', (err) => finish(-1, `stream error: ${err.message}`));
      stream.on('close', () => {
        if (headers['grpc-status'] !== undefined) fromHeaders(headers);
        finish(-1, `closed without status (rst ${stream.rstCode})`);
      });
      const frames = opts.frames ?? [body];
      for (const f of frames) stream.write(RawGrpc.frame(f, opts.compressedFlag ?? false));
      if (!opts.keepOpen) stream.end();
    });
  }

  close(): void {
    this.session.close();
  }
}

function parseFrames(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  while (p + 5 <= buf.length) {
    const len = buf.readUInt32BE(p + 1);
    if (p + 5 + len > buf.length) break;
    out.push(buf.subarray(p + 5, p + 5 + len));
    p += 5 + len;
  }
  return out;
}

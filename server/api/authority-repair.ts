// Client connections on their way to grpc-js, and the one request header Node cannot take as etcd does.
//
// Node's HTTP/2 layer (nghttp2) answers a request whose :authority is not a bare host[:port] with
// RST_STREAM(PROTOCOL_ERROR) before grpc-js sees it; etcd's Go server takes any value. etcdctl 3.4 (the
// one Debian ships) sends the whole endpoint URL, "http://127.0.0.1:2379", from its one-endpoint clients:
// `endpoint status|health|hashkv --cluster`, `defrag --cluster`, and those commands with any http://
// endpoint. So each connection's first request is looked at before grpc-js takes the connection:
//
//  - The server's first SETTINGS frame is what a client waits for before its first request, and it
//    would come from nghttp2 only once the connection is handed over; so this module sends an empty
//    SETTINGS (the protocol's defaults, which nghttp2 assumes too until its own SETTINGS are
//    acknowledged) and takes the client's acknowledgement of it out of the bytes it hands over.
//    nghttp2's own SETTINGS follow as a second frame, which HTTP/2 allows.
//  - A connection whose first request names a valid authority (every other client) is handed over as
//    it is, with the bytes read so far put back: nghttp2 reads the socket natively from then on, and
//    this module costs it nothing more.
//  - One that names an invalid authority goes through AuthorityRepairingStream for its life: each
//    header block from the client is decoded (hpack.js keeps the client's dynamic table) and sent on
//    with every byte of :authority outside RFC 3986's authority characters replaced by "_", as literal
//    fields without indexing (valid whatever the server's table holds). Everything else passes as is.
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import type hpackModule from 'hpack.js';

/** The client connection preface (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
const TYPE_HEADERS = 0x1;
const TYPE_SETTINGS = 0x4;
const TYPE_CONTINUATION = 0x9;
const FLAG_ACK = 0x1;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** An empty SETTINGS frame: the server's preface, every setting at the protocol's default. */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, TYPE_SETTINGS, 0, 0, 0, 0, 0]);
/** SETTINGS_MAX_FRAME_SIZE's default: the largest frame a server accepts before its SETTINGS say more. */
const MAX_FRAME_PAYLOAD_BYTES = 16_384;
/** SETTINGS_HEADER_TABLE_SIZE's default, the most a client's encoder may use unless the server says more. */
const HEADER_TABLE_BYTES = 4_096;
/**
 * Bytes a client may send before its first request is complete: past it the connection is handed over as it
 * is, or closed if the client has not acknowledged the SETTINGS it was sent.
 */
const MAX_PEEK_BYTES = 256 * 1024;
/** How long after the preface a client may take to send its first request; then it is handed over as it is. */
const FIRST_REQUEST_WAIT_MS = 1_000;
/** How long a client may take to acknowledge the SETTINGS it was sent; then the connection is closed. */
const ACK_WAIT_MS = 10_000;

/** Characters nghttp2 accepts in :authority (RFC 3986's reg-name, userinfo, port, IP literal and '%'). */
const AUTHORITY_BYTE = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/;

export function isValidAuthority(value: string): boolean {
  return AUTHORITY_BYTE.test(value);
}

/** `value` with every character outside the authority set as "_": the same length, so the same table size. */
export function repairedAuthority(value: string): string {
  let out = '';
  for (const ch of value) out += AUTHORITY_BYTE.test(ch) ? ch : '_';
  return out;
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** The whole frame's bytes, header included. */
  bytes: Buffer;
}

/** The frame at `offset` of `buf`, or null when it is not all there yet. */
export function frameAt(buf: Buffer, offset: number): Frame | null {
  if (buf.length - offset < FRAME_HEADER_BYTES) return null;
  const length = buf.readUIntBE(offset, 3);
  const end = offset + FRAME_HEADER_BYTES + length;
  if (buf.length < end) return null;
  return {
    type: buf[offset + 3],
    flags: buf[offset + 4],
    streamId: buf.readUInt32BE(offset + 5) & 0x7fff_ffff,
    payload: buf.subarray(offset + FRAME_HEADER_BYTES, end),
    bytes: buf.subarray(offset, end),
  };
}

/** A HEADERS frame's header block fragment: its payload without padding and priority fields. */
function headersFragment(frame: Frame): Buffer {
  let start = 0;
  let end = frame.payload.length;
  if (frame.flags & FLAG_PADDED) {
    start = 1;
    end -= frame.payload[0];
  }
  if (frame.flags & FLAG_PRIORITY) start += 5;
  if (start > end) throw new Error('HEADERS frame shorter than its padding and priority fields');
  return frame.payload.subarray(start, end);
}

function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return h;
}

/** An HPACK integer with an `prefixBits`-bit prefix whose high bits are `first` (RFC 7541 §5.1). */
function hpackInteger(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

function hpackString(latin1: string): Buffer {
  const bytes = Buffer.from(latin1, 'latin1');
  return Buffer.concat([Buffer.from(hpackInteger(bytes.length, 7, 0)), bytes]);
}

/** Header fields as literals without indexing and with literal names: touches no dynamic table. */
export function encodeLiteralBlock(fields: ReadonlyArray<{ name: string; value: string }>): Buffer {
  const parts: Buffer[] = [];
  for (const f of fields) parts.push(Buffer.from([0x00]), hpackString(f.name), hpackString(f.value));
  return Buffer.concat(parts);
}

/** HEADERS (then CONTINUATION) frames carrying `block` on `streamId`, none past the default frame size. */
export function headersFrames(block: Buffer, streamId: number, endStream: boolean): Buffer {
  const out: Buffer[] = [];
  for (let offset = 0, first = true; first || offset < block.length; first = false) {
    const chunk = block.subarray(offset, offset + MAX_FRAME_PAYLOAD_BYTES);
    offset += chunk.length;
    const last = offset >= block.length;
    const type = first ? TYPE_HEADERS : TYPE_CONTINUATION;
    const flags = (first && endStream ? FLAG_END_STREAM : 0) | (last ? FLAG_END_HEADERS : 0);
    out.push(frameHeader(chunk.length, type, flags, streamId), chunk);
  }
  return Buffer.concat(out);
}

// hpack.js and its stream modules (~20 files, ~20 ms) load on the first connection that needs a
// repair, not at every member's start: most clients send a well-formed :authority.
const requireHere = createRequire(import.meta.url);
let hpack: typeof hpackModule | undefined;

/**
 * The client's header blocks, decoded in order against one dynamic table (the client's encoder's),
 * each re-encoded with :authority repaired.
 */
export class HeaderBlockRepairer {
  private readonly decompressor = (hpack ??= requireHere('hpack.js') as typeof hpackModule).decompressor.create({ table: { maxSize: HEADER_TABLE_BYTES } });

  /** The fields of `block`; throws on a malformed block (the connection is then broken anyway). */
  decode(block: Buffer): Array<{ name: string; value: string }> {
    this.decompressor.write(block);
    this.decompressor.execute();
    const fields: Array<{ name: string; value: string }> = [];
    for (let f = this.decompressor.read(); f !== null; f = this.decompressor.read()) fields.push({ name: f.name, value: f.value });
    return fields;
  }

  repair(block: Buffer): Buffer {
    const fields = this.decode(block).map((f) => (f.name === ':authority' ? { name: f.name, value: repairedAuthority(f.value) } : f));
    return encodeLiteralBlock(fields);
  }
}

/** The :authority of a request's header block decoded on its own (a connection's first), or null. */
export function firstAuthority(block: Buffer): string | null {
  const field = new HeaderBlockRepairer().decode(block).find((f) => f.name === ':authority');
  return field?.value ?? null;
}

/**
 * The client side of a connection whose requests name an invalid :authority, as grpc-js sees it: the
 * bytes from the client with each header block repaired, and grpc-js's bytes to the client as they are.
 */
export class AuthorityRepairingStream extends Duplex {
  private pending: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;
  private readonly repairer = new HeaderBlockRepairer();
  /** A header block being gathered (HEADERS then CONTINUATION frames until END_HEADERS). */
  private block: { streamId: number; endStream: boolean; fragments: Buffer[] } | null = null;

  private readonly socket: Duplex;

  constructor(socket: Duplex, firstBytes: Buffer) {
    super();
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.fromClient(chunk));
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    if (firstBytes.length > 0) this.fromClient(firstBytes);
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.socket.write(chunk, done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.socket.end(done);
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.socket.destroy(err ?? undefined);
    done(err);
  }

  private fromClient(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    let offset = 0;
    if (!this.prefaceSeen) {
      if (this.pending.length < PREFACE.length) return;
      out.push(this.pending.subarray(0, PREFACE.length));
      offset = PREFACE.length;
      this.prefaceSeen = true;
    }
    try {
      for (let frame = frameAt(this.pending, offset); frame !== null; frame = frameAt(this.pending, offset)) {
        offset += frame.bytes.length;
        const repaired = this.frameFromClient(frame);
        if (repaired !== null) out.push(repaired);
      }
    } catch (err) {
      this.destroy(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.pending = this.pending.subarray(offset);
    if (out.length > 0 && !this.push(Buffer.concat(out))) this.socket.pause();
  }

  /** What to pass on for one client frame: as is, repaired, or nothing yet (a block still gathering). */
  private frameFromClient(frame: Frame): Buffer | null {
    if (frame.type === TYPE_HEADERS) {
      this.block = { streamId: frame.streamId, endStream: (frame.flags & FLAG_END_STREAM) !== 0, fragments: [headersFragment(frame)] };
    } else if (frame.type === TYPE_CONTINUATION && this.block !== null && frame.streamId === this.block.streamId) {
      this.block.fragments.push(frame.payload);
    } else {
      return frame.bytes;
    }
    if ((frame.flags & FLAG_END_HEADERS) === 0) return null;
    const { streamId, endStream, fragments } = this.block;
    this.block = null;
    return headersFrames(this.repairer.repair(Buffer.concat(fragments)), streamId, endStream);
  }
}

/**
 * Takes a client-port connection that speaks HTTP/1.x (etcd answers /health, /version and /metrics on its
 * client port), with the bytes already read from it.
 */
export type Http1Server = (socket: Duplex, head: Buffer) => void;

/**
 * Whether a connection's first bytes, already known not to be the HTTP/2 preface, open an HTTP/1.x request:
 * a method is upper-case letters. Anything else (a TLS hello on a plaintext port, noise) goes to nghttp2,
 * which refuses it.
 */
export function startsLikeHttp1(head: Buffer): boolean {
  return head.length > 0 && head[0] >= 0x41 && head[0] <= 0x5a;
}

/** How far a connection's admission got (admitClientConnection). */
type AdmissionState = 'preface' | 'peeking' | 'handed-over';

export interface AdmissionCounters {
  /** Connections handed over with an invalid :authority, through AuthorityRepairingStream. */
  repaired: number;
}

/**
 * Hands `socket` (a client connection, plaintext or TLS already terminated) to `inject` — grpc-js's
 * connection injector — once its first request shows whether its :authority needs repairing. See the
 * module comment for the exchange.
 */
export function admitClientConnection(socket: Duplex, inject: (connection: Duplex) => void, counters?: AdmissionCounters, http1?: Http1Server): void {
  let state: AdmissionState = 'preface';
  let buffered: Buffer = Buffer.alloc(0);
  /** Where the next unparsed frame starts in `buffered`. */
  let parsedTo = PREFACE.length;
  /** The bytes of the client's acknowledgement of our SETTINGS, once seen: taken out before handing over. */
  let ack: { start: number; end: number } | null = null;
  let firstBlock: { fragments: Buffer[]; complete: boolean } | null = null;
  let firstRequestTimer: NodeJS.Timeout | null = null;
  const ackTimer = setTimeout(() => socket.destroy(), ACK_WAIT_MS);

  const cleanup = (): void => {
    clearTimeout(ackTimer);
    if (firstRequestTimer) clearTimeout(firstRequestTimer);
    socket.off('data', onData);
    socket.off('close', cleanup);
    socket.off('error', onError);
  };
  // Until grpc-js has the socket, its errors (a reset) are this module's to take, or they would be
  // thrown as unhandled 'error' events.
  const onError = (): void => {
    cleanup();
    socket.destroy();
  };

  const handOver = (): void => {
    if (state === 'handed-over') return;
    state = 'handed-over';
    cleanup();
    socket.pause();
    const bytes = ack === null ? buffered : Buffer.concat([buffered.subarray(0, ack.start), buffered.subarray(ack.end)]);
    let authority: string | null = null;
    try {
      if (firstBlock?.complete) authority = firstAuthority(Buffer.concat(firstBlock.fragments));
    } catch {
      authority = null; // malformed: nghttp2 answers it as it answers any broken block
    }
    if (authority !== null && !isValidAuthority(authority)) {
      if (counters) counters.repaired++;
      inject(new AuthorityRepairingStream(socket, bytes));
      return;
    }
    if (bytes.length > 0) socket.unshift(bytes);
    inject(socket);
  };

  const firstRequestDone = (): boolean => firstBlock?.complete === true;

  const readFrames = (): void => {
    for (let frame = frameAt(buffered, parsedTo); frame !== null; frame = frameAt(buffered, parsedTo)) {
      const start = parsedTo;
      parsedTo += frame.bytes.length;
      if (frame.type === TYPE_SETTINGS && frame.flags & FLAG_ACK && ack === null) {
        ack = { start, end: parsedTo };
        clearTimeout(ackTimer);
      } else if (frame.type === TYPE_HEADERS && firstBlock === null) {
        firstBlock = { fragments: [headersFragment(frame)], complete: (frame.flags & FLAG_END_HEADERS) !== 0 };
      } else if (frame.type === TYPE_CONTINUATION && firstBlock !== null && !firstBlock.complete) {
        firstBlock.fragments.push(frame.payload);
        firstBlock.complete = (frame.flags & FLAG_END_HEADERS) !== 0;
      }
    }
  };

  function onData(chunk: Buffer): void {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    if (state === 'preface') {
      const seen = Math.min(buffered.length, PREFACE.length);
      if (!buffered.subarray(0, seen).equals(PREFACE.subarray(0, seen))) {
        if (http1 !== undefined && startsLikeHttp1(buffered)) {
          state = 'handed-over';
          cleanup();
          socket.pause();
          http1(socket, buffered);
          return;
        }
        handOver(); // not HTTP/2: nghttp2 refuses it in its own words
        return;
      }
      if (buffered.length < PREFACE.length) return;
      state = 'peeking';
      socket.write(EMPTY_SETTINGS);
      firstRequestTimer = setTimeout(() => {
        firstRequestTimer = null;
        if (ack !== null) handOver();
      }, FIRST_REQUEST_WAIT_MS);
    }
    try {
      readFrames();
    } catch {
      handOver(); // a malformed frame: nghttp2 answers it
      return;
    }
    if (ack === null && buffered.length > MAX_PEEK_BYTES) {
      onError(); // a client sending this much without acknowledging SETTINGS is not speaking HTTP/2
      return;
    }
    if (ack !== null && (firstRequestDone() || firstRequestTimer === null || buffered.length > MAX_PEEK_BYTES)) handOver();
  }

  socket.on('data', onData);
  socket.on('close', cleanup);
  socket.on('error', onError);
}

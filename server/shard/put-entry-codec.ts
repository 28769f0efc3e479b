// The common Raft entry, an InternalRequest carrying one PutRequest, encoded and decoded by hand.
// protobufjs's generic path (fromObject, encode, decode, toObject with Long objects for every
// 64-bit field) cost ~50 µs per entry on every member at low load; this path costs a few. The bytes
// are ordinary protobuf for synod.internal.InternalRequest, so either codec reads what the other
// wrote (request-codec.ts falls back to protobufjs for everything this one does not take).
//
// Decoded objects have exactly the shape protobufjs's toObject gives with request-codec.ts's
// options: snake_case fields, 64-bit integers as decimal strings, every field present (defaults),
// unset messages as null, and the oneof's name in `request`.
import type { Caller } from './auth-wire.ts';
import type { PutRequest } from '../etcd/wire-types.ts';
import { varintBytes, writeVarint } from '../protobuf/varint.ts';

const WIRE_VARINT = 0;
const WIRE_LEN = 2;

const F_PROPOSER = 1;
const F_SEQ = 2;
const F_PUT = 3;
const F_REVISION = 15;
const F_PROPOSAL_TERM = 21;
const F_CALLER = 100;

const P_KEY = 1;
const P_VALUE = 2;
const P_LEASE = 3;
const P_PREV_KV = 4;
const P_IGNORE_VALUE = 5;
const P_IGNORE_LEASE = 6;

const TWO_64 = 1n << 64n;
const EMPTY = Buffer.alloc(0);

export interface PutEntry {
  proposer: string;
  seq: string;
  put: PutRequest;
  caller: Caller | null;
  request: 'put';
  /** The oracle revision (sharded clusters); absent when the entry carries none. */
  revision?: string;
  /** The term the proposer sent it in (proposal-fence.ts); absent when 0. */
  proposal_term?: string;
}

/** A decimal 64-bit integer (or a number) as its unsigned 64-bit two's-complement value. */
function toUint64(v: unknown, signed: boolean): bigint | null {
  let n: bigint;
  if (typeof v === 'string') {
    if (!/^-?\d+$/.test(v)) return null;
    n = BigInt(v);
  } else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) return null;
    n = BigInt(v);
  } else if (v === undefined || v === null) {
    n = 0n;
  } else return null;
  if (signed) {
    if (n < -(1n << 63n) || n >= 1n << 63n) return null;
    return n < 0n ? n + TWO_64 : n;
  }
  return n < 0n || n >= TWO_64 ? null : n;
}

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

function isFlag(v: unknown): boolean {
  return v === undefined || v === null || typeof v === 'boolean';
}

/**
 * The entry for a put request, or null when `req` is not a plain put this codec takes (then the
 * caller uses protobufjs).
 */
export function encodePutEntry(req: { proposer: unknown; seq: unknown; put?: unknown; caller?: unknown; revision?: unknown; proposal_term?: unknown }): Buffer | null {
  const put = req.put as Partial<Record<keyof PutRequest, unknown>> | undefined;
  if (put === undefined || put === null) return null;
  for (const k of Object.keys(req)) if (k !== 'proposer' && k !== 'seq' && k !== 'put' && k !== 'caller' && k !== 'revision' && k !== 'proposal_term') return null;
  const proposer = toUint64(req.proposer, false);
  const seq = toUint64(req.seq, false);
  const lease = toUint64(put.lease, true);
  const revision = toUint64(req.revision, false);
  const proposalTerm = toUint64(req.proposal_term, false);
  if (proposer === null || seq === null || lease === null || revision === null || proposalTerm === null) return null;
  const key = put.key ?? EMPTY;
  const value = put.value ?? EMPTY;
  if (!isBytes(key) || !isBytes(value)) return null;
  if (!isFlag(put.prev_kv) || !isFlag(put.ignore_value) || !isFlag(put.ignore_lease)) return null;
  const caller = req.caller as { username?: unknown } | null | undefined;
  let username: Buffer | null = null;
  if (caller !== undefined && caller !== null) {
    // A token revision other than 0 (a field this codec does not write) is left to protobufjs.
    const tokenRevision = (caller as { token_revision?: unknown }).token_revision;
    if (tokenRevision !== undefined && tokenRevision !== null && String(tokenRevision) !== '0') return null;
    if (typeof caller !== 'object' || Object.keys(caller).some((k) => k !== 'username' && k !== 'token_revision')) return null;
    if (caller.username !== undefined && caller.username !== null && typeof caller.username !== 'string') return null;
    username = Buffer.from((caller.username as string | undefined) ?? '', 'utf8');
  }

  let putBytes = 0;
  if (key.length > 0) putBytes += 1 + varintBytes(BigInt(key.length)) + key.length;
  if (value.length > 0) putBytes += 1 + varintBytes(BigInt(value.length)) + value.length;
  if (lease !== 0n) putBytes += 1 + varintBytes(lease);
  if (put.prev_kv === true) putBytes += 2;
  if (put.ignore_value === true) putBytes += 2;
  if (put.ignore_lease === true) putBytes += 2;
  let callerBytes = 0;
  if (username !== null && username.length > 0) callerBytes = 1 + varintBytes(BigInt(username.length)) + username.length;

  let total = 0;
  if (proposer !== 0n) total += 1 + varintBytes(proposer);
  if (seq !== 0n) total += 1 + varintBytes(seq);
  total += 1 + varintBytes(BigInt(putBytes)) + putBytes;
  // Field 15 after the put, as protobufjs orders fields by number (3 < 15 < 100); absent when 0.
  if (revision !== 0n) total += 1 + varintBytes(revision);
  // Field 21: a two-byte tag.
  if (proposalTerm !== 0n) total += 2 + varintBytes(proposalTerm);
  // The caller is written whenever there is one, even an anonymous one: "set but empty" and "unset"
  // decode differently (an empty message, or null).
  if (username !== null) total += 2 + varintBytes(BigInt(callerBytes)) + callerBytes;

  const buf = Buffer.allocUnsafe(total);
  let p = 0;
  if (proposer !== 0n) {
    buf[p++] = (F_PROPOSER << 3) | WIRE_VARINT;
    p = writeVarint(buf, p, proposer);
  }
  if (seq !== 0n) {
    buf[p++] = (F_SEQ << 3) | WIRE_VARINT;
    p = writeVarint(buf, p, seq);
  }
  buf[p++] = (F_PUT << 3) | WIRE_LEN;
  p = writeVarint(buf, p, BigInt(putBytes));
  if (key.length > 0) {
    buf[p++] = (P_KEY << 3) | WIRE_LEN;
    p = writeVarint(buf, p, BigInt(key.length));
    p += Buffer.from(key.buffer, key.byteOffset, key.byteLength).copy(buf, p);
  }
  if (value.length > 0) {
    buf[p++] = (P_VALUE << 3) | WIRE_LEN;
    p = writeVarint(buf, p, BigInt(value.length));
    p += Buffer.from(value.buffer, value.byteOffset, value.byteLength).copy(buf, p);
  }
  if (lease !== 0n) {
    buf[p++] = (P_LEASE << 3) | WIRE_VARINT;
    p = writeVarint(buf, p, lease);
  }
  if (put.prev_kv === true) {
    buf[p++] = (P_PREV_KV << 3) | WIRE_VARINT;
    buf[p++] = 1;
  }
  if (put.ignore_value === true) {
    buf[p++] = (P_IGNORE_VALUE << 3) | WIRE_VARINT;
    buf[p++] = 1;
  }
  if (put.ignore_lease === true) {
    buf[p++] = (P_IGNORE_LEASE << 3) | WIRE_VARINT;
    buf[p++] = 1;
  }
  if (revision !== 0n) {
    buf[p++] = (F_REVISION << 3) | WIRE_VARINT;
    p = writeVarint(buf, p, revision);
  }
  if (proposalTerm !== 0n) {
    p = writeVarint(buf, p, BigInt((F_PROPOSAL_TERM << 3) | WIRE_VARINT));
    p = writeVarint(buf, p, proposalTerm);
  }
  if (username !== null) {
    // Field 100: its tag takes two varint bytes.
    p = writeVarint(buf, p, BigInt((F_CALLER << 3) | WIRE_LEN));
    p = writeVarint(buf, p, BigInt(callerBytes));
    if (callerBytes > 0) {
      buf[p++] = (1 << 3) | WIRE_LEN;
      p = writeVarint(buf, p, BigInt(username.length));
      p += username.copy(buf, p);
    }
  }
  if (p !== total) throw new Error(`put entry encoding wrote ${p} bytes, sized ${total}`);
  return buf;
}

/** Reads protobuf fields; every method returns null on anything this fast path does not take. */
class Reader {
  pos: number;
  readonly buf: Buffer;
  readonly end: number;
  constructor(buf: Buffer, start: number, end: number) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  varint(): bigint | null {
    // Up to 4 bytes (28 bits) as a number; longer ones (up to protobuf's 10) as a bigint.
    let small = 0;
    for (let i = 0; i < 4; i++) {
      if (this.pos >= this.end) return null;
      const b = this.buf[this.pos++];
      small += (b & 0x7f) * 2 ** (7 * i);
      if (b < 0x80) return BigInt(small);
    }
    let big = BigInt(small);
    for (let shift = 28n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) return null;
      const b = this.buf[this.pos++];
      big |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return big & (TWO_64 - 1n);
    }
    return null;
  }

  smallVarint(): number | null {
    const v = this.varint();
    return v === null || v > 0x7fffffffn ? null : Number(v);
  }

  /** [start, end) of a length-delimited field's bytes. */
  span(): [number, number] | null {
    const len = this.smallVarint();
    if (len === null || this.pos + len > this.end) return null;
    const start = this.pos;
    this.pos += len;
    return [start, this.pos];
  }
}

function int64Text(v: bigint): string {
  return BigInt.asIntN(64, v).toString();
}

/** The decoded put entry, or null when `data` is anything else (or uses an encoding this path leaves to protobufjs). */
export function decodePutEntry(data: Uint8Array): PutEntry | null {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const r = new Reader(buf, 0, buf.length);
  let proposer = 0n;
  let seq = 0n;
  let revision = 0n;
  let proposalTerm = 0n;
  let put: PutRequest | null = null;
  let caller: Caller | null = null;
  while (r.pos < r.end) {
    const tag = r.smallVarint();
    if (tag === null) return null;
    const field = tag >>> 3;
    const wire = tag & 7;
    if ((field === F_PROPOSER || field === F_SEQ || field === F_REVISION || field === F_PROPOSAL_TERM) && wire === WIRE_VARINT) {
      const v = r.varint();
      if (v === null) return null;
      if (field === F_PROPOSER) proposer = v;
      else if (field === F_SEQ) seq = v;
      else if (field === F_REVISION) revision = v;
      else proposalTerm = v;
    } else if (field === F_PUT && wire === WIRE_LEN) {
      // A repeated put field would have to be merged; leave such inputs to protobufjs.
      if (put !== null) return null;
      const span = r.span();
      if (span === null) return null;
      put = decodePut(buf, span[0], span[1]);
      if (put === null) return null;
    } else if (field === F_CALLER && wire === WIRE_LEN) {
      if (caller !== null) return null;
      const span = r.span();
      if (span === null) return null;
      caller = decodeCaller(buf, span[0], span[1]);
      if (caller === null) return null;
    } else return null;
  }
  if (put === null) return null;
  const entry: PutEntry = { proposer: proposer.toString(), seq: seq.toString(), put, caller, request: 'put' };
  if (revision !== 0n) entry.revision = revision.toString();
  if (proposalTerm !== 0n) entry.proposal_term = proposalTerm.toString();
  return entry;
}

function decodePut(buf: Buffer, start: number, end: number): PutRequest | null {
  const r = new Reader(buf, start, end);
  const put: PutRequest = { key: EMPTY, value: EMPTY, lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false };
  while (r.pos < r.end) {
    const tag = r.smallVarint();
    if (tag === null) return null;
    const field = tag >>> 3;
    const wire = tag & 7;
    if ((field === P_KEY || field === P_VALUE) && wire === WIRE_LEN) {
      const span = r.span();
      if (span === null) return null;
      const bytes = buf.subarray(span[0], span[1]);
      if (field === P_KEY) put.key = bytes;
      else put.value = bytes;
    } else if (wire === WIRE_VARINT && field >= P_LEASE && field <= P_IGNORE_LEASE) {
      const v = r.varint();
      if (v === null) return null;
      if (field === P_LEASE) put.lease = int64Text(v);
      else if (field === P_PREV_KV) put.prev_kv = v !== 0n;
      else if (field === P_IGNORE_VALUE) put.ignore_value = v !== 0n;
      else put.ignore_lease = v !== 0n;
    } else return null;
  }
  return put;
}

function decodeCaller(buf: Buffer, start: number, end: number): Caller | null {
  const r = new Reader(buf, start, end);
  let username = '';
  while (r.pos < r.end) {
    const tag = r.smallVarint();
    if (tag !== ((1 << 3) | WIRE_LEN)) return null;
    const span = r.span();
    if (span === null) return null;
    username = buf.toString('utf8', span[0], span[1]);
  }
  // As protobufjs decodes it (defaults filled); a caller with a token revision has field 2 and goes there.
  return { username, token_revision: '0' };
}

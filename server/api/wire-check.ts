// The wire check of client requests: reads a request's protobuf bytes exactly as etcd's generated
// (gogoproto) Unmarshal does and answers with its error text, so a malformed request is refused with
// etcd's words instead of being misread. protobufjs (under @grpc/proto-loader) reads a field by its
// declared type whatever the wire type says (a fixed32 TTL of ff ff ff ff became TTL 4294967295),
// accepts field number 0, and reads some varints differently from Go (uint32 reads of 6..9-byte
// varints, tags above 2^29). So:
//   1. checkWire() walks the bytes once (iteratively: nesting depth is attacker-chosen) with Go's
//      rules and returns Go's first error, or whether protobufjs could misread the bytes;
//   2. canonicalRequest() rewrites such bytes into the canonical encoding of what Go decoded (known
//      fields only, Go's oneof and merge rules, 32-bit values truncated as Go truncates them), which
//      protobufjs reads the same way. The common, well-formed request skips step 2.
// It also bounds txn nesting: etcd only counts ops (--max-txn-ops, the budget shrinking at each
// level), so any TxnRequest deeper than maxTxnOps + 1 levels is refused by that count at its parent,
// whatever it holds; canonicalRequest() replaces such levels by empty txns, which keeps etcd's answer
// (validate.ts finds the same first error) while protobufjs never decodes unbounded depth.
import type protobuf from 'protobufjs';

/** Go's io.ErrUnexpectedEOF. */
const EOF = 'unexpected EOF';
/** gogoproto's ErrIntOverflow<File>. */
const OVERFLOW = 'proto: integer overflow';
/** gogoproto's ErrInvalidLength<File>. */
const NEGATIVE_LENGTH = 'proto: negative length found during unmarshaling';

/** How Go reads a field (and how it is written back canonically). */
type Kind = 'v64' | 'v32s' | 'v32u' | 'bool' | 'f64' | 'f32' | 'len' | 'msg';

export interface FieldRule {
  /** The Go struct field name, as gogoproto's errors name it (CamelCase of the .proto name). */
  readonly goName: string;
  readonly kind: Kind;
  /** The wire type Go expects (a packable repeated field also takes 2). */
  readonly wire: number;
  readonly packable: boolean;
  readonly repeated: boolean;
  /** The oneof this field is a member of, if any. */
  readonly oneof: string | null;
  readonly message: MessageRule | null;
}

export interface MessageRule {
  /** The Go type name (nested types joined with '_'). */
  readonly goName: string;
  readonly fields: Map<number, FieldRule>;
  /** etcdserverpb.TxnRequest: its nesting is counted. */
  readonly isTxn: boolean;
}

const WIRE_OF: Record<Kind, number> = { v64: 0, v32s: 0, v32u: 0, bool: 0, f64: 1, f32: 5, len: 2, msg: 2 };

const SCALAR_KIND: Record<string, Kind> = {
  int64: 'v64',
  uint64: 'v64',
  sint64: 'v64',
  int32: 'v32s',
  uint32: 'v32u',
  sint32: 'v32u',
  bool: 'bool',
  fixed64: 'f64',
  sfixed64: 'f64',
  double: 'f64',
  fixed32: 'f32',
  sfixed32: 'f32',
  float: 'f32',
  string: 'len',
  bytes: 'len',
};

/** protoc-gen-go's CamelCase: `range_end` -> RangeEnd, `peerURLs` -> PeerURLs, `TTL` -> TTL. */
export function goCamelCase(name: string): string {
  let out = '';
  let i = 0;
  if (name.startsWith('_')) {
    out = 'X';
    i = 1;
  }
  const lower = (c: string | undefined): boolean => c !== undefined && c >= 'a' && c <= 'z';
  for (; i < name.length; i++) {
    let c = name[i];
    if (c === '_' && lower(name[i + 1])) continue;
    if (c >= '0' && c <= '9') {
      out += c;
      continue;
    }
    if (lower(c)) c = c.toUpperCase();
    out += c;
    while (lower(name[i + 1])) out += name[++i];
  }
  return out;
}

function goTypeName(type: protobuf.Type): string {
  const parts = [type.name];
  let parent = type.parent;
  // A nested message's Go name is Parent_Child; namespaces (packages) do not count.
  while (parent !== null && 'fieldsArray' in parent) {
    parts.unshift(parent.name);
    parent = parent.parent;
  }
  return parts.join('_');
}

const rules = new Map<string, MessageRule>();

/** The rule of a protobufjs message type (cached; recursive types share their rule). */
export function messageRule(type: protobuf.Type): MessageRule {
  const cached = rules.get(type.fullName);
  if (cached) return cached;
  const fields = new Map<number, FieldRule>();
  const rule: MessageRule = { goName: goTypeName(type), fields, isTxn: type.fullName === '.etcdserverpb.TxnRequest' };
  rules.set(type.fullName, rule);
  for (const f of type.fieldsArray) {
    f.resolve();
    const resolved = f.resolvedType;
    let kind: Kind;
    if (resolved !== null && 'fieldsArray' in resolved) kind = 'msg';
    else if (resolved !== null) kind = 'v32s'; // an enum: Go reads it as int32
    else {
      const k = SCALAR_KIND[f.type];
      if (k === undefined) throw new Error(`wire-check: unsupported field type ${f.type} of ${type.fullName}.${f.name}`);
      kind = k;
    }
    if (f.map) throw new Error(`wire-check: map field ${type.fullName}.${f.name} is not supported`);
    fields.set(f.id, {
      goName: goCamelCase(f.name),
      kind,
      wire: WIRE_OF[kind],
      packable: f.repeated && kind !== 'len' && kind !== 'msg',
      repeated: f.repeated,
      oneof: f.partOf ? f.partOf.name : null,
      message: kind === 'msg' ? messageRule(resolved as protobuf.Type) : null,
    });
  }
  return rule;
}

export interface WireVerdict {
  /** gogoproto's error text for the first problem Go would meet, or null when Go decodes it. */
  readonly error: string | null;
  /** Well formed, but protobufjs could read it differently: pass it through canonicalRequest(). */
  readonly rewrite: boolean;
}

const OK: WireVerdict = Object.freeze({ error: null, rewrite: false });
const REWRITE: WireVerdict = Object.freeze({ error: null, rewrite: true });

const TWO_63 = 1n << 63n;
/** 2^(7i): where byte i of a varint lands in the low 32 bits (i < 4). */
const LO_SCALE = [1, 2 ** 7, 2 ** 14, 2 ** 21];
/** 2^(7i - 32): where byte i (5..9) lands in the high 32 bits. */
const HI_SCALE = [0, 0, 0, 0, 0, 2 ** 3, 2 ** 10, 2 ** 17, 2 ** 24, 2 ** 31];

/** A varint as Go reads it: at most 10 bytes (then "integer overflow"), bounded by `end`. */
class Cursor {
  pos = 0;
  /** Low 32 bits of the last varint (unsigned), and the rest above them. */
  lo = 0;
  hi = 0;
  /** Bytes the last varint took. */
  len = 0;
  readonly buf: Uint8Array;
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  /** Reads a varint; returns an error text or null. */
  varint(end: number): string | null {
    const buf = this.buf;
    let pos = this.pos;
    if (pos >= end) return EOF;
    let b = buf[pos++];
    if (b < 0x80) {
      // Most tags, lengths and values: one byte.
      this.pos = pos;
      this.lo = b;
      this.hi = 0;
      this.len = 1;
      return null;
    }
    let lo = b & 0x7f;
    let hi = 0;
    for (let i = 1; ; i++) {
      if (i >= 10) return OVERFLOW; // shift >= 64
      if (pos >= end) return EOF;
      b = buf[pos++];
      const bits = b & 0x7f;
      if (i < 4) lo += bits * LO_SCALE[i];
      else if (i === 4) {
        lo += (bits & 0x0f) * 0x10000000;
        hi = bits >>> 4;
      } else hi += (bits * HI_SCALE[i]) % 0x100000000; // the 10th byte's upper bits fall off 64
      if (b < 0x80) break;
    }
    this.len = pos - this.pos;
    this.pos = pos;
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
    return null;
  }

  /** The last varint as a uint64. */
  big(): bigint {
    return (BigInt(this.hi) << 32n) | BigInt(this.lo);
  }
}

interface Frame {
  readonly rule: MessageRule;
  readonly start: number;
  readonly end: number;
  readonly txnDepth: number;
  /** Oneofs and singular message fields seen in this message (to spot Go's replace/merge cases). */
  seen: Set<string> | null;
}

/**
 * Go's Unmarshal of `buf` as `rule`: its first error, else whether protobufjs needs canonical bytes
 * (including txns nested deeper than `maxTxnDepth`).
 */
export function checkWire(rule: MessageRule, buf: Uint8Array, maxTxnDepth: number): WireVerdict {
  const c = new Cursor(buf);
  let rewrite = false;
  const frames: Frame[] = [{ rule, start: 0, end: buf.length, txnDepth: rule.isTxn ? 1 : 0, seen: null }];
  if (rule.isTxn && maxTxnDepth < 1) rewrite = true;
  while (frames.length > 0) {
    const f = frames[frames.length - 1];
    if (c.pos >= f.end) {
      frames.pop();
      continue;
    }
    const preIndex = c.pos;
    let err = c.varint(f.end);
    if (err !== null) return { error: err, rewrite: false };
    const tagLen = c.len;
    const wireType = c.lo & 7;
    const fieldNum = goFieldNumber(c);
    if (wireType === 4) return { error: `proto: ${f.rule.goName}: wiretype end group for non-group`, rewrite: false };
    if (fieldNum <= 0) return { error: `proto: ${f.rule.goName}: illegal tag ${fieldNum} (wire type ${c.big()})`, rewrite: false };
    // protobufjs reads a tag as a uint32 (6..9-byte ones wrongly) and keeps 29 bits of field number.
    if ((tagLen > 5 && tagLen < 10) || c.lo >>> 3 !== fieldNum) rewrite = true;
    const field = f.rule.fields.get(fieldNum);
    if (field === undefined) {
      err = skipUnknown(c, preIndex, f);
      if (err !== null) return { error: err, rewrite: false };
      rewrite = true; // protobufjs never sees unknown fields (its group skipping has a depth limit)
      continue;
    }
    if (field.oneof !== null || (field.message !== null && !field.repeated)) {
      // Go keeps the last oneof member (replacing) and merges a repeated singular message;
      // protobufjs keeps every oneof member and replaces the message.
      const key = field.oneof ?? field.goName;
      f.seen ??= new Set();
      if (f.seen.has(key)) rewrite = true;
      f.seen.add(key);
    }
    if (field.packable && wireType === 2) {
      err = readLength(c, f);
      if (err !== null) return { error: err, rewrite: false };
      if (c.len > 5 && c.len < 10) rewrite = true;
      const postIndex = c.pos + c.lo;
      while (c.pos < postIndex) {
        // gogoproto bounds each element by the message, not by the packed run.
        err = readScalar(c, field.kind, f.end);
        if (err !== null) return { error: err, rewrite: false };
        if (misread(field.kind, c)) rewrite = true;
      }
      if (c.pos !== postIndex) rewrite = true;
      continue;
    }
    if (wireType !== field.wire) return { error: `proto: wrong wireType = ${wireType} for field ${field.goName}`, rewrite: false };
    if (field.wire !== 2) {
      err = readScalar(c, field.kind, f.end);
      if (err !== null) return { error: err, rewrite: false };
      if (misread(field.kind, c)) rewrite = true;
      continue;
    }
    err = readLength(c, f);
    if (err !== null) return { error: err, rewrite: false };
    if (c.len > 5 && c.len < 10) rewrite = true;
    const postIndex = c.pos + c.lo;
    if (field.message !== null) {
      const txnDepth = field.message.isTxn ? f.txnDepth + 1 : f.txnDepth;
      if (txnDepth > maxTxnDepth) rewrite = true;
      frames.push({ rule: field.message, start: c.pos, end: postIndex, txnDepth, seen: null });
    } else {
      c.pos = postIndex;
    }
  }
  return rewrite ? REWRITE : OK;
}

/** Go's field number: int32(tag >> 3), so tags past 2^34 wrap (and may turn negative or zero). */
function goFieldNumber(c: Cursor): number {
  if (c.hi === 0) return c.lo >>> 3;
  return Number(BigInt.asIntN(32, c.big() >> 3n));
}

/**
 * Whether protobufjs would read the varint just read differently from Go: it reads 32-bit fields
 * (and bools) with its uint32 reader, which mis-steps on 6..9-byte varints and sees only the low 32
 * bits (a bool whose set bits are all above them is false there, true in Go).
 */
function misread(kind: Kind, c: Cursor): boolean {
  if (kind === 'v64' || kind === 'f64' || kind === 'f32') return false;
  if (c.len > 5 && c.len < 10) return true;
  return kind === 'bool' && c.lo === 0 && c.hi !== 0;
}

/** A scalar of `kind` (its wire type already matched). */
function readScalar(c: Cursor, kind: Kind, end: number): string | null {
  if (kind === 'f64' || kind === 'f32') {
    const n = kind === 'f64' ? 8 : 4;
    if (c.pos + n > end) return EOF;
    c.pos += n;
    c.len = n;
    return null;
  }
  return c.varint(end);
}

/**
 * A length prefix as Go checks it (a Go int: negative past 2^63; the end index must not overflow
 * either, then must lie within the message). On success c.lo holds the length.
 */
function readLength(c: Cursor, f: Frame): string | null {
  const err = c.varint(f.end);
  if (err !== null) return err;
  if (c.hi === 0 && c.pos + c.lo <= f.end) return null;
  const len = c.big();
  if (len >= TWO_63) return NEGATIVE_LENGTH;
  if (BigInt(c.pos - f.start) + len >= TWO_63) return NEGATIVE_LENGTH;
  return EOF;
}

/** gogoproto's skip<File>() of an unknown field starting at `preIndex`, then its bounds checks. */
function skipUnknown(c: Cursor, preIndex: number, f: Frame): string | null {
  c.pos = preIndex;
  let depth = 0;
  // Positions may run past the buffer (a fixed64 near the end), so they are kept as plain numbers
  // and compared with the message's end; lengths near 2^63 are checked exactly.
  let i = preIndex;
  while (i < f.end) {
    c.pos = i;
    let err = c.varint(f.end);
    if (err !== null) return err;
    i = c.pos;
    const wireType = c.lo & 7;
    switch (wireType) {
      case 0:
        err = c.varint(f.end);
        if (err !== null) return err;
        i = c.pos;
        break;
      case 1:
        i += 8;
        break;
      case 2: {
        err = c.varint(f.end);
        if (err !== null) return err;
        i = c.pos;
        if (c.hi === 0) {
          i += c.lo;
          break;
        }
        const len = c.big();
        if (len >= TWO_63) return NEGATIVE_LENGTH;
        const local = BigInt(i - preIndex) + len; // the index within skip's slice
        if (local >= TWO_63) return NEGATIVE_LENGTH;
        // Past any end. Inside a group Go's loop just ends (EOF); otherwise the message adds its own
        // offset, which may overflow first.
        if (depth === 0 && BigInt(preIndex - f.start) + local >= TWO_63) return NEGATIVE_LENGTH;
        return EOF;
      }
      case 3:
        depth++;
        break;
      case 4:
        if (depth === 0) return 'proto: unexpected end of group';
        depth--;
        break;
      case 5:
        i += 4;
        break;
      default:
        return `proto: illegal wireType ${wireType}`;
    }
    if (depth === 0) {
      if (i > f.end) return EOF;
      c.pos = i;
      return null;
    }
  }
  return EOF;
}

// ------------------------------------------------------------------------------ canonical form

/** Canonical varint bytes of a uint64. */
function varintOf(v: bigint): Buffer {
  const out: number[] = [];
  let n = BigInt.asUintN(64, v);
  while (n >= 0x80n) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return Buffer.from(out);
}

function tagOf(field: number, wire: number): Buffer {
  return varintOf((BigInt(field) << 3n) | BigInt(wire));
}

/** What Go stores for a varint of `kind`, as the uint64 to write back. */
function goValue(kind: Kind, raw: bigint): bigint {
  switch (kind) {
    case 'v32s':
      return BigInt.asUintN(64, BigInt.asIntN(32, raw)); // int32: sign-extended, as protobuf writes it
    case 'v32u':
      return BigInt.asUintN(32, raw);
    case 'bool':
      return raw === 0n ? 0n : 1n;
    default:
      return raw;
  }
}

/** One field's canonical bytes, kept in arrival order with what Go would do on repeats. */
interface OutField {
  readonly key: string | null;
  chunks: Buffer[];
}

/**
 * The canonical encoding of what Go decodes from `buf` (which checkWire() accepted): known fields
 * only, canonical tags and varints, the last oneof member only, repeated singular messages merged,
 * and TxnRequests deeper than `maxTxnDepth` levels emptied. Recursion is bounded: below
 * `maxTxnDepth` only the non-recursive request types remain.
 */
export function canonicalRequest(rule: MessageRule, buf: Uint8Array, maxTxnDepth: number): Buffer {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return canonical(rule, b, 0, b.length, rule.isTxn ? 1 : 0, maxTxnDepth);
}

function canonical(rule: MessageRule, buf: Buffer, start: number, end: number, txnDepth: number, maxTxnDepth: number): Buffer {
  if (rule.isTxn && txnDepth > maxTxnDepth) return Buffer.alloc(0);
  const c = new Cursor(buf);
  c.pos = start;
  const out: OutField[] = [];
  const byKey = new Map<string, OutField>();
  const place = (key: string | null, chunk: Buffer, merge: boolean): void => {
    if (key === null) {
      out.push({ key, chunks: [chunk] });
      return;
    }
    const prev = byKey.get(key);
    if (prev !== undefined && merge) {
      prev.chunks.push(chunk);
      return;
    }
    if (prev !== undefined) prev.chunks = []; // replaced: the later occurrence wins where it stands
    const entry: OutField = { key, chunks: [chunk] };
    byKey.set(key, entry);
    out.push(entry);
  };
  const frame: Frame = { rule, start, end, txnDepth, seen: null };
  while (c.pos < end) {
    const preIndex = c.pos;
    c.varint(end);
    const wireType = c.lo & 7;
    const fieldNum = goFieldNumber(c);
    const field = rule.fields.get(fieldNum);
    if (field === undefined) {
      skipUnknown(c, preIndex, frame);
      continue;
    }
    if (field.packable && wireType === 2) {
      readLength(c, frame);
      const postIndex = c.pos + c.lo;
      const values: Buffer[] = [];
      while (c.pos < postIndex) {
        readScalar(c, field.kind, end);
        values.push(scalarBytes(field.kind, c, buf));
      }
      const body = Buffer.concat(values);
      place(null, Buffer.concat([tagOf(fieldNum, 2), varintOf(BigInt(body.length)), body]), false);
      continue;
    }
    if (field.wire !== 2) {
      readScalar(c, field.kind, end);
      const key = field.oneof ?? (field.repeated ? null : field.goName);
      place(key, Buffer.concat([tagOf(fieldNum, field.wire), scalarBytes(field.kind, c, buf)]), false);
      continue;
    }
    readLength(c, frame);
    const postIndex = c.pos + c.lo;
    let body: Buffer;
    if (field.message !== null) {
      const childDepth = field.message.isTxn ? txnDepth + 1 : txnDepth;
      body = canonical(field.message, buf, c.pos, postIndex, childDepth, maxTxnDepth);
    } else {
      body = buf.subarray(c.pos, postIndex);
    }
    c.pos = postIndex;
    const chunk = Buffer.concat([tagOf(fieldNum, 2), varintOf(BigInt(body.length)), body]);
    if (field.oneof !== null) place(field.oneof, chunk, false);
    else if (field.repeated) place(null, chunk, false);
    else place(field.goName, chunk, field.message !== null);
  }
  const parts: Buffer[] = [];
  for (const o of out) {
    if (o.chunks.length === 1) parts.push(o.chunks[0]);
    else if (o.chunks.length > 1) parts.push(mergeMessageChunks(o.chunks));
  }
  return Buffer.concat(parts);
}

/** Occurrences of one singular message field as one field: protobuf merges by concatenation. */
function mergeMessageChunks(chunks: Buffer[]): Buffer {
  const bodies: Buffer[] = [];
  let tag: Buffer | null = null;
  for (const chunk of chunks) {
    const c = new Cursor(chunk);
    c.varint(chunk.length);
    tag ??= chunk.subarray(0, c.pos);
    c.varint(chunk.length);
    bodies.push(chunk.subarray(c.pos));
  }
  const body = Buffer.concat(bodies);
  return Buffer.concat([tag as Buffer, varintOf(BigInt(body.length)), body]);
}

/** The canonical bytes of the scalar just read (fixed ones as they were). */
function scalarBytes(kind: Kind, c: Cursor, buf: Buffer): Buffer {
  if (kind === 'f64' || kind === 'f32') return buf.subarray(c.pos - c.len, c.pos);
  return varintOf(goValue(kind, c.big()));
}

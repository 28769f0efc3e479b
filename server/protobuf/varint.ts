// Protobuf varints for the hand-written codecs on hot paths (peer frames, put entries, watch and put
// responses, MVCC records). Two forms: safe non-negative integers as numbers (Raft indexes, lengths,
// ids), and full unsigned 64-bit values as bigints (etcd's int64/uint64 fields). A leaf module: it
// imports nothing, so every layer may use it.

/** Bytes of `v` as a varint (`v` a safe non-negative integer). */
export function numberVarintBytes(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  if (v < 0x800000000) return 5;
  if (v < 0x40000000000) return 6;
  if (v < 0x2000000000000) return 7;
  return 8; // < 2^56 covers every safe integer
}

/** Writes `v` (a safe non-negative integer) at `p`; returns the position after it. */
export function writeNumberVarint(buf: Buffer, p: number, v: number): number {
  if (v > 0xffffffff) {
    // Above 32 bits: split into two uint32 halves (exact for safe integers; no float modulo).
    let lo = v >>> 0;
    let hi = (v - lo) / 4294967296;
    while (hi !== 0) {
      buf[p++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    v = lo;
  }
  while (v > 0x7f) {
    buf[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[p++] = v;
  return p;
}

/**
 * Reads a varint at `p` as a safe integer: [value, position after it]; null when it runs past `buf`'s end
 * or is above Number.MAX_SAFE_INTEGER.
 */
export function readNumberVarint(buf: Uint8Array, p: number): [number, number] | null {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10 && p < buf.length; i++) {
    const byte = buf[p++];
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return Number.isSafeInteger(value) ? [value, p] : null;
    scale *= 128;
  }
  return null;
}

/** Bytes `v` (an unsigned 64-bit value) takes as a varint. */
export function varintBytes(v: bigint): number {
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

/** Writes `v` at `p`; returns the position after it. */
export function writeVarint(buf: Buffer, p: number, v: bigint): number {
  if (v <= 0xfffffffn) {
    let x = Number(v);
    while (x >= 0x80) {
      buf[p++] = (x & 0x7f) | 0x80;
      x >>>= 7;
    }
    buf[p++] = x;
    return p;
  }
  while (v >= 0x80n) {
    buf[p++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[p++] = Number(v);
  return p;
}

/** A uint64 field value from proto-loader's forms (decimal string or number); throws on anything else. */
export function uint64Of(v: string | number, what: string): bigint {
  const n = typeof v === 'number' ? (Number.isSafeInteger(v) ? BigInt(v) : -1n) : /^\d+$/.test(v) ? BigInt(v) : -1n;
  if (n < 0n || n >= 1n << 64n) throw new Error(`${what}: ${String(v)} is not a uint64`);
  return n;
}

// Protobuf varints for the hand-written encoders on hot paths (put entries, watch and put responses).
// 64-bit values are bigints; the common small ones take a number fast path.

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

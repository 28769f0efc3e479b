// CRC-32C (Castagnoli), the checksum etcd's HashKV and `etcdctl snapshot status` use, and the combination
// of two CRCs into the CRC of the concatenated data. The CRC itself is `crc-32`'s; the combination is
// the standard GF(2) construction (shifting a CRC past n zero bytes is multiplying it by a 32×32 bit
// matrix; the matrices for 2^k bytes are squared from one another once, here).
import { createRequire } from 'node:module';

const CRC32C = createRequire(import.meta.url)('crc-32/crc32c') as { buf(data: Uint8Array, seed?: number): number };

/** The reflected Castagnoli polynomial. */
const POLYNOMIAL = 0x82f63b78;

/** CRC-32C of `data`, continuing from `seed` (the CRC of what came before; 0 to start). Unsigned. */
export function crc32c(data: Uint8Array, seed = 0): number {
  return CRC32C.buf(data, seed) >>> 0;
}

type Matrix = Uint32Array;

function times(matrix: Matrix, vector: number): number {
  let sum = 0;
  for (let i = 0; vector !== 0; i++, vector >>>= 1) if (vector & 1) sum ^= matrix[i];
  return sum >>> 0;
}

function square(matrix: Matrix): Matrix {
  const out = new Uint32Array(32);
  for (let i = 0; i < 32; i++) out[i] = times(matrix, matrix[i]);
  return out;
}

/** SHIFT_BY_BYTES[k]: the operator that moves a CRC past 2^k zero bytes. */
const SHIFT_BY_BYTES: Matrix[] = (() => {
  const bit = new Uint32Array(32); // one zero bit
  bit[0] = POLYNOMIAL;
  for (let i = 1; i < 32; i++) bit[i] = (1 << (i - 1)) >>> 0;
  const oneByte = square(square(square(bit)));
  const out = [oneByte];
  for (let k = 1; k < 53; k++) out.push(square(out[k - 1]));
  return out;
})();

/** The CRC-32C of A followed by B, from crc(A), crc(B) and B's length in bytes. */
export function crc32cCombine(crcA: number, crcB: number, bytesB: number): number {
  if (!Number.isSafeInteger(bytesB) || bytesB < 0) throw new RangeError(`crc32cCombine: length ${bytesB}`);
  let shifted = crcA >>> 0;
  for (let k = 0, n = bytesB; n > 0; k++, n = Math.floor(n / 2)) if (n % 2 === 1) shifted = times(SHIFT_BY_BYTES[k], shifted);
  return (shifted ^ crcB) >>> 0;
}

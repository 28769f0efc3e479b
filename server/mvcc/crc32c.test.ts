import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { crc32c, crc32cCombine } from './crc32c.ts';

describe('crc32c', () => {
  it('has the standard check value, and continues from a seed', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.from('56789'), crc32c(Buffer.from('1234')))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
  });

  it('combines two CRCs into the CRC of the concatenation, for lengths from 0 to 100,000 bytes', () => {
    for (const [a, b] of [[0, 0], [1, 0], [0, 1], [3, 5], [17, 1000], [1, 65_537], [100_000, 3], [777, 99_999]]) {
      const x = randomBytes(a);
      const y = randomBytes(b);
      expect(crc32cCombine(crc32c(x), crc32c(y), y.length), `${a}+${b}`).toBe(crc32c(Buffer.concat([x, y])));
    }
  });
});

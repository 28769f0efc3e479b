// The shared framing of snapshots and backups: what is encoded parses back whole however the bytes
// are split, with and without alignment, and damage anywhere is refused.
import { describe, expect, it } from 'vitest';
import { DIGEST_BYTES, encodeRecordStream, RecordStreamParser, type RecordStreamFormat } from './record-stream.ts';

const PLAIN: RecordStreamFormat = { magic: Buffer.from('TESTFMT1'), alignBytes: 1, noun: 'test stream' };
const ALIGNED: RecordStreamFormat = { magic: Buffer.from('TESTFMT2'), alignBytes: 512, noun: 'test stream' };

async function encode(format: RecordStreamFormat, records: Array<[Buffer, Buffer]>, chunkBytes: number): Promise<Buffer> {
  async function* source(): AsyncGenerator<[Buffer, Buffer]> {
    yield* records;
  }
  const chunks: Buffer[] = [];
  for await (const c of encodeRecordStream(format, { n: records.length }, source(), chunkBytes)) chunks.push(c);
  return Buffer.concat(chunks);
}

function parseIn(format: RecordStreamFormat, bytes: Buffer, step: number): { header: unknown; records: Array<[Buffer, Buffer]>; complete: boolean } {
  const parser = new RecordStreamParser<{ n: number }>(format);
  const records: Array<[Buffer, Buffer]> = [];
  for (let i = 0; i < bytes.length; i += step) records.push(...parser.push(bytes.subarray(i, Math.min(bytes.length, i + step))));
  return { header: parser.header, records, complete: parser.complete };
}

const RECORDS: Array<[Buffer, Buffer]> = Array.from({ length: 40 }, (_, i) => [Buffer.from(`key-${i}`), Buffer.alloc(i * 7, i)]);

describe('record stream', () => {
  for (const format of [PLAIN, ALIGNED]) {
    it(`round-trips split at any step (alignment ${format.alignBytes})`, async () => {
      const bytes = await encode(format, RECORDS, 100);
      expect((bytes.length - DIGEST_BYTES) % format.alignBytes).toBe(0);
      for (const step of [1, 3, 31, 512, bytes.length]) {
        const got = parseIn(format, bytes, step);
        expect(got.complete).toBe(true);
        expect(got.header).toEqual({ n: RECORDS.length });
        expect(got.records).toEqual(RECORDS);
      }
    });

    it(`never completes with a flipped byte anywhere; refuses and bytes after the digest (alignment ${format.alignBytes})`, async () => {
      const bytes = await encode(format, RECORDS.slice(0, 5), 1 << 20);
      for (let at = 0; at < bytes.length; at += 7) {
        const damaged = Buffer.from(bytes);
        damaged[at] ^= 0x01;
        // Either refused at once, or (a length field grew) never complete: callers require `complete`.
        let complete = false;
        try {
          complete = parseIn(format, damaged, 64).complete;
        } catch {
          complete = false;
        }
        expect(complete, `byte ${at}`).toBe(false);
      }
      expect(() => parseIn(format, Buffer.concat([bytes, Buffer.from([0])]), 64)).toThrow(/after the test stream digest/);
      expect(parseIn(format, bytes.subarray(0, bytes.length - 1), 64).complete).toBe(false);
    });
  }
});

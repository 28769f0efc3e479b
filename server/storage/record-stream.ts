// The framing shared by Synod's two files of state records: the state-machine snapshot a lagging
// follower receives (snapshot-file.ts) and the backup `etcdctl snapshot save` writes (backup-file.ts).
//
//   magic (8 bytes) | u32 metaLength | meta JSON
//   repeated:  u32 keyLength | key | u32 valueLength | value        (store-relative state records)
//   u32 0xFFFFFFFF
//   zero bytes up to a multiple of `alignBytes` (1: none)
//   sha256 of every byte before it
//
// One encoder and one incremental parser, so the two formats cannot drift apart in how a record or
// the end is framed; each format keeps its own magic, header type and alignment.
import { createHash } from 'node:crypto';

const END_MARK = 0xffffffff;
export const DIGEST_BYTES = 32;

export interface RecordStreamFormat {
  /** Eight bytes naming the format ("SYNSNAP1", "SYNODBAK"). */
  magic: Buffer;
  /** The length before the digest is a multiple of this (etcd's bbolt page shape for backups: 512). */
  alignBytes: number;
  /** What a reader calls the format in errors ("snapshot", "backup"). */
  noun: string;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** The stream's bytes in chunks of about `chunkBytes`; the last chunk ends with the padding and digest. */
export async function* encodeRecordStream(
  format: RecordStreamFormat,
  header: object,
  records: AsyncIterable<[Buffer, Buffer]>,
  chunkBytes = 1024 * 1024,
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  let parts: Buffer[] = [];
  let size = 0;
  let total = 0;
  const push = (b: Buffer): void => {
    parts.push(b);
    size += b.length;
  };
  const take = (): Buffer => {
    const out = Buffer.concat(parts, size);
    parts = [];
    size = 0;
    hash.update(out);
    total += out.length;
    return out;
  };
  const meta = Buffer.from(JSON.stringify(header));
  push(format.magic);
  push(u32(meta.length));
  push(meta);
  for await (const [key, value] of records) {
    push(u32(key.length));
    push(key);
    push(u32(value.length));
    push(value);
    if (size >= chunkBytes) yield take();
  }
  push(u32(END_MARK));
  const padding = (format.alignBytes - ((total + size) % format.alignBytes)) % format.alignBytes;
  if (padding > 0) push(Buffer.alloc(padding));
  const last = take();
  yield Buffer.concat([last, hash.digest()]);
}

/**
 * Incremental parser of the framing above. Feed it bytes; it hands out the header and records as they
 * complete, and checks the padding and the digest at the end. Throws on malformed input.
 */
export class RecordStreamParser<Header> {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly hash = createHash('sha256');
  private readonly format: RecordStreamFormat;
  private stage: 'magic' | 'records' | 'padding' | 'digest' | 'done' = 'magic';
  /** Bytes consumed (hashed) before `buffered`. */
  private consumed = 0;
  header: Header | null = null;

  constructor(format: RecordStreamFormat) {
    this.format = format;
  }

  /** Returns the records completed by this chunk. */
  push(chunk: Buffer): Array<[Buffer, Buffer]> {
    const buf = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const out: Array<[Buffer, Buffer]> = [];
    const { magic, noun } = this.format;
    let pos = 0;
    for (;;) {
      if (this.stage === 'magic') {
        if (buf.length - pos < magic.length + 4) break;
        if (!buf.subarray(pos, pos + magic.length).equals(magic)) throw new Error(`not a Synod ${noun} (bad magic)`);
        const end = pos + magic.length + 4 + buf.readUInt32BE(pos + magic.length);
        if (buf.length < end) break;
        this.header = JSON.parse(buf.subarray(pos + magic.length + 4, end).toString('utf8')) as Header;
        pos = end;
        this.stage = 'records';
      } else if (this.stage === 'records') {
        if (buf.length - pos < 4) break;
        const keyLength = buf.readUInt32BE(pos);
        if (keyLength === END_MARK) {
          pos += 4;
          this.stage = 'padding';
          continue;
        }
        if (buf.length - pos < 8 + keyLength) break;
        const valueLength = buf.readUInt32BE(pos + 4 + keyLength);
        const end = pos + 8 + keyLength + valueLength;
        if (buf.length < end) break;
        // Copies: the records outlive this chunk (the store keeps value buffers).
        out.push([Buffer.from(buf.subarray(pos + 4, pos + 4 + keyLength)), Buffer.from(buf.subarray(pos + 8 + keyLength, end))]);
        pos = end;
      } else if (this.stage === 'padding') {
        const align = this.format.alignBytes;
        const padding = (align - ((this.consumed + pos) % align)) % align;
        if (buf.length - pos < padding) break;
        if (buf.subarray(pos, pos + padding).some((b) => b !== 0)) throw new Error(`${noun} padding is not zero`);
        pos += padding;
        this.stage = 'digest';
      } else if (this.stage === 'digest') {
        this.hash.update(buf.subarray(0, pos));
        this.consumed += pos;
        this.buffered = buf.subarray(pos);
        if (this.buffered.length < DIGEST_BYTES) return out;
        if (!this.hash.digest().equals(this.buffered.subarray(0, DIGEST_BYTES))) throw new Error(`${noun} digest mismatch`);
        if (this.buffered.length !== DIGEST_BYTES) throw new Error(`bytes after the ${noun} digest`);
        this.stage = 'done';
        this.buffered = Buffer.alloc(0);
        return out;
      } else {
        throw new Error(`bytes after the end of the ${noun}`);
      }
    }
    this.hash.update(buf.subarray(0, pos));
    this.consumed += pos;
    this.buffered = buf.subarray(pos);
    return out;
  }

  get complete(): boolean {
    return this.stage === 'done';
  }
}

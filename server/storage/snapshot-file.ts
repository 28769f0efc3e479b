// The state-machine snapshot format: how a group's state records at one applied index travel to a
// member that fell behind the compacted log, and how they rest on its disk until installed.
//
//   "SYNSNAP1" | u32 metaLength | meta JSON (SnapshotMeta + groupId)
//   repeated:  u32 keyLength | key | u32 valueLength | value        (store-relative state records)
//   u32 0xFFFFFFFF | sha256 of every byte before it
//
// The sender produces the bytes from a LevelDB snapshot (encodeSnapshot); the receiver writes them to
// a temporary file, and only a complete file whose digest matches is renamed into place
// (SnapshotFileWriter), so a file under its final name is always whole.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { SnapshotMeta } from '../raft/types.ts';

const MAGIC = Buffer.from('SYNSNAP1');
const END_MARK = 0xffffffff;
const DIGEST_BYTES = 32;

export interface SnapshotHeader extends SnapshotMeta {
  groupId: number;
}

export function snapshotFileName(groupId: number, index: number): string {
  return `${groupId.toString().padStart(4, '0')}-${index.toString().padStart(16, '0')}.snap`;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** The snapshot's bytes in chunks of about `chunkBytes`. */
export async function* encodeSnapshot(
  header: SnapshotHeader,
  records: AsyncIterable<[Buffer, Buffer]>,
  chunkBytes = 1024 * 1024,
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  let parts: Buffer[] = [];
  let size = 0;
  const push = (b: Buffer): void => {
    parts.push(b);
    size += b.length;
  };
  const take = (): Buffer => {
    const out = Buffer.concat(parts, size);
    parts = [];
    size = 0;
    hash.update(out);
    return out;
  };
  const meta = Buffer.from(JSON.stringify(header));
  push(MAGIC);
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
  const last = take();
  yield Buffer.concat([last, hash.digest()]);
}

/**
 * Incremental parser of the format above. Feed it bytes; it hands out the header and records as they
 * complete, and checks the digest at the end.
 */
export class SnapshotParser {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly hash = createHash('sha256');
  private stage: 'magic' | 'records' | 'digest' | 'done' = 'magic';
  header: SnapshotHeader | null = null;

  /** Returns the records completed by this chunk. Throws on malformed input. */
  push(chunk: Buffer): Array<[Buffer, Buffer]> {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const out: Array<[Buffer, Buffer]> = [];
    let pos = 0;
    const buf = this.buffered;
    for (;;) {
      if (this.stage === 'magic') {
        if (buf.length - pos < MAGIC.length + 4) break;
        if (!buf.subarray(pos, pos + MAGIC.length).equals(MAGIC)) throw new Error('not a Synod snapshot (bad magic)');
        const metaLength = buf.readUInt32BE(pos + MAGIC.length);
        const end = pos + MAGIC.length + 4 + metaLength;
        if (buf.length < end) break;
        this.header = JSON.parse(buf.subarray(pos + MAGIC.length + 4, end).toString('utf8')) as SnapshotHeader;
        pos = end;
        this.stage = 'records';
      } else if (this.stage === 'records') {
        if (buf.length - pos < 4) break;
        const keyLength = buf.readUInt32BE(pos);
        if (keyLength === END_MARK) {
          pos += 4;
          this.stage = 'digest';
          continue;
        }
        if (buf.length - pos < 4 + keyLength + 4) break;
        const valueLength = buf.readUInt32BE(pos + 4 + keyLength);
        const end = pos + 8 + keyLength + valueLength;
        if (buf.length < end) break;
        // Copies: the records outlive this chunk (the store keeps value buffers).
        out.push([Buffer.from(buf.subarray(pos + 4, pos + 4 + keyLength)), Buffer.from(buf.subarray(pos + 8 + keyLength, end))]);
        pos = end;
      } else if (this.stage === 'digest') {
        this.hash.update(buf.subarray(0, pos));
        if (buf.length - pos < DIGEST_BYTES) {
          this.buffered = buf.subarray(pos);
          return out;
        }
        const expected = this.hash.digest();
        if (!expected.equals(buf.subarray(pos, pos + DIGEST_BYTES))) throw new Error('snapshot digest mismatch');
        if (buf.length !== pos + DIGEST_BYTES) throw new Error('bytes after the snapshot digest');
        this.stage = 'done';
        this.buffered = Buffer.alloc(0);
        return out;
      } else {
        throw new Error('bytes after the end of the snapshot');
      }
    }
    this.hash.update(buf.subarray(0, pos));
    this.buffered = buf.subarray(pos);
    return out;
  }

  get complete(): boolean {
    return this.stage === 'done';
  }
}

/** Receives a snapshot into `dir`: a temp file while it arrives, renamed into place once verified. */
export class SnapshotFileWriter {
  private readonly tempPath: string;
  private readonly fd: number;
  private readonly parser = new SnapshotParser();
  private readonly dir: string;
  private closed = false;

  constructor(dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    this.dir = dir;
    this.tempPath = path.join(dir, `incoming-${randomBytes(6).toString('hex')}.tmp`);
    this.fd = fs.openSync(this.tempPath, 'w');
  }

  write(chunk: Buffer): void {
    this.parser.push(chunk); // validates as it goes; records are not kept
    fs.writeSync(this.fd, chunk);
  }

  /** Verifies, fsyncs and renames; returns the final path and header. */
  finish(): { path: string; header: SnapshotHeader } {
    if (!this.parser.complete || !this.parser.header) throw new Error('snapshot transfer ended before its digest');
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    this.closed = true;
    const header = this.parser.header;
    const finalPath = path.join(this.dir, snapshotFileName(header.groupId, header.index));
    fs.renameSync(this.tempPath, finalPath);
    const dirFd = fs.openSync(this.dir, 'r');
    fs.fsyncSync(dirFd);
    fs.closeSync(dirFd);
    return { path: finalPath, header };
  }

  abort(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
    fs.rmSync(this.tempPath, { force: true });
  }
}

/** Reads a verified snapshot file: its header, then its records in batches. */
export async function* readSnapshotFile(filePath: string): AsyncGenerator<Array<[Buffer, Buffer]>, SnapshotHeader> {
  const parser = new SnapshotParser();
  for await (const chunk of fs.createReadStream(filePath, { highWaterMark: 1024 * 1024 })) {
    const records = parser.push(chunk as Buffer);
    if (records.length > 0) yield records;
  }
  if (!parser.complete || !parser.header) throw new Error(`snapshot file ${filePath} is truncated`);
  return parser.header;
}

/** Reads only the header of a snapshot file. */
export function readSnapshotHeader(filePath: string): SnapshotHeader {
  const fd = fs.openSync(filePath, 'r');
  try {
    const head = Buffer.alloc(MAGIC.length + 4);
    fs.readSync(fd, head, 0, head.length, 0);
    if (!head.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error(`${filePath} is not a Synod snapshot`);
    const meta = Buffer.alloc(head.readUInt32BE(MAGIC.length));
    fs.readSync(fd, meta, 0, meta.length, head.length);
    return JSON.parse(meta.toString('utf8')) as SnapshotHeader;
  } finally {
    fs.closeSync(fd);
  }
}

/** Removes snapshot files of `groupId` other than the one at `keepIndex`, and stale temp files. */
export function pruneSnapshotFiles(dir: string, groupId: number, keepIndex: number): void {
  if (!fs.existsSync(dir)) return;
  const keep = snapshotFileName(groupId, keepIndex);
  const prefix = `${groupId.toString().padStart(4, '0')}-`;
  for (const name of fs.readdirSync(dir)) {
    if ((name.startsWith(prefix) && name.endsWith('.snap') && name !== keep) || name.startsWith('incoming-')) {
      fs.rmSync(path.join(dir, name), { force: true });
    }
  }
}

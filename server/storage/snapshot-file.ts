// The state-machine snapshot format: how a group's state records at one applied index travel to a
// member that fell behind the compacted log, and how they rest on its disk until installed.
//
//   "SYNSNAP1" | u32 metaLength | meta JSON (SnapshotMeta + groupId)
//   repeated:  u32 keyLength | key | u32 valueLength | value        (store-relative state records)
//   u32 0xFFFFFFFF | sha256 of every byte before it                  (framing: record-stream.ts)
//
// The sender produces the bytes from a LevelDB snapshot (encodeSnapshot); the receiver writes them to
// a temporary file, and only a complete file whose digest matches is renamed into place
// (SnapshotFileWriter), so a file under its final name is always whole.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { SnapshotMeta } from '../raft/types.ts';
import { encodeRecordStream, RecordStreamParser, type RecordStreamFormat } from './record-stream.ts';

const SNAPSHOT_FORMAT: RecordStreamFormat = { magic: Buffer.from('SYNSNAP1'), alignBytes: 1, noun: 'snapshot' };

export interface SnapshotHeader extends SnapshotMeta {
  groupId: number;
}

export function snapshotFileName(groupId: number, index: number): string {
  return `${groupId.toString().padStart(4, '0')}-${index.toString().padStart(16, '0')}.snap`;
}

/** The snapshot's bytes in chunks of about `chunkBytes`. */
export function encodeSnapshot(header: SnapshotHeader, records: AsyncIterable<[Buffer, Buffer]>, chunkBytes = 1024 * 1024): AsyncGenerator<Buffer> {
  return encodeRecordStream(SNAPSHOT_FORMAT, header, records, chunkBytes);
}

/**
 * Incremental parser of the format above. Feed it bytes; it hands out the header and records as they
 * complete, and checks the digest at the end.
 */
export class SnapshotParser extends RecordStreamParser<SnapshotHeader> {
  constructor() {
    super(SNAPSHOT_FORMAT);
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
    const { magic } = SNAPSHOT_FORMAT;
    const head = Buffer.alloc(magic.length + 4);
    fs.readSync(fd, head, 0, head.length, 0);
    if (!head.subarray(0, magic.length).equals(magic)) throw new Error(`${filePath} is not a Synod snapshot`);
    const meta = Buffer.alloc(head.readUInt32BE(magic.length));
    fs.readSync(fd, meta, 0, meta.length, head.length);
    return JSON.parse(meta.toString('utf8')) as SnapshotHeader;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Removes snapshot files of `groupId` other than the one at `keepIndex`, and temp files untouched for
 * `tempIdleMs` (0: every temp file). A temp file may be another group's transfer under way — a member
 * hosting several groups receives their snapshots side by side — so a running member passes an idle
 * time no live transfer reaches.
 */
export function pruneSnapshotFiles(dir: string, groupId: number, keepIndex: number, tempIdleMs = 0): void {
  if (!fs.existsSync(dir)) return;
  const keep = snapshotFileName(groupId, keepIndex);
  const prefix = `${groupId.toString().padStart(4, '0')}-`;
  const nowMs = Date.now();
  for (const name of fs.readdirSync(dir)) {
    const file = path.join(dir, name);
    if (name.startsWith(prefix) && name.endsWith('.snap') && name !== keep) fs.rmSync(file, { force: true });
    else if (name.startsWith('incoming-')) {
      const idleMs = tempIdleMs > 0 ? nowMs - (fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0) : Infinity;
      if (idleMs >= tempIdleMs) fs.rmSync(file, { force: true });
    }
  }
}

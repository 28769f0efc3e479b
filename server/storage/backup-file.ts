// The backup format behind the Maintenance.Snapshot RPC (`etcdctl snapshot save`) and
// `synod snapshot restore`: one group's state records at one applied index, taken from a LevelDB
// snapshot, so the copy is consistent while writes go on.
//
//   "SYNODBAK" | u32 metaLength | meta JSON (BackupHeader)
//   repeated:  u32 keyLength | key | u32 valueLength | value        (store-relative state records, key order)
//   u32 0xFFFFFFFF
//   zero bytes up to a multiple of 512
//   sha256 of every byte before it
//
// The trailer is etcd's: its snapshot is a bbolt file (a whole number of 512-byte-aligned pages) with
// the sha256 of the file appended, and etcd's clients and etcdutl check `size % 512 == 32` and the
// digest. The padding makes a Synod backup pass the same checks, so `etcdctl snapshot save` accepts
// it; `etcdctl snapshot status` still cannot read it (it opens the file as bbolt).
import { createHash } from 'node:crypto';
import fs from 'node:fs';

const MAGIC = Buffer.from('SYNODBAK');
const END_MARK = 0xffffffff;
const DIGEST_BYTES = 32;
const ALIGN = 512;

export interface BackupHeader {
  format: 1;
  /** Cluster and member the backup was taken from (hex), for the operator's information. */
  clusterId: string;
  memberId: string;
  /** ISO time the backup was taken. */
  createdAt: string;
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** The backup's bytes in chunks of about `chunkBytes`; the last chunk ends with padding and digest. */
export async function* encodeBackup(header: BackupHeader, records: AsyncIterable<[Buffer, Buffer]>, chunkBytes = 1024 * 1024): AsyncGenerator<Buffer> {
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
  const padding = (ALIGN - ((total + size) % ALIGN)) % ALIGN;
  push(Buffer.alloc(padding));
  const last = take();
  yield Buffer.concat([last, hash.digest()]);
}

/** Checks a backup file's trailer: its length has etcd's shape and its sha256 matches. Throws if not. */
export async function verifyBackupFile(filePath: string): Promise<void> {
  const size = fs.statSync(filePath).size;
  if (size % ALIGN !== DIGEST_BYTES) throw new Error(`${filePath}: no sha256 trailer (size ${size} is not a multiple of 512 plus 32)`);
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(filePath, { start: 0, end: size - DIGEST_BYTES - 1, highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
  }
  const trailer = Buffer.alloc(DIGEST_BYTES);
  const fd = fs.openSync(filePath, 'r');
  try {
    fs.readSync(fd, trailer, 0, DIGEST_BYTES, size - DIGEST_BYTES);
  } finally {
    fs.closeSync(fd);
  }
  if (!hash.digest().equals(trailer)) throw new Error(`${filePath}: sha256 mismatch (the file is damaged or truncated)`);
}

/**
 * Reads a backup's header and records (in batches). Does not check the digest: call
 * verifyBackupFile first (etcdutl likewise checks the hash before restoring).
 */
export async function* readBackupFile(filePath: string): AsyncGenerator<Array<[Buffer, Buffer]>, BackupHeader> {
  let buffered: Buffer = Buffer.alloc(0);
  let header: BackupHeader | null = null;
  let ended = false;
  for await (const raw of fs.createReadStream(filePath, { highWaterMark: 1024 * 1024 })) {
    if (ended) break;
    const buf: Buffer = buffered.length === 0 ? (raw as Buffer) : Buffer.concat([buffered, raw as Buffer]);
    let pos = 0;
    const out: Array<[Buffer, Buffer]> = [];
    for (;;) {
      if (header === null) {
        if (buf.length - pos < MAGIC.length + 4) break;
        if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) throw new Error(`${filePath} is not a Synod backup (etcd's own snapshots are bbolt files; Synod cannot restore them)`);
        const end = MAGIC.length + 4 + buf.readUInt32BE(MAGIC.length);
        if (buf.length < end) break;
        header = JSON.parse(buf.subarray(MAGIC.length + 4, end).toString('utf8')) as BackupHeader;
        if (header.format !== 1) throw new Error(`${filePath}: unknown backup format ${String(header.format)}`);
        pos = end;
        continue;
      }
      if (buf.length - pos < 4) break;
      const keyLength = buf.readUInt32BE(pos);
      if (keyLength === END_MARK) {
        ended = true;
        break;
      }
      if (buf.length - pos < 8 + keyLength) break;
      const valueLength = buf.readUInt32BE(pos + 4 + keyLength);
      const end = pos + 8 + keyLength + valueLength;
      if (buf.length < end) break;
      out.push([Buffer.from(buf.subarray(pos + 4, pos + 4 + keyLength)), Buffer.from(buf.subarray(pos + 8 + keyLength, end))]);
      pos = end;
    }
    buffered = buf.subarray(pos);
    if (out.length > 0) yield out;
  }
  if (!header || !ended) throw new Error(`${filePath}: truncated backup`);
  return header;
}

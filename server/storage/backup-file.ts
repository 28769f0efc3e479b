// Synod's earlier backup format, written by the Maintenance.Snapshot RPC (`etcdctl snapshot save`) until
// 2026-12-06 and still read by `synod snapshot restore`: one group's state records at one applied index.
// Backups are now etcd snapshots (server/api/etcd-backup.ts); this module reads the older files, and
// writes one only for the test that checks they still restore.
//
//   "SYNODBAK" | u32 metaLength | meta JSON (BackupHeader)
//   repeated:  u32 keyLength | key | u32 valueLength | value        (store-relative state records, key order)
//   u32 0xFFFFFFFF
//   zero bytes up to a multiple of 512
//   sha256 of every byte before it                                   (framing: record-stream.ts)
//
// The trailer is etcd's: its snapshot is a bbolt file (a whole number of 512-byte-aligned pages) with
// the sha256 of the file appended, and etcd's clients and etcdutl check `size % 512 == 32` and the
// digest. The padding made such a backup pass the same checks, so `etcdctl snapshot save` accepted it;
// `etcdctl snapshot status` could not read it (it opens the file as bbolt).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { DIGEST_BYTES, encodeRecordStream, RecordStreamParser, type RecordStreamFormat } from './record-stream.ts';

const BACKUP_FORMAT: RecordStreamFormat = { magic: Buffer.from('SYNODBAK'), alignBytes: 512, noun: 'backup' };

export interface BackupHeader {
  format: 1;
  /** Cluster and member the backup was taken from (hex), for the operator's information. */
  clusterId: string;
  memberId: string;
  /** ISO time the backup was taken. */
  createdAt: string;
  /**
   * A sharded cluster's backup: its shard count, and the oracle revision R it was taken at (its records
   * are one store compacted at R, server/api/sharded-backup.ts). Absent: a one-group cluster's.
   */
  shards?: number;
  revision?: number;
}

/** The backup's bytes in chunks of about `chunkBytes`; the last chunk ends with padding and digest. */
export function encodeBackup(header: BackupHeader, records: AsyncIterable<[Buffer, Buffer]>, chunkBytes = 1024 * 1024): AsyncGenerator<Buffer> {
  return encodeRecordStream(BACKUP_FORMAT, header, records, chunkBytes);
}

/** Checks a backup file's trailer: its length has etcd's shape and its sha256 matches. Throws if not. */
export async function verifyBackupFile(filePath: string): Promise<void> {
  const size = fs.statSync(filePath).size;
  if (size % BACKUP_FORMAT.alignBytes !== DIGEST_BYTES) throw new Error(`${filePath}: no sha256 trailer (size ${size} is not a multiple of 512 plus 32); an etcd member's member/snap/db has none: restore it with --skip-hash-check`);
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

/** A backup's header alone (read from its first bytes; the records and digest are checked by readBackupFile). */
export async function readBackupHeader(filePath: string): Promise<BackupHeader> {
  const parser = new RecordStreamParser<BackupHeader>(BACKUP_FORMAT);
  for await (const chunk of fs.createReadStream(filePath, { highWaterMark: 64 * 1024 })) {
    try {
      parser.push(chunk as Buffer);
    } catch (err) {
      if (parser.header === null) throw new Error(`${filePath} is neither a Synod backup nor an etcd snapshot`);
      throw new Error(`${filePath}: ${(err as Error).message}`);
    }
    if (parser.header !== null) return parser.header;
  }
  throw new Error(`${filePath}: truncated backup`);
}

/**
 * Reads a backup's header and records (in batches), checking its framing, padding and digest as it
 * goes; verifyBackupFile checks the digest alone first (etcdutl likewise checks the hash before
 * restoring), so a damaged file is refused before anything is written.
 */
export async function* readBackupFile(filePath: string): AsyncGenerator<Array<[Buffer, Buffer]>, BackupHeader> {
  const parser = new RecordStreamParser<BackupHeader>(BACKUP_FORMAT);
  for await (const chunk of fs.createReadStream(filePath, { highWaterMark: 1024 * 1024 })) {
    let records: Array<[Buffer, Buffer]>;
    try {
      records = parser.push(chunk as Buffer);
    } catch (err) {
      if (parser.header === null) throw new Error(`${filePath} is neither a Synod backup nor an etcd snapshot`);
      throw new Error(`${filePath}: ${(err as Error).message}`);
    }
    if (parser.header !== null && parser.header.format !== 1) throw new Error(`${filePath}: unknown backup format ${String(parser.header.format)}`);
    if (records.length > 0) yield records;
  }
  if (!parser.complete || parser.header === null) throw new Error(`${filePath}: truncated backup`);
  return parser.header;
}

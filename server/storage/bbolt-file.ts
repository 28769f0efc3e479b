// Reads a bbolt database file (go.etcd.io/bbolt), the B+tree file behind etcd's backend and what
// `etcdctl snapshot save` writes against etcd. Read-only and synchronous, page by page from the file,
// so a snapshot of any size is read in memory of the order of its largest page. Used to restore an
// etcd snapshot into Synod (server/cli/etcd-snapshot-import.ts).
//
// The format: bbolt-format.ts.
import fs from 'node:fs';
import {
  BBOLT_FORMAT_VERSION,
  BBOLT_MAGIC,
  BUCKET_HEADER_BYTES,
  ELEMENT_BYTES,
  fnv1a64,
  LEAF_FLAG_BUCKET,
  META_CHECKSUMMED_BYTES,
  PAGE_FLAG_BRANCH,
  PAGE_FLAG_LEAF,
  PAGE_FLAG_META,
  PAGE_HEADER_BYTES,
} from './bbolt-format.ts';

/** bbolt refuses page sizes outside this range too. */
const MIN_PAGE_BYTES = 512;
const MAX_PAGE_BYTES = 1 << 20;

interface Meta {
  pageSizeBytes: number;
  rootPgid: number;
  highWaterPgid: number;
  txid: bigint;
}

function u64(buf: Buffer, off: number): number {
  const value = buf.readBigUInt64LE(off);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`bbolt: page id ${value} out of range`);
  return Number(value);
}

/** The meta at `pageOffset` of `buf`, or null if it is not a valid one (bad magic, version or checksum). */
function parseMeta(buf: Buffer, pageOffset: number): Meta | null {
  if (buf.length < pageOffset + 80) return null;
  const m = pageOffset + PAGE_HEADER_BYTES;
  if ((buf.readUInt16LE(pageOffset + 8) & PAGE_FLAG_META) === 0) return null;
  if (buf.readUInt32LE(m) !== BBOLT_MAGIC || buf.readUInt32LE(m + 4) !== BBOLT_FORMAT_VERSION) return null;
  if (fnv1a64(buf.subarray(m, m + META_CHECKSUMMED_BYTES)) !== buf.readBigUInt64LE(m + META_CHECKSUMMED_BYTES)) return null;
  const pageSizeBytes = buf.readUInt32LE(m + 8);
  if (pageSizeBytes < MIN_PAGE_BYTES || pageSizeBytes > MAX_PAGE_BYTES) return null;
  return { pageSizeBytes, rootPgid: u64(buf, m + 16), highWaterPgid: u64(buf, m + 40), txid: buf.readBigUInt64LE(m + 48) };
}

/** Whether the file starts like a bbolt database (page 0 is a meta page with bbolt's magic). */
export function isBboltFile(filePath: string): boolean {
  const head = Buffer.alloc(PAGE_HEADER_BYTES + 8);
  const fd = fs.openSync(filePath, 'r');
  try {
    if (fs.readSync(fd, head, 0, head.length, 0) < head.length) return false;
  } finally {
    fs.closeSync(fd);
  }
  return (head.readUInt16LE(8) & PAGE_FLAG_META) !== 0 && head.readUInt32LE(PAGE_HEADER_BYTES) === BBOLT_MAGIC;
}

/** One page's bytes (all its overflow pages included); elements are read relative to `page` 0. */
type Page = Buffer;

export class BboltFile {
  private readonly fd: number;
  private readonly meta: Meta;
  private readonly fileBytes: number;

  private constructor(fd: number, meta: Meta, fileBytes: number) {
    this.fd = fd;
    this.meta = meta;
    this.fileBytes = fileBytes;
  }

  /** Opens the file and picks its newest valid meta page, as bbolt does; throws if neither is valid. */
  static open(filePath: string): BboltFile {
    const fd = fs.openSync(filePath, 'r');
    try {
      const fileBytes = fs.fstatSync(fd).size;
      const first = Buffer.alloc(4096);
      fs.readSync(fd, first, 0, first.length, 0);
      const meta0 = parseMeta(first, 0);
      // Page 1 sits one page size in; take the size from page 0's header even if its checksum failed.
      const declared = first.length >= 28 ? first.readUInt32LE(PAGE_HEADER_BYTES + 8) : 0;
      const pageSizeBytes = meta0?.pageSizeBytes ?? declared;
      let meta1: Meta | null = null;
      if (pageSizeBytes >= MIN_PAGE_BYTES && pageSizeBytes <= MAX_PAGE_BYTES) {
        const second = Buffer.alloc(pageSizeBytes);
        fs.readSync(fd, second, 0, pageSizeBytes, pageSizeBytes);
        meta1 = parseMeta(second, 0);
      }
      const meta = meta0 && meta1 ? (meta1.txid > meta0.txid ? meta1 : meta0) : (meta0 ?? meta1);
      if (!meta) throw new Error(`${filePath} is not a bbolt database (no valid meta page)`);
      if (meta.highWaterPgid * meta.pageSizeBytes > fileBytes) {
        throw new Error(`${filePath}: truncated bbolt database (${fileBytes} bytes, its meta names ${meta.highWaterPgid} pages of ${meta.pageSizeBytes})`);
      }
      return new BboltFile(fd, meta, fileBytes);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** The top-level buckets' names, in key order. */
  bucketNames(): Buffer[] {
    const names: Buffer[] = [];
    for (const [key, , isBucket] of this.walk(this.readPage(this.meta.rootPgid))) if (isBucket) names.push(key);
    return names;
  }

  /** A top-level bucket's entries in key order (nested buckets are skipped); nothing if it does not exist. */
  *entries(bucketName: string): Generator<[Buffer, Buffer]> {
    const wanted = Buffer.from(bucketName);
    for (const [key, value, isBucket] of this.walk(this.readPage(this.meta.rootPgid))) {
      if (!isBucket || !key.equals(wanted)) continue;
      for (const [k, v, nested] of this.walk(this.bucketRoot(value))) if (!nested) yield [k, v];
      return;
    }
  }

  private bucketRoot(value: Buffer): Page {
    if (value.length < BUCKET_HEADER_BYTES) throw new Error('bbolt: bucket header too short');
    const rootPgid = u64(value, 0);
    return rootPgid === 0 ? value.subarray(BUCKET_HEADER_BYTES) : this.readPage(rootPgid);
  }

  /** Every leaf element under `page`, in key order: [key, value, is a nested bucket]. */
  private *walk(page: Page): Generator<[Buffer, Buffer, boolean]> {
    const flags = page.readUInt16LE(8);
    const count = page.readUInt16LE(10);
    if (flags & PAGE_FLAG_BRANCH) {
      for (let i = 0; i < count; i++) {
        const at = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
        yield* this.walk(this.readPage(u64(page, at + 8)));
      }
    } else if (flags & PAGE_FLAG_LEAF) {
      for (let i = 0; i < count; i++) {
        const at = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
        const keyAt = at + page.readUInt32LE(at + 4);
        const keyEnd = keyAt + page.readUInt32LE(at + 8);
        const valueEnd = keyEnd + page.readUInt32LE(at + 12);
        if (valueEnd > page.length) throw new Error('bbolt: leaf element runs past its page');
        // Copies: the page buffer is dropped once walked, and callers keep keys and values.
        yield [Buffer.from(page.subarray(keyAt, keyEnd)), Buffer.from(page.subarray(keyEnd, valueEnd)), (page.readUInt32LE(at) & LEAF_FLAG_BUCKET) !== 0];
      }
    } else {
      throw new Error(`bbolt: page ${page.readBigUInt64LE(0)} is neither a branch nor a leaf (flags 0x${flags.toString(16)})`);
    }
  }

  private readPage(pgid: number): Page {
    const { pageSizeBytes, highWaterPgid } = this.meta;
    if (pgid < 2 || pgid >= highWaterPgid) throw new Error(`bbolt: page id ${pgid} outside the file's ${highWaterPgid} pages`);
    const head = Buffer.alloc(PAGE_HEADER_BYTES);
    fs.readSync(this.fd, head, 0, PAGE_HEADER_BYTES, pgid * pageSizeBytes);
    if (u64(head, 0) !== pgid) throw new Error(`bbolt: page ${pgid} says it is page ${head.readBigUInt64LE(0)}`);
    const bytes = (1 + head.readUInt32LE(12)) * pageSizeBytes;
    if (pgid * pageSizeBytes + bytes > this.fileBytes) throw new Error(`bbolt: page ${pgid} runs past the end of the file`);
    const page = Buffer.alloc(bytes);
    fs.readSync(this.fd, page, 0, bytes, pgid * pageSizeBytes);
    return page;
  }
}

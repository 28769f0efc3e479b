// The bbolt writer's files are what real bbolt accepts: Debian's etcdctl 3.4 opens each one, runs
// bbolt's tx.Check() (every page reachable once, right page types) and hashes every bucket's entries
// in cursor order (`snapshot status`), and a small reader here walks the same file to check what
// tx.Check() of etcd 3.4's bbolt does not — key order, branch keys, equal leaf depth — and that every
// entry comes back, in order.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeBbolt, type BboltBucketSource, type BboltWriteOptions } from './bbolt-writer.ts';

type Entry = [Buffer, Buffer];

interface BucketSpec {
  name: Buffer;
  entries: Entry[];
}

const MIB = 1024 * 1024;

// ---- Building input ----

function bucket(name: string | Buffer, entries: Entry[]): BucketSpec {
  return { name: typeof name === 'string' ? Buffer.from(name) : name, entries };
}

function sourceOf(spec: BucketSpec): BboltBucketSource {
  return {
    name: spec.name,
    async *entries() {
      yield* spec.entries;
    },
  };
}

/** A source whose entries come from `perPass(pass)`: a different list on each call exercises the pass checks. */
function sourcePerPass(name: string, perPass: (pass: number) => Entry[]): BboltBucketSource {
  let pass = 0;
  return {
    name: Buffer.from(name),
    async *entries() {
      yield* perPass(pass++);
    },
  };
}

function sortedEntries(entries: Entry[]): Entry[] {
  return [...entries].sort((a, b) => Buffer.compare(a[0], b[0]));
}

/** An etcd revision key: 8-byte big-endian main revision, '_', 8-byte sub revision. */
function revisionKey(main: number, sub = 0): Buffer {
  const key = Buffer.alloc(17);
  key.writeBigUInt64BE(BigInt(main), 0);
  key[8] = 0x5f;
  key.writeBigUInt64BE(BigInt(sub), 9);
  return key;
}

/** etcd's stored mvccpb.KeyValue (key, create and mod revision, version 1, value): etcd decodes these on restore. */
function mvccKeyValue(key: string, value: string, revision: number): Buffer {
  const field = (tag: number, bytes: Buffer) => Buffer.concat([Buffer.from([tag, bytes.length]), bytes]);
  const varint = (tag: number, n: number) => Buffer.from([tag, n]); // n < 128 here
  return Buffer.concat([field(0x0a, Buffer.from(key)), varint(0x10, revision), varint(0x18, revision), varint(0x20, 1), field(0x2a, Buffer.from(value))]);
}

function numberedKey(i: number, width = 9): Buffer {
  return Buffer.from(`k${String(i).padStart(width, '0')}`);
}

async function encode(specs: BucketSpec[], options?: BboltWriteOptions): Promise<{ bytes: Buffer; chunks: Buffer[] }> {
  const chunks: Buffer[] = [];
  for await (const chunk of encodeBbolt(specs.map(sourceOf), options)) chunks.push(chunk);
  return { bytes: Buffer.concat(chunks), chunks };
}

async function encodeSources(sources: BboltBucketSource[], options?: BboltWriteOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of encodeBbolt(sources, options)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

// ---- An independent reader and checker ----

interface PageExtent {
  pageId: number;
  spanPages: number;
  /** The header's page type: branch 0x01, leaf 0x02, meta 0x04, freelist 0x10. */
  flags: number;
}

interface ReadBack {
  pageSizeBytes: number;
  highWaterPageId: number;
  /** Levels of the deepest bucket tree (1: its root is a leaf). */
  maxDepth: number;
  rootBucketDepth: number;
  buckets: Array<{ name: Buffer; entries: Entry[]; depth: number }>;
  pages: PageExtent[];
}

/** A cheap assertion for the reader's per-element checks (expect per element is slow at 50,000). */
function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`bbolt file check: ${message}`);
}

function fnv1a64(bytes: Buffer): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash;
}

function readMeta(file: Buffer, offset: number): { pageSizeBytes: number; rootPageId: number; freelistPageId: number; highWaterPageId: number; txid: number } {
  expect(file.readUInt16LE(offset + 8) & 0x04, 'meta page flag').toBe(0x04);
  const meta = file.subarray(offset + 16, offset + 80);
  expect(meta.readUInt32LE(0), 'magic').toBe(0xed0cdaed);
  expect(meta.readUInt32LE(4), 'version').toBe(2);
  expect(fnv1a64(meta.subarray(0, 56)), 'meta checksum').toBe(meta.readBigUInt64LE(56));
  return {
    pageSizeBytes: meta.readUInt32LE(8),
    rootPageId: Number(meta.readBigUInt64LE(16)),
    freelistPageId: Number(meta.readBigUInt64LE(32)),
    highWaterPageId: Number(meta.readBigUInt64LE(40)),
    txid: Number(meta.readBigUInt64LE(48)),
  };
}

interface LeafItem {
  flags: number;
  key: Buffer;
  value: Buffer;
}

/** Walks a file as bbolt would, checking structure as it goes (with expect). */
function readBack(file: Buffer): ReadBack {
  const meta0 = readMeta(file, 0);
  const pageSizeBytes = meta0.pageSizeBytes;
  const meta1 = readMeta(file, pageSizeBytes);
  const meta = meta1.txid > meta0.txid ? meta1 : meta0;
  expect({ ...meta0, txid: 0 }).toEqual({ ...meta1, txid: 0 });
  expect(file.length).toBeGreaterThanOrEqual(meta.highWaterPageId * pageSizeBytes);

  const references = new Uint8Array(meta.highWaterPageId);
  const pages: PageExtent[] = [];
  const reference = (pageId: number, spanPages: number): Buffer => {
    check(pageId + spanPages <= meta.highWaterPageId, `page ${pageId} (+${spanPages - 1}) past the high-water mark`);
    for (let i = pageId; i < pageId + spanPages; i++) references[i]++;
    pages.push({ pageId, spanPages, flags: file.readUInt16LE(pageId * pageSizeBytes + 8) });
    return file.subarray(pageId * pageSizeBytes, (pageId + spanPages) * pageSizeBytes);
  };
  reference(0, 1);
  reference(1, 1);
  const freelist = reference(meta.freelistPageId, 1);
  expect([freelist.readUInt16LE(8), freelist.readUInt16LE(10), freelist.readUInt32LE(12)], 'freelist flags, count, overflow').toEqual([0x10, 0, 0]);

  /** Appends the tree's leaf items to `items`; returns the page's first key; records leaf depths. */
  const walk = (pageId: number, depth: number, items: LeafItem[], leafDepths: Set<number>): Buffer | null => {
    const header = file.subarray(pageId * pageSizeBytes, pageId * pageSizeBytes + 16);
    check(Number(header.readBigUInt64LE(0)) === pageId, `page ${pageId}: header names page ${header.readBigUInt64LE(0)}`);
    const flags = header.readUInt16LE(8);
    const count = header.readUInt16LE(10);
    const page = reference(pageId, 1 + header.readUInt32LE(12));
    const element = (i: number, keyAt: number, keyBytes: number, valueBytes: number) => {
      const at = 16 + i * 16;
      const start = at + keyAt;
      check(start + keyBytes + valueBytes <= page.length, `page ${pageId} element ${i}: runs past its page`);
      check(start >= 16 + count * 16, `page ${pageId} element ${i}: data among the elements`);
      return { key: page.subarray(start, start + keyBytes), value: page.subarray(start + keyBytes, start + keyBytes + valueBytes) };
    };
    if (flags === 0x01) {
      check(count > 0, `branch page ${pageId} is empty`);
      let previous: Buffer | null = null;
      for (let i = 0; i < count; i++) {
        const at = 16 + i * 16;
        const { key } = element(i, page.readUInt32LE(at), page.readUInt32LE(at + 4), 0);
        check(previous === null || Buffer.compare(previous, key) < 0, `branch page ${pageId}: keys not ascending`);
        previous = key;
        const childFirstKey = walk(Number(page.readBigUInt64LE(at + 8)), depth + 1, items, leafDepths);
        check(childFirstKey !== null && childFirstKey.equals(key), `branch page ${pageId} element ${i}: not its child’s first key`);
      }
      return page.subarray(16 + page.readUInt32LE(16), 16 + page.readUInt32LE(16) + page.readUInt32LE(20));
    }
    check(flags === 0x02, `page ${pageId}: flags 0x${flags.toString(16)}, neither branch nor leaf`);
    leafDepths.add(depth);
    for (let i = 0; i < count; i++) {
      const at = 16 + i * 16;
      const { key, value } = element(i, page.readUInt32LE(at + 4), page.readUInt32LE(at + 8), page.readUInt32LE(at + 12));
      items.push({ flags: page.readUInt32LE(at), key, value });
    }
    return items.length > 0 && count > 0 ? items[items.length - count].key : null;
  };

  const readTree = (rootPageId: number): { items: LeafItem[]; depth: number } => {
    const items: LeafItem[] = [];
    const leafDepths = new Set<number>();
    walk(rootPageId, 1, items, leafDepths);
    check(leafDepths.size === 1, `leaves at depths ${[...leafDepths].join(', ')}`);
    for (let i = 1; i < items.length; i++) check(Buffer.compare(items[i - 1].key, items[i].key) < 0, `tree at page ${rootPageId}: keys ${i - 1} and ${i} not strictly ascending`);
    return { items, depth: [...leafDepths][0] };
  };

  const root = readTree(meta.rootPageId);
  const buckets = root.items.map(({ flags, key, value }) => {
    expect(flags, 'bucket element flag').toBe(0x01);
    expect(value.length, 'bucket header only (never inline)').toBe(16);
    expect(value.readBigUInt64LE(8), 'bucket sequence').toBe(0n);
    const tree = readTree(Number(value.readBigUInt64LE(0)));
    for (const item of tree.items) check(item.flags === 0, `bucket ${key.toString('hex')}: an element flagged as a nested bucket`);
    return { name: Buffer.from(key), entries: tree.items.map((item): Entry => [Buffer.from(item.key), Buffer.from(item.value)]), depth: tree.depth };
  });
  references.forEach((count, pageId) => check(count === 1, `page ${pageId}: ${count === 0 ? 'unreachable' : `referenced ${count} times`}`));
  return {
    pageSizeBytes,
    highWaterPageId: meta.highWaterPageId,
    maxDepth: Math.max(0, ...buckets.map((b) => b.depth)),
    rootBucketDepth: root.depth,
    buckets,
    pages: pages.sort((a, b) => a.pageId - b.pageId),
  };
}

// ---- etcdctl snapshot status, and what it should say ----

interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

const CRC32C_TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let bit = 0; bit < 8; bit++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  return c >>> 0;
});

/** Running CRC-32C (Castagnoli), the hash `snapshot status` prints. */
class Crc32c {
  private state = 0xffffffff;
  update(bytes: Buffer): void {
    for (const byte of bytes) this.state = CRC32C_TABLE[(this.state ^ byte) & 0xff] ^ (this.state >>> 8);
  }
  digest(): number {
    return (this.state ^ 0xffffffff) >>> 0;
  }
}

/** What `snapshot status` reports: a CRC over every bucket name and its keys and values in order. */
function expectedStatus(specs: BucketSpec[], totalSizeBytes: number): SnapshotStatus {
  const crc = new Crc32c();
  let totalKey = 0;
  let revision = 0;
  for (const spec of [...specs].sort((a, b) => Buffer.compare(a.name, b.name))) {
    crc.update(spec.name);
    for (const [key, value] of spec.entries) {
      crc.update(key);
      crc.update(value);
      totalKey++;
      if (spec.name.toString() === 'key') revision = Number(key.readBigUInt64BE(0));
    }
  }
  return { hash: crc.digest(), revision, totalKey, totalSize: totalSizeBytes };
}

let tempDir = '';
let fileCounter = 0;

beforeAll(() => {
  tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bbolt-writer-'));
});

afterAll(() => {
  fs.rmSync(tempDir, { recursive: true, force: true });
});

function runEtcdctl(args: string[]): { stdout: string; stderr: string } {
  const run = spawnSync('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 30_000 });
  if (run.error) throw new Error(`etcdctl did not run (Debian's etcd-client provides it): ${run.error.message}`);
  if (run.status !== 0) throw new Error(`etcdctl ${args.join(' ')} failed (${run.status}): ${run.stderr}`);
  return { stdout: run.stdout, stderr: run.stderr };
}

function writeTempFile(bytes: Buffer): string {
  const file = path.join(tempDir, `db-${fileCounter++}`);
  fs.writeFileSync(file, bytes);
  return file;
}

function etcdctlStatus(bytes: Buffer): SnapshotStatus {
  return JSON.parse(runEtcdctl(['snapshot', 'status', writeTempFile(bytes), '-w', 'json']).stdout) as SnapshotStatus;
}

/** Encodes `specs`, then checks the file with etcdctl and the reader; returns the reader's view. */
async function encodeAndVerify(specs: BucketSpec[], options?: BboltWriteOptions): Promise<ReadBack & { chunks: Buffer[] }> {
  const { bytes, chunks } = await encode(specs, options);
  const pageSizeBytes = options?.pageSize ?? 4096;
  expect(bytes.length % pageSizeBytes).toBe(0);
  expect(etcdctlStatus(bytes)).toEqual(expectedStatus(specs, bytes.length));
  const read = readBack(bytes);
  expect(read.pageSizeBytes).toBe(pageSizeBytes);
  expect(read.highWaterPageId * pageSizeBytes).toBe(bytes.length);
  const bySortedName = [...specs].sort((a, b) => Buffer.compare(a.name, b.name));
  expect(read.buckets.map((b) => b.name.toString('hex'))).toEqual(bySortedName.map((b) => b.name.toString('hex')));
  read.buckets.forEach((b, i) => {
    expect(b.entries.length, `entries of ${b.name}`).toBe(bySortedName[i].entries.length);
    expect(b.entries.every(([k, v], j) => k.equals(bySortedName[i].entries[j][0]) && v.equals(bySortedName[i].entries[j][1])), `entries of ${b.name} round-trip`).toBe(true);
  });
  return { ...read, chunks };
}

/** Chunks hold whole pages of at most 1 MiB; a page only spans chunks if it is larger than 1 MiB. */
function expectChunksPageAligned(chunks: Buffer[], read: ReadBack): void {
  const bigPages = read.pages.filter((p) => p.spanPages * read.pageSizeBytes > MIB);
  const insideBigPage = (offset: number) =>
    bigPages.some((p) => offset > p.pageId * read.pageSizeBytes && offset < (p.pageId + p.spanPages) * read.pageSizeBytes);
  let offset = 0;
  for (const chunk of chunks) {
    const start = offset;
    offset += chunk.length;
    expect(chunk.length).toBeGreaterThan(0);
    if (insideBigPage(start) || insideBigPage(offset)) continue;
    expect(start % read.pageSizeBytes, 'chunk starts on a page').toBe(0);
    expect(offset % read.pageSizeBytes, 'chunk ends on a page').toBe(0);
    const holdsBigPage = bigPages.some((p) => p.pageId * read.pageSizeBytes === start);
    if (!holdsBigPage) expect(chunk.length, 'chunk size').toBeLessThanOrEqual(MIB);
  }
}

/** mulberry32: a small seeded generator of floats in [0, 1). */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface BucketShape {
  seed: number;
  entryCount: number;
  longKeyPercent: number;
  bigValuePermille: number;
}

/**
 * Buckets drawn from their shapes: random names (never etcd's "key", whose keys `snapshot status`
 * decodes as revisions), random keys of 1–24 bytes (some of 1000–6000), values mostly under 120
 * bytes, some of 2–70 KB, a few of 0.3–1.2 MB.
 */
function bucketsFromShapes(shapes: BucketShape[]): BucketSpec[] {
  const byName = new Map<string, BucketSpec>();
  for (const shape of shapes) {
    const random = seededRandom(shape.seed);
    const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
    const bytes = (length: number) => Buffer.from(Array.from({ length }, () => int(0, 255)));
    const name = bytes(int(1, 12));
    if (name.toString('latin1') === 'key' || byName.has(name.toString('hex'))) continue;
    const entries = new Map<string, Entry>();
    for (let i = 0; i < shape.entryCount; i++) {
      const key = bytes(random() * 100 < shape.longKeyPercent ? int(1000, 6000) : int(1, 24));
      const roll = random() * 1000;
      const valueBytes = roll < shape.bigValuePermille / 5 ? int(300_000, 1_200_000) : roll < shape.bigValuePermille ? int(2000, 70_000) : int(0, 120);
      entries.set(key.toString('hex'), [key, Buffer.alloc(valueBytes, int(0, 255))]);
    }
    byName.set(name.toString('hex'), bucket(name, sortedEntries([...entries.values()])));
  }
  return [...byName.values()];
}

// ---- Tests ----

describe('encodeBbolt', () => {
  it('writes a database with no buckets (4 pages) that bbolt opens, at 1 KiB and 4 KiB pages', async () => {
    for (const pageSize of [1024, 4096]) {
      const read = await encodeAndVerify([], { pageSize });
      expect(read.highWaterPageId).toBe(4);
      expect(read.buckets).toEqual([]);
    }
  });

  it('writes empty buckets, alone and among others', async () => {
    await encodeAndVerify([bucket('empty', [])]);
    const read = await encodeAndVerify([bucket('c', []), bucket('b', [[Buffer.from('k1'), Buffer.from('v1')], [Buffer.from('k2'), Buffer.alloc(0)]]), bucket('a', [])]);
    expect(read.buckets.map((b) => b.entries.length)).toEqual([0, 2, 0]);
  });

  it('writes a few buckets given out of order, etcd’s key bucket among them (revision from its last key)', async () => {
    const keyBucket = bucket(
      'key',
      Array.from({ length: 30 }, (_, i): Entry => [revisionKey(2 + i, i % 3), Buffer.from(`kv-${i}`)]),
    );
    const specs = [
      bucket('meta', [[Buffer.from('consistent_index'), Buffer.from('0000000000000020', 'hex')]]),
      keyBucket,
      bucket('lease', [[Buffer.from([0, 0, 0, 0, 0, 0, 0, 7]), Buffer.from('lease')]]),
      bucket('auth', [[Buffer.from('authEnabled'), Buffer.from([0])]]),
      bucket(Buffer.from([0xff, 0x00, 0x01]), [[Buffer.from([0x00]), Buffer.from([0xff])]]),
    ];
    const read = await encodeAndVerify(specs);
    expect(read.buckets.map((b) => b.name.toString('latin1'))).toEqual(['auth', 'key', 'lease', 'meta', '\xff\x00\x01']);
    expect(etcdctlStatus((await encode(specs)).bytes).revision).toBe(31);
  });

  it('stacks branch levels over 50,000 small entries (4 KiB and 1 KiB pages)', async () => {
    const many = Array.from({ length: 50_000 }, (_, i): Entry => [numberedKey(i), Buffer.from(`value-${i % 997}`)]);
    const read = await encodeAndVerify([bucket('many', many), bucket('few', [[Buffer.from('x'), Buffer.from('y')]])]);
    expect(read.maxDepth).toBeGreaterThanOrEqual(3); // leaves + at least two branch levels
    expectChunksPageAligned(read.chunks, read);
    expect(read.chunks.length).toBeGreaterThan(1);

    const small = await encodeAndVerify([bucket('many', many)], { pageSize: 1024 });
    expect(small.maxDepth).toBeGreaterThanOrEqual(4);
  });

  it('overflows pages for values larger than a page (20 KB, 1 MB) among small ones, with keys of many lengths', async () => {
    const entries: Entry[] = [];
    for (let length = 1; length <= 300; length += 7) entries.push([Buffer.alloc(length, 0x61), Buffer.from(`small-${length}`)]);
    entries.push([Buffer.from('big-20k'), Buffer.alloc(20_000, 0x20)]);
    entries.push([Buffer.from('big-1m'), Buffer.alloc(MIB, 0x31)]);
    entries.push([Buffer.from('big-1m-b'), Buffer.alloc(MIB + 12_345, 0x32)]);
    entries.push([Buffer.from('between'), Buffer.from('x')]);
    entries.push([Buffer.from('exact-page'), Buffer.alloc(4096 - 16 - 16 - 'exact-page'.length, 0x33)]); // fills one page exactly
    entries.push([Buffer.from('one-over'), Buffer.alloc(4096 - 16 - 16 - 'one-over'.length + 1, 0x34)]);
    entries.push([Buffer.alloc(32_768, 0x7a), Buffer.from('longest key bbolt allows')]);
    entries.push([Buffer.from('zz'), Buffer.alloc(0)]);
    const specs = [bucket('values', sortedEntries(entries)), bucket('other', [[Buffer.from('k'), Buffer.alloc(50_000, 7)]])];
    const read = await encodeAndVerify(specs);
    expect(read.pages.some((p) => p.spanPages * 4096 > MIB)).toBe(true);
    expectChunksPageAligned(read.chunks, read);

    const withTrailerOfSha256 = (bytes: Buffer) => Buffer.concat([bytes, createHash('sha256').update(bytes).digest()]);
    const { bytes } = await encode(specs);
    expect(etcdctlStatus(withTrailerOfSha256(bytes))).toEqual(expectedStatus(specs, bytes.length));
  });

  it('keeps narrowing to a root when first keys are longer than half a page (overflowing branch pages)', async () => {
    const entries = Array.from({ length: 120 }, (_, i): Entry => [Buffer.concat([numberedKey(i, 4), Buffer.alloc(2100 + (i % 5) * 1500, 0x6b)]), Buffer.from([i])]);
    const read = await encodeAndVerify([bucket('long-keys', entries)]);
    expect(read.maxDepth).toBeGreaterThanOrEqual(3);
    expect(read.pages.some((p) => p.flags === 0x01 && p.spanPages > 1)).toBe(true);
  });

  it('gives the root bucket branch pages when there are many buckets', async () => {
    const specs = Array.from({ length: 700 }, (_, i) => bucket(`bucket-name-number-${String(i).padStart(5, '0')}`, i % 3 === 0 ? [] : [[Buffer.from('k'), Buffer.from(`v${i}`)]]));
    const read = await encodeAndVerify(specs);
    expect(read.rootBucketDepth).toBeGreaterThanOrEqual(2);
  });

  it('writes every supported page size, 1 KiB to 64 KiB', async () => {
    const entries = Array.from({ length: 3000 }, (_, i): Entry => [numberedKey(i), Buffer.alloc(i % 40, i & 0xff)]);
    entries.push([Buffer.from('z-large'), Buffer.alloc(100_000, 1)]);
    for (const pageSize of [1024, 2048, 4096, 8192, 16_384, 32_768, 65_536]) {
      await encodeAndVerify([bucket('b', entries), bucket('e', [])], { pageSize });
    }
  });

  it('is opened and written to by etcd: `etcdctl snapshot restore` checks the sha256 trailer and updates the file through bbolt', async () => {
    const specs = [
      bucket('key', Array.from({ length: 50 }, (_, i): Entry => [revisionKey(2 + i), mvccKeyValue(`key-${i}`, `value-${i}`, 2 + i)])),
      bucket('meta', [[Buffer.from('consistent_index'), Buffer.alloc(8)]]),
      bucket('members', []),
    ];
    const { bytes } = await encode(specs);
    const snapshot = writeTempFile(Buffer.concat([bytes, createHash('sha256').update(bytes).digest()]));
    const dataDir = path.join(tempDir, `restored-${fileCounter++}`);
    runEtcdctl(['snapshot', 'restore', snapshot, '--data-dir', dataDir]);
    const restored = etcdctlStatus(fs.readFileSync(path.join(dataDir, 'member', 'snap', 'db')));
    expect([restored.revision, restored.totalKey >= 51]).toEqual([51, true]);
  });

  describe('refuses bad input', () => {
    const k = (s: string) => Buffer.from(s);

    it('keys not strictly ascending', async () => {
      await expect(encode([bucket('b', [[k('a'), k('1')], [k('a'), k('2')]])])).rejects.toThrow(/bucket "b", entry 1: keys not strictly ascending/);
      await expect(encode([bucket('b', [[k('b'), k('1')], [k('a'), k('2')]])])).rejects.toThrow(/strictly ascending/);
    });

    it('repeated, empty or over-long bucket names; empty or over-long keys', async () => {
      await expect(encode([bucket('same', []), bucket('other', []), bucket('same', [])])).rejects.toThrow(/bucket "same" is given twice/);
      await expect(encode([bucket('', [])])).rejects.toThrow(/bucket name is empty/);
      await expect(encode([bucket(Buffer.alloc(32_769, 0x61), [])])).rejects.toThrow(/exceeds bbolt's 32768/);
      await expect(encode([bucket('b', [[Buffer.alloc(0), k('v')]])])).rejects.toThrow(/empty key/);
      await expect(encode([bucket('b', [[Buffer.alloc(32_769, 0x61), k('v')]])])).rejects.toThrow(/key of 32769 bytes/);
    });

    it('page sizes that are not a power of two from 1 KiB to 64 KiB', async () => {
      for (const pageSize of [512, 3000, 131_072, 0, 4096.5]) {
        await expect(encode([], { pageSize })).rejects.toThrow(/page size/);
      }
    });

    it('entries that differ between the layout pass and the write pass', async () => {
      const base = Array.from({ length: 500 }, (_, i): Entry => [numberedKey(i), Buffer.from('value')]);
      const cases: Array<[string, (pass: number) => Entry[], RegExp]> = [
        ['one more entry', (pass) => (pass === 0 ? base : [...base, [k('zzz'), k('v')]]), /yielded different entries|grew in the write pass/],
        ['one fewer entry', (pass) => (pass === 0 ? base : base.slice(1)), /yielded different entries/],
        ['a value one byte longer, same page layout', (pass) => (pass === 0 ? base : base.map(([key, v], i): Entry => [key, i === 3 ? Buffer.concat([v, k('!')]) : v])), /yielded different entries/],
        [
          'two value sizes swapped, same totals',
          (pass) => base.map(([key], i): Entry => [key, Buffer.alloc(i === 1 ? (pass === 0 ? 3 : 9) : i === 2 ? (pass === 0 ? 9 : 3) : 5)]),
          /yielded different entries/,
        ],
        ['out of order only in the write pass', (pass) => (pass === 0 ? base : [...base].reverse()), /strictly ascending/],
      ];
      for (const [what, perPass, error] of cases) {
        await expect(encodeSources([sourcePerPass('b', perPass), sourcePerPass('c', () => base)]), what).rejects.toThrow(error);
      }
    });
  });

  // The property draws only each bucket's shape (a seed and sizes); the bytes come from the seed. So
  // a failure prints a few numbers rather than megabytes of keys, and shrinking (fewer buckets, fewer
  // entries) stays quick.
  it('round-trips random bucket sets through etcdctl and the reader (seeded property)', async () => {
    const shapeArb = fc.record({
      seed: fc.nat(),
      entryCount: fc.oneof(fc.nat(20), fc.nat(1500)),
      longKeyPercent: fc.constantFrom(0, 0, 1, 5),
      bigValuePermille: fc.constantFrom(0, 5, 30),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(shapeArb, { maxLength: 5 }), fc.constantFrom(1024, 4096, 16_384), async (shapes, pageSize) => {
        const read = await encodeAndVerify(bucketsFromShapes(shapes), { pageSize });
        expectChunksPageAligned(read.chunks, read);
      }),
      { seed: 0x5eed_b017, numRuns: 40 },
    );
  });
});

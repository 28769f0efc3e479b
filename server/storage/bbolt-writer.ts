// Writes a bbolt database file (go.etcd.io/bbolt): the B+tree file behind etcd's backend and what
// `etcdctl snapshot save` produces. Pure: buckets of sorted entries in, the file's bytes out, in
// chunks, with memory of the order of one page per tree level — never the whole data set.
//
// The format: bbolt-format.ts.
//
// The file this writes, page by page:
//   0, 1   metas (txid 1 and 2: bbolt opens the valid one with the higher txid, so page 1)
//   2      the freelist, empty: every page of the file is in use
//   3…     each bucket's tree in ascending name order, then the root bucket's tree (one element per
//          bucket: name → {its root pgid, 0}); within a tree, pages in post-order (a branch page right
//          after its last child, the tree's root last), every leaf at the same depth.
// bbolt finds pages by id only, so file order is free; post-order lets each tree be built in one
// streaming pass. The metas come first yet name the root bucket's root page and the high-water mark,
// which depend on every tree's size, so encodeBbolt reads every bucket twice: a layout pass that
// keeps only sizes, then the write pass, which must see the same entries.
//
// No inline buckets (an empty bucket gets an empty root leaf page): valid, just not what bbolt itself
// writes for small buckets. Pages are filled as full as they go; bbolt rebalances on later writes.

import {
  BBOLT_FORMAT_VERSION,
  BBOLT_MAGIC,
  BUCKET_HEADER_BYTES,
  ELEMENT_BYTES,
  fnv1a64,
  LEAF_FLAG_BUCKET,
  META_BYTES,
  META_CHECKSUMMED_BYTES,
  PAGE_FLAG_BRANCH,
  PAGE_FLAG_FREELIST,
  PAGE_FLAG_LEAF,
  PAGE_FLAG_META,
  PAGE_HEADER_BYTES,
} from './bbolt-format.ts';

export interface BboltBucketSource {
  /** The bucket's name (a top-level bucket; no nested buckets needed). */
  name: Buffer;
  /**
   * The bucket's entries in strictly ascending byte order of key (Buffer.compare). Called twice by
   * encodeBbolt (a layout pass, then the write pass): it must yield the same entries both times.
   * Yielded buffers are kept until their page is written, so they must not be reused or modified.
   */
  entries(): AsyncIterable<[Buffer, Buffer]>;
}

export interface BboltWriteOptions {
  /** A power of two from 1 KiB to 64 KiB; default 4096. */
  pageSize?: number;
}

const DEFAULT_PAGE_SIZE_BYTES = 4096;
// bbolt reads the first 4 KiB of a file to find its page size and refuses a shorter file ("invalid
// database"); our smallest file is 4 pages, so pages below 1 KiB could make one bbolt cannot open.
// bbolt's default page size is the OS's, 64 KiB at most (ppc64).
const MIN_PAGE_SIZE_BYTES = 1024;
const MAX_PAGE_SIZE_BYTES = 64 * 1024;
const CHUNK_TARGET_BYTES = 1024 * 1024;
/** Segments of a page larger than a chunk that are passed on as they are, uncopied. */
const PASS_THROUGH_MIN_BYTES = 64 * 1024;

/** A page's element count is a u16. */
const MAX_ELEMENTS_PER_PAGE = 0xffff;
// bbolt's own limits on Put: keeping to them keeps the file one bbolt itself could have written.
const MAX_KEY_BYTES = 32768;
const MAX_VALUE_BYTES = 2 ** 31 - 2;


const META_TXIDS: ReadonlyArray<[pageId: number, txid: number]> = [
  [0, 1],
  [1, 2],
];
const FREELIST_PAGE_ID = 2;
/** What errors call the root bucket (the bucket of buckets), which has no name. */
const ROOT_BUCKET_LABEL = Buffer.from('(root)');
const FIRST_TREE_PAGE_ID = 3;
/**
 * A leaf page takes one element however large (it then overflows). A branch page takes at least two:
 * with one, first keys longer than half a page would give every branch page a single child and the
 * levels would never narrow to a root.
 */
const MIN_LEAF_ELEMENTS = 1;
const MIN_BRANCH_ELEMENTS = 2;

/**
 * The file's bytes, in order, in chunks of about 1 MiB (pages are never split across chunks unless a
 * single page is larger). Input errors found in the layout pass throw before the first chunk; entries
 * that change in the write pass throw mid-stream, so a consumer must discard what it got on an error.
 */
export async function* encodeBbolt(buckets: BboltBucketSource[], options: BboltWriteOptions = {}): AsyncGenerator<Buffer> {
  const pageSizeBytes = checkPageSize(options.pageSize ?? DEFAULT_PAGE_SIZE_BYTES);
  const sorted = sortBuckets(buckets);
  const layout = await planLayout(sorted, pageSizeBytes);
  const output = new ChunkedOutput(pageSizeBytes);

  for (const [pageId, txid] of META_TXIDS) yield* output.writePage([encodeMetaPage(pageId, txid, layout, pageSizeBytes)], 1);
  yield* output.writePage([encodePageHeader(FREELIST_PAGE_ID, PAGE_FLAG_FREELIST, 0, 1)], 1);
  for (let i = 0; i < sorted.length; i++) yield* writeBucketTree(sorted[i], layout.buckets[i], pageSizeBytes, output);
  yield* writeRootBucketTree(sorted, layout, pageSizeBytes, output);
  yield* output.flush();
}

// ---- Checks on the input ----

function checkPageSize(pageSizeBytes: number): number {
  const isPowerOfTwo = Number.isInteger(pageSizeBytes) && pageSizeBytes > 0 && (pageSizeBytes & (pageSizeBytes - 1)) === 0;
  if (!isPowerOfTwo || pageSizeBytes < MIN_PAGE_SIZE_BYTES || pageSizeBytes > MAX_PAGE_SIZE_BYTES) {
    throw new Error(`bbolt writer: page size ${pageSizeBytes} is not a power of two from ${MIN_PAGE_SIZE_BYTES} to ${MAX_PAGE_SIZE_BYTES} bytes`);
  }
  return pageSizeBytes;
}

/** The buckets in ascending name order, which is the root bucket's key order. */
function sortBuckets(buckets: BboltBucketSource[]): BboltBucketSource[] {
  const sorted = [...buckets].sort((a, b) => Buffer.compare(a.name, b.name));
  for (let i = 0; i < sorted.length; i++) {
    const name = sorted[i].name;
    if (name.length === 0) throw new Error('bbolt writer: a bucket name is empty (bbolt requires one)');
    if (name.length > MAX_KEY_BYTES) throw new Error(`bbolt writer: bucket name of ${name.length} bytes exceeds bbolt's ${MAX_KEY_BYTES}`);
    if (i > 0 && name.equals(sorted[i - 1].name)) throw new Error(`bbolt writer: bucket ${describe(name)} is given twice`);
  }
  return sorted;
}

/** A name or key for an error message: as text if printable ASCII, else hex. */
function describe(bytes: Buffer): string {
  const shown = bytes.subarray(0, 64);
  const printable = shown.every((b) => b >= 0x20 && b < 0x7f);
  const text = printable ? JSON.stringify(shown.toString('latin1')) : `0x${shown.toString('hex')}`;
  return bytes.length > shown.length ? `${text}…` : text;
}

/**
 * What a bucket's entries looked like in one pass: checked for order and bbolt's limits as they come,
 * summarised so the write pass can prove it saw what the layout pass planned for.
 */
class EntryTally {
  entryCount = 0;
  keyBytes = 0;
  valueBytes = 0;
  /** FNV-1a (32-bit) over every entry's key and value length: catches sizes that moved between entries. */
  sizesFingerprint = 0x811c9dc5;
  private readonly bucketName: Buffer;
  private previousKey: Buffer | null = null;

  constructor(bucketName: Buffer) {
    this.bucketName = bucketName;
  }

  add(key: Buffer, value: Buffer): void {
    if (key.length === 0) throw this.error('empty key (bbolt requires one)');
    if (key.length > MAX_KEY_BYTES) throw this.error(`key of ${key.length} bytes exceeds bbolt's ${MAX_KEY_BYTES}`);
    if (value.length > MAX_VALUE_BYTES) throw this.error(`value of ${value.length} bytes exceeds bbolt's ${MAX_VALUE_BYTES}`);
    if (this.previousKey !== null && Buffer.compare(this.previousKey, key) >= 0) {
      throw this.error(`keys not strictly ascending (${describe(key)} after ${describe(this.previousKey)})`);
    }
    this.previousKey = key;
    this.entryCount++;
    this.keyBytes += key.length;
    this.valueBytes += value.length;
    this.sizesFingerprint = Math.imul(this.sizesFingerprint ^ key.length, 0x01000193) >>> 0;
    this.sizesFingerprint = Math.imul(this.sizesFingerprint ^ value.length, 0x01000193) >>> 0;
  }

  /** An error about the entry being added (built only when thrown: this runs once per entry). */
  private error(problem: string): Error {
    return new Error(`bbolt writer: bucket ${describe(this.bucketName)}, entry ${this.entryCount}: ${problem}`);
  }

  /** Throws unless `planned` (the layout pass's tally) saw the same number and sizes of entries. */
  expectSameAs(planned: EntryTally): void {
    const same =
      this.entryCount === planned.entryCount &&
      this.keyBytes === planned.keyBytes &&
      this.valueBytes === planned.valueBytes &&
      this.sizesFingerprint === planned.sizesFingerprint;
    if (!same) {
      throw new Error(
        `bbolt writer: bucket ${describe(this.bucketName)} yielded different entries in the write pass than in the layout pass ` +
          `(${this.entryCount} entries of ${this.keyBytes}+${this.valueBytes} key+value bytes, ` +
          `planned ${planned.entryCount} of ${planned.keyBytes}+${planned.valueBytes}, or the same totals in other sizes)`,
      );
    }
  }
}

// ---- Packing a tree into pages ----

interface LeafElement {
  flags: number;
  key: Buffer;
  value: Buffer;
}

interface BranchElement {
  key: Buffer;
  childPageId: number;
}

type TreePage =
  | { kind: 'leaf'; pageId: number; spanPages: number; elements: LeafElement[] }
  | { kind: 'branch'; pageId: number; spanPages: number; elements: BranchElement[] };

/** Pages, header included, that `elementCount` elements with `payloadBytes` of keys and values take. */
function pagesSpanned(elementCount: number, payloadBytes: number, pageSizeBytes: number): number {
  return Math.ceil((PAGE_HEADER_BYTES + elementCount * ELEMENT_BYTES + payloadBytes) / pageSizeBytes);
}

/** The elements of the page being filled on one level of a tree. */
class PendingPage<Element> {
  elements: Element[] = [];
  payloadBytes = 0;
  private readonly minElements: number;

  constructor(minElements: number) {
    this.minElements = minElements;
  }

  /** Whether an element with `payloadBytes` of key and value goes on this page rather than starting the next. */
  accepts(payloadBytes: number, pageSizeBytes: number): boolean {
    const count = this.elements.length;
    if (count < this.minElements) return true;
    if (count >= MAX_ELEMENTS_PER_PAGE) return false;
    return PAGE_HEADER_BYTES + (count + 1) * ELEMENT_BYTES + this.payloadBytes + payloadBytes <= pageSizeBytes;
  }

  add(element: Element, payloadBytes: number): void {
    this.elements.push(element);
    this.payloadBytes += payloadBytes;
  }

  /** Empties the page; returns what it held. */
  take(): { elements: Element[]; payloadBytes: number } {
    const taken = { elements: this.elements, payloadBytes: this.payloadBytes };
    this.elements = [];
    this.payloadBytes = 0;
    return taken;
  }
}

/**
 * Builds one bucket's tree from its entries in key order, streaming: a page is closed (and given the
 * next page id) as soon as the next element does not fit, and its first key goes up to the level
 * above at once. Closed pages are appended to the caller's `out` in page-id order, which is the order
 * they must be written in. Memory: one pending page per level.
 */
class TreeBuilder {
  private readonly pageSizeBytes: number;
  private readonly leaves = new PendingPage<LeafElement>(MIN_LEAF_ELEMENTS);
  /** branchLevels[0] is the level just above the leaves. */
  private readonly branchLevels: PendingPage<BranchElement>[] = [];
  private nextPageIdValue: number;

  constructor(pageSizeBytes: number, firstPageId: number) {
    this.pageSizeBytes = pageSizeBytes;
    this.nextPageIdValue = firstPageId;
  }

  /** The id after the last page closed so far. */
  get nextPageId(): number {
    return this.nextPageIdValue;
  }

  addLeafElement(element: LeafElement, out: TreePage[]): void {
    const payloadBytes = element.key.length + element.value.length;
    if (!this.leaves.accepts(payloadBytes, this.pageSizeBytes)) this.addBranchElement(0, this.closeLeafPage(out), out);
    this.leaves.add(element, payloadBytes);
  }

  /** Closes every pending page, bottom-up; returns the root page's id (the last page closed). */
  finish(out: TreePage[]): number {
    const lastLeaf = this.closeLeafPage(out);
    // Nothing went up yet: the leaf page is the whole tree (an empty bucket's too).
    if (this.branchLevels.length === 0) return lastLeaf.childPageId;
    this.addBranchElement(0, lastLeaf, out);
    for (let depth = 0; ; depth++) {
      // The top level has never closed a page (closing one creates a level above): its pending page is the root.
      const isTop = depth === this.branchLevels.length - 1;
      const closed = this.closeBranchPage(depth, out);
      if (isTop) return closed.childPageId;
      this.addBranchElement(depth + 1, closed, out);
    }
  }

  private addBranchElement(depth: number, element: BranchElement, out: TreePage[]): void {
    if (depth === this.branchLevels.length) this.branchLevels.push(new PendingPage<BranchElement>(MIN_BRANCH_ELEMENTS));
    const level = this.branchLevels[depth];
    if (!level.accepts(element.key.length, this.pageSizeBytes)) this.addBranchElement(depth + 1, this.closeBranchPage(depth, out), out);
    level.add(element, element.key.length);
  }

  /** Closes the pending leaf page; returns the element that points at it from the level above. */
  private closeLeafPage(out: TreePage[]): BranchElement {
    const { elements, payloadBytes } = this.leaves.take();
    const spanPages = pagesSpanned(elements.length, payloadBytes, this.pageSizeBytes);
    const pageId = this.allocate(spanPages);
    out.push({ kind: 'leaf', pageId, spanPages, elements });
    // An empty leaf page is only ever a whole (empty) tree, whose key nobody asks for.
    return { key: elements.length > 0 ? elements[0].key : Buffer.alloc(0), childPageId: pageId };
  }

  private closeBranchPage(depth: number, out: TreePage[]): BranchElement {
    const { elements, payloadBytes } = this.branchLevels[depth].take();
    const spanPages = pagesSpanned(elements.length, payloadBytes, this.pageSizeBytes);
    const pageId = this.allocate(spanPages);
    out.push({ kind: 'branch', pageId, spanPages, elements });
    return { key: elements[0].key, childPageId: pageId };
  }

  private allocate(spanPages: number): number {
    const pageId = this.nextPageIdValue;
    this.nextPageIdValue += spanPages;
    return pageId;
  }
}

// ---- Pass 1: the layout ----

interface TreeLayout {
  firstPageId: number;
  /** The id after the tree's last page. */
  endPageId: number;
  rootPageId: number;
}

interface BucketLayout extends TreeLayout {
  tally: EntryTally;
}

interface FileLayout {
  buckets: BucketLayout[];
  rootBucket: TreeLayout;
  /** The page count of the file: meta.pgid. */
  highWaterPageId: number;
}

async function planLayout(sorted: BboltBucketSource[], pageSizeBytes: number): Promise<FileLayout> {
  const buckets: BucketLayout[] = [];
  let nextPageId = FIRST_TREE_PAGE_ID;
  for (const source of sorted) {
    const planned = await planBucket(source, nextPageId, pageSizeBytes);
    buckets.push(planned);
    nextPageId = planned.endPageId;
  }
  const rootBucket = planRootBucket(sorted, buckets, nextPageId, pageSizeBytes);
  return { buckets, rootBucket, highWaterPageId: rootBucket.endPageId };
}

async function planBucket(source: BboltBucketSource, firstPageId: number, pageSizeBytes: number): Promise<BucketLayout> {
  const builder = new TreeBuilder(pageSizeBytes, firstPageId);
  const tally = new EntryTally(source.name);
  const closed: TreePage[] = [];
  for await (const [key, value] of source.entries()) {
    tally.add(key, value);
    builder.addLeafElement({ flags: 0, key, value }, closed);
    closed.length = 0; // only the page ids matter here
  }
  const rootPageId = builder.finish(closed);
  return { firstPageId, endPageId: builder.nextPageId, rootPageId, tally };
}

function planRootBucket(sorted: BboltBucketSource[], buckets: BucketLayout[], firstPageId: number, pageSizeBytes: number): TreeLayout {
  const builder = new TreeBuilder(pageSizeBytes, firstPageId);
  const closed: TreePage[] = [];
  for (const element of rootBucketElements(sorted, buckets)) {
    builder.addLeafElement(element, closed);
    closed.length = 0;
  }
  const rootPageId = builder.finish(closed);
  return { firstPageId, endPageId: builder.nextPageId, rootPageId };
}

/** The root bucket's entries: each bucket's name → its header {root pgid, sequence 0}. */
function* rootBucketElements(sorted: BboltBucketSource[], buckets: BucketLayout[]): Generator<LeafElement> {
  for (let i = 0; i < sorted.length; i++) {
    const header = Buffer.alloc(BUCKET_HEADER_BYTES);
    writeU64(header, 0, buckets[i].rootPageId);
    yield { flags: LEAF_FLAG_BUCKET, key: sorted[i].name, value: header };
  }
}

// ---- Pass 2: the pages ----

async function* writeBucketTree(source: BboltBucketSource, planned: BucketLayout, pageSizeBytes: number, output: ChunkedOutput): AsyncGenerator<Buffer> {
  const builder = new TreeBuilder(pageSizeBytes, planned.firstPageId);
  const tally = new EntryTally(source.name);
  const closed: TreePage[] = [];
  for await (const [key, value] of source.entries()) {
    tally.add(key, value);
    builder.addLeafElement({ flags: 0, key, value }, closed);
    yield* writeTreePages(closed, planned, source.name, output);
  }
  const rootPageId = builder.finish(closed);
  yield* writeTreePages(closed, planned, source.name, output);
  tally.expectSameAs(planned.tally);
  if (rootPageId !== planned.rootPageId || builder.nextPageId !== planned.endPageId) {
    throw new Error(`bbolt writer: bucket ${describe(source.name)} laid out differently in the write pass than in the layout pass`);
  }
}

function* writeRootBucketTree(sorted: BboltBucketSource[], layout: FileLayout, pageSizeBytes: number, output: ChunkedOutput): Generator<Buffer> {
  const builder = new TreeBuilder(pageSizeBytes, layout.rootBucket.firstPageId);
  const closed: TreePage[] = [];
  for (const element of rootBucketElements(sorted, layout.buckets)) {
    builder.addLeafElement(element, closed);
    yield* writeTreePages(closed, layout.rootBucket, ROOT_BUCKET_LABEL, output);
  }
  builder.finish(closed);
  yield* writeTreePages(closed, layout.rootBucket, ROOT_BUCKET_LABEL, output);
}

/** Writes and empties `closed`, refusing pages past the planned end of their tree (the entries changed). */
function* writeTreePages(closed: TreePage[], planned: TreeLayout, bucketName: Buffer, output: ChunkedOutput): Generator<Buffer> {
  for (const page of closed) {
    if (page.pageId + page.spanPages > planned.endPageId) {
      throw new Error(`bbolt writer: bucket ${describe(bucketName)} grew in the write pass beyond the pages the layout pass planned`);
    }
    yield* output.writePage(page.kind === 'leaf' ? encodeLeafPage(page.pageId, page.spanPages, page.elements) : encodeBranchPage(page.pageId, page.spanPages, page.elements), page.spanPages);
  }
  closed.length = 0;
}

// ---- Page encodings ----

/** Writes a u64 as two u32 halves: page ids stay far below 2^53, so no BigInt is needed. */
function writeU64(buf: Buffer, offset: number, value: number): void {
  buf.writeUInt32LE(value % 2 ** 32, offset);
  buf.writeUInt32LE(Math.floor(value / 2 ** 32), offset + 4);
}

/** A buffer of `bytes` (at least the header) starting with a page header. */
function encodePageHeader(pageId: number, flags: number, elementCount: number, spanPages: number, bytes = PAGE_HEADER_BYTES): Buffer {
  const buf = Buffer.alloc(bytes);
  writeU64(buf, 0, pageId);
  buf.writeUInt16LE(flags, 8);
  buf.writeUInt16LE(elementCount, 10);
  buf.writeUInt32LE(spanPages - 1, 12);
  return buf;
}

function encodeMetaPage(pageId: number, txid: number, layout: FileLayout, pageSizeBytes: number): Buffer {
  const page = encodePageHeader(pageId, PAGE_FLAG_META, 0, 1, PAGE_HEADER_BYTES + META_BYTES);
  const meta = page.subarray(PAGE_HEADER_BYTES);
  meta.writeUInt32LE(BBOLT_MAGIC, 0);
  meta.writeUInt32LE(BBOLT_FORMAT_VERSION, 4);
  meta.writeUInt32LE(pageSizeBytes, 8);
  meta.writeUInt32LE(0, 12); // flags
  writeU64(meta, 16, layout.rootBucket.rootPageId);
  writeU64(meta, 24, 0); // the root bucket's sequence
  writeU64(meta, 32, FREELIST_PAGE_ID);
  writeU64(meta, 40, layout.highWaterPageId);
  writeU64(meta, 48, txid);
  meta.writeBigUInt64LE(fnv1a64(meta.subarray(0, META_CHECKSUMMED_BYTES)), META_CHECKSUMMED_BYTES);
  return page;
}


/** The page's bytes as segments (header and elements, then each key and value), without the zero padding. */
function encodeLeafPage(pageId: number, spanPages: number, elements: LeafElement[]): Buffer[] {
  const head = encodePageHeader(pageId, PAGE_FLAG_LEAF, elements.length, spanPages, PAGE_HEADER_BYTES + elements.length * ELEMENT_BYTES);
  const segments = [head];
  let dataOffset = head.length; // where the next key goes, from the page's start
  elements.forEach((element, i) => {
    const elementOffset = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
    head.writeUInt32LE(element.flags, elementOffset);
    head.writeUInt32LE(dataOffset - elementOffset, elementOffset + 4);
    head.writeUInt32LE(element.key.length, elementOffset + 8);
    head.writeUInt32LE(element.value.length, elementOffset + 12);
    segments.push(element.key, element.value);
    dataOffset += element.key.length + element.value.length;
  });
  return segments;
}

function encodeBranchPage(pageId: number, spanPages: number, elements: BranchElement[]): Buffer[] {
  const head = encodePageHeader(pageId, PAGE_FLAG_BRANCH, elements.length, spanPages, PAGE_HEADER_BYTES + elements.length * ELEMENT_BYTES);
  const segments = [head];
  let dataOffset = head.length;
  elements.forEach((element, i) => {
    const elementOffset = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
    head.writeUInt32LE(dataOffset - elementOffset, elementOffset);
    head.writeUInt32LE(element.key.length, elementOffset + 4);
    writeU64(head, elementOffset + 8, element.childPageId);
    segments.push(element.key);
    dataOffset += element.key.length;
  });
  return segments;
}

// ---- Output ----

/**
 * Gathers whole pages into chunks of at most CHUNK_TARGET_BYTES. A page larger than that (a big value's
 * overflow) is passed through as its own segments instead of being copied into one buffer.
 */
class ChunkedOutput {
  private readonly pageSizeBytes: number;
  private chunk: Buffer | null = null;
  private usedBytes = 0;

  constructor(pageSizeBytes: number) {
    this.pageSizeBytes = pageSizeBytes;
  }

  /** Appends a page given as `segments`, zero-padded to `spanPages` pages; returns the chunks now complete. */
  writePage(segments: Buffer[], spanPages: number): Buffer[] {
    const pageBytes = spanPages * this.pageSizeBytes;
    const ready = this.usedBytes + pageBytes > CHUNK_TARGET_BYTES ? this.flush() : [];
    if (pageBytes > CHUNK_TARGET_BYTES) return [...ready, ...passThrough(segments, pageBytes)];
    // Fresh chunks are zeroed, so skipping the padding leaves it zero.
    this.chunk ??= Buffer.alloc(CHUNK_TARGET_BYTES);
    let offset = this.usedBytes;
    for (const segment of segments) {
      this.chunk.set(segment, offset);
      offset += segment.length;
    }
    this.usedBytes += pageBytes;
    return ready;
  }

  /** The partly filled chunk, if any. */
  flush(): Buffer[] {
    if (this.chunk === null || this.usedBytes === 0) return [];
    const done = this.chunk.subarray(0, this.usedBytes);
    this.chunk = null;
    this.usedBytes = 0;
    return [done];
  }
}

/**
 * A page larger than a chunk, as chunks: its big segments (values) as given, the small ones between
 * them (header, elements, keys) and the zero padding joined, so no chunk is needlessly tiny.
 */
function passThrough(segments: Buffer[], pageBytes: number): Buffer[] {
  const chunks: Buffer[] = [];
  let small: Buffer[] = [];
  let contentBytes = 0;
  for (const segment of segments) {
    contentBytes += segment.length;
    if (segment.length < PASS_THROUGH_MIN_BYTES) {
      small.push(segment);
      continue;
    }
    if (small.length > 0) chunks.push(Buffer.concat(small));
    small = [];
    chunks.push(segment);
  }
  small.push(Buffer.alloc(pageBytes - contentBytes));
  chunks.push(Buffer.concat(small));
  return chunks;
}

// The facts of bbolt's file format (go.etcd.io/bbolt) that both bbolt-file.ts (the reader) and
// bbolt-writer.ts (the writer) rest on, stated once. Integers are little-endian.
//   page header (16 B):    id u64 | flags u16 | count u16 | overflow u32   (a page spans 1 + overflow pages)
//   meta (pages 0 and 1):  magic u32 | version u32 | pageSize u32 | flags u32 | root bucket {pgid u64, sequence u64}
//                          | freelist pgid u64 | high-water pgid u64 | txid u64 | FNV-1a 64 of the preceding 56 B
//   leaf element (16 B):   flags u32 (LEAF_FLAG_BUCKET: the value is a bucket) | pos u32 | ksize u32 | vsize u32
//   branch element (16 B): pos u32 | ksize u32 | child pgid u64 (the key is the child's first key)
// An element's `pos` counts from that element to its key; a leaf value directly follows its key. A
// bucket's value is its header {root pgid u64, sequence u64}; root pgid 0 marks an inline bucket, whose
// leaf page image follows the header in the value.

export const BBOLT_MAGIC = 0xed0cdaed;
export const BBOLT_FORMAT_VERSION = 2;
export const PAGE_HEADER_BYTES = 16;
export const ELEMENT_BYTES = 16;
export const BUCKET_HEADER_BYTES = 16;
/** The meta's fields after the page header, its checksum included. */
export const META_BYTES = 64;
/** The meta's bytes its checksum covers (all fields before it). */
export const META_CHECKSUMMED_BYTES = 56;

export const PAGE_FLAG_BRANCH = 0x01;
export const PAGE_FLAG_LEAF = 0x02;
export const PAGE_FLAG_META = 0x04;
export const PAGE_FLAG_FREELIST = 0x10;
export const LEAF_FLAG_BUCKET = 0x01;

/** The meta page's checksum: 64-bit FNV-1a. */
export function fnv1a64(bytes: Buffer): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of bytes) hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return hash;
}

// Copies small byte strings into shared slabs, so that many long-lived small buffers cost their
// bytes plus one view each. Raft entries need this: an entry's payload arrives as a slice of a
// larger buffer (Node's 8 KiB allocation pool on the leader, a whole peer frame on a follower), and
// a slice keeps all of that buffer alive for as long as the entry stays in the Raft log. Slabs are
// released by the garbage collector once no view into them is left; the log drops entries oldest
// first, so slabs go in the order they were filled.

const SLAB_BYTES = 256 * 1024;
/** Larger payloads get their own buffer: they would waste a slab's tail. */
const MAX_SHARED_BYTES = 16 * 1024;

export class ByteArena {
  private slab: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private used = 0;

  /** A copy of `src` that pins nothing but arena memory. */
  copy(src: Uint8Array): Buffer {
    const n = src.byteLength;
    if (n > MAX_SHARED_BYTES) {
      const own = Buffer.allocUnsafeSlow(n);
      own.set(src);
      return own;
    }
    if (this.used + n > SLAB_BYTES) {
      this.slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + n);
    out.set(src);
    // Keep the next copy 8-byte aligned.
    this.used = (this.used + n + 7) & ~7;
    return out;
  }
}

// A binary min-heap of small integer ids (0..n-1) keyed by numbers, whose keys can move either way:
// the merged watch keeps its shards in two of them (by resolved revision, for the frontier; by the
// revision of their next buffered event, for the merge), so each input costs O(log S) instead of a
// scan over every shard. Ties are broken by id, so the order is deterministic. Pure, no I/O.

export class IndexedMinHeap {
  private readonly heap: number[] = [];
  /** pos[id] = index of id in heap, or -1 when absent. */
  private readonly pos: Int32Array;
  private readonly key: Float64Array;

  constructor(capacity: number) {
    this.pos = new Int32Array(capacity).fill(-1);
    this.key = new Float64Array(capacity);
  }

  get size(): number {
    return this.heap.length;
  }

  has(id: number): boolean {
    return this.pos[id] >= 0;
  }

  /** The id with the smallest key (smallest id among equal keys), or -1 when empty. */
  peek(): number {
    return this.heap.length > 0 ? this.heap[0] : -1;
  }

  keyOf(id: number): number {
    return this.key[id];
  }

  /** Inserts id with `key`, or moves it to `key` if present. */
  set(id: number, key: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.pos.length) throw new RangeError(`heap id ${id} out of range`);
    this.key[id] = key;
    let i = this.pos[id];
    if (i < 0) {
      i = this.heap.length;
      this.heap.push(id);
      this.pos[id] = i;
    }
    this.down(this.up(i));
  }

  delete(id: number): void {
    const i = this.pos[id];
    if (i < 0) return;
    const last = this.heap.pop() as number;
    this.pos[id] = -1;
    if (i < this.heap.length) {
      this.heap[i] = last;
      this.pos[last] = i;
      this.down(this.up(i));
    }
  }

  private less(a: number, b: number): boolean {
    const ka = this.key[a];
    const kb = this.key[b];
    return ka < kb || (ka === kb && a < b);
  }

  private swap(i: number, j: number): void {
    const a = this.heap[i];
    const b = this.heap[j];
    this.heap[i] = b;
    this.heap[j] = a;
    this.pos[b] = i;
    this.pos[a] = j;
  }

  private up(i: number): number {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(this.heap[i], this.heap[parent])) break;
      this.swap(i, parent);
      i = parent;
    }
    return i;
  }

  private down(i: number): void {
    const n = this.heap.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(this.heap[l], this.heap[m])) m = l;
      if (r < n && this.less(this.heap[r], this.heap[m])) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }
}

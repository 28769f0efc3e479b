// An ordered in-memory index keyed by raw bytes held as latin1 strings (one char per byte, so string
// order is byte order, and a key costs one small heap string instead of a Buffer with its
// ArrayBuffer and backing store): a B+tree whose leaves are linked for in-order iteration from any
// start key. Items carry their own key, so a leaf holds only item references. Removal is not supported item by item: owners mark items dead and rebuild the tree
// (O(n), bulk load) when enough have accumulated, which keeps this structure small and simple.

export interface Keyed {
  /** The key's bytes as a latin1 string (see header). */
  readonly key: string;
}

const MAX_LEAF = 64;
const MAX_INNER = 64;
/** Fill factor for bulk loads: leaves some room so the first inserts after a rebuild do not split. */
const BULK_FILL = 48;

class Leaf<T extends Keyed> {
  items: T[];
  next: Leaf<T> | null = null;
  constructor(items: T[]) {
    this.items = items;
  }
}

class Inner<T extends Keyed> {
  /** keys[i] = smallest key in children[i + 1]; keys.length === children.length - 1. */
  keys: string[];
  children: Array<Node<T>>;
  constructor(keys: string[], children: Array<Node<T>>) {
    this.keys = keys;
    this.children = children;
  }
}

type Node<T extends Keyed> = Leaf<T> | Inner<T>;

/** Index of the first item whose key is >= key. */
function lowerBound<T extends Keyed>(items: T[], key: string): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (items[mid].key < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Number of separator keys <= key, i.e. the child to descend into. */
function childIndex(keys: string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keys[mid] <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

interface Split<T extends Keyed> {
  sep: string;
  right: Node<T>;
}

export class BTree<T extends Keyed> {
  private root: Node<T> = new Leaf<T>([]);
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(key: string): T | undefined {
    let node = this.root;
    while (node instanceof Inner) node = node.children[childIndex(node.keys, key)];
    const items = node.items;
    const i = lowerBound(items, key);
    if (i < items.length && items[i].key === key) return items[i];
    return undefined;
  }

  /** Inserts item, whose key must not be present yet. */
  insert(item: T): void {
    const split = this.insertRec(this.root, item);
    if (split !== null) this.root = new Inner<T>([split.sep], [this.root, split.right]);
    this.count++;
  }

  private insertRec(node: Node<T>, item: T): Split<T> | null {
    if (node instanceof Leaf) {
      const items = node.items;
      items.splice(lowerBound(items, item.key), 0, item);
      if (items.length <= MAX_LEAF) return null;
      const half = items.length >>> 1;
      const right = new Leaf<T>(items.slice(half));
      items.length = half;
      right.next = node.next;
      node.next = right;
      return { sep: right.items[0].key, right };
    }
    const ci = childIndex(node.keys, item.key);
    const split = this.insertRec(node.children[ci], item);
    if (split === null) return null;
    node.keys.splice(ci, 0, split.sep);
    node.children.splice(ci + 1, 0, split.right);
    if (node.children.length <= MAX_INNER) return null;
    const half = node.children.length >>> 1;
    const rightChildren = node.children.slice(half);
    const rightKeys = node.keys.slice(half);
    const sep = node.keys[half - 1];
    node.children.length = half;
    node.keys.length = half - 1;
    return { sep, right: new Inner<T>(rightKeys, rightChildren) };
  }

  /** Calls visit for every item with key >= start (every item when start is null), in key order, until visit returns false. */
  forEachFrom(start: string | null, visit: (item: T) => boolean | void): void {
    let node = this.root;
    let leaf: Leaf<T>;
    let i: number;
    if (start === null) {
      while (node instanceof Inner) node = node.children[0];
      leaf = node;
      i = 0;
    } else {
      while (node instanceof Inner) node = node.children[childIndex(node.keys, start)];
      leaf = node;
      i = lowerBound(leaf.items, start);
    }
    for (let l: Leaf<T> | null = leaf; l !== null; l = l.next, i = 0) {
      const items = l.items;
      for (; i < items.length; i++) {
        if (visit(items[i]) === false) return;
      }
    }
  }

  /** All items in key order. */
  toArray(): T[] {
    const out: T[] = [];
    this.forEachFrom(null, (item) => {
      out.push(item);
    });
    return out;
  }

  /** Replaces the contents with items, which must be sorted by key with no duplicates. O(n). */
  static fromSorted<T extends Keyed>(items: T[]): BTree<T> {
    const tree = new BTree<T>();
    tree.count = items.length;
    if (items.length === 0) return tree;
    let level: Array<Node<T>> = [];
    let firstKeys: string[] = [];
    let prev: Leaf<T> | null = null;
    for (let i = 0; i < items.length; i += BULK_FILL) {
      const leaf = new Leaf<T>(items.slice(i, i + BULK_FILL));
      if (prev !== null) prev.next = leaf;
      prev = leaf;
      level.push(leaf);
      firstKeys.push(leaf.items[0].key);
    }
    while (level.length > 1) {
      const up: Array<Node<T>> = [];
      const upKeys: string[] = [];
      for (let i = 0; i < level.length; i += BULK_FILL) {
        const children = level.slice(i, i + BULK_FILL);
        const keys = firstKeys.slice(i + 1, i + children.length);
        up.push(new Inner<T>(keys, children));
        upKeys.push(firstKeys[i]);
      }
      level = up;
      firstKeys = upKeys;
    }
    tree.root = level[0];
    return tree;
  }
}

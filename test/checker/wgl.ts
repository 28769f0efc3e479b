// Wing & Gong's linearizability search with Lowe's memoization, as in porcupine: walk the history's
// call/return entries in time order, tentatively linearize any call whose operation is still
// pending, backtrack at a return whose operation was never linearized, and never revisit a
// (linearized set, model state) pair that already failed. The linearized set is a bitset keyed in
// the cache by an incremental Zobrist hash (collisions are resolved by comparing the bitsets).

export interface SearchModel<S, I, O> {
  init(): S;
  /** The state after applying input with observed output, or null when that output is impossible. */
  step(state: S, input: I, output: O): S | null;
  /** Equal keys must mean equal states (used for memoization). */
  stateKey(state: S): string;
}

export interface SearchOp<I, O> {
  input: I;
  output: O;
  invoke: number;
  /** +Infinity for an operation whose outcome is unknown. */
  complete: number;
}

export type SearchResult =
  | { kind: 'ok'; order: number[] }
  | { kind: 'illegal'; /** The longest linearizable prefix found, as op indices in order. */ longest: number[]; /** An op no linearization could place. */ stuckAt: number }
  | { kind: 'timeout' };

interface Entry {
  op: number;
  isCall: boolean;
  time: number;
}

/** Deterministic 32-bit mixer (splitmix-like) for the Zobrist keys. */
function mix(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

export function searchLinearization<S, I, O>(
  model: SearchModel<S, I, O>,
  ops: ReadonlyArray<SearchOp<I, O>>,
  opts: { deadline?: number } = {},
): SearchResult {
  const n = ops.length;
  if (n === 0) return { kind: 'ok', order: [] };
  const entries: Entry[] = [];
  for (let i = 0; i < n; i++) {
    entries.push({ op: i, isCall: true, time: ops[i].invoke });
    entries.push({ op: i, isCall: false, time: ops[i].complete });
  }
  // Calls before returns at equal times: touching intervals count as concurrent (the lenient choice).
  entries.sort((a, b) => (a.time !== b.time ? a.time - b.time : a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));

  // Doubly linked list over entry positions 1..2n with a head sentinel at 0; -1 is the end.
  const size = entries.length + 1;
  const next = new Int32Array(size);
  const prev = new Int32Array(size);
  const callPos = new Int32Array(n);
  const retPos = new Int32Array(n);
  for (let p = 0; p < size; p++) {
    next[p] = p + 1 < size ? p + 1 : -1;
    prev[p] = p - 1;
  }
  for (let k = 0; k < entries.length; k++) {
    const e = entries[k];
    if (e.isCall) callPos[e.op] = k + 1;
    else retPos[e.op] = k + 1;
  }
  const entryAt = (p: number): Entry => entries[p - 1];

  const lift = (op: number): void => {
    for (const p of [callPos[op], retPos[op]]) {
      next[prev[p]] = next[p];
      if (next[p] !== -1) prev[next[p]] = prev[p];
    }
  };
  const unlift = (op: number): void => {
    for (const p of [retPos[op], callPos[op]]) {
      next[prev[p]] = p;
      if (next[p] !== -1) prev[next[p]] = p;
    }
  };

  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const zobA = new Uint32Array(n);
  const zobB = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    zobA[i] = mix(i * 2 + 0x1234567);
    zobB[i] = mix(i * 2 + 0x7654321);
  }
  let hashA = 0;
  let hashB = 0;
  const cache = new Map<string, Uint32Array[]>();
  const remember = (state: S): boolean => {
    const key = `${hashA}.${hashB}.${model.stateKey(state)}`;
    const seen = cache.get(key);
    if (seen) {
      for (const b of seen) {
        let same = true;
        for (let w = 0; w < words && same; w++) same = b[w] === bits[w];
        if (same) return false;
      }
      seen.push(bits.slice());
    } else {
      cache.set(key, [bits.slice()]);
    }
    return true;
  };
  const flip = (op: number): void => {
    bits[op >>> 5] ^= 1 << (op & 31);
    hashA ^= zobA[op];
    hashB ^= zobB[op];
  };

  const stack: Array<{ op: number; state: S }> = [];
  let state = model.init();
  let longest: number[] = [];
  let steps = 0;
  let p = next[0];
  while (next[0] !== -1) {
    if (opts.deadline !== undefined && (++steps & 0x3ff) === 0 && Date.now() > opts.deadline) return { kind: 'timeout' };
    const e = entryAt(p);
    if (e.isCall) {
      const op = ops[e.op];
      const after = model.step(state, op.input, op.output);
      let advanced = false;
      if (after !== null) {
        flip(e.op);
        if (remember(after)) {
          stack.push({ op: e.op, state });
          state = after;
          lift(e.op);
          advanced = true;
          if (stack.length > longest.length) longest = stack.map((s) => s.op);
          p = next[0];
        } else {
          flip(e.op);
        }
      }
      if (!advanced) p = next[p];
    } else {
      // A return whose op is still pending: undo the last tentative linearization.
      const top = stack.pop();
      if (!top) {
        // Report the earliest-returning op the deepest attempt could not place.
        const placed = new Set(longest);
        let stuckAt = -1;
        for (let i = 0; i < n; i++) if (!placed.has(i) && (stuckAt === -1 || ops[i].complete < ops[stuckAt].complete)) stuckAt = i;
        if (stuckAt === -1) stuckAt = e.op;
        return { kind: 'illegal', longest, stuckAt };
      }
      state = top.state;
      flip(top.op);
      unlift(top.op);
      p = next[callPos[top.op]];
    }
  }
  return { kind: 'ok', order: stack.map((s) => s.op) };
}

// The sequential specification of one etcd key, for the per-key linearizability search. Besides the
// value it tracks revisions: `rev` is the mod_revision of the current value (or of the delete that
// removed it; -1 when the change's revision is unknown), and `floor` is a revision the state is
// known to be at or after, so any later change must take a larger revision. A read served at store
// revision H (its header) sits after every change <= H and before every change > H: it needs
// floor <= H, and (below) every known change <= H already linearized. Reads leave the floor alone,
// so reads between the same two changes commute and the memoization collapses their orders.
//
// Revisions also prune the search: changes to one key are applied in revision order, so a change at
// revision R (or a read at header H) can only be linearized once every change of the key with a
// known revision below R (at or below H) has been; the model is built per key with that list.
//
// Unknown outcomes are deterministic here on purpose: an unknown put/delete applies, an unknown CAS
// applies iff its compare holds. The other possibility ("it never took effect") is always available
// because an unknown op completes at +Infinity and can be linearized after everything observable.
import { changedKey, type CasCompare, type Found, type KvInput, type KvOutput } from './history.ts';
import type { SearchModel } from './wgl.ts';

export interface KeyState {
  value: string | null;
  rev: number;
  floor: number;
}

const INITIAL: KeyState = { value: null, rev: 0, floor: 0 };

/** Sorted revisions of the key's changes whose revision is known; answers "the next one after r". */
export class KnownChanges {
  private readonly revs: number[];
  constructor(revs: number[]) {
    this.revs = [...new Set(revs)].sort((a, b) => a - b);
  }
  /** The smallest known change revision greater than r, or +Infinity. */
  after(r: number): number {
    let lo = 0;
    let hi = this.revs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.revs[mid] <= r) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.revs.length ? this.revs[lo] : Infinity;
  }
}

/** Does a read of `found` at header revision `header` match the state? Returns the refined state or null. */
function observe(s: KeyState, found: Found | null, header: number): KeyState | null {
  // Served at store revision `header`: every change after it must come later.
  if (s.floor > header) return null;
  if (found === null) {
    if (s.value !== null) return null;
    if (s.rev > header) return null;
    return s;
  }
  if (s.value !== found.value) return null;
  if (found.modRevision > header) return null;
  if (s.rev === -1) {
    // First observation of a change whose revision was unknown pins it.
    if (found.modRevision <= s.floor) return null;
  } else if (s.rev !== found.modRevision) {
    return null;
  }
  return s.rev === found.modRevision ? s : { value: s.value, rev: found.modRevision, floor: Math.max(s.floor, found.modRevision) };
}

/** Whether the compare holds; 'unknown' when it hinges on a revision the model does not know. */
function compareHolds(s: KeyState, c: CasCompare): boolean | 'unknown' {
  if (c.target === 'value') return s.value !== null && s.value === c.value; // etcd: VALUE on a missing key fails
  const actual = s.value === null ? 0 : s.rev;
  if (actual === -1) return c.modRevision > s.floor ? 'unknown' : false;
  return actual === c.modRevision;
}

function change(s: KeyState, value: string | null, revision: number | null): KeyState | null {
  if (revision === null) return { value, rev: -1, floor: s.floor };
  if (revision <= s.floor) return null;
  return { value, rev: revision, floor: revision };
}

export function stepKey(s: KeyState, input: KvInput, output: KvOutput | null, known?: KnownChanges): KeyState | null {
  if (known && output !== null) {
    const next = known.after(s.floor);
    if (changedKey(output) ? next !== output.revision : next <= output.revision) return null;
  }
  switch (input.kind) {
    case 'get': {
      if (output === null) return s; // an unknown read has no effect (callers usually drop it)
      if (output.kind !== 'get') return null;
      return observe(s, output.found, output.revision);
    }
    case 'put': {
      if (output === null) return change(s, input.value, null);
      if (output.kind !== 'put') return null;
      return change(s, input.value, output.revision);
    }
    case 'delete': {
      if (output === null) return s.value === null ? s : change(s, null, null);
      if (output.kind !== 'delete') return null;
      if (output.deleted === 0) return observe(s, null, output.revision);
      if (s.value === null) return null;
      return change(s, null, output.revision);
    }
    case 'cas': {
      const holds = compareHolds(s, input.compare);
      const pinned: KeyState =
        holds === 'unknown' && input.compare.target === 'mod' ? { ...s, rev: input.compare.modRevision } : s;
      if (output === null) return holds === false ? s : change(pinned, input.value, null);
      if (output.kind !== 'cas') return null;
      if (output.succeeded) {
        if (holds === false) return null;
        return change(pinned, input.value, output.revision);
      }
      if (holds === true) return null;
      if (holds === 'unknown' && input.compare.target === 'mod' && output.found?.modRevision === input.compare.modRevision) return null;
      // The failure branch read the key; with an unknown revision the compare may have failed or
      // matched, so only the read itself is checked.
      return observe(s, output.found, output.revision);
    }
  }
}

/** The model for one key's partition; `ops` are that partition's operations. */
export function kvKeyModel(ops: ReadonlyArray<{ output: KvOutput | null }>): SearchModel<KeyState, KvInput, KvOutput | null> {
  const known = new KnownChanges(ops.flatMap((op) => (op.output !== null && changedKey(op.output) ? [op.output.revision] : [])));
  return {
    init: () => INITIAL,
    step: (s, input, output) => stepKey(s, input, output, known),
    stateKey: (s) => `${s.value ?? '\u0000'}\u0001${s.rev}\u0001${s.floor}`,
  };
}

// Global safety checker for the cluster simulator. It watches every persisted write, applied
// entry, status snapshot and ReadIndex answer across the whole run (including crashed and
// restarted incarnations) and throws SafetyViolation on the first breach of:
//  - election safety: at most one leader per term, over all history;
//  - log matching: equal (index, term) on two logs implies identical prefixes;
//  - leader completeness: entries committed in term T are in every leader's log for terms > T;
//  - state machine safety: no two nodes apply different entries at one index;
//  - monotonicity: durable term/commit/applied never go backwards, one vote per term;
//  - ReadIndex linearizability: a read's index covers every write applied before it was issued.

import type { Entry, HardState, NodeId, ReadState, Role } from '../types.ts';

export class SafetyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetyViolation';
  }
}

function fail(msg: string): never {
  throw new SafetyViolation(msg);
}

/** 32-bit FNV-1a style mixing; collisions can only hide a bug, never invent one. */
function mix(h: number, x: number): number {
  h ^= x & 0xffff;
  h = Math.imul(h, 0x01000193);
  h ^= x >>> 16;
  h = Math.imul(h, 0x01000193);
  return h >>> 0;
}

function entryHash(prev: number, e: Entry): number {
  let h = mix(mix(prev, e.term), e.index);
  h = mix(h, e.type === 'normal' ? 1 : 2);
  for (let i = 0; i < e.data.byteLength; i++) h = mix(h, e.data[i]);
  return mix(h, e.data.byteLength);
}

function entryKey(e: Entry): string {
  let s = `${e.term}/${e.type}/`;
  for (let i = 0; i < e.data.byteLength; i++) s += e.data[i].toString(16).padStart(2, '0');
  return s;
}

interface NodeTrack {
  /** prefixHash[i] = hash of durable entries 1..i (index 0 unused = 0). */
  prefixHash: number[];
  durable: HardState;
  appliedIndex: number;
}

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** (index, term) -> prefix hash, for log matching across all nodes and all time. */
  private readonly prefixByIndexTerm = new Map<number, number>();
  /** index -> entry term, for committed entries. */
  private readonly committedTerm: number[] = [0];
  /** index -> lowest term in which some node recorded it as committed (>= the real commit term). */
  private readonly committedSeenInTerm: number[] = [0];
  private readonly appliedKey: string[] = [''];
  private readonly nodes = new Map<NodeId, NodeTrack>();
  /** ReadIndex ctx (as number) -> minimal acceptable read index. */
  private readonly readRequirement = new Map<number, number>();
  maxAppliedIndex = 0;
  leaderChanges = 0;
  readsServed = 0;

  private track(id: NodeId): NodeTrack {
    let t = this.nodes.get(id);
    if (t === undefined) {
      t = { prefixHash: [0], durable: { term: 0, vote: 0, commit: 0 }, appliedIndex: 0 };
      this.nodes.set(id, t);
    }
    return t;
  }

  /** Called after node `id` durably wrote Ready.entries / hardState into `storedEntries`. */
  onPersist(id: NodeId, newEntries: Entry[], hardState: HardState | null, storedEntries: Entry[]): void {
    const t = this.track(id);
    if (newEntries.length > 0) {
      const from = newEntries[0].index;
      if (from <= t.durable.commit) {
        fail(`node ${id} overwrote durable entries from ${from} but its durable commit is ${t.durable.commit}`);
      }
      t.prefixHash.length = from;
      for (let i = from; i <= storedEntries.length; i++) {
        const e = storedEntries[i - 1];
        const h = entryHash(t.prefixHash[i - 1], e);
        t.prefixHash.push(h);
        if (e.term >= 1e6) fail(`term ${e.term} too large for the checker's key encoding`);
        const key = i * 1e6 + e.term;
        const seen = this.prefixByIndexTerm.get(key);
        if (seen === undefined) this.prefixByIndexTerm.set(key, h);
        else if (seen !== h) fail(`log matching: node ${id} has entry (index ${i}, term ${e.term}) with a prefix differing from another log`);
      }
    }
    if (hardState !== null) {
      const prev = t.durable;
      if (hardState.term < prev.term) fail(`node ${id} durable term went back ${prev.term} -> ${hardState.term}`);
      if (hardState.commit < prev.commit) fail(`node ${id} durable commit went back ${prev.commit} -> ${hardState.commit}`);
      if (hardState.term === prev.term && prev.vote !== 0 && hardState.vote !== prev.vote) {
        fail(`node ${id} voted twice in term ${prev.term}: ${prev.vote} then ${hardState.vote}`);
      }
      if (hardState.commit > storedEntries.length) {
        fail(`node ${id} persisted commit ${hardState.commit} beyond its durable log (${storedEntries.length})`);
      }
      for (let i = prev.commit + 1; i <= hardState.commit; i++) this.recordCommitted(id, i, storedEntries[i - 1].term, hardState.term);
      t.durable = { ...hardState };
    }
  }

  private recordCommitted(id: NodeId, index: number, entryTerm: number, seenInTerm: number): void {
    if (index < this.committedTerm.length) {
      if (this.committedTerm[index] !== entryTerm) {
        fail(`node ${id} committed index ${index} with term ${entryTerm}, but term ${this.committedTerm[index]} was committed there`);
      }
      if (seenInTerm < this.committedSeenInTerm[index]) this.committedSeenInTerm[index] = seenInTerm;
      return;
    }
    // Commit indexes are prefixes: fill any gap from this node's own (committed) log is not
    // possible here, so only extend contiguously; later calls fill the rest.
    if (index !== this.committedTerm.length) fail(`internal checker error: non-contiguous commit record at ${index}`);
    this.committedTerm.push(entryTerm);
    this.committedSeenInTerm.push(seenInTerm);
  }

  onApply(id: NodeId, e: Entry): void {
    const t = this.track(id);
    if (e.index !== t.appliedIndex + 1) fail(`node ${id} applied index ${e.index} after ${t.appliedIndex}`);
    t.appliedIndex = e.index;
    const key = entryKey(e);
    if (e.index < this.appliedKey.length) {
      if (this.appliedKey[e.index] !== key) fail(`state machine safety: node ${id} applied ${key} at index ${e.index}, another node applied ${this.appliedKey[e.index]}`);
    } else {
      this.appliedKey.push(key);
    }
    if (e.index > this.maxAppliedIndex) this.maxAppliedIndex = e.index;
  }

  /** Checks a node's role/term snapshot; `termAt` reads its in-memory log (for leader completeness). */
  onStatus(id: NodeId, role: Role, term: number, termAt: (index: number) => number | undefined): void {
    if (role !== 'leader') return;
    const known = this.leaderOfTerm.get(term);
    if (known === id) return;
    if (known !== undefined) fail(`election safety: nodes ${known} and ${id} are both leader in term ${term}`);
    this.leaderOfTerm.set(term, id);
    this.leaderChanges++;
    for (let i = 1; i < this.committedTerm.length; i++) {
      if (this.committedSeenInTerm[i] >= term) continue;
      const have = termAt(i);
      if (have !== this.committedTerm[i]) {
        fail(`leader completeness: leader ${id} of term ${term} has term ${have} at index ${i}, committed term ${this.committedTerm[i]}`);
      }
    }
  }

  /** A client issued ReadIndex with numeric context `ctxId`; every write applied so far must be visible. */
  onReadRequest(ctxId: number): void {
    this.readRequirement.set(ctxId, this.maxAppliedIndex);
  }

  onReadState(id: NodeId, ctxId: number, rs: ReadState): void {
    const need = this.readRequirement.get(ctxId);
    if (need === undefined) fail(`node ${id} got a ReadState for unknown context ${ctxId}`);
    if (rs.index < need) fail(`linearizability: read ${ctxId} answered at index ${rs.index} but index ${need} was applied before it was issued`);
    this.readsServed++;
  }

  committedCount(): number {
    return this.committedTerm.length - 1;
  }
}

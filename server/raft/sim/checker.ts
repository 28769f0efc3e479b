// Global safety checker for the cluster simulator. It watches every persisted write, applied
// entry, status snapshot and ReadIndex answer across the whole run (including crashed and
// restarted incarnations) and throws SafetyViolation on the first breach of:
//  - election safety: at most one leader per term, over all history;
//  - log matching: equal (index, term) on two logs implies identical prefixes;
//  - leader completeness: entries committed in term T are in every leader's log for terms > T;
//  - state machine safety: no two nodes apply different entries at one index;
//  - monotonicity: durable term/commit/applied never go backwards, one vote per term;
//  - ReadIndex linearizability: a read's index covers every write applied before it was issued;
// and, for membership changes and snapshots:
//  - commit quorum: when an index is first seen committed, a majority of the voters of a
//    configuration in effect before it (bootstrap or applied conf change at a lower index)
//    durably holds that exact entry (same prefix);
//  - every node applying the conf entry at index i computes the same membership; a leader is
//    a voter of its own membership;
//  - snapshots only cover committed, applied state, identical to what other nodes applied.

import type { ConfState, Entry, HardState, NodeId, ReadState, Role, SnapshotMeta } from '../types.ts';

/** Read access to a node's durable log (array form: entries[i] has index i + 1). */
export interface StoredLog {
  firstIndex(): number;
  lastIndex(): number;
  entry(index: number): Entry;
}

function arrayLog(ents: Entry[]): StoredLog {
  return { firstIndex: () => 1, lastIndex: () => ents.length, entry: (i) => ents[i - 1] };
}

function csKey(cs: ConfState): string {
  return `${cs.voters.join(',')}|${cs.learners.join(',')}`;
}

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
  /** index -> prefix hash of the committed log up to index. */
  private readonly committedPrefix: number[] = [0];
  /** Memberships in effect: bootstrap (index 0) and after each applied conf entry, by index. */
  private readonly configs: { index: number; voters: NodeId[]; key: string }[] = [];
  snapshotsInstalled = 0;
  confChangesApplied = 0;

  constructor(bootstrapVoters?: NodeId[]) {
    if (bootstrapVoters !== undefined) {
      const voters = [...bootstrapVoters].sort((a, b) => a - b);
      this.configs.push({ index: 0, voters, key: csKey({ voters, learners: [] }) });
    }
  }
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

  /** Called after node `id` durably replaced its log by snapshot `meta` (before onPersist of the same Ready). */
  onPersistSnapshot(id: NodeId, meta: SnapshotMeta): void {
    const t = this.track(id);
    if (meta.index >= this.committedTerm.length) fail(`node ${id} persisted snapshot ${meta.index} beyond the committed log (${this.committedCount()})`);
    if (this.committedTerm[meta.index] !== meta.term) {
      fail(`node ${id} persisted snapshot (${meta.index}, term ${meta.term}) but term ${this.committedTerm[meta.index]} is committed there`);
    }
    this.checkConfAt(id, meta.index, meta.confState);
    if (meta.index <= t.durable.commit) fail(`node ${id} persisted snapshot ${meta.index} at or below its durable commit ${t.durable.commit}`);
    t.prefixHash = this.committedPrefix.slice(0, meta.index + 1);
  }

  /** Called after node `id` durably wrote Ready.entries / hardState into its stored log. */
  onPersist(id: NodeId, newEntries: Entry[], hardState: HardState | null, stored: StoredLog | Entry[]): void {
    const log = Array.isArray(stored) ? arrayLog(stored) : stored;
    const t = this.track(id);
    if (newEntries.length > 0) {
      const from = newEntries[0].index;
      if (from <= t.durable.commit) {
        fail(`node ${id} overwrote durable entries from ${from} but its durable commit is ${t.durable.commit}`);
      }
      if (from > t.prefixHash.length) fail(`node ${id} persisted entries from ${from} leaving a gap after ${t.prefixHash.length - 1}`);
      t.prefixHash.length = from;
      for (let i = from; i <= log.lastIndex(); i++) {
        const e = log.entry(i);
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
      if (hardState.commit > log.lastIndex()) {
        fail(`node ${id} persisted commit ${hardState.commit} beyond its durable log (${log.lastIndex()})`);
      }
      for (let i = prev.commit + 1; i <= hardState.commit; i++) {
        if (i < log.firstIndex()) {
          // Covered by an installed snapshot, which was checked to be committed.
          if (!(i < this.committedTerm.length)) fail(`node ${id} commit ${i} inside its snapshot is not known committed`);
          continue;
        }
        this.recordCommitted(id, i, log.entry(i).term, hardState.term, t.prefixHash[i]);
      }
      t.durable = { ...hardState };
    }
  }

  private recordCommitted(id: NodeId, index: number, entryTerm: number, seenInTerm: number, prefix: number): void {
    if (index < this.committedTerm.length) {
      if (this.committedTerm[index] !== entryTerm) {
        fail(`node ${id} committed index ${index} with term ${entryTerm}, but term ${this.committedTerm[index]} was committed there`);
      }
      if (this.committedPrefix[index] !== prefix) fail(`node ${id} committed index ${index} with a log prefix differing from the committed one`);
      if (seenInTerm < this.committedSeenInTerm[index]) this.committedSeenInTerm[index] = seenInTerm;
      return;
    }
    // Commit indexes are prefixes: fill any gap from this node's own (committed) log is not
    // possible here, so only extend contiguously; later calls fill the rest.
    if (index !== this.committedTerm.length) fail(`internal checker error: non-contiguous commit record at ${index}`);
    this.checkCommitQuorum(id, index, prefix);
    this.committedTerm.push(entryTerm);
    this.committedSeenInTerm.push(seenInTerm);
    this.committedPrefix.push(prefix);
  }

  /** A majority of some membership in effect before `index` must durably hold it. */
  private checkCommitQuorum(id: NodeId, index: number, prefix: number): void {
    if (this.configs.length === 0) return; // no bootstrap config given: quorum check disabled
    const holders = new Set<NodeId>();
    for (const [nid, t] of this.nodes) if (t.prefixHash[index] === prefix) holders.add(nid);
    for (const cfg of this.configs) {
      if (cfg.index >= index) break;
      let n = 0;
      for (const v of cfg.voters) if (holders.has(v)) n++;
      if (n >= (cfg.voters.length >> 1) + 1) return;
    }
    fail(`commit quorum: node ${id} committed index ${index}, durably held only by [${[...holders].sort((a, b) => a - b).join(',')}], no majority of any earlier membership`);
  }

  private checkConfAt(id: NodeId, index: number, cs: ConfState): void {
    if (this.configs.length === 0) return;
    // The membership in effect at `index` is the last config with config.index <= index.
    let found = this.configs[0];
    for (const c of this.configs) if (c.index <= index) found = c;
    // Snapshots are taken at some node's applied index, so every conf entry <= index was applied and recorded.
    if (found.key !== csKey(cs)) {
      fail(`node ${id}: membership at index ${index} is ${csKey(cs)}, but ${found.key} was in effect there`);
    }
  }

  /** Node `id` applied the conf entry at `index`, obtaining membership `cs`. */
  onConfApplied(id: NodeId, index: number, cs: ConfState): void {
    this.confChangesApplied++;
    const key = csKey(cs);
    const existing = this.configs.find((c) => c.index === index);
    if (existing !== undefined) {
      if (existing.key !== key) fail(`node ${id} applied conf entry ${index} giving ${key}, another node got ${existing.key}`);
      return;
    }
    let pos = this.configs.length;
    while (pos > 0 && this.configs[pos - 1].index > index) pos--;
    this.configs.splice(pos, 0, { index, voters: cs.voters.slice(), key });
  }

  /** Node `id` replaced its state machine by snapshot `meta` with state `data` (applied entries 1..index). */
  onInstallSnapshot(id: NodeId, meta: SnapshotMeta, data: readonly Entry[]): void {
    const t = this.track(id);
    if (meta.index < t.appliedIndex) fail(`node ${id} installed snapshot ${meta.index} below its applied index ${t.appliedIndex}`);
    if (data.length !== meta.index) fail(`snapshot ${meta.index} carries ${data.length} applied entries`);
    if (meta.index >= this.appliedKey.length) fail(`node ${id} installed snapshot ${meta.index} beyond anything applied (${this.appliedKey.length - 1})`);
    for (let i = t.appliedIndex + 1; i <= meta.index; i++) {
      const e = data[i - 1];
      if (e.index !== i || entryKey(e) !== this.appliedKey[i]) fail(`state machine safety: snapshot ${meta.index} installed on ${id} differs at index ${i}`);
    }
    this.checkConfAt(id, meta.index, meta.confState);
    t.appliedIndex = meta.index;
    this.snapshotsInstalled++;
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
  onStatus(id: NodeId, role: Role, term: number, termAt: (index: number) => number | undefined, voters?: readonly NodeId[], firstIndex = 1): void {
    if (role !== 'leader') return;
    if (voters !== undefined && !voters.includes(id)) fail(`node ${id} is leader of term ${term} but not a voter of its membership [${voters.join(',')}]`);
    const known = this.leaderOfTerm.get(term);
    if (known === id) return;
    if (known !== undefined) fail(`election safety: nodes ${known} and ${id} are both leader in term ${term}`);
    this.leaderOfTerm.set(term, id);
    this.leaderChanges++;
    for (let i = Math.max(1, firstIndex - 1); i < this.committedTerm.length; i++) {
      if (this.committedSeenInTerm[i] >= term) continue;
      const have = termAt(i);
      if (have === undefined && i < firstIndex) continue; // compacted away (into a checked snapshot)
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

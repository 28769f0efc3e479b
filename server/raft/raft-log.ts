// The replicated log as seen by one node: a stable prefix (already durable in the caller's
// storage) followed by an unstable suffix (handed out in Ready.entries, not yet persisted),
// plus the commit and applied cursors. All entries after the compaction point are kept in one
// array so lookup by index is O(1); `compactedIndex/compactedTerm` describe the entry just
// before the first retained one, so snapshots/compaction can later drop the array's prefix
// without changing callers. `compact` drops an applied prefix (the application took a snapshot);
// `restore` replaces the whole log by a snapshot received from the leader, which stays
// "unstable" (pendingSnapshot) until the application persists and installs it.

import { ENTRY_OVERHEAD_BYTES } from './replication-limits.ts';
import type { ConfState, Entry, PersistedState, SnapshotMeta } from './types.ts';
import { fail } from './errors.ts';

export class RaftLog {
  /** entries[i] has index compactedIndex + 1 + i. */
  private entries: Entry[];
  /** Index/term of the last entry folded into a snapshot (0/0 when nothing is compacted). */
  private compactedIndex: number;
  private compactedTerm: number;
  /** First index that is not yet durable; entries from here on are "unstable". */
  private unstableFrom: number;
  /** Highest index known to be committed (stored on a quorum). */
  committed: number;
  /** Highest index handed to the application and acknowledged via advance(). */
  applied: number;
  /**
   * Highest index handed to the application for applying (in a Ready not yet advanced) — etcd's
   * `applying`. Above `applied` exactly while a Ready's committed entries are being applied.
   */
  applying = 0;
  /** The compaction point (index/term/confState), or null before any compaction. */
  snapshot: SnapshotMeta | null = null;
  /** A snapshot received from the leader, not yet handed out in a Ready and advanced. */
  pendingSnapshot: SnapshotMeta | null = null;

  constructor(persisted?: PersistedState) {
    if (persisted === undefined) {
      this.entries = [];
      this.compactedIndex = 0;
      this.compactedTerm = 0;
      this.committed = 0;
      this.applied = 0;
      this.unstableFrom = 1;
      return;
    }
    const { entries, firstIndex, hardState, applied, snapshot } = persisted;
    if (!(firstIndex >= 1)) fail(`persisted firstIndex ${firstIndex} < 1`);
    if (firstIndex > 1 || snapshot !== undefined) {
      if (!(snapshot !== undefined && snapshot.index === firstIndex - 1)) {
        fail(`persisted firstIndex ${firstIndex} needs a snapshot at index ${firstIndex - 1} (got ${snapshot?.index})`);
      }
      if (!(snapshot.term > 0 || snapshot.index === 0)) fail(`persisted snapshot at ${snapshot.index} has term ${snapshot.term}`);
      if (!(entries.length === 0 || entries[0].term >= snapshot.term)) fail(`persisted entry ${firstIndex} has a term below the snapshot's`);
      this.snapshot = copySnapshotMeta(snapshot);
    }
    for (let i = 0; i < entries.length; i++) {
      if (!(entries[i].index === firstIndex + i)) {
        fail(`persisted entries not contiguous: position ${i} has index ${entries[i].index}, want ${firstIndex + i}`);
      }
      if (!(i === 0 || entries[i].term >= entries[i - 1].term)) {
        fail(`persisted entry terms decrease at index ${entries[i].index}`);
      }
    }
    // Copy: the caller's storage keeps mutating its own array.
    this.entries = entries.slice();
    this.compactedIndex = firstIndex - 1;
    this.compactedTerm = this.snapshot === null ? 0 : this.snapshot.term;
    this.unstableFrom = this.lastIndex() + 1;
    if (!(hardState.commit <= this.lastIndex())) {
      fail(`persisted commit ${hardState.commit} beyond last index ${this.lastIndex()}`);
    }
    if (!(applied <= hardState.commit)) fail(`persisted applied ${applied} beyond commit ${hardState.commit}`);
    if (!(applied >= this.compactedIndex)) fail(`persisted applied ${applied} is below the snapshot index ${this.compactedIndex}`);
    this.committed = hardState.commit;
    this.applied = applied;
    this.applying = applied;
  }

  firstIndex(): number {
    return this.compactedIndex + 1;
  }

  lastIndex(): number {
    return this.compactedIndex + this.entries.length;
  }

  lastTerm(): number {
    const n = this.entries.length;
    return n === 0 ? this.compactedTerm : this.entries[n - 1].term;
  }

  /** Term of the entry at `index`, or undefined if it is beyond the log or compacted away. */
  term(index: number): number | undefined {
    if (index === this.compactedIndex) return this.compactedTerm;
    if (index < this.compactedIndex || index > this.lastIndex()) return undefined;
    return this.entries[index - this.compactedIndex - 1].term;
  }

  /** Entry at `index`; the caller guarantees firstIndex <= index <= lastIndex. */
  entryAt(index: number): Entry {
    const e = this.entries[index - this.compactedIndex - 1];
    if (!(e !== undefined && e.index === index)) {
      fail(`entryAt(${index}) outside [${this.firstIndex()}, ${this.lastIndex()}]`);
    }
    return e;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is a candidate's log (lastIndex, lastTerm) at least as up-to-date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** Index of the first entry in `ents` that conflicts with (or extends) our log; 0 if all match. */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * Largest index <= `index` whose term is <= `term` (used for fast backtracking: everything
   * above it certainly mismatches a log whose entry at `index` has `term`). Returns [index, term].
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    if (index > this.lastIndex()) return [index, 0];
    for (;;) {
      const t = this.term(index);
      if (t === undefined) return [index, 0]; // compacted: cannot look further back
      if (t <= term || index <= this.compactedIndex) return [index, t];
      index--;
    }
  }

  /**
   * Follower side of AppendEntries: if our log matches (prevIndex, prevTerm), append `ents`
   * (truncating any conflicting suffix), advance commit to min(leaderCommit, last new index)
   * and return the last new index; otherwise return -1.
   */
  maybeAppend(prevIndex: number, prevTerm: number, leaderCommit: number, ents: Entry[]): number {
    if (!this.matchTerm(prevIndex, prevTerm)) return -1;
    const lastNewIndex = prevIndex + ents.length;
    const conflictIndex = this.findConflict(ents);
    if (conflictIndex !== 0) {
      if (!(conflictIndex > this.committed)) {
        fail(`entry ${conflictIndex} conflicts with committed entry (committed=${this.committed})`);
      }
      this.truncateAndAppend(ents.slice(conflictIndex - (prevIndex + 1)));
    }
    this.commitTo(Math.min(leaderCommit, lastNewIndex));
    return lastNewIndex;
  }

  /** Appends entries at the tail; used by the leader for its own proposals. */
  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    if (!(ents[0].index === this.lastIndex() + 1)) {
      fail(`leader append at ${ents[0].index} does not extend last index ${this.lastIndex()}`);
    }
    this.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** Replaces the log suffix starting at ents[0].index with `ents`. */
  private truncateAndAppend(ents: Entry[]): void {
    const from = ents[0].index;
    if (!(from > this.compactedIndex && from <= this.lastIndex() + 1)) {
      fail(`append at ${from} leaves a gap or rewrites compacted entries (first=${this.firstIndex()}, last=${this.lastIndex()})`);
    }
    if (!(from > this.committed)) {
      fail(`append at ${from} would overwrite committed entries (committed=${this.committed})`);
    }
    const prevTerm = this.term(from - 1) ?? 0;
    if (!(ents[0].term >= prevTerm)) {
      fail(`appended entry ${from} has term ${ents[0].term} < previous term ${prevTerm}`);
    }
    for (let i = 1; i < ents.length; i++) {
      if (!(ents[i].index === from + i)) fail(`appended entries not contiguous at position ${i}`);
      if (!(ents[i].term >= ents[i - 1].term)) fail(`appended entry terms decrease at index ${ents[i].index}`);
    }
    this.entries.length = from - this.compactedIndex - 1;
    for (const e of ents) this.entries.push(e);
    if (from < this.unstableFrom) this.unstableFrom = from;
  }

  /**
   * Entries in [lo, hi) whose sizes (payload + ENTRY_OVERHEAD_BYTES each) total at most maxBytes,
   * but always at least one.
   */
  slice(lo: number, hi: number, maxBytes: number): Entry[] {
    if (!(lo > this.compactedIndex && hi <= this.lastIndex() + 1 && lo <= hi)) {
      fail(`slice ${lo}..${hi - 1} out of bounds ${this.firstIndex()}..${this.lastIndex()}`);
    }
    const base = this.compactedIndex + 1;
    let end = lo;
    let bytes = 0;
    while (end < hi) {
      bytes += this.entries[end - base].data.byteLength + ENTRY_OVERHEAD_BYTES;
      if (bytes > maxBytes && end > lo) break;
      end++;
    }
    return this.entries.slice(lo - base, end - base);
  }

  /** The log holds nothing at all: no entry, no snapshot, nothing committed (a brand-new replica). */
  assertEmptyForFreshReplica(): void {
    if (this.lastIndex() !== 0 || this.committed !== 0) fail(`log not empty (last ${this.lastIndex()}, committed ${this.committed})`);
  }

  commitTo(index: number): void {
    if (index <= this.committed) return; // stale commit info (e.g. heartbeat) is normal
    if (!(index <= this.lastIndex())) fail(`commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Leader commit rule: only an entry of the current term is committed by counting replicas. */
  maybeCommit(index: number, currentTerm: number): boolean {
    if (index > this.committed && this.term(index) === currentTerm) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  appliedTo(index: number): void {
    if (!(index >= this.compactedIndex || this.pendingSnapshot !== null)) fail(`applied ${index} below compaction point ${this.compactedIndex}`);
    if (!(index >= this.applied && index <= this.committed)) {
      fail(`applied ${index} outside [applied=${this.applied}, committed=${this.committed}]`);
    }
    this.applied = index;
    if (this.applying < index) this.applying = index;
  }

  hasUnstableEntries(): boolean {
    return this.unstableFrom <= this.lastIndex();
  }

  unstableEntries(): Entry[] {
    if (!this.hasUnstableEntries()) return [];
    return this.entries.slice(this.unstableFrom - this.compactedIndex - 1);
  }

  /** The caller has durably written entries up to (index, term). Ignored if since overwritten. */
  stableTo(index: number, term: number): void {
    if (index >= this.unstableFrom && this.term(index) === term) this.unstableFrom = index + 1;
  }

  /** First index to apply next: after applied, or after a pending snapshot that skips ahead. */
  private applyFrom(): number {
    return Math.max(this.applied, this.compactedIndex) + 1;
  }

  hasNextCommittedEntries(): boolean {
    return this.committed >= this.applyFrom();
  }

  /** Committed but not yet applied entries. The caller persists Ready.entries before applying. */
  nextCommittedEntries(): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    const base = this.compactedIndex + 1;
    const out = this.entries.slice(this.applyFrom() - base, this.committed + 1 - base);
    this.applying = this.committed;
    return out;
  }

  /** Does (applied, committed] hold a confChange entry? (Such a node must not campaign.) */
  hasCommittedUnappliedConfChange(): boolean {
    for (let i = this.applyFrom(); i <= this.committed; i++) if (this.entryAt(i).type === 'confChange') return true;
    return false;
  }

  /**
   * The application snapshotted its state machine at applied index `index` (membership
   * `confState`): drop entries <= index. No-op if already compacted that far.
   */
  compact(index: number, confState: ConfState): void {
    if (index <= this.compactedIndex) return;
    if (!(index <= this.applied)) fail(`compact(${index}) beyond applied index ${this.applied}`);
    if (!(index < this.unstableFrom)) fail(`compact(${index}) would drop unpersisted entries (unstable from ${this.unstableFrom})`);
    const term = this.term(index);
    if (term === undefined) fail(`compact(${index}): no entry there`);
    this.entries = this.entries.slice(index - this.compactedIndex);
    this.compactedIndex = index;
    this.compactedTerm = term;
    this.snapshot = { index, term, confState: { voters: confState.voters.slice(), learners: confState.learners.slice() } };
  }

  /** Replaces the whole log by the leader's snapshot `s` (beyond our commit index). */
  restore(s: SnapshotMeta): void {
    if (!(s.index > this.committed)) fail(`restore of snapshot ${s.index} at or below commit ${this.committed}`);
    this.entries = [];
    this.compactedIndex = s.index;
    this.compactedTerm = s.term;
    this.unstableFrom = s.index + 1;
    this.committed = s.index;
    this.snapshot = copySnapshotMeta(s);
    this.pendingSnapshot = this.snapshot;
  }

  /** The application installed `s` (handed out in a Ready): it is applied. */
  snapshotInstalled(s: SnapshotMeta): void {
    if (this.pendingSnapshot === s) this.pendingSnapshot = null;
    if (s.index > this.applied) this.applied = s.index;
    if (this.applying < this.applied) this.applying = this.applied;
  }
}

export function copySnapshotMeta(s: SnapshotMeta): SnapshotMeta {
  return { index: s.index, term: s.term, confState: { voters: s.confState.voters.slice(), learners: s.confState.learners.slice() } };
}

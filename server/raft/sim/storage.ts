// Simulated durable storage of one node: what survives a crash. Holds the persisted log (from
// firstIndex on), hard state, the latest snapshot (metadata + state-machine data) and the
// applied index + membership of the (durable) state machine, and turns them back into a
// PersistedState for restart.

import type { ConfState, Entry, HardState, PersistedState, SnapshotMeta } from '../types.ts';

/** The simulator's state machine is the list of applied entries; a snapshot is a prefix of it. */
export interface SimSnapshot {
  meta: SnapshotMeta;
  data: readonly Entry[];
}

export class SimStorage {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  /** entries[i] has index firstIndex + i. */
  private entries: Entry[] = [];
  private first = 1;
  snapshot: SimSnapshot | null = null;
  applied = 0;
  /** Membership as of `applied` (null: bootstrap config). */
  confState: ConfState | null = null;

  firstIndex(): number {
    return this.first;
  }

  lastIndex(): number {
    return this.first + this.entries.length - 1;
  }

  /** Stored entry at `index` (firstIndex <= index <= lastIndex). */
  entry(index: number): Entry {
    const e = this.entries[index - this.first];
    if (e === undefined) throw new Error(`storage has no entry ${index} (range ${this.first}..${this.lastIndex()})`);
    return e;
  }

  /** Writes Ready.entries: truncates the log at entries[0].index, then appends. */
  append(ents: Entry[]): void {
    if (ents.length === 0) return;
    const from = ents[0].index;
    if (from < this.first || from > this.lastIndex() + 1) {
      throw new Error(`storage append at ${from} leaves a gap or rewrites compacted entries (${this.first}..${this.lastIndex()})`);
    }
    this.entries.length = from - this.first;
    for (const e of ents) this.entries.push(e);
  }

  setHardState(hs: HardState): void {
    this.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  /** Ready.snapshot: the whole stored log is replaced by the snapshot point. */
  applySnapshot(snap: SimSnapshot): void {
    this.entries = [];
    this.first = snap.meta.index + 1;
    this.snapshot = snap;
  }

  /** The application snapshotted at `snap.meta.index` (<= applied): drop the log up to it. */
  compact(snap: SimSnapshot): void {
    const index = snap.meta.index;
    if (index < this.first) return;
    if (index > this.applied) throw new Error(`compact(${index}) beyond applied ${this.applied}`);
    this.entries = this.entries.slice(index - this.first + 1);
    this.first = index + 1;
    this.snapshot = snap;
  }

  toPersisted(): PersistedState {
    const p: PersistedState = { hardState: { ...this.hardState }, entries: this.entries.slice(), firstIndex: this.first, applied: this.applied };
    if (this.confState !== null) p.confState = this.confState;
    if (this.snapshot !== null) p.snapshot = this.snapshot.meta;
    return p;
  }
}

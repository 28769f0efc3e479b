// Simulated durable storage of one node: what survives a crash. Holds the persisted log and
// hard state (written from Ready.entries/hardState) and the applied index of the (durable)
// state machine, and turns them back into a PersistedState for restart.

import type { Entry, HardState, PersistedState } from '../types.ts';

export class SimStorage {
  hardState: HardState = { term: 0, vote: 0, commit: 0 };
  /** entries[i] has index i + 1 (no compaction in the simulator yet). */
  readonly entries: Entry[] = [];
  applied = 0;

  lastIndex(): number {
    return this.entries.length;
  }

  /** Writes Ready.entries: truncates the log at entries[0].index, then appends. */
  append(ents: Entry[]): void {
    if (ents.length === 0) return;
    const from = ents[0].index;
    if (from < 1 || from > this.entries.length + 1) {
      throw new Error(`storage append at ${from} leaves a gap (last index ${this.entries.length})`);
    }
    this.entries.length = from - 1;
    for (const e of ents) this.entries.push(e);
  }

  setHardState(hs: HardState): void {
    this.hardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
  }

  toPersisted(): PersistedState {
    return { hardState: { ...this.hardState }, entries: this.entries.slice(), firstIndex: 1, applied: this.applied };
  }
}

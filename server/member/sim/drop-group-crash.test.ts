// A group drop (MemberStore.dropGroup) crashed at every point, on the simulation's store double with
// LevelDB's crash semantics (sim-store.ts: a crash keeps the synced batches and a seeded prefix of
// the rest). Whatever survives, the next load sees either the whole group as it was or nothing of it
// but its tombstone; never a half-deleted group (log entries without their hard state, records
// without their applied index), and never a group that lost its term and vote.
import { describe, expect, it } from 'vitest';
import os from 'node:os';
import path from 'node:path';
import { Rng } from '../../raft/rng.ts';
import { groupRange } from '../../storage/keys.ts';
import { TurnBatch, type LoadedGroup } from '../../storage/member-db.ts';
import { SimClock } from './sim-clock.ts';
import { SimDisk, SimStore, type StoreLatency } from './sim-store.ts';

const GROUP = 2;
const OTHER = 3;
const LATENCY: StoreLatency = { syncMinMs: 1, syncMaxMs: 4, writeMaxMs: 2, opsPerMs: 50 };

function fill(batch: TurnBatch, groupId: number): void {
  batch.setHardState(groupId, { term: 7, vote: 3, commit: 20 });
  batch.appendEntries(groupId, Array.from({ length: 20 }, (_, i) => ({ index: i + 1, term: 7, type: 'normal' as const, data: new Uint8Array([i]) })), 0);
  for (let i = 0; i < 30; i++) batch.putState(groupId, Buffer.from(`key-${i}`), Buffer.from(`value-${i}`));
  batch.setApplied(groupId, 20);
  batch.setConfState(groupId, { voters: [1, 2, 3], learners: [] });
}

async function settle(clock: SimClock, p: Promise<unknown>): Promise<void> {
  let done = false;
  void p.then(() => (done = true));
  for (;;) {
    await new Promise((r) => setImmediate(r)); // the store's own continuations first
    if (done) return;
    if (!(await clock.step())) throw new Error('nothing left to run');
  }
}

describe('dropGroup cut short by a crash', () => {
  it('leaves the group whole or gone (tombstone only), at every crash point', async () => {
    const outcomes = { whole: 0, gone: 0 };
    for (let seed = 1; seed <= 200; seed++) {
      const rng = new Rng(seed);
      const clock = new SimClock(0);
      const disk = new SimDisk(path.join(os.tmpdir(), `synod-drop-sim-${seed}`));
      const before = new SimStore(disk, clock, rng, LATENCY, 'a');
      const batch = new TurnBatch();
      fill(batch, GROUP);
      fill(batch, OTHER);
      await settle(clock, before.write(batch, true));
      const whole = await loadNow(clock, before, GROUP);
      const other = await loadNow(clock, before, OTHER);

      void before.dropGroup(GROUP, { term: 9, vote: 1 });
      for (let steps = rng.nextInt(8); steps > 0; steps--) {
        await new Promise((r) => setImmediate(r)); // the drop's own reads and continuations first
        if (!(await clock.step())) break;
      }
      before.crash();
      clock.cancelOwner('a');

      const after = new SimStore(disk, clock, rng, LATENCY, 'b');
      const loaded = await loadNow(clock, after, GROUP);
      if (loaded.entries.length > 0) {
        expect(loaded).toEqual(whole);
        outcomes.whole++;
      } else {
        // The term after the tombstone's (the caller's term 9, above the stored one), and the stored
        // log's last entry as the floor of its votes.
        expect(loaded).toEqual({ hardState: { term: 10, vote: 0, commit: 0 }, entries: [], firstIndex: 1, applied: 0, stateRecords: [], voteFloor: { index: 20, term: 7 } });
        // Loading finished the drop: nothing of the group is left in the store.
        const r = groupRange(GROUP);
        const left = [...disk.durable.keys()].filter((k) => k >= r.gte.toString('latin1') && k < r.lt.toString('latin1'));
        expect(left).toEqual([]);
        const reloaded = await loadNow(clock, new SimStore(disk, clock, rng, LATENCY, 'c'), GROUP);
        expect(reloaded).toEqual(loaded);
        outcomes.gone++;
      }
      expect(await loadNow(clock, after, OTHER)).toEqual(other);
    }
    // Both sides of the crash point were reached.
    expect(outcomes.whole).toBeGreaterThan(10);
    expect(outcomes.gone).toBeGreaterThan(10);
  });
});

async function loadNow(clock: SimClock, store: SimStore, groupId: number): Promise<LoadedGroup> {
  let out: LoadedGroup | undefined;
  await settle(
    clock,
    store.loadGroup(groupId).then((g) => (out = g)),
  );
  return out!;
}

// The member simulation's storage double: a MemberStore (what Member takes instead of MemberDb) that
// keeps LevelDB's crash semantics in memory.
//
// - Batches are applied atomically, one at a time, in the order they were issued; each takes a seeded
//   latency of simulated time (an fsync is slower), and becomes visible to reads when it completes.
// - A batch written with sync: true is durable once it completes, and so is every batch issued before
//   it (LevelDB's log is one file written in order). An unsynced batch is durable only once a later
//   synced batch completed.
// - A crash keeps the durable batches plus a seeded PREFIX of the later ones (completed but unsynced,
//   and the ones still being written): LevelDB's log loses only a suffix. Half of the crashes are
//   "process" crashes (the page cache survives: every completed batch is kept, the ones in flight
//   maybe), half are "power" crashes (any prefix of the unsynced suffix).
// - snapshot() and iterators see a point in time, as LevelDB's do: a snapshot copies the visible
//   state; an iterator reads the state as of its first read.
//
// SimDisk is what survives a crash (the durable records and the snapshot-file directory); a SimStore
// is one incarnation's open database on it.
import type { DbSnapshot, GroupTombstone, LoadedGroup, RawGroupReader, ReplicaLast, TurnBatch } from '../../storage/member-db.ts';
import { decodeTombstone, encodeTombstone, nextTombstone, readGroup, storedReplicaLast } from '../../storage/member-db.ts';
import type { MemberStore } from '../../storage/member-store.ts';
import { STATE_KEY_PREFIX_BYTES, groupRange, logKey, logRange, stateRange, tombstoneKey } from '../../storage/keys.ts';
import type { Rng } from '../../raft/rng.ts';
import type { SimClock } from './sim-clock.ts';

/** Keys are held as latin1 strings: their order is the byte order LevelDB uses. */
type Key = string;

type SimOp = { type: 'put'; key: Key; value: Buffer } | { type: 'del'; key: Key } | { type: 'clear'; gte: Key; lt: Key };

interface PendingBatch {
  ops: SimOp[];
  sync: boolean;
  done: boolean;
}

function k(b: Buffer): Key {
  return b.toString('latin1');
}

function applyOps(target: Map<Key, Buffer>, ops: SimOp[]): void {
  for (const op of ops) {
    if (op.type === 'put') target.set(op.key, op.value);
    else if (op.type === 'del') target.delete(op.key);
    else for (const key of [...target.keys()]) if (key >= op.gte && key < op.lt) target.delete(key);
  }
}

function sortedRange(data: Map<Key, Buffer>, gte: Key, lt: Key): Key[] {
  const keys: Key[] = [];
  for (const key of data.keys()) if (key >= gte && key < lt) keys.push(key);
  return keys.sort();
}

export interface StoreLatency {
  /** Simulated ms a synced batch takes (uniform in [min, max]). */
  syncMinMs: number;
  syncMaxMs: number;
  /** Simulated ms an unsynced batch takes. */
  writeMaxMs: number;
  /** Batch ops written per simulated ms on top of that (a big batch, such as a snapshot install, is slower). */
  opsPerMs: number;
}

export interface CrashOutcome {
  /** Batches not yet durable at the crash, and how many of them the disk kept. */
  undurable: number;
  kept: number;
  /** Unsynced batches that had completed (the member saw them written) and were lost. */
  lostCompletedUnsynced: number;
}

/** What survives a crash of one simulated member. */
export class SimDisk {
  readonly durable = new Map<Key, Buffer>();
  readonly snapshotDir: string;

  constructor(snapshotDir: string) {
    this.snapshotDir = snapshotDir;
  }
}

class SimSnapshot implements DbSnapshot {
  readonly data: Map<Key, Buffer>;

  constructor(data: Map<Key, Buffer>) {
    this.data = data;
  }

  async close(): Promise<void> {}
}

export class SimStore implements MemberStore {
  private readonly disk: SimDisk;
  private readonly clock: SimClock;
  private readonly rng: Rng;
  private readonly latency: StoreLatency;
  private readonly owner: string;
  /** State as of every completed batch (what reads see). */
  private readonly visible: Map<Key, Buffer>;
  /** Batches after the durable point, in issue order (completed ones first). */
  private readonly log: PendingBatch[] = [];
  private lastCompletionMs = 0;
  private dead = false;
  readonly stats = { batches: 0, syncedBatches: 0 };

  constructor(disk: SimDisk, clock: SimClock, rng: Rng, latency: StoreLatency, owner: string) {
    this.disk = disk;
    this.clock = clock;
    this.rng = rng;
    this.latency = latency;
    this.owner = owner;
    this.visible = new Map(disk.durable);
  }

  /** Batches issued and not yet complete (a write in flight). */
  get inFlight(): number {
    return this.log.filter((b) => !b.done).length;
  }

  private enqueue(ops: SimOp[], sync: boolean): Promise<void> {
    if (this.dead) return new Promise<void>(() => {});
    const batch: PendingBatch = { ops, sync, done: false };
    this.log.push(batch);
    this.stats.batches++;
    if (sync) this.stats.syncedBatches++;
    const l = this.latency;
    const took = (sync ? l.syncMinMs + this.rng.nextInt(l.syncMaxMs - l.syncMinMs + 1) : this.rng.nextInt(l.writeMaxMs + 1)) + Math.floor(ops.length / l.opsPerMs);
    const at = Math.max(this.clock.now, this.lastCompletionMs) + took;
    this.lastCompletionMs = at;
    return new Promise<void>((resolve) => {
      this.clock.schedule(
        at - this.clock.now,
        () => {
          if (this.dead) return;
          applyOps(this.visible, ops);
          batch.done = true;
          if (sync) this.makeDurableThrough(batch);
          resolve();
        },
        this.owner,
      );
    });
  }

  private makeDurableThrough(batch: PendingBatch): void {
    const upTo = this.log.indexOf(batch);
    for (const b of this.log.splice(0, upTo + 1)) applyOps(this.disk.durable, b.ops);
  }

  /**
   * The process dies: nothing completes any more, and the disk keeps the durable batches plus a
   * seeded prefix of the rest.
   */
  crash(): CrashOutcome {
    this.dead = true;
    const completed = this.log.filter((b) => b.done).length;
    const n = this.log.length;
    const kept = this.rng.chance(0.5) ? completed + this.rng.nextInt(n - completed + 1) : this.rng.nextInt(n + 1);
    for (let i = 0; i < kept; i++) applyOps(this.disk.durable, this.log[i].ops);
    const lostCompletedUnsynced = Math.max(0, completed - kept);
    this.log.length = 0;
    return { undurable: n, kept, lostCompletedUnsynced };
  }

  // ---- MemberStore ----

  write(batch: TurnBatch, sync: boolean): Promise<void> {
    if (batch.size === 0) return Promise.resolve();
    const ops: SimOp[] = batch.ops.map((op) => (op.type === 'put' ? { type: 'put', key: k(op.key), value: op.value } : { type: 'del', key: k(op.key) }));
    return this.enqueue(ops, sync);
  }

  clearState(groupId: number): Promise<void> {
    const r = stateRange(groupId);
    return this.enqueue([{ type: 'clear', gte: k(r.gte), lt: k(r.lt) }], false);
  }

  clearLogThrough(groupId: number, index: number): Promise<void> {
    // [first log key, logKey(index)]: the key right after logKey(index) in byte order is itself + 0x00.
    return this.enqueue([{ type: 'clear', gte: k(logRange(groupId).gte), lt: k(logKey(groupId, index)) + '\u0000' }], false);
  }

  /** As MemberDb.dropGroup: a synced `removing` tombstone, the clear, then the synced final tombstone. */
  async dropGroup(groupId: number, last?: ReplicaLast): Promise<void> {
    const raw = this.visible.get(k(tombstoneKey(groupId)));
    const stored = await storedReplicaLast(
      {
        get: async (key) => this.visible.get(k(key)),
        lastLogEntry: async (g) => {
          const r = logRange(g);
          const keys = sortedRange(this.visible, k(r.gte), k(r.lt));
          return keys.length > 0 ? this.visible.get(keys[keys.length - 1]) : undefined;
        },
      },
      groupId,
    );
    const tombstone = nextTombstone(raw === undefined ? undefined : decodeTombstone(raw), stored, last);
    await this.enqueue([{ type: 'put', key: k(tombstoneKey(groupId)), value: encodeTombstone(tombstone) }], true);
    await this.clearGroup(groupId, tombstone);
  }

  async storedGroupIds(): Promise<number[]> {
    const ids = new Set<number>();
    const lo = k(groupRange(0).gte);
    const hi = k(Buffer.from([groupRange(0).gte[0] + 1]));
    for (const key of this.visible.keys()) if (key >= lo && key < hi) ids.add(Buffer.from(key, 'latin1').readUInt32BE(1));
    return [...ids].sort((a, b) => a - b);
  }

  private async clearGroup(groupId: number, tombstone: GroupTombstone): Promise<void> {
    const r = groupRange(groupId);
    await this.enqueue([{ type: 'clear', gte: k(r.gte), lt: k(r.lt) }], false);
    await this.enqueue([{ type: 'put', key: k(tombstoneKey(groupId)), value: encodeTombstone({ ...tombstone, removing: false }) }], true);
  }

  snapshot(): DbSnapshot {
    return new SimSnapshot(new Map(this.visible));
  }

  async *stateRecords(groupId: number, snapshot?: DbSnapshot): AsyncGenerator<[Buffer, Buffer]> {
    if (snapshot !== undefined && !(snapshot instanceof SimSnapshot)) throw new Error('not a SimStore snapshot');
    const data = snapshot ? snapshot.data : new Map(this.visible);
    const r = stateRange(groupId);
    for (const key of sortedRange(data, k(r.gte), k(r.lt))) {
      yield [Buffer.from(key, 'latin1').subarray(STATE_KEY_PREFIX_BYTES), data.get(key)!];
    }
  }

  async loadGroup(groupId: number): Promise<LoadedGroup> {
    const raw = this.visible.get(k(tombstoneKey(groupId)));
    const tombstone = raw === undefined ? undefined : decodeTombstone(raw);
    if (tombstone?.removing) await this.clearGroup(groupId, tombstone);
    const data = new Map(this.visible);
    const reader: RawGroupReader = {
      get: async (key) => data.get(k(key)),
      values: async function* (range) {
        for (const key of sortedRange(data, k(range.gte), k(range.lt))) yield data.get(key)!;
      },
      entries: async function* (range) {
        for (const key of sortedRange(data, k(range.gte), k(range.lt))) yield [Buffer.from(key, 'latin1'), data.get(key)!];
      },
    };
    return readGroup(reader, groupId);
  }
}

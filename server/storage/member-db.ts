// The member's durable store on classic-level (LevelDB): loads each Raft group's log, hard state and
// state-machine records at start, and writes everything one event-loop turn produced for every group
// as ONE batch with sync: true (group commit). Nothing here decides anything; it only reads and writes.
//
// Dropping a group (dropGroup: this member stops hosting a replica) deletes its whole keyspace and
// leaves a tombstone outside it holding the replica's last term and vote. The tombstone is written
// first, marked `removing`, and synced; the keyspace is cleared; then the mark is lifted (synced). A
// crash anywhere in between leaves a `removing` tombstone, and the next loadGroup of that group
// finishes the clear before reading: a half-deleted group is never loaded. A group whose hard state
// is absent loads at the term after the tombstone's (commit 0), so a later replica of the same group
// on this member — same Raft id — never votes in a term its predecessor voted in, and ignores every
// message of the predecessor's still in flight (lower terms); and with the tombstone's last log
// position as its vote floor (PersistedState.voteFloor), it neither elects nor becomes a leader its
// predecessor's log would have kept out.
import { ClassicLevel } from 'classic-level';
import type { ConfState, Entry, HardState, LogPosition, NodeId, SnapshotMeta } from '../raft/types.ts';
import {
  CLUSTER_KEY,
  groupRange,
  tombstoneKey,
  STATE_KEY_PREFIX_BYTES,
  appliedKey,
  confStateKey,
  hardStateKey,
  snapshotMetaKey,
  logKey,
  logRange,
  stateKey,
  stateRange,
} from './keys.ts';
import { decodeEntry, decodeHardState, decodeU64, encodeEntry, encodeHardState, encodeU64 } from './codec.ts';
import type { MemberStore } from './member-store.ts';

export interface LoadedGroup {
  hardState: HardState;
  entries: Entry[];
  firstIndex: number;
  applied: number;
  /** Membership persisted with `applied` (absent: never changed since bootstrap or a snapshot). */
  confState?: ConfState;
  /** The log's compaction point, or a received snapshot not yet installed if its index > applied. */
  snapshot?: SnapshotMeta;
  /** State-machine records in their store-relative keyspace, sorted by key bytes. */
  stateRecords: Array<[Buffer, Buffer]>;
  /**
   * The stored log up to `applied` was left unread because it held more than the reader's budget
   * (readGroup's skipAppliedLogAboveBytes): `entries` start after `index`, whose term is `term`. The
   * member compacts its log to `applied` (the state there is exactly what the database holds).
   */
  appliedLogSkipped?: { index: number; term: number };
  /** A dropped predecessor's last log position (its tombstone): see PersistedState.voteFloor. */
  voteFloor?: LogPosition;
}

/** What a dropped group leaves behind (tombstoneKey): its replica's last term, vote and log position. */
export interface GroupTombstone {
  term: number;
  vote: NodeId;
  /**
   * The replica's last log entry: a later replica votes only for candidates at least this up to date
   * (PersistedState.voteFloor). Without it, a replica with an empty log, asked under the same id by a
   * candidate whose membership is stale, elected it over entries the old replica held (the move
   * simulation found a leader so elected without entries already committed).
   */
  lastIndex: number;
  lastTerm: number;
  /** The group's keyspace may still hold keys: the drop was cut short (loadGroup finishes it). */
  removing: boolean;
}

export function encodeTombstone(t: GroupTombstone): Buffer {
  return Buffer.from(JSON.stringify(t));
}

export function decodeTombstone(raw: Buffer): GroupTombstone {
  const t = JSON.parse(raw.toString('utf8')) as Partial<GroupTombstone>;
  if (typeof t.term !== 'number' || typeof t.vote !== 'number') throw new Error(`malformed group tombstone ${raw.toString('utf8')}`);
  return { term: t.term, vote: t.vote, lastIndex: t.lastIndex ?? 0, lastTerm: t.lastTerm ?? 0, removing: t.removing === true };
}

/** What a drop knows of a replica: a term and the vote cast in it (0: none), maybe its last log position. */
export interface ReplicaLast {
  term: number;
  vote: NodeId;
  lastIndex?: number;
  lastTerm?: number;
}

/**
 * The tombstone a drop writes (marked removing): the latest of what is known of the replica — an older
 * tombstone, the stored hard state and log, the caller's (Raft's in-memory state) — so it is never
 * behind what the replica may have acted on. Term and vote: the highest term, and at equal terms a cast
 * vote over none. Log position: the most up to date (Raft's order: last term, then index).
 */
export function nextTombstone(...known: Array<ReplicaLast | undefined>): GroupTombstone {
  const t: GroupTombstone = { term: 0, vote: 0, lastIndex: 0, lastTerm: 0, removing: true };
  for (const k of known) {
    if (!k) continue;
    if (k.term > t.term || (k.term === t.term && t.vote === 0)) {
      t.term = k.term;
      t.vote = k.vote;
    }
    const index = k.lastIndex ?? 0;
    const term = k.lastTerm ?? 0;
    if (term > t.lastTerm || (term === t.lastTerm && index > t.lastIndex)) {
      t.lastIndex = index;
      t.lastTerm = term;
    }
  }
  return t;
}

/** A point-in-time view of the database, for streaming a state-machine snapshot while writes go on. */
export interface DbSnapshot {
  close(): Promise<void>;
}

type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** The writes of one turn, for every group. Built synchronously, written with one synced batch. */
export class TurnBatch {
  readonly ops: BatchOp[] = [];

  /**
   * Appends Raft entries. Entries may overwrite a suffix of the log (a new leader's log wins), so
   * any persisted entry past the new last index is deleted. Returns the group's new last index.
   */
  appendEntries(groupId: number, entries: Entry[], persistedLastIndex: number): number {
    if (entries.length === 0) return persistedLastIndex;
    for (const entry of entries) {
      this.ops.push({ type: 'put', key: logKey(groupId, entry.index), value: encodeEntry(entry) });
    }
    const newLastIndex = entries[entries.length - 1].index;
    for (let index = newLastIndex + 1; index <= persistedLastIndex; index++) {
      this.ops.push({ type: 'del', key: logKey(groupId, index) });
    }
    return newLastIndex;
  }

  setHardState(groupId: number, hardState: HardState): void {
    this.ops.push({ type: 'put', key: hardStateKey(groupId), value: encodeHardState(hardState) });
  }

  setApplied(groupId: number, applied: number): void {
    this.ops.push({ type: 'put', key: appliedKey(groupId), value: encodeU64(applied) });
  }

  stateOps(groupId: number, ops: Array<{ key: Buffer; value: Buffer | null }>): void {
    for (const op of ops) {
      const key = stateKey(groupId, op.key);
      this.ops.push(op.value === null ? { type: 'del', key } : { type: 'put', key, value: op.value });
    }
  }

  setConfState(groupId: number, confState: ConfState): void {
    this.ops.push({ type: 'put', key: confStateKey(groupId), value: Buffer.from(JSON.stringify(confState)) });
  }

  setSnapshotMeta(groupId: number, meta: SnapshotMeta): void {
    this.ops.push({ type: 'put', key: snapshotMetaKey(groupId), value: Buffer.from(JSON.stringify(meta)) });
  }

  /** Deletes log entries in [fromIndex, toIndex] (a stale suffix replaced by a received snapshot). */
  deleteLogRange(groupId: number, fromIndex: number, toIndex: number): void {
    for (let index = fromIndex; index <= toIndex; index++) this.ops.push({ type: 'del', key: logKey(groupId, index) });
  }

  putState(groupId: number, storeKey: Buffer, value: Buffer): void {
    this.ops.push({ type: 'put', key: stateKey(groupId, storeKey), value });
  }

  /** Drops every op on a group's keys (Member.removeGroup: held writes of a removed group). */
  dropGroup(groupId: number): void {
    const { gte, lt } = groupRange(groupId);
    let kept = 0;
    for (const op of this.ops) if (Buffer.compare(op.key, gte) < 0 || Buffer.compare(op.key, lt) >= 0) this.ops[kept++] = op;
    this.ops.length = kept;
  }

  putCluster(record: unknown): void {
    this.ops.push({ type: 'put', key: CLUSTER_KEY, value: Buffer.from(JSON.stringify(record)) });
  }

  get size(): number {
    return this.ops.length;
  }
}

/** The raw reads a group load needs: LevelDB's, or a test double's (server/member/sim/sim-store.ts). */
export interface RawGroupReader {
  get(key: Buffer): Promise<Buffer | undefined>;
  values(range: { gte: Buffer; lt: Buffer }): AsyncIterable<Buffer>;
  entries(range: { gte: Buffer; lt: Buffer }): AsyncIterable<[Buffer, Buffer]>;
  /** Approximate stored bytes in [gte, lt); without it the whole log is always read. */
  approximateSize?(range: { gte: Buffer; lt: Buffer }): Promise<number>;
}

/**
 * A restart reads the stored log up to the applied index only if it holds at most this much. Those
 * entries are already in the state machine; they are kept in memory only for followers a little
 * behind. With 500 MiB in the log a restart read it all (and held it, beside the same values in the
 * MVCC store); past this budget the member instead compacts its log to the applied index at start
 * (a follower behind that gets a snapshot if this member leads) — what --snapshot-count would do
 * later anyway. The same figure as Raft's uncommitted-bytes limit: a log this size replays quickly.
 */
export const SKIP_APPLIED_LOG_ABOVE_BYTES = 64 * 1024 * 1024;

/** Decodes one group's stored state (MemberDb.loadGroup; shared so store doubles load exactly alike). */
export async function readGroup(db: RawGroupReader, groupId: number): Promise<LoadedGroup> {
  const tombRaw = await db.get(tombstoneKey(groupId));
  const tombstone = tombRaw === undefined ? undefined : decodeTombstone(tombRaw);
  if (tombstone?.removing) throw new Error(`group ${groupId}: its removal was cut short; the store must finish it before loading`);
  const hsRaw = await db.get(hardStateKey(groupId));
  const appliedRaw = await db.get(appliedKey(groupId));
  const confRaw = await db.get(confStateKey(groupId));
  const snapRaw = await db.get(snapshotMetaKey(groupId));
  const snapshot = snapRaw === undefined ? undefined : (JSON.parse(snapRaw.toString('utf8')) as SnapshotMeta);
  const applied = appliedRaw === undefined ? 0 : decodeU64(appliedRaw);
  let logRead = logRange(groupId);
  let appliedLogSkipped: { index: number; term: number } | undefined;
  if (db.approximateSize && applied > (snapshot?.index ?? 0)) {
    const appliedLogBytes = await db.approximateSize({ gte: logRange(groupId).gte, lt: logKey(groupId, applied + 1) });
    const appliedEntry = appliedLogBytes > SKIP_APPLIED_LOG_ABOVE_BYTES ? await db.get(logKey(groupId, applied)) : undefined;
    if (appliedEntry !== undefined) {
      appliedLogSkipped = { index: applied, term: decodeEntry(appliedEntry).term };
      logRead = { gte: logKey(groupId, applied + 1), lt: logRead.lt };
    }
  }
  const entries: Entry[] = [];
  const stateRecords: Array<[Buffer, Buffer]> = [];
  // The log and the state records are read at once: LevelDB serves each iterator from libuv's thread
  // pool, so with hundreds of MiB in each (a restart with 500 MiB in the log reads both) the two
  // reads overlap instead of adding up.
  await Promise.all([
    (async () => {
      for await (const value of db.values(logRead)) {
        const entry = decodeEntry(value);
        // Entries at or below the snapshot point are covered by it: left over when a compaction's
        // deletion (which runs after the snapshot point is durable) was cut short by a crash.
        if (snapshot && entry.index <= snapshot.index) continue;
        entries.push(entry);
      }
    })(),
    (async () => {
      for await (const [key, value] of db.entries(stateRange(groupId))) {
        stateRecords.push([key.subarray(STATE_KEY_PREFIX_BYTES), value]);
      }
    })(),
  ]);
  const logStartsAfter = appliedLogSkipped?.index ?? snapshot?.index;
  if (logStartsAfter !== undefined && entries.length > 0 && entries[0].index !== logStartsAfter + 1) {
    throw new Error(`group ${groupId}: log starts at ${entries[0].index} after ${appliedLogSkipped ? 'applied index' : 'snapshot'} ${logStartsAfter}`);
  }
  for (let i = 1; i < entries.length; i++) {
    if (entries[i].index !== entries[i - 1].index + 1) {
      throw new Error(`group ${groupId}: log has a hole between ${entries[i - 1].index} and ${entries[i].index}`);
    }
  }
  return {
    // No hard state: a group never hosted here (term 0), or one whose earlier replica was dropped: the
    // term after its tombstone's, with no vote (commit 0, the log being empty). Past the last term
    // the predecessor knew, it never votes again in a term its predecessor voted in, and every message
    // still in flight to or from the predecessor (a heartbeat committing entries this log lacks, an
    // acknowledgement of entries it never had) carries a lower term and is ignored: same Raft id, but
    // no message of the old replica is taken for the new one's (the move simulation found both).
    hardState: hsRaw !== undefined ? decodeHardState(hsRaw) : tombstone ? { term: tombstone.term + 1, vote: 0, commit: 0 } : { term: 0, vote: 0, commit: 0 },
    entries,
    firstIndex: logStartsAfter !== undefined ? logStartsAfter + 1 : entries.length > 0 ? entries[0].index : 1,
    applied,
    ...(confRaw === undefined ? {} : { confState: JSON.parse(confRaw.toString('utf8')) as ConfState }),
    ...(snapshot ? { snapshot } : {}),
    stateRecords,
    ...(appliedLogSkipped ? { appliedLogSkipped } : {}),
    ...(tombstone && tombstone.lastIndex > 0 ? { voteFloor: { index: tombstone.lastIndex, term: tombstone.lastTerm } } : {}),
  };
}

/** What a drop with no caller's knowledge reads of a stored replica: its hard state and last log position. */
export async function storedReplicaLast(db: Pick<RawGroupReader, 'get'> & { lastLogEntry(groupId: number): Promise<Buffer | undefined> }, groupId: number): Promise<ReplicaLast | undefined> {
  const hsRaw = await db.get(hardStateKey(groupId));
  const lastRaw = await db.lastLogEntry(groupId);
  const snapRaw = await db.get(snapshotMetaKey(groupId));
  if (hsRaw === undefined && lastRaw === undefined && snapRaw === undefined) return undefined;
  const hs = hsRaw === undefined ? { term: 0, vote: 0 } : decodeHardState(hsRaw);
  const last = lastRaw !== undefined ? decodeEntry(lastRaw) : snapRaw !== undefined ? (JSON.parse(snapRaw.toString('utf8')) as SnapshotMeta) : undefined;
  return { term: hs.term, vote: hs.vote, ...(last ? { lastIndex: last.index, lastTerm: last.term } : {}) };
}

export class MemberDb implements MemberStore {
  private readonly db: ClassicLevel<Buffer, Buffer>;

  private constructor(db: ClassicLevel<Buffer, Buffer>) {
    this.db = db;
  }

  static async open(dir: string): Promise<MemberDb> {
    const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    return new MemberDb(db);
  }

  async loadCluster<T>(): Promise<T | null> {
    const raw = await this.db.get(CLUSTER_KEY);
    return raw === undefined ? null : (JSON.parse(raw.toString('utf8')) as T);
  }

  async loadGroup(groupId: number): Promise<LoadedGroup> {
    await this.finishDrop(groupId);
    // fillCache off: a bulk read of everything would only evict what the block cache holds.
    return readGroup(
      {
        get: (key) => this.db.get(key),
        values: (range) => this.db.values({ ...range, fillCache: false }),
        entries: (range) => this.db.iterator({ ...range, fillCache: false }),
        approximateSize: (range) => this.db.approximateSize(range.gte, range.lt),
      },
      groupId,
    );
  }

  /** Every state-machine record of a group (store-relative keys), optionally as of a snapshot. */
  async *stateRecords(groupId: number, snapshot?: DbSnapshot): AsyncGenerator<[Buffer, Buffer]> {
    const options = snapshot ? { ...stateRange(groupId), snapshot: snapshot as never } : stateRange(groupId);
    for await (const [key, value] of this.db.iterator(options)) {
      yield [key.subarray(STATE_KEY_PREFIX_BYTES), value];
    }
  }

  /** A consistent view of the database as of now (synchronous, so it sees exactly the writes done). */
  snapshot(): DbSnapshot {
    return this.db.snapshot();
  }

  /** The tombstone a dropped group left, if any. */
  async tombstone(groupId: number): Promise<GroupTombstone | undefined> {
    const raw = await this.db.get(tombstoneKey(groupId));
    return raw === undefined ? undefined : decodeTombstone(raw);
  }

  /**
   * Deletes every key of a group and leaves its tombstone (see the header): the latest of `last`, the
   * stored hard state and an older tombstone. The caller guarantees nothing writes the group's keys
   * meanwhile or after (Member.removeGroup; or a start that does not host the group).
   */
  async dropGroup(groupId: number, last?: ReplicaLast): Promise<void> {
    const stored = await storedReplicaLast({ get: (key) => this.db.get(key), lastLogEntry: (g) => this.lastLogEntry(g) }, groupId);
    const tombstone = nextTombstone(await this.tombstone(groupId), stored, last);
    await this.db.put(tombstoneKey(groupId), encodeTombstone(tombstone), { sync: true });
    await this.clearGroup(groupId, tombstone);
  }

  private async lastLogEntry(groupId: number): Promise<Buffer | undefined> {
    const last = await this.db.values({ ...logRange(groupId), reverse: true, limit: 1 }).all();
    return last[0];
  }

  /** Every group with a key in the store (hosted or not; a tombstone alone does not count), ascending. */
  async storedGroupIds(): Promise<number[]> {
    const ids: number[] = [];
    const keys = this.db.keys({ gte: groupRange(0).gte, lt: Buffer.from([groupRange(0).gte[0] + 1]) });
    try {
      // One seek per group: past each group's keyspace to the next one's first key.
      for (let key = await keys.next(); key !== undefined; key = await keys.next()) {
        const groupId = key.readUInt32BE(1);
        ids.push(groupId);
        keys.seek(groupRange(groupId).lt);
      }
    } finally {
      await keys.close();
    }
    return ids;
  }

  /** Finishes a drop a crash cut short (a `removing` tombstone). */
  private async finishDrop(groupId: number): Promise<void> {
    const tombstone = await this.tombstone(groupId);
    if (tombstone?.removing) await this.clearGroup(groupId, tombstone);
  }

  private async clearGroup(groupId: number, tombstone: GroupTombstone): Promise<void> {
    await this.db.clear(groupRange(groupId));
    await this.db.put(tombstoneKey(groupId), encodeTombstone({ ...tombstone, removing: false }), { sync: true });
  }

  /** Removes a group's state-machine records (before a received snapshot's records replace them). */
  async clearState(groupId: number): Promise<void> {
    await this.db.clear(stateRange(groupId));
  }

  /** Removes log entries up to and including `index` (after the snapshot point covering them is durable). */
  async clearLogThrough(groupId: number, index: number): Promise<void> {
    await this.db.clear({ gte: logRange(groupId).gte, lte: logKey(groupId, index) });
  }

  /** Writes one turn's batch; with `sync` it is durable (fsynced) before the promise resolves. */
  async write(batch: TurnBatch, sync: boolean): Promise<void> {
    if (batch.size === 0) return;
    await this.db.batch(batch.ops, { sync });
  }

  /**
   * Rewrites the database files so deleted records (compacted MVCC history, compacted log) no longer
   * take disk space: etcd's defragment, done by LevelDB's compactRange over the whole keyspace.
   */
  async compactAll(): Promise<void> {
    // Twice: LevelDB picks the levels to compact before it flushes the memtable, so when the data
    // sat in the memtable the first pass only writes it out as a table, and the second compacts that.
    for (let pass = 0; pass < 2; pass++) await this.db.compactRange(Buffer.from([0x00]), Buffer.from([0xff, 0xff, 0xff, 0xff]));
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

// The MVCC state machine: etcd v3 KV semantics (revisions, generations, txn, compaction) over an
// in-memory ordered index, with change-tracking for persistence and an event log for watch replay.
//
// Layout (sized for memory: a key costs a few small heap objects and its bytes, see docs/performance.md)
//   tree      BTree of KeyIndex (one per key ever written and not yet compacted away), byte order.
//   KeyIndex  key + head: the newest retained revision record of the key. Keys and values are held as
//             latin1 strings (one char per byte): a short heap string costs its bytes plus 16, where a
//             Buffer costs a JS object, an ArrayBuffer and a malloc'd backing store (~300 B more).
//             Values of LARGE_VALUE_BYTES or more are held as Buffers instead (see StoredValue).
//   Rev       one revision record; `prev` links to the key's next older retained record, so the
//             newest is at hand and history is a walk back (as etcd's keyIndex walks its
//             generations). value === null marks a tombstone (it ends a generation).
//   log       every retained record with main > compactedRevision, in (main, sub) order: watch replay
//             scans it from the start revision instead of the whole keyspace. A cross-shard
//             transaction's share numbers its subs by its ops' places in the whole transaction
//             (txn-op-position.ts), so its events say which op made them.
//   dirty     keys that have something compaction may remove (more than one record, or a tombstone);
//             compaction only visits these, not every key.
//   persist   encoded records not yet drained; the store keeps no encoded copy of its own.
//
// Buffers handed out in results and events are fresh copies, or the request's own buffers (the key
// and value of a put): callers must not mutate them.
//
// Revisions. Unsharded (S = 1), every write that changes something takes currentRevision() + 1, as etcd.
// In a sharded cluster revisions come from one oracle, so a shard's writes carry explicit revisions
// with gaps (other shards used the ones between): put/deleteRange/txn take `atRevision`, which must be
// above every revision the store has written or compacted (a broken precondition is an invariant
// violation and throws a plain Error before anything changes). Reads walk each key's records back to
// the newest one at or below the asked revision, so a revision inside a gap answers the state as of the
// previous written one, and compaction at a gap revision keeps exactly that state. currentRevision()
// stays the last written revision; reads and compactions that the caller knows are caught up further
// (every revision up to R applied, none of the ones after the last write belonging to this shard)
// pass `throughRevision` = R, which only widens what counts as "not a future revision".

import { BTree } from './btree.ts';
import { positionedSubFloor, positionOfSub, validPositions } from './txn-op-position.ts';
import {
  META_KEY,
  TOMBSTONE_VALUE,
  decodeMeta,
  decodeRevKey,
  decodeValue,
  encodeLiveValue,
  encodeMeta,
  encodeRevKey,
  isMetaKey,
  isRevKey,
} from './codec.ts';
import { MvccError } from './types.ts';
import type {
  Compare,
  DeleteRangeOp,
  DeleteRangeResult,
  KeyValue,
  LeaseId,
  MvccEvent,
  PutOp,
  PutResult,
  RangeOp,
  RangeResult,
  ResponseOp,
  SortTarget,
  TxnOp,
  TxnResult,
} from './types.ts';

const EMPTY = Buffer.alloc(0);

/**
 * A value as the store holds it: a latin1 string below LARGE_VALUE_BYTES, the bytes themselves from
 * there. For a large value the Buffer's ~300 B overhead is noise, while a heap string would cost a
 * latin1 conversion on every read of it (a Range over 300 × 1 MiB converted 300 MiB, synchronously)
 * and on every restart (the restore's biggest cost), and would sit in V8's heap for the GC to tend.
 */
type StoredValue = string | Buffer;

export const LARGE_VALUE_BYTES = 4096;

/** A large value's Buffer may be a view of a bigger one (a Raft entry, a LevelDB record): keep the view only when it pins little more. */
const MAX_PINNED_SLACK_BYTES = 4096;

function storedValue(v: Buffer): StoredValue {
  if (v.length < LARGE_VALUE_BYTES) return v.toString('latin1');
  return v.buffer.byteLength - v.length <= MAX_PINNED_SLACK_BYTES ? v : Buffer.from(v);
}

function valueBytes(v: StoredValue): Buffer {
  return typeof v === 'string' ? bytes(v) : v;
}

function cmpValue(a: StoredValue, b: StoredValue): number {
  if (typeof a === 'string' && typeof b === 'string') return cmpStr(a, b);
  return Buffer.compare(valueBytes(a), valueBytes(b));
}

/**
 * What one retained record costs in the store's size measure beyond its key and value bytes (its
 * revision key framing, record header and index entry, rounded). The space quota (server/shard/quota.ts)
 * compares `sizeBytes()` against --quota-backend-bytes, and prices a request's puts the same way.
 */
export const RECORD_OVERHEAD_BYTES = 32;

function recordBytes(r: Rev): number {
  return r.ki.key.length + (r.value === null ? 0 : r.value.length) + RECORD_OVERHEAD_BYTES;
}

class KeyIndex {
  /** The key's bytes as a latin1 string. */
  readonly key: string;
  /** Newest retained record; null when compaction removed every record (kept for reuse). */
  head: Rev | null = null;
  constructor(key: string) {
    this.key = key;
  }
}

class Rev {
  readonly main: number;
  readonly sub: number;
  readonly create: number;
  readonly version: number;
  readonly lease: string;
  /** The value (see StoredValue); null for a tombstone. */
  readonly value: StoredValue | null;
  /** The key's next older retained record (compaction cuts the chain). */
  prev: Rev | null;
  readonly ki: KeyIndex;
  constructor(main: number, sub: number, create: number, version: number, lease: string, value: StoredValue | null, prev: Rev | null, ki: KeyIndex) {
    this.main = main;
    this.sub = sub;
    this.create = create;
    this.version = version;
    this.lease = lease;
    this.value = value;
    this.prev = prev;
    this.ki = ki;
  }
}

export interface WriteOutcome<R> {
  result: R;
  /** Header revision after the op. */
  revision: number;
  events: MvccEvent[];
}

export interface PersistOp {
  key: Buffer;
  /** null = delete the key. */
  value: Buffer | null;
}

interface WriteCtx {
  main: number;
  /** The next change's sub-revision. */
  sub: number;
  /** Changes made so far (sub counts them too, except in a positioned share: txn-op-position.ts). */
  changes: number;
  /** The position of the op running, in a share applied with positions (undefined: plain). */
  position: number | undefined;
  events: MvccEvent[];
  /** The revision this write's reads treat as current until it changes something (main - 1 at an explicit revision). */
  through: number;
}

/** The sub-revision of a write's next change, counted. */
function nextSub(ctx: WriteCtx): number {
  ctx.changes++;
  return ctx.sub++;
}

function bytes(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function toKV(r: Rev, keysOnly = false, key: Buffer = bytes(r.ki.key)): KeyValue {
  return {
    key,
    createRevision: r.create,
    modRevision: r.main,
    version: r.version,
    value: keysOnly ? EMPTY : valueBytes(r.value as StoredValue),
    lease: r.lease,
  };
}

function deleteKV(key: Buffer, main: number): KeyValue {
  return { key, createRevision: 0, modRevision: main, version: 0, value: EMPTY, lease: '0' };
}

function latestLive(ki: KeyIndex): Rev | null {
  const r = ki.head;
  return r === null || r.value === null ? null : r;
}

/** The record of ki visible at revision `at`, or null if the key did not exist then. */
function visibleAt(ki: KeyIndex, at: number): Rev | null {
  let r = ki.head;
  while (r !== null && r.main > at) r = r.prev;
  return r === null || r.value === null ? null : r;
}

/** Whether the record is still in its key's chain (compaction has not removed it). */
function retained(r: Rev): boolean {
  for (let x = r.ki.head; x !== null; x = x.prev) if (x === r) return true;
  return false;
}

function isFromKey(rangeEnd: Buffer): boolean {
  return rangeEnd.length === 1 && rangeEnd[0] === 0;
}

/** Whether k is in the range named by (key, rangeEnd) in etcd's range forms. */
export function keyInRange(k: Buffer, key: Buffer, rangeEnd: Buffer): boolean {
  if (rangeEnd.length === 0) return k.equals(key);
  if (Buffer.compare(k, key) < 0) return false;
  return isFromKey(rangeEnd) || Buffer.compare(k, rangeEnd) < 0;
}

/** A range in etcd's forms, over latin1 key strings: end null = every key >= key, '' key alone. */
interface KeyRange {
  key: string;
  single: boolean;
  end: string | null;
}

function keyRange(key: Buffer, rangeEnd: Buffer): KeyRange {
  return {
    key: key.toString('latin1'),
    single: rangeEnd.length === 0,
    end: rangeEnd.length === 0 || isFromKey(rangeEnd) ? null : rangeEnd.toString('latin1'),
  };
}

function inKeyRange(k: string, r: KeyRange): boolean {
  if (r.single) return k === r.key;
  return k >= r.key && (r.end === null || k < r.end);
}

function lease64(s: string): bigint {
  try {
    return BigInt(s);
  } catch {
    return 0n;
  }
}

function compareLease(a: string, b: string): number {
  if (a === b) return 0;
  const x = lease64(a);
  const y = lease64(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

const ZERO_KV = { version: 0, create: 0, main: 0, lease: '0' };

/**
 * One compare against one key as a read returned it (`kv`), or against the zero KeyValue (null), exactly
 * as the store compares its own records: a sharded txn evaluates its compare's part on other shards
 * with this (server/shard/txn-reads.ts).
 */
export function compareKeyValue(c: Compare, kv: KeyValue | null): boolean {
  switch (c.target) {
    case 'VALUE':
      return kv !== null && compareResult(c, Buffer.compare(kv.value, c.value));
    case 'VERSION':
      return compareResult(c, Math.sign((kv?.version ?? 0) - c.version));
    case 'CREATE':
      return compareResult(c, Math.sign((kv?.createRevision ?? 0) - c.createRevision));
    case 'MOD':
      return compareResult(c, Math.sign((kv?.modRevision ?? 0) - c.modRevision));
    case 'LEASE':
      return compareResult(c, compareLease(kv?.lease ?? '0', c.lease));
  }
  return true;
}

/** A compare's part evaluated elsewhere: whether some key matched its range there, and whether all passed. */
export interface ComparePart {
  any: boolean;
  ok: boolean;
}

/**
 * A compare's verdict from what it found over every key of its range (its parts combined): as one store
 * compares — with no key a value compare fails, any other compares the zero KeyValue.
 */
export function compareVerdict(c: Compare, part: ComparePart): boolean {
  if (part.any) return part.ok;
  return c.target === 'VALUE' ? false : compareKeyValue(c, null);
}

/**
 * The parts of a txn's reads answered by other stores (a sharded cluster's other shards, read at the
 * txn's revision − 1 by the shard leader and carried in the entry), combined here with this store's part.
 */
export interface TxnReadsElsewhere {
  /** The other shards' part of this compare, or undefined when it touches none. */
  compare(c: Compare): ComparePart | undefined;
  /** The whole answer of this range op given this store's part (`local`), or undefined when it touches no other shard. */
  range(op: RangeOp, local: (perShard: RangeOp) => RangeResult): RangeResult | undefined;
}

function compareResult(c: Compare, cmp: number): boolean {
  switch (c.result) {
    case 'EQUAL':
      return cmp === 0;
    case 'NOT_EQUAL':
      return cmp !== 0;
    case 'GREATER':
      return cmp > 0;
    case 'LESS':
      return cmp < 0;
  }
  return true;
}

function sortComparator(target: SortTarget): (a: Rev, b: Rev) => number {
  switch (target) {
    case 'KEY':
      return (a, b) => cmpStr(a.ki.key, b.ki.key);
    case 'VERSION':
      return (a, b) => a.version - b.version;
    case 'CREATE':
      return (a, b) => a.create - b.create;
    case 'MOD':
      return (a, b) => a.main - b.main;
    case 'VALUE':
      return (a, b) => cmpValue(a.value as StoredValue, b.value as StoredValue);
  }
}

export class MvccStore {
  private tree = new BTree<KeyIndex>();
  private rev = 1;
  private compacted = 0;
  private log: Rev[] = [];
  private dirty = new Set<KeyIndex>();
  /** KeyIndex entries in the tree with no records (kept for reuse until the tree is rebuilt). */
  private emptyKeys = 0;
  private persist: PersistOp[] = [];
  /** True until the meta record (revision counters) is persisted; a fresh store persists it too. */
  private metaDirty = true;
  /** Sum of recordBytes over every retained record (live and historical): the quota's measure. */
  private bytes = 0;

  /**
   * Logical size of every retained record, live and historical (keys + values + a fixed overhead
   * each). Deterministic: every member holds the same records at the same applied index. Only
   * compaction lowers it.
   */
  sizeBytes(): number {
    return this.bytes;
  }

  currentRevision(): number {
    return this.rev;
  }

  /**
   * Takes over another store's whole state (a Raft snapshot replaced this member's data). The object
   * identity stays, so the watch hub and services holding this store see the new state.
   */
  adopt(other: MvccStore): void {
    const leaseExists = this.leaseExists;
    Object.assign(this, other);
    this.leaseExists = leaseExists;
  }

  compactedRevision(): number {
    return this.compacted;
  }

  /** Number of keys that exist at the current revision (O(keys); for metrics/tests). */
  keyCount(): number {
    let n = 0;
    this.tree.forEachFrom(null, (ki) => {
      if (latestLive(ki) !== null) n++;
    });
    return n;
  }

  // ---------------------------------------------------------------- reads

  private forEachVisible(key: Buffer, rangeEnd: Buffer, at: number, visit: (r: Rev) => void): void {
    const k = key.toString('latin1');
    if (rangeEnd.length === 0) {
      const ki = this.tree.get(k);
      if (ki !== undefined) {
        const r = visibleAt(ki, at);
        if (r !== null) visit(r);
      }
      return;
    }
    const end = isFromKey(rangeEnd) ? null : rangeEnd.toString('latin1');
    if (end !== null && k >= end) return;
    this.tree.forEachFrom(k, (ki) => {
      if (end !== null && ki.key >= end) return false;
      const r = visibleAt(ki, at);
      if (r !== null) visit(r);
      return true;
    });
  }

  /**
   * etcd's Range. `throughRevision` (default: currentRevision()) is the revision the caller knows the
   * store is caught up to; revision 0 reads at it, and only revisions above it are future ones.
   */
  range(op: RangeOp, throughRevision?: number): RangeResult {
    return this.rangeAt(op, this.caughtUpThrough(throughRevision));
  }

  private caughtUpThrough(throughRevision: number | undefined): number {
    if (throughRevision === undefined) return this.rev;
    if (!Number.isSafeInteger(throughRevision) || throughRevision < this.rev) {
      throw new Error(`mvcc invariant: caught up through revision ${throughRevision}, below the last written revision ${this.rev}`);
    }
    return throughRevision;
  }

  private rangeAt(op: RangeOp, curRev: number): RangeResult {
    let at = op.revision;
    if (at > curRev) throw new MvccError('futureRev', 'mvcc: required revision is a future revision');
    if (at <= 0) at = curRev;
    if (at < this.compacted) throw new MvccError('compacted', 'mvcc: required revision has been compacted');

    if (op.countOnly) {
      let count = 0;
      this.forEachVisible(op.key, op.rangeEnd, at, () => {
        count++;
      });
      return { kvs: [], more: false, count };
    }

    let order = op.sortOrder;
    if (op.sortTarget !== 'KEY' && order === 'NONE') order = 'ASCEND';
    else if (op.sortTarget === 'KEY' && order === 'ASCEND') order = 'NONE';
    const filtered = op.minModRevision !== 0 || op.maxModRevision !== 0 || op.minCreateRevision !== 0 || op.maxCreateRevision !== 0;
    const limit = op.limit > 0 ? op.limit : Infinity;

    if (order === 'NONE' && !filtered) {
      const kvs: KeyValue[] = [];
      let count = 0;
      this.forEachVisible(op.key, op.rangeEnd, at, (r) => {
        count++;
        if (kvs.length < limit) kvs.push(toKV(r, op.keysOnly));
      });
      return { kvs, more: count > kvs.length, count };
    }

    let revs: Rev[] = [];
    this.forEachVisible(op.key, op.rangeEnd, at, (r) => {
      revs.push(r);
    });
    const count = revs.length;
    if (filtered) {
      const { minModRevision: minMod, maxModRevision: maxMod, minCreateRevision: minCreate, maxCreateRevision: maxCreate } = op;
      revs = revs.filter(
        (r) =>
          (maxMod === 0 || r.main <= maxMod) &&
          (minMod === 0 || r.main >= minMod) &&
          (maxCreate === 0 || r.create <= maxCreate) &&
          (minCreate === 0 || r.create >= minCreate),
      );
    }
    if (order !== 'NONE') {
      const cmp = sortComparator(op.sortTarget);
      // Array.prototype.sort is stable: ties stay in key order for both directions.
      revs.sort(order === 'DESCEND' ? (a, b) => cmp(b, a) : cmp);
    }
    const more = revs.length > limit;
    const n = more ? limit : revs.length;
    const kvs = new Array<KeyValue>(n);
    for (let i = 0; i < n; i++) kvs[i] = toKV(revs[i], op.keysOnly);
    return { kvs, more, count };
  }

  // ---------------------------------------------------------------- writes

  /** Starts a write at the next revision, or at `atRevision` (an oracle's), which must be above all history. */
  private begin(atRevision: number | undefined): WriteCtx {
    if (atRevision === undefined) return { main: this.rev + 1, sub: 0, changes: 0, position: undefined, events: [], through: this.rev };
    if (!Number.isSafeInteger(atRevision) || atRevision <= this.rev || atRevision <= this.compacted) {
      throw new Error(
        `mvcc invariant: write at revision ${atRevision} must be above the last written revision ${this.rev} and the compacted revision ${this.compacted}`,
      );
    }
    return { main: atRevision, sub: 0, changes: 0, position: undefined, events: [], through: atRevision - 1 };
  }

  /** Ends a write: bumps the revision iff something changed; returns the header revision. */
  private commit(ctx: WriteCtx): number {
    if (ctx.changes > 0) {
      this.rev = ctx.main;
      this.metaDirty = true;
    }
    return this.rev;
  }

  private rollback(logLen: number, persistLen: number): void {
    for (let i = this.log.length - 1; i >= logLen; i--) {
      const r = this.log[i];
      this.bytes -= recordBytes(r);
      r.ki.head = r.prev;
      if (r.ki.head === null) this.emptyKeys++;
    }
    this.log.length = logLen;
    this.persist.length = persistLen;
  }

  /** Makes r the key's newest record; `key` is the key's bytes, `record` its encoded record (null: tombstone). */
  private append(ki: KeyIndex, r: Rev, key: Buffer, record: Buffer | null): void {
    ki.head = r;
    this.bytes += recordBytes(r);
    this.log.push(r);
    this.persist.push({ key: encodeRevKey(key, r.main, r.sub), value: record ?? TOMBSTONE_VALUE });
  }

  private keyMissing(key: Buffer): boolean {
    const ki = this.tree.get(key.toString('latin1'));
    return ki === undefined || latestLive(ki) === null;
  }

  /**
   * Whether a lease exists; puts naming a lease that doesn't are refused before anything changes.
   * The lease state machine sets this; without one every lease is accepted.
   */
  leaseExists: (lease: LeaseId) => boolean = () => true;
  /** Set only while a txn runs with reads answered elsewhere (see TxnReadsElsewhere). */
  private elsewhere: TxnReadsElsewhere | null = null;

  private checkLease(op: PutOp): void {
    if (!op.ignoreLease && op.lease !== '0' && op.lease !== '' && !this.leaseExists(op.lease)) {
      throw new MvccError('leaseNotFound', 'etcdserver: requested lease not found');
    }
  }

  /**
   * etcd's Put, at the next revision or at `atRevision`. A write that changes nothing (none of Put, but
   * a DeleteRange or Txn may) leaves currentRevision() as it was and reports it as the header revision.
   */
  put(op: PutOp, atRevision?: number): WriteOutcome<PutResult> {
    const ctx = this.begin(atRevision);
    this.checkLease(op);
    if ((op.ignoreValue || op.ignoreLease) && this.keyMissing(op.key)) throw new MvccError('keyNotFound', 'etcdserver: key not found');
    const result = this.doPut(ctx, op);
    return { result, revision: this.commit(ctx), events: ctx.events };
  }

  private doPut(ctx: WriteCtx, op: PutOp): PutResult {
    const keyText = op.key.toString('latin1');
    let ki = this.tree.get(keyText);
    const prev = ki === undefined ? null : latestLive(ki);
    if ((op.ignoreValue || op.ignoreLease) && prev === null) throw new MvccError('keyNotFound', 'etcdserver: key not found');
    const lease = op.ignoreLease ? (prev as Rev).lease : op.lease;
    const create = prev === null ? ctx.main : prev.create;
    const version = prev === null ? 1 : prev.version + 1;
    const valueText = op.ignoreValue ? ((prev as Rev).value as StoredValue) : storedValue(op.value);
    const value = op.ignoreValue ? valueBytes(valueText) : op.value;
    if (ki === undefined) {
      ki = new KeyIndex(keyText);
      this.tree.insert(ki);
    } else if (ki.head === null) {
      this.emptyKeys--;
    } else {
      this.dirty.add(ki);
    }
    const r = new Rev(ctx.main, nextSub(ctx), create, version, lease, valueText, ki.head, ki);
    this.append(ki, r, op.key, encodeLiveValue(create, version, lease, value).buf);
    const prevKv = prev === null ? null : toKV(prev, false, op.key);
    const event: MvccEvent = {
      type: 'PUT',
      kv: { key: op.key, createRevision: create, modRevision: r.main, version, value, lease },
      prevKv,
    };
    if (ctx.position !== undefined) event.txnOpIndex = ctx.position;
    ctx.events.push(event);
    return { prevKv: op.prevKv ? prevKv : null };
  }

  deleteRange(op: DeleteRangeOp, atRevision?: number): WriteOutcome<DeleteRangeResult> {
    const ctx = this.begin(atRevision);
    const result = this.doDeleteRange(ctx, op);
    return { result, revision: this.commit(ctx), events: ctx.events };
  }

  private doDeleteRange(ctx: WriteCtx, op: DeleteRangeOp): DeleteRangeResult {
    // Latest state, including this write's own earlier changes (all records are <= ctx.main).
    const victims: Rev[] = [];
    this.forEachVisible(op.key, op.rangeEnd, ctx.main, (r) => {
      victims.push(r);
    });
    const prevKvs: KeyValue[] = [];
    for (const prev of victims) {
      const ki = prev.ki;
      const key = bytes(ki.key);
      this.dirty.add(ki);
      this.append(ki, new Rev(ctx.main, nextSub(ctx), 0, 0, '0', null, ki.head, ki), key, null);
      const prevKv = toKV(prev, false, key);
      if (op.prevKv) prevKvs.push(prevKv);
      const event: MvccEvent = { type: 'DELETE', kv: deleteKV(key, ctx.main), prevKv };
      if (ctx.position !== undefined) event.txnOpIndex = ctx.position;
      ctx.events.push(event);
    }
    return { deleted: victims.length, prevKvs };
  }

  /**
   * `positions`: a cross-shard transaction's share, each of `op.success`'s ops numbered by its place in
   * the whole transaction (validPositions; txn-op-position.ts), so its records and events carry it.
   */
  txn(op: TxnOp, atRevision?: number, elsewhere?: TxnReadsElsewhere, positions?: readonly number[]): WriteOutcome<TxnResult> {
    // As etcd: every compare on the chosen path (nested ones included) is evaluated against the state
    // before the txn; requests are validated against that state too; then the ops run at one revision.
    const ctx = this.begin(atRevision);
    const path = new Map<TxnOp, boolean>();
    this.elsewhere = elsewhere ?? null;
    try {
      this.evalCompares(op, path);
    } finally {
      this.elsewhere = null;
    }
    this.checkPuts(op, path);
    this.checkRanges(op, path, ctx.through);
    const logLen = this.log.length;
    const persistLen = this.persist.length;
    let result: TxnResult;
    try {
      this.elsewhere = elsewhere ?? null;
      result = this.execTxn(ctx, op, path, op.compare.length === 0 && validPositions(positions, op.success.length) ? positions : undefined);
    } catch (e) {
      // Only reachable for requests etcd would panic on (e.g. ignoreValue on a key deleted earlier in
      // the same txn): undo this txn's changes so the store stays consistent, then report.
      this.rollback(logLen, persistLen);
      throw e;
    } finally {
      this.elsewhere = null;
    }
    return { result, revision: this.commit(ctx), events: ctx.events };
  }

  /**
   * `op` run at `atRevision` and undone: its result, with the store unchanged (a cross-shard
   * transaction's prepare checks its share and answers with it; the commit runs it for real later, on
   * the same state). Refusals throw exactly as txn would.
   */
  previewTxn(op: TxnOp, atRevision: number): TxnResult {
    const ctx = this.begin(atRevision);
    const path = new Map<TxnOp, boolean>();
    this.evalCompares(op, path);
    this.checkPuts(op, path);
    this.checkRanges(op, path, ctx.through);
    const logLen = this.log.length;
    const persistLen = this.persist.length;
    try {
      return this.execTxn(ctx, op, path);
    } finally {
      this.rollback(logLen, persistLen);
    }
  }

  private evalCompares(t: TxnOp, path: Map<TxnOp, boolean>): void {
    let ok = true;
    for (const c of t.compare) {
      if (!this.applyCompare(c)) {
        ok = false;
        break;
      }
    }
    path.set(t, ok);
    for (const r of ok ? t.success : t.failure) if (r.type === 'txn') this.evalCompares(r.txn, path);
  }

  /** A compare's part on this store now: whether any key matched its range here, and whether all passed. */
  comparePart(c: Compare): ComparePart {
    let any = false;
    let ok = true;
    this.forEachVisible(c.key, c.rangeEnd, this.rev, (r) => {
      any = true;
      if (ok && !this.compareOne(c, r)) ok = false;
    });
    return { any, ok };
  }

  private applyCompare(c: Compare): boolean {
    let any = false;
    let ok = true;
    this.forEachVisible(c.key, c.rangeEnd, this.rev, (r) => {
      any = true;
      if (ok && !this.compareOne(c, r)) ok = false;
    });
    const other = this.elsewhere?.compare(c);
    if (other !== undefined) {
      any ||= other.any;
      ok &&= other.ok;
    }
    return compareVerdict(c, { any, ok });
  }

  private compareOne(c: Compare, r: Rev | null): boolean {
    const z = r ?? ZERO_KV;
    switch (c.target) {
      case 'VALUE':
        return compareResult(c, cmpValue((r as Rev).value as StoredValue, typeof (r as Rev).value === 'string' ? c.value.toString('latin1') : c.value));
      case 'VERSION':
        return compareResult(c, Math.sign(z.version - c.version));
      case 'CREATE':
        return compareResult(c, Math.sign(z.create - c.createRevision));
      case 'MOD':
        return compareResult(c, Math.sign(z.main - c.modRevision));
      case 'LEASE':
        return compareResult(c, compareLease(z.lease, c.lease));
    }
    return true;
  }

  private checkPuts(t: TxnOp, path: Map<TxnOp, boolean>): void {
    for (const r of path.get(t) ? t.success : t.failure) {
      if (r.type === 'txn') this.checkPuts(r.txn, path);
      else if (r.type === 'put') {
        this.checkLease(r.put);
        if ((r.put.ignoreValue || r.put.ignoreLease) && this.keyMissing(r.put.key)) {
          throw new MvccError('keyNotFound', 'etcdserver: key not found');
        }
      }
    }
  }

  private checkRanges(t: TxnOp, path: Map<TxnOp, boolean>, through: number): void {
    for (const r of path.get(t) ? t.success : t.failure) {
      if (r.type === 'txn') this.checkRanges(r.txn, path, through);
      else if (r.type === 'range' && r.range.revision !== 0) {
        if (r.range.revision > through) throw new MvccError('futureRev', 'mvcc: required revision is a future revision');
        if (r.range.revision < this.compacted) throw new MvccError('compacted', 'mvcc: required revision has been compacted');
      }
    }
  }

  private execTxn(ctx: WriteCtx, t: TxnOp, path: Map<TxnOp, boolean>, positions?: readonly number[]): TxnResult {
    const succeeded = path.get(t) === true;
    const ops = succeeded ? t.success : t.failure;
    const responses: ResponseOp[] = [];
    for (let i = 0; i < ops.length; i++) {
      const r = ops[i];
      if (positions !== undefined) {
        ctx.position = positions[i];
        ctx.sub = Math.max(ctx.sub, positionedSubFloor(positions[i]));
      }
      switch (r.type) {
        case 'range': {
          const view = ctx.changes > 0 ? ctx.main : ctx.through;
          const whole = this.elsewhere?.range(r.range, (perShard) => this.rangeAt(perShard, view));
          responses.push({ type: 'range', range: whole ?? this.rangeAt(r.range, view), revision: view });
          break;
        }
        case 'put':
          responses.push({ type: 'put', put: this.doPut(ctx, r.put), revision: ctx.main });
          break;
        case 'deleteRange': {
          const deleteRange = this.doDeleteRange(ctx, r.deleteRange);
          // etcd: the txn's revision once anything changed (this delete included), else the one before.
          responses.push({ type: 'deleteRange', deleteRange, revision: ctx.changes > 0 ? ctx.main : ctx.through });
          break;
        }
        case 'txn':
          responses.push({ type: 'txn', txn: this.execTxn(ctx, r.txn, path) });
          break;
      }
    }
    return { succeeded, responses };
  }

  // ---------------------------------------------------------------- compaction

  /** etcd's Compact; `throughRevision` as for range (a shard compacts at R after applying through R). */
  compact(revision: number, throughRevision?: number): void {
    const through = this.caughtUpThrough(throughRevision);
    // etcd's compactMainRev starts at -1, so Compact(0) on a never-compacted store succeeds (and
    // compacts nothing). etcd refuses a second Compact(0); here it stays a no-op, because whether one
    // happened is not part of the persisted state, and members must agree on every entry's outcome.
    if (revision < this.compacted || (revision === this.compacted && revision !== 0)) {
      throw new MvccError('compacted', 'mvcc: required revision has been compacted');
    }
    if (revision === 0) return;
    if (revision > through) throw new MvccError('futureRev', 'mvcc: required revision is a future revision');
    for (const ki of this.dirty) this.compactKey(ki, revision);
    // Drop the event log below the compaction revision. The revision itself stays watchable, as in
    // etcd (a watch may start AT the compacted revision: clients watch from a Get's header revision,
    // which is the compacted one right after compacting to head); its deletes are gone with their
    // tombstones, as in etcd.
    const log = this.log;
    let lo = 0;
    let hi = log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (log[mid].main < revision) lo = mid + 1;
      else hi = mid;
    }
    let keepFrom = lo;
    const kept: Rev[] = [];
    while (keepFrom < log.length && log[keepFrom].main === revision) {
      // Only the versions compaction kept: the last one of each key at this revision, if a put.
      const r = log[keepFrom];
      if (r.value !== null && r.prev === null && retained(r)) kept.push(r);
      keepFrom++;
    }
    if (keepFrom > 0) this.log = kept.concat(log.slice(keepFrom));
    this.compacted = revision;
    this.metaDirty = true;
    if (this.emptyKeys > 0 && this.emptyKeys * 4 >= this.tree.size) {
      this.tree = BTree.fromSorted(this.tree.toArray().filter((ki) => ki.head !== null));
      this.emptyKeys = 0;
    }
  }

  /** Keeps, of the records at or below `at`, only the latest one and only if it is not a tombstone. */
  private compactKey(ki: KeyIndex, at: number): void {
    // Find the newest record at or below `at` and the record just newer than it.
    let newer: Rev | null = null;
    let r = ki.head;
    while (r !== null && r.main > at) {
      newer = r;
      r = r.prev;
    }
    if (r !== null) {
      // Everything older than r goes; r itself too if it is a tombstone.
      const firstRemoved = r.value === null ? r : r.prev;
      if (firstRemoved !== null) {
        const key = bytes(ki.key);
        for (let x: Rev | null = firstRemoved; x !== null; x = x.prev) {
          this.bytes -= recordBytes(x);
          this.persist.push({ key: encodeRevKey(key, x.main, x.sub), value: null });
        }
        if (firstRemoved === r) {
          if (newer === null) ki.head = null;
          else newer.prev = null;
        } else r.prev = null;
      }
    }
    const head = ki.head;
    if (head === null) {
      this.emptyKeys++;
      this.dirty.delete(ki);
    } else if (head.prev === null && head.value !== null) this.dirty.delete(ki);
  }

  // ---------------------------------------------------------------- watch support

  /**
   * Events with revision >= startRevision for keys in [key, rangeEnd) (same range forms as Range), in
   * revision order. Throws 'compacted' if startRevision < compactedRevision. With maxEvents, stops at
   * the first revision boundary once maxEvents events are collected (a revision is never split, so the
   * result may exceed maxEvents by the size of its last revision minus one).
   */
  eventsSince(key: Buffer, rangeEnd: Buffer, startRevision: number, maxEvents = Infinity): MvccEvent[] {
    const start = Math.max(1, startRevision);
    if (start < this.compacted) throw new MvccError('compacted', 'mvcc: required revision has been compacted');
    const out: MvccEvent[] = [];
    if (start > this.rev) return out;
    const range = keyRange(key, rangeEnd);
    const log = this.log;
    let lo = 0;
    let hi = log.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (log[mid].main < start) lo = mid + 1;
      else hi = mid;
    }
    let curMain = -1;
    for (let i = lo; i < log.length; i++) {
      const r = log[i];
      if (r.main !== curMain) {
        if (out.length >= maxEvents) break;
        curMain = r.main;
      }
      if (inKeyRange(r.ki.key, range)) out.push(this.eventOf(r));
    }
    return out;
  }

  private eventOf(r: Rev): MvccEvent {
    const key = bytes(r.ki.key);
    const prev = r.prev;
    const prevKv = prev !== null && prev.value !== null ? toKV(prev, false, key) : null;
    const event: MvccEvent = r.value === null ? { type: 'DELETE', kv: deleteKV(key, r.main), prevKv } : { type: 'PUT', kv: toKV(r, false, key), prevKv };
    const position = positionOfSub(r.sub);
    if (position !== undefined) event.txnOpIndex = position;
    return event;
  }

  // ---------------------------------------------------------------- persistence

  /**
   * Changes of the durable state since the last drain, to be applied IN ORDER (a later op on the same
   * key wins) in the same atomic batch as the applied index. Keys are store-relative.
   */
  drainPersistOps(): PersistOp[] {
    const ops = this.persist;
    this.persist = [];
    if (this.metaDirty) {
      ops.push({ key: META_KEY, value: encodeMeta(this.rev, this.compacted) });
      this.metaDirty = false;
    }
    return ops;
  }

  /**
   * Every persisted record of the current state, sorted by key bytes (what restore expects): for Raft
   * snapshots, or to rewrite the store's keyspace from scratch.
   */
  *exportRecords(): Generator<[Buffer, Buffer]> {
    yield [META_KEY, encodeMeta(this.rev, this.compacted)];
    const all = this.tree.toArray();
    for (const ki of all) {
      const key = bytes(ki.key);
      const revs: Rev[] = [];
      for (let r = ki.head; r !== null; r = r.prev) revs.push(r);
      for (let i = revs.length - 1; i >= 0; i--) {
        const r = revs[i];
        yield [encodeRevKey(key, r.main, r.sub), r.value === null ? TOMBSTONE_VALUE : encodeLiveValue(r.create, r.version, r.lease, valueBytes(r.value)).buf];
      }
    }
  }

  /**
   * Rebuilds a store from every persisted store-relative record. Records are expected sorted by key
   * (the index is then bulk-loaded in O(n)); unsorted input is accepted but sorted first. The store keeps
   * references to the given value buffers (no copy), so they must not be reused by the caller.
   */
  static restore(records: Iterable<[Buffer, Buffer]>): MvccStore {
    const s = new MvccStore();
    /** Per key (in first-seen order), its records as [main, sub, create, version, lease, value]. */
    const byKey = new Map<string, Array<[number, number, number, number, string, StoredValue | null]>>();
    let lastKey: string | null = null;
    let lastList: Array<[number, number, number, number, string, StoredValue | null]> = [];
    let sorted = true;
    let meta: { currentRevision: number; compactedRevision: number } | null = null;
    let maxMain = 1;
    for (const [k, v] of records) {
      if (isMetaKey(k)) {
        meta = decodeMeta(v);
        continue;
      }
      if (!isRevKey(k)) throw new Error(`mvcc restore: unexpected record key ${k.toString('hex')}`);
      const d = decodeRevKey(k);
      const val = decodeValue(v);
      const key = d.key.toString('latin1');
      if (key !== lastKey) {
        if (lastKey !== null && key < lastKey) sorted = false;
        let list = byKey.get(key);
        if (list === undefined) {
          list = [];
          byKey.set(key, list);
        } else sorted = false;
        lastKey = key;
        lastList = list;
      }
      const tail = lastList.length > 0 ? lastList[lastList.length - 1] : null;
      if (tail !== null && (tail[0] > d.main || (tail[0] === d.main && tail[1] > d.sub))) sorted = false;
      lastList.push([d.main, d.sub, val.create, val.version, val.lease, val.tombstone ? null : storedValue(v.subarray(val.valueOffset))]);
      if (d.main > maxMain) maxMain = d.main;
    }
    const byRev = (a: Rev, b: Rev): number => a.main - b.main || a.sub - b.sub;
    let keys = [...byKey.keys()];
    if (!sorted) keys = keys.sort(cmpStr);
    s.rev = meta !== null ? meta.currentRevision : maxMain;
    s.compacted = meta !== null ? meta.compactedRevision : 0;
    const kis: KeyIndex[] = [];
    const log: Rev[] = [];
    for (const key of keys) {
      const list = byKey.get(key) as Array<[number, number, number, number, string, StoredValue | null]>;
      if (!sorted) list.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const ki = new KeyIndex(key);
      for (const [main, sub, create, version, lease, value] of list) {
        const r = new Rev(main, sub, create, version, lease, value, ki.head, ki);
        ki.head = r;
        s.bytes += recordBytes(r);
        if (main > s.compacted || (main === s.compacted && value !== null)) log.push(r);
      }
      kis.push(ki);
      if (list.length > 1 || list.some((x) => x[5] === null)) s.dirty.add(ki);
    }
    s.tree = BTree.fromSorted(kis);
    s.log = log.sort(byRev);
    s.metaDirty = meta === null;
    return s;
  }
}

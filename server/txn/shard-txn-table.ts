// The cross-shard transactions one shard replica knows about (docs/transactions.md), as replicated state
// of its KvStateMachine: every replica holds the same table at the same applied index.
//
//   prepared   a participant's share of a transaction, laid by its txn_intent entry (stamped at its own
//              revision P) and waiting for its resolution. While one is here, the shard writes nothing
//              else but other transactions' prepares on disjoint keys (share-keys.ts; its write path
//              proposes no other stamped entry, see shard-write-path.ts), so the share's keys stay as
//              they were through P − 1 and the share applies at the transaction's C ≥ P.
//   committed, not yet made
//              a share whose commit applied (its record below says so) while a transaction prepared here
//              with a lower P was still undecided: that one may commit below C, and the store only ever
//              grows in revision order, so the share stays prepared until every transaction prepared
//              below C is decided, and the shares are then made lowest C first (takeMaterializable).
//   decided    a committed transaction's record (with its revision C and participants), kept until every
//              participant resolved (the coordinator's `forget`, or a leader finishing it); and a
//              transaction a recoverer aborted (a fence, with the transaction's age), so that a prepare
//              of it arriving late is refused — until the fence horizon passes its age.
//   horizon    prepares of transactions older than it are refused, so fences older than it are dropped.
//   deferred   an ordinary write (put, delete range, single-shard txn) applied while a transaction here was
//              undecided, on keys no prepared share holds (its leader proposes no other, and apply checks):
//              its entry is kept, not run, until every transaction prepared below its revision is decided,
//              then run at its revision in revision order with the committed shares (takeMaterializable),
//              so the store still only grows in revision order (apply rules 6, DEFERRED_WRITE_RULES).
//
// Pure: no I/O. Changes are collected as persist ops under the state-record prefix TXN_RECORD_PREFIX so
// that restarts and snapshots carry the table with the store.
import type { TxnRequest } from '../etcd/wire-types.ts';
import { shareKeysMeet, shareKeysOf, type ShareKeys } from './share-keys.ts';

/** A revoked lease generation's sweep (internal.proto LeaseSweep, decimal strings). */
export interface PreparedLeaseSweep {
  ID: string;
  generation: string;
  revoked_at: string;
  horizon?: string;
}

/**
 * A resolution for a transaction that is not prepared here and has no record (decided otherwise, never
 * prepared, or resolved and forgotten). The code is gRPC's ABORTED; the text is what the coordinator
 * recognizes (TxnCoordinator.finishCommitted).
 */
export const TXN_NOT_PREPARED = { code: 10 /* ABORTED */, message: 'synod: transaction is not prepared on this shard (it was aborted)' } as const;

/**
 * How long a prepared transaction stays out of recoverers' reach (its prepares carry at most this much
 * time left, TxnIntent.ttl_ms). Short: a coordinator killed between prepare and decision holds its
 * participants' writes and reads this long (plus the recoverers' grace and check period, under 2 s in all);
 * a slow live coordinator whose transaction a recoverer aborted only loses that attempt and tries again.
 */
export const INTENT_TTL_MS = 1_000;

/** State-keyspace prefix of the table's records ('t'). */
export const TXN_RECORD_PREFIX = 0x74;
const PREPARED_KIND = 0x70; // 'p'
const DECIDED_KIND = 0x64; // 'd'
const FENCE_HORIZON_KIND = 0x68; // 'h'
const DEFERRED_KIND = 0x77; // 'w'

export interface PreparedTxn {
  readonly txnId: string;
  /** The prepare's revision P on this shard (the transaction commits at C ≥ P, the highest participant's P). */
  readonly revision: number;
  readonly primaryGroup: number;
  readonly participantGroups: readonly number[];
  /**
   * This shard's share of the chosen branch in `success` (no nested txns) and the compares it checked at
   * its prepare in `compare`; when `decideHere`, its shares of both branches in `success` and `failure`.
   * (Records laid by builds before apply rules 5 keep no compares when not `decideHere`.)
   */
  readonly ops: TxnRequest;
  /** Wall-clock ms after which a recoverer may abort it while it is undecided. */
  readonly deadlineUnixMs: number;
  /** A lease sweep transaction: this shard's sweep, made at C instead of `ops`. */
  readonly leaseSweep?: PreparedLeaseSweep;
  /** The transaction's age (ms of its first attempt; 0 when its prepare carried none): wait-die. */
  readonly priority?: number;
  /** The prepares decide the branch (TxnIntent.decide_here): `comparesHeld` is this shard's verdict. */
  readonly decideHere?: boolean;
  /** decideHere: whether every compare of this shard held at the prepare (absent: true). */
  readonly comparesHeld?: boolean;
  /**
   * Each op of `ops.success` (of `ops.failure`)'s place in the whole transaction, for the commit's
   * sub-revisions (server/mvcc/txn-op-position.ts); absent: the share is applied plain.
   */
  readonly successPositions?: readonly number[];
  readonly failurePositions?: readonly number[];
}

export interface DecidedTxn {
  readonly txnId: string;
  readonly state: 'committed' | 'aborted';
  /** Committed: the transaction's revision C (0 when aborted). */
  readonly revision: number;
  /**
   * Committed: every participant (absent in records written before it was kept). With it, a leader that
   * finds the record still here long after the commit can finish what a vanished coordinator left:
   * resolve every participant, then have them all forget it (TxnCoordinator.finishCommitted).
   */
  readonly participantGroups?: readonly number[];
  /** Aborted: the transaction's age (its priority; 0 when unknown): the fence goes once the horizon passes it. */
  readonly priority?: number;
  /** Committed with the failure branch's shares (a decideHere transaction whose compares did not all hold). */
  readonly failureBranch?: boolean;
}

/**
 * What a participant answers a recoverer (txn_recover), with the answer's revision (C, P or 0).
 * `failureBranch`: committed — with the failure branch's shares; prepared — a decideHere transaction
 * whose compares did not all hold here (so it can only commit with the failure branch).
 */
export interface TxnRecoveryResult {
  readonly state: 'committed' | 'prepared' | 'aborted';
  readonly failureBranch: boolean;
}

interface StoredPrepared {
  txnId: string;
  revision: number;
  primaryGroup: number;
  participantGroups: number[];
  /** The ops as protobuf bytes (etcdserverpb.TxnRequest), base64. */
  ops: string;
  deadlineUnixMs: number;
  leaseSweep?: PreparedLeaseSweep;
  priority?: number;
  decideHere?: boolean;
  comparesHeld?: boolean;
  successPositions?: readonly number[];
  failurePositions?: readonly number[];
}

/** How the table stores its ops: the caller's codec for etcdserverpb.TxnRequest. */
export interface TxnOpsCodec {
  encode(ops: TxnRequest): Uint8Array;
  decode(bytes: Uint8Array): TxnRequest;
  /** The keys a deferred write's entry (its request bytes) may read or write. */
  writeKeys(data: Uint8Array): ShareKeys;
}

/** An ordinary write applied while a transaction was undecided here, kept until it may be run. */
export interface DeferredWrite {
  /** The entry's oracle revision R: the write runs at it. */
  readonly revision: number;
  /** The entry's log index. */
  readonly index: number;
  /** The entry's request bytes (internal.proto InternalRequest). */
  readonly data: Uint8Array;
}

/** What may be made now, in revision order (takeMaterializable). */
export type Materializable =
  | { readonly kind: 'share'; readonly revision: number; readonly prepared: PreparedTxn; readonly decision: DecidedTxn }
  | { readonly kind: 'write'; readonly revision: number; readonly write: DeferredWrite };

export class ShardTxnTable {
  private readonly prepared = new Map<string, PreparedTxn>();
  /** The keys of each prepared share (derived from its ops: never persisted). */
  private readonly keysById = new Map<string, ShareKeys>();
  private readonly decided = new Map<string, DecidedTxn>();
  /** Deferred writes by revision, in ascending order (each applied above the last), with their keys. */
  private readonly deferred = new Map<number, { readonly write: DeferredWrite; readonly keys: ShareKeys }>();
  /** The highest revision deferred since the table was loaded (0: none): each new one goes above it. */
  private lastDeferredRevision = 0;
  /** Prepares of transactions older than this (wall-clock ms) are refused, and their fences dropped. */
  private fenceHorizonMs = 0;
  private persist: Array<{ key: Buffer; value: Buffer | null }> = [];
  private readonly codec: TxnOpsCodec;

  constructor(codec: TxnOpsCodec) {
    this.codec = codec;
  }

  /** Rebuilds the table from its records (keys without the state prefix byte). */
  load(records: Iterable<[Buffer, Buffer]>): void {
    this.prepared.clear();
    this.keysById.clear();
    this.decided.clear();
    this.deferred.clear();
    this.fenceHorizonMs = 0;
    this.persist = [];
    const deferred: DeferredWrite[] = [];
    for (const [key, value] of records) {
      const txnId = key.subarray(1).toString('utf8');
      if (key[0] === DEFERRED_KIND) {
        const s = JSON.parse(value.toString('utf8')) as { index: number; data: string };
        deferred.push({ revision: Number(key.readBigUInt64BE(1)), index: s.index, data: Buffer.from(s.data, 'base64') });
      } else if (key[0] === PREPARED_KIND) {
        const s = JSON.parse(value.toString('utf8')) as StoredPrepared;
        this.setPrepared({ ...s, ops: this.codec.decode(Buffer.from(s.ops, 'base64')) });
      } else if (key[0] === DECIDED_KIND) {
        this.decided.set(txnId, JSON.parse(value.toString('utf8')) as DecidedTxn);
      } else if (key[0] === FENCE_HORIZON_KIND) {
        this.fenceHorizonMs = Number(value.toString('utf8'));
      } else throw new Error(`unknown txn record kind ${key[0]}`);
    }
    this.lastDeferredRevision = 0;
    for (const w of deferred.sort((a, b) => a.revision - b.revision)) {
      this.deferred.set(w.revision, { write: w, keys: this.codec.writeKeys(w.data) });
      this.lastDeferredRevision = w.revision;
    }
  }

  preparedCount(): number {
    return this.prepared.size;
  }

  /** The lowest revision of a prepared transaction (null: none): reads at or above it must wait. */
  lowestPreparedRevision(): number | null {
    let lowest: number | null = null;
    for (const p of this.prepared.values()) if (lowest === null || p.revision < lowest) lowest = p.revision;
    return lowest;
  }

  /** Every share prepared here, committed-not-yet-made ones included (they still hold their keys). */
  preparedTxns(): PreparedTxn[] {
    return [...this.prepared.values()];
  }

  /** The prepared shares whose transaction is not decided here yet (those a recoverer may have to settle). */
  undecidedTxns(): PreparedTxn[] {
    return [...this.prepared.values()].filter((p) => !this.decided.has(p.txnId));
  }

  /** How many prepared shares are undecided: while any is, an ordinary write applied here is deferred. */
  undecidedCount(): number {
    let n = 0;
    for (const p of this.prepared.values()) if (!this.decided.has(p.txnId)) n++;
    return n;
  }

  deferredCount(): number {
    return this.deferred.size;
  }

  /** The deferred writes' revisions, ascending. */
  deferredRevisions(): number[] {
    return [...this.deferred.keys()];
  }

  /** Whether a deferred write's keys meet `keys` (a prepare meeting one is refused: it would not see it). */
  deferredMeet(keys: ShareKeys): boolean {
    for (const d of this.deferred.values()) if (shareKeysMeet(d.keys, keys)) return true;
    return false;
  }

  /**
   * Keeps an ordinary write applied while a transaction is undecided here (the caller checked that its
   * keys meet no prepared share's). Revisions apply in ascending order, so it goes last.
   */
  defer(write: DeferredWrite, keys: ShareKeys): void {
    if (write.revision <= this.lastDeferredRevision) throw new Error(`invariant: write at revision ${write.revision} deferred after one at ${this.lastDeferredRevision}`);
    this.deferred.set(write.revision, { write, keys });
    this.lastDeferredRevision = write.revision;
    this.persist.push({ key: deferredKey(write.revision), value: Buffer.from(JSON.stringify({ index: write.index, data: Buffer.from(write.data).toString('base64') })) });
  }

  /** Whether `txnId` is prepared here and its commit applied, its share not made yet (takeMaterializable). */
  committedNotMade(txnId: string): boolean {
    return this.prepared.has(txnId) && this.decided.get(txnId)?.state === 'committed';
  }

  /** The prepared shares whose keys meet `keys`. */
  meeting(keys: ShareKeys): PreparedTxn[] {
    const out: PreparedTxn[] = [];
    for (const p of this.prepared.values()) if (shareKeysMeet(this.keysById.get(p.txnId)!, keys)) out.push(p);
    return out;
  }

  getPrepared(txnId: string): PreparedTxn | undefined {
    return this.prepared.get(txnId);
  }

  /** The primary's record of a transaction (null: none, it is undecided or was forgotten). */
  decisionOf(txnId: string): DecidedTxn | null {
    return this.decided.get(txnId) ?? null;
  }

  /** How many records the table holds (of one state, when given). */
  decidedCount(state?: 'committed' | 'aborted'): number {
    if (state === undefined) return this.decided.size;
    let n = 0;
    for (const d of this.decided.values()) if (d.state === state) n++;
    return n;
  }

  /**
   * Lays a prepare. The caller has refused one whose keys meet a prepared share's (the state machine, at
   * apply), except under the simulation's mutation that must be caught.
   */
  prepare(p: PreparedTxn, keys: ShareKeys = shareKeysOf(p.ops, p.leaseSweep !== undefined)): void {
    if (this.prepared.has(p.txnId) || this.decided.has(p.txnId)) throw new Error(`invariant: txn ${p.txnId} prepared again on a shard that knows it`);
    this.setPrepared(p, keys);
    const stored: StoredPrepared = { ...p, participantGroups: [...p.participantGroups], ops: Buffer.from(this.codec.encode(p.ops)).toString('base64') };
    this.persist.push({ key: recordKey(PREPARED_KIND, p.txnId), value: Buffer.from(JSON.stringify(stored)) });
  }

  /** `keys`: the share's keys (shareKeysOf its ops), when the caller has them already. */
  private setPrepared(p: PreparedTxn, keys: ShareKeys = shareKeysOf(p.ops, p.leaseSweep !== undefined)): void {
    this.prepared.set(p.txnId, p);
    this.keysById.set(p.txnId, keys);
  }

  /** Removes a prepare (resolved either way) and returns it; undefined when it is not here. */
  takePrepared(txnId: string): PreparedTxn | undefined {
    const p = this.prepared.get(txnId);
    if (p === undefined) return undefined;
    this.prepared.delete(txnId);
    this.keysById.delete(txnId);
    this.persist.push({ key: recordKey(PREPARED_KIND, txnId), value: null });
    return p;
  }

  /**
   * The committed shares and deferred writes that may be made now, lowest revision first, taken out of
   * the table: those below the P of every undecided transaction prepared here. An undecided one commits
   * at a C at or above its own P (or aborts), so nothing made later lands below what is made now. A pure
   * function of the table, so every replica makes the same writes at the same entry.
   */
  takeMaterializable(): Materializable[] {
    let lowestUndecided = Infinity;
    const ready: Materializable[] = [];
    for (const p of this.prepared.values()) {
      const d = this.decided.get(p.txnId);
      if (d?.state === 'committed') ready.push({ kind: 'share', revision: d.revision, prepared: p, decision: d });
      else lowestUndecided = Math.min(lowestUndecided, p.revision);
    }
    for (const { write } of this.deferred.values()) {
      if (write.revision >= lowestUndecided) break;
      ready.push({ kind: 'write', revision: write.revision, write });
    }
    const out = ready.filter((m) => m.revision < lowestUndecided).sort((a, b) => a.revision - b.revision);
    for (const m of out) {
      if (m.kind === 'share') this.takePrepared(m.prepared.txnId);
      else this.takeDeferred(m.revision);
    }
    return out;
  }

  private takeDeferred(revision: number): void {
    this.deferred.delete(revision);
    this.persist.push({ key: deferredKey(revision), value: null });
  }

  /** The committed records that name their participants (those a leader can finish). */
  committedTxns(): DecidedTxn[] {
    return [...this.decided.values()].filter((d) => d.state === 'committed' && d.participantGroups !== undefined);
  }

  /** The primary's record of a decision. */
  recordDecision(txnId: string, state: 'committed' | 'aborted', revision: number, participantGroups?: readonly number[], priority?: number, failureBranch = false): void {
    const d: DecidedTxn = {
      txnId,
      state,
      revision,
      ...(participantGroups !== undefined ? { participantGroups: [...participantGroups] } : {}),
      ...(priority !== undefined && priority > 0 ? { priority } : {}),
      ...(failureBranch ? { failureBranch: true } : {}),
    };
    this.decided.set(txnId, d);
    this.persist.push({ key: recordKey(DECIDED_KIND, txnId), value: Buffer.from(JSON.stringify(d)) });
  }

  /** Prepares of transactions whose priority is below this are refused (0: none). */
  fenceHorizon(): number {
    return this.fenceHorizonMs;
  }

  /**
   * Moves the fence horizon up to `horizonMs` (never down) and drops the fences (aborted records) of
   * transactions older than it: a prepare of one of them is refused by the horizon from now on, which is
   * all its fence did. Committed records stay (they go with the forgets).
   */
  advanceFenceHorizon(horizonMs: number): void {
    if (!(horizonMs > this.fenceHorizonMs)) return;
    this.fenceHorizonMs = horizonMs;
    this.persist.push({ key: Buffer.from([FENCE_HORIZON_KIND]), value: Buffer.from(String(horizonMs)) });
    for (const d of [...this.decided.values()]) if (d.state === 'aborted' && (d.priority ?? 0) < horizonMs) this.forget(d.txnId);
  }

  /**
   * Drops a record. A committed share not made yet keeps its record (it says what to make, and at which C):
   * the forget is ignored, and a leader finishes the record later (TxnCoordinator.finishCommitted).
   */
  forget(txnId: string): void {
    if (this.prepared.has(txnId)) return;
    if (!this.decided.delete(txnId)) return;
    this.persist.push({ key: recordKey(DECIDED_KIND, txnId), value: null });
  }

  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }> {
    const out = this.persist;
    this.persist = [];
    return out;
  }
}

function recordKey(kind: number, txnId: string): Buffer {
  return Buffer.concat([Buffer.from([kind]), Buffer.from(txnId, 'utf8')]);
}

/** A deferred write's record key: its revision, big-endian, so records list in revision order. */
function deferredKey(revision: number): Buffer {
  const key = Buffer.alloc(9);
  key[0] = DEFERRED_KIND;
  key.writeBigUInt64BE(BigInt(revision), 1);
  return key;
}

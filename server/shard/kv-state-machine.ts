// The replicated KV state machine of one Raft group: decodes each committed entry (an etcd write in
// protobuf form), applies it to the MVCC store, feeds the watch hub, and answers the client waiting
// on this member if this member proposed it. Every member applies the same entries in the same
// order, so every member's store is identical at every applied index.
//
// Sharded mode (`{ sharded: true }`, one instance per shard replica): revisions come from the metadata
// group's oracle, so every entry that writes the store carries the revision its shard leader stamped it
// with (server/shard/shard-revisions.ts) and is applied at exactly that revision on every replica. An
// entry without one, an entry that does not write yet carries one, or a revision not above the last
// applied one is a broken invariant (a leader that proposed out of order, a codec bug): apply throws, the
// member stops, and nothing is half-applied. A refused entry (auth, NOSPACE, a store refusal) uses its
// revision up — a gap, like a write that changes nothing. The last applied revision is persisted
// (record 'r') so a restarted replica knows how far its shard is caught up. Without `sharded` nothing
// changes: entries carry no revision (one arriving is an invariant violation too) and no record is added.
//
// Leases on a sharded cluster (docs/sharding.md, "Leases on a sharded cluster"): the cluster group
// (`leaseSweeps`) gives each lease a generation and records a pending sweep on revoke; a shard applies a
// put with a lease only if the entry names a generation the shard has not swept, and a `lease_sweep`
// entry deletes the lease's keys there. A txn's reads on other shards arrive in the entry (txn-reads.ts).
import type { ConfChange, ConfState, Entry } from '../raft/types.ts';
import { compareVerdict, MvccStore } from '../mvcc/store.ts';
import { WatchHub } from '../mvcc/watch-hub.ts';
import type { GroupStateMachine } from '../member/member.ts';
import { LEASE_RECORD_PREFIX, LeaseStore } from '../lease/lease-store.ts';
import { rangeOf, type MvccEvent, type TxnResult } from '../mvcc/types.ts';
import { decodeInternalRequest, revisionOf, type InternalRequest } from './request-codec.ts';
import { deleteOpFromWire, num, putOpFromWire, txnOpFromWire } from '../etcd/convert.ts';
import { ETCD_ERRORS, grpcError, type EtcdErrorSpec } from '../etcd/errors.ts';
import { AUTH_RECORD_PREFIX, AuthError, AuthStore } from '../auth/auth-store.ts';
import { applyAuthEntry, authorizeEntry } from './auth-apply.ts';
import { ALARM_RECORD_PREFIX, AlarmStore, alarmActionOf, alarmTypeOf, type AlarmMember } from './alarms.ts';
import { DEFAULT_QUOTA_BACKEND_BYTES, requestCost } from './quota.ts';
import type { InternalRequestBody } from './request-codec.ts';
import { readsForStore } from './txn-reads.ts';
import { shareKeysOf, type ShareKeys } from '../txn/share-keys.ts';
import { ShardTxnTable, TXN_NOT_PREPARED, TXN_RECORD_PREFIX, type DeferredWrite, type PreparedTxn, type TxnRecoveryResult } from '../txn/shard-txn-table.ts';
import { decodeTxnRequest, encodeTxnRequest } from './txn-ops-codec.ts';
import type { TxnRequest } from '../etcd/wire-types.ts';
import { isStale, ProposalFence, proposalLostError, proposalTermOf } from './proposal-fence.ts';
import { validPositions } from '../mvcc/txn-op-position.ts';

/** State-keyspace prefixes: MVCC records, published member attributes, leases, membership, auth ('a'). */
const MVCC_PREFIX = 0x6b; // 'k'
/** Where the MVCC store's records sit among the group's state records (Hash/HashKV read them). */
export const MVCC_RECORD_PREFIX = MVCC_PREFIX;
const MEMBER_PREFIX = 0x6d; // 'm'
const MEMBERSHIP_PREFIX = 0x6e; // 'n'
/** Sharded mode only: the last applied oracle revision (8 bytes, big-endian). */
const APPLIED_REVISION_PREFIX = 0x72; // 'r'
const APPLIED_REVISION_KEY = Buffer.from([APPLIED_REVISION_PREFIX]);
/** A shard's applied-revision record, as a restore seeds it (the shard has applied everything up to `revision`). */
export function appliedRevisionRecord(revision: number): [Buffer, Buffer] {
  const value = Buffer.alloc(8);
  value.writeBigUInt64BE(BigInt(revision));
  return [APPLIED_REVISION_KEY, value];
}
/** Records that describe the cluster's members rather than its data (a restore drops them). */
export const PUBLISHED_MEMBER_RECORD_PREFIX = MEMBER_PREFIX;
export const MEMBERSHIP_RECORD_PREFIX = MEMBERSHIP_PREFIX;

/** A member of the group as the replicated membership knows it (etcd's Member without runtime attributes). */
export interface MembershipRecord {
  id: string;
  peerUrls: string[];
  isLearner: boolean;
  /** Removed members stay as tombstones: ids are never reused, and a removed member is told so. */
  removed: boolean;
  /**
   * Raft index of the conf change that last changed this record (absent: bootstrap membership, or a
   * record written before this field existed). The placement view's version is the largest of them.
   */
  changedAtIndex?: number;
}

/** What a conf-change entry carries beside the Raft change: who waits on it and the new member's URLs. */
export interface ConfChangeContext {
  proposer: string;
  seq: string;
  peerUrls?: string[];
}

/** A request every member refuses identically at apply time (the state is left unchanged). */
class RefusedRequest extends Error {
  readonly spec: EtcdErrorSpec;
  constructor(spec: EtcdErrorSpec) {
    super(spec.message);
    this.spec = spec;
  }
}

/** Told about lease lifecycle events as they are applied (the leader's lease clocks follow them). */
export interface LeaseApplyListener {
  granted(id: string, ttlSeconds: number): void;
  revoked(id: string): void;
}

export interface PublishedMember {
  name: string;
  clientUrls: string[];
  /** `--zone` as published; absent in records written before zones existed (read as ''). */
  zone?: string;
}

export interface KvStateMachineOptions {
  /** Entries that write carry oracle revisions (a shard of a sharded cluster); see the module header. */
  sharded?: boolean;
  /**
   * The cluster group of a sharded cluster: leases carry generations (their grant's Raft index) and a
   * revoke leaves a pending sweep for the keys on the shards (docs/sharding.md, "Leases on a sharded cluster").
   */
  leaseSweeps?: boolean;
  /** Sharded mode: this shard's group id (a cross-shard transaction's primary keeps its decision record). */
  groupId?: number;
  /** TEST-ONLY (the member simulation's mutation check): apply fenced entries at any term. Never set in production. */
  unsafeIgnoreProposalFence?: boolean;
  /**
   * TEST-ONLY (the shard simulation's mutation check): a prepare that decides its transaction's branch says
   * its compares held whatever they evaluate to. Never set in production.
   */
  unsafeDecideIgnoringCompares?: boolean;
  /**
   * TEST-ONLY (the shard simulation's mutation check): lay a prepare whose keys meet another prepared
   * transaction's instead of refusing it; or make a committed share at once, whatever is prepared below its
   * C; or lay a prepare whose keys meet a deferred write's (which it cannot see). Never set in production.
   */
  unsafeTxnMutation?: 'prepare-overlapping' | 'materialize-at-once' | 'prepare-over-deferred';
}

/**
 * Whether an entry is an ordinary write that a shard defers while a transaction is undecided there (apply
 * rules 6): a put, a delete range or a single-shard txn that reads nothing at a past revision. Its outcome
 * depends only on the current state of the keys it names, so it can run later at its revision. Not a txn
 * reading at a past revision: a compaction applied meanwhile could refuse it when made. Not lease sweeps
 * and revokes (every key). Their leader holds those until every transaction prepared on the shard is
 * resolved.
 */
export function isDeferrableWrite(req: InternalRequestBody): boolean {
  if ('put' in req && req.put) return true;
  if ('delete_range' in req && req.delete_range) return true;
  return 'txn' in req && !!req.txn && !readsThePast(req.txn);
}

function readsThePast(txn: TxnRequest): boolean {
  for (const op of [...(txn.success ?? []), ...(txn.failure ?? [])]) {
    if (op.request_range && Number(op.request_range.revision ?? 0) > 0) return true;
    if (op.request_txn && readsThePast(op.request_txn)) return true;
  }
  return false;
}

/** The keys an ordinary write may read or write (share-keys.ts ranges); every key for any other request. */
export function writeKeysOf(req: InternalRequestBody): ShareKeys {
  if ('put' in req && req.put) return shareKeysOf({ compare: [], success: [{ request_put: req.put }], failure: [] }, false);
  if ('delete_range' in req && req.delete_range) return shareKeysOf({ compare: [], success: [{ request_delete_range: req.delete_range }], failure: [] }, false);
  if ('txn' in req && req.txn) return shareKeysOf(req.txn, false);
  return 'all';
}

/** Whether an entry writes the MVCC store (and so, in a sharded cluster, must carry a revision). */
export function writesRevision(req: InternalRequestBody): boolean {
  return (
    ('put' in req && !!req.put) ||
    ('delete_range' in req && !!req.delete_range) ||
    ('txn' in req && !!req.txn) ||
    ('lease_revoke' in req && !!req.lease_revoke) ||
    ('lease_sweep' in req && !!req.lease_sweep) ||
    // A cross-shard transaction's prepare is stamped like any write (unless its leader refused it).
    ('txn_intent' in req && !!req.txn_intent && req.txn_intent.refused !== true)
  );
}

/** A cross-shard transaction's prepare refused: another transaction is prepared on the shard. */
export const TXN_INTENT_REFUSED: EtcdErrorSpec = { code: 10 /* ABORTED */, message: 'synod: another transaction is prepared on this shard; retry' };
/**
 * A prepare of a transaction older than the shard's fence horizon (minutes old: its client gave up long
 * ago, or its coordinator's clock is minutes behind the shard leaders'). The text names the horizon, from
 * which such a coordinator learns how far behind its clock is (TxnCoordinator.learnFromRefusal).
 */
export function txnTooOld(horizonMs: number): EtcdErrorSpec {
  return { code: 10 /* ABORTED */, message: `synod: the transaction is older than this shard's fence horizon (${horizonMs}); retry it` };
}
/** A prepare whose compares evaluate otherwise than when its branch was chosen. */
export const TXN_CONFLICT: EtcdErrorSpec = { code: 10 /* ABORTED */, message: 'synod: the transaction\'s compares changed on this shard since its branch was chosen; retry' };

export interface ApplyOutcome {
  revision: number;
  result: unknown;
}

interface Waiter {
  resolve: (outcome: ApplyOutcome) => void;
  reject: (err: Error) => void;
}

/** What an entry came to: its outcome, or the refusal its proposer hears. */
type EntryOutcome = ApplyOutcome | { readonly refused: Error };

function answer(waiter: Waiter, outcome: EntryOutcome): void {
  if ('refused' in outcome) waiter.reject(outcome.refused);
  else waiter.resolve(outcome);
}

/** An outcome as text, to compare a deferred write's early answer with what it was made as. */
function fingerprintOf(outcome: EntryOutcome): string {
  return 'refused' in outcome ? `refused: ${outcome.refused.message}` : JSON.stringify(outcome);
}

/**
 * A prepared share's positions as a PreparedTxn field, kept only when they can position it: invalid ones
 * (never sent by a coordinator of this build) leave the share plain, decided from the entry alone.
 */
function positionsOf<K extends 'successPositions' | 'failurePositions'>(field: K, wire: readonly number[] | undefined, opCount: number): { [P in K]?: number[] } {
  const positions = wire?.map(Number);
  return validPositions(positions, opCount) ? ({ [field]: [...positions] } as { [P in K]?: number[] }) : {};
}

/** `key` behind a one-byte record-kind prefix, in one allocation (every persisted record takes this path). */
function prefixed(prefix: number, key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(1 + key.length);
  out[0] = prefix;
  key.copy(out, 1);
  return out;
}

export class KvStateMachine implements GroupStateMachine {
  readonly store: MvccStore;
  readonly hub: WatchHub;
  private readonly memberIdText: string;
  private readonly waiters = new Map<string, Waiter>();
  /** The terms this replica's own waiting proposals are fenced to: failed at once when lost (proposal-fence.ts). */
  private readonly fence = new ProposalFence();
  /** Proposals of this replica failed as lost with a leadership (appliedThrough, or skipped at apply). */
  proposalsLost = 0;
  /** Entries applied nowhere because they sat in the log at a term other than their fence's (any proposer's). */
  staleProposalsSkipped = 0;
  /** KvStateMachineOptions.unsafeIgnoreProposalFence. */
  private readonly unsafeIgnoreProposalFence: boolean;
  /** KvStateMachineOptions.unsafeDecideIgnoringCompares. */
  private readonly unsafeDecideIgnoringCompares: boolean;
  /** KvStateMachineOptions.unsafeTxnMutation. */
  private readonly unsafeTxnMutation: KvStateMachineOptions['unsafeTxnMutation'] | null;
  /**
   * Sequence numbers of this incarnation's proposals. They must never repeat one of an earlier
   * incarnation of this member: entries it proposed before a crash can still be applied after the
   * restart (replayed from the log, or committed late), and a reused number would settle a new
   * client's request with an old entry's outcome — acknowledging a write whose own entry may then be
   * lost. Starting from the clock (1,000 per ms) keeps every incarnation above its predecessors
   * unless it proposed more than a million writes per second since; found by the member simulation.
   */
  private nextSeq = Date.now() * 1000;

  /** Client URLs each member published through the log, by member id. */
  readonly published = new Map<string, PublishedMember>();
  private readonly memberOps: Array<{ key: Buffer; value: Buffer | null }> = [];
  leases: LeaseStore;
  /** Users, roles, permissions and whether auth is on (server/auth); replaced by a snapshot restore. */
  auth: AuthStore;
  leaseListener: LeaseApplyListener | null = null;
  /** Raised alarms (server/shard/alarms.ts); replaced by a snapshot restore. */
  alarms: AlarmStore;
  /** This member's --quota-backend-bytes (local configuration: it never decides what an entry does). */
  quotaBytes = DEFAULT_QUOTA_BACKEND_BYTES;
  /**
   * Told when this member finds its store past its quota and has no NOSPACE alarm of its own yet;
   * it proposes one (an alarm entry), as etcd's server does.
   */
  quotaListener: (() => void) | null = null;
  /** The group's membership by member id (decimal), tombstones included. */
  readonly membership = new Map<string, MembershipRecord>();
  private readonly bootstrapMembers: MembershipRecord[];
  /** Told after the membership or a member's URLs changed (and after a snapshot replaced everything). */
  membershipListener: (() => void) | null = null;

  /**
   * `bootstrapMembers` is the membership at log index 0 (the same on every member): it seeds the
   * replicated membership when the state holds none yet.
   */
  /** Sharded mode (see the module header). */
  readonly sharded: boolean;
  /** The cluster group of a sharded cluster (KvStateMachineOptions.leaseSweeps). */
  readonly leaseSweeps: boolean;
  /** Sharded mode: the shard's group id (0 when not given). */
  readonly groupId: number;
  /** Cluster group of a sharded cluster: told when a revoke leaves a pending sweep (the sweeper starts at once). */
  sweepListener: ((id: string, generation: number) => void) | null = null;
  /** Sharded mode: the last oracle revision applied (written, refused or changing nothing); 0 before any. */
  private appliedRevisionValue = 0;
  private appliedRevisionDirty = false;
  /**
   * Sharded mode: the highest revision of a stamped entry applied that is not a cross-shard prepare. A
   * commit's C must be above it (nothing but prepares on disjoint keys is written while a transaction is
   * prepared); prepares may be above C (several prepared at once). Derived, not persisted: below every
   * prepared transaction's P at any time, so after a load it is taken just below the lowest one.
   */
  private otherStampedRevision = 0;
  /**
   * This replica's own proposals deferred here, by revision: the client waiting for it to be made, or
   * what it was answered at apply (checked when it is made).
   */
  private readonly ownDeferred = new Map<number, { readonly waiter: Waiter } | { readonly answered: string }>();
  /** Writes deferred behind an undecided transaction (apply rules 6), since this replica started. */
  writesDeferred = 0;
  /** Of this replica's own deferred writes, those answered at apply (their outcome known then). */
  writesAnsweredEarly = 0;
  /** Sharded mode: told each stamped entry's revision as it is applied (the leader's stamper follows them). */
  revisionListener: ((revision: number) => void) | null = null;
  /** Sharded mode: cross-shard transactions prepared here, and the primary's decisions (server/txn/shard-txn-table.ts). */
  readonly txns = new ShardTxnTable({ encode: encodeTxnRequest, decode: decodeTxnRequest, writeKeys: (data) => writeKeysOf(decodeInternalRequest(data)) });
  /** Told after a prepared transaction is laid or resolved (the write path and waiting reads follow them). */
  private readonly txnListeners = new Set<() => void>();

  constructor(
    memberId: number,
    stateRecords: Iterable<[Buffer, Buffer]>,
    bootstrapMembers: Array<{ id: number; peerUrls: string[]; isLearner: boolean }> = [],
    options: KvStateMachineOptions = {},
  ) {
    this.sharded = options.sharded === true;
    this.unsafeIgnoreProposalFence = options.unsafeIgnoreProposalFence === true;
    this.unsafeDecideIgnoringCompares = options.unsafeDecideIgnoringCompares === true;
    this.unsafeTxnMutation = options.unsafeTxnMutation ?? null;
    this.leaseSweeps = options.leaseSweeps === true;
    this.groupId = options.groupId ?? 0;
    this.memberIdText = String(memberId);
    this.bootstrapMembers = bootstrapMembers.map((m) => ({ id: String(m.id), peerUrls: m.peerUrls, isLearner: m.isLearner, removed: false }));
    this.store = new MvccStore();
    this.hub = new WatchHub(this.store);
    this.leases = LeaseStore.restore([]);
    this.auth = AuthStore.restore([]);
    this.alarms = AlarmStore.restore([]);
    this.load(stateRecords);
  }

  /** (Re)builds every part of the state from stored records. */
  private load(stateRecords: Iterable<[Buffer, Buffer]>): void {
    const mvccRecords: Array<[Buffer, Buffer]> = [];
    const leaseRecords: Array<[Buffer, Buffer]> = [];
    const authRecords: Array<[Buffer, Buffer]> = [];
    const alarmRecords: Array<[Buffer, Buffer]> = [];
    const txnRecords: Array<[Buffer, Buffer]> = [];
    this.published.clear();
    this.membership.clear();
    this.appliedRevisionValue = 0;
    for (const [key, value] of stateRecords) {
      if (key[0] === MVCC_PREFIX) mvccRecords.push([key.subarray(1), value]);
      else if (key[0] === LEASE_RECORD_PREFIX) leaseRecords.push([key.subarray(1), value]);
      else if (key[0] === AUTH_RECORD_PREFIX) authRecords.push([key.subarray(1), value]);
      else if (key[0] === ALARM_RECORD_PREFIX) alarmRecords.push([key.subarray(1), value]);
      else if (key[0] === TXN_RECORD_PREFIX) txnRecords.push([key.subarray(1), value]);
      else if (key[0] === MEMBER_PREFIX) {
        this.published.set(key.subarray(1).toString('utf8'), JSON.parse(value.toString('utf8')) as PublishedMember);
      } else if (key[0] === MEMBERSHIP_PREFIX) {
        const record = JSON.parse(value.toString('utf8')) as MembershipRecord;
        this.membership.set(record.id, record);
      } else if (key[0] === APPLIED_REVISION_PREFIX && this.sharded) {
        this.appliedRevisionValue = Number(value.readBigUInt64BE(0));
      } else throw new Error(`unknown state record prefix ${key[0]}`);
    }
    if (this.membership.size === 0) for (const m of this.bootstrapMembers) this.setMembership({ ...m });
    // The store object stays the same (the watch hub and services hold it); its contents are replaced.
    this.store.adopt(MvccStore.restore(mvccRecords));
    this.leases = LeaseStore.restore(leaseRecords);
    this.auth = AuthStore.restore(authRecords);
    this.alarms = AlarmStore.restore(alarmRecords);
    this.txns.load(txnRecords);
    const lowestPrepared = this.txns.lowestPreparedRevision();
    this.otherStampedRevision = lowestPrepared === null ? this.appliedRevisionValue : Math.min(this.appliedRevisionValue, lowestPrepared - 1);
    // Attachments are derived state: rebuilt from the keys' own lease fields.
    // (Read at the compacted revision when that is above the last write: a shard compacts at a gap.)
    const all = this.store.range(rangeOf(Buffer.from([0]), Buffer.from([0]), { keysOnly: true }), Math.max(this.store.currentRevision(), this.store.compactedRevision()));
    for (const kv of all.kvs) if (kv.lease !== '0') this.leases.attach(kv.lease, kv.key);
    this.store.leaseExists = (id) => this.leases.has(id);
  }

  /**
   * Replaces the whole state by a snapshot's records. Watchers stay: each one catches up from the
   * new store's history, or is told its revision was compacted (as etcd does after a restore).
   */
  restore(records: Array<[Buffer, Buffer]>): void {
    // A proposal of this replica may be in the snapshot, applied without its waiter hearing: those wait
    // for their deadlines (an unknown outcome), never "lost".
    this.fence.clear();
    this.memberOps.length = 0;
    this.store.drainPersistOps(); // the records on disk are the snapshot's already
    this.load(records);
    this.store.drainPersistOps();
    this.memberOps.length = 0;
    this.appliedRevisionDirty = false; // the snapshot's own record
    // Deferred writes the snapshot made already: their proposers wait for their deadlines, as above.
    const deferred = new Set(this.txns.deferredRevisions());
    for (const r of [...this.ownDeferred.keys()]) if (!deferred.has(r)) this.ownDeferred.delete(r);
    this.hub.storeReplaced();
    if (this.sharded) this.revisionListener?.(this.appliedRevisionValue);
    this.txnsChanged();
    this.membershipListener?.();
  }

  private setMembership(record: MembershipRecord): void {
    this.membership.set(record.id, record);
    this.memberOps.push({
      key: Buffer.concat([Buffer.from([MEMBERSHIP_PREFIX]), Buffer.from(record.id, 'utf8')]),
      value: Buffer.from(JSON.stringify(record)),
    });
  }

  /**
   * Raft index of the last applied conf change that changed the membership (0: the bootstrap
   * membership). Tombstones count: a removal is a change. The same on every member at the same applied index.
   */
  membershipVersion(): number {
    let version = 0;
    for (const m of this.membership.values()) version = Math.max(version, m.changedAtIndex ?? 0);
    return version;
  }

  /** Current members (no tombstones), in id order. */
  members(): MembershipRecord[] {
    return [...this.membership.values()].filter((m) => !m.removed).sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1));
  }

  /**
   * Applies a committed conf change. Raft's resulting ConfState is the truth; the membership records
   * follow it (new members take their URLs from the entry's context), so applying the same entry
   * again changes nothing.
   */
  applyConfChange(entry: Entry, change: ConfChange, confState: ConfState): void {
    let context: ConfChangeContext | null = null;
    if (change.context && change.context.byteLength > 0) {
      context = JSON.parse(Buffer.from(change.context).toString('utf8')) as ConfChangeContext;
    }
    const inGroup = new Set([...confState.voters, ...confState.learners].map(String));
    const learners = new Set(confState.learners.map(String));
    const id = String(change.nodeId);
    const changedAtIndex = entry.index;
    if (inGroup.has(id) && !this.membership.has(id)) {
      this.setMembership({ id, peerUrls: context?.peerUrls ?? [], isLearner: learners.has(id), removed: false, changedAtIndex });
    }
    for (const m of [...this.membership.values()]) {
      if (m.removed) continue;
      if (!inGroup.has(m.id)) this.setMembership({ ...m, removed: true, changedAtIndex });
      else if (m.isLearner !== learners.has(m.id)) this.setMembership({ ...m, isLearner: learners.has(m.id), changedAtIndex });
    }
    const mine = context && context.proposer === this.memberIdText ? this.waiters.get(context.seq) : undefined;
    if (mine) {
      this.waiters.delete(context!.seq);
      mine.resolve({ revision: this.store.currentRevision(), result: { index: entry.index } });
    }
    this.membershipListener?.();
  }

  /**
   * Reserves a sequence number and the promise its apply will settle. `proposalTerm` (> 0) is the term
   * the entry is fenced to (its proposal_term): the waiter fails with proposalLostError as soon as that
   * attempt can no longer apply (proposal-fence.ts). 0: not fenced.
   */
  track(proposalTerm = 0): { seq: string; outcome: Promise<ApplyOutcome>; forget: () => void } {
    const seq = String(this.nextSeq++);
    const outcome = new Promise<ApplyOutcome>((resolve, reject) => {
      this.waiters.set(seq, { resolve, reject });
    });
    if (proposalTerm > 0) this.fence.note(seq, proposalTerm);
    // Marked handled: a proposer may not have attached its handlers yet when the member stops and fails
    // every waiter (one waiting for a leader to propose to, say) — that must not crash the process.
    outcome.catch(() => undefined);
    return {
      seq,
      outcome,
      forget: () => {
        this.waiters.delete(seq);
        this.fence.drop(seq);
      },
    };
  }

  /** Every entry through `index` is applied, the last of them in term `term`: fenced proposals below it are lost. */
  appliedThrough(_index: number, term: number): void {
    for (const seq of this.fence.takeLostBelow(term)) {
      const lost = this.waiters.get(seq);
      if (lost === undefined) continue; // given up
      this.waiters.delete(seq);
      this.proposalsLost++;
      lost.reject(proposalLostError());
    }
  }

  get proposer(): string {
    return this.memberIdText;
  }

  pendingCount(): number {
    return this.waiters.size;
  }

  /** Sharded mode: the last oracle revision applied (the shard is caught up through it). */
  appliedRevision(): number {
    // A store starts at revision 1 (etcd's empty state): every shard has it, none writes at it.
    return this.sharded ? Math.max(this.appliedRevisionValue, this.store.currentRevision()) : this.store.currentRevision();
  }

  /**
   * The revision a read of this replica's store answers at: its applied revision, or just below the
   * lowest prepared cross-shard transaction (whose writes at C are not in the store yet, and nothing
   * above C is either: the shard writes nothing else while one is prepared, but other transactions'
   * prepares on disjoint keys, whose writes go at their own Cs).
   */
  readableRevision(): number {
    const lowest = this.txns.lowestPreparedRevision();
    return lowest === null ? this.appliedRevision() : Math.min(this.appliedRevision(), lowest - 1);
  }

  /** Calls `listener` after every change of the prepared transactions; returns its removal. */
  onTxnsChanged(listener: () => void): () => void {
    this.txnListeners.add(listener);
    return () => this.txnListeners.delete(listener);
  }

  private txnsChanged(): void {
    for (const l of [...this.txnListeners]) l();
  }

  /**
   * Resolves once no transaction prepared here has a revision at or below `revision`; rejects with
   * `onTimeout()` at `deadlineMs`. A read at R waits so for those at or below R (none is stamped at or below
   * R once the read raised its leader's floor to R, so the wait ends).
   */
  txnsSettledThrough(revision: number, deadlineMs: number, onTimeout: () => Error): Promise<void> {
    return this.txnsSettled(() => {
      const lowest = this.txns.lowestPreparedRevision();
      return lowest === null || lowest > revision;
    }, deadlineMs, onTimeout);
  }

  /**
   * Resolves once every transaction prepared here now is resolved and made (or aborted); rejects with
   * `onTimeout()` at `deadlineMs`. A linearizable read waits so (such a transaction may be decided on its
   * primary already, and its writes must then be seen), and then reads below those prepared since: none
   * of them can have been acknowledged before the read began. Waiting until nothing at all is prepared
   * could wait for ever under a stream of transactions on disjoint keys.
   */
  txnsPreparedNowSettled(deadlineMs: number, onTimeout: () => Error): Promise<void> {
    const now = this.txns.preparedTxns().map((p) => p.txnId);
    if (now.length === 0) return Promise.resolve();
    return this.txnsSettled(() => now.every((id) => this.txns.getPrepared(id) === undefined), deadlineMs, onTimeout);
  }

  private txnsSettled(settled: () => boolean, deadlineMs: number, onTimeout: () => Error): Promise<void> {
    if (settled()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const stop = this.onTxnsChanged(() => {
        if (!settled()) return;
        clearTimeout(timer);
        stop();
        resolve();
      });
      const timer = setTimeout(() => {
        stop();
        reject(onTimeout());
      }, Math.max(0, deadlineMs - Date.now()));
    });
  }

  /**
   * The revision `req` is applied at (null: today's path), after checking the sharded-mode invariants.
   * Throws before anything changes.
   */
  private stampOf(req: InternalRequest, index: number): number | null {
    const revision = revisionOf(req);
    if (!this.sharded) {
      if (revision !== null) throw new Error(`invariant: entry ${index} carries revision ${revision}, but this group is not a shard of a sharded cluster`);
      return null;
    }
    const writes = writesRevision(req);
    if (writes && revision === null) throw new Error(`invariant: sharded entry ${index} writes the store without an oracle revision`);
    if (!writes && revision !== null) throw new Error(`invariant: sharded entry ${index} carries revision ${revision} but writes nothing`);
    if (revision !== null && revision <= this.appliedRevision()) {
      throw new Error(`invariant: sharded entry ${index} at revision ${revision} is not above the last applied revision ${this.appliedRevision()}`);
    }
    return revision;
  }

  apply(entry: Entry): void {
    const req = decodeInternalRequest(entry.data);
    const at = this.stampOf(req, entry.index);
    const prepare = 'txn_intent' in req && !!req.txn_intent;
    // A stamped write applied while a transaction prepared here is undecided is deferred (or refused as a
    // broken invariant): deferOrRefuseOver.
    const besideUndecided = at !== null && !prepare && this.txns.preparedCount() > 0 && this.txns.undecidedCount() > 0;
    if (at !== null) {
      // Used up whatever happens below (a refusal is a gap, exactly as on every other replica).
      this.appliedRevisionValue = at;
      this.appliedRevisionDirty = true;
      if (!prepare && !besideUndecided) this.otherStampedRevision = at;
    }
    const mine = req.proposer === this.memberIdText ? this.waiters.get(req.seq) : undefined;
    if (mine) {
      this.waiters.delete(req.seq);
      this.fence.drop(req.seq);
    }
    if (isStale(proposalTermOf(req.proposal_term), entry.term) && !this.unsafeIgnoreProposalFence) {
      // Appended at a term other than its proposer's (a proposal that wandered past a leadership):
      // skipped by every replica alike, its revision a gap; its proposer may send it again.
      this.staleProposalsSkipped++;
      if (at !== null) this.revisionListener?.(at);
      if (mine) {
        this.proposalsLost++;
        mine.reject(proposalLostError());
      }
      return;
    }
    try {
      if (!this.admitAtApply(req, mine)) return;
      if (besideUndecided) this.deferOrRefuseOver(req, at, mine, entry);
      else {
        // (Writes are deferred only while a transaction is undecided, and made once none is below them;
        // prepares beside them are laid, not run.)
        if (at !== null && !prepare && this.txns.deferredCount() > 0) throw new Error(`invariant: entry ${entry.index} at revision ${at} runs while writes deferred below it wait`);
        this.executeAndAnswer(req, at, mine, entry.index);
      }
    } finally {
      if (at !== null) this.revisionListener?.(at);
    }
  }

  /**
   * Checks made at an entry's place in the log, whenever it runs: false when refused (its proposer is
   * told). A client's entry is checked against the auth state there (see auth-apply.ts); while NOSPACE is
   * raised, every member refuses what could grow the store (etcd's capped applier): decided by
   * replicated state only, so every member refuses the same entries.
   */
  private admitAtApply(req: InternalRequest, mine: Waiter | undefined): boolean {
    const refusal = authorizeEntry(req, this.auth, (id) => this.leases.keysOf(id));
    if (refusal) {
      mine?.reject(grpcError(ETCD_ERRORS[refusal]));
      return false;
    }
    if (requestCost(req) > 0 && this.alarms.has('NOSPACE')) {
      mine?.reject(grpcError(ETCD_ERRORS.NO_SPACE));
      return false;
    }
    return true;
  }

  /**
   * A stamped entry other than a prepare, applied while a transaction prepared here is undecided. An
   * ordinary write on keys no prepared share holds is deferred (apply rules 6): kept, and run at its
   * revision once every transaction prepared below it is decided (materialize), so the store still grows
   * in revision order and the prepared shares meet the state they were checked on. Its leader proposes
   * nothing else here meanwhile (ShardWritePath.txnHold): anything else is a broken invariant.
   */
  private deferOrRefuseOver(req: InternalRequest, at: number, mine: Waiter | undefined, entry: Entry): void {
    if (!isDeferrableWrite(req)) throw new Error(`invariant: entry ${entry.index} at revision ${at} cannot be deferred (a lease sweep, or a txn reading a past revision), yet a transaction prepared here is undecided`);
    const keys = writeKeysOf(req);
    // A committed share not made yet, below it, is made first (revision order): it may share its keys.
    const meeting = this.txns.meeting(keys);
    const undecided = meeting.find((p) => !(this.txns.committedNotMade(p.txnId) && (this.txns.decisionOf(p.txnId)?.revision ?? Infinity) < at));
    if (undecided !== undefined) throw new Error(`invariant: write at revision ${at} (entry ${entry.index}) meets transaction ${undecided.txnId} prepared here at ${undecided.revision}`);
    // Its outcome is known now when nothing to be made before it touches its keys (and it reads no other
    // shard): its proposer is answered at once, as a write on those keys alone would be. A read still
    // sees it only once it is made (reads answer below the transactions prepared here).
    const knownNow = meeting.length === 0 && !this.txns.deferredMeet(keys) && !('txn' in req && req.txn && req.txn_reads !== undefined);
    this.txns.defer({ revision: at, index: entry.index, data: entry.data }, keys);
    this.writesDeferred++;
    if (mine === undefined) return;
    if (!knownNow) {
      this.ownDeferred.set(at, { waiter: mine });
      return;
    }
    const outcome = this.previewDeferred(req, at);
    this.ownDeferred.set(at, { answered: fingerprintOf(outcome) });
    this.writesAnsweredEarly++;
    answer(mine, outcome);
  }

  /** Runs an admitted entry (at `at` when stamped) and answers its proposer here, if any. */
  private executeAndAnswer(req: InternalRequest, at: number | null, mine: Waiter | undefined, index: number): EntryOutcome {
    const outcome = this.outcomeOf(() => {
      const out = this.execute(req, at ?? undefined, index);
      // A sharded write answers with its own revision, even when it changed nothing (see store.ts).
      return at !== null ? { revision: at, result: out.result } : out;
    });
    if (mine !== undefined) answer(mine, outcome);
    if (!('refused' in outcome) && requestCost(req) > 0) this.checkQuota();
    return outcome;
  }

  /**
   * `run`'s outcome, or the refusal to answer with: a request the store refuses (compacted revision in a
   * txn, ignore_value on a missing key) is refused identically on every member, its state unchanged.
   */
  private outcomeOf(run: () => ApplyOutcome): EntryOutcome {
    try {
      return run();
    } catch (err) {
      if (err instanceof Error && err.name === 'MvccError') return { refused: err };
      if (err instanceof RefusedRequest) return { refused: grpcError(err.spec) };
      if (err instanceof AuthError) return { refused: grpcError(ETCD_ERRORS[err.code]) };
      throw err;
    }
  }

  /**
   * A deferred write's outcome, computed now on a dry run of the store: what it will be when made, since
   * nothing made before it touches its keys (the caller checked) and the lease generations it names do
   * not change meanwhile (a sweep is never deferred, and a prepared one meets every key).
   */
  private previewDeferred(req: InternalRequest, at: number): EntryOutcome {
    const leaseExists = this.store.leaseExists;
    try {
      return this.outcomeOf(() => {
        this.useLeaseGenerationsOf(req);
        if ('put' in req && req.put) {
          const r = this.store.previewTxn({ compare: [], success: [{ type: 'put', put: putOpFromWire(req.put) }], failure: [] }, at).responses[0];
          if (r?.type !== 'put') throw new Error('invariant: a previewed put answered no put');
          return { revision: at, result: r.put };
        }
        if ('delete_range' in req && req.delete_range) {
          const r = this.store.previewTxn({ compare: [], success: [{ type: 'deleteRange', deleteRange: deleteOpFromWire(req.delete_range) }], failure: [] }, at).responses[0];
          if (r?.type !== 'deleteRange') throw new Error('invariant: a previewed delete answered no delete');
          return { revision: at, result: r.deleteRange };
        }
        if ('txn' in req && req.txn && req.txn_reads === undefined) return { revision: at, result: this.store.previewTxn(txnOpFromWire(req.txn), at) };
        throw new Error('invariant: previewing a write that is not a put, a delete or a txn reading only its own shard');
      });
    } finally {
      this.store.leaseExists = leaseExists;
    }
  }

  /**
   * Whether a client request may be proposed: null, or the error to answer at once. Like etcd's
   * quota check in front of Put, Txn and LeaseGrant: refused while NOSPACE is raised, or when it
   * would take this member's store past its quota (which raises NOSPACE).
   */
  admit(body: InternalRequestBody): EtcdErrorSpec | null {
    const cost = requestCost(body);
    if (cost === 0) return null;
    if (this.alarms.has('NOSPACE')) return ETCD_ERRORS.NO_SPACE;
    if (this.store.sizeBytes() + cost > this.quotaBytes) {
      if (!this.alarms.hasFor(this.memberIdText, 'NOSPACE')) this.quotaListener?.();
      return ETCD_ERRORS.NO_SPACE;
    }
    return null;
  }

  /** After a write was applied: a store past this member's quota raises this member's NOSPACE. */
  checkQuota(): void {
    if (this.store.sizeBytes() > this.quotaBytes && !this.alarms.hasFor(this.memberIdText, 'NOSPACE')) this.quotaListener?.();
  }

  /**
   * A shard holds no leases: a put may attach a key to a lease generation the entry names (the proposer
   * read it in the cluster group) unless this shard has swept that generation already. A cross-shard
   * transaction's prepare checks its puts so; its commit applies them on the same state.
   */
  private useLeaseGenerationsOf(req: InternalRequest): void {
    if (!this.sharded || !(('put' in req && req.put) || ('txn' in req && req.txn) || ('txn_intent' in req && req.txn_intent))) return;
    const generations = new Map((req.lease_generations ?? []).map((g) => [String(g.ID), g]));
    this.store.leaseExists = (id) => {
      const g = generations.get(id);
      return g !== undefined && this.leases.generationLive(id, Number(g.generation), Number(g.checked_at ?? 0));
    };
  }

  private execute(req: InternalRequest, at: number | undefined, index: number): ApplyOutcome {
    this.useLeaseGenerationsOf(req);
    if ('put' in req && req.put) {
      const out = this.store.put(putOpFromWire(req.put), at);
      this.publish(out.events, out.revision);
      return { revision: out.revision, result: out.result };
    }
    if ('delete_range' in req && req.delete_range) {
      const out = this.store.deleteRange(deleteOpFromWire(req.delete_range), at);
      this.publish(out.events, out.revision);
      return { revision: out.revision, result: out.result };
    }
    if ('txn' in req && req.txn) {
      if (this.sharded && req.txn_reads?.too_large) throw new RefusedRequest(ETCD_ERRORS.REQUEST_TOO_LARGE);
      const op = txnOpFromWire(req.txn);
      const elsewhere = this.sharded && req.txn_reads && at !== undefined ? readsForStore(op, req.txn_reads, at) : undefined;
      const out = this.store.txn(op, at, elsewhere);
      this.publish(out.events, out.revision);
      return { revision: out.revision, result: out.result };
    }
    if ('txn_intent' in req && req.txn_intent) return this.applyTxnIntent(req, at);
    if ('txn_resolve' in req && req.txn_resolve) return this.applyTxnResolve(req);
    if ('txn_recover' in req && req.txn_recover) return this.applyTxnRecover(req);
    if ('member_attributes' in req && req.member_attributes) {
      const a = req.member_attributes;
      const record: PublishedMember = { name: a.name, clientUrls: a.client_urls ?? [], zone: a.zone ?? '' };
      this.published.set(a.member_id, record);
      this.memberOps.push({
        key: Buffer.concat([Buffer.from([MEMBER_PREFIX]), Buffer.from(a.member_id, 'utf8')]),
        value: Buffer.from(JSON.stringify(record)),
      });
      return { revision: this.store.currentRevision(), result: null };
    }
    if ('lease_grant' in req && req.lease_grant) {
      const id = String(req.lease_grant.ID);
      if (this.leases.has(id)) throw new RefusedRequest(ETCD_ERRORS.LEASE_EXIST);
      const ttlSeconds = num(req.lease_grant.TTL);
      this.leases.grant(id, ttlSeconds, this.leaseSweeps ? index : 0);
      this.leaseListener?.granted(id, ttlSeconds);
      return { revision: this.store.currentRevision(), result: { id, ttlSeconds } };
    }
    if ('lease_revoke' in req && req.lease_revoke) {
      const id = String(req.lease_revoke.ID);
      if (!this.leases.has(id)) throw new RefusedRequest(ETCD_ERRORS.LEASE_NOT_FOUND);
      const generation = this.leases.get(id)?.generation ?? 0;
      const keys = this.leases.revoke(id);
      this.leaseListener?.revoked(id);
      if (this.leaseSweeps) {
        // The lease's keys on the shards: the sweep deletes them there (server/api/lease-sweeper.ts).
        // Keys in this group's own store (none on a sharded cluster since the Lock and Election services
        // keep theirs on the shards; a store written by an older version may hold some) go below.
        this.leases.sweepPending(id, generation, index);
        this.sweepListener?.(id, generation);
      }
      const result = this.leaseSweeps ? { generation } : null;
      if (keys.length === 0) return { revision: this.store.currentRevision(), result };
      // Every attached key goes in one revision, on every member alike.
      const out = this.store.txn({
        compare: [],
        success: keys.map((key) => ({ type: 'deleteRange' as const, deleteRange: { key, rangeEnd: Buffer.alloc(0), prevKv: false } })),
        failure: [],
      }, at);
      this.publish(out.events, out.revision);
      return { revision: out.revision, result };
    }
    if ('lease_sweep' in req && req.lease_sweep) {
      // A shard: every key attached to the lease here goes at this entry's revision; from now on a put
      // naming this generation (or an older one) is refused. A repeated sweep changes nothing.
      const s = req.lease_sweep;
      const keys = this.leases.sweep(String(s.ID), Number(s.generation), Number(s.revoked_at ?? 0), Number(s.horizon ?? 0));
      if (keys === null || keys.length === 0) return { revision: this.store.currentRevision(), result: null };
      const out = this.store.txn({
        compare: [],
        success: keys.map((key) => ({ type: 'deleteRange' as const, deleteRange: { key, rangeEnd: Buffer.alloc(0), prevKv: false } })),
        failure: [],
      }, at);
      this.publish(out.events, out.revision);
      return { revision: out.revision, result: null };
    }
    if ('lease_swept' in req && req.lease_swept) {
      this.leases.sweepDone(String(req.lease_swept.ID), Number(req.lease_swept.generation));
      return { revision: this.store.currentRevision(), result: null };
    }
    if ('lease_checkpoint' in req && req.lease_checkpoint) {
      for (const c of req.lease_checkpoint.checkpoints ?? []) this.leases.checkpoint(String(c.ID), num(c.remaining_TTL));
      return { revision: this.store.currentRevision(), result: null };
    }
    if ('member_update' in req && req.member_update) {
      const id = String(req.member_update.ID);
      const current = this.membership.get(id);
      if (!current || current.removed) throw new RefusedRequest(ETCD_ERRORS.MEMBER_NOT_FOUND);
      this.setMembership({ ...current, peerUrls: req.member_update.peerURLs ?? [] });
      this.membershipListener?.();
      return { revision: this.store.currentRevision(), result: null };
    }
    if ('compaction' in req && req.compaction) {
      // A shard is caught up through its last applied revision, which may be above its last write. A
      // cluster-wide Compact(C) reaches shards that have written nothing up to C: the API first read
      // every shard at C on its leader (no write at or below C can come after that), so for such a shard
      // the state at C is its state at its applied revision, and it compacts there.
      const asked = num(req.compaction.revision);
      // Never over a prepared transaction's revision: its writes still have to be made at it.
      if (this.sharded) this.store.compact(Math.min(asked, this.readableRevision()), this.readableRevision());
      else this.store.compact(asked);
      return { revision: this.store.currentRevision(), result: null };
    }
    if ('alarm' in req && req.alarm) return { revision: this.store.currentRevision(), result: { alarms: this.applyAlarm(req.alarm) } };
    if (applyAuthEntry(req, this.auth)) return { revision: this.store.currentRevision(), result: { authRevision: this.auth.revision } };
    throw new Error('committed entry carries no known request');
  }

  /**
   * A participant's prepare, stamped at its own revision P like any write. Its compares on this shard
   * must evaluate as when the coordinator chose the branch (else refused: a conflict); its share is run
   * once against the store and undone, which checks it (a lease gone, a compacted range revision:
   * refused like the txn it is part of) and gives the coordinator its responses; then it is laid as
   * prepared. Nothing else is written to its keys, and nothing but other prepares to the shard, until it is
   * resolved (refused here: a prepare whose keys meet a prepared share's), so the commit's real run at C
   * (> P) meets exactly the same state. A transaction a recoverer aborted here first is refused.
   */
  private applyTxnIntent(req: InternalRequest & { txn_intent: NonNullable<Extract<InternalRequest, { txn_intent: unknown }>['txn_intent']> }, at: number | undefined): ApplyOutcome {
    const intent = req.txn_intent;
    if (!this.sharded || intent.refused === true || at === undefined) throw new RefusedRequest(TXN_INTENT_REFUSED);
    if (this.txns.getPrepared(intent.txn_id) !== undefined || this.txns.decisionOf(intent.txn_id) !== null) throw new RefusedRequest(TXN_INTENT_REFUSED);
    // Older than the fence horizon: its fence here may have been dropped, so it may be a late prepare.
    if (Number(intent.priority ?? 0) < this.txns.fenceHorizon()) throw new RefusedRequest(txnTooOld(this.txns.fenceHorizon()));
    const op = txnOpFromWire(intent.ops);
    const decideHere = intent.decide_here === true;
    let result: TxnResult;
    let comparesHeld = true;
    if (decideHere) {
      // The branch is the prepares' to decide: this shard's verdict (each of its compares lies wholly
      // here) and both branches' shares dry-run on the state the commit will meet.
      comparesHeld = this.unsafeDecideIgnoringCompares || op.compare.every((c) => compareVerdict(c, this.store.comparePart(c)));
      const success = this.store.previewTxn({ compare: [], success: op.success, failure: [] }, at);
      const failure = this.store.previewTxn({ compare: [], success: op.failure, failure: [] }, at);
      result = { succeeded: comparesHeld, responses: [...success.responses, ...failure.responses] };
    } else {
      const expected = new Map((intent.expected ?? []).map((e) => [e.index, e]));
      op.compare.forEach((c, i) => {
        const now = this.store.comparePart(c);
        const then = expected.get(i);
        if (then === undefined || then.any !== now.any || then.ok !== now.ok) throw new RefusedRequest(TXN_CONFLICT);
      });
      result = this.store.previewTxn({ compare: [], success: op.success, failure: [] }, at);
    }
    const prepared: PreparedTxn = {
      txnId: intent.txn_id,
      revision: at,
      primaryGroup: Number(intent.primary_group),
      participantGroups: (intent.participant_groups ?? []).map(Number),
      ops: decideHere ? { compare: intent.ops.compare ?? [], success: intent.ops.success ?? [], failure: intent.ops.failure ?? [] } : { compare: intent.ops.compare ?? [], success: intent.ops.success ?? [], failure: [] },
      deadlineUnixMs: Number(intent.deadline_unix_ms),
      ...(decideHere ? { decideHere, comparesHeld } : {}),
      ...positionsOf('successPositions', intent.success_positions, op.success.length),
      ...(decideHere ? positionsOf('failurePositions', intent.failure_positions, op.failure.length) : {}),
      ...(intent.priority !== undefined && Number(intent.priority) > 0 ? { priority: Number(intent.priority) } : {}),
      ...(intent.lease_sweep ? { leaseSweep: { ID: String(intent.lease_sweep.ID), generation: String(intent.lease_sweep.generation), revoked_at: String(intent.lease_sweep.revoked_at ?? '0'), horizon: String(intent.lease_sweep.horizon ?? '0') } } : {}),
    };
    // Transactions prepared here at once must have disjoint keys: each was checked on a store without the
    // others' writes (share-keys.ts). Decided here, at apply, so every replica refuses the same prepares;
    // the leader only proposes one that meets another to have it refused (an older build's leader never
    // proposes a second prepare at all).
    const keys = shareKeysOf(prepared.ops, prepared.leaseSweep !== undefined);
    if (this.txns.preparedCount() > 0 && this.unsafeTxnMutation !== 'prepare-overlapping' && this.txns.meeting(keys).length > 0) {
      throw new RefusedRequest(TXN_INTENT_REFUSED);
    }
    // A deferred write below it is not in the store yet: its share's check and responses would miss it.
    if (this.txns.deferredCount() > 0 && this.unsafeTxnMutation !== 'prepare-over-deferred' && this.txns.deferredMeet(keys)) {
      throw new RefusedRequest(TXN_INTENT_REFUSED);
    }
    this.txns.prepare(prepared, keys);
    this.txnsChanged();
    return { revision: at, result };
  }

  /**
   * A transaction's resolution here. Commit runs the prepared share at the transaction's revision C (on
   * the primary this is the decision: it succeeds only while the transaction is prepared there, a
   * compare-and-set against a recoverer's abort) and the primary keeps its record; abort drops the share.
   */
  private applyTxnResolve(req: InternalRequest & { txn_resolve: NonNullable<Extract<InternalRequest, { txn_resolve: unknown }>['txn_resolve']> }): ApplyOutcome {
    const r = req.txn_resolve;
    if (Number(r.fence_horizon_unix_ms ?? 0) > 0) this.txns.advanceFenceHorizon(Number(r.fence_horizon_unix_ms));
    for (const id of r.forget_txn_ids ?? []) this.txns.forget(id);
    if (r.forget === true) {
      this.txns.forget(r.txn_id);
      return { revision: this.appliedRevision(), result: null };
    }
    const prepared = this.txns.getPrepared(r.txn_id);
    if (prepared === undefined || this.txns.committedNotMade(r.txn_id)) {
      // Resolved already (a recoverer and the coordinator both resolve): the same answer is fine.
      const decision = this.txns.decisionOf(r.txn_id);
      if (!r.commit || decision?.state === 'committed') return { revision: this.appliedRevision(), result: null };
      throw new RefusedRequest(TXN_NOT_PREPARED);
    }
    if (!r.commit) {
      this.txns.takePrepared(r.txn_id);
      // Committed shares waiting for this one's outcome may be made now.
      this.materialize();
      this.txnsChanged();
      return { revision: this.appliedRevision(), result: null };
    }
    // C is the highest of the participants' prepare revisions: at or above this shard's own prepare, and
    // above everything applied here but other transactions' prepares (on disjoint keys).
    const at = Number(r.revision ?? 0);
    if (!Number.isSafeInteger(at) || at < prepared.revision || at <= this.otherStampedRevision || at <= this.store.currentRevision()) {
      throw new Error(`invariant: txn ${r.txn_id} commits at revision ${r.revision}, not above the shard's other writes (through ${Math.max(this.otherStampedRevision, this.store.currentRevision())}; prepared at ${prepared.revision})`);
    }
    const failureBranch = r.failure_branch === true;
    if (failureBranch && prepared.decideHere !== true) throw new Error(`invariant: txn ${r.txn_id} commits its failure branch on a shard whose prepare did not decide the branch`);
    // The success branch needs every participant's compares to have held: here they did not.
    if (!failureBranch && prepared.decideHere === true && prepared.comparesHeld === false) throw new Error(`invariant: txn ${r.txn_id} commits its success branch on a shard whose compares did not hold at its prepare`);
    // Every participant keeps the commit until the coordinator has them all forget it: a recoverer of
    // another participant may ask any of them, and only a record tells "committed" from "never prepared".
    this.txns.recordDecision(prepared.txnId, 'committed', at, prepared.participantGroups, undefined, failureBranch);
    if (at > this.appliedRevisionValue) {
      this.appliedRevisionValue = at;
      this.appliedRevisionDirty = true;
    }
    const made = this.materialize();
    this.revisionListener?.(at);
    this.txnsChanged();
    return { revision: at, result: made.get(prepared.txnId) ?? null };
  }

  /**
   * Makes everything that may be made now (ShardTxnTable.takeMaterializable), lowest revision first: a
   * committed share's writes at its C, as the transaction's commit; a deferred write at its own revision,
   * answering its proposer here. Returns each made share's result by transaction.
   */
  private materialize(): Map<string, TxnResult> {
    const made = new Map<string, TxnResult>();
    const ready =
      this.unsafeTxnMutation === 'materialize-at-once'
        ? this.txns.preparedTxns().flatMap((p) => {
            const d = this.txns.committedNotMade(p.txnId) ? this.txns.decisionOf(p.txnId) : null;
            if (d === null) return [];
            this.txns.takePrepared(p.txnId);
            return [{ kind: 'share' as const, revision: d.revision, prepared: p, decision: d }];
          })
        : this.txns.takeMaterializable();
    const leaseExists = this.store.leaseExists;
    try {
      for (const m of ready) {
        if (m.kind === 'share') made.set(m.prepared.txnId, this.makeShare(m.prepared, m.decision.revision, m.decision.failureBranch === true));
        else this.makeDeferred(m.write);
      }
    } finally {
      this.store.leaseExists = leaseExists;
    }
    return made;
  }

  /**
   * A deferred write, run now at its revision (as it would have run at apply with nothing prepared). One
   * this replica answered at apply must come out as answered.
   */
  private makeDeferred(write: DeferredWrite): void {
    if (write.revision <= this.store.currentRevision()) throw new Error(`invariant: write deferred at revision ${write.revision} made over the store's ${this.store.currentRevision()}`);
    const own = this.ownDeferred.get(write.revision);
    this.ownDeferred.delete(write.revision);
    this.otherStampedRevision = Math.max(this.otherStampedRevision, write.revision);
    const outcome = this.executeAndAnswer(decodeInternalRequest(write.data), write.revision, own !== undefined && 'waiter' in own ? own.waiter : undefined, write.index);
    if (own !== undefined && 'answered' in own && fingerprintOf(outcome) !== own.answered) {
      throw new Error(`invariant: the write deferred at revision ${write.revision} was answered ${own.answered} at apply, but made as ${fingerprintOf(outcome)}`);
    }
  }

  /** A committed share's writes, made at `at`. */
  private makeShare(prepared: PreparedTxn, at: number, failureBranch: boolean): TxnResult {
    if (at <= this.store.currentRevision()) throw new Error(`invariant: txn ${prepared.txnId}'s share made at revision ${at}, not above the store's ${this.store.currentRevision()}`);
    // Its puts were checked at the prepare, on this same state (nothing was written to its keys since).
    this.store.leaseExists = () => true;
    const s = prepared.leaseSweep;
    // A lease sweep's share: the generation's keys here, deleted at C (lease_sweep's rule, at C).
    const swept = s === undefined ? [] : (this.leases.sweep(s.ID, Number(s.generation), Number(s.revoked_at ?? 0), Number(s.horizon ?? 0)) ?? []);
    const ops = failureBranch ? { compare: [], success: prepared.ops.failure ?? [], failure: [] } : { compare: [], success: prepared.ops.success ?? [], failure: [] };
    const share = s === undefined ? txnOpFromWire(ops) : { compare: [], success: swept.map((key) => ({ type: 'deleteRange' as const, deleteRange: { key, rangeEnd: Buffer.alloc(0), prevKv: false } })), failure: [] };
    const positions = s === undefined ? (failureBranch ? prepared.failurePositions : prepared.successPositions) : undefined;
    const out = this.store.txn(share, at, undefined, positions);
    this.publish(out.events, out.revision);
    return out.result;
  }

  /**
   * A recoverer's compare-and-set on a participant: committed (answered with C and its branch), prepared
   * (answered with its P and, for a transaction whose prepares decide the branch, whether its compares
   * held here; aborted now instead if asked), or never prepared here — recorded aborted, so that its
   * prepare, arriving late, is refused (answered with revision 0).
   */
  private applyTxnRecover(req: InternalRequest & { txn_recover: NonNullable<Extract<InternalRequest, { txn_recover: unknown }>['txn_recover']> }): ApplyOutcome {
    const r = req.txn_recover;
    const priority = Number(r.priority ?? 0);
    const decision = this.txns.decisionOf(r.txn_id);
    const prepared = this.txns.getPrepared(r.txn_id);
    let answer: TxnRecoveryResult = { state: 'aborted', failureBranch: false };
    let revision = 0;
    if (decision !== null) {
      if (decision.state === 'committed') {
        answer = { state: 'committed', failureBranch: decision.failureBranch === true };
        revision = decision.revision;
      }
    } else if (prepared === undefined) {
      // A fence: its prepare, arriving late, is refused. Below the fence horizon the horizon refuses it.
      if (priority >= this.txns.fenceHorizon()) this.txns.recordDecision(r.txn_id, 'aborted', 0, undefined, priority);
    } else if (r.abort_pending) {
      this.txns.takePrepared(r.txn_id);
      this.txns.recordDecision(r.txn_id, 'aborted', 0, undefined, priority);
      this.materialize();
      this.txnsChanged();
    } else {
      answer = { state: 'prepared', failureBranch: prepared.comparesHeld === false };
      revision = prepared.revision;
    }
    return { revision, result: answer };
  }

  /** etcd's applyAlarm: an alarm of a member that is not (or no longer) in the cluster is ignored. */
  private applyAlarm(req: { action: unknown; memberID: unknown; alarm: unknown }): AlarmMember[] {
    const memberID = String(req.memberID);
    const alarm = alarmTypeOf(req.alarm);
    const action = alarmActionOf(req.action);
    if (action === 'GET') return this.alarms.list().filter((a) => alarm === 'NONE' || a.alarm === alarm);
    const m = this.membership.get(memberID);
    if (!m || m.removed) return [];
    const changed = action === 'ACTIVATE' ? this.alarms.activate(memberID, alarm) : this.alarms.deactivate(memberID, alarm);
    return changed ? [changed] : [];
  }

  private publish(events: MvccEvent[], revision: number): void {
    if (events.length === 0) return;
    this.leases.observe(events);
    this.hub.notify(events, revision);
  }

  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }> {
    const ops: Array<{ key: Buffer; value: Buffer | null }> = this.store.drainPersistOps().map((op) => ({
      key: prefixed(MVCC_PREFIX, op.key),
      value: op.value,
    }));
    if (this.memberOps.length > 0) ops.push(...this.memberOps.splice(0));
    if (this.appliedRevisionDirty) {
      this.appliedRevisionDirty = false;
      const value = Buffer.alloc(8);
      value.writeBigUInt64BE(BigInt(this.appliedRevisionValue));
      ops.push({ key: APPLIED_REVISION_KEY, value });
    }
    for (const op of this.leases.drainPersistOps()) {
      ops.push({ key: prefixed(LEASE_RECORD_PREFIX, op.key), value: op.value });
    }
    for (const op of this.auth.drainPersistOps()) {
      ops.push({ key: Buffer.concat([Buffer.from([AUTH_RECORD_PREFIX]), op.key]), value: op.value });
    }
    for (const op of this.alarms.drainPersistOps()) ops.push({ key: prefixed(ALARM_RECORD_PREFIX, op.key), value: op.value });
    for (const op of this.txns.drainPersistOps()) ops.push({ key: prefixed(TXN_RECORD_PREFIX, op.key), value: op.value });
    return ops;
  }

  /** Fails every waiting client, e.g. on shutdown. */
  failAll(err: Error): void {
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
    for (const own of this.ownDeferred.values()) if ('waiter' in own) own.waiter.reject(err);
    this.ownDeferred.clear();
    this.fence.clear();
  }
}

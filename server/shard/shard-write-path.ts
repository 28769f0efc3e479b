// One shard replica's write and read path at oracle revisions: the thin shell around ShardRevisions
// (shard-revisions.ts, where the rules and the argument for why they are safe live). It owns the I/O:
// following this member's leadership of the shard, the start-up barrier and fresh oracle revision, one
// oracle request per turn for the turn's writes, proposing the stamped entries, and serving reads at R.
//
//   write(body)     → queued for this turn; the turn asks the oracle once for all its writes, stamps them,
//                     proposes them in revision order and settles each when this replica applies it.
//                     A txn whose writes are here but whose reads touch other shards is proposed once
//                     its reads there at R − 1 answered (txn-reads.ts); the writes after it wait.
//   readAt(op, R)   → raise maxReadRevision to R, wait until no revision ≤ R proposed here is unapplied,
//                     ReadIndex (member.readBarrier: applies everything committed), then the store at R.
//
// A cross-shard transaction's prepare (txn_intent) is stamped like any write; once it is proposed, and
// until its resolution is in this leader's log, nothing else stamped is proposed but other transactions'
// prepares on disjoint keys (the shard is frozen; then writes stamped above its C follow the resolution,
// which Raft applies first), a prepare whose keys meet its own waits if it is older and is refused if
// younger once a short grace is over (wait-die), and reads at or above its revision wait; the commit then
// raises the floor to the transaction's C. A resolution arriving here is held back up to 20 ms to ride
// with the next entry this member proposes on any shard, and goes at once when something waits behind it
// or a read wants it (held-resolutions.ts). Overdue prepared transactions are recovered from here
// (recoverTxn) while this replica leads. The protocol: server/txn/coordinator.ts, docs/transactions.md.
//
// Both refuse with ShardNotReadyError unless this replica leads the shard and is ready (the caller
// retries elsewhere or later); both end at their deadline. Elsewhere: forwarding between members
// (shard-forwarder.ts), the server wiring (server/cli/shard-hosting.ts), and reads served by a follower's
// replica (server/api/sharded-kv.ts).
import { CONCURRENT_PREPARE_RULES, DEFERRED_WRITE_RULES, NoLeaderError, type Member } from '../member/member.ts';
import { shareKeysMeet, shareKeysOf, type ShareKeys } from '../txn/share-keys.ts';
import type { RangeOp, RangeResult } from '../mvcc/types.ts';
import type { KvStateMachine, ApplyOutcome } from './kv-state-machine.ts';
import { isDeferrableWrite, writeKeysOf, writesRevision } from './kv-state-machine.ts';
import type { ClientGrant } from './oracle-client.ts';
import { proposalTermOf } from './proposal-fence.ts';
import { decodeInternalRequest, encodeInternalRequest, type InternalRequest, type InternalRequestBody, type TxnReadsWire, type TxnResolveWire } from './request-codec.ts';
import { foreignReadRevision, txnReadsToWire, type ForeignAnswer, type ForeignRead } from './txn-reads.ts';
import { txnOpFromWire } from '../etcd/convert.ts';
import { ShardRevisions, type ShardRevisionsMutation } from './shard-revisions.ts';
import { INTENT_TTL_MS, type PreparedTxn } from '../txn/shard-txn-table.ts';
import { judgeWaitingPrepare, rankOf, type TxnRank } from '../txn/wait-die.ts';
import { HeldResolutions, rideAlongOf, type HeldResolutionCounts, type RideAlong } from './held-resolutions.ts';

/** Longest a close waits for write turns whose oracle grants were on the way when it arrived. */
const GRANT_WAIT_MS = 1_000;

export class ShardNotReadyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShardNotReadyError';
  }
}

export class ShardDeadlineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShardDeadlineError';
  }
}

/**
 * A Raft call that failed `when` (a proposal, a ReadIndex), as the write path's callers hear it: "no
 * leader" (the leadership ended meanwhile) is this path's refusal, asking the shard's leader again; nothing
 * reached a log. Anything else (too many requests, an entry too large, a deadline) passes as it is.
 */
function refusalOf(err: unknown, when: string): Error {
  if (err instanceof NoLeaderError) return new ShardNotReadyError(`shard leadership lost ${when} (${err.message})`);
  return err instanceof Error ? err : new Error(String(err));
}

/** What the path needs of the oracle (OracleClient fits). */
export interface RevisionSource {
  next(count: number, deadlineMs: number): Promise<ClientGrant>;
}

/**
 * How the path reaches other shards for a txn whose writes are here but whose reads are not
 * (server/shard/txn-reads.ts). Absent: every entry is proposed as soon as it is stamped (today's path).
 */
export interface ReadsElsewhere {
  /** The foreign reads of `body` (empty: none). */
  plan(body: InternalRequestBody): ForeignRead[];
  /** `op` read at `revision` on the leader of shard group `groupId` (which then never writes at or below it). */
  read(groupId: number, op: RangeOp, revision: number, deadlineMs: number): Promise<RangeResult>;
}

export interface ShardWritePathOptions {
  member: Member;
  groupId: number;
  sm: KvStateMachine;
  oracle: RevisionSource;
  readsElsewhere?: ReadsElsewhere | null;
  /**
   * Largest entry a txn carrying reads elsewhere may make (the member's --max-request-bytes: Raft and the
   * peer stream are sized for it); a larger one is proposed marked too large and refused at apply.
   */
  maxEntryBytes?: number;
  /** Longest the start-up steps (barrier, fresh revision) wait before trying again. */
  startTimeoutMs?: number;
  /** Simulation only: a deliberately broken rule the checks must catch. */
  unsafeMutation?: ShardRevisionsMutation;
  /** Simulation only: propose prepares whatever keys the prepared transactions hold (their replicas must refuse them). */
  unsafeProposeOverlappingPrepares?: boolean;
  /**
   * Simulation only: told each time a resolution is held back, synchronously (the simulation ends
   * leaderships at that moment; a poll would nearly always miss it, a hold lasting about a turn).
   */
  onResolutionHeld?: () => void;
  /**
   * Resolves a cross-shard transaction prepared on this shard whose deadline passed undecided (its
   * coordinator died or is cut off): asks its primary, then resolves it here (docs/transactions.md).
   * Absent: nothing is recovered from here (a test's single shard).
   */
  recoverTxn?: ((p: PreparedTxn) => Promise<void>) | null;
}

/** How long past its deadline a prepared transaction waits before a recoverer steps in. */
const TXN_RECOVERY_GRACE_MS = 200;
/** How often the leader looks for prepared transactions past their deadline. */
const TXN_RECOVERY_CHECK_MS = 50;
/** How long a leader must have seen a transaction prepared before its deadline counts (preparedOverdue). */
const TXN_RECOVERY_MIN_SEEN_MS = 200;

/**
 * Whether a prepared transaction is overdue for recovery on this leader, which has seen it prepared for
 * `seenForMs` (monotonic). Its deadline was set by the leader that stamped its prepare, in that leader's
 * wall clock: exact there, but a leader elected since reads it through its own clock, which may be ahead
 * (the transaction looks overdue at once) or behind (it would look alive for as long). So the deadline
 * counts only once this leader has seen the transaction prepared a little while, and one it has seen
 * prepared for a whole intent's lifetime is overdue whatever the deadline says.
 */
export function preparedOverdue(deadlineUnixMs: number, nowMs: number, seenForMs: number): boolean {
  if (seenForMs >= INTENT_TTL_MS + TXN_RECOVERY_GRACE_MS) return true;
  return seenForMs >= TXN_RECOVERY_MIN_SEEN_MS && deadlineUnixMs + TXN_RECOVERY_GRACE_MS <= nowMs;
}

/** An InternalRequest's proposal_term field for `fence` (none when 0). */
function fenceField(fence: number): { proposal_term?: string } {
  return fence > 0 ? { proposal_term: String(fence) } : {};
}

/** Whether an outbox item is a cross-shard transaction's prepare. */
function isIntent(item: { q: { origin?: InternalRequest; body: InternalRequestBody } }): boolean {
  return 'txn_intent' in (item.q.origin ?? item.q.body);
}

/** An outbox intent's rank for wait-die (server/txn/wait-die.ts). */
function intentRank(item: { q: { origin?: InternalRequest; body: InternalRequestBody } }): TxnRank {
  const body = item.q.origin ?? item.q.body;
  const intent = 'txn_intent' in body ? body.txn_intent : undefined;
  return rankOf(Number(intent?.priority ?? 0), intent?.txn_id ?? '');
}

/**
 * A prepare's deadline, set in this leader's clock: its coordinator sent the time it had left (ttl_ms),
 * and the deadline that this shard's recoverers and wait-die judge by is fixed here, where they run. So a
 * coordinator whose wall clock is behind does not have its prepares recovered (aborted) the moment they
 * land, and one whose clock is ahead does not leave a dead transaction unrecovered for as long. Once per
 * arrival at a leader: a write passed on to the next leader arrives there as its coordinator sent it.
 */
function anchorIntentDeadline(body: InternalRequestBody): void {
  if (!('txn_intent' in body) || !body.txn_intent) return;
  const ttlMs = Number(body.txn_intent.ttl_ms ?? 0);
  if (Number.isSafeInteger(ttlMs) && ttlMs > 0) body.txn_intent.deadline_unix_ms = String(Date.now() + ttlMs);
}

/** An outbox intent's transaction deadline (wall-clock ms; Infinity for anything else). */
function intentDeadline(item: { q: { origin?: InternalRequest; body: InternalRequestBody } }): number {
  const body = item.q.origin ?? item.q.body;
  return 'txn_intent' in body && body.txn_intent ? Number(body.txn_intent.deadline_unix_ms) : Infinity;
}

/** How long a write forwarded to this leader may wait for it to become ready (it was just elected). */
const FORWARDED_WRITE_WAIT_MS = 5_000;
/** How long a forwarded write this leader could not propose waits before it is forwarded again. */
const REFORWARD_DELAY_MS = 20;
/** What a txn carries when its reads elsewhere would not fit in one entry (refused at apply). */
const TOO_LARGE: TxnReadsWire = { compares: [], ranges: [], too_large: true };
/** After its deadline, how long a txn's reads on other shards may still hold up the writes behind it. */
const READS_BACKSTOP_MS = 100;
/**
 * How long a prepare younger than the transaction holding the shard may wait for it before it is refused
 * (wait-die with a grace): about a resolution's consensus round on a loaded machine.
 */
const YOUNGER_WAIT_MS = 25;
/** Most forwarded writes held while this leader gets ready; more are dropped (their proposers time out). */
const MAX_HELD_WRITES = 10_000;

interface QueuedWrite {
  readonly body: InternalRequestBody;
  /**
   * A proposal intercepted from Raft (made on this member or forwarded by a follower): proposed with its
   * own proposer and sequence number, so the member that made it settles its client when it applies it.
   */
  readonly origin?: InternalRequest;
  readonly deadlineMs: number;
  settled: boolean;
  onGiveUp: (() => void) | null;
  resolve(o: ApplyOutcome): void;
  reject(e: Error): void;
}

interface OutboxItem {
  readonly q: QueuedWrite;
  readonly revision: number;
  /** The leadership term it was stamped in. */
  readonly term: number;
  /** What a txn read on other shards (null: it reads nothing elsewhere). */
  reads: TxnReadsWire | null;
  /** Its reads elsewhere have not answered yet. */
  waiting: boolean;
  failed: Error | null;
  /** A prepare: when it first met another transaction holding the shard (null: it has not). */
  heldSinceMs: number | null;
  /** A prepare: the keys of its share (share-keys.ts); an ordinary write: its keys. Once asked for. */
  keys?: ShareKeys;
}

/** A write waiting, out of the outbox, for the transactions that held it (`by`); `keys` are what prepares must not meet meanwhile. */
interface ParkedWrite {
  readonly q: QueuedWrite;
  readonly keys: ShareKeys;
  readonly by: readonly TxnRank[];
}

interface ReadWaiter {
  readonly revision: number;
  readonly term: number;
  resolve(): void;
  reject(e: Error): void;
}

/**
 * What cross-shard transactions allow a shard's outbox head (ShardWritePath.txnHold): held, by the
 * transactions named (wait-die ranks a waiting prepare against them); or proposed once stamped above
 * `aboveRevision`.
 */
type TxnHold = { readonly held: true; readonly by: readonly TxnRank[] } | { readonly held: false; readonly aboveRevision: number };
const NOT_HELD: TxnHold = { held: false, aboveRevision: 0 };

export class ShardWritePath {
  private readonly opts: Required<Omit<ShardWritePathOptions, 'unsafeMutation' | 'unsafeProposeOverlappingPrepares' | 'readsElsewhere' | 'maxEntryBytes' | 'recoverTxn' | 'onResolutionHeld'>>;
  private readonly unsafeProposeOverlappingPrepares: boolean;
  private readonly recoverTxn: ((p: PreparedTxn) => Promise<void>) | null;
  private readonly onResolutionHeld: (() => void) | null;
  /**
   * Cross-shard transactions' prepares proposed here and not applied yet, by revision, with their
   * transaction's rank (wait-die) and their share's keys. With one, or a prepared transaction in the state
   * machine, nothing stamped is proposed but other prepares on disjoint keys (once every member applies
   * them, CONCURRENT_PREPARE_RULES): a transaction's writes must land at its revision C, with nothing that
   * touches its keys, and nothing else above C, before them.
   */
  private readonly intentsInFlight = new Map<number, { readonly rank: TxnRank; readonly keys: ShareKeys }>();
  /**
   * Ordinary writes proposed here beside a prepared transaction (or a prepare on its way), not applied
   * yet, by revision, with their keys. Their replicas defer them until the transactions below them are
   * decided (apply rules 6, DEFERRED_WRITE_RULES), and refuse a prepare meeting a deferred write, so a
   * prepare meeting one of these waits here.
   */
  private readonly writesInFlight = new Map<number, ShareKeys>();
  /**
   * Writes taken out of the outbox because transactions prepared here (or their prepares on their way)
   * hold them, their revisions left as gaps: an ordinary write whose keys meet one, and a lease sweep or a
   * txn reading a past revision, which wait for every one. The outbox goes in revision order, so one
   * waiting at its head held every write stamped after it, whatever their keys. Each goes back to the
   * queue, to be stamped again, once none of the transactions it met holds the shard any more
   * (unparkWrites). A prepare meeting one waits (meetsWritesBeside), so newer transactions do not
   * overtake it for ever.
   */
  private parked: ParkedWrite[] = [];
  /**
   * Transactions prepared here whose resolution this leader put in its log in the term its revisions
   * were started for (lose() empties it when that term ends): id → the commit's revision C (0 for an
   * abort). Raft applies a leader's entries in log order, and an entry it appended after the resolution
   * commits only if the resolution does, so writes stamped above C may follow it into the log at once
   * instead of waiting a consensus round for it to apply.
   */
  private readonly resolvesProposed = new Map<string, number>();
  /**
   * Resolutions of transactions prepared here that this leader holds back: proposed with the next entry
   * stamped here or on another shard this member leads (rideAlong), when a read needs them, or after
   * LAZY_RESOLVE_MS. A cross-shard transaction's client has its answer already (its prepares are its
   * commit), and a resolution proposed on its own cost every member a turn, an fsync and a frame; riding
   * along, it costs almost nothing. It changes no rule: nothing stamped is proposed while a prepared
   * transaction's resolution is not in this leader's log (txnHold), which is why whatever waits behind
   * one proposes it first.
   */
  private readonly heldResolutions: HeldResolutions;
  /** This member's shards' held resolutions, which any of its shards' entries take along. */
  private readonly rideAlong: RideAlong;
  /** Prepared transactions a recovery runs for now (by id). */
  private readonly recovering = new Set<string>();
  /** When this leader first saw each prepared transaction (performance.now; preparedOverdue). */
  private readonly preparedSeenMs = new Map<string, number>();
  private recoveryTimer: ReturnType<typeof setInterval> | null = null;
  /** Wakes drainOutbox when a waiting younger prepare's grace ends. */
  private drainTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly maxEntryBytes: number;
  private readonly readsElsewhere: ReadsElsewhere | null;
  /**
   * Stamped writes not proposed yet, in revision order. A write is proposed only once every write
   * before it is (entries must reach the log in revision order); a txn reading other shards waits here
   * until those reads answered, and the writes stamped after it wait behind it. A write that transactions
   * prepared here hold does not: it is parked (`parked`) and stamped again later.
   */
  private outbox: OutboxItem[] = [];
  private readonly mutation: ShardRevisionsMutation | null;
  readonly revisions: ShardRevisions;
  private readonly unsafeMutation: ShardRevisionsMutation | null;
  private queue: QueuedWrite[] = [];
  /** Intercepted writes waiting for this new leader to become ready (rule 1 of shard-revisions.ts). */
  private held: QueuedWrite[] = [];
  private flushScheduled = false;
  private readWaiters: ReadWaiter[] = [];
  /** The term a start-up is running for (0: none). */
  private startingTerm = 0;
  private stopped = false;
  /**
   * Write turns whose oracle request is out, each settled once its grant is stamped (or the request
   * failed): closeAt waits for the ones out when it arrives rather than raise the floor over them.
   */
  private readonly turnsOut = new Set<Promise<void>>();
  readonly stats = { turns: 0, oracleRequests: 0, writesProposed: 0, grantsRetried: 0, reads: 0, closes: 0, closesAtFloor: 0, closesAfterGrants: 0, txnsReadingElsewhere: 0, writesReforwarded: 0, txnIntents: 0, txnIntentsBeside: 0, writesBesideTxns: 0, writesParked: 0, txnIntentsRefused: 0, txnRecoveries: 0 };

  constructor(options: ShardWritePathOptions) {
    this.opts = { startTimeoutMs: 500, ...options };
    this.readsElsewhere = options.readsElsewhere ?? null;
    this.maxEntryBytes = options.maxEntryBytes ?? Infinity;
    this.onResolutionHeld = options.onResolutionHeld ?? null;
    this.mutation = options.unsafeMutation ?? null;
    this.revisions = new ShardRevisions(options.unsafeMutation ?? null);
    this.unsafeMutation = options.unsafeMutation ?? null;
    this.recoverTxn = options.recoverTxn ?? null;
    this.unsafeProposeOverlappingPrepares = options.unsafeProposeOverlappingPrepares === true;
    const { member, groupId, sm } = this.opts;
    if (!sm.sharded) throw new Error('shard write path: the state machine is not in sharded mode');
    this.rideAlong = rideAlongOf(member);
    this.heldResolutions = new HeldResolutions(this.rideAlong, {
      propose: ({ data, resolve }) => {
        this.opts.member.proposeDirect(this.opts.groupId, data);
        this.resolveProposed(resolve, false);
      },
      passOn: (data) => this.reforward(data, Date.now() + FORWARDED_WRITE_WAIT_MS),
      afterFlush: () => this.drainOutbox(),
    });
    member.onLeaderRead(groupId, () => this.proposeHeldResolves());
    sm.revisionListener = (revision) => {
      this.revisions.appliedThrough(revision);
      // (Applied in revision order: a commit's C applies after every prepare proposed below it here.)
      let landed = false;
      for (const at of this.intentsInFlight.keys()) {
        if (at > revision) continue;
        this.intentsInFlight.delete(at);
        landed = true;
      }
      for (const at of this.writesInFlight.keys()) {
        if (at > revision) continue;
        this.writesInFlight.delete(at);
        landed = true;
      }
      if (landed) this.drainOutbox();
      this.afterApplied(revision);
      this.wakeReads();
    };
    sm.onTxnsChanged(() => {
      for (const id of this.resolvesProposed.keys()) if (sm.txns.getPrepared(id) === undefined) this.resolvesProposed.delete(id);
      this.drainOutbox();
      this.watchPreparedTxns();
    });
    member.onLeaderChange((g) => {
      if (g === groupId) this.follow();
    });
    this.follow();
  }

  /** Stops serving (the member stops or crashes): every waiting write and read fails. */
  stop(): void {
    this.stopped = true;
    this.lose(new ShardNotReadyError('shard replica stopped'));
    if (this.recoveryTimer !== null) clearInterval(this.recoveryTimer);
    this.recoveryTimer = null;
    if (this.drainTimer !== null) clearTimeout(this.drainTimer);
    this.drainTimer = null;
  }

  private leadingTerm(): number {
    const { member, groupId } = this.opts;
    // A replica removed from this member (it moved away) leads nothing; its last entries may still apply.
    if (!member.hostsGroup(groupId)) return 0;
    return member.role(groupId) === 'leader' ? member.term(groupId) : 0;
  }

  /** Whether this replica leads the shard at the term its revisions were started for. */
  private ready(): boolean {
    const t = this.revisions.leaderTerm;
    return !this.stopped && t !== 0 && this.leadingTerm() === t;
  }

  /** Re-evaluates leadership: ends a lost one, starts a new one. */
  private follow(): void {
    if (this.stopped) return;
    const term = this.leadingTerm();
    if (this.revisions.leaderTerm !== 0 && this.revisions.leaderTerm !== term) this.lose(new ShardNotReadyError('shard leadership lost'));
    if (term !== 0 && this.revisions.leaderTerm !== term && this.startingTerm !== term) void this.start(term);
  }

  private lose(err: Error): void {
    // Never in this leader's log: passed on to whoever leads now (a stopped replica reforwards nothing).
    if (this.stopped) this.heldResolutions.drop();
    else this.heldResolutions.passAllOn();
    this.revisions.end();
    this.preparedSeenMs.clear(); // a later leadership of this replica sees them anew
    this.intentsInFlight.clear();
    this.writesInFlight.clear();
    this.resolvesProposed.clear();
    const held = this.held;
    this.held = [];
    for (const q of held) q.reject(err);
    // Stamped writes not proposed yet are dropped with their revisions (gaps), as unused grants are.
    const unproposed = this.outbox;
    this.outbox = [];
    for (const item of unproposed) item.q.reject(err);
    const parked = this.parked;
    this.parked = [];
    for (const w of parked) w.q.reject(err);
    for (const w of this.readWaiters) w.reject(err);
    this.readWaiters = [];
    const queued = this.queue;
    this.queue = [];
    for (const q of queued) q.reject(err);
  }

  /** Rule 1 of shard-revisions.ts: a barrier at `term`, then a fresh oracle revision; retried while leading. */
  private async start(term: number): Promise<void> {
    this.startingTerm = term;
    const { member, groupId, sm, oracle } = this.opts;
    try {
      while (!this.stopped && this.leadingTerm() === term) {
        try {
          await member.readBarrier(groupId, Date.now() + this.opts.startTimeoutMs);
          const fresh = await oracle.next(1, Date.now() + this.opts.startTimeoutMs);
          if (this.stopped || this.leadingTerm() !== term) return;
          this.revisions.begin(term, fresh.last, sm.appliedRevision(), fresh.term);
          this.watchPreparedTxns();
          const held = this.held.filter((q) => !q.settled && q.deadlineMs > Date.now());
          this.held = [];
          if (held.length > 0) {
            this.queue.push(...held);
            this.scheduleFlush();
          }
          return;
        } catch {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    } finally {
      if (this.startingTerm === term) this.startingTerm = 0;
    }
  }

  /** Proposes `body` (a write) at an oracle revision; settles when this replica applies it. */
  write(body: InternalRequestBody, deadlineMs: number): Promise<ApplyOutcome> {
    if (!writesRevision(body)) return Promise.reject(new Error('shard write path: not a write'));
    this.follow();
    if (!this.ready()) return Promise.reject(new ShardNotReadyError('not the ready leader of this shard'));
    anchorIntentDeadline(body);
    return new Promise<ApplyOutcome>((resolve, reject) => {
      const q: QueuedWrite = {
        body,
        deadlineMs,
        settled: false,
        onGiveUp: null,
        resolve: (o) => {
          if (q.settled) return;
          q.settled = true;
          clearTimeout(timer);
          resolve(o);
        },
        reject: (e) => {
          if (q.settled) return;
          q.settled = true;
          clearTimeout(timer);
          q.onGiveUp?.();
          reject(e);
        },
      };
      const timer = setTimeout(() => q.reject(new ShardDeadlineError('write deadline passed')), Math.max(0, deadlineMs - Date.now()));
      this.queue.push(q);
      this.scheduleFlush();
    });
  }

  /**
   * Member.interceptProposals' target: a proposal for this shard while this member leads it, made here
   * (ApiContext.proposeWrite) or forwarded by a follower's Raft. Writes are stamped in this turn's batch
   * and proposed with their own proposer and sequence number; other entries (compaction) go to Raft as
   * they are. A write that cannot be stamped (leadership lost, or not ready in time) is dropped: it was
   * never acknowledged, and its proposer answers its client at the request's deadline.
   */
  intercept(data: Uint8Array): void {
    const request = decodeInternalRequest(data);
    const fence = proposalTermOf(request.proposal_term);
    if (fence !== 0 && fence !== this.opts.member.proposalTerm(this.opts.groupId)) {
      // Fenced to an earlier term (its proposer knew an earlier leadership): it would be skipped at
      // apply, so it must not count as proposed — a resolution taken for proposed ends the freeze, and a
      // write stamped for nothing is a gap. Its proposer hears it lost once this term applies there, and
      // proposes it again (proposal-fence.ts).
      return;
    }
    if (!writesRevision(request)) {
      if ('txn_resolve' in request && request.txn_resolve && this.holdsResolution(request.txn_resolve)) {
        this.heldResolutions.hold({ data, resolve: request.txn_resolve });
        this.onResolutionHeld?.();
        return;
      }
      // Raft may have stepped down in this very turn (a leadership handed over): passed on to whoever
      // leads now, as a write caught the same way. Never thrown: this runs in a peer stream's handler.
      try {
        this.opts.member.proposeDirect(this.opts.groupId, data);
      } catch {
        this.reforward(data, Date.now() + FORWARDED_WRITE_WAIT_MS);
        return;
      }
      if ('txn_resolve' in request && request.txn_resolve) this.resolveProposed(request.txn_resolve);
      return;
    }
    this.follow();
    anchorIntentDeadline(request);
    const q: QueuedWrite = {
      body: request,
      origin: request,
      deadlineMs: Date.now() + FORWARDED_WRITE_WAIT_MS,
      settled: false,
      onGiveUp: null,
      resolve: () => {
        q.settled = true;
      },
      // Every rejection comes before the entry reached the log (proposing threw, or leadership was lost
      // or handed over with the write still queued): its proposer, on another member, would otherwise
      // wait out its deadline for an answer that never comes.
      reject: () => {
        if (q.settled) return;
        q.settled = true;
        this.reforward(data, q.deadlineMs);
      },
    };
    if (this.ready()) {
      this.queue.push(q);
      this.scheduleFlush();
    } else if (this.leadingTerm() !== 0 && this.held.length < MAX_HELD_WRITES) {
      this.held.push(q);
    } else {
      // Raft made this member leader in this very turn (the member's own view follows at the next Ready),
      // or too many writes wait for the start: forwarded again shortly rather than dropped unanswered.
      q.reject(new ShardNotReadyError('not the ready leader of this shard yet'));
    }
  }

  /**
   * Forwards a write again, to whoever leads the shard now, as its proposer's Raft first did (a leadership
   * transfer, or a leader stepping down, between a follower's forward and this leader's proposal). Safe
   * because the write never reached any log, so it cannot apply twice; its stamped revision, if it had
   * one, was abandoned (a gap). Retried until the forwarded write's deadline while no leader is known.
   */
  private reforward(data: Uint8Array, deadlineMs: number): void {
    setTimeout(() => {
      if (this.stopped || Date.now() >= deadlineMs) return;
      try {
        this.opts.member.propose(this.opts.groupId, data);
        this.stats.writesReforwarded++;
      } catch {
        this.reforward(data, deadlineMs);
      }
    }, REFORWARD_DELAY_MS);
  }

  /**
   * Whether a resolution may wait here for another entry to ride with: it resolves a transaction prepared
   * here, and no write deferred behind the shard's transactions (or on its way to be, or parked) waits for it.
   */
  private holdsResolution(r: TxnResolveWire): boolean {
    const txns = this.opts.sm.txns;
    return r.forget !== true && r.txn_id !== '' && this.ready() && txns.getPrepared(r.txn_id) !== undefined && txns.deferredCount() === 0 && this.writesInFlight.size === 0 && this.parked.length === 0;
  }

  /** How many resolutions wait here for an entry to ride with (the simulation hands leaderships over then). */
  get heldResolutionCount(): number {
    return this.heldResolutions.size;
  }

  /** Resolutions held back here, proposed alone, and passed on as leaderships ended (/metrics). */
  get resolveCounts(): Readonly<HeldResolutionCounts> {
    return this.heldResolutions.counts;
  }

  /** Proposes the resolutions held back here now (a read wants them); the member's others go along. */
  proposeHeldResolves(): void {
    this.heldResolutions.flush();
  }

  /**
   * A resolution this member just appended to the shard's log (intercept): when it resolves a transaction
   * prepared here and this replica still leads in the term its revisions were started for (so the entry
   * went into this leader's log in that term), writes stamped above its C may be proposed behind it.
   */
  private resolveProposed(r: TxnResolveWire, drain = true): void {
    if (r.forget === true || r.txn_id === '' || !this.ready()) return;
    const prepared = this.opts.sm.txns.getPrepared(r.txn_id);
    if (prepared === undefined) return;
    const commitRevision = r.commit ? Number(r.revision ?? NaN) : 0;
    // A commit the state machine would refuse as an invariant breach holds the shard as before.
    if (r.commit && (!Number.isSafeInteger(commitRevision) || commitRevision < prepared.revision)) return;
    this.resolvesProposed.set(r.txn_id, commitRevision);
    if (drain) this.drainOutbox();
  }

  /**
   * What cross-shard transactions allow the outbox head `item`. A prepare is held while its keys meet
   * those of a prepare on its way or of a prepared transaction, or of an ordinary write deferred behind
   * them (or on its way to be); an ordinary write (put, delete range, txn), while its keys meet those of
   * a prepare on its way or of a prepared transaction whose resolution is not in this leader's log; any
   * other write, while a prepare is on its way or a resolution is not in this leader's log. (Until every
   * member applies concurrent prepares, a prepare is held like the last; until every member defers
   * writes, an ordinary write too.) Otherwise the head may be proposed once stamped above
   * `aboveRevision`: the highest C of the resolutions in the log (0: none).
   */
  private txnHold(item: OutboxItem): TxnHold {
    const txns = this.opts.sm.txns;
    // The common case, on every write's way to the log: nothing prepared, nothing to copy or scan.
    if (this.intentsInFlight.size === 0 && txns.preparedCount() === 0) return NOT_HELD;
    const prepared = txns.preparedTxns();
    if (isIntent(item) && (this.unsafeProposeOverlappingPrepares || this.opts.member.clusterImplements(CONCURRENT_PREPARE_RULES))) {
      const keys = this.keysOf(item);
      const by: TxnRank[] = [];
      for (const f of this.intentsInFlight.values()) if (shareKeysMeet(f.keys, keys)) by.push(f.rank);
      for (const p of txns.meeting(keys)) by.push(rankOf(p.priority, p.txnId));
      if (this.unsafeProposeOverlappingPrepares) {
        // (The simulation's mutations lay what they meet: they must be caught.)
      } else if (by.length > 0) return { held: true, by };
      else if (this.meetsWritesBeside(keys)) return { held: true, by: this.allHolders() };
    } else if (this.defersBeside(item)) {
      // A write on other keys is deferred by its replicas; one on a transaction's keys waits until that
      // transaction's resolution is in this leader's log (then, stamped above its C, it follows it).
      const keys = this.keysOf(item);
      const by: TxnRank[] = [];
      for (const f of this.intentsInFlight.values()) if (shareKeysMeet(f.keys, keys)) by.push(f.rank);
      for (const p of txns.meeting(keys)) if (this.resolutionMissing(p.txnId)) by.push(rankOf(p.priority, p.txnId));
      if (by.length > 0) return { held: true, by };
    } else {
      const unresolved = this.intentsInFlight.size > 0 || prepared.some((p) => this.resolutionMissing(p.txnId));
      // (The simulation's mutation lets a lease sweep or a txn reading the past through: it must be caught.)
      if (unresolved && this.mutation !== 'propose-undeferrable-beside-txn') return { held: true, by: this.allHolders() };
    }
    let aboveRevision = 0;
    for (const p of prepared) aboveRevision = Math.max(aboveRevision, this.resolvesProposed.get(p.txnId) ?? 0);
    return { held: false, aboveRevision };
  }

  /** Whether `txnId` is prepared here and its resolution is not in this leader's log: it holds the shard. */
  private resolutionMissing(txnId: string): boolean {
    return this.opts.sm.txns.getPrepared(txnId) !== undefined && !this.resolvesProposed.has(txnId);
  }

  /** Every transaction holding keys here: prepared, or its prepare on its way. */
  private allHolders(): TxnRank[] {
    const all = this.opts.sm.txns.preparedTxns().map((p) => rankOf(p.priority, p.txnId));
    for (const f of this.intentsInFlight.values()) all.push(f.rank);
    return all;
  }

  /** Whether `item` is an ordinary write its replicas defer behind prepared transactions (apply rules 6). */
  private defersBeside(item: OutboxItem): boolean {
    return isDeferrableWrite(item.q.origin ?? item.q.body) && this.opts.member.clusterImplements(DEFERRED_WRITE_RULES);
  }

  /** Whether `keys` meet those of an ordinary write deferred here, on its way to be, or parked. */
  private meetsWritesBeside(keys: ShareKeys): boolean {
    for (const k of this.writesInFlight.values()) if (shareKeysMeet(k, keys)) return true;
    for (const w of this.parked) if (!w.q.settled && shareKeysMeet(w.keys, keys)) return true;
    return this.opts.sm.txns.deferredMeet(keys);
  }

  /**
   * The keys of a prepare's share, or of an ordinary write, as its replicas will count them
   * (KvStateMachine.applyTxnIntent, writeKeysOf).
   */
  private keysOf(item: OutboxItem): ShareKeys {
    if (item.keys !== undefined) return item.keys;
    const body = item.q.origin ?? item.q.body;
    if (!('txn_intent' in body) || !body.txn_intent) {
      item.keys = writeKeysOf(body);
      return item.keys;
    }
    const intent = body.txn_intent;
    const ops = { compare: intent.ops.compare ?? [], success: intent.ops.success ?? [], failure: intent.ops.failure ?? [] };
    item.keys = shareKeysOf(ops, intent.lease_sweep !== undefined && intent.lease_sweep !== null);
    return item.keys;
  }

  /**
   * A cross-shard transaction's prepare younger than a transaction prepared here (or on its way) and
   * past its grace, or past its deadline, or behind a txn waiting on reads elsewhere: refused at once rather than held, so
   * two transactions each prepared on one shard and waiting for the other's never deadlock (an older
   * one waits: wait-die); its coordinator aborts and tries again. Proposed marked refused, without a
   * revision (its own becomes a gap), so its proposer hears it at apply wherever it is.
   */
  private refuseIntent(item: OutboxItem): void {
    const { q, revision } = item;
    this.revisions.abandon(revision);
    this.stats.txnIntentsRefused++;
    const request = q.origin ?? (q.body as InternalRequest);
    if (!('txn_intent' in request) || !request.txn_intent) throw new Error('shard write path: not a txn intent');
    const refused = { ...request, txn_intent: { ...request.txn_intent, refused: true } } as InternalRequest;
    delete refused.revision;
    try {
      if (q.origin !== undefined) {
        this.opts.member.proposeDirect(this.opts.groupId, encodeInternalRequest(refused));
        q.resolve({ revision: 0, result: null });
        return;
      }
      // Made here: with this member's own sequence number, settled at apply like any write, and fenced
      // to the leadership that stamped it (proposal-fence.ts).
      const fence = this.fenceOf(item.term);
      const tracked = this.opts.sm.track(fence);
      try {
        this.opts.member.proposeDirect(this.opts.groupId, encodeInternalRequest({ ...refused, proposer: this.opts.sm.proposer, seq: tracked.seq, ...fenceField(fence) }));
      } catch (err) {
        tracked.forget();
        throw err;
      }
      tracked.outcome.then(q.resolve, q.reject);
    } catch (err) {
      q.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** The fence for an entry this leader proposes itself in its leadership of `term`: the term, or 0 while a member of the shard could not apply fences. */
  private fenceOf(term: number): number {
    return this.opts.member.proposalTerm(this.opts.groupId) === 0 ? 0 : term;
  }

  /**
   * After an entry applied at `revision`. A cross-shard commit applies at its transaction's revision C,
   * above the prepare's: from now on nothing at or below C may be proposed here, so the floor rises to
   * C, and writes stamped while the transaction was prepared with revisions below C (held in the
   * outbox) are stamped again — a forwarded one is forwarded again, a local one fails as a write whose
   * leadership was lost does.
   */
  private afterApplied(revision: number): void {
    // Called for every applied entry: the cheap tests first. Only a commit applies above the floor or
    // at or above what the outbox holds (it is in revision order); a read may have raised the floor above
    // C already, and what was stamped below C still goes.
    if (this.stopped || this.revisions.leaderTerm === 0) return;
    const raises = revision > this.revisions.floor;
    const stampedBelow = this.outbox.length > 0 && this.outbox[0].revision <= revision;
    if ((!raises && !stampedBelow) || !this.ready()) return;
    if (raises) this.revisions.raiseRead(revision);
    if (!stampedBelow) return;
    const below = this.outbox.filter((item) => item.revision <= revision);
    if (below.length === 0) return;
    this.outbox = this.outbox.filter((item) => item.revision > revision);
    let restamp = false;
    for (const item of below) {
      this.revisions.abandon(item.revision);
      if (isIntent(item)) {
        // A prepare waiting for the transaction that just committed (wait-die): never proposed, so
        // stamped again above C in the next turn rather than failed.
        this.queue.push(item.q);
        restamp = true;
      } else item.q.reject(new ShardNotReadyError('stamped below a cross-shard transaction committed meanwhile'));
    }
    if (restamp) this.scheduleFlush();
  }

  /** Starts (or stops) the leader's look for prepared transactions past their deadline. */
  private watchPreparedTxns(): void {
    if (this.recoverTxn === null || this.stopped) return;
    const wanted = this.opts.sm.txns.preparedCount() > 0 && this.leadingTerm() !== 0;
    if (wanted && this.recoveryTimer === null) {
      this.recoveryTimer = setInterval(() => this.recoverOverdue(), TXN_RECOVERY_CHECK_MS);
      this.recoveryTimer.unref?.();
    } else if (!wanted && this.recoveryTimer !== null) {
      clearInterval(this.recoveryTimer);
      this.recoveryTimer = null;
    }
  }

  private recoverOverdue(): void {
    const recover = this.recoverTxn;
    if (recover === null || !this.ready()) {
      this.watchPreparedTxns();
      return;
    }
    const now = Date.now();
    const monoMs = performance.now();
    // (A committed share waiting to be made is decided: nothing to recover.)
    const prepared = this.opts.sm.txns.undecidedTxns();
    const preparedIds = new Set(prepared.map((p) => p.txnId));
    for (const id of this.preparedSeenMs.keys()) if (!preparedIds.has(id)) this.preparedSeenMs.delete(id);
    for (const p of prepared) {
      const seenMs = this.preparedSeenMs.get(p.txnId) ?? monoMs;
      this.preparedSeenMs.set(p.txnId, seenMs);
      if (!preparedOverdue(p.deadlineUnixMs, now, monoMs - seenMs) || this.recovering.has(p.txnId)) continue;
      this.recovering.add(p.txnId);
      this.stats.txnRecoveries++;
      recover(p)
        .catch(() => undefined) // tried again at the next check while it stays prepared
        .finally(() => this.recovering.delete(p.txnId));
    }
    this.watchPreparedTxns();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  /** One turn: one oracle request for every queued write, stamped and proposed in order. */
  private async flush(): Promise<void> {
    const batch = this.queue.filter((q) => !q.settled);
    this.queue = [];
    if (batch.length === 0) return;
    const term = this.revisions.leaderTerm;
    if (!this.ready()) {
      for (const q of batch) q.reject(new ShardNotReadyError('shard leadership lost'));
      return;
    }
    this.stats.turns++;
    this.stats.oracleRequests++;
    let grant: ClientGrant;
    let landed = (): void => {};
    const out = new Promise<void>((resolve) => (landed = resolve));
    this.turnsOut.add(out);
    try {
      grant = await this.opts.oracle.next(batch.length, Math.max(...batch.map((q) => q.deadlineMs)));
    } catch (err) {
      for (const q of batch) q.reject(err instanceof Error ? err : new Error(String(err)));
      return;
    } finally {
      // Settled here, but a waiting closeAt resumes only after this turn's synchronous stamping below.
      this.turnsOut.delete(out);
      landed();
    }
    if (this.stopped) return;
    // Stamping puts the revisions in flight: a read at or above one waits until it is applied (or
    // abandoned). They go to the outbox in order and are proposed in that order: at once, unless a txn
    // must first read other shards (txn-reads.ts), and then every later one waits behind it.
    const stamped = this.ready() ? this.revisions.stamp(grant, batch.length, term) : this.revisions.stamp(grant, batch.length, -1);
    if (!stamped.ok) {
      if (stamped.reason === 'not-leading') {
        for (const q of batch) q.reject(new ShardNotReadyError('shard leadership lost'));
        return;
      }
      // A read raised the floor past the grant (or the grant is stale): a gap; ask again.
      this.stats.grantsRetried++;
      const still = batch.filter((q) => !q.settled);
      this.queue.unshift(...still);
      if (still.length > 0) this.scheduleFlush();
      return;
    }
    for (const [i, q] of batch.entries()) {
      const item: OutboxItem = { q, revision: stamped.revisions[i], term, reads: null, waiting: false, failed: null, heldSinceMs: null };
      this.outbox.push(item);
      this.startReadsElsewhere(item);
    }
    this.drainOutbox();
  }

  /** For a txn reading other shards: reads them at the entry's revision − 1 (txn-reads.ts), then drains. */
  private startReadsElsewhere(item: OutboxItem): void {
    const elsewhere = this.readsElsewhere;
    if (elsewhere === null || !('txn' in item.q.body) || !item.q.body.txn) return;
    let plan: ForeignRead[];
    try {
      plan = elsewhere.plan(item.q.body);
    } catch (err) {
      item.failed = err instanceof Error ? err : new Error(String(err));
      return;
    }
    if (plan.length === 0) return;
    const txn = txnOpFromWire(item.q.body.txn);
    item.waiting = true;
    this.stats.txnsReadingElsewhere++;
    const deadlineMs = item.q.deadlineMs;
    const answers = plan.map(async (read): Promise<ForeignAnswer | null> => {
      const at = foreignReadRevision(read, item.revision);
      if (at === null) return null;
      try {
        return await Promise.all(read.groups.map((g) => elsewhere.read(g, read.op, at, deadlineMs)));
      } catch (err) {
        if (err instanceof Error && err.name === 'MvccError' && (err as Error & { code?: string }).code === 'compacted') return 'compacted';
        throw err;
      }
    });
    // The writes behind this one wait for it: whatever the reads do, it leaves the outbox by its deadline.
    let settled = false;
    const settle = (reads: TxnReadsWire | null, failed: Error | null): void => {
      if (settled) return;
      settled = true;
      clearTimeout(backstop);
      item.reads = reads;
      item.failed = failed;
      item.waiting = false;
      this.drainOutbox();
    };
    const backstop = setTimeout(() => settle(null, new ShardDeadlineError('txn reads on other shards passed the deadline')), Math.max(0, deadlineMs - Date.now()) + READS_BACKSTOP_MS);
    Promise.all(answers).then(
      (all) => settle(txnReadsToWire(txn, plan, all), null),
      (err: unknown) => settle(null, err instanceof Error ? err : new Error(String(err))),
    );
  }

  private intentProposed(revision: number, q: QueuedWrite, keys: ShareKeys | null): void {
    if (this.intentsInFlight.size > 0 || this.opts.sm.txns.preparedCount() > 0) this.stats.txnIntentsBeside++;
    this.intentsInFlight.set(revision, { rank: intentRank({ q }), keys: keys ?? 'all' });
    this.stats.txnIntents++;
  }

  /**
   * Takes a stamped write out of the outbox to wait for `by` (its revision becomes a gap). One its replicas
   * do not defer beside transactions (a lease sweep, a txn reading a past revision) waits for every
   * transaction here, so every prepare waits for it in turn, as if it held every key.
   */
  private park(item: OutboxItem, by: readonly TxnRank[]): void {
    this.revisions.abandon(item.revision);
    this.parked.push({ q: item.q, keys: this.defersBeside(item) ? this.keysOf(item) : 'all', by });
    this.stats.writesParked++;
  }

  /**
   * Queues again, ahead of later writes and in their order, the parked writes none of whose transactions
   * holds the shard now: neither prepared here with its resolution missing from this leader's log, nor
   * its prepare on its way. Prepares stamped meanwhile on their keys (waiting for them in the outbox:
   * meetsWritesBeside) are taken out and queued behind them, so that the writes get the lower revisions
   * and go first. Stamped again, a write that meets a newer transaction is parked again.
   */
  private unparkWrites(): void {
    if (this.parked.length === 0 || !this.ready()) return;
    const inFlight = new Set([...this.intentsInFlight.values()].map((f) => f.rank.txnId));
    const holds = (r: TxnRank): boolean => inFlight.has(r.txnId) || this.resolutionMissing(r.txnId);
    const free = this.parked.filter((w) => w.q.settled || !w.by.some(holds));
    if (free.length === 0) return;
    this.parked = this.parked.filter((w) => !free.includes(w));
    const again = free.filter((w) => !w.q.settled);
    if (again.length === 0) return;
    const waitingOnThem = this.outbox.filter((item) => isIntent(item) && again.some((w) => shareKeysMeet(w.keys, this.keysOf(item))));
    if (waitingOnThem.length > 0) {
      this.outbox = this.outbox.filter((item) => !waitingOnThem.includes(item));
      for (const item of waitingOnThem) this.revisions.abandon(item.revision);
    }
    this.queue.unshift(...again.map((w) => w.q), ...waitingOnThem.map((item) => item.q));
    this.scheduleFlush();
  }

  private writeProposedBeside(revision: number, keys: ShareKeys | null): void {
    this.writesInFlight.set(revision, keys ?? 'all');
    this.stats.writesBesideTxns++;
  }

  /** Runs drainOutbox again in `ms` (a waiting younger prepare's grace ends); one timer at a time. */
  private wakeDrainIn(ms: number): void {
    if (this.drainTimer !== null) return;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = null;
      if (!this.stopped) this.drainOutbox();
    }, Math.max(1, Math.ceil(ms)));
    this.drainTimer.unref?.();
  }

  /** Proposes the outbox's head writes, in revision order, up to the first still waiting for its reads. */
  private drainOutbox(): void {
    const { member, groupId, sm } = this.opts;
    this.unparkWrites();
    let proposedAny = false;
    // (The simulation's mutation proposes a txn without waiting for its reads elsewhere: it must be caught.)
    while (this.outbox.length > 0 && (!this.outbox[0].waiting || this.mutation === 'propose-before-reads-elsewhere')) {
      // A cross-shard transaction prepared here (or its prepare on the way): nothing stamped goes to
      // the log until it is resolved (its commit applies at its C with nothing above its prepare before
      // it) but prepares on disjoint keys (txnHold); one whose keys meet it waits or is refused by
      // wait-die (server/txn/wait-die.ts).
      // (The simulation's mutation proposes past a prepared transaction: it must be caught.)
      const hold = this.txnHold(this.outbox[0]);
      if (hold.held && this.heldResolutions.size > 0) {
        this.heldResolutions.flush(); // what waits here may wait only for a resolution held back: it goes first
        continue;
      }
      if (hold.held && this.mutation !== 'propose-while-txn-prepared' && !isIntent(this.outbox[0])) {
        // A write held by transactions here (an ordinary write on their keys; a lease sweep, or a txn
        // reading a past revision, by every one of them): out of the way of the writes behind it.
        this.park(this.outbox.shift()!, hold.by);
        continue;
      }
      if (hold.held && this.mutation !== 'propose-while-txn-prepared') {
        // Wait-die, for every prepare waiting here wherever it is in the outbox: one older than every
        // transaction holding the shard waits (stamped again if the holder commits above it); a younger
        // one waits at most YOUNGER_WAIT_MS, then is refused. Most holders are only waiting for their
        // resolution, which a short wait outlasts; a cycle of waits must contain a younger one waiting
        // for an older (older ones only ever wait for younger), so its grace running out breaks it.
        // The head is ranked against what holds it; a prepare behind it against every holder here (it
        // waits for the head, which waits for those: ranked so, no cycle of waits lacks a younger one).
        const head = this.outbox[0];
        const everyHolder = this.allHolders();
        const now = Date.now();
        let graceLeftMs = Infinity;
        const dies = (item: OutboxItem): boolean => {
          if (!isIntent(item)) return false;
          // The grace runs from when it first waited as the younger one.
          const holders = item === head ? hold.by : everyHolder;
          const verdict = judgeWaitingPrepare({ rank: intentRank(item), heldSinceMs: item.heldSinceMs ?? now, deadlineUnixMs: intentDeadline(item) }, holders, now, YOUNGER_WAIT_MS);
          if (verdict.kind === 'wait-grace') {
            item.heldSinceMs ??= now;
            graceLeftMs = Math.min(graceLeftMs, verdict.graceLeftMs);
          }
          return verdict.kind === 'die';
        };
        const refused = this.outbox.filter(dies);
        if (refused.length > 0) {
          this.outbox = this.outbox.filter((item) => !refused.includes(item));
          for (const item of refused) this.refuseIntent(item);
        }
        if (graceLeftMs !== Infinity) this.wakeDrainIn(graceLeftMs);
        break;
      }
      // Stamped at or below a commit whose resolution is in the log but not applied: it must not follow
      // it (a revision below C after C); settled once the commit applies (afterApplied).
      if (!hold.held && this.outbox[0].revision <= hold.aboveRevision && this.mutation !== 'propose-while-txn-prepared' && this.mutation !== 'propose-below-logged-commit') break;
      if (intentDeadline(this.outbox[0]) <= Date.now()) {
        // It waited past its transaction's deadline: its coordinator has given this attempt up, and a
        // late prepare would only freeze the shard until a recoverer aborts it.
        this.refuseIntent(this.outbox.shift()!);
        continue;
      }
      const proposingIntent = isIntent(this.outbox[0]);
      // An ordinary write proposed beside a transaction here may be deferred at apply: a prepare meeting it waits.
      const besideTxns = !proposingIntent && (this.intentsInFlight.size > 0 || sm.txns.preparedCount() > 0);
      const keysOfProposed = proposingIntent || besideTxns ? this.keysOf(this.outbox[0]) : null;
      const { q, revision, term, reads, failed } = this.outbox.shift()!;
      if (term !== this.revisions.leaderTerm || !this.ready()) {
        // lose() empties the outbox; this is the same leadership check the synchronous path makes.
        this.revisions.abandon(revision);
        q.reject(new ShardNotReadyError('shard leadership lost'));
        continue;
      }
      if (failed !== null) {
        // Its reads elsewhere failed (deadline, no leader): never proposed, its revision is a gap.
        this.revisions.abandon(revision);
        q.reject(failed);
        continue;
      }
      let extra: { txn_reads?: TxnReadsWire } = reads !== null ? { txn_reads: reads } : {};
      // A write whose caller gave up is still proposed when it has a revision: skipping it would only
      // make a gap, and proposing keeps the path simple (the caller was told "deadline", not "failed").
      if (q.origin !== undefined) {
        // Reads elsewhere are only ever what this leader read: a proposal arriving with some is not trusted.
        const origin: InternalRequest = { ...q.origin };
        delete origin.txn_reads;
        try {
          let data = encodeInternalRequest({ ...origin, ...extra, revision: String(revision) });
          if (reads !== null && data.length > this.maxEntryBytes) data = encodeInternalRequest({ ...origin, txn_reads: TOO_LARGE, revision: String(revision) });
          member.proposeDirect(groupId, data);
          proposedAny = true;
          this.stats.writesProposed++;
          if (proposingIntent) this.intentProposed(revision, q, keysOfProposed);
          else if (besideTxns) this.writeProposedBeside(revision, keysOfProposed);
          q.resolve({ revision, result: null });
        } catch (err) {
          this.revisions.abandon(revision);
          q.reject(refusalOf(err, 'before the write was proposed'));
        }
        continue;
      }
      // Fenced to this leadership (proposal-fence.ts): lost with it, the caller hears so once a later
      // term's entry applies here, not at its deadline.
      const fence = this.fenceOf(term);
      const tracked = sm.track(fence);
      let data: Uint8Array;
      try {
        const own = { proposer: sm.proposer, seq: tracked.seq, ...fenceField(fence) };
        data = encodeInternalRequest({ ...own, ...q.body, ...extra, revision: String(revision) });
        if (reads !== null && data.length > this.maxEntryBytes) {
          extra = { txn_reads: TOO_LARGE };
          data = encodeInternalRequest({ ...own, ...q.body, ...extra, revision: String(revision) });
        }
        member.proposeDirect(groupId, data);
        proposedAny = true;
      } catch (err) {
        tracked.forget();
        this.revisions.abandon(revision);
        q.reject(refusalOf(err, 'before the write was proposed'));
        continue;
      }
      this.stats.writesProposed++;
      if (proposingIntent) this.intentProposed(revision, q, keysOfProposed);
      else if (besideTxns) this.writeProposedBeside(revision, keysOfProposed);
      tracked.outcome.then(q.resolve, q.reject);
      // A caller that gives up (deadline, leadership lost) no longer needs the apply waiter: an entry
      // lost with its leader would otherwise keep it for ever.
      q.onGiveUp = tracked.forget;
    }
    // A txn reading other shards heads the outbox: a prepare behind it would wait on those reads, which
    // may wait on a shard its own transaction holds. Refused instead (no-wait), as behind a prepared one.
    if (this.outbox.length > 0 && this.outbox[0].waiting) {
      const intents = this.outbox.filter((item) => isIntent(item));
      if (intents.length > 0) {
        this.outbox = this.outbox.filter((item) => !isIntent(item));
        for (const item of intents) this.refuseIntent(item);
      }
    }
    if (proposedAny) this.rideAlong.flushAll();
    this.wakeReads();
  }

  /**
   * The range `op` read at revision `revision` (which the caller obtained from the oracle). Once this
   * resolves, every later read at `revision` on this shard returns the same (see shard-revisions.ts).
   */
  async readAt(op: RangeOp, revision: number, deadlineMs: number): Promise<RangeResult> {
    if (!Number.isSafeInteger(revision) || revision < 1) throw new Error(`shard read: revision ${revision} is not a positive integer`);
    this.follow();
    if (!this.ready()) throw new ShardNotReadyError('not the ready leader of this shard');
    const term = this.revisions.leaderTerm;
    this.stats.reads++;
    this.revisions.raiseRead(revision);
    await this.settledAt(revision, term, deadlineMs);
    await this.txnsSettledThrough(revision, deadlineMs);
    // A replica dropped meanwhile (its shard moved away) may be deleting its data: read elsewhere.
    if (this.stopped) throw new ShardNotReadyError('shard replica stopped during the read');
    // The barrier applied everything committed when it began, and every revision ≤ R proposed here was
    // applied before it: the shard is caught up through R.
    // A read below the shard's last write reads history (the store is caught up through its last write).
    const store = this.opts.sm.store;
    return store.range({ ...op, revision }, Math.max(revision, store.currentRevision()));
  }

  /**
   * A merged watch's closing round (server/shard/shard-closer.ts): after this resolves with C (≤
   * `revision`, an oracle revision the caller obtained), this leadership never stamps a revision ≤ C, a
   * later leader starts above a fresh revision (> C), and every entry at or below C is applied here —
   * readAt's guarantees, without the read. C is `revision` itself, raising the floor as readAt does.
   *
   * Write turns whose oracle request is out when the close arrives may be granted revisions below R:
   * raising the floor over them would drop their grants (a retry for each of those writes, and with
   * rounds as frequent as an oracle round trip, writes that never get through). So the close first
   * waits for those turns to land (stamped, floor raised to their grants), at most `GRANT_WAIT_MS`.
   * Turns begun after the close arrived cannot be granted R or below: their requests left after R was
   * handed out, and the oracle hands out increasing revisions across leader changes (a deposed oracle
   * cannot confirm its leadership after a newer one granted). If the wait runs out (an oracle that
   * does not answer), C is the current floor instead: nothing at or below it is stamped again either,
   * and the next round closes further. Closing at the floor right away, as this did before, made a
   * merged watch over 16 busy shards wait several rounds for every event (p50 ~200 ms at 200 puts/s).
   */
  async closeAt(revision: number, deadlineMs: number): Promise<number> {
    if (!Number.isSafeInteger(revision) || revision < 1) throw new Error(`shard close: revision ${revision} is not a positive integer`);
    this.follow();
    if (!this.ready()) throw new ShardNotReadyError('not the ready leader of this shard');
    const term = this.revisions.leaderTerm;
    this.stats.closes++;
    let closed = revision;
    if (this.unsafeMutation === 'close-over-pending-grant' && this.turnsOut.size > 0) {
      // Simulation only: closes at R without raising the floor over a grant on its way (must be caught).
    } else {
      if (this.turnsOut.size > 0 && this.revisions.floor < revision) {
        this.stats.closesAfterGrants++;
        const outAtArrival = [...this.turnsOut];
        const waitMs = Math.min(GRANT_WAIT_MS, deadlineMs - Date.now());
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timedOut = await Promise.race([
          Promise.all(outAtArrival).then(() => false),
          new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), Math.max(0, waitMs)))),
        ]);
        clearTimeout(timer);
        if (this.stopped || this.revisions.leaderTerm !== term || this.leadingTerm() !== term) throw new ShardNotReadyError('shard leadership lost during the close');
        if (timedOut && outAtArrival.some((turn) => this.turnsOut.has(turn)) && this.revisions.floor < revision) {
          closed = this.revisions.floor;
          this.stats.closesAtFloor++;
        }
      }
      if (closed === revision) this.revisions.raiseRead(revision);
    }
    await this.settledAt(closed, term, deadlineMs);
    await this.txnsSettledThrough(closed, deadlineMs);
    return closed;
  }

  /**
   * readAt's wait (rule 3 of shard-revisions.ts), once the floor is at or above `revision`: no revision
   * ≤ it proposed here is unapplied, then a ReadIndex, then still the same leadership.
   */
  private async settledAt(revision: number, term: number, deadlineMs: number): Promise<void> {
    if (!this.revisions.readyToRead(revision)) {
      await new Promise<void>((resolve, reject) => {
        const w: ReadWaiter = { revision, term, resolve, reject };
        this.readWaiters.push(w);
        setTimeout(() => {
          const i = this.readWaiters.indexOf(w);
          if (i >= 0) {
            this.readWaiters.splice(i, 1);
            reject(new ShardDeadlineError('read deadline passed waiting for proposed revisions'));
          }
        }, Math.max(0, deadlineMs - Date.now()));
      });
    }
    // The leadership may end while the ReadIndex is out (a transfer, a step-down).
    await this.opts.member.readBarrier(this.opts.groupId, deadlineMs).catch((err: unknown) => {
      throw refusalOf(err, 'during the read');
    });
    if (this.stopped || this.revisions.leaderTerm !== term || this.leadingTerm() !== term) throw new ShardNotReadyError('shard leadership lost during the read');
  }

  /** A read or close at `revision` waits for the cross-shard transactions prepared here at or below it. */
  private txnsSettledThrough(revision: number, deadlineMs: number): Promise<void> {
    this.proposeHeldResolves();
    return this.opts.sm.txnsSettledThrough(revision, deadlineMs, () => new ShardDeadlineError('read deadline passed waiting for a cross-shard transaction'));
  }

  private wakeReads(): void {
    if (this.readWaiters.length === 0) return;
    const still: ReadWaiter[] = [];
    for (const w of this.readWaiters) {
      if (w.term !== this.revisions.leaderTerm) w.reject(new ShardNotReadyError('shard leadership lost'));
      else if (this.revisions.readyToRead(w.revision)) w.resolve();
      else still.push(w);
    }
    this.readWaiters = still;
  }
}

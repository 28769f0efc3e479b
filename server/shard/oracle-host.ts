// Serves revision batches on the member that leads the metadata group: the RevisionOracle
// (server/placement/revision-oracle.ts) hosted on a real Member, with its high-water marks proposed through
// the group's Raft log (MetadataStateMachine) and its leadership confirmed by ReadIndex.
//
// One turn's requests form one batch (one request per requester; a newer one from the same requester
// supersedes the older). A batch is answered only after:
//   1. this member leads the group at term T and its oracle was established at T: after becoming leader it
//      passed a read barrier, which needs an entry of T committed and applied, so its whole log is applied
//      and the state machine's mark is the highest in the log (the oracle starts above it);
//   2. a read barrier begun and ended at T with this member leading throughout (a quorum confirmed T; one
//      barrier amortised over the whole batch);
//   3. the revisions fit under a mark this oracle committed in T; otherwise it proposes
//      `next + needed − 1 + window` (the window a named setting), waits for it to apply, and confirms
//      leadership again before granting (a persist costs one extra barrier per window, not per batch).
// A member that is not the leader, or no longer is, answers `not-leader` with the leader it knows, so the
// requester can go there; deposition drops the oracle at once, and every request has a deadline.
import type { NodeId } from '../raft/types.ts';
import { DEFAULT_WINDOW, RevisionOracle } from '../placement/revision-oracle.ts';
import { encodeMetadataEntry } from './metadata-entry-codec.ts';
import type { MetadataApplied, MetadataStateMachine } from './metadata-state-machine.ts';
import type { OracleRequest, OracleResponse, OracleServer } from './oracle-protocol.ts';

/** What the host needs of a Member (server/member/member.ts implements it). */
export interface OracleHostMember {
  readonly memberId: NodeId;
  role(groupId: number): string;
  term(groupId: number): number;
  leaderId(groupId: number): NodeId;
  readBarrier(groupId: number, deadlineMs: number): Promise<void>;
  propose(groupId: number, data: Uint8Array): void;
  onLeaderChange(listener: (groupId: number, leaderId: NodeId, term: number) => void): void;
}

export interface OracleHostOptions {
  /** The metadata group's Raft group id on the member. */
  groupId: number;
  /** Revisions reserved per persisted high-water mark: one Raft round buys this many (default 10,000). */
  windowRevisions?: number;
  /** Longest one attempt to establish the oracle after an election waits for its read barrier. */
  establishTimeoutMs?: number;
  /** Pause before retrying a failed establishment while still leader. */
  establishRetryMs?: number;
  /** Told of every grant as it is handed out (metrics, and the simulation's checks). */
  onGrant?: (grant: { requester: string; first: number; last: number; term: number }) => void;
  /**
   * TEST-ONLY deliberate bugs, so the oracle simulation (server/shard/sim) can prove it catches them;
   * never set outside it. 'grant-without-persist': treats a proposed mark as committed at once;
   * 'start-at-mark': a new leader starts AT the highest mark in its log instead of above it;
   * 'establish-without-barrier': a new leader starts from the mark it has applied so far, without
   * waiting for an entry of its term to apply (its log may hold a higher committed mark).
   */
  unsafeMutation?: 'grant-without-persist' | 'start-at-mark' | 'establish-without-barrier';
}

interface Queued {
  readonly request: OracleRequest;
  settled: boolean;
  settle(response: OracleResponse): void;
}

interface CommitWaiter {
  readonly highWater: number;
  readonly term: number;
  resolve(committed: boolean): void;
}

export class OracleHost implements OracleServer {
  private readonly member: OracleHostMember;
  private readonly sm: MetadataStateMachine;
  private readonly groupId: number;
  private readonly windowRevisions: number;
  private readonly establishTimeoutMs: number;
  private readonly establishRetryMs: number;
  private readonly onGrant: OracleHostOptions['onGrant'];
  private readonly unsafeMutation: OracleHostOptions['unsafeMutation'];
  /** The oracle of the term this member leads and has established; null otherwise. */
  private leading: { term: number; oracle: RevisionOracle } | null = null;
  /** The term an establishment is running for (0: none). */
  private establishing = 0;
  /** The mark the oracle asked to persist in the leading term, and whether it reached Raft. */
  private proposal: { highWater: number; term: number; proposed: boolean } | null = null;
  private commitWaiters: CommitWaiter[] = [];
  private queue: Queued[] = [];
  private flushScheduled = false;
  private stopped = false;
  readonly stats = { batches: 0, requests: 0, grants: 0, revisionsGranted: 0, barriers: 0, persists: 0, establishments: 0, notLeader: 0, unavailable: 0, deadlines: 0 };

  constructor(member: OracleHostMember, sm: MetadataStateMachine, options: OracleHostOptions) {
    this.member = member;
    this.sm = sm;
    this.groupId = options.groupId;
    this.windowRevisions = options.windowRevisions ?? DEFAULT_WINDOW;
    this.establishTimeoutMs = options.establishTimeoutMs ?? 1_000;
    this.establishRetryMs = options.establishRetryMs ?? 20;
    this.onGrant = options.onGrant;
    this.unsafeMutation = options.unsafeMutation;
    member.onLeaderChange((groupId, leaderId, term) => {
      if (groupId === this.groupId) this.leaderChanged(leaderId, term);
    });
    sm.onApplied((applied) => this.applied(applied));
    // Already leading when the host is attached (e.g. a single-member group elected before this ran).
    if (member.role(this.groupId) === 'leader') this.leaderChanged(member.memberId, member.term(this.groupId));
  }

  /** Whether this member serves grants now (leads, and its oracle is established in the current term). */
  get serving(): boolean {
    return this.leading !== null && this.stillLeading(this.leading.term);
  }

  handle(request: OracleRequest): Promise<OracleResponse> {
    this.stats.requests++;
    const { requestId } = request;
    if (this.stopped) return Promise.resolve({ kind: 'unavailable', requestId, reason: 'oracle host stopped' });
    if (!Number.isSafeInteger(request.count) || request.count < 1) {
      return Promise.resolve({ kind: 'bad-request', requestId, reason: `revision count must be a positive integer (got ${request.count})` });
    }
    if (Date.now() >= request.deadlineMs) {
      this.stats.deadlines++;
      return Promise.resolve({ kind: 'deadline', requestId });
    }
    if (this.member.role(this.groupId) !== 'leader') return Promise.resolve(this.notLeader(requestId));
    return new Promise<OracleResponse>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | null = null;
      const queued: Queued = {
        request,
        settled: false,
        settle: (response) => {
          if (queued.settled) return;
          queued.settled = true;
          if (timer !== null) clearTimeout(timer);
          if (response.kind === 'deadline') this.stats.deadlines++;
          if (response.kind === 'unavailable') this.stats.unavailable++;
          resolve(response);
        },
      };
      timer = setTimeout(() => queued.settle({ kind: 'deadline', requestId }), request.deadlineMs - Date.now());
      // One batch per turn per requester: a newer request supersedes an older one still queued.
      const earlier = this.queue.findIndex((q) => q.request.requester === request.requester);
      if (earlier >= 0) {
        this.queue[earlier].settle({ kind: 'unavailable', requestId: this.queue[earlier].request.requestId, reason: 'superseded by a newer request' });
        this.queue.splice(earlier, 1);
      }
      this.queue.push(queued);
      this.scheduleFlush();
    });
  }

  /** Stops serving: queued and running requests are answered `unavailable`. */
  stop(): void {
    this.stopped = true;
    this.leading = null;
    for (const q of this.queue) q.settle({ kind: 'unavailable', requestId: q.request.requestId, reason: 'oracle host stopped' });
    this.queue = [];
    this.failCommitWaiters();
  }

  private notLeader(requestId: number): OracleResponse {
    this.stats.notLeader++;
    const leaderId = this.member.leaderId(this.groupId);
    return { kind: 'not-leader', requestId, leaderId: leaderId === this.member.memberId ? 0 : leaderId, term: this.member.term(this.groupId) };
  }

  private stillLeading(term: number): boolean {
    return !this.stopped && this.member.role(this.groupId) === 'leader' && this.member.term(this.groupId) === term && this.leading?.term === term;
  }

  private leaderChanged(leaderId: NodeId, term: number): void {
    if (leaderId === this.member.memberId) {
      if (this.leading?.term !== term) {
        this.leading = null;
        this.proposal = null;
        this.failCommitWaiters();
        void this.establish(term);
      }
      return;
    }
    // Deposed (or a stranger leads): no grant may leave this member any more.
    this.leading = null;
    this.proposal = null;
    this.failCommitWaiters();
  }

  /**
   * Makes this member's oracle serve at `term`: a read barrier at `term` needs an entry of `term`
   * committed and applied, after which the state machine holds the highest mark of the whole log.
   */
  private async establish(term: number): Promise<void> {
    if (this.establishing === term) return;
    this.establishing = term;
    try {
      while (!this.stopped && this.member.role(this.groupId) === 'leader' && this.member.term(this.groupId) === term) {
        try {
          if (this.unsafeMutation !== 'establish-without-barrier') await this.member.readBarrier(this.groupId, Date.now() + this.establishTimeoutMs);
        } catch {
          await new Promise((r) => setTimeout(r, this.establishRetryMs));
          continue;
        }
        if (this.stopped || this.member.role(this.groupId) !== 'leader' || this.member.term(this.groupId) !== term) return;
        const oracle = new RevisionOracle(this.windowRevisions);
        oracle.becomeLeader(term, this.unsafeMutation === 'start-at-mark' ? Math.max(0, this.sm.highWater - 1) : this.sm.highWater);
        this.leading = { term, oracle };
        this.stats.establishments++;
        this.scheduleFlush();
        return;
      }
    } finally {
      if (this.establishing === term) this.establishing = 0;
    }
  }

  private applied(applied: MetadataApplied): void {
    if (applied.kind !== 'high-water') return;
    const leading = this.leading;
    if (leading === null || applied.proposedTerm !== leading.term) return;
    leading.oracle.highWaterCommitted(applied.highWater, applied.proposedTerm);
    if (this.proposal !== null && this.proposal.highWater <= applied.highWater) this.proposal = null;
    const [done, waiting] = partition(this.commitWaiters, (w) => w.term === applied.proposedTerm && w.highWater <= applied.highWater);
    this.commitWaiters = waiting;
    for (const w of done) w.resolve(true);
  }

  private failCommitWaiters(): void {
    const waiters = this.commitWaiters;
    this.commitWaiters = [];
    for (const w of waiters) w.resolve(false);
  }

  private waitCommitted(highWater: number, term: number, deadlineMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(ok);
      };
      const timer = setTimeout(() => {
        this.commitWaiters = this.commitWaiters.filter((w) => w !== waiter);
        finish(false);
      }, Math.max(0, deadlineMs - Date.now()));
      const waiter: CommitWaiter = { highWater, term, resolve: finish };
      this.commitWaiters.push(waiter);
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.stopped) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const batch = this.queue.filter((q) => !q.settled);
      this.queue = [];
      if (batch.length > 0) void this.runBatch(batch);
    });
  }

  private async runBatch(batch: Queued[]): Promise<void> {
    this.stats.batches++;
    const live = (): Queued[] => batch.filter((q) => !q.settled);
    const answerAll = (make: (requestId: number) => OracleResponse): void => {
      for (const q of live()) q.settle(make(q.request.requestId));
    };
    const deadlineMs = Math.max(...batch.map((q) => q.request.deadlineMs));
    for (;;) {
      const leading = this.leading;
      if (this.member.role(this.groupId) !== 'leader') return answerAll((id) => this.notLeader(id));
      if (leading === null || !this.stillLeading(leading.term)) {
        // Leading, but the oracle is not established yet at this term: wait for it, within the deadlines.
        if (Date.now() >= deadlineMs) return answerAll((requestId) => ({ kind: 'deadline', requestId }));
        await new Promise((r) => setTimeout(r, this.establishRetryMs));
        if (live().length === 0) return;
        continue;
      }
      const term = leading.term;
      this.stats.barriers++;
      try {
        await this.member.readBarrier(this.groupId, deadlineMs);
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        return answerAll((requestId) => (this.member.role(this.groupId) === 'leader' ? { kind: 'unavailable', requestId, reason: `leadership not confirmed: ${reason}` } : this.notLeader(requestId)));
      }
      // Confirmed at `term` only if this member led at `term` before and after the round (terms only grow).
      if (!this.stillLeading(term)) return answerAll((id) => this.notLeader(id));
      const asking = live();
      if (asking.length === 0) return;
      const result = leading.oracle.grantBatch(asking.map((q) => ({ requester: q.request.requester, count: q.request.count })), term);
      if (result.kind === 'granted') {
        result.grants.forEach((g, i) => {
          this.stats.grants++;
          this.stats.revisionsGranted += g.last - g.first + 1;
          this.onGrant?.({ requester: g.requester, first: g.first, last: g.last, term: g.term });
          asking[i].settle({ kind: 'granted', requestId: asking[i].request.requestId, first: g.first, last: g.last, term: g.term });
        });
        return;
      }
      if (result.kind === 'refused') {
        if (result.reason === 'bad-request') return answerAll((requestId) => ({ kind: 'bad-request', requestId, reason: result.message }));
        this.leading = null; // the oracle stepped down (stale term)
        return answerAll((id) => this.notLeader(id));
      }
      if (result.kind === 'persist') {
        this.proposal = { highWater: result.highWater, term: result.term, proposed: false };
      }
      const proposal = this.proposal;
      if (proposal !== null && !proposal.proposed && proposal.term === term) {
        try {
          this.member.propose(this.groupId, encodeMetadataEntry({ kind: 'high-water', highWater: proposal.highWater, proposedTerm: term }));
          proposal.proposed = true;
          this.stats.persists++;
          if (this.unsafeMutation === 'grant-without-persist') {
            leading.oracle.highWaterCommitted(proposal.highWater, term);
            this.proposal = null;
            continue;
          }
        } catch (err) {
          const reason = err instanceof Error ? err.message : String(err);
          return answerAll((requestId) => ({ kind: 'unavailable', requestId, reason: `high-water mark not proposed: ${reason}` }));
        }
      }
      const committed = await this.waitCommitted(result.highWater, term, deadlineMs);
      if (!committed) {
        return answerAll((requestId) => (this.stillLeading(term) ? { kind: 'unavailable', requestId, reason: 'high-water mark not committed in time' } : this.notLeader(requestId)));
      }
      // Committed: confirm leadership again (next iteration) before granting under the new mark.
    }
  }
}

function partition<T>(items: readonly T[], pred: (item: T) => boolean): [T[], T[]] {
  const yes: T[] = [];
  const no: T[] = [];
  for (const item of items) (pred(item) ? yes : no).push(item);
  return [yes, no];
}

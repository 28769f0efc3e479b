// The revision oracle of the metadata group, as a pure state machine: it hands out batches of revisions
// (one batch per turn per asking shard leader) so that the whole sharded keyspace has one revision
// sequence. server/shard/oracle-host.ts hosts it on the metadata group's leader, proposes its high-water
// marks through that group's Raft log and confirms leadership per batch.
//
// Why revisions never repeat and never go backwards:
//   1. The leader hands out a revision only if it is ≤ a high-water mark H that this leader, in its own
//      term, has committed through Raft (`persist` → `highWaterCommitted`). So every revision ever handed
//      out is ≤ some committed H.
//   2. A new leader starts at (highest H in its log) + 1. Raft's leader completeness puts every committed
//      H in the new leader's log, so it starts above everything handed out before. Gaps (the unused rest
//      of the old window) are allowed; repeats are impossible. The caller passes the highest H only after
//      the new leader has applied an entry of its own term, when its whole log is committed and applied.
//   3. A deposed leader must not answer: every batch carries the term a quorum confirmed for it (a
//      ReadIndex round, amortised over the batch); a batch whose confirmed term is not the oracle's own
//      term is refused, and the oracle steps down. A batch confirmed before a newer leader existed is
//      ordered before anything that newer leader hands out, so revisions also follow real time.

export type Revision = number;

export interface RevisionRequest {
  /** Who asks (e.g. a shard leader's replica); echoed back so the caller can route the answer. */
  readonly requester: string;
  readonly count: number;
}

export interface RevisionGrant {
  readonly requester: string;
  readonly first: Revision;
  readonly last: Revision;
  /** The oracle term that issued it; consumers refuse a grant whose term is no longer current. */
  readonly term: number;
}

export type BatchResult =
  | { readonly kind: 'granted'; readonly grants: readonly RevisionGrant[] }
  /** Propose `highWater` through Raft at `term`; ask again after highWaterCommitted(highWater, term). */
  | { readonly kind: 'persist'; readonly highWater: Revision; readonly term: number }
  /** A persist covering this batch is already in flight: ask again once it commits. */
  | { readonly kind: 'pending'; readonly highWater: Revision }
  | { readonly kind: 'refused'; readonly reason: 'not-leader' | 'stale-term' | 'bad-request'; readonly message: string };

/** Revisions reserved per persisted high-water mark: one Raft round buys this many revisions. */
export const DEFAULT_WINDOW = 10_000;

export class RevisionOracle {
  private readonly window: number;
  private role: 'follower' | 'leader' = 'follower';
  private currentTerm = 0;
  /** Next revision to hand out (leader only). */
  private nextRevision: Revision = 1;
  /** Highest high-water mark committed in this leader's term: revisions ≤ it may be handed out. */
  private ceiling: Revision = 0;
  /** A proposed, not yet committed, high-water mark of this term. */
  private proposed: Revision | null = null;

  constructor(window: number = DEFAULT_WINDOW) {
    if (!Number.isSafeInteger(window) || window < 0) throw new RangeError(`oracle window must be a non-negative integer (got ${window})`);
    this.window = window;
  }

  get term(): number {
    return this.currentTerm;
  }

  get isLeader(): boolean {
    return this.role === 'leader';
  }

  /**
   * This member leads the metadata group at `term`; `highWaterInLog` is the highest mark in its (fully
   * applied) log, 0 for a new cluster. Nothing is handed out until a mark of this term commits.
   */
  becomeLeader(term: number, highWaterInLog: Revision): void {
    if (!(Number.isSafeInteger(term) && term > this.currentTerm)) throw new RangeError(`a new leader's term must exceed ${this.currentTerm} (got ${term})`);
    if (!Number.isSafeInteger(highWaterInLog) || highWaterInLog < 0) throw new RangeError(`high-water mark must be a non-negative integer (got ${highWaterInLog})`);
    this.role = 'leader';
    this.currentTerm = term;
    this.nextRevision = highWaterInLog + 1;
    this.ceiling = highWaterInLog; // everything ≤ it may have been handed out by an earlier leader
    this.proposed = null;
  }

  /** Raft reported a term (a vote, a message, a new leader): a higher one deposes this oracle. */
  observeTerm(term: number): void {
    if (term > this.currentTerm) {
      this.currentTerm = term;
      this.role = 'follower';
      this.proposed = null;
    }
  }

  /** Raft applied a high-water entry proposed at `term` (on every replica; only this term's leader uses it). */
  highWaterCommitted(highWater: Revision, term: number): void {
    if (this.role !== 'leader' || term !== this.currentTerm) return;
    if (highWater > this.ceiling) this.ceiling = highWater;
    if (this.proposed !== null && this.proposed <= this.ceiling) this.proposed = null;
  }

  /**
   * One turn's batch: each request gets a contiguous range, in request order. `confirmedTerm` is the term a
   * quorum confirmed for this batch (ReadIndex); anything but this oracle's own term is refused.
   */
  grantBatch(requests: readonly RevisionRequest[], confirmedTerm: number): BatchResult {
    if (this.role !== 'leader') return { kind: 'refused', reason: 'not-leader', message: 'revision oracle: not the metadata group leader' };
    if (confirmedTerm !== this.currentTerm) {
      const ownTerm = this.currentTerm;
      this.observeTerm(confirmedTerm);
      return { kind: 'refused', reason: 'stale-term', message: `revision oracle: leader of term ${ownTerm}, but the confirmed term is ${confirmedTerm}` };
    }
    const bad = requests.find((r) => !Number.isSafeInteger(r.count) || r.count < 1);
    if (bad) return { kind: 'refused', reason: 'bad-request', message: `revision oracle: count must be a positive integer (got ${bad.count} from ${bad.requester})` };
    const total = requests.reduce((sum, r) => sum + r.count, 0);
    const lastNeeded = this.nextRevision + total - 1;
    if (lastNeeded > this.ceiling) {
      if (this.proposed !== null && this.proposed >= lastNeeded) return { kind: 'pending', highWater: this.proposed };
      this.proposed = lastNeeded + this.window;
      return { kind: 'persist', highWater: this.proposed, term: this.currentTerm };
    }
    const grants = requests.map((r) => {
      const grant = { requester: r.requester, first: this.nextRevision, last: this.nextRevision + r.count - 1, term: this.currentTerm };
      this.nextRevision += r.count;
      return grant;
    });
    return { kind: 'granted', grants };
  }

  /** A single request: a batch of one. */
  grant(count: number, confirmedTerm: number, requester = 'local'): BatchResult {
    return this.grantBatch([{ requester, count }], confirmedTerm);
  }
}

/** The consumer's check: a grant is usable only while its term is still the metadata group's term. */
export function isGrantCurrent(grant: RevisionGrant, currentTerm: number): boolean {
  return grant.term === currentTerm;
}

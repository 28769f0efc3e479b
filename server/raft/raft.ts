// The Raft state machine of one node (follower / preCandidate / candidate / leader), modelled
// on etcd-io/raft. Pure and deterministic: it consumes ticks and messages, appends outgoing
// messages to `msgs` and read results to `readStates`, and mutates the in-memory log; the
// RawNode wrapper turns that into Ready batches. No I/O, no clocks, randomness from a seed.
//
// Quiescence (config.quiesce; CockroachDB's range quiescence on etcd-io/raft): an idle leader whose
// followers all hold its whole log sends one heartbeat marked `quiesce` and stops ticking; a
// follower that holds exactly that log stops ticking too. It only suppresses ticks: no message is
// accepted that would not be accepted awake, and any proposal, read, campaign, transfer, or message
// other than the quiesce heartbeat and its acknowledgement wakes the node (see `wake`). Liveness
// relies on the application: it wakes a quiesced follower whose leader's member went silent
// (wakeLeaderUnreachable), which then campaigns within one more election timeout.

import type { ConfChange, ConfState, Entry, LeaseReads, LogPosition, Message, MessageType, NodeId, RaftConfig, ReadState, Role, SnapshotMeta } from './types.ts';
import { RaftLog } from './raft-log.ts';
import { Progress } from './progress.ts';
import { ReadIndexQueue } from './read-index.ts';
import type { PendingRead } from './read-index.ts';
import { Rng } from './rng.ts';
import { JointConfig } from './quorum.ts';
import type { VoteOutcome } from './quorum.ts';
import { ConfChangeInProgressError, ProposalDroppedError, UncommittedLimitError, fail } from './errors.ts';
import { applyConfChangeTo, decodeConfChange } from './conf-change.ts';

const NO_ENTRIES: Entry[] = Object.freeze([]) as unknown as Entry[];
const NO_BYTES = new Uint8Array(0);
/** At most this many appends make up the farewell to a removed replica (sendFarewell). */
const MAX_FAREWELL_MESSAGES = 4;
/** Vote context marking a campaign triggered by leadership transfer: it bypasses leader leases. */
const TRANSFER_CTX = new Uint8Array([0x74, 0x72, 0x61, 0x6e, 0x73, 0x66, 0x65, 0x72]); // "transfer"

type CampaignKind = 'preElection' | 'election' | 'transfer';

function isTransferCtx(ctx: Uint8Array): boolean {
  if (ctx.byteLength !== TRANSFER_CTX.byteLength) return false;
  for (let i = 0; i < ctx.byteLength; i++) if (ctx[i] !== TRANSFER_CTX[i]) return false;
  return true;
}

export function newMessage(type: MessageType, from: NodeId, to: NodeId, term: number): Message {
  // One literal shape for every message keeps property access monomorphic on the hot path.
  return { type, from, to, term, logTerm: 0, index: 0, entries: NO_ENTRIES, commit: 0, reject: false, rejectHint: 0, context: NO_BYTES };
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = 0;
  lead: NodeId = 0;
  role: Role = 'follower';
  readonly log: RaftLog;
  /** Outgoing messages, drained by RawNode.ready(). */
  msgs: Message[] = [];
  /** Completed local ReadIndex requests, drained by RawNode.ready(). */
  readStates: ReadState[] = [];
  /** Leader only: replication state per voter (including self). */
  readonly progress = new Map<NodeId, Progress>();
  /** Target of an in-progress leadership transfer (leader only), 0 if none. */
  leadTransferee: NodeId = 0;
  /** Quiescent: ticks are ignored (see the header). Only a leader or a follower with a leader is ever quiescent. */
  quiesced = false;
  /** Leader: followers heard from (an append or heartbeat response) since the last periodic heartbeat. */
  private readonly respondedSinceHeartbeat = new Set<NodeId>();
  /** Times this node quiesced and woke (diagnostics, tests). */
  quiesceCount = 0;
  wakeCount = 0;

  /** Sorted voter ids (the membership this node has applied). */
  private voters: NodeId[];
  /** Sorted learner ids: replicated to, never counted. */
  private learners: NodeId[];
  /** The voters as a quorum configuration: every majority decision goes through it. */
  private quorumConfig: JointConfig = JointConfig.of([]);
  /** This node applied its own removal: it never campaigns again. */
  removed = false;
  /** Leader: index of the latest conf change it may have proposed; no new one until applied >= it. */
  private pendingConfIndex = 0;
  private readonly votes = new Map<NodeId, boolean>();
  private readonly electionTimeoutTicks: number;
  private readonly heartbeatTicks: number;
  private randomizedElectionTimeoutTicks = 0;
  /** Follower/candidate: ticks since last valid leader contact or election start. Leader: ticks since last check-quorum. */
  private electionElapsedTicks = 0;
  private heartbeatElapsedTicks = 0;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxInflightMsgs: number;
  private readonly maxSizePerMsgBytes: number;
  private readonly rng: Rng;
  private readonly reads = new ReadIndexQueue();
  /** Reads that arrived before the leader committed an entry of its term (commit index unknown yet). */
  private readsAwaitingTermCommit: { from: NodeId; ctx: Uint8Array }[] = [];
  /**
   * Leader: appends are owed to followers (new entries, or a commit index they have not been sent).
   * Proposals and commit advances only set this; flushAppends() (called by RawNode.ready()) sends
   * one append per follower that needs one, so a turn with many proposals and acks sends each
   * follower one message, not one per proposal and one per ack.
   */
  appendsOwed = false;
  /**
   * Leader: payload bytes of entries appended in this term and not yet committed (etcd's
   * uncommittedSize). Proposals beyond maxUncommittedEntriesBytes are refused, so a leader that
   * cannot commit (no quorum, slow disks) does not grow its log without bound.
   */
  private uncommittedBytes = 0;
  private readonly maxUncommittedEntriesBytes: number;
  private readonly maxInflightBytes: number;
  private readonly quiesceEnabled: boolean;

  /** See PersistedState.voteFloor: the last log position of an earlier replica under this id. */
  private readonly voteFloor: LogPosition | undefined;
  /** See LeaseReads; null: off. */
  private readonly lease: LeaseReads | null;
  /** Leader: reads are answered at once until this (lease.nowMs); -Infinity: no lease. */
  private leaseExpiresMs = -Infinity;
  /** Bumped whenever something ends a lease: only a round started in the current epoch confirms one. */
  private leaseEpoch = 0;
  /** The term in which this leader sent TimeoutNow: no lease for the rest of it. */
  private leaseForbiddenTerm = -1;
  /** Reads this node answered on its lease, without a heartbeat round (a counter, for metrics). */
  readsOnLease = 0;
  /** Ticks left during which a voter restarted with state refuses votes in higher terms (LeaseReads). */
  private restartQuietTicks = 0;
  /** advanceFreshElection ran (it moves a node's timer once in its life). */
  private freshElectionAdvanced = false;

  constructor(config: RaftConfig, log: RaftLog, term: number, vote: NodeId, confState: ConfState, voteFloor?: LogPosition) {
    if (!(Number.isInteger(config.id) && config.id > 0)) fail(`config.id ${config.id} must be a positive integer`);
    if (!(config.electionTimeoutTicks > config.heartbeatTicks && config.heartbeatTicks >= 1)) {
      fail(`need electionTimeoutTicks (${config.electionTimeoutTicks}) > heartbeatTicks (${config.heartbeatTicks}) >= 1`);
    }
    if (!(config.maxSizePerMsgBytes >= 0)) fail('maxSizePerMsgBytes must be >= 0');
    if (!(new Set(config.voters).size === config.voters.length && config.voters.every((v) => Number.isInteger(v) && v > 0))) {
      fail(`voters ${JSON.stringify(config.voters)} must be distinct positive integers`);
    }
    this.id = config.id;
    this.log = log;
    this.voters = [];
    this.learners = [];
    this.setConfState(confState);
    this.electionTimeoutTicks = config.electionTimeoutTicks;
    this.heartbeatTicks = config.heartbeatTicks;
    this.preVote = config.preVote;
    this.checkQuorum = config.checkQuorum;
    this.maxInflightMsgs = config.maxInflightMsgs;
    this.maxSizePerMsgBytes = config.maxSizePerMsgBytes;
    this.maxInflightBytes = config.maxInflightBytes ?? 0;
    this.maxUncommittedEntriesBytes = config.maxUncommittedEntriesBytes ?? 0;
    this.quiesceEnabled = config.quiesce ?? false;
    if (!(this.maxInflightBytes >= 0 && this.maxUncommittedEntriesBytes >= 0)) fail('byte limits must be >= 0 (0: unlimited)');
    this.rng = new Rng(config.randomSeed ^ Math.imul(config.id, 0x27d4eb2d));
    this.term = term;
    this.vote = vote;
    this.voteFloor = voteFloor && voteFloor.index > 0 ? voteFloor : undefined;
    this.lease = config.leaseReads ?? null;
    if (this.lease !== null) {
      if (!this.checkQuorum) fail('lease reads need checkQuorum (leader stickiness)');
      if (!(this.lease.durationMs > 0)) fail(`lease duration ${this.lease.durationMs} ms must be > 0`);
      // Restarted with state (a term): it may have acknowledged a leader's round just before it died.
      if (term > 0 && this.lease.unsafeMutation !== 'no-restart-quiet') this.restartQuietTicks = this.electionTimeoutTicks;
    }
    this.becomeFollower(term, 0);
  }

  isMember(id: NodeId): boolean {
    return this.voters.includes(id) || this.learners.includes(id);
  }

  // ---- membership helpers ---------------------------------------------------------------

  voterIds(): readonly NodeId[] {
    return this.voters;
  }

  learnerIds(): readonly NodeId[] {
    return this.learners;
  }

  confState(): ConfState {
    return { voters: this.voters.slice(), learners: this.learners.slice() };
  }

  private setConfState(cs: ConfState): void {
    const voters = [...cs.voters].sort((a, b) => a - b);
    const learners = [...cs.learners].sort((a, b) => a - b);
    const all = [...voters, ...learners];
    if (!(new Set(all).size === all.length && all.every((v) => Number.isInteger(v) && v > 0))) {
      fail(`conf state ${JSON.stringify(cs)}: ids must be distinct positive integers, voters and learners disjoint`);
    }
    const votersChanged = voters.length !== this.voters.length || voters.some((v, i) => v !== this.voters[i]);
    this.voters = voters;
    this.learners = learners;
    this.quorumConfig = JointConfig.of(voters);
    // A lease confirmed under the old voters: two changes could leave a quorum disjoint from its own.
    if (votersChanged) this.endLease();
  }

  private promotable(): boolean {
    // Below its vote floor a replica's log is behind its predecessor's (PersistedState.voteFloor): it
    // must not lead with it (a stale-membership voter could elect it over committed entries).
    return !this.removed && this.voters.includes(this.id) && (this.voteFloor === undefined || this.aboveVoteFloor(this.log.lastIndex(), this.log.lastTerm()));
  }

  private hasQuorum = (acks: ReadonlySet<NodeId>): boolean => this.quorumConfig.hasQuorum((id) => acks.has(id));

  /** Match index per voter, for the commit rule (a bound field: called on every ack). */
  private readonly matchOf = (id: NodeId): number => this.progress.get(id)?.match ?? 0;
  private readonly voteOf = (id: NodeId): boolean | undefined => this.votes.get(id);
  private readonly isRecentlyActive = (id: NodeId): boolean => id === this.id || this.progress.get(id)?.recentActive === true;

  // ---- role transitions -----------------------------------------------------------------

  private reset(term: number): void {
    if (term !== this.term) {
      if (!(term > this.term)) fail(`term would decrease from ${this.term} to ${term}`);
      this.term = term;
      this.vote = 0;
    }
    this.lead = 0;
    this.electionElapsedTicks = 0;
    this.heartbeatElapsedTicks = 0;
    this.randomizedElectionTimeoutTicks = this.electionTimeoutTicks + this.rng.nextInt(this.electionTimeoutTicks);
    this.leadTransferee = 0;
    this.votes.clear();
    this.progress.clear();
    this.reads.clear();
    this.readsAwaitingTermCommit = [];
    this.appendsOwed = false;
    this.uncommittedBytes = 0;
    this.quiesced = false; // a new term or role is never quiescent
    this.respondedSinceHeartbeat.clear();
    this.endLease();
  }

  /** Ends any lease; only a round started from now on can confirm a new one (LeaseReads). */
  private endLease(): void {
    this.leaseExpiresMs = -Infinity;
    this.leaseEpoch++;
  }

  /** Whether a read arriving now may be answered without a heartbeat round (LeaseReads). */
  private leaseServes(): boolean {
    const lease = this.lease;
    if (lease === null || this.role !== 'leader' || this.leadTransferee !== 0) return false;
    if (this.leaseForbiddenTerm === this.term && lease.unsafeMutation !== 'keep-after-transfer') return false;
    if (lease.unsafeMutation === 'ignore-expiry') return this.leaseExpiresMs > -Infinity;
    return lease.nowMs() < this.leaseExpiresMs - lease.durationMs / 2;
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = 'follower';
  }

  private becomePreCandidate(): void {
    if (!(this.role !== 'leader')) fail('leader cannot become preCandidate');
    // Pre-vote does not touch term or vote: a partitioned node must not inflate its term.
    this.votes.clear();
    this.lead = 0;
    this.role = 'preCandidate';
  }

  private becomeCandidate(): void {
    if (!(this.role !== 'leader')) fail('leader cannot become candidate');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    if (!(this.role === 'candidate')) fail(`only a candidate can become leader (role=${this.role})`);
    this.reset(this.term);
    this.lead = this.id;
    this.role = 'leader';
    const next = this.log.lastIndex() + 1;
    for (const v of this.voters) this.progress.set(v, new Progress(next, this.maxInflightMsgs, this.maxInflightBytes));
    for (const v of this.learners) {
      const pr = new Progress(next, this.maxInflightMsgs, this.maxInflightBytes);
      pr.isLearner = true;
      this.progress.set(v, pr);
    }
    // Any conf change in the uncommitted tail may still be pending: refuse new ones until it
    // is applied (etcd's conservative rule).
    this.pendingConfIndex = this.log.lastIndex();
    const self = this.progress.get(this.id);
    if (self !== undefined) {
      self.match = this.log.lastIndex();
      self.becomeReplicate();
    }
    // An entry of the new term: committing it commits every earlier entry (Raft §5.4.2) and
    // tells the leader its commit index for ReadIndex.
    this.appendEntries([{ term: 0, index: 0, type: 'normal', data: NO_BYTES }]);
  }

  // ---- ticking --------------------------------------------------------------------------

  tick(): void {
    if (this.restartQuietTicks > 0) this.restartQuietTicks--;
    if (this.quiesced) {
      this.assertQuiescentInvariants();
      return;
    }
    if (this.role === 'leader') this.tickHeartbeat();
    else this.tickElection();
  }

  // ---- quiescence -----------------------------------------------------------------------

  /**
   * Leader: may the group go silent? Every replica (voters and learners) holds the leader's whole
   * durable log and has been sent its commit index, that index is of this term and applied here,
   * and nothing is in flight: no owed appends, reads, transfer or unapplied conf change.
   */
  private canQuiesce(): boolean {
    if (!this.quiesceEnabled || this.role !== 'leader' || this.removed) return false;
    const lastIndex = this.log.lastIndex();
    if (this.leadTransferee !== 0 || this.appendsOwed || this.reads.pendingCount() > 0 || this.readsAwaitingTermCommit.length > 0) return false;
    if (this.log.committed !== lastIndex || this.log.applied !== lastIndex || this.log.hasUnstableEntries()) return false;
    if (this.log.term(lastIndex) !== this.term || this.pendingConfIndex > this.log.applied) return false;
    if (this.log.hasCommittedUnappliedConfChange() || !this.progress.has(this.id)) return false;
    for (const [id, pr] of this.progress) {
      if (pr.match !== lastIndex) return false;
      // Every follower answered since the last heartbeat: a leader never goes silent towards a
      // replica it cannot reach (it keeps heartbeating, so check-quorum still works while one is down).
      if (id !== this.id && (pr.state !== 'replicate' || pr.sentCommit < lastIndex || !this.respondedSinceHeartbeat.has(id))) return false;
    }
    return true;
  }

  /** Leader: the quiesce heartbeat (commit = the whole log, which every follower holds), then silence. */
  private quiesce(): void {
    if (!this.canQuiesce()) fail(`node ${this.id} quiescing when it may not`);
    for (const v of this.progress.keys()) {
      if (v === this.id) continue;
      const m = newMessage('heartbeat', this.id, v, this.term);
      m.commit = this.log.committed;
      m.quiesce = true;
      this.msgs.push(m);
    }
    this.quiesced = true;
    this.quiesceCount++;
  }

  /**
   * Follower: the leader's quiesce heartbeat was handled. Quiesce only if this log is exactly the
   * leader's (commit = last index = the heartbeat's commit); else stay awake and say so, which wakes
   * the leader (its quiesce heartbeat was premature for this follower).
   */
  private maybeQuiesceFollower(m: Message, resp: Message): void {
    const last = this.log.lastIndex();
    if (this.lead === m.from && this.log.committed === m.commit && last === m.commit && this.log.term(last) === m.term) {
      if (!this.quiesced) this.quiesceCount++;
      this.quiesced = true;
      this.electionElapsedTicks = 0;
      resp.quiesce = true;
    }
  }

  /**
   * Leaves quiescence. A follower woken by anything but its leader also pokes the leader (an
   * unmarked heartbeatResp wakes it), so that the leader heartbeats again before this follower's
   * election timer, now running, fires.
   */
  wake(pokeLeader: boolean): void {
    if (!this.quiesced) return;
    this.quiesced = false;
    this.wakeCount++;
    this.heartbeatElapsedTicks = 0;
    if (this.role === 'leader') {
      this.electionElapsedTicks = 0;
      this.respondedSinceHeartbeat.clear(); // hear from everyone again before quiescing again
    } else if (pokeLeader && this.lead !== 0 && this.lead !== this.id) {
      this.msgs.push(newMessage('heartbeatResp', this.id, this.lead, this.term));
    }
  }

  /**
   * Follower: the application stopped hearing from the leader's member for an election timeout.
   * Wake with the leader's lease lapsed, so that this node campaigns (and grants votes) within one
   * more randomized election timeout, exactly as if the leader's heartbeats had stopped.
   */
  wakeLeaderUnreachable(): void {
    if (!this.quiesced || this.role !== 'follower') return;
    this.wake(false);
    this.electionElapsedTicks = Math.max(this.electionElapsedTicks, this.electionTimeoutTicks);
  }

  private assertQuiescentInvariants(): void {
    if (this.role === 'leader') {
      if (this.leadTransferee !== 0 || this.appendsOwed || this.reads.pendingCount() > 0 || this.readsAwaitingTermCommit.length > 0) {
        fail(`quiesced leader ${this.id} has work in flight (transfer ${this.leadTransferee}, reads ${this.reads.pendingCount()})`);
      }
      if (this.log.committed !== this.log.lastIndex()) fail(`quiesced leader ${this.id} has uncommitted entries`);
    } else if (this.role !== 'follower' || this.lead === 0) {
      fail(`node ${this.id} quiesced as ${this.role} with leader ${this.lead}`);
    }
  }

  /**
   * etcd's initial election tick advance. A node that has never had a term, whose member's peers are up,
   * moves its election timer to two ticks short of the election timeout, once: a new cluster then elects
   * within a few ticks of its members connecting instead of sitting out a whole timeout with everyone
   * there. Term 0 is what makes it safe: such a node never acknowledged a leader, so no leader's lease
   * rests on its refusing votes, and its campaign can only start term 1, which no leader it has not heard
   * of could hold below. Returns whether the timer moved.
   */
  advanceFreshElection(): boolean {
    if (this.freshElectionAdvanced || this.term !== 0 || this.role !== 'follower' || this.lead !== 0 || this.quiesced || !this.promotable()) return false;
    this.freshElectionAdvanced = true;
    this.electionElapsedTicks = Math.max(this.electionElapsedTicks, this.electionTimeoutTicks - 2);
    return true;
  }

  private tickElection(): void {
    this.electionElapsedTicks++;
    if (this.promotable() && this.electionElapsedTicks >= this.randomizedElectionTimeoutTicks) {
      this.electionElapsedTicks = 0;
      this.hup();
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsedTicks++;
    this.electionElapsedTicks++;
    if (this.electionElapsedTicks >= this.electionTimeoutTicks) {
      this.electionElapsedTicks = 0;
      if (this.checkQuorum && !this.quorumActive()) {
        // Partitioned from a quorum: stop claiming leadership so clients fail over quickly
        // and the lease other nodes grant us is not outlived.
        this.becomeFollower(this.term, 0);
        return;
      }
      for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
      if (this.leadTransferee !== 0) this.leadTransferee = 0; // transfer timed out
    }
    if (this.heartbeatElapsedTicks >= this.heartbeatTicks) {
      this.heartbeatElapsedTicks = 0;
      if (this.canQuiesce()) this.quiesce();
      else {
        this.respondedSinceHeartbeat.clear();
        this.bcastHeartbeat(this.reads.inflightCtx() ?? NO_BYTES);
      }
    }
  }

  private quorumActive(): boolean {
    return this.quorumConfig.hasQuorum(this.isRecentlyActive);
  }

  // ---- elections ------------------------------------------------------------------------

  /** Starts an election (pre-vote first if enabled) unless we are leader or not a voter. */
  hup(): void {
    this.wake(false);
    if (this.role === 'leader' || !this.promotable()) return;
    // etcd: a node that knows of a committed but unapplied conf change must not campaign with
    // a membership that is about to change.
    if (this.log.hasCommittedUnappliedConfChange()) return;
    this.campaign(this.preVote ? 'preElection' : 'election');
  }

  private campaign(kind: CampaignKind): void {
    let voteType: MessageType;
    let term: number;
    if (kind === 'preElection') {
      this.becomePreCandidate();
      voteType = 'preVote';
      term = this.term + 1; // the term we would campaign in; our own term is unchanged
    } else {
      this.becomeCandidate();
      voteType = 'vote';
      term = this.term;
    }
    if (this.poll(this.id, true) === 'won') {
      // Single-voter cluster.
      if (kind === 'preElection') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const v of this.voters) {
      if (v === this.id) continue;
      const m = newMessage(voteType, this.id, v, term);
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (kind === 'transfer') m.context = TRANSFER_CTX;
      this.msgs.push(m);
    }
  }

  private poll(from: NodeId, granted: boolean): VoteOutcome {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    return this.quorumConfig.voteResult(this.voteOf);
  }

  // ---- message handling -----------------------------------------------------------------

  step(m: Message): void {
    // Only the quiesce heartbeat and its acknowledgement leave a quiesced node asleep.
    if (this.quiesced && !(m.quiesce === true && (m.type === 'heartbeat' || m.type === 'heartbeatResp'))) {
      this.wake(!(m.from === this.lead && m.term === this.term));
    }
    if (m.term === 0) {
      // Term-agnostic: forwarded proposals / read requests, or responses from a term-0 node.
    } else if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'preVote') {
        // Leader stickiness: if we heard from a live leader within the minimum election
        // timeout, a (pre)vote request comes from a node that cannot reach that leader;
        // ignoring it keeps a flaky node from disrupting a healthy cluster.
        const inLease = (this.checkQuorum && this.lead !== 0 && this.electionElapsedTicks < this.electionTimeoutTicks) || this.restartQuietTicks > 0;
        if (inLease && !isTransferCtx(m.context)) return;
      }
      if (m.type === 'preVote') {
        // Never change term on a pre-vote request.
      } else if (m.type === 'preVoteResp' && !m.reject) {
        // A granted pre-vote carries the prospective term; we bump it when we win.
      } else if (m.type === 'app' || m.type === 'heartbeat' || m.type === 'snap') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, 0);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === 'heartbeat' || m.type === 'app' || m.type === 'snap')) {
        // A stale leader whose (pre)votes we ignore would otherwise never learn the new
        // term; answering lets it step down.
        this.msgs.push(newMessage('appResp', this.id, m.from, this.term));
      } else if (m.type === 'preVote') {
        const resp = newMessage('preVoteResp', this.id, m.from, this.term);
        resp.reject = true;
        this.msgs.push(resp);
      }
      return;
    }

    if (m.type === 'vote' || m.type === 'preVote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        break;
      case 'follower':
        this.stepFollower(m);
        break;
    }
  }

  private handleVoteRequest(m: Message): void {
    const respType: MessageType = m.type === 'vote' ? 'voteResp' : 'preVoteResp';
    const canVote =
      this.vote === m.from ||
      (this.vote === 0 && this.lead === 0) ||
      (m.type === 'preVote' && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm) && this.aboveVoteFloor(m.index, m.logTerm)) {
      // A granted pre-vote answers in the prospective term so the preCandidate can count it.
      this.msgs.push(newMessage(respType, this.id, m.from, m.term));
      if (m.type === 'vote') {
        this.electionElapsedTicks = 0;
        this.vote = m.from;
      }
    } else {
      const resp = newMessage(respType, this.id, m.from, this.term);
      resp.reject = true;
      this.msgs.push(resp);
    }
  }

  /** Whether a candidate's log is at least as up to date as the predecessor replica's was (voteFloor). */
  private aboveVoteFloor(lastIndex: number, lastTerm: number): boolean {
    const f = this.voteFloor;
    return f === undefined || lastTerm > f.term || (lastTerm === f.term && lastIndex >= f.index);
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case 'prop':
        this.proposeEntries(m.entries);
        return;
      case 'readIndex':
        this.handleReadIndex(m.from, m.context);
        return;
      case 'appResp':
        this.handleAppendResponse(m);
        return;
      case 'heartbeatResp':
        this.handleHeartbeatResponse(m);
        return;
      case 'app':
      case 'heartbeat':
      case 'snap':
        fail(`two leaders in term ${this.term}: ${this.id} and ${m.from}`);
        return;
      default:
        return; // stale vote responses, etc.
    }
  }

  private stepCandidate(m: Message): void {
    const myVoteResp: MessageType = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
    switch (m.type) {
      case 'prop':
      case 'readIndex':
        throw new ProposalDroppedError(`no leader (node ${this.id} is ${this.role} in term ${this.term})`);
      case 'app':
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      default:
        if (m.type !== myVoteResp) return;
        switch (this.poll(m.from, !m.reject)) {
          case 'won':
            if (this.role === 'preCandidate') {
              this.campaign('election');
            } else {
              this.becomeLeader();
              this.bcastAppend();
            }
            return;
          case 'lost':
            this.becomeFollower(this.term, 0);
            return;
          case 'pending':
            return;
        }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'prop':
      case 'readIndex': {
        if (this.lead === 0) throw new ProposalDroppedError(`no leader (node ${this.id}, term ${this.term})`);
        if (m.type === 'readIndex') {
          // Keep `from` as the original requester so the answer goes straight back to it;
          // if the requester has meanwhile become the leader, drop it (the client retries).
          if (m.from === this.lead) return;
          this.msgs.push({ ...m, to: this.lead, term: 0 });
        } else {
          this.msgs.push({ ...m, from: this.id, to: this.lead, term: 0 });
        }
        return;
      }
      case 'app':
        this.electionElapsedTicks = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsedTicks = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snap':
        this.electionElapsedTicks = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'readIndexResp':
        this.readStates.push({ index: m.index, requestCtx: m.context });
        return;
      case 'timeoutNow':
        // The leader asks us to take over: campaign immediately, skipping pre-vote and leases.
        // (Same guard as hup: not with a membership that is about to change.)
        if (this.promotable() && !this.log.hasCommittedUnappliedConfChange()) this.campaign('transfer');
        return;
      default:
        return;
    }
  }

  // ---- follower side of replication -----------------------------------------------------

  private handleAppend(m: Message): void {
    const resp = newMessage('appResp', this.id, m.from, this.term);
    if (m.index < this.log.committed) {
      // Everything up to our commit index already matches any leader's log.
      resp.index = this.log.committed;
      this.msgs.push(resp);
      return;
    }
    const lastNewIndex = this.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNewIndex >= 0) {
      if (m.commitOnly === true && m.entries.length === 0) return; // accepted: nothing to tell (types.ts)
      resp.index = lastNewIndex;
    } else {
      // Fast backtracking: tell the leader the highest index that might still match so it
      // can skip a whole term of mismatching entries per round trip.
      const [hintIndex, hintTerm] = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
      resp.index = m.index;
      resp.reject = true;
      resp.rejectHint = hintIndex;
      resp.logTerm = hintTerm;
    }
    this.msgs.push(resp);
  }

  /** etcd's handleSnapshot/restore: install a snapshot beyond our commit index, ack with our last index. */
  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (s === undefined) fail(`snap message from ${m.from} without snapshot metadata`);
    const resp = newMessage('appResp', this.id, m.from, this.term);
    if (s.index <= this.log.committed) {
      resp.index = this.log.committed; // stale or duplicate snapshot
    } else if (this.log.applying > this.log.applied || this.log.pendingSnapshot !== null) {
      // The application is applying committed entries of a Ready not yet advanced, or installing
      // an earlier snapshot: restoring now would let it apply those entries' conf changes on top of
      // this snapshot's newer membership, or install the earlier one into a log that starts after
      // it. Refuse; the leader sends the snapshot again once this node answers its next probe.
      resp.index = this.log.committed;
    } else if (this.log.matchTerm(s.index, s.term)) {
      // We already hold the snapshot's last entry: fast-forward the commit index instead.
      this.log.commitTo(s.index);
      resp.index = this.log.committed;
    } else {
      this.log.restore(s);
      this.setConfState(s.confState);
      resp.index = this.log.lastIndex();
    }
    this.msgs.push(resp);
  }

  private handleHeartbeat(m: Message): void {
    // A leader never tells a follower to commit past what that follower acknowledged, so a commit beyond
    // this log is corruption — except on an empty log: a replica created again on a member that hosted the
    // group before (server/cli/shard-hosting.ts) can receive a heartbeat sent to its previous incarnation
    // before the leader applied its removal. An empty log has nothing to commit wrongly; the leader's
    // appends fill it.
    if (m.commit > this.log.lastIndex() && this.log.lastIndex() === 0) {
      this.log.assertEmptyForFreshReplica();
    } else this.log.commitTo(m.commit);
    const resp = newMessage('heartbeatResp', this.id, m.from, this.term);
    resp.context = m.context;
    if (m.quiesce === true && this.quiesceEnabled && this.role === 'follower') this.maybeQuiesceFollower(m, resp);
    else if (this.quiesced) this.wake(false); // a quiesce heartbeat this node cannot follow
    this.msgs.push(resp);
  }

  // ---- leader side of replication -------------------------------------------------------

  /** Appends client entries on the leader and replicates them. Throws ProposalDroppedError if it cannot. */
  proposeEntries(ents: Entry[]): void {
    if (!(ents.length > 0)) fail('empty proposal');
    this.wake(false);
    if (this.role !== 'leader') throw new ProposalDroppedError(`node ${this.id} is not leader`);
    if (!this.progress.has(this.id)) throw new ProposalDroppedError(`leader ${this.id} is not a voter`);
    if (this.leadTransferee !== 0) throw new ProposalDroppedError(`leadership transfer to ${this.leadTransferee} in progress`);
    let confAt = 0;
    for (let i = 0; i < ents.length; i++) {
      if (ents[i].type !== 'confChange') continue;
      decodeConfChange(ents[i].data); // malformed changes must never reach the log
      if (confAt !== 0 || this.pendingConfIndex > this.log.applied) {
        throw new ConfChangeInProgressError(
          `conf change at ${this.pendingConfIndex} not applied yet (applied=${this.log.applied}); one change at a time`,
        );
      }
      confAt = this.log.lastIndex() + 1 + i;
    }
    let bytes = 0;
    for (const e of ents) bytes += e.data.byteLength;
    if (this.maxUncommittedEntriesBytes > 0 && this.uncommittedBytes > 0 && bytes > 0 && this.uncommittedBytes + bytes > this.maxUncommittedEntriesBytes) {
      throw new UncommittedLimitError(`leader ${this.id} holds ${this.uncommittedBytes} uncommitted bytes (limit ${this.maxUncommittedEntriesBytes})`);
    }
    this.uncommittedBytes += bytes;
    if (confAt !== 0) this.pendingConfIndex = confAt;
    this.appendEntries(ents);
    this.appendsOwed = true; // sent by flushAppends, together with the turn's other proposals
  }

  /**
   * Leader: sends the appends owed since the last flush. Each follower that has entries to receive,
   * or has not been sent the current commit index, gets one append (as bcastAppend would have sent);
   * the others get nothing.
   */
  flushAppends(): void {
    if (!this.appendsOwed) return;
    this.appendsOwed = false;
    if (this.role !== 'leader') return;
    const lastIndex = this.log.lastIndex();
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      if (pr.next > lastIndex) {
        // Every entry has been sent to it: only the commit index is owed, if that. To a follower being
        // replicated to it goes as a commit-only append, which the follower does not answer (types.ts).
        if (pr.sentCommit < this.log.committed && this.sendAppend(id, true) && pr.state === 'replicate') this.markCommitOnly(id);
        continue;
      }
      // Like an ack, a flush fills the follower's in-flight window (pipelining).
      if (this.sendAppend(id, true)) {
        while (this.sendAppend(id, false)) {
          /* keep sending */
        }
      }
    }
  }

  /** Marks the append just queued for `to` (by sendAppend, with no entries) as commit-only. */
  private markCommitOnly(to: NodeId): void {
    const m = this.msgs[this.msgs.length - 1];
    if (m?.type !== 'app' || m.to !== to || m.entries.length !== 0) fail(`commit-only mark on a ${m?.type ?? 'missing'} message to ${m?.to ?? 0} (expected an empty append to ${to})`);
    m.commitOnly = true;
  }

  /** Stamps term/index on copies of `ents` (inputs may be shared, e.g. duplicated messages). */
  private appendEntries(ents: Entry[]): void {
    let index = this.log.lastIndex();
    const stamped: Entry[] = new Array(ents.length);
    for (let i = 0; i < ents.length; i++) {
      const e = ents[i];
      stamped[i] = { term: this.term, index: ++index, type: e.type, data: e.data };
    }
    this.log.append(stamped);
    // The leader's own copy counts toward the commit quorum only once it is durable: selfAck(),
    // called by RawNode.advance() after the Ready carrying these entries was persisted.
  }

  /**
   * Leader: entries through `index` are durable in this node's own storage (etcd-io/raft 3.6's
   * self-acknowledgement after persistence). Only now does its copy count for commit.
   */
  selfAck(index: number): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(this.id);
    if (pr === undefined || !pr.maybeUpdate(Math.min(index, this.log.lastIndex()))) return;
    if (this.maybeCommit()) this.appendsOwed = true; // propagate the new commit index
  }

  /** Entries were applied: they no longer count against maxUncommittedEntriesBytes. */
  reduceUncommittedBytes(applied: readonly Entry[]): void {
    if (this.uncommittedBytes === 0) return;
    let bytes = 0;
    for (const e of applied) bytes += e.data.byteLength;
    this.uncommittedBytes = Math.max(0, this.uncommittedBytes - bytes);
  }

  /** Advances commit to the highest current-term index stored on a quorum. */
  private maybeCommit(): boolean {
    const quorumIndex = this.quorumConfig.committedIndex(this.matchOf);
    if (!Number.isFinite(quorumIndex)) return false; // no voters: nothing can commit
    if (!this.log.maybeCommit(quorumIndex, this.term)) return false;
    if (this.readsAwaitingTermCommit.length > 0) {
      const waiting = this.readsAwaitingTermCommit;
      this.readsAwaitingTermCommit = [];
      for (const r of waiting) this.handleReadIndex(r.from, r.ctx);
    }
    return true;
  }

  private bcastAppend(): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id, true);
  }

  /**
   * Sends the next batch of entries to `to` if flow control allows. With sendIfEmpty it also
   * sends an entry-less append (to probe or to carry the commit index). Returns whether sent.
   */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      // The follower needs entries we compacted away: send the snapshot instead.
      const snap = this.log.snapshot;
      if (!(snap !== null && prevIndex < snap.index)) fail(`leader lacks entry ${prevIndex} for ${to} (first index ${this.log.firstIndex()})`);
      const m = newMessage('snap', this.id, to, this.term);
      m.snapshot = snap;
      this.msgs.push(m);
      pr.becomeSnapshot(snap.index);
      return true;
    }
    const lastIndex = this.log.lastIndex();
    const ents = pr.next <= lastIndex ? this.log.slice(pr.next, lastIndex + 1, this.maxSizePerMsgBytes) : NO_ENTRIES;
    if (ents.length === 0 && !sendIfEmpty) return false;
    const m = this.pushAppend(to, prevIndex, prevTerm, ents);
    pr.sentCommit = m.commit;
    let payloadBytes = 0;
    for (let i = 0; i < ents.length; i++) payloadBytes += ents[i].data.byteLength;
    pr.sentEntries(ents.length, prevIndex + ents.length, payloadBytes);
    return true;
  }

  private handleAppendResponse(m: Message): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    this.respondedSinceHeartbeat.add(m.from);
    if (m.reject) {
      let nextProbeIndex = m.rejectHint;
      if (m.logTerm > 0) nextProbeIndex = this.log.findConflictByTerm(m.rejectHint, m.logTerm)[0];
      if (pr.maybeDecrTo(m.index, nextProbeIndex)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (!(m.index <= this.log.lastIndex())) {
      fail(`follower ${m.from} acked ${m.index} beyond leader last index ${this.log.lastIndex()}`);
    }
    if (pr.state === 'snapshot') {
      // Until the follower holds the snapshot (or later) it cannot take appends.
      if (pr.match < pr.pendingSnapshot && pr.match < this.log.firstIndex() - 1) return;
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'probe') pr.becomeReplicate();
    else pr.inflights.freeLE(m.index);
    if (this.maybeCommit()) {
      this.appendsOwed = true; // propagate the new commit index (once per turn, see flushAppends)
    } else if (wasPaused) {
      this.sendAppend(m.from, true);
    }
    // Pipelining: fill the freed window.
    while (this.sendAppend(m.from, false)) {
      /* keep sending */
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private bcastHeartbeat(ctx: Uint8Array): void {
    for (const [v, pr] of this.progress) {
      if (v === this.id) continue;
      const m = newMessage('heartbeat', this.id, v, this.term);
      // Never tell a follower to commit past what it is known to hold.
      m.commit = Math.min(pr.match, this.log.committed);
      m.context = ctx;
      this.msgs.push(m);
    }
  }

  private handleHeartbeatResponse(m: Message): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    this.respondedSinceHeartbeat.add(m.from);
    pr.probeSent = false;
    // Appends or their acks may have been lost: with a full window we would never send again,
    // so let one more through; a gap makes the follower reject and we fall back to probing.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
    if (m.context.byteLength === 0) return;
    const done = this.reads.ack(m.from, m.context, this.hasQuorum);
    if (done === null) return;
    const confirmed = this.reads.confirmed;
    if (this.lease !== null && confirmed !== null && confirmed.epoch === this.leaseEpoch) {
      this.leaseExpiresMs = Math.max(this.leaseExpiresMs, confirmed.startedAtMs + this.lease.durationMs);
    }
    for (const r of done) this.answerRead(r);
    this.maybeStartReadRound();
  }

  // ---- ReadIndex ------------------------------------------------------------------------

  /** Leader: registers a linearizable read from `from` (self for local requests). */
  handleReadIndex(from: NodeId, ctx: Uint8Array): void {
    this.wake(false);
    if (this.log.term(this.log.committed) !== this.term) {
      // Until an entry of our term commits we do not know the true commit index.
      this.readsAwaitingTermCommit.push({ from, ctx });
      return;
    }
    // At once when we are the quorum, or while no other leader can exist yet (the lease).
    const atOnce = this.leaseReadIndex();
    if (atOnce !== null) {
      this.answerRead({ index: atOnce, from, requestCtx: ctx });
      return;
    }
    this.reads.add({ index: this.log.committed, from, requestCtx: ctx });
    this.maybeStartReadRound();
  }

  /**
   * Leader: the index a linearizable read arriving now may be answered at on the spot, without a
   * heartbeat round (an entry of this term committed, and the lease serves or this node is the only
   * voter). handleReadIndex answers at once exactly when this says so; the application may also ask it
   * directly, without waiting for its next Ready. Null otherwise: the read then goes through
   * readIndex(). A quiesced leader says null too (a read wakes it, through readIndex). A lease's answer
   * counts as a lease read.
   */
  leaseReadIndex(): number | null {
    if (this.role !== 'leader' || this.quiesced) return null;
    if (this.log.term(this.log.committed) !== this.term) return null;
    if (this.voters.length === 1) return this.log.committed; // we are the quorum
    if (!this.leaseServes()) return null;
    this.readsOnLease++;
    return this.log.committed;
  }

  private maybeStartReadRound(): void {
    const ctx = this.reads.startRound(this.id, this.lease?.nowMs() ?? 0, this.leaseEpoch);
    if (ctx !== null) this.bcastHeartbeat(ctx);
  }

  private answerRead(r: PendingRead): void {
    if (r.from === this.id || r.from === 0) {
      this.readStates.push({ index: r.index, requestCtx: r.requestCtx });
      return;
    }
    const resp = newMessage('readIndexResp', this.id, r.from, this.term);
    resp.index = r.index;
    resp.context = r.requestCtx;
    this.msgs.push(resp);
  }

  // ---- leadership transfer --------------------------------------------------------------

  /** Leader: hand leadership to `to` once it is caught up. No-op if not leader or `to` is not a voter. */
  transferLeader(to: NodeId): void {
    if (this.role !== 'leader' || to === this.id || !this.voters.includes(to) || !this.progress.has(to)) return;
    this.wake(false);
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    this.electionElapsedTicks = 0; // the transfer must finish within one election timeout
    const pr = this.progress.get(to);
    if (pr !== undefined && pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, true);
  }

  private sendTimeoutNow(to: NodeId): void {
    // Its campaign ignores leader stickiness, in this term whenever it arrives: no lease for the rest of it.
    this.leaseForbiddenTerm = this.term;
    if (this.lease?.unsafeMutation !== 'keep-after-transfer') this.endLease();
    this.msgs.push(newMessage('timeoutNow', this.id, to, this.term));
  }

  // ---- membership changes ---------------------------------------------------------------

  /** The application applies a committed conf change (etcd: it takes effect on apply). */
  applyConfChange(cc: ConfChange): ConfState {
    this.wake(false);
    const next = applyConfChangeTo(this.confState(), cc);
    this.setConfState(next);
    const id = cc.nodeId;
    // Added back after a removal: a member again, that may campaign once a voter. A replica returning
    // to a member under the same id (server/member: Member.removeGroup and its tombstone) replays its
    // predecessor's removal from the log, then its own addition: it must not stay retired.
    if (this.removed && this.isMember(this.id)) this.removed = false;
    if (id === this.id && !this.isMember(this.id) && cc.type === 'removeNode') {
      this.removed = true;
      // A removed leader steps down (etcd's stepDownOnRemoval); a removed candidate gives up.
      if (this.role !== 'follower') this.becomeFollower(this.term, 0);
      return this.confState();
    }
    if (this.role !== 'leader') return this.confState();
    if (this.isMember(id) && id !== this.id) {
      let pr = this.progress.get(id);
      if (pr === undefined) {
        pr = new Progress(this.log.lastIndex() + 1, this.maxInflightMsgs, this.maxInflightBytes);
        pr.recentActive = true; // a fresh member must not make check-quorum step us down
        this.progress.set(id, pr);
      }
      pr.isLearner = this.learners.includes(id);
    } else if (!this.isMember(id)) {
      const gone = this.progress.get(id);
      if (gone !== undefined && id !== this.id) this.sendFarewell(id, gone);
      this.progress.delete(id);
      if (this.leadTransferee === id) this.leadTransferee = 0;
    }
    // The quorum may have changed: maybe commit, and start replicating to new members.
    if (this.maybeCommit()) this.bcastAppend();
    else for (const pid of this.progress.keys()) if (pid !== this.id) this.sendAppend(pid, false);
    const pr = this.progress.get(id);
    if (pr !== undefined && id !== this.id && pr.match === 0 && !pr.isPaused()) this.sendAppend(id, true);
    return this.confState();
  }

  /** Queues an append of `ents` after (prevIndex, prevTerm) to `to`, carrying this leader's commit index. */
  private pushAppend(to: NodeId, prevIndex: number, prevTerm: number, ents: Entry[]): Message {
    const m = newMessage('app', this.id, to, this.term);
    m.index = prevIndex;
    m.logTerm = prevTerm;
    m.entries = ents;
    m.commit = this.log.committed;
    this.msgs.push(m);
    return m;
  }

  /**
   * Leader: one last append to a replica just removed, carrying the committed entries it lacks and the
   * commit index (at or past its removal). Without it the removed replica never hears from the leader again — its
   * progress is gone — so it never learns that its removal, nor the entries before it, committed: it
   * would go on believing itself a voter, and the proposals it made meanwhile would never be answered
   * there. Safe as any append: entries of this leader's log and a commit index it holds. Best effort
   * (lost, the replica is left behind as before); skipped when the replica needs a snapshot.
   */
  private sendFarewell(to: NodeId, pr: Progress): void {
    let prevIndex = pr.match;
    // Only committed entries: one past the commit would stay unapplied there for good, and a replica
    // with unapplied entries is not deleted as soon as one that applied its whole log (replica-decisions.ts).
    const throughIndex = this.log.committed;
    for (let messages = 0; messages < MAX_FAREWELL_MESSAGES; messages++) {
      const prevTerm = this.log.term(prevIndex);
      if (prevTerm === undefined) return;
      const ents = prevIndex < throughIndex ? this.log.slice(prevIndex + 1, throughIndex + 1, this.maxSizePerMsgBytes) : NO_ENTRIES;
      this.pushAppend(to, prevIndex, prevTerm, ents);
      prevIndex += ents.length;
      if (prevIndex >= throughIndex || ents.length === 0) return;
    }
  }

  // ---- snapshot transfer feedback -------------------------------------------------------

  /** Leader: the transport finished (or failed) sending a snapshot to `id`. */
  reportSnapshot(id: NodeId, status: 'finish' | 'failure'): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(id);
    if (pr === undefined || pr.state !== 'snapshot') return;
    if (status === 'failure') pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's ack (or the next heartbeat response) before probing again.
    pr.probeSent = true;
  }

  /** Leader: `id` is unreachable; stop optimistic pipelining to it. */
  reportUnreachable(id: NodeId): void {
    if (this.role !== 'leader') return;
    const pr = this.progress.get(id);
    if (pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  /** The compaction point's metadata (null before any compaction or snapshot). */
  snapshotMeta(): SnapshotMeta | null {
    return this.log.snapshot;
  }
}

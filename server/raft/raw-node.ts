// Public, synchronous API of the raft core (etcd-io/raft's RawNode): the server feeds it ticks,
// peer messages, proposals and reads, then drains Ready batches and acknowledges each one with
// advance() after persisting entries/hardState, sending messages and applying entries.

import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Message,
  NodeId,
  PersistedState,
  RaftConfig,
  Ready,
  Role,
  SnapshotMeta,
  SoftState,
} from './types.ts';
import { Raft, newMessage } from './raft.ts';
import { RaftLog, copySnapshotMeta } from './raft-log.ts';
import type { ProgressState } from './progress.ts';
import { ProposalDroppedError, fail } from './errors.ts';
import { encodeConfChange } from './conf-change.ts';

export { ProposalDroppedError, RaftInvariantError, ConfChangeInProgressError, UncommittedLimitError } from './errors.ts';
export { encodeConfChange, decodeConfChange } from './conf-change.ts';

/** Leader's view of one member's replication (see etcd's tracker.Progress). */
export interface FollowerProgress {
  /** Highest index known to be stored on the member. */
  match: number;
  next: number;
  state: ProgressState;
  /** Heard from since the last check-quorum round (always true without checkQuorum after first contact). */
  recentActive: boolean;
  isLearner: boolean;
}

/** etcd's readyPercentThreshold: a learner may be promoted once its match >= 90% of the leader's. */
export const LEARNER_READY_RATIO = 0.9;

export interface RaftStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  leaderId: NodeId;
  role: Role;
  /** Leader only: replication progress per member (voters and learners, including itself). */
  progress?: Record<number, FollowerProgress>;
  /** Membership this node has applied (sorted). */
  voters: NodeId[];
  learners: NodeId[];
  /** This node applied its own removal (in this incarnation): it never campaigns again; the server
   *  should stop serving it. Not persisted: after a restart judge membership from the persisted ConfState. */
  removed: boolean;
  /** First index still in the in-memory log (snapshot.index + 1 after compaction). */
  firstIndex: number;
  /** The compaction point, if any. */
  snapshot: SnapshotMeta | null;
}

export class RawNode {
  private readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  /** The Ready handed out and not yet advanced, if any. */
  private outstanding: Ready | null = null;

  constructor(config: RaftConfig, persisted?: PersistedState) {
    const log = new RaftLog(persisted);
    const hs = persisted?.hardState ?? { term: 0, vote: 0, commit: 0 };
    const confState: ConfState = persisted?.confState ??
      persisted?.snapshot?.confState ?? { voters: config.voters, learners: config.learners ?? [] };
    this.raft = new Raft(config, log, hs.term, hs.vote, confState, persisted?.voteFloor);
    this.prevHardState = { term: hs.term, vote: hs.vote, commit: hs.commit };
    this.prevSoftState = { leaderId: this.raft.lead, role: this.raft.role };
  }

  /** Advances logical time by one tick (drives elections and heartbeats). */
  tick(): void {
    this.raft.tick();
  }

  /** Feeds a message received from a peer. Proposals/reads that cannot be forwarded are dropped silently. */
  step(msg: Message): void {
    if (!(msg.to === this.raft.id)) {
      fail(`message ${msg.type} from ${msg.from} addressed to ${msg.to}, delivered to ${this.raft.id}`);
    }
    if (!(msg.from !== this.raft.id)) fail(`node ${this.raft.id} received its own ${msg.type} message`);
    try {
      this.raft.step(msg);
    } catch (err) {
      // A peer's forwarded proposal/read arriving while we have no leader is not an error
      // for us; the peer's client times out and retries, as in etcd.
      if (err instanceof ProposalDroppedError && (msg.type === 'prop' || msg.type === 'readIndex')) return;
      throw err;
    }
  }

  /** Proposes a command. Throws ProposalDroppedError when there is no known leader. */
  propose(data: Uint8Array): void {
    this.proposeEntry('normal', data);
  }

  /**
   * Proposes a membership change (one at a time). Throws ProposalDroppedError with no leader,
   * ConfChangeInProgressError (a ProposalDroppedError) on the leader while an earlier change is
   * not yet applied there. On a follower it is forwarded; if the leader refuses it, it is lost.
   * The application calls applyConfChange() when the committed entry is applied.
   */
  proposeConfChange(cc: ConfChange): void {
    this.proposeEntry('confChange', encodeConfChange(cc));
  }

  /**
   * Applies a committed conf change (call while applying its entry, before advance()). Returns
   * the new membership, which the application persists atomically with its applied index.
   */
  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /**
   * The application durably snapshotted its state machine at applied index `index` (membership
   * `confState` as of index) and may drop its stored log <= index: raft discards those entries
   * too and sends this snapshot to followers that need them. Requires index <= applied (as
   * acknowledged by advance()); a no-op at or below the current compaction point.
   */
  compact(index: number, confState: ConfState): void {
    this.raft.log.compact(index, confState);
  }

  /** Leader: the transport delivered ('finish') or failed to deliver ('failure') a snapshot to `id`. A failure retries it later. */
  reportSnapshot(id: NodeId, status: 'finish' | 'failure'): void {
    this.raft.reportSnapshot(id, status);
  }

  /** Leader: sending to `id` failed; fall back from pipelining to probing. */
  reportUnreachable(id: NodeId): void {
    this.raft.reportUnreachable(id);
  }

  /**
   * Leader only: is learner `id` caught up enough to promote? etcd's rule: its match >=
   * 90% of the leader's own match (last index). False if not leader or `id` is not a learner.
   */
  learnerReady(id: NodeId): boolean {
    const r = this.raft;
    if (r.role !== 'leader' || !r.learnerIds().includes(id)) return false;
    const pr = r.progress.get(id);
    const self = r.progress.get(r.id);
    if (pr === undefined || self === undefined) return false;
    return pr.match >= self.match * LEARNER_READY_RATIO;
  }

  /** Proposes an entry of the given type ('confChange' payloads must come from encodeConfChange). */
  proposeEntry(type: Entry['type'], data: Uint8Array): void {
    const m = newMessage('prop', this.raft.id, this.raft.id, 0);
    m.entries = [{ term: 0, index: 0, type, data }];
    if (this.raft.role === 'leader') this.raft.proposeEntries(m.entries);
    else this.raft.step(m);
  }

  /** Requests a linearizable read; a matching ReadState appears in a later Ready. Throws ProposalDroppedError without a leader. */
  readIndex(requestCtx: Uint8Array): void {
    if (this.raft.role === 'leader') {
      this.raft.handleReadIndex(this.raft.id, requestCtx);
      return;
    }
    const m = newMessage('readIndex', this.raft.id, this.raft.id, 0);
    m.context = requestCtx;
    this.raft.step(m);
  }

  /**
   * The commit index a linearizable read may be answered at now, on this leader's lease, with no
   * round and no Ready (Raft.leaseReadIndex); null when it must go through readIndex().
   */
  leaseReadIndex(): number | null {
    return this.raft.leaseReadIndex();
  }

  /** Quiescent (config.quiesce): an idle group's node that ignores ticks until something wakes it. */
  isQuiesced(): boolean {
    return this.raft.quiesced;
  }

  /** Wakes a quiesced node (it resumes ticking; a follower also pokes its leader). No-op when awake. */
  wake(): void {
    this.raft.wake(true);
  }

  /**
   * A quiesced follower's leader's member has not been heard from for an election timeout: wake it
   * with the leader's lease lapsed, so it campaigns within one more election timeout. No-op otherwise.
   */
  wakeLeaderUnreachable(): void {
    this.raft.wakeLeaderUnreachable();
  }

  /** How often this node quiesced and woke (diagnostics, tests). */
  quiescenceCounts(): { quiesced: number; woken: number } {
    return { quiesced: this.raft.quiesceCount, woken: this.raft.wakeCount };
  }

  /** A node that never had a term moves its election timer near the timeout, once (Raft.advanceFreshElection). */
  advanceFreshElection(): boolean {
    return this.raft.advanceFreshElection();
  }

  /** Forces an election now (pre-vote first if enabled). */
  campaign(): void {
    this.raft.hup();
  }

  /** Leader only: hands leadership to `to` (a voter) once it has caught up. */
  transferLeader(to: NodeId): void {
    this.raft.transferLeader(to);
  }

  /** True if ready() would return something. False while a Ready is outstanding (not advanced). */
  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const r = this.raft;
    return (
      r.appendsOwed ||
      r.msgs.length > 0 ||
      r.readStates.length > 0 ||
      r.log.hasUnstableEntries() ||
      r.log.pendingSnapshot !== null ||
      r.log.hasNextCommittedEntries() ||
      r.lead !== this.prevSoftState.leaderId ||
      r.role !== this.prevSoftState.role ||
      r.term !== this.prevHardState.term ||
      r.vote !== this.prevHardState.vote ||
      r.log.committed !== this.prevHardState.commit
    );
  }

  /** Returns the next batch of work. Must be followed by advance(ready) before the next ready(). */
  ready(): Ready {
    if (!(this.outstanding === null)) fail('ready() called again before advance() of the previous Ready');
    const r = this.raft;
    r.flushAppends();
    let softState: SoftState | null = null;
    if (r.lead !== this.prevSoftState.leaderId || r.role !== this.prevSoftState.role) {
      softState = { leaderId: r.lead, role: r.role };
    }
    let hardState: HardState | null = null;
    const prev = this.prevHardState;
    if (r.term !== prev.term || r.vote !== prev.vote || r.log.committed !== prev.commit) {
      if (!(r.term >= prev.term)) fail(`term went backwards ${prev.term} -> ${r.term}`);
      if (!(r.log.committed >= prev.commit)) fail(`commit went backwards ${prev.commit} -> ${r.log.committed}`);
      hardState = { term: r.term, vote: r.vote, commit: r.log.committed };
    }
    const ready: Ready = {
      softState,
      hardState,
      entries: r.log.unstableEntries(),
      committedEntries: r.log.nextCommittedEntries(),
      messages: r.msgs,
      readStates: r.readStates,
      snapshot: r.log.pendingSnapshot,
    };
    r.msgs = [];
    r.readStates = [];
    this.outstanding = ready;
    return ready;
  }

  /** Acknowledges that `ready` was fully handled (persisted, sent, applied). */
  advance(ready: Ready): void {
    if (!(this.outstanding !== null)) fail('advance() without an outstanding Ready');
    if (!(ready === this.outstanding)) {
      fail('advance() called with a Ready other than the last one returned by ready()');
    }
    this.outstanding = null;
    if (ready.softState !== null) this.prevSoftState = ready.softState;
    if (ready.hardState !== null) this.prevHardState = ready.hardState;
    if (ready.snapshot !== null) this.raft.log.snapshotInstalled(ready.snapshot);
    const n = ready.entries.length;
    if (n > 0) {
      const last = ready.entries[n - 1];
      this.raft.log.stableTo(last.index, last.term);
      // The Ready's entries are durable now (advance comes after persisting): a leader's own copy
      // counts toward commit from here on, never before.
      // (Unless a newer leader's entries replaced them meanwhile: those are not durable yet.)
      if (this.raft.log.term(last.index) === last.term) this.raft.selfAck(last.index);
    }
    const c = ready.committedEntries.length;
    if (c > 0) {
      const lastApplied = ready.committedEntries[c - 1].index;
      if (!(lastApplied === this.raft.log.applied + c)) {
        fail(`applied entries not contiguous: applied=${this.raft.log.applied}, got ${c} up to ${lastApplied}`);
      }
      this.raft.log.appliedTo(lastApplied);
      this.raft.reduceUncommittedBytes(ready.committedEntries);
    }
  }

  status(): RaftStatus {
    const r = this.raft;
    const s: RaftStatus = {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.log.committed,
      applied: r.log.applied,
      lastIndex: r.log.lastIndex(),
      leaderId: r.lead,
      role: r.role,
      voters: r.voterIds().slice(),
      learners: r.learnerIds().slice(),
      removed: r.removed,
      firstIndex: r.log.firstIndex(),
      snapshot: r.log.snapshot === null ? null : copySnapshotMeta(r.log.snapshot),
    };
    if (r.role === 'leader') {
      const progress: Record<number, FollowerProgress> = {};
      for (const [id, pr] of r.progress) {
        progress[id] = { match: pr.match, next: pr.next, state: pr.state, recentActive: pr.recentActive, isLearner: pr.isLearner };
      }
      s.progress = progress;
    }
    return s;
  }

  /** Term of the in-memory log entry at `index` (undefined if absent). For diagnostics and tests. */
  /** The current term, without building a whole status (read on every client response). */
  term(): number {
    return this.raft.term;
  }

  /** The current role, as status().role, without building a whole status. */
  role(): RaftStatus['role'] {
    return this.raft.role;
  }

  /** Reads answered on the leader's lease so far (RaftConfig.leaseReads). */
  readsOnLease(): number {
    return this.raft.readsOnLease;
  }

  /** The known leader (0 if none), as status().leaderId, without building a whole status. */
  leaderId(): NodeId {
    return this.raft.lead;
  }

  termAt(index: number): number | undefined {
    return this.raft.log.term(index);
  }

  /** The log's entries in [lo, hi) (lo above the snapshot, hi at most lastIndex + 1), stable or not. */
  entries(lo: number, hi: number): readonly Entry[] {
    return lo >= hi ? [] : this.raft.log.slice(lo, hi, Number.POSITIVE_INFINITY);
  }

  /** Current voter ids (sorted). */
  voters(): readonly NodeId[] {
    return this.raft.voterIds();
  }

  /** Current learner ids (sorted). */
  learners(): readonly NodeId[] {
    return this.raft.learnerIds();
  }

  /** Membership this node has applied. */
  confState(): ConfState {
    return this.raft.confState();
  }
}

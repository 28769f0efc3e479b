// Public, synchronous API of the raft core (etcd-io/raft's RawNode): the server feeds it ticks,
// peer messages, proposals and reads, then drains Ready batches and acknowledges each one with
// advance() after persisting entries/hardState, sending messages and applying entries.

import type { Entry, HardState, Message, NodeId, PersistedState, RaftConfig, Ready, Role, SoftState } from './types.ts';
import { Raft, newMessage } from './raft.ts';
import { RaftLog } from './raft-log.ts';
import { ProposalDroppedError, fail } from './errors.ts';

export { ProposalDroppedError, RaftInvariantError } from './errors.ts';

export interface RaftStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  applied: number;
  lastIndex: number;
  leaderId: NodeId;
  role: Role;
  /** Leader only: replication progress per voter. */
  progress?: Record<number, { match: number; next: number }>;
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
    this.raft = new Raft(config, log, hs.term, hs.vote);
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

  /** Proposes an entry of the given type (membership changes will use 'confChange'). */
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
      r.msgs.length > 0 ||
      r.readStates.length > 0 ||
      r.log.hasUnstableEntries() ||
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
    const n = ready.entries.length;
    if (n > 0) {
      const last = ready.entries[n - 1];
      this.raft.log.stableTo(last.index, last.term);
    }
    const c = ready.committedEntries.length;
    if (c > 0) {
      const lastApplied = ready.committedEntries[c - 1].index;
      if (!(lastApplied === this.raft.log.applied + c)) {
        fail(`applied entries not contiguous: applied=${this.raft.log.applied}, got ${c} up to ${lastApplied}`);
      }
      this.raft.log.appliedTo(lastApplied);
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
    };
    if (r.role === 'leader') {
      const progress: Record<number, { match: number; next: number }> = {};
      for (const [id, pr] of r.progress) progress[id] = { match: pr.match, next: pr.next };
      s.progress = progress;
    }
    return s;
  }

  /** Term of the in-memory log entry at `index` (undefined if absent). For diagnostics and tests. */
  termAt(index: number): number | undefined {
    return this.raft.log.term(index);
  }

  /** Current voter ids (sorted). */
  voters(): readonly NodeId[] {
    return this.raft.voterIds();
  }
}

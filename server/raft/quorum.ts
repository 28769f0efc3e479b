// Quorum arithmetic, in one place: which index a quorum holds (commit), whether a set of votes wins
// or loses an election, and whether a set of members forms a quorum (ReadIndex acks, check-quorum).
// A MajorityConfig is one voter set; a JointConfig is the pair (incoming, outgoing) that joint
// consensus needs, where every decision needs a majority of BOTH. Today Raft changes membership one
// voter at a time, so the outgoing half is empty and a JointConfig decides exactly as its incoming
// majority; shard moves can switch to joint changes without touching the callers.

import type { NodeId } from './types.ts';
import { fail } from './errors.ts';

export type VoteOutcome = 'pending' | 'won' | 'lost';

/** A lookup the caller supplies, so no map or set has to be built per decision. */
export type IndexOf = (id: NodeId) => number;
export type VoteOf = (id: NodeId) => boolean | undefined;
export type MemberTest = (id: NodeId) => boolean;

export class MajorityConfig {
  /** Sorted, distinct voter ids. */
  readonly voters: readonly NodeId[];
  /** Reused by committedIndex (called on every ack: no allocation there). */
  private readonly scratch: number[];

  constructor(voters: Iterable<NodeId>) {
    const sorted = [...voters].sort((a, b) => a - b);
    for (let i = 1; i < sorted.length; i++) if (!(sorted[i] !== sorted[i - 1])) fail(`duplicate voter ${sorted[i]}`);
    this.voters = sorted;
    this.scratch = new Array<number>(sorted.length).fill(0);
  }

  get size(): number {
    return this.voters.length;
  }

  /** Members needed for a majority. */
  quorum(): number {
    return (this.voters.length >> 1) + 1;
  }

  includes(id: NodeId): boolean {
    return this.voters.includes(id);
  }

  /**
   * The highest index that a majority holds. An empty config constrains nothing (Infinity), so that
   * in a joint config only the non-empty half decides.
   */
  committedIndex(indexOf: IndexOf): number {
    const n = this.voters.length;
    if (n === 0) return Infinity;
    const indexes = this.scratch;
    for (let i = 0; i < n; i++) indexes[i] = indexOf(this.voters[i]);
    indexes.sort((a, b) => a - b);
    // Sorted ascending: the entry at n - quorum is held by quorum members (it and everything above).
    return indexes[n - this.quorum()];
  }

  /** Won once a majority granted, lost once a majority can no longer grant, pending otherwise. */
  voteResult(voteOf: VoteOf): VoteOutcome {
    const n = this.voters.length;
    if (n === 0) return 'won';
    let granted = 0;
    let missing = 0;
    for (const id of this.voters) {
      const vote = voteOf(id);
      if (vote === true) granted++;
      else if (vote === undefined) missing++;
    }
    const q = this.quorum();
    if (granted >= q) return 'won';
    if (granted + missing >= q) return 'pending';
    return 'lost';
  }

  /** Whether the members passing `has` form a majority (an empty config: trivially yes). */
  hasQuorum(has: MemberTest): boolean {
    let count = 0;
    for (const id of this.voters) if (has(id)) count++;
    return count >= this.quorum() || this.voters.length === 0;
  }
}

const EMPTY = new MajorityConfig([]);

export class JointConfig {
  readonly incoming: MajorityConfig;
  /** Empty unless a joint membership change is in progress. */
  readonly outgoing: MajorityConfig;
  /** Every voter of either half, sorted and distinct. */
  readonly voters: readonly NodeId[];

  constructor(incoming: MajorityConfig, outgoing: MajorityConfig = EMPTY) {
    this.incoming = incoming;
    this.outgoing = outgoing;
    this.voters = [...new Set([...incoming.voters, ...outgoing.voters])].sort((a, b) => a - b);
  }

  static of(voters: Iterable<NodeId>): JointConfig {
    return new JointConfig(new MajorityConfig(voters));
  }

  get joint(): boolean {
    return this.outgoing.size > 0;
  }

  includes(id: NodeId): boolean {
    return this.incoming.includes(id) || this.outgoing.includes(id);
  }

  /** The highest index both halves hold a majority of. */
  committedIndex(indexOf: IndexOf): number {
    const inc = this.incoming.committedIndex(indexOf);
    if (!this.joint) return inc;
    return Math.min(inc, this.outgoing.committedIndex(indexOf));
  }

  voteResult(voteOf: VoteOf): VoteOutcome {
    const inc = this.incoming.voteResult(voteOf);
    if (!this.joint) return inc;
    const out = this.outgoing.voteResult(voteOf);
    if (inc === 'lost' || out === 'lost') return 'lost';
    return inc === 'won' && out === 'won' ? 'won' : 'pending';
  }

  hasQuorum(has: MemberTest): boolean {
    return this.incoming.hasQuorum(has) && (!this.joint || this.outgoing.hasQuorum(has));
  }
}

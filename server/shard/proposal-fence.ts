// Which of a replica's waiting proposals are lost for good, decided by terms. Every entry a member
// proposes for a client carries the Raft term in which it sent it (InternalRequest.proposal_term: the
// proposer's term while it knew a leader, or its own as leader), once every member of the group said it
// implements this rule (Member.proposalTerm, APPLY_RULES). A replica applies such an entry only if the entry
// sits in the log at that term; at any other term every replica skips it alike (isStale).
//
// Why that makes loss decidable: Raft's committed log never holds an entry of term T after one of a
// later term. So once this replica has applied an entry of term T' > T, every entry of term T that will
// ever be committed is behind it, already applied here; a proposal fenced to T that has not applied is
// not in the committed log, and any copy still wandering (held by a member, forwarded on, appended by a
// later leader) lands at another term and is skipped. Its proposer may answer at once, or propose it
// again: the first attempt can no longer apply anywhere.
//
// This decides what AppendedProposals decided by log index (a proposal in this replica's log overwritten
// by another leader's entry), and also proposals that never came back to this replica's log: those
// forwarded to a leader that died or lost its leadership before sending them anywhere, which used to
// wait out their clients' deadlines.
//
// A snapshot restore may hold any waiting proposal, applied unseen: those are unfenced (they wait for
// their apply or their deadline, an unknown outcome). Pure; KvStateMachine owns the waiters.
import * as grpc from '@grpc/grpc-js';
import { ETCD_ERRORS, grpcError } from '../etcd/errors.ts';

/** Whether an entry fenced to `proposalTerm` (0: not fenced) sitting in the log at `entryTerm` must be skipped. */
export function isStale(proposalTerm: number, entryTerm: number): boolean {
  return proposalTerm !== 0 && proposalTerm !== entryTerm;
}

/** The term a decoded entry is fenced to (0: none). */
export function proposalTermOf(proposalTerm: string | undefined): number {
  if (proposalTerm === undefined) return 0;
  const n = Number(proposalTerm);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`log entry carries proposal term ${proposalTerm}, not a safe integer`);
  return n;
}

/** What a proposal lost for good is rejected with: etcd's "leader changed", a definite failure. */
export interface ProposalLostError extends grpc.ServiceError {
  readonly proposalLost: true;
}

export function proposalLostError(): ProposalLostError {
  return Object.assign(grpcError(ETCD_ERRORS.LEADER_CHANGED), { proposalLost: true as const });
}

/** Whether `err` says the proposal can no longer apply anywhere (so proposing it again is safe). */
export function isProposalLost(err: unknown): err is ProposalLostError {
  return err instanceof Error && (err as Partial<ProposalLostError>).proposalLost === true;
}

export class ProposalFence {
  /** Waiting proposals' fence terms, by seq. */
  private readonly termBySeq = new Map<string, number>();
  /** The lowest term in termBySeq (Infinity when empty): most applies need no scan. */
  private lowestTerm = Infinity;

  /** Proposal `seq` was sent fenced to `term` (> 0). A proposal sent again is noted again with its new term. */
  note(seq: string, term: number): void {
    if (!(Number.isSafeInteger(term) && term > 0)) throw new Error(`proposal ${seq}: bad fence term ${term}`);
    this.termBySeq.set(seq, term);
    if (term < this.lowestTerm) this.lowestTerm = term;
  }

  /** The proposal settled (applied, skipped, given up): no longer watched. */
  drop(seq: string): void {
    this.termBySeq.delete(seq);
  }

  /** Removes and returns the proposals fenced below `appliedTerm`, the term of an entry just applied: lost. */
  takeLostBelow(appliedTerm: number): string[] {
    if (appliedTerm <= this.lowestTerm) return [];
    const lost: string[] = [];
    let lowest = Infinity;
    for (const [seq, term] of this.termBySeq) {
      if (term < appliedTerm) lost.push(seq);
      else if (term < lowest) lowest = term;
    }
    for (const seq of lost) this.termBySeq.delete(seq);
    this.lowestTerm = lowest;
    return lost;
  }

  /** Forgets them all (a snapshot replaced the state: any of them may be in it, applied unseen). */
  clear(): void {
    this.termBySeq.clear();
    this.lowestTerm = Infinity;
  }

  get size(): number {
    return this.termBySeq.size;
  }
}

// Where a proposal forwarded to this member goes, for a group whose proposals are intercepted (a shard
// of a sharded cluster, whose leader stamps every write: Member.interceptProposals). Raft alone drops a
// forwarded proposal that reaches a member which is not the leader and knows none (a leadership being
// handed over, an election), and the member drops one for a group it no longer hosts (a replica just
// moved away); its proposer then waits out its client's deadline for an apply that never comes. Here
// such a proposal is forwarded on, or held and tried again shortly, instead.
//
// Safe because a forwarded proposal is only ever in flight between members: it reached no log yet, so
// passing it on (or holding it) cannot make it apply twice — at most one leader appends it, once, when
// it arrives there. Bounded: a held proposal is dropped at its hold deadline, and one for a removed group
// is passed on only to the leader that group had here, for a short while after the removal. A dropped
// proposal's proposer answers at its deadline, unless the proposal was fenced to a term
// (server/shard/proposal-fence.ts): then it is known lost once a later term applies at the proposer, and
// proposed again; a fenced proposal passed on to a leader of a later term is dropped there for the same
// reason.

import type { NodeId, Role } from '../raft/types.ts';

/** How long a forwarded proposal may wait here for its group to have a leader. */
export const FORWARDED_PROPOSAL_HOLD_MS = 3_000;
/** How often a held proposal looks for a leader again. */
export const FORWARDED_PROPOSAL_RETRY_MS = 20;
/** How long after removing a group this member passes its forwarded proposals to the leader it knew. */
export const REMOVED_GROUP_FORWARD_MS = 10_000;

export type ForwardedProposalRoute =
  /** To the interceptor (this member leads: its write path stamps and proposes it). */
  | { readonly kind: 'intercept' }
  /** To Raft, which forwards it to the leader it knows. */
  | { readonly kind: 'forward' }
  /** Sent, as a proposal, to the leader the group had when it was removed from this member. */
  | { readonly kind: 'to-former-leader'; readonly leaderId: NodeId }
  /** Kept and routed again in FORWARDED_PROPOSAL_RETRY_MS. */
  | { readonly kind: 'hold' }
  /** Dropped (held too long, or no member to pass it to). */
  | { readonly kind: 'drop' };

/** What the member knows of the group when a forwarded proposal for it arrives (or is routed again). */
export interface ForwardedProposalFacts {
  /** This member hosts the group. */
  readonly hosted: boolean;
  /** Raft's role for the group here (meaningful when hosted). */
  readonly role: Role;
  /** The leader this member knows for the group (0: none). */
  readonly leaderId: NodeId;
  readonly self: NodeId;
  /** The member it came from (a removed group's proposal is never sent back there). */
  readonly from: NodeId;
  /** Not hosted: the leader it had when this member removed it, while still recent (0: none). */
  readonly formerLeaderId: NodeId;
  /** The proposal's hold deadline has passed. */
  readonly expired: boolean;
}

/** The route of one forwarded proposal. Pure. */
export function routeForwardedProposal(f: ForwardedProposalFacts): ForwardedProposalRoute {
  if (!f.hosted) return f.formerLeaderId !== 0 && f.formerLeaderId !== f.self && f.formerLeaderId !== f.from ? { kind: 'to-former-leader', leaderId: f.formerLeaderId } : { kind: 'drop' };
  if (f.role === 'leader') return { kind: 'intercept' };
  if (f.leaderId !== 0 && f.leaderId !== f.self) return { kind: 'forward' };
  return f.expired ? { kind: 'drop' } : { kind: 'hold' };
}

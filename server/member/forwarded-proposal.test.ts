// routeForwardedProposal: a proposal forwarded for a shard is intercepted by its leader, passed on
// towards the leader this member knows, held while none is known, and passed to the leader a removed
// group had here — never dropped merely because a leadership or a replica is moving.
import { describe, expect, it } from 'vitest';
import { routeForwardedProposal, type ForwardedProposalFacts } from './forwarded-proposal.ts';

const base: ForwardedProposalFacts = { hosted: true, role: 'follower', leaderId: 2, self: 1, from: 3, formerLeaderId: 0, expired: false };

describe('routeForwardedProposal', () => {
  it('the leader intercepts it (its write path stamps it)', () => {
    expect(routeForwardedProposal({ ...base, role: 'leader', leaderId: 1 })).toEqual({ kind: 'intercept' });
  });

  it('a follower that knows the leader forwards it (a leadership just handed over from here)', () => {
    expect(routeForwardedProposal(base)).toEqual({ kind: 'forward' });
  });

  it('without a known leader (an election, a transfer under way) it is held, then dropped at its hold deadline', () => {
    for (const role of ['follower', 'candidate', 'preCandidate'] as const) {
      expect(routeForwardedProposal({ ...base, role, leaderId: 0 })).toEqual({ kind: 'hold' });
      expect(routeForwardedProposal({ ...base, role, leaderId: 0, expired: true })).toEqual({ kind: 'drop' });
    }
    // A stale view naming this member as leader while Raft says otherwise is no leader to forward to.
    expect(routeForwardedProposal({ ...base, leaderId: 1 })).toEqual({ kind: 'hold' });
  });

  it('a group removed from this member: passed to the leader it had here, never back to its sender nor to itself', () => {
    const gone = { ...base, hosted: false, leaderId: 0 };
    expect(routeForwardedProposal({ ...gone, formerLeaderId: 2 })).toEqual({ kind: 'to-former-leader', leaderId: 2 });
    expect(routeForwardedProposal({ ...gone, formerLeaderId: 3 })).toEqual({ kind: 'drop' });
    expect(routeForwardedProposal({ ...gone, formerLeaderId: 1 })).toEqual({ kind: 'drop' });
    expect(routeForwardedProposal({ ...gone, formerLeaderId: 0 })).toEqual({ kind: 'drop' });
  });
});

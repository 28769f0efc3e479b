// Member-level liveness for quiesced Raft groups: the one rule, shared by the member and the Raft
// simulator, for when a quiesced node must wake because the members it depends on went silent.
//
// A quiesced group sends nothing, so its followers cannot tell a dead leader from an idle one by the
// group's own traffic. Instead every member sends each peer one liveness message per heartbeat
// interval (or any other message: all traffic counts), and a member knows when it last heard from
// each peer. Safety never depends on this (quiescence only suppresses ticks); liveness does:
//  - a quiesced follower whose leader's member was not heard from for an election timeout wakes with
//    the leader's lease lapsed (RawNode.wakeLeaderUnreachable) and campaigns within one more
//    randomized election timeout: a new leader within ~3 election timeouts of the leader's death;
//  - a quiesced leader that has not heard from a quorum of its voters' members for an election
//    timeout wakes, so check-quorum steps it down as it would had it kept heartbeating.
import type { RawNode } from './raw-node.ts';
import type { NodeId } from './types.ts';

export type LivenessWake = 'none' | 'follower' | 'leader';

/**
 * The envelope group id of member-level liveness messages (a term-0 'heartbeat' from member to
 * member): no Raft group has it (group ids are uint32 on the wire; this is the largest). A member
 * that predates it records the sender as heard from and drops it, as for any group it does not host.
 */
export const LIVENESS_GROUP_ID = 0xffff_ffff;

/**
 * Applies the rule to one node. `isLive(id)` says whether member `id` was heard from within the last
 * election timeout (the node's own member is always live). Returns what was woken.
 */
export function wakeIfPeersSilent(node: RawNode, selfId: NodeId, isLive: (id: NodeId) => boolean): LivenessWake {
  if (!node.isQuiesced()) return 'none';
  const role = node.role();
  if (role === 'follower') {
    const leaderId = node.leaderId();
    if (leaderId === 0 || leaderId === selfId || isLive(leaderId)) return 'none';
    node.wakeLeaderUnreachable();
    return 'follower';
  }
  if (role === 'leader') {
    const voters = node.voters();
    let live = 0;
    for (const v of voters) if (v === selfId || isLive(v)) live++;
    if (2 * live > voters.length) return 'none';
    node.wake();
    return 'leader';
  }
  return 'none';
}

// Test-only fault injection for the peer transport (--experimental-fault-injection): a set of peer
// member ids this member is cut off from. The transport drops every message to or from a blocked
// peer, which partitions the network from this member's side; the fault suite sets it on every
// member it can reach through POST /debug/fault/partition. Never enabled by default.

export class FaultInjector {
  private blocked = new Set<number>();
  /** Messages dropped because of a block, both directions. */
  droppedMessages = 0;

  /** Replaces the blocked set; an empty list heals this member's side of every partition. */
  setBlockedPeers(memberIds: Iterable<number>): void {
    this.blocked = new Set(memberIds);
  }

  blockedPeers(): number[] {
    return [...this.blocked];
  }

  isBlocked(memberId: number): boolean {
    return this.blocked.has(memberId);
  }
}

// How long a member's Raft groups may answer linearizable reads on a lease (RaftConfig.leaseReads,
// server/raft/types.ts LeaseReads), derived from the member's tick timer.
//
// A voter that acknowledged a leader's heartbeat at time t refuses to vote in a higher term until its
// election timer has counted `electionTimeoutTicks` ticks since (leader stickiness). The member's
// ticks come from one setInterval: Node never runs an interval callback before its period has passed,
// give or take the millisecond its timers round to, and a paused or blocked process only delays them.
// The first tick after t may come at once, so the voter holds out for at least
// (electionTimeoutTicks − 1) × (tickMs − 1) ms after t. The leader's lease starts no later than the
// heartbeat left, so before t, and keeps a fifth of that back for clocks of different machines that
// run at different rates (NTP bounds them far tighter) and for the time a vote takes to count.
// The member's liveness wake of quiesced groups (liveness-wake.ts) lapses stickiness only after a full
// election timeout of silence from the leader's member, which is longer still.

/** Lease length for the given timing, or null where no safe lease exists (too few ticks). */
export function leaseDurationMs(tickMs: number, electionTimeoutTicks: number): number | null {
  const heldMs = (electionTimeoutTicks - 1) * (tickMs - 1);
  const durationMs = Math.floor(heldMs * 0.8);
  return durationMs >= 1 ? durationMs : null;
}

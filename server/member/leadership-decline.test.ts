// In-process: three real members (LevelDB, Raft) wired through an in-memory sink. A member that has
// handed its leaderships over before it stops (TransferLeaderships) declines handovers for a while: a
// leader's transfer to it runs out and the leader leads on; once the decline ends, a handover works
// again; and an election still may pick it (only handovers are declined).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeadlineError, NotLeaderError, type Member } from './member.ts';
import { startInProcessMembers, type InProcessMembers } from '../../test/support/in-process-members.ts';

const GROUP = 1;
const TICK_MS = 20;
// Elections every 500 ms at the earliest: a busy machine must not depose the leader mid-test.
const ELECTION_TICKS = 25;

let trio: InProcessMembers;

beforeAll(async () => {
  trio = await startInProcessMembers({ groupId: GROUP, ids: [1, 2, 3], tickMs: TICK_MS, electionTimeoutTicks: ELECTION_TICKS, name: 'decline' });
}, 20_000);

afterAll(async () => {
  await trio?.stop();
});

/**
 * A handover from the current leader to another member: the leader, the target, and how the transfer
 * ended. An election between finding the leader and asking it (it is no longer leader) is tried again.
 */
async function handOver(prepare: (target: Member) => void, timeoutMs: number): Promise<{ lead: Member; target: Member; error: unknown }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error('no leader stayed leader long enough to be asked');
    const lead = await trio.leader();
    const [targetId, target] = [...trio.members.entries()].find(([, m]) => m !== lead)!;
    prepare(target);
    try {
      await lead.transferLeadership(GROUP, targetId, timeoutMs);
      return { lead, target, error: null };
    } catch (error) {
      // Deposed meanwhile (or its role not yet caught up with Raft's): after the next turn, again.
      if (error instanceof NotLeaderError) {
        await new Promise((r) => setTimeout(r, TICK_MS));
        continue;
      }
      return { lead, target, error };
    }
  }
}

describe('Member.declineLeadershipHandovers', () => {
  it('a declining member is not handed the leadership; the leader leads on', async () => {
    const { lead, target, error } = await handOver((m) => m.declineLeadershipHandovers(60_000), 2 * TICK_MS * ELECTION_TICKS);
    expect(error).toBeInstanceOf(DeadlineError);
    // The transfer ran out (one election timeout) and the old leader took proposals again.
    const deadline = Date.now() + 5_000;
    while (lead.role(GROUP) !== 'leader' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(lead.role(GROUP)).toBe('leader');
    expect(target.role(GROUP)).not.toBe('leader');
  });

  it('once the decline ends, the same handover completes', async () => {
    for (const m of trio.members.values()) m.declineLeadershipHandovers(0);
    const { target, error } = await handOver(() => {}, 5_000);
    expect(error).toBeNull();
    expect(target.role(GROUP)).toBe('leader');
  });
});

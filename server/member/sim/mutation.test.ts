// Mutation check of the member simulation (issue 12): with a deliberate durability bug in every
// member (Member's TEST-ONLY `unsafeMutation`), some seed must fail. If a mutation survives, the
// simulation is too gentle to guard the rule that mutation breaks.
//  - 'skip-leader-fsync': the leader writes its entries without sync; caught when a leader crash
//    loses them after a follower's ack counted them committed;
//  - 'no-write-barrier': a turn releases its Readies (messages, applies, the leader's self-ack)
//    before its batch is durable; caught when acks that arrived during the write commit entries a
//    crash then loses;
//  - 'ignore-proposal-fence': replicas apply a fenced entry at any term (proposal-fence.ts); caught when a
//    write proposed again after its first attempt was known lost applies twice.
// A failure may come from the Raft core's own assertions (RaftInvariantError, e.g. "follower acked
// beyond leader last index" after a leader lost its unsynced log) or from the simulation's checks
// (acknowledged write lost, state machine safety, ...); either fails the seed. The search goes on
// until a few seeds failed and one of them by the simulation's own checks (printed), or MAX_SEEDS.
// Bounded: at most MAX_SEEDS seeds per mutation, stopping after the first few failures.
import { describe, expect, it } from 'vitest';
import { MemberSimFailure, runMemberSim } from './member-sim.ts';
import type { MemberSimMutation } from './member-sim.ts';

const MAX_SEEDS = Number(process.env.MEMBER_SIM_MUTATION_SEEDS ?? 80);
const WANTED_FAILURES = 3;

function bySimChecks(message: string): boolean {
  return !message.includes('RaftInvariantError');
}

async function failingSeeds(mutation: MemberSimMutation): Promise<Array<{ seed: number; message: string }>> {
  const failures: Array<{ seed: number; message: string }> = [];
  const enough = (): boolean => failures.length >= WANTED_FAILURES && failures.some((f) => bySimChecks(f.message));
  for (let seed = 1; seed <= MAX_SEEDS && !enough(); seed++) {
    try {
      await runMemberSim(seed, { members: 3, faultMs: 2000, mutation });
    } catch (err) {
      if (!(err instanceof MemberSimFailure)) throw err;
      failures.push({ seed, message: err.message.split('\n')[0] });
    }
  }
  console.log(`mutation ${mutation}: ${failures.length} failing seeds (${failures.filter((f) => bySimChecks(f.message)).length} by the simulation's own checks)\n${failures.map((f) => `  ${f.message}`).join('\n')}`);
  return failures;
}

describe('member simulation catches durability and exactly-once bugs', () => {
  for (const mutation of ['skip-leader-fsync', 'no-write-barrier', 'ignore-proposal-fence'] as const) {
    it(`fails some seed with ${mutation}`, async () => {
      const failures = await failingSeeds(mutation);
      expect(failures.length).toBeGreaterThan(0);
    });
  }
});

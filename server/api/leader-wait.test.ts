// whileLeaderless (context.ts): how long a request waits for its group's leader. A group with no leader
// is waited on for the leader wait (then "no leader", soon); a leader that is named but out of this
// member's reach (LeaderUnreachableError: the stream to it is down) is waited on to the request's deadline,
// across the election that replaces it if it died, however long that election takes.
import { describe, expect, it } from 'vitest';
import { whileLeaderless } from './context.ts';
import { DeadlineError, LeaderUnreachableError, NoLeaderError } from '../member/member.ts';

/** An attempt that fails with each error of `script` in turn (one per call), then succeeds. */
function scripted(script: Array<() => Error>): { attempt: () => void; calls: () => number } {
  let calls = 0;
  return {
    attempt: () => {
      const next = script[calls++];
      if (next !== undefined) throw next();
    },
    calls: () => calls,
  };
}

const times = <T>(n: number, f: T): T[] => Array.from({ length: n }, () => f);

describe('whileLeaderless', () => {
  it('gives up with "no leader" once the group has had no leader for the leader wait', async () => {
    const { attempt } = scripted(times(1_000, () => new NoLeaderError()));
    const startedMs = Date.now();
    await expect(whileLeaderless(100, Date.now() + 5_000, attempt)).rejects.toBeInstanceOf(NoLeaderError);
    expect(Date.now() - startedMs).toBeLessThan(1_000);
  });

  it('waits past the leader wait while a leader is named but unreachable, and through the election after it', async () => {
    // ~300 ms unreachable (its stream down: it died), ~60 ms leaderless (the election), then a leader.
    const { attempt, calls } = scripted([...times(15, () => new LeaderUnreachableError()), ...times(3, () => new NoLeaderError())]);
    await whileLeaderless(100, Date.now() + 5_000, attempt);
    expect(calls()).toBe(19);
  });

  it('ends at the deadline as a timeout, not "no leader", while the leader stays unreachable', async () => {
    const { attempt } = scripted(times(1_000, () => new LeaderUnreachableError()));
    const startedMs = Date.now();
    await expect(whileLeaderless(50, Date.now() + 300, attempt)).rejects.toBeInstanceOf(DeadlineError);
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(300);
  });

  it('passes any other error through at once', async () => {
    const { attempt, calls } = scripted([() => new Error('boom')]);
    await expect(whileLeaderless(100, Date.now() + 5_000, attempt)).rejects.toThrow('boom');
    expect(calls()).toBe(1);
  });
});

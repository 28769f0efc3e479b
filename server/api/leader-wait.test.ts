// whileLeaderless (context.ts): how long a request waits for its group's leader. A group with no leader
// is waited on for the leader wait (then "no leader", soon); a leader that is named but out of this
// member's reach (LeaderUnreachableError: the stream to it is down) is waited on for 2 s, across the
// election that replaces it if it died; either refusal is definite (nothing was proposed).
import { describe, expect, it } from 'vitest';
import { whileLeaderless } from './context.ts';
import { LeaderUnreachableError, NoLeaderError } from '../member/member.ts';

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

  it('gives up with a definite refusal once its named leader has been out of reach for 2 s, or at the deadline', async () => {
    const forever = (): { attempt: () => void } => scripted(times(10_000, () => new LeaderUnreachableError()));
    let startedMs = Date.now();
    await expect(whileLeaderless(100, Date.now() + 10_000, forever().attempt)).rejects.toBeInstanceOf(LeaderUnreachableError);
    expect(Date.now() - startedMs).toBeGreaterThanOrEqual(2_000);
    expect(Date.now() - startedMs).toBeLessThan(4_000);
    startedMs = Date.now();
    await expect(whileLeaderless(100, Date.now() + 300, forever().attempt)).rejects.toBeInstanceOf(LeaderUnreachableError);
    expect(Date.now() - startedMs).toBeLessThan(1_500);
  });

  it('passes any other error through at once', async () => {
    const { attempt, calls } = scripted([() => new Error('boom')]);
    await expect(whileLeaderless(100, Date.now() + 5_000, attempt)).rejects.toThrow('boom');
    expect(calls()).toBe(1);
  });
});

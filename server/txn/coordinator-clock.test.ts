// TxnCoordinator with a wall clock behind the shard leaders': a prepare refused as older than a shard's
// fence horizon (kv-state-machine.ts txnTooOld, which names the horizon) teaches the coordinator how far
// behind it is, its retry and every later transaction take their age from its clock plus that, and each
// prepare carries the time it has left (ttl_ms) for the shard leader to set its deadline by. The shards
// are a stand-in (`propose` answers at once, refusing prepares below the horizon as the state machine does).
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TxnIntentWire } from '../shard/request-codec.ts';
import { txnTooOld } from '../shard/kv-state-machine.ts';
import { CLOCK_BEHIND_KEPT_MS, clockBehindNowMs, TxnCoordinator, type TxnWriteOutcome } from './coordinator.ts';
import { standInDeps } from './stand-in-shards.ts';

function harness(horizonMs: number, otherRefusals = 0) {
  const prepares: TxnIntentWire[] = [];
  let refused = 0;
  const deps = standInDeps((nextRevision) => async (_groupId, body): Promise<TxnWriteOutcome> => {
    if ('txn_intent' in body) {
      prepares.push(body.txn_intent);
      if (otherRefusals > 0) {
        otherRefusals--;
        refused++;
        throw Object.assign(new Error('synod: another transaction is prepared on this shard'), { code: 10, details: 'synod: another transaction is prepared on this shard' });
      }
      if (Number(body.txn_intent.priority) < horizonMs) {
        refused++;
        const spec = txnTooOld(horizonMs);
        throw Object.assign(new Error(spec.message), { code: spec.code, details: spec.message });
      }
      return { revision: nextRevision(), result: null };
    }
    return { revision: 0, result: null };
  });
  const coordinator = new TxnCoordinator(deps);
  const sweep = (): Promise<number> => coordinator.sweepLease({ ID: '7', generation: '1', revoked_at: '1' }, [1, 2]);
  return { coordinator, prepares, refused: () => refused, sweep };
}

describe('TxnCoordinator on a member whose clock is behind', () => {
  it('learns how far behind from a fence horizon that refused it, commits on the retry, and starts later transactions past the horizon', async () => {
    const horizonMs = Date.now() + 10 * 60_000; // the shard leaders' clocks less five minutes, ten minutes ahead of this one
    const { coordinator, prepares, refused, sweep } = harness(horizonMs);
    await sweep();
    expect(refused()).toBeGreaterThan(0);
    const behindMs = coordinator.stats.clockBehindMs;
    // Two minutes past the horizon it met (HORIZON_CATCH_UP_MS), as this clock reads now.
    expect(behindMs).toBeGreaterThan(horizonMs - Date.now() + 2 * 60_000 - 1_000);
    expect(behindMs).toBeLessThanOrEqual(horizonMs - Date.now() + 2 * 60_000 + 1_000);
    const refusedFirst = refused();
    await sweep();
    expect(refused()).toBe(refusedFirst); // a later transaction is not refused at all
    for (const p of prepares) {
      const ttlMs = Number(p.ttl_ms);
      expect(ttlMs).toBeGreaterThan(0);
      expect(ttlMs).toBeLessThanOrEqual(1_000); // INTENT_TTL_MS: the leader's deadline is its clock plus this
    }
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('forgets the offset after CLOCK_BEHIND_KEPT_MS (a fixed clock gets its true ages back), and learns it again from one refusal if still behind', async () => {
    const horizonMs = Date.now() + 10 * 60_000;
    const { coordinator, prepares, refused, sweep } = harness(horizonMs);
    await sweep();
    const learnt = coordinator.stats.clockBehindMs;
    expect(learnt).toBeGreaterThan(0);
    const refusedAtFirst = refused();
    // Kept a moment short of its time: later transactions take their age past the horizon at once.
    const monotonicNow = performance.now();
    const at = vi.spyOn(performance, 'now').mockReturnValue(monotonicNow + CLOCK_BEHIND_KEPT_MS - 1_000);
    await sweep();
    expect(refused()).toBe(refusedAtFirst);
    // Past it: the gauge reads 0, and the next transaction starts at this clock's own age, is refused
    // once, and learns it again.
    at.mockReturnValue(monotonicNow + CLOCK_BEHIND_KEPT_MS + 1_000);
    expect(clockBehindNowMs(coordinator.stats)).toBe(0);
    const before = prepares.length;
    await sweep();
    expect(Number(prepares[before].priority)).toBeLessThan(horizonMs);
    expect(refused() - refusedAtFirst).toBe(refusedAtFirst); // one attempt's prepares refused, as the first time
    expect(coordinator.stats.clockBehindMs).toBeGreaterThan(learnt - 1_000);
  });

  it('a refusal for another reason (wait-die) is retried and teaches nothing', async () => {
    const { coordinator, refused, sweep } = harness(0, 3);
    await sweep();
    expect(refused()).toBe(3);
    expect(coordinator.stats.clockBehindMs).toBe(0);
  });
});

// Wait-die's verdicts (wait-die.ts): the cases one by one, then properties over random transactions:
// no cycle of waits is made only of indefinite waits, an older prepare is never refused before its
// deadline, a younger one never waits past its grace.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { judgeWaitingPrepare, olderThan, rankOf, type TxnRank } from './wait-die.ts';

const GRACE_MS = 25;
const rank = (priority: number, txnId: string): TxnRank => rankOf(priority, txnId);

describe('wait-die verdicts', () => {
  const old = rank(1_000, 'a');
  const young = rank(2_000, 'b');

  it('an older prepare waits for as long as its deadline allows', () => {
    expect(judgeWaitingPrepare({ rank: old, heldSinceMs: 0, deadlineUnixMs: 10_000 }, [young], 9_999, GRACE_MS)).toEqual({ kind: 'wait' });
  });

  it('a younger prepare waits out its grace, then dies', () => {
    expect(judgeWaitingPrepare({ rank: young, heldSinceMs: 100, deadlineUnixMs: 10_000 }, [old], 110, GRACE_MS)).toEqual({ kind: 'wait-grace', graceLeftMs: 15 });
    expect(judgeWaitingPrepare({ rank: young, heldSinceMs: 100, deadlineUnixMs: 10_000 }, [old], 125, GRACE_MS)).toEqual({ kind: 'die', why: 'younger' });
  });

  it('younger than any one holder is enough to be the younger one', () => {
    const mid = rank(1_500, 'm');
    expect(judgeWaitingPrepare({ rank: mid, heldSinceMs: 0, deadlineUnixMs: 10_000 }, [young, old], 30, GRACE_MS).kind).toBe('die');
    expect(judgeWaitingPrepare({ rank: mid, heldSinceMs: 0, deadlineUnixMs: 10_000 }, [young], 30, GRACE_MS).kind).toBe('wait');
  });

  it('past its transaction deadline a prepare dies, older or not', () => {
    expect(judgeWaitingPrepare({ rank: old, heldSinceMs: 0, deadlineUnixMs: 500 }, [young], 500, GRACE_MS)).toEqual({ kind: 'die', why: 'overdue' });
  });

  it('ties on the first attempt are broken by transaction id; a prepare without an age ranks youngest', () => {
    expect(olderThan(rank(5, 'a'), rank(5, 'b'))).toBe(true);
    expect(olderThan(rank(5, 'b'), rank(5, 'a'))).toBe(false);
    expect(olderThan(rank(9e12, 'z'), rankOf(0, 'a'))).toBe(true);
    expect(olderThan(rank(9e12, 'z'), rankOf(undefined, 'a'))).toBe(true);
  });

  it('refuses to judge with nothing holding the shard', () => {
    expect(() => judgeWaitingPrepare({ rank: old, heldSinceMs: 0, deadlineUnixMs: 1 }, [], 0, GRACE_MS)).toThrow(/nothing holding/);
  });
});

describe('wait-die properties', () => {
  const arbRank = fc.record({ priority: fc.integer({ min: 1, max: 50 }), txnId: fc.string({ minLength: 1, maxLength: 3 }) });

  it('every cycle of waits holds a prepare that waits only its grace, so the cycle breaks', () => {
    fc.assert(
      fc.property(fc.uniqueArray(arbRank, { minLength: 2, maxLength: 8, selector: (r) => `${r.priority}/${r.txnId}` }), fc.nat(100), (cycle, nowMs) => {
        // Transaction i holds a shard and waits on the shard transaction i + 1 holds (the last on the first's).
        const verdicts = cycle.map((r, i) => judgeWaitingPrepare({ rank: r, heldSinceMs: nowMs, deadlineUnixMs: Number.MAX_SAFE_INTEGER }, [cycle[(i + 1) % cycle.length]], nowMs, GRACE_MS));
        expect(verdicts.some((v) => v.kind !== 'wait')).toBe(true);
        // And the grace ends: judged again once it is over, someone in the cycle dies.
        const later = cycle.map((r, i) => judgeWaitingPrepare({ rank: r, heldSinceMs: nowMs, deadlineUnixMs: Number.MAX_SAFE_INTEGER }, [cycle[(i + 1) % cycle.length]], nowMs + GRACE_MS, GRACE_MS));
        expect(later.some((v) => v.kind === 'die')).toBe(true);
      }),
    );
  });

  it('the oldest transaction of all is never refused before its deadline; a younger one never waits past its grace', () => {
    fc.assert(
      fc.property(arbRank, fc.array(arbRank, { minLength: 1, maxLength: 5 }), fc.nat(1_000), fc.nat(1_000), fc.nat(2_000), (waiting, holders, heldSinceMs, waitedMs, deadlineInMs) => {
        const nowMs = heldSinceMs + waitedMs;
        const deadlineUnixMs = heldSinceMs + deadlineInMs;
        const v = judgeWaitingPrepare({ rank: waiting, heldSinceMs, deadlineUnixMs }, holders, nowMs, GRACE_MS);
        if (deadlineUnixMs <= nowMs) expect(v).toEqual({ kind: 'die', why: 'overdue' });
        else if (holders.every((h) => olderThan(waiting, h))) expect(v).toEqual({ kind: 'wait' });
        else if (waitedMs >= GRACE_MS) expect(v).toEqual({ kind: 'die', why: 'younger' });
        else expect(v).toEqual({ kind: 'wait-grace', graceLeftMs: GRACE_MS - waitedMs });
      }),
    );
  });
});

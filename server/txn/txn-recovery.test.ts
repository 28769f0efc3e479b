// The transaction record (txn-record.ts) and the recovery rule (txn-recovery.ts) against a model of the
// protocol: a coordinator lays intents at C on random participants in random order and may crash at any
// step, while recoverers run recoveryStep and carry it out (fence = the participant's floor rises to C;
// record = the compare-and-set on the primary's record), all interleaved at random. Checked at the end of
// every run: one outcome at most is ever recorded; a committed transaction has every intent in place; a
// transaction whose every intent was laid (the coordinator may have answered the client) is never aborted;
// and once the deadline has passed, recovery always reaches an outcome.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, stagingRecord, TxnRecordError, type TxnRecord } from './txn-record.ts';
import { recoveryStep, type ParticipantAnswer } from './txn-recovery.ts';

interface Shard {
  floor: number;
  intent: boolean;
  reachable: boolean;
}

type Action = { kind: 'coordinator' } | { kind: 'recoverer' } | { kind: 'partition'; shard: number } | { kind: 'tick' };

describe('txn record', () => {
  it('refuses malformed records', () => {
    const base = { txnId: 't', revision: 10, primaryShard: 1, participants: [1, 2], deadlineMs: 0 };
    expect(stagingRecord(base).status).toBe('staging');
    expect(() => stagingRecord({ ...base, revision: 0 })).toThrow(TxnRecordError);
    expect(() => stagingRecord({ ...base, participants: [1] })).toThrow(/at least two/);
    expect(() => stagingRecord({ ...base, participants: [1, 2, 2] })).toThrow(/twice/);
    expect(() => stagingRecord({ ...base, primaryShard: 3 })).toThrow(/not a participant/);
    expect(() => stagingRecord({ ...base, txnId: '' })).toThrow(/empty/);
  });

  it('records one outcome: a compare-and-set on staging, idempotent for the same outcome', () => {
    const r = stagingRecord({ txnId: 't', revision: 10, primaryShard: 1, participants: [2, 1], deadlineMs: 0 });
    expect(r.participants).toEqual([1, 2]);
    const committed = decide(r, 'staging', 'committed');
    expect(committed.kind).toBe('recorded');
    expect(committed.record.status).toBe('committed');
    expect(decide(committed.record, 'staging', 'committed').kind).toBe('recorded'); // a retry
    const late = decide(committed.record, 'staging', 'aborted');
    expect(late.kind).toBe('refused');
    expect(late.record.status).toBe('committed');
    expect(decide(r, 'committed', 'aborted').kind).toBe('refused'); // a stale expectation
  });
});

describe('recovery racing a coordinator (model)', () => {
  it('never records two outcomes, never aborts a transaction whose intents were all laid, always ends', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 5 }),
        fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 5, maxLength: 5 }),
        fc.integer({ min: 0, max: 12 }),
        fc.array(
          fc.oneof(
            fc.constant<Action>({ kind: 'coordinator' }),
            fc.constant<Action>({ kind: 'recoverer' }),
            fc.integer({ min: 0, max: 4 }).map((shard): Action => ({ kind: 'partition', shard })),
            fc.constant<Action>({ kind: 'tick' }),
          ),
          { maxLength: 60 },
        ),
        (n, floors, coordinatorCrashAfter, actions) => {
          const C = 20;
          const shards: Shard[] = Array.from({ length: n }, (_, i) => ({ floor: floors[i], intent: false, reachable: true }));
          let record: TxnRecord = stagingRecord({ txnId: 'x', revision: C, primaryShard: 0, participants: shards.map((_, i) => i), deadlineMs: 5 });
          const recorded = new Set<string>();
          let nowMs = 0;
          // The coordinator: lays intents in order, then records its outcome; crashes after some steps.
          let coordinatorSteps = 0;
          let coordinatorDone = false;
          let allLaidAt = -1;
          let acked = false;
          const coordinatorStep = (): void => {
            if (coordinatorDone || coordinatorSteps >= coordinatorCrashAfter) return;
            coordinatorSteps++;
            const next = shards.findIndex((s) => !s.intent);
            if (next >= 0) {
              const s = shards[next];
              if (C > s.floor) {
                s.intent = true; // accepted: stamped at C, the floor rises to C
                s.floor = C;
              } else {
                const r = decide(record, 'staging', 'aborted'); // refused: the attempt is dead
                record = r.record;
                if (r.kind === 'recorded') recorded.add('aborted');
                coordinatorDone = true;
              }
              return;
            }
            if (allLaidAt < 0) allLaidAt = nowMs;
            acked = true; // implicitly committed: the client is answered
            const r = decide(record, 'staging', 'committed');
            record = r.record;
            if (r.kind === 'recorded') recorded.add('committed');
            coordinatorDone = true;
          };
          const answers = (): Map<number, ParticipantAnswer> =>
            new Map(shards.map((s, i): [number, ParticipantAnswer] => [i, !s.reachable ? { kind: 'unreachable' } : s.intent ? { kind: 'intent' } : { kind: 'no-intent', floor: s.floor }]));
          const recovererStep = (): boolean => {
            const step = recoveryStep(record, nowMs, answers());
            if (step.kind === 'fence') for (const i of step.shards) shards[i].floor = Math.max(shards[i].floor, C);
            if (step.kind === 'record') {
              const r = decide(record, 'staging', step.outcome);
              record = r.record;
              if (r.kind === 'recorded') recorded.add(step.outcome);
            }
            return step.kind === 'resolve';
          };
          for (const a of actions) {
            if (a.kind === 'coordinator') coordinatorStep();
            else if (a.kind === 'recoverer') recovererStep();
            else if (a.kind === 'partition') {
              if (a.shard < n) shards[a.shard].reachable = !shards[a.shard].reachable;
            } else nowMs++;
            if (shards.every((s) => s.intent) && allLaidAt < 0) allLaidAt = nowMs;
          }
          // Then the network heals, time passes, and a recoverer runs to the end.
          for (const s of shards) s.reachable = true;
          nowMs = Math.max(nowMs, record.deadlineMs);
          let steps = 0;
          while (!recovererStep()) if (++steps > 10) throw new Error(`recovery did not end: ${JSON.stringify(record)}`);
          expect(recorded.size).toBeLessThanOrEqual(1);
          if (record.status === 'committed') expect(shards.every((s) => s.intent)).toBe(true);
          if (allLaidAt >= 0 || acked) expect(record.status).toBe('committed');
          expect(record.status).not.toBe('staging');
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('waits for the deadline, and asks again about participants that did not answer', () => {
    const record = stagingRecord({ txnId: 't', revision: 10, primaryShard: 1, participants: [1, 2, 3], deadlineMs: 100 });
    const answers = new Map<number, ParticipantAnswer>([
      [1, { kind: 'intent' }],
      [2, { kind: 'unreachable' }],
      [3, { kind: 'intent' }],
    ]);
    expect(recoveryStep(record, 50, answers)).toEqual({ kind: 'wait', untilMs: 100 });
    expect(recoveryStep(record, 100, answers)).toEqual({ kind: 'ask-again', shards: [2] });
    answers.set(2, { kind: 'no-intent', floor: 9 });
    expect(recoveryStep(record, 100, answers)).toEqual({ kind: 'fence', shards: [2] });
    answers.set(2, { kind: 'no-intent', floor: 10 });
    expect(recoveryStep(record, 100, answers)).toEqual({ kind: 'record', outcome: 'aborted' });
  });
});

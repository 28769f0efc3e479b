// The safety checker must actually catch violations, or the simulation proves nothing.
import { describe, expect, it } from 'vitest';
import { SafetyChecker, SafetyViolation } from './checker.ts';
import type { Entry } from '../types.ts';

const e = (index: number, term: number, v = 0): Entry => ({ index, term, type: 'normal', data: new Uint8Array([v]) });
const noLog = (): undefined => undefined;

describe('SafetyChecker', () => {
  it('flags two leaders in one term', () => {
    const c = new SafetyChecker();
    c.onStatus(1, 'leader', 3, noLog);
    c.onStatus(1, 'leader', 3, noLog);
    expect(() => c.onStatus(2, 'leader', 3, noLog)).toThrow(SafetyViolation);
  });

  it('flags logs that agree on (index, term) but not on the prefix', () => {
    const c = new SafetyChecker();
    c.onPersist(1, [e(1, 1, 1), e(2, 2)], null, [e(1, 1, 1), e(2, 2)]);
    expect(() => c.onPersist(2, [e(1, 1, 9), e(2, 2)], null, [e(1, 1, 9), e(2, 2)])).toThrow(/log matching/);
  });

  it('flags different entries applied at one index', () => {
    const c = new SafetyChecker();
    c.onApply(1, e(1, 1, 1));
    expect(() => c.onApply(2, e(1, 1, 2))).toThrow(/state machine safety/);
  });

  it('flags durable commit or term going backwards and double votes', () => {
    const c = new SafetyChecker();
    const log = [e(1, 1), e(2, 1)];
    c.onPersist(1, log, { term: 2, vote: 3, commit: 2 }, log);
    expect(() => c.onPersist(1, [], { term: 2, vote: 3, commit: 1 }, log)).toThrow(/commit went back/);
    expect(() => c.onPersist(1, [], { term: 1, vote: 3, commit: 2 }, log)).toThrow(/term went back/);
    expect(() => c.onPersist(1, [], { term: 2, vote: 2, commit: 2 }, log)).toThrow(/voted twice/);
  });

  it('flags a leader missing an entry committed in an earlier term', () => {
    const c = new SafetyChecker();
    const log = [e(1, 1), e(2, 1)];
    c.onPersist(1, log, { term: 1, vote: 1, commit: 2 }, log);
    expect(() => c.onStatus(2, 'leader', 2, (i) => (i === 1 ? 1 : undefined))).toThrow(/leader completeness/);
    // A leader of the same term as the commit is not required to have it (it may be stale).
    expect(() => c.onStatus(3, 'leader', 1, () => undefined)).not.toThrow();
  });

  it('flags a read that misses a write applied before it was issued', () => {
    const c = new SafetyChecker();
    c.onApply(1, e(1, 1));
    c.onApply(1, e(2, 1));
    c.onReadRequest(7);
    expect(() => c.onReadState(1, 7, { index: 1, requestCtx: new Uint8Array() })).toThrow(/linearizability/);
    expect(() => c.onReadState(1, 7, { index: 2, requestCtx: new Uint8Array() })).not.toThrow();
  });

  it('flags a commit not held by a majority of any membership in effect before it', () => {
    const c = new SafetyChecker([1, 2, 3]);
    const log = [e(1, 1), e(2, 1)];
    c.onPersist(1, log, null, log);
    expect(() => c.onPersist(1, [], { term: 1, vote: 1, commit: 1 }, log)).toThrow(/commit quorum/);
    const c2 = new SafetyChecker([1, 2, 3]);
    c2.onPersist(1, log, null, log);
    c2.onPersist(2, log, null, log);
    expect(() => c2.onPersist(1, [], { term: 1, vote: 1, commit: 2 }, log)).not.toThrow();
  });

  it('flags nodes computing different memberships for one conf entry', () => {
    const c = new SafetyChecker([1, 2, 3]);
    c.onConfApplied(1, 5, { voters: [1, 2, 3], learners: [4] });
    expect(() => c.onConfApplied(2, 5, { voters: [1, 2, 3, 4], learners: [] })).toThrow(/conf entry 5/);
  });

  it('flags a leader that is not a voter of its own membership', () => {
    const c = new SafetyChecker([1, 2, 3]);
    expect(() => c.onStatus(4, 'leader', 2, noLog, [1, 2, 3])).toThrow(/not a voter/);
  });

  it('flags snapshots that are not committed or whose state differs from what was applied', () => {
    const c = new SafetyChecker([1]);
    const log = [e(1, 1, 1), e(2, 1, 2)];
    c.onPersist(1, log, { term: 1, vote: 1, commit: 2 }, log);
    c.onApply(1, log[0]);
    c.onApply(1, log[1]);
    const cs = { voters: [1], learners: [] };
    expect(() => c.onPersistSnapshot(2, { index: 3, term: 1, confState: cs })).toThrow(/beyond the committed log/);
    expect(() => c.onPersistSnapshot(2, { index: 2, term: 2, confState: cs })).toThrow(/is committed there/);
    expect(() => c.onPersistSnapshot(2, { index: 2, term: 1, confState: { voters: [1, 2], learners: [] } })).toThrow(/membership/);
    c.onPersistSnapshot(2, { index: 2, term: 1, confState: cs });
    expect(() => c.onInstallSnapshot(2, { index: 2, term: 1, confState: cs }, [e(1, 1, 1), e(2, 1, 9)])).toThrow(/differs at index 2/);
    c.onInstallSnapshot(3, { index: 2, term: 1, confState: cs }, log);
    expect(c.snapshotsInstalled).toBe(1);
  });
});

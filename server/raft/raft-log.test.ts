import { ENTRY_OVERHEAD_BYTES } from './replication-limits.ts';
import { describe, expect, it } from 'vitest';
import { RaftLog } from './raft-log.ts';
import type { Entry } from './types.ts';
import { RaftInvariantError } from './errors.ts';

const ent = (index: number, term: number, bytes = 0): Entry => ({ index, term, type: 'normal', data: new Uint8Array(bytes) });
const terms = (es: Entry[]): number[] => es.map((e) => e.term);

function logWithTerms(ts: number[]): RaftLog {
  const log = new RaftLog();
  log.append(ts.map((t, i) => ent(i + 1, t)));
  return log;
}

describe('RaftLog', () => {
  it('starts empty with index 0 / term 0 as the sentinel', () => {
    const log = new RaftLog();
    expect(log.lastIndex()).toBe(0);
    expect(log.lastTerm()).toBe(0);
    expect(log.term(0)).toBe(0);
    expect(log.term(1)).toBeUndefined();
    expect(log.hasUnstableEntries()).toBe(false);
  });

  it('looks entries up by index and reports terms', () => {
    const log = logWithTerms([1, 1, 2, 3]);
    expect(log.lastIndex()).toBe(4);
    expect(log.lastTerm()).toBe(3);
    expect(log.term(3)).toBe(2);
    expect(log.entryAt(4).term).toBe(3);
    expect(log.matchTerm(2, 1)).toBe(true);
    expect(log.matchTerm(2, 2)).toBe(false);
  });

  it('leader append must extend the tail exactly', () => {
    const log = logWithTerms([1, 1]);
    expect(() => log.append([ent(4, 1)])).toThrow(RaftInvariantError);
    expect(() => log.append([ent(2, 1)])).toThrow(RaftInvariantError);
    expect(log.append([ent(3, 2), ent(4, 2)])).toBe(4);
  });

  it('rejects non-contiguous or term-decreasing batches', () => {
    const log = logWithTerms([1]);
    expect(() => log.append([ent(2, 1), ent(4, 1)])).toThrow(/contiguous/);
    expect(() => log.append([ent(2, 2), ent(3, 1)])).toThrow(/terms decrease/);
  });

  it('isUpToDate compares last term first, then length', () => {
    const log = logWithTerms([1, 2, 2]);
    expect(log.isUpToDate(3, 2)).toBe(true);
    expect(log.isUpToDate(2, 2)).toBe(false);
    expect(log.isUpToDate(1, 3)).toBe(true);
    expect(log.isUpToDate(10, 1)).toBe(false);
  });

  it('findConflict returns the first mismatching or new index', () => {
    const log = logWithTerms([1, 2, 3]);
    expect(log.findConflict([])).toBe(0);
    expect(log.findConflict([ent(1, 1), ent(2, 2)])).toBe(0);
    expect(log.findConflict([ent(2, 2), ent(3, 4)])).toBe(3);
    expect(log.findConflict([ent(3, 3), ent(4, 4)])).toBe(4);
  });

  it('findConflictByTerm skips back over entries with a larger term', () => {
    const log = logWithTerms([1, 1, 2, 2, 5, 5, 5]);
    expect(log.findConflictByTerm(7, 4)).toEqual([4, 2]);
    expect(log.findConflictByTerm(7, 1)).toEqual([2, 1]);
    expect(log.findConflictByTerm(7, 5)).toEqual([7, 5]);
    expect(log.findConflictByTerm(9, 5)).toEqual([9, 0]);
    expect(log.findConflictByTerm(7, 0)).toEqual([0, 0]);
  });

  it('maybeAppend truncates a conflicting suffix and advances commit', () => {
    const log = logWithTerms([1, 1, 2, 2]);
    expect(log.maybeAppend(2, 1, 3, [ent(3, 3), ent(4, 3), ent(5, 3)])).toBe(5);
    expect(terms(log.slice(1, 6, Infinity))).toEqual([1, 1, 3, 3, 3]);
    expect(log.committed).toBe(3);
  });

  it('maybeAppend commits at most the last new entry and ignores already-present entries', () => {
    const log = logWithTerms([1, 1, 1, 1]);
    expect(log.maybeAppend(1, 1, 10, [ent(2, 1)])).toBe(2);
    expect(log.committed).toBe(2);
    expect(log.lastIndex()).toBe(4); // a stale/duplicate append must not truncate matching entries
  });

  it('maybeAppend refuses when the previous entry does not match', () => {
    const log = logWithTerms([1, 1]);
    expect(log.maybeAppend(2, 2, 2, [ent(3, 2)])).toBe(-1);
    expect(log.maybeAppend(5, 1, 2, [])).toBe(-1);
    expect(log.committed).toBe(0);
  });

  it('never overwrites committed entries', () => {
    const log = logWithTerms([1, 1, 1]);
    log.commitTo(2);
    expect(() => log.maybeAppend(1, 1, 0, [ent(2, 2)])).toThrow(/committed/);
  });

  it('commitTo ignores stale values and throws beyond the last index', () => {
    const log = logWithTerms([1, 1]);
    log.commitTo(2);
    log.commitTo(1);
    expect(log.committed).toBe(2);
    expect(() => log.commitTo(3)).toThrow(/beyond last index/);
  });

  it('maybeCommit only commits entries of the given (current) term', () => {
    const log = logWithTerms([1, 2, 3]);
    expect(log.maybeCommit(2, 3)).toBe(false);
    expect(log.committed).toBe(0);
    expect(log.maybeCommit(3, 3)).toBe(true);
    expect(log.committed).toBe(3);
  });

  it('tracks the unstable suffix through stableTo, including overwrites', () => {
    const log = logWithTerms([1, 1, 1]);
    expect(terms(log.unstableEntries())).toEqual([1, 1, 1]);
    log.stableTo(3, 1);
    expect(log.hasUnstableEntries()).toBe(false);
    // A follower overwrite of durable entries makes them unstable again.
    log.maybeAppend(1, 1, 0, [ent(2, 2)]);
    expect(log.unstableEntries().map((e) => e.index)).toEqual([2]);
    // An acknowledgement for entries that were overwritten meanwhile is ignored.
    log.stableTo(3, 1);
    expect(log.hasUnstableEntries()).toBe(true);
    log.stableTo(2, 2);
    expect(log.hasUnstableEntries()).toBe(false);
  });

  it('slice batches by entry size (payload + ENTRY_OVERHEAD_BYTES) but always returns at least one entry', () => {
    const log = new RaftLog();
    log.append([ent(1, 1, 10), ent(2, 1, 10), ent(3, 1, 10), ent(4, 1, 100)]);
    expect(log.slice(1, 5, 2 * (10 + ENTRY_OVERHEAD_BYTES)).length).toBe(2);
    expect(log.slice(1, 5, 2 * (10 + ENTRY_OVERHEAD_BYTES) - 1).length).toBe(1);
    // Empty entries still count: a budget bounds a message's size on the wire, not only its payload.
    const empties = new RaftLog();
    empties.append([ent(1, 1, 0), ent(2, 1, 0), ent(3, 1, 0)]);
    expect(empties.slice(1, 4, 2 * ENTRY_OVERHEAD_BYTES).length).toBe(2);
    expect(log.slice(1, 5, 0).length).toBe(1);
    expect(log.slice(4, 5, 1).length).toBe(1);
    expect(log.slice(1, 5, Infinity).length).toBe(4);
    expect(() => log.slice(0, 2, 10)).toThrow(/out of bounds/);
  });

  it('hands out committed entries once and tracks applied', () => {
    const log = logWithTerms([1, 1, 1]);
    log.commitTo(2);
    expect(log.nextCommittedEntries().map((e) => e.index)).toEqual([1, 2]);
    log.appliedTo(2);
    expect(log.nextCommittedEntries()).toEqual([]);
    expect(() => log.appliedTo(3)).toThrow(/applied/);
  });

  it('restores from persisted state as fully stable, resuming after applied', () => {
    const entries = [ent(1, 1), ent(2, 1), ent(3, 2)];
    const log = new RaftLog({ hardState: { term: 2, vote: 1, commit: 3 }, entries, firstIndex: 1, applied: 1 });
    expect(log.hasUnstableEntries()).toBe(false);
    expect(log.nextCommittedEntries().map((e) => e.index)).toEqual([2, 3]);
    entries.length = 0; // the log must not alias the storage's array
    expect(log.lastIndex()).toBe(3);
  });

  it('rejects inconsistent persisted state', () => {
    const hs = { term: 1, vote: 0, commit: 5 };
    expect(() => new RaftLog({ hardState: hs, entries: [ent(1, 1)], firstIndex: 1, applied: 0 })).toThrow(/commit/);
    expect(() => new RaftLog({ hardState: { ...hs, commit: 1 }, entries: [ent(1, 1), ent(3, 1)], firstIndex: 1, applied: 0 })).toThrow(/contiguous/);
    expect(() => new RaftLog({ hardState: { ...hs, commit: 1 }, entries: [ent(1, 1)], firstIndex: 1, applied: 2 })).toThrow(/applied/);
  });
});

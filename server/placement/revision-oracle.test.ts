import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Rng } from '../raft/rng.ts';
import { type BatchResult, type RevisionGrant, RevisionOracle, isGrantCurrent } from './revision-oracle.ts';

function granted(result: BatchResult): readonly RevisionGrant[] {
  if (result.kind !== 'granted') throw new Error(`expected a grant, got ${JSON.stringify(result)}`);
  return result.grants;
}

describe('RevisionOracle', () => {
  it('persists a high-water mark before handing out anything above the old one', () => {
    const o = new RevisionOracle(100);
    o.becomeLeader(1, 0);
    expect(o.grant(5, 1)).toEqual({ kind: 'persist', highWater: 105, term: 1 });
    expect(o.grant(5, 1)).toEqual({ kind: 'pending', highWater: 105 }); // one persist in flight covers it
    o.highWaterCommitted(105, 1);
    expect(granted(o.grant(5, 1))).toEqual([{ requester: 'local', first: 1, last: 5, term: 1 }]);
    expect(granted(o.grant(100, 1))[0]).toMatchObject({ first: 6, last: 105 });
    expect(o.grant(1, 1)).toEqual({ kind: 'persist', highWater: 206, term: 1 });
  });

  it('hands one turn’s batch out as contiguous ranges in request order', () => {
    const o = new RevisionOracle(1000);
    o.becomeLeader(3, 40);
    o.highWaterCommitted(o.grant(1, 3).kind === 'persist' ? 1041 : 0, 3);
    const result = o.grantBatch([{ requester: 'shard-0', count: 3 }, { requester: 'shard-5', count: 1 }], 3);
    expect(granted(result)).toEqual([
      { requester: 'shard-0', first: 41, last: 43, term: 3 },
      { requester: 'shard-5', first: 44, last: 44, term: 3 },
    ]);
  });

  it('a new leader starts above the persisted mark: no repeats, a gap instead', () => {
    const a = new RevisionOracle(100);
    a.becomeLeader(1, 0);
    a.grant(10, 1);
    a.highWaterCommitted(110, 1);
    expect(granted(a.grant(10, 1))[0].last).toBe(10);
    const b = new RevisionOracle(100);
    b.observeTerm(1);
    b.becomeLeader(2, 110);
    const p = b.grant(1, 2);
    expect(p).toEqual({ kind: 'persist', highWater: 211, term: 2 });
    b.highWaterCommitted(211, 2);
    expect(granted(b.grant(1, 2))[0].first).toBe(111);
  });

  it('a deposed oracle does not answer, and consumers refuse grants of an old term', () => {
    const a = new RevisionOracle(100);
    a.becomeLeader(1, 0);
    a.grant(1, 1);
    a.highWaterCommitted(101, 1);
    const old = granted(a.grant(1, 1))[0];
    // a new leader was elected at term 2; a's next batch is confirmed (ReadIndex) at term 2
    expect(a.grant(1, 2)).toMatchObject({ kind: 'refused', reason: 'stale-term' });
    expect(a.isLeader).toBe(false);
    expect(a.grant(1, 2)).toMatchObject({ kind: 'refused', reason: 'not-leader' });
    expect(isGrantCurrent(old, 1)).toBe(true);
    expect(isGrantCurrent(old, 2)).toBe(false);
    // a mark committed in an older term never widens a newer leader's window
    const b = new RevisionOracle(100);
    b.becomeLeader(2, 101);
    b.highWaterCommitted(500, 1);
    expect(b.grant(1, 2).kind).toBe('persist');
  });

  it('refuses bad requests and bad transitions clearly', () => {
    const o = new RevisionOracle();
    expect(o.grant(1, 0)).toMatchObject({ kind: 'refused', reason: 'not-leader' });
    o.becomeLeader(1, 0);
    expect(o.grant(0, 1)).toMatchObject({ kind: 'refused', reason: 'bad-request' });
    expect(o.grant(1.5, 1)).toMatchObject({ kind: 'refused', reason: 'bad-request' });
    expect(() => o.becomeLeader(1, 0)).toThrow(/term must exceed 1/);
    expect(() => new RevisionOracle(-1)).toThrow(/window/);
  });
});

/**
 * A model of the metadata group around the oracles: terms, a Raft log of high-water entries that commit
 * later or are lost at a leader change, leader changes that deposed oracles learn about late, and crashes
 * that wipe an oracle's memory. Every grant a consumer accepts must be above every earlier one.
 */
function simulate(seed: number, steps: number): { grants: number; leaderChanges: number } {
  const rng = new Rng(seed);
  const members = 3;
  const window = 1 + rng.nextInt(50);
  let oracles = Array.from({ length: members }, () => new RevisionOracle(window));
  let term = 0;
  let leader = -1;
  let committedHighWater = 0;
  let pending: { highWater: number; term: number }[] = []; // proposed in the current term, not yet committed
  let lastAccepted = 0;
  let grants = 0;
  let leaderChanges = 0;

  const elect = () => {
    term++;
    leaderChanges++;
    // uncommitted entries either reached the new leader's log (and commit under it) or are lost
    const kept = pending.filter(() => rng.chance(0.5));
    const inLog = Math.max(committedHighWater, ...kept.map((p) => p.highWater));
    committedHighWater = inLog;
    pending = [];
    leader = rng.nextInt(members);
    oracles[leader].becomeLeader(term, inLog);
    for (let i = 0; i < members; i++) if (i !== leader && rng.chance(0.5)) oracles[i].observeTerm(term); // others learn late, or not at all
  };

  for (let step = 0; step < steps; step++) {
    const action = rng.nextInt(10);
    if (action < 5 || leader < 0) {
      if (leader < 0) {
        elect();
        continue;
      }
      // a batch of requests to a random oracle; the quorum confirms the true current term
      const asked = rng.nextInt(members);
      const requests = Array.from({ length: 1 + rng.nextInt(3) }, (_, i) => ({ requester: `s${i}`, count: 1 + rng.nextInt(20) }));
      const result = oracles[asked].grantBatch(requests, term);
      if (result.kind === 'persist') {
        expect(asked).toBe(leader);
        pending.push({ highWater: result.highWater, term: result.term });
      }
      if (result.kind === 'granted') {
        expect(asked).toBe(leader);
        for (const g of result.grants) {
          expect(isGrantCurrent(g, term)).toBe(true);
          expect(g.first).toBeGreaterThan(lastAccepted); // strictly increasing, never repeated
          expect(g.last).toBeGreaterThanOrEqual(g.first);
          expect(g.last).toBeLessThanOrEqual(committedHighWater); // only below a committed mark
          lastAccepted = g.last;
          grants++;
        }
      }
    } else if (action < 8) {
      // the oldest pending mark commits; every replica applies it
      const p = pending.shift();
      if (p) {
        committedHighWater = Math.max(committedHighWater, p.highWater);
        for (const o of oracles) o.highWaterCommitted(p.highWater, p.term);
      }
    } else if (action < 9) {
      elect();
    } else {
      // crash and restart a member: its oracle forgets everything; if it led, a new election follows later
      const victim = rng.nextInt(members);
      oracles = oracles.map((o, i) => (i === victim ? new RevisionOracle(window) : o));
      if (victim === leader) leader = -1;
    }
  }
  return { grants, leaderChanges };
}

describe('RevisionOracle under leader changes, lost proposals and crashes', () => {
  it('accepted revisions strictly increase and never repeat', () => {
    let totalGrants = 0;
    let totalChanges = 0;
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 }), (seed) => {
        const { grants, leaderChanges } = simulate(seed, 400);
        totalGrants += grants;
        totalChanges += leaderChanges;
      }),
      { numRuns: Number(process.env.PLACEMENT_RUNS ?? 80), seed: 5 },
    );
    expect(totalGrants).toBeGreaterThan(1000); // the model really exercises grants…
    expect(totalChanges).toBeGreaterThan(100); // …and leader changes
  });
});

// In-process: three real members (LevelDB, Raft) wired to each other through an in-memory sink. The
// leader's view of which members are running decides membership checks ("not enough started
// members"); it must not blink when check-quorum clears Raft's recentActive flags once per election
// timeout (it did: for a heartbeat after each check every follower looked inactive).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessMembers, type InProcessMembers } from '../../test/support/in-process-members.ts';

const GROUP = 1;
const IDS = [1, 2, 3];
const TICK_MS = 20;
const ELECTION_TICKS = 10;

let trio: InProcessMembers;

beforeAll(async () => {
  trio = await startInProcessMembers({ groupId: GROUP, ids: IDS, tickMs: TICK_MS, electionTimeoutTicks: ELECTION_TICKS, name: 'active' });
}, 20_000);

afterAll(async () => {
  await trio?.stop();
});

describe('Member.activeMembers', () => {
  it('counts every running member at every moment across several check-quorum rounds', async () => {
    const lead = await trio.leader();
    await new Promise((r) => setTimeout(r, TICK_MS * ELECTION_TICKS)); // everyone has answered once
    const short: number[][] = [];
    const endMs = Date.now() + 4 * TICK_MS * ELECTION_TICKS;
    let samples = 0;
    while (Date.now() < endMs) {
      const active = lead.activeMembers(GROUP);
      samples++;
      if (active.length !== IDS.length) short.push(active);
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(samples).toBeGreaterThan(100);
    expect(short).toEqual([]);
  });

  it('stops counting a member that has not been heard from for an election timeout', async () => {
    const lead = await trio.leader();
    const follower = [...trio.members.entries()].find(([, m]) => m !== lead)!;
    await trio.stopMember(follower[0]);
    await new Promise((r) => setTimeout(r, 3 * TICK_MS * ELECTION_TICKS));
    expect(lead.activeMembers(GROUP).sort()).toEqual(IDS.filter((id) => id !== follower[0]).sort());
  });
});

describe('Member.activeMembers with quiescence (as on a sharded member)', () => {
  let quiet: InProcessMembers;

  beforeAll(async () => {
    quiet = await startInProcessMembers({ groupId: GROUP, ids: IDS, tickMs: TICK_MS, electionTimeoutTicks: ELECTION_TICKS, name: 'active-quiet', quiesce: true });
  }, 20_000);

  afterAll(async () => {
    await quiet?.stop();
  });

  it('counts every running member of an idle, quiesced group, and stops counting one that stopped', async () => {
    const lead = await quiet.leader();
    // An idle group quiesces: it stops ticking, so check-quorum no longer clears Raft's recentActive, and
    // only the members' liveness messages say who runs (they did not count before: a member killed while
    // its group was quiesced stayed "started" for good, and a removal that left shards without a quorum
    // of running voters passed etcd's check).
    await new Promise((r) => setTimeout(r, 4 * TICK_MS * ELECTION_TICKS));
    expect(lead.isQuiesced(GROUP)).toBe(true);
    expect(lead.activeMembers(GROUP).sort()).toEqual([...IDS].sort());
    const follower = [...quiet.members.entries()].find(([, m]) => m !== lead)!;
    await quiet.stopMember(follower[0]);
    await new Promise((r) => setTimeout(r, 3 * TICK_MS * ELECTION_TICKS));
    expect(lead.activeMembers(GROUP).sort()).toEqual(IDS.filter((id) => id !== follower[0]).sort());
  });
});

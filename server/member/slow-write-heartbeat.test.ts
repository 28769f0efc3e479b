// In-process: three real members (LevelDB, Raft) through an in-memory sink. A turn waits for its batch
// write; a leader whose fsync stalls (a busy shared disk) must still be heard by its followers, or they
// elect another leader though the old one's event loop is idle (issue 13, item 2: a 1 GiB fill moved
// leadership while no request held the loop). The leader's store is stalled for 4 election timeouts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemberDb, type TurnBatch } from '../storage/member-db.ts';
import type { MemberStore } from '../storage/member-store.ts';
import type { Member } from './member.ts';
import { startInProcessMembers, type InProcessMembers } from '../../test/support/in-process-members.ts';
import { encodeInternalRequest } from '../shard/request-codec.ts';

const GROUP = 1;
const IDS = [1, 2, 3];
const TICK_MS = 20;
const ELECTION_TICKS = 10;

/** MemberDb whose writes can be held back (as a stalled fsync holds them). */
class StallableStore {
  stalled: Promise<void> | null = null;
  readonly db: MemberDb;
  constructor(db: MemberDb) {
    this.db = db;
  }
  async write(batch: TurnBatch, sync: boolean): Promise<void> {
    if (this.stalled) await this.stalled;
    return this.db.write(batch, sync);
  }
}

const stores = new Map<number, StallableStore>();
let trio: InProcessMembers;
let members: Map<number, Member>;

beforeAll(async () => {
  trio = await startInProcessMembers({
    groupId: GROUP,
    ids: IDS,
    tickMs: TICK_MS,
    electionTimeoutTicks: ELECTION_TICKS,
    name: 'slow-write',
    storeFor: (id, db) => {
      const stallable = new StallableStore(db);
      stores.set(id, stallable);
      const store: MemberStore = {
        loadGroup: (g) => db.loadGroup(g),
        stateRecords: (g, snap) => db.stateRecords(g, snap),
        snapshot: () => db.snapshot(),
        clearState: (g) => db.clearState(g),
        clearLogThrough: (g, i) => db.clearLogThrough(g, i),
        dropGroup: (g, last) => db.dropGroup(g, last),
        storedGroupIds: () => db.storedGroupIds(),
        write: (batch, sync) => stallable.write(batch, sync),
      };
      return store;
    },
  });
  members = trio.members;
}, 20_000);

afterAll(async () => {
  for (const s of stores.values()) s.stalled = null;
  await trio?.stop();
});

async function leaderId(): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    for (const [id, m] of members) if (m.role(GROUP) === 'leader') return id;
    if (Date.now() > deadline) throw new Error('no leader');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('a leader whose batch write stalls', () => {
  it('keeps its followers hearing from it, and its leadership', async () => {
    const lead = await leaderId();
    await new Promise((r) => setTimeout(r, TICK_MS * ELECTION_TICKS));
    const followers = IDS.filter((id) => id !== lead);
    for (const id of followers) members.get(id)!.takeLeaderGapMaxMs();
    let release!: () => void;
    stores.get(lead)!.stalled = new Promise<void>((resolve) => (release = resolve));
    // A write the leader must persist: its next turn's batch now waits on the stalled store.
    const put = { put: { key: Buffer.from('k'), value: Buffer.from('v') } };
    members.get(lead)!.propose(GROUP, encodeInternalRequest({ proposer: '0', seq: '1', ...put } as Parameters<typeof encodeInternalRequest>[0]));
    await new Promise((r) => setTimeout(r, 4 * TICK_MS * ELECTION_TICKS));
    const gaps = followers.map((id) => members.get(id)!.takeLeaderGapMaxMs());
    const leadersSeen = followers.map((id) => members.get(id)!.leaderId(GROUP));
    release();
    stores.get(lead)!.stalled = null;
    expect(leadersSeen).toEqual([lead, lead]);
    expect(Math.max(...gaps)).toBeLessThan((TICK_MS * ELECTION_TICKS) / 2);
    expect(members.get(lead)!.role(GROUP)).toBe('leader');
  }, 30_000);
});

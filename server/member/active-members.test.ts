// In-process: three real members (LevelDB, Raft) wired to each other through an in-memory sink. The
// leader's view of which members are running decides membership checks ("not enough started
// members"); it must not blink when check-quorum clears Raft's recentActive flags once per election
// timeout (it did: for a heartbeat after each check every follower looked inactive).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { MemberDb } from '../storage/member-db.ts';
import { Member } from './member.ts';
import { KvStateMachine } from '../shard/kv-state-machine.ts';
import type { Message } from '../raft/types.ts';

const GROUP = 1;
const IDS = [1, 2, 3];
const TICK_MS = 20;
const ELECTION_TICKS = 10;
const logger = pino({ level: 'silent' });

let dir: string;
const dbs: MemberDb[] = [];
const members = new Map<number, Member>();

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-active-'));
  const peers = IDS.map((id) => ({ id, peerUrls: [`http://127.0.0.1:${id}`], isLearner: false }));
  for (const id of IDS) {
    const db = await MemberDb.open(path.join(dir, `db${id}`));
    dbs.push(db);
    const member = new Member({ memberId: id, db, tickMs: TICK_MS, electionTimeoutTicks: ELECTION_TICKS, heartbeatTicks: 1, logger, snapshotDir: path.join(dir, `snap${id}`), snapshotCount: 10_000 });
    member.addGroup({ groupId: GROUP, voters: IDS, stateMachine: new KvStateMachine(id, [], peers), loaded: await db.loadGroup(GROUP), randomSeed: id });
    members.set(id, member);
  }
  for (const member of members.values()) {
    let queued: Message[] = [];
    member.setSink({
      send: (_groupId, m) => void queued.push(m),
      flush: () => {
        const out = queued;
        queued = [];
        // Delivered on a later turn, as a network would.
        setImmediate(() => {
          for (const m of out) members.get(m.to)?.step([{ groupId: GROUP, message: m }]);
        });
      },
    });
  }
  for (const member of members.values()) member.start();
}, 20_000);

afterAll(async () => {
  for (const member of members.values()) await member.stop();
  for (const db of dbs) await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function leader(): Promise<Member> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    for (const m of members.values()) if (m.role(GROUP) === 'leader') return m;
    if (Date.now() > deadline) throw new Error('no leader');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Member.activeMembers', () => {
  it('counts every running member at every moment across several check-quorum rounds', async () => {
    const lead = await leader();
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
    const lead = await leader();
    const follower = [...members.entries()].find(([, m]) => m !== lead)!;
    await follower[1].stop();
    members.delete(follower[0]);
    await new Promise((r) => setTimeout(r, 3 * TICK_MS * ELECTION_TICKS));
    expect(lead.activeMembers(GROUP).sort()).toEqual(IDS.filter((id) => id !== follower[0]).sort());
  });
});

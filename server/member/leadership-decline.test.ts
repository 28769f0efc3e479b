// In-process: three real members (LevelDB, Raft) wired through an in-memory sink. A member that has
// handed its leaderships over before it stops (TransferLeaderships) declines handovers for a while: a
// leader's transfer to it runs out and the leader leads on; once the decline ends, a handover works
// again; and an election still may pick it (only handovers are declined).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { MemberDb } from '../storage/member-db.ts';
import { DeadlineError, Member, NotLeaderError } from './member.ts';
import { KvStateMachine } from '../shard/kv-state-machine.ts';
import type { Message } from '../raft/types.ts';

const GROUP = 1;
const IDS = [1, 2, 3];
const TICK_MS = 20;
// Elections every 500 ms at the earliest: a busy machine must not depose the leader mid-test.
const ELECTION_TICKS = 25;
const logger = pino({ level: 'silent' });

let dir: string;
const dbs: MemberDb[] = [];
const members = new Map<number, Member>();

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-decline-'));
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

/**
 * A handover from the current leader to another member: the leader, the target, and how the transfer
 * ended. An election between finding the leader and asking it (it is no longer leader) is tried again.
 */
async function handOver(prepare: (target: Member) => void, timeoutMs: number): Promise<{ lead: Member; target: Member; error: unknown }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error('no leader stayed leader long enough to be asked');
    const lead = await leader();
    const [targetId, target] = [...members.entries()].find(([, m]) => m !== lead)!;
    prepare(target);
    try {
      await lead.transferLeadership(GROUP, targetId, timeoutMs);
      return { lead, target, error: null };
    } catch (error) {
      // Deposed meanwhile (or its role not yet caught up with Raft's): after the next turn, again.
      if (error instanceof NotLeaderError) {
        await new Promise((r) => setTimeout(r, TICK_MS));
        continue;
      }
      return { lead, target, error };
    }
  }
}

describe('Member.declineLeadershipHandovers', () => {
  it('a declining member is not handed the leadership; the leader leads on', async () => {
    const { lead, target, error } = await handOver((m) => m.declineLeadershipHandovers(60_000), 2 * TICK_MS * ELECTION_TICKS);
    expect(error).toBeInstanceOf(DeadlineError);
    // The transfer ran out (one election timeout) and the old leader took proposals again.
    const deadline = Date.now() + 5_000;
    while (lead.role(GROUP) !== 'leader' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(lead.role(GROUP)).toBe('leader');
    expect(target.role(GROUP)).not.toBe('leader');
  });

  it('once the decline ends, the same handover completes', async () => {
    for (const m of members.values()) m.declineLeadershipHandovers(0);
    const { target, error } = await handOver(() => {}, 5_000);
    expect(error).toBeNull();
    expect(target.role(GROUP)).toBe('leader');
  });
});

// Member.unappliedConfChangeNames: what a replica's log holds past its applied index, on a group loaded
// from a real MemberDb with entries appended but not yet applied (as after a restart, or on a replica
// removed from its group while the leader's appends past its removal were on their way to it).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeConfChange } from '../raft/conf-change.ts';
import type { ConfChange, Entry } from '../raft/types.ts';
import { MemberDb, TurnBatch } from '../storage/member-db.ts';
import { Member } from './member.ts';
import { RecordingStateMachine } from './runtime-groups-harness.ts';

const GROUP = 2;
let dir: string;
let db: MemberDb;

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-unapplied-conf-'));
  db = await MemberDb.open(path.join(dir, 'db'));
});

afterEach(async () => {
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const conf = (index: number, change: ConfChange): Entry => ({ term: 1, index, type: 'confChange', data: encodeConfChange(change) });
const write = (index: number): Entry => ({ term: 1, index, type: 'normal', data: Buffer.from(`k${index}`) });

/** Member 3's replica of GROUP, with `entries` in its log and `applied` of them applied (membership 1, 2, 3 before any). */
async function replicaWith(entries: Entry[], applied: number): Promise<Member> {
  const batch = new TurnBatch();
  batch.appendEntries(GROUP, entries, 0);
  batch.setHardState(GROUP, { term: 1, vote: 1, commit: applied });
  batch.setApplied(GROUP, applied);
  await db.write(batch, true);
  const member = new Member({ memberId: 3, db, snapshotDir: path.join(dir, 'snap'), logger: pino({ level: 'silent' }), tickMs: 1_000, electionTimeoutTicks: 10, heartbeatTicks: 1, snapshotCount: 10_000 });
  member.addGroup({ groupId: GROUP, voters: [1, 2, 3], stateMachine: new RecordingStateMachine(), loaded: await db.loadGroup(GROUP), randomSeed: 1 });
  return member;
}

describe('Member.unappliedConfChangeNames', () => {
  it('finds a membership change naming the member among the entries past applied, and only there', async () => {
    const member = await replicaWith([write(1), conf(2, { type: 'removeNode', nodeId: 3 }), write(3), conf(4, { type: 'addLearner', nodeId: 3 }), write(5)], 2);
    expect(member.status(GROUP)).toMatchObject({ applied: 2, lastIndex: 5 });
    expect(member.unappliedConfChangeNames(GROUP, 3)).toBe(true); // index 4 adds it back
    expect(member.unappliedConfChangeNames(GROUP, 4)).toBe(false);
  });

  it('a removed replica whose unapplied entries are writes and other members\' changes: none names it', async () => {
    const member = await replicaWith([write(1), conf(2, { type: 'removeNode', nodeId: 3 }), write(3), conf(4, { type: 'removeNode', nodeId: 2 }), write(5)], 2);
    expect(member.unappliedConfChangeNames(GROUP, 3)).toBe(false);
    expect(member.unappliedConfChangeNames(GROUP, 2)).toBe(true);
  });

  it('looks at nothing once everything is applied', async () => {
    const member = await replicaWith([write(1), conf(2, { type: 'addLearner', nodeId: 3 })], 2);
    expect(member.unappliedConfChangeNames(GROUP, 3)).toBe(false);
  });
});

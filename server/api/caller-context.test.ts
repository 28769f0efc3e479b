// In-process: one real member (LevelDB, Raft, the KV state machine) to check that the caller a
// request runs as is stamped on its log entry and decided at apply time, and that it never leaks into
// the member loop the request woke (apply callbacks and the server's own proposals carry no caller).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { MemberDb } from '../storage/member-db.ts';
import { Member } from '../member/member.ts';
import { KvStateMachine } from '../shard/kv-state-machine.ts';
import { ApiContext, DATA_GROUP_ID, DEFAULT_LIMITS } from './context.ts';
import { currentCaller, runAsCaller } from './caller-context.ts';
import { SCRYPT_HASHING, hashPassword } from '../auth/password.ts';

let dir: string;
let db: MemberDb;
let member: Member;
let ctx: ApiContext;
const logger = pino({ level: 'silent' });
const put = (key: string): { put: { key: Buffer; value: Buffer; lease: string; prev_kv: boolean; ignore_value: boolean; ignore_lease: boolean } } => ({
  put: { key: Buffer.from(key), value: Buffer.from('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false },
});

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-caller-'));
  db = await MemberDb.open(path.join(dir, 'db'));
  const sm = new KvStateMachine(1, [], [{ id: 1, peerUrls: ['http://127.0.0.1:1'], isLearner: false }]);
  member = new Member({ memberId: 1, db, tickMs: 1_000, electionTimeoutTicks: 5, heartbeatTicks: 1, logger, snapshotDir: path.join(dir, 'snap'), snapshotCount: 10_000 });
  member.addGroup({ groupId: DATA_GROUP_ID, voters: [1], stateMachine: sm, loaded: await db.loadGroup(DATA_GROUP_ID), randomSeed: 1 });
  member.setSink({ send: () => undefined, flush: () => undefined });
  member.start();
  ctx = new ApiContext({ member, sm, clusterId: '1', limits: DEFAULT_LIMITS, logger, members: () => [] });
  const deadline = Date.now() + 5_000;
  while (member.status(DATA_GROUP_ID).role !== 'leader') {
    if (Date.now() > deadline) throw new Error('no leader');
    await new Promise((r) => setTimeout(r, 10));
  }
});

afterAll(async () => {
  await member?.stop();
  await db?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('request callers and the member loop', () => {
  it('stamps the caller on entries, decides at apply time, and keeps it out of the loop', async () => {
    // Set up auth as the server would apply it: root with the root role, then auth on.
    await ctx.proposeWrite({ auth_user_add: { name: 'root', password: '', options: { no_password: false }, hashedPassword: await hashPassword('pw', SCRYPT_HASHING) } });
    await ctx.proposeWrite({ auth_user_grant_role: { user: 'root', role: 'root' } });
    await ctx.proposeWrite({ auth_enable: { token_secret: Buffer.alloc(32, 9) } });
    expect(ctx.sm.auth.enabled).toBe(true);

    // Record the scope every apply runs in (the member loop's, whichever request woke it).
    const seenInApply: Array<string | undefined> = [];
    const apply = ctx.sm.apply.bind(ctx.sm);
    ctx.sm.apply = (entry) => {
      seenInApply.push(currentCaller()?.username);
      apply(entry);
    };

    // Each proposal below finds the member idle (ticks are 1 s apart), so the request itself wakes the
    // turn that applies it.
    const idle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));
    // A stranger is refused by the apply-time check; nothing is written.
    await idle();
    await expect(runAsCaller({ username: 'mallory' }, () => ctx.proposeWrite(put('k1')))).rejects.toMatchObject({ code: 7, details: 'etcdserver: permission denied' });
    await idle();
    await expect(runAsCaller({ username: '' }, () => ctx.proposeWrite(put('k1')))).rejects.toMatchObject({ code: 3, details: 'etcdserver: user name is empty' });
    // root is allowed; the server's own writes (no caller) are not checked.
    await idle();
    await runAsCaller({ username: 'root' }, () => ctx.proposeWrite(put('k2')));
    await idle();
    await ctx.proposeWrite(put('k3'));
    expect(ctx.sm.store.currentRevision()).toBe(3); // k2 and k3 only (revision 1 is the empty store)

    // Four entries were applied in turns that requests woke; none ran as that request's caller.
    expect(seenInApply).toEqual([undefined, undefined, undefined, undefined]);
  });
});

// Real members in one process, for tests of Member behaviour that need real Raft ticks but no processes:
// LevelDB on disk, Raft, a KV state machine, one group, wired to each other through an in-memory sink that
// delivers a turn's messages on a later turn, as a network would.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { MemberDb } from '../../server/storage/member-db.ts';
import type { MemberStore } from '../../server/storage/member-store.ts';
import { Member } from '../../server/member/member.ts';
import { KvStateMachine } from '../../server/shard/kv-state-machine.ts';
import type { Message, NodeId } from '../../server/raft/types.ts';

export interface InProcessMembersOptions {
  readonly groupId: number;
  readonly ids: readonly NodeId[];
  readonly tickMs: number;
  readonly electionTimeoutTicks: number;
  /** Names the temp dir (`synod-<name>-`). */
  readonly name: string;
  /** The store a member writes through (default: its MemberDb itself). */
  readonly storeFor?: (id: NodeId, db: MemberDb) => MemberStore;
  /** Whether a message is delivered (default: every one): a test's partitions. */
  readonly deliver?: (m: Message) => boolean;
  /** Idle groups quiesce, and members send each other liveness messages instead (as sharded members do). */
  readonly quiesce?: boolean;
  /** The apply rules each member's sink says a peer implements (MessageSink.peerApplyRules; default: every member this build). */
  readonly peerApplyRules?: (id: NodeId) => number;
  /** Whether each member's sink has heard a peer's hello (MessageSink.peerHasSaidHello; default: not modelled). */
  readonly peerHasSaidHello?: (id: NodeId) => boolean;
  /** Whether member `from`'s stream to member `to` is up (MessageSink.isConnected; default: not modelled). */
  readonly isConnected?: (from: NodeId, to: NodeId) => boolean;
}

export interface InProcessMembers {
  /** Running members by id; `stopMember` takes one out. */
  readonly members: Map<NodeId, Member>;
  /** Each member's state machine of the group. */
  readonly stateMachines: Map<NodeId, KvStateMachine>;
  /** The member leading the group now (waits up to 10 s for one). */
  leader(): Promise<Member>;
  stopMember(id: NodeId): Promise<void>;
  /** Stops every member, closes the databases, removes the temp dir. */
  stop(): Promise<void>;
}

export async function startInProcessMembers(opts: InProcessMembersOptions): Promise<InProcessMembers> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `synod-${opts.name}-`));
  const logger = pino({ level: 'silent' });
  const dbs: MemberDb[] = [];
  const members = new Map<NodeId, Member>();
  const stateMachines = new Map<NodeId, KvStateMachine>();
  const peers = opts.ids.map((id) => ({ id, peerUrls: [`http://127.0.0.1:${id}`], isLearner: false }));
  for (const id of opts.ids) {
    const db = await MemberDb.open(path.join(dir, `db${id}`));
    dbs.push(db);
    const member = new Member({
      memberId: id,
      db: opts.storeFor?.(id, db) ?? db,
      tickMs: opts.tickMs,
      electionTimeoutTicks: opts.electionTimeoutTicks,
      heartbeatTicks: 1,
      logger,
      snapshotDir: path.join(dir, `snap${id}`),
      snapshotCount: 10_000,
      quiesce: opts.quiesce ?? false,
    });
    const sm = new KvStateMachine(id, [], peers);
    member.addGroup({ groupId: opts.groupId, voters: [...opts.ids], stateMachine: sm, loaded: await db.loadGroup(opts.groupId), randomSeed: id });
    members.set(id, member);
    stateMachines.set(id, sm);
  }
  for (const member of members.values()) {
    let queued: Array<{ groupId: number; message: Message }> = [];
    member.setSink({
      ...(opts.peerApplyRules !== undefined ? { peerApplyRules: opts.peerApplyRules } : {}),
      ...(opts.peerHasSaidHello !== undefined ? { peerHasSaidHello: opts.peerHasSaidHello } : {}),
      ...(opts.isConnected !== undefined ? { isConnected: (to: NodeId) => opts.isConnected!(member.memberId, to) } : {}),
      send: (groupId, message) => void queued.push({ groupId, message }),
      flush: () => {
        const out = queued;
        queued = [];
        setImmediate(() => {
          for (const q of out) if (opts.deliver?.(q.message) ?? true) members.get(q.message.to)?.step([q]);
        });
      },
    });
  }
  for (const member of members.values()) member.start();
  return {
    members,
    stateMachines,
    async leader(): Promise<Member> {
      const deadline = Date.now() + 10_000;
      for (;;) {
        for (const m of members.values()) if (m.role(opts.groupId) === 'leader') return m;
        if (Date.now() > deadline) throw new Error('no leader');
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stopMember(id: NodeId): Promise<void> {
      await members.get(id)?.stop();
      members.delete(id);
    },
    async stop(): Promise<void> {
      for (const member of members.values()) await member.stop();
      for (const db of dbs) await db.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

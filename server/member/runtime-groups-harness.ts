// Test harness for groups hosted and dropped at runtime (runtime-groups.test.ts): real members on real
// LevelDB directories, wired by an in-process network that delivers Raft messages on a later turn and
// carries 'snap' messages as the peer transport does (the sender's snapshotChunks stream into a
// SnapshotFileWriter in the receiver's snapshot directory; the verified file goes to receiveSnapshot,
// and the sender hears 'finish' or 'failure'). A small recording state machine stands in for the KV
// one: each entry's payload is a key, stored with the entry's index as its value.
import path from 'node:path';
import pino from 'pino';
import { ClassicLevel } from 'classic-level';
import { MemberDb } from '../storage/member-db.ts';
import type { TurnBatch } from '../storage/member-db.ts';
import type { MemberStore } from '../storage/member-store.ts';
import { SnapshotFileWriter } from '../storage/snapshot-file.ts';
import type { ConfChange, ConfState, Entry, Message, NodeId } from '../raft/types.ts';
import { Member, type GroupStateMachine, type MemberOptions } from './member.ts';

export const logger = pino({ level: 'silent' });

/** Keys are the entries' payloads; values their log indexes. Waiters settle when their key is applied. */
export class RecordingStateMachine implements GroupStateMachine {
  readonly records = new Map<string, string>();
  private ops: Array<{ key: Buffer; value: Buffer | null }> = [];
  private readonly waiters = new Map<string, { resolve: () => void; reject: (err: Error) => void }>();

  constructor(records: Array<[Buffer, Buffer]> = []) {
    for (const [key, value] of records) this.records.set(key.toString(), value.toString());
  }

  apply(entry: Entry): void {
    const key = Buffer.from(entry.data).toString();
    const value = String(entry.index);
    this.records.set(key, value);
    this.ops.push({ key: Buffer.from(key), value: Buffer.from(value) });
    const w = this.waiters.get(key);
    if (w) {
      this.waiters.delete(key);
      w.resolve();
    }
  }

  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }> {
    const ops = this.ops;
    this.ops = [];
    return ops;
  }

  applyConfChange(): void {}

  restore(records: Array<[Buffer, Buffer]>): void {
    this.records.clear();
    this.ops = [];
    for (const [key, value] of records) this.records.set(key.toString(), value.toString());
  }

  failAll(err: Error): void {
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
  }

  /** Settles when `key` is applied here, or fails with failAll's error. */
  whenApplied(key: string): Promise<void> {
    return new Promise((resolve, reject) => this.waiters.set(key, { resolve, reject }));
  }
}

/** MemberDb whose batch writes can be held back, as a slow fsync holds them; it records what it holds. */
export class StallableStore implements MemberStore {
  readonly db: MemberDb;
  private gate: Promise<void> | null = null;
  private open: (() => void) | null = null;
  /** Batches issued while stalled and not written yet. */
  readonly held: TurnBatch[] = [];

  constructor(db: MemberDb) {
    this.db = db;
  }

  stall(): void {
    this.gate = new Promise<void>((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open?.();
    this.gate = null;
    this.open = null;
  }

  async write(batch: TurnBatch, sync: boolean): Promise<void> {
    if (this.gate) {
      this.held.push(batch);
      await this.gate;
      this.held.splice(this.held.indexOf(batch), 1);
    }
    return this.db.write(batch, sync);
  }

  loadGroup: MemberStore['loadGroup'] = (g) => this.db.loadGroup(g);
  stateRecords: MemberStore['stateRecords'] = (g, snap) => this.db.stateRecords(g, snap);
  snapshot: MemberStore['snapshot'] = () => this.db.snapshot();
  clearState: MemberStore['clearState'] = (g) => this.db.clearState(g);
  clearLogThrough: MemberStore['clearLogThrough'] = (g, i) => this.db.clearLogThrough(g, i);
  dropGroup: MemberStore['dropGroup'] = (g, last) => this.db.dropGroup(g, last);
  storedGroupIds: MemberStore['storedGroupIds'] = () => this.db.storedGroupIds();
}

/** Every key of the LevelDB at `dir` in [gte, lt) (the database must be closed). */
export async function scanKeys(dir: string, range: { gte: Buffer; lt: Buffer }): Promise<Buffer[]> {
  const raw = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await raw.open();
  try {
    const keys: Buffer[] = [];
    for await (const key of raw.keys(range)) keys.push(key);
    return keys;
  } finally {
    await raw.close();
  }
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A running member of the in-process network. */
export interface Node {
  id: NodeId;
  member: Member;
  db: MemberDb;
  dbDir: string;
  snapshotDir: string;
  /** The state machine of each group it hosts. */
  sms: Map<number, RecordingStateMachine>;
}

export class InProcessNetwork {
  readonly nodes = new Map<NodeId, Node>();
  snapshotsDelivered = 0;
  private readonly root: string;
  private readonly memberOptions: Omit<MemberOptions, 'memberId' | 'db' | 'snapshotDir' | 'logger'>;

  constructor(root: string, memberOptions: Omit<MemberOptions, 'memberId' | 'db' | 'snapshotDir' | 'logger'>) {
    this.root = root;
    this.memberOptions = memberOptions;
  }

  /** Opens (or reopens) member `id`'s database, hosts `groups` ({groupId: bootstrap voters}) and starts it. */
  async startNode(id: NodeId, groups: Record<number, NodeId[]>, store?: (db: MemberDb) => MemberStore): Promise<Node> {
    const dbDir = path.join(this.root, `db${id}`);
    const snapshotDir = path.join(this.root, `snap${id}`);
    const db = await MemberDb.open(dbDir);
    const member = new Member({ ...this.memberOptions, memberId: id, db: store ? store(db) : db, snapshotDir, logger });
    const node: Node = { id, member, db, dbDir, snapshotDir, sms: new Map() };
    for (const [groupId, voters] of Object.entries(groups)) await this.host(node, Number(groupId), voters);
    member.setSink(this.sinkOf(id));
    this.nodes.set(id, node);
    member.start();
    return node;
  }

  /** Hosts a group on a node (before or after it started): loads it from the node's store. */
  async host(node: Node, groupId: number, voters: NodeId[]): Promise<RecordingStateMachine> {
    const loaded = await Member.recoverSnapshot(node.db, groupId, node.snapshotDir, await node.db.loadGroup(groupId), logger);
    const sm = new RecordingStateMachine(loaded.stateRecords);
    loaded.stateRecords = [];
    node.member.addGroup({ groupId, voters, stateMachine: sm, loaded, randomSeed: node.id * 7919 + groupId });
    node.sms.set(groupId, sm);
    return sm;
  }

  async stopNode(id: NodeId): Promise<void> {
    const node = this.nodes.get(id);
    if (!node) return;
    this.nodes.delete(id);
    await node.member.stop();
    await node.db.close();
  }

  async stopAll(): Promise<void> {
    for (const id of [...this.nodes.keys()]) await this.stopNode(id);
  }

  /** The member leading `groupId` among the running nodes hosting it. */
  async leaderOf(groupId: number): Promise<Node> {
    let found: Node | undefined;
    await waitFor(`a leader of group ${groupId}`, () => {
      found = [...this.nodes.values()].find((n) => n.member.groupIds().includes(groupId) && n.member.role(groupId) === 'leader' && n.member.leaderId(groupId) === n.id);
      return found !== undefined;
    });
    return found!;
  }

  /** Proposes `key` to the group at its leader; resolves once the leader applied it. */
  async put(groupId: number, key: string): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const lead = await this.leaderOf(groupId);
      const applied = lead.sms.get(groupId)!.whenApplied(key);
      try {
        lead.member.propose(groupId, Buffer.from(key));
        await Promise.race([applied, new Promise((_, reject) => setTimeout(() => reject(new Error(`put ${key} timed out`)), 2_000))]);
        return;
      } catch (err) {
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /**
   * Proposes a membership change at the group's leader (retried while an earlier one applies); resolves
   * once `applied` holds of the membership that leader applied (null once it no longer hosts the group).
   */
  async changeMembership(groupId: number, change: ConfChange, applied: (cs: ConfState | null) => boolean): Promise<void> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const lead = await this.leaderOf(groupId);
      try {
        lead.member.proposeConfChange(groupId, change);
      } catch (err) {
        if (!(err instanceof Error) || !/ConfChangeInProgress|NoLeader|ProposalDropped/.test(err.name)) throw err;
      }
      try {
        await waitFor(`membership change ${change.type} ${change.nodeId}`, () => applied(lead.member.groupIds().includes(groupId) ? lead.member.confState(groupId) : null), 1_500);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
      }
    }
  }

  private sinkOf(from: NodeId): { send: (groupId: number, m: Message) => void; flush: () => void } {
    let queued: Array<{ groupId: number; message: Message }> = [];
    return {
      send: (groupId, message) => void queued.push({ groupId, message }),
      flush: () => {
        const out = queued;
        queued = [];
        // Delivered on a later turn, as a network would; lost if the receiver is down.
        setImmediate(() => {
          for (const { groupId, message } of out) {
            if (message.type === 'snap') void this.transferSnapshot(from, groupId, message);
            else this.nodes.get(message.to)?.member.step([{ groupId, message }]);
          }
        });
      },
    };
  }

  private async transferSnapshot(from: NodeId, groupId: number, message: Message): Promise<void> {
    const sender = this.nodes.get(from);
    const receiver = this.nodes.get(message.to);
    if (!sender) return;
    let writer: SnapshotFileWriter | null = null;
    try {
      if (!receiver) throw new Error('receiver down');
      writer = new SnapshotFileWriter(receiver.snapshotDir);
      for await (const chunk of sender.member.snapshotChunks(groupId, message.snapshot?.index ?? 0)) writer.write(chunk);
      const file = writer.finish();
      writer = null;
      receiver.member.receiveSnapshot(groupId, message, file.path);
      this.snapshotsDelivered++;
      sender.member.reportSnapshot(groupId, message.to, 'finish');
    } catch {
      writer?.abort();
      if (this.nodes.get(from) === sender) sender.member.reportSnapshot(groupId, message.to, 'failure');
    }
  }
}

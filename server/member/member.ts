// The member: hosts every Raft group of this process and drives them with one loop. Each event-loop
// turn collects the Ready of every group, writes all their entries, hard states and applied state as
// ONE synced LevelDB batch (group commit), then sends the messages, applies committed entries and
// answers ReadIndex waiters. Nothing leaves before the batch it depends on is on disk.
import type { Logger } from 'pino';
import { RawNode } from '../raft/raw-node.ts';
import type { Entry, Message, NodeId, Ready, Role } from '../raft/types.ts';
import type { LoadedGroup, MemberDb } from '../storage/member-db.ts';
import { TurnBatch } from '../storage/member-db.ts';

/** What a Raft group's replicated state machine must offer the member. */
export interface GroupStateMachine {
  /** Applies one committed entry. Entries arrive once each, in index order. */
  apply(entry: Entry): void;
  /** Durable changes since the last call (store-relative keys), written with the applied index. */
  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }>;
}

/** Where outgoing Raft messages go; PeerTransport implements it, tests may stub the network. */
export interface MessageSink {
  send(groupId: number, message: Message): void;
  flush(): void;
}

export class NoLeaderError extends Error {
  constructor() {
    super('no leader');
    this.name = 'NoLeaderError';
  }
}

export class NotLeaderError extends Error {
  constructor() {
    super('not leader');
    this.name = 'NotLeaderError';
  }
}

export class BadTransfereeError extends Error {
  constructor() {
    super('bad leader transferee');
    this.name = 'BadTransfereeError';
  }
}

export class DeadlineError extends Error {
  constructor(what: string) {
    super(`${what} timed out`);
    this.name = 'DeadlineError';
  }
}

interface ReadWaiter {
  resolve: () => void;
  reject: (err: Error) => void;
  deadlineMs: number;
}

interface ReadRound {
  ctx: Buffer;
  waiters: ReadWaiter[];
  /** Read index granted by the leader; -1 until the ReadState arrives. */
  index: number;
}

export interface GroupOptions {
  groupId: number;
  voters: NodeId[];
  stateMachine: GroupStateMachine;
  loaded: LoadedGroup;
  randomSeed: number;
}

class RaftGroup {
  readonly groupId: number;
  readonly node: RawNode;
  readonly sm: GroupStateMachine;
  applied: number;
  appliedPersisted: number;
  persistedLastIndex: number;
  leaderId: NodeId = 0;
  role: Role = 'follower';
  /** Reads waiting to join the next ReadIndex round (batched: one round per turn). */
  queuedReads: ReadWaiter[] = [];
  readRounds = new Map<string, ReadRound>();

  constructor(groupId: number, node: RawNode, sm: GroupStateMachine, applied: number, lastIndex: number) {
    this.groupId = groupId;
    this.node = node;
    this.sm = sm;
    this.applied = applied;
    this.appliedPersisted = applied;
    this.persistedLastIndex = lastIndex;
  }
}

export interface MemberOptions {
  memberId: NodeId;
  db: MemberDb;
  tickMs: number;
  electionTimeoutTicks: number;
  heartbeatTicks: number;
  logger: Logger;
}

export interface GroupStatus {
  groupId: number;
  term: number;
  leaderId: NodeId;
  role: Role;
  commit: number;
  applied: number;
  lastIndex: number;
}

export class Member {
  private readonly opts: MemberOptions;
  private readonly groups = new Map<number, RaftGroup>();
  private sink: MessageSink | null = null;
  private turnScheduled = false;
  private writing = false;
  private stopped = false;
  private tickTimer: NodeJS.Timeout | null = null;
  private readSeq = 0;
  private readonly leaderListeners: Array<(groupId: number, leaderId: NodeId, term: number) => void> = [];
  /** Counters for /metrics. */
  readonly stats = { turns: 0, syncedBatches: 0, entriesPersisted: 0, entriesApplied: 0, messagesSent: 0, leaderChanges: 0 };

  constructor(opts: MemberOptions) {
    this.opts = opts;
  }

  get memberId(): NodeId {
    return this.opts.memberId;
  }

  setSink(sink: MessageSink): void {
    this.sink = sink;
  }

  onLeaderChange(listener: (groupId: number, leaderId: NodeId, term: number) => void): void {
    this.leaderListeners.push(listener);
  }

  addGroup(g: GroupOptions): void {
    if (this.groups.has(g.groupId)) throw new Error(`group ${g.groupId} already hosted`);
    const { loaded } = g;
    const node = new RawNode(
      {
        id: this.opts.memberId,
        voters: g.voters,
        electionTimeoutTicks: this.opts.electionTimeoutTicks,
        heartbeatTicks: this.opts.heartbeatTicks,
        preVote: true,
        checkQuorum: true,
        maxInflightMsgs: 256,
        maxSizePerMsgBytes: 1024 * 1024,
        randomSeed: g.randomSeed,
      },
      {
        hardState: loaded.hardState,
        entries: loaded.entries,
        firstIndex: loaded.firstIndex,
        applied: loaded.applied,
      },
    );
    const lastIndex = loaded.entries.length > 0 ? loaded.entries[loaded.entries.length - 1].index : 0;
    this.groups.set(g.groupId, new RaftGroup(g.groupId, node, g.stateMachine, loaded.applied, lastIndex));
    // A group with this member as its only voter needs nobody's vote: lead at once instead of
    // waiting out an election timeout.
    if (g.voters.length === 1 && g.voters[0] === this.opts.memberId) node.campaign();
  }

  start(): void {
    this.tickTimer = setInterval(() => this.tick(), this.opts.tickMs);
    this.scheduleTurn();
  }

  /** Stops ticking and waits for the batch in flight, so nothing half-written is left behind. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    while (this.writing) await new Promise((r) => setTimeout(r, 5));
    for (const group of this.groups.values()) {
      for (const w of group.queuedReads) w.reject(new Error('member stopping'));
      for (const round of group.readRounds.values()) for (const w of round.waiters) w.reject(new Error('member stopping'));
    }
  }

  /** Steps messages from a peer into their groups. */
  step(messages: Array<{ groupId: number; message: Message }>): void {
    if (this.stopped) return;
    for (const { groupId, message } of messages) {
      const group = this.groups.get(groupId);
      if (!group) continue; // a group this member no longer (or not yet) hosts
      group.node.step(message);
    }
    this.scheduleTurn();
  }

  /** Proposes data to a group's log. Throws NoLeaderError at once when no leader is known. */
  propose(groupId: number, data: Uint8Array): void {
    const group = this.mustGroup(groupId);
    if (group.leaderId === 0) throw new NoLeaderError();
    try {
      group.node.propose(data);
    } catch (err) {
      if (err instanceof Error && err.name === 'ProposalDroppedError') throw new NoLeaderError();
      throw err;
    }
    this.scheduleTurn();
  }

  /**
   * Resolves once this member's state machine reflects every write committed before the call
   * (ReadIndex). Reads queued in the same turn share one round of leader confirmation.
   */
  readBarrier(groupId: number, deadlineMs: number): Promise<void> {
    const group = this.mustGroup(groupId);
    if (group.leaderId === 0) return Promise.reject(new NoLeaderError());
    return new Promise<void>((resolve, reject) => {
      group.queuedReads.push({ resolve, reject, deadlineMs });
      this.scheduleTurn();
    });
  }

  /**
   * Moves a group's leadership to `targetId` (a voter that is caught up gets a TimeoutNow and wins the
   * next election at once). Resolves when the target leads; rejects on deadline.
   */
  async transferLeadership(groupId: number, targetId: NodeId, timeoutMs: number): Promise<void> {
    const group = this.mustGroup(groupId);
    if (group.role !== 'leader') throw new NotLeaderError();
    if (!group.node.voters().includes(targetId)) throw new BadTransfereeError();
    if (targetId === this.opts.memberId) return;
    group.node.transferLeader(targetId);
    this.scheduleTurn();
    const deadline = Date.now() + timeoutMs;
    while (group.leaderId !== targetId) {
      if (Date.now() > deadline) throw new DeadlineError('leader transfer');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** The voter (other than this member) whose log matches the leader's furthest, or 0. */
  bestTransferee(groupId: number): NodeId {
    const group = this.mustGroup(groupId);
    const progress = group.node.status().progress;
    if (!progress) return 0;
    let best: NodeId = 0;
    let bestMatch = -1;
    for (const id of group.node.voters()) {
      if (id === this.opts.memberId) continue;
      const p = progress[id];
      if (p && p.recentActive && p.match > bestMatch) {
        best = id;
        bestMatch = p.match;
      }
    }
    return best;
  }

  status(groupId: number): GroupStatus {
    const group = this.mustGroup(groupId);
    const s = group.node.status();
    return {
      groupId,
      term: s.term,
      leaderId: group.leaderId,
      role: group.role,
      commit: s.commit,
      applied: group.applied,
      lastIndex: s.lastIndex,
    };
  }

  groupIds(): number[] {
    return [...this.groups.keys()];
  }

  private mustGroup(groupId: number): RaftGroup {
    const group = this.groups.get(groupId);
    if (!group) throw new Error(`group ${groupId} is not hosted by member ${this.opts.memberId}`);
    return group;
  }

  private tick(): void {
    if (this.stopped) return;
    const nowMs = Date.now();
    for (const group of this.groups.values()) {
      group.node.tick();
      this.expireReads(group, nowMs);
    }
    this.scheduleTurn();
  }

  private expireReads(group: RaftGroup, nowMs: number): void {
    const expired = (w: ReadWaiter): boolean => {
      if (w.deadlineMs > nowMs) return false;
      w.reject(new DeadlineError('read index'));
      return true;
    };
    group.queuedReads = group.queuedReads.filter((w) => !expired(w));
    for (const [key, round] of group.readRounds) {
      round.waiters = round.waiters.filter((w) => !expired(w));
      if (round.waiters.length === 0) group.readRounds.delete(key);
    }
  }

  private scheduleTurn(): void {
    if (this.turnScheduled || this.writing || this.stopped) return;
    this.turnScheduled = true;
    setImmediate(() => {
      this.turnScheduled = false;
      this.runTurn().catch((err: unknown) => {
        // A failed disk write or a broken Raft invariant: continuing could acknowledge what is not
        // durable, so the process stops here.
        this.opts.logger.fatal({ err }, 'member loop failed; exiting');
        process.exit(70);
      });
    });
  }

  private startReadRounds(group: RaftGroup): void {
    if (group.queuedReads.length === 0) return;
    const waiters = group.queuedReads;
    group.queuedReads = [];
    const ctx = Buffer.allocUnsafe(8);
    ctx.writeBigUInt64BE(BigInt(++this.readSeq), 0);
    try {
      group.node.readIndex(ctx);
    } catch {
      for (const w of waiters) w.reject(new NoLeaderError());
      return;
    }
    group.readRounds.set(ctx.toString('hex'), { ctx, waiters, index: -1 });
  }

  private async runTurn(): Promise<void> {
    if (this.stopped) return;
    this.writing = true;
    this.stats.turns++;
    const batch = new TurnBatch();
    let needsSync = false;
    const readies: Array<[RaftGroup, Ready]> = [];
    for (const group of this.groups.values()) {
      this.startReadRounds(group);
      const smOps = group.sm.drainPersistOps();
      if (smOps.length > 0 || group.applied !== group.appliedPersisted) {
        batch.stateOps(group.groupId, smOps);
        batch.setApplied(group.groupId, group.applied);
        group.appliedPersisted = group.applied;
      }
      if (!group.node.hasReady()) continue;
      const ready = group.node.ready();
      readies.push([group, ready]);
      if (ready.hardState) {
        batch.setHardState(group.groupId, ready.hardState);
        needsSync = true;
      }
      if (ready.entries.length > 0) {
        group.persistedLastIndex = batch.appendEntries(group.groupId, ready.entries, group.persistedLastIndex);
        this.stats.entriesPersisted += ready.entries.length;
        needsSync = true;
      }
    }
    // Applied state alone need not be synced: LevelDB's log is written in order, so the next synced
    // batch makes it durable too, and until then the Raft log replays it.
    if (batch.size > 0) {
      await this.opts.db.write(batch, needsSync);
      if (needsSync) this.stats.syncedBatches++;
    }
    for (const [group, ready] of readies) this.handleReady(group, ready);
    this.sink?.flush();
    this.writing = false;
    let more = false;
    for (const group of this.groups.values()) {
      if (group.node.hasReady() || group.queuedReads.length > 0 || group.applied !== group.appliedPersisted) more = true;
    }
    if (more) this.scheduleTurn();
  }

  private handleReady(group: RaftGroup, ready: Ready): void {
    if (ready.softState) {
      const changed = ready.softState.leaderId !== group.leaderId;
      group.leaderId = ready.softState.leaderId;
      group.role = ready.softState.role;
      if (changed) {
        this.stats.leaderChanges++;
        const term = group.node.status().term;
        this.opts.logger.info({ group: group.groupId, leader: group.leaderId, term, role: group.role }, 'leader changed');
        for (const l of this.leaderListeners) l(group.groupId, group.leaderId, term);
      }
    }
    if (this.sink) {
      for (const m of ready.messages) this.sink.send(group.groupId, m);
      this.stats.messagesSent += ready.messages.length;
    }
    for (const entry of ready.committedEntries) {
      if (entry.index <= group.applied) continue;
      if (entry.index !== group.applied + 1) {
        throw new Error(`group ${group.groupId}: applying ${entry.index} after ${group.applied}`);
      }
      if (entry.data.length > 0) group.sm.apply(entry);
      group.applied = entry.index;
      this.stats.entriesApplied++;
    }
    for (const rs of ready.readStates) {
      const round = group.readRounds.get(Buffer.from(rs.requestCtx).toString('hex'));
      if (round) round.index = rs.index;
    }
    group.node.advance(ready);
    for (const [key, round] of group.readRounds) {
      if (round.index >= 0 && round.index <= group.applied) {
        group.readRounds.delete(key);
        for (const w of round.waiters) w.resolve();
      }
    }
  }
}

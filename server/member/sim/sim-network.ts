// The member simulation's transport double: a MessageSink per member incarnation that delivers Raft
// messages between Members in simulated time, with seeded delays (so messages reorder), drops,
// duplicates and partitions. Snapshot messages travel as the real transport sends them
// (server/transport/peer-transport.ts): the sender's snapshotChunks stream into a SnapshotFileWriter in
// the receiver's snapshot directory, the verified file is handed to receiveSnapshot with the 'snap'
// message, and the sender hears reportSnapshot 'finish' or 'failure'; one transfer per group and peer
// at a time.
//
// Messages are copied at send (the real transport serializes them): no Entry object is shared by two
// members' Raft logs.
import type { Message, NodeId } from '../../raft/types.ts';
import type { Member, MessageSink } from '../member.ts';
import type { Rng } from '../../raft/rng.ts';
import { SnapshotFileWriter } from '../../storage/snapshot-file.ts';
import type { SimClock } from './sim-clock.ts';

export interface NetworkFaults {
  /** Probability a message is lost. */
  dropRate: number;
  /** Probability a message is delivered twice. */
  duplicateRate: number;
  /** Delivery delay, uniform in [minDelayMs, maxDelayMs]. */
  minDelayMs: number;
  maxDelayMs: number;
  /** Probability a message is held back by up to `reorderDelayMs` more than its frame. */
  reorderRate: number;
  reorderDelayMs: number;
  /** Simulated time a snapshot transfer takes, at most. */
  snapshotMaxMs: number;
  /**
   * Probability the answer to a delivered snapshot is lost: the receiver has it, the sender hears
   * 'failure' and Raft sends a snapshot again (which may arrive while the first is being installed).
   */
  snapshotAckLossRate: number;
}

export const NO_FAULTS: NetworkFaults = {
  dropRate: 0,
  duplicateRate: 0,
  minDelayMs: 1,
  maxDelayMs: 3,
  reorderRate: 0,
  reorderDelayMs: 0,
  snapshotMaxMs: 20,
  snapshotAckLossRate: 0,
};

/**
 * The faults a seeded simulation runs under, drawn from `rng` (in this order, so a seed replays): drops up
 * to `maxDropRate`, duplicates up to 5%, delays up to 8 ms, reordering up to 20%, slow snapshots whose
 * acknowledgements are lost 30% of the time. Shared by the member, oracle and shard simulations.
 */
export function randomNetworkFaults(rng: Rng, maxDropRate = 0.1): NetworkFaults {
  return {
    ...NO_FAULTS,
    dropRate: rng.nextFloat() * maxDropRate,
    duplicateRate: rng.nextFloat() * 0.05,
    minDelayMs: 0,
    maxDelayMs: 1 + rng.nextInt(8),
    reorderRate: rng.nextFloat() * 0.2,
    reorderDelayMs: 10,
    snapshotMaxMs: 30,
    snapshotAckLossRate: 0.3,
  };
}

/** The running incarnation of a member, as the network sees it. */
export interface Endpoint {
  id: NodeId;
  owner: string;
  member: Member;
  snapshotDir: string;
}

export const NET_OWNER = 'net';

export function cloneMessage(m: Message): Message {
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: Uint8Array.from(e.data) })),
    context: Uint8Array.from(m.context),
    ...(m.snapshot ? { snapshot: { ...m.snapshot, confState: { voters: [...m.snapshot.confState.voters], learners: [...m.snapshot.confState.learners] } } } : {}),
  };
}

export class SimNetwork {
  faults: NetworkFaults;
  private readonly clock: SimClock;
  private readonly rng: Rng;
  /** Live incarnations by member id (absent: crashed or booting). */
  private readonly endpoints = new Map<NodeId, Endpoint>();
  /** Partition side of each member; messages cross only between equal sides. */
  private readonly side = new Map<NodeId, number>();
  private readonly sendingSnapshots = new Set<string>();
  readonly stats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, snapshotsSent: 0, snapshotsFailed: 0, snapshotsDuringInstall: 0 };
  /**
   * Hand a verified snapshot file to a member only once it is not installing another one. Off: the
   * race this avoids (a snapshot arriving during another's install) is one the member must survive;
   * the switch only helps tell a failure caused by it from others.
   */
  holdSnapshotWhileInstalling = false;
  /** Told when a member was handed a snapshot file (the simulation may crash it mid-install). */
  onSnapshotDelivered: ((to: NodeId) => void) | null = null;

  constructor(clock: SimClock, rng: Rng, faults: NetworkFaults) {
    this.clock = clock;
    this.rng = rng;
    this.faults = faults;
  }

  attach(ep: Endpoint): void {
    this.endpoints.set(ep.id, ep);
  }

  detach(id: NodeId): void {
    this.endpoints.delete(id);
  }

  isAlive(id: NodeId, owner: string): boolean {
    return this.endpoints.get(id)?.owner === owner;
  }

  /** Splits the members into sides (a member not listed is on side 0). */
  partition(sides: Map<NodeId, number>): void {
    this.side.clear();
    for (const [id, s] of sides) this.side.set(id, s);
  }

  heal(): void {
    this.side.clear();
  }

  partitioned(): boolean {
    return this.side.size > 0;
  }

  connected(a: NodeId, b: NodeId): boolean {
    return (this.side.get(a) ?? 0) === (this.side.get(b) ?? 0);
  }

  /** The sink of one incarnation: sends stop the moment it is no longer the live one. */
  sinkFor(id: NodeId, owner: string): MessageSink {
    let queue: Array<{ groupId: number; message: Message }> = [];
    return {
      send: (groupId, message) => {
        if (!this.isAlive(id, owner)) return;
        if (message.type === 'snap') {
          this.sendSnapshot(id, owner, groupId, message);
          return;
        }
        queue.push({ groupId, message: cloneMessage(message) });
      },
      flush: () => {
        const out = queue;
        queue = [];
        if (!this.isAlive(id, owner)) return;
        // One frame per destination per flush: a frame's messages share a delay unless reordered.
        const frameDelay = new Map<NodeId, number>();
        for (const { groupId, message } of out) {
          this.stats.sent++;
          const f = this.faults;
          if (!this.connected(id, message.to) || this.rng.chance(f.dropRate)) {
            this.stats.dropped++;
            continue;
          }
          let delay = frameDelay.get(message.to);
          if (delay === undefined) {
            delay = f.minDelayMs + this.rng.nextInt(f.maxDelayMs - f.minDelayMs + 1);
            frameDelay.set(message.to, delay);
          }
          const extra = this.rng.chance(f.reorderRate) ? 1 + this.rng.nextInt(Math.max(1, f.reorderDelayMs)) : 0;
          this.deliverLater(groupId, message, delay + extra);
          // A forwarded proposal is never duplicated: Raft would append it twice (the real stream,
          // TCP, never delivers a message twice; Raft's own messages tolerate it and get it).
          if (message.type !== 'prop' && this.rng.chance(f.duplicateRate)) {
            this.stats.duplicated++;
            this.deliverLater(groupId, cloneMessage(message), delay + 1 + this.rng.nextInt(f.maxDelayMs + f.reorderDelayMs + 1));
          }
        }
      },
    };
  }

  private deliverLater(groupId: number, message: Message, delayMs: number): void {
    const deliver = (): void => {
      const ep = this.endpoints.get(message.to);
      if (!ep || !this.connected(message.from, message.to)) {
        this.stats.dropped++;
        return;
      }
      // A paused receiver takes it when it wakes (the kernel holds it meanwhile).
      const pausedUntil = this.clock.pausedUntil(ep.owner);
      if (pausedUntil > 0) {
        this.clock.schedule(pausedUntil - this.clock.now, deliver, NET_OWNER);
        return;
      }
      this.stats.delivered++;
      this.clock.runAs(ep.owner, () => ep.member.step([{ groupId, message }]));
    };
    this.clock.schedule(delayMs, deliver, NET_OWNER);
  }

  private report(fromId: NodeId, fromOwner: string, groupId: number, to: NodeId, status: 'finish' | 'failure'): void {
    this.sendingSnapshots.delete(`${fromId}/${groupId}/${to}`);
    if (status === 'finish') this.stats.snapshotsSent++;
    else this.stats.snapshotsFailed++;
    const ep = this.endpoints.get(fromId);
    if (!ep || ep.owner !== fromOwner) return;
    this.clock.runAs(ep.owner, () => ep.member.reportSnapshot(groupId, to, status));
  }

  /** As PeerTransport.sendSnapshot + acceptSnapshot, in process. */
  private sendSnapshot(fromId: NodeId, fromOwner: string, groupId: number, message: Message): void {
    const to = message.to;
    const key = `${fromId}/${groupId}/${to}`;
    if (this.sendingSnapshots.has(key)) return; // one transfer per peer and group; Raft waits for it
    const receiver = this.endpoints.get(to);
    const sender = this.endpoints.get(fromId);
    if (!receiver || !sender || !this.connected(fromId, to)) {
      this.report(fromId, fromOwner, groupId, to, 'failure');
      return;
    }
    this.sendingSnapshots.add(key);
    const msg = cloneMessage(message);
    const index = msg.snapshot?.index ?? 0;
    const receiverOwner = receiver.owner;
    const took = 1 + this.rng.nextInt(this.faults.snapshotMaxMs);
    const fails = this.rng.chance(this.faults.dropRate);
    const ackLost = this.rng.chance(this.faults.snapshotAckLossRate);
    void this.clock.runAs(NET_OWNER, async () => {
      let writer: SnapshotFileWriter | null = null;
      try {
        const chunks: Buffer[] = [];
        for await (const chunk of sender.member.snapshotChunks(groupId, index)) chunks.push(chunk);
        await this.clock.sleep(took, NET_OWNER);
        // Installing: Raft already holds the snapshot it is installing, the state machine does not yet.
        const installing = (): boolean => {
          const st = receiver.member.status(groupId);
          return st.snapshotIndex > st.applied;
        };
        if (this.isAlive(to, receiverOwner) && installing()) this.stats.snapshotsDuringInstall++;
        while (this.holdSnapshotWhileInstalling && this.isAlive(to, receiverOwner) && installing()) await this.clock.sleep(2, NET_OWNER);
        if (fails || !this.isAlive(to, receiverOwner) || !this.connected(fromId, to)) throw new Error('transfer cut');
        // As the real receiver: the file is written and verified, then handed over at once.
        writer = new SnapshotFileWriter(receiver.snapshotDir);
        for (const chunk of chunks) writer.write(chunk);
        const file = writer.finish();
        writer = null;
        if (file.header.index !== index || file.header.groupId !== groupId) throw new Error('snapshot data does not match its message');
        this.clock.runAs(receiverOwner, () => receiver.member.receiveSnapshot(groupId, msg, file.path));
        this.report(fromId, fromOwner, groupId, to, ackLost ? 'failure' : 'finish');
        this.onSnapshotDelivered?.(to);
        // A duplicate of the delivered snapshot (a 'snap' message may be delivered twice, like any
        // other), a few ms later: it often lands while the first copy is being installed.
        if (this.rng.chance(this.faults.duplicateRate * 4)) {
          await this.clock.sleep(1 + this.rng.nextInt(15), NET_OWNER);
          if (!this.isAlive(to, receiverOwner) || !this.connected(fromId, to)) return;
          if (installing()) this.stats.snapshotsDuringInstall++;
          const again = new SnapshotFileWriter(receiver.snapshotDir);
          for (const chunk of chunks) again.write(chunk);
          const copy = again.finish();
          this.stats.duplicated++;
          this.clock.runAs(receiverOwner, () => receiver.member.receiveSnapshot(groupId, cloneMessage(msg), copy.path));
        }
      } catch {
        writer?.abort();
        this.report(fromId, fromOwner, groupId, to, 'failure');
      }
    });
  }
}

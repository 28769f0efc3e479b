// Simulated network for the raft cluster simulator: per-message drop, duplication and random
// delay (which also reorders), plus partitions and an arbitrary drop filter for scripted
// scenarios. All randomness comes from the caller's seeded Rng so runs are reproducible.

import type { Message, NodeId } from '../types.ts';
import type { Rng } from '../rng.ts';

export interface NetworkFaults {
  /** Probability that a sent message is lost. */
  dropRate: number;
  /** Probability that a sent message is delivered twice (each copy delayed independently). */
  duplicateRate: number;
  /** Each copy is delivered after 1 + uniform[0, maxDelaySteps] steps. */
  maxDelaySteps: number;
}

export const NO_FAULTS: NetworkFaults = { dropRate: 0, duplicateRate: 0, maxDelaySteps: 0 };

interface InFlight {
  deliverAtStep: number;
  /** Send order, to keep delivery deterministic among messages due at the same step. */
  seq: number;
  msg: Message;
}

export class SimNetwork {
  faults: NetworkFaults;
  /** Scripted drops: return true to drop a message. Called exactly once per sent message, at send time. */
  dropFilter: ((m: Message) => boolean) | null = null;
  /** Told about every lost copy of a message (so the sender can e.g. report a failed snapshot). */
  onDrop: ((m: Message) => void) | null = null;
  private readonly rng: Rng;
  private queue: InFlight[] = [];
  private seq = 0;
  /** Partition group per node; nodes in different groups cannot talk. Empty = fully connected. */
  private groupOf = new Map<NodeId, number>();
  sentCount = 0;
  droppedCount = 0;

  constructor(rng: Rng, faults: NetworkFaults) {
    this.rng = rng;
    this.faults = faults;
  }

  /** Splits the nodes into isolated groups (nodes not listed keep talking only to each other). */
  partition(groups: NodeId[][]): void {
    this.groupOf = new Map();
    groups.forEach((g, i) => {
      for (const id of g) this.groupOf.set(id, i + 1);
    });
  }

  heal(): void {
    this.groupOf = new Map();
  }

  isPartitioned(): boolean {
    return this.groupOf.size > 0;
  }

  canTalk(a: NodeId, b: NodeId): boolean {
    return (this.groupOf.get(a) ?? 0) === (this.groupOf.get(b) ?? 0);
  }

  send(msg: Message, nowStep: number): void {
    this.sentCount++;
    if (!this.canTalk(msg.from, msg.to) || (this.dropFilter !== null && this.dropFilter(msg)) || this.rng.chance(this.faults.dropRate)) {
      this.droppedCount++;
      this.onDrop?.(msg);
      return;
    }
    const copies = this.rng.chance(this.faults.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.faults.maxDelaySteps > 0 ? this.rng.nextInt(this.faults.maxDelaySteps + 1) : 0;
      this.queue.push({ deliverAtStep: nowStep + 1 + delay, seq: this.seq++, msg });
    }
  }

  /** Removes and returns the messages due at `nowStep` (all of them if nowStep is Infinity), in delivery order. */
  takeDue(nowStep: number): Message[] {
    const due: InFlight[] = [];
    const rest: InFlight[] = [];
    for (const f of this.queue) (f.deliverAtStep <= nowStep ? due : rest).push(f);
    this.queue = rest;
    due.sort((a, b) => a.deliverAtStep - b.deliverAtStep || a.seq - b.seq);
    const out: Message[] = [];
    for (const f of due) {
      // Partitions created while the message was in flight also cut it.
      if (!this.canTalk(f.msg.from, f.msg.to)) {
        this.droppedCount++;
        this.onDrop?.(f.msg);
        continue;
      }
      out.push(f.msg);
    }
    return out;
  }

  /**
   * Removes and returns the messages to `to` due by `byStep`, in delivery order: what reaches a node
   * while it is still writing a Ready (the simulator steps them between ready() and advance()).
   */
  takeDueFor(to: NodeId, byStep: number): Message[] {
    const due: InFlight[] = [];
    const rest: InFlight[] = [];
    for (const f of this.queue) (f.msg.to === to && f.deliverAtStep <= byStep ? due : rest).push(f);
    if (due.length === 0) return [];
    this.queue = rest;
    due.sort((a, b) => a.deliverAtStep - b.deliverAtStep || a.seq - b.seq);
    const out: Message[] = [];
    for (const f of due) {
      if (!this.canTalk(f.msg.from, f.msg.to)) {
        this.droppedCount++;
        this.onDrop?.(f.msg);
        continue;
      }
      out.push(f.msg);
    }
    return out;
  }

  pendingCount(): number {
    return this.queue.length;
  }

  clear(): void {
    this.queue = [];
  }
}

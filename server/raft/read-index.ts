// Leader-side bookkeeping for linearizable ReadIndex reads. Each read records the commit index
// at arrival; a read is answered once a quorum has acknowledged a heartbeat round that was
// *started after* the read arrived (proving we were still leader then). At most one round is
// in flight: reads arriving meanwhile wait and share the next round, so a burst of N reads
// costs two heartbeat rounds rather than N.

import type { NodeId } from './types.ts';

export interface PendingRead {
  /** Commit index when the read arrived; the read may be served once applied >= index. */
  index: number;
  /** Node that asked (the leader itself for local reads). */
  from: NodeId;
  requestCtx: Uint8Array;
}

interface ReadRound {
  /** Heartbeat context identifying this round (8-byte big-endian round number). */
  ctx: Uint8Array;
  roundId: number;
  acks: Set<NodeId>;
  reads: PendingRead[];
}

const ROUND_CTX_BYTES = 8;

export function encodeRoundCtx(roundId: number): Uint8Array {
  const ctx = new Uint8Array(ROUND_CTX_BYTES);
  new DataView(ctx.buffer).setFloat64(0, roundId);
  return ctx;
}

function decodeRoundCtx(ctx: Uint8Array): number {
  if (ctx.byteLength !== ROUND_CTX_BYTES) return -1;
  return new DataView(ctx.buffer, ctx.byteOffset, ROUND_CTX_BYTES).getFloat64(0);
}

export class ReadIndexQueue {
  /** Monotonic across leaderships so stale acks can never match a newer round. */
  private lastRoundId = 0;
  private inflight: ReadRound | null = null;
  private waiting: PendingRead[] = [];

  add(read: PendingRead): void {
    this.waiting.push(read);
  }

  /** Context of the round in flight (re-sent with periodic heartbeats in case acks were lost). */
  inflightCtx(): Uint8Array | null {
    return this.inflight === null ? null : this.inflight.ctx;
  }

  /** Starts a round for the waiting reads if none is in flight; returns its context, or null. */
  startRoundIfIdle(selfId: NodeId): Uint8Array | null {
    if (this.inflight !== null || this.waiting.length === 0) return null;
    const roundId = ++this.lastRoundId;
    this.inflight = { ctx: encodeRoundCtx(roundId), roundId, acks: new Set([selfId]), reads: this.waiting };
    this.waiting = [];
    return this.inflight.ctx;
  }

  /**
   * Records `from`'s ack of the heartbeat round `ctx`. When the in-flight round reaches a
   * quorum it is completed and its reads returned; otherwise returns null.
   */
  ack(from: NodeId, ctx: Uint8Array, isQuorum: (acks: ReadonlySet<NodeId>) => boolean): PendingRead[] | null {
    const round = this.inflight;
    if (round === null || decodeRoundCtx(ctx) !== round.roundId) return null;
    round.acks.add(from);
    if (!isQuorum(round.acks)) return null;
    this.inflight = null;
    return round.reads;
  }

  /** Drops every pending read (leadership lost); clients retry on timeout as with etcd. */
  clear(): void {
    this.inflight = null;
    this.waiting = [];
  }

  pendingCount(): number {
    return this.waiting.length + (this.inflight === null ? 0 : this.inflight.reads.length);
  }
}

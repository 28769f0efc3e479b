// Leader-side view of one peer's replication: how much of the log it is known to hold
// (match), what to send next (next), and the flow-control state. In 'probe' state the leader
// sends one append at a time until it finds where the follower's log matches; in 'replicate'
// state it streams appends optimistically, bounded by a window of in-flight messages. In
// 'snapshot' state the entries it needs are compacted away: a snapshot was sent and appends
// pause until the follower acks it or the application reports the transfer's outcome.

import { fail } from './errors.ts';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/**
 * Ring buffer of the in-flight append messages to one follower: the last index and the payload
 * bytes each carried. A follower ack for index i frees every message whose last index <= i. The
 * window is full at `capacity` messages or at `maxBytes` payload bytes (0: no byte limit), whichever
 * comes first (etcd's MaxInflightMsgs and MaxInflightBytes). Fixed capacity, no per-message allocation.
 */
export class Inflights {
  private readonly lastIndexes: Float64Array;
  private readonly payloadBytes: Float64Array;
  private readonly maxBytes: number;
  private start = 0;
  private count = 0;
  private bytesInFlight = 0;

  constructor(capacity: number, maxBytes = 0) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) {
      fail(`inflight capacity ${capacity} must be a positive integer`);
    }
    if (!(maxBytes >= 0)) fail(`inflight byte limit ${maxBytes} must be >= 0`);
    this.lastIndexes = new Float64Array(capacity);
    this.payloadBytes = new Float64Array(capacity);
    this.maxBytes = maxBytes;
  }

  get size(): number {
    return this.count;
  }

  /** Payload bytes of the messages in flight. */
  get bytes(): number {
    return this.bytesInFlight;
  }

  full(): boolean {
    return this.count === this.lastIndexes.length || (this.maxBytes > 0 && this.bytesInFlight >= this.maxBytes);
  }

  add(lastIndex: number, bytes = 0): void {
    if (!(!this.full())) fail('cannot add to a full inflight window');
    const cap = this.lastIndexes.length;
    if (this.count > 0) {
      const prev = this.lastIndexes[(this.start + this.count - 1) % cap];
      if (!(lastIndex > prev)) fail(`inflight index ${lastIndex} not above previous ${prev}`);
    }
    const slot = (this.start + this.count) % cap;
    this.lastIndexes[slot] = lastIndex;
    this.payloadBytes[slot] = bytes;
    this.bytesInFlight += bytes;
    this.count++;
  }

  /** Frees all in-flight messages whose last index <= index. */
  freeLE(index: number): void {
    const cap = this.lastIndexes.length;
    while (this.count > 0 && this.lastIndexes[this.start] <= index) {
      this.bytesInFlight -= this.payloadBytes[this.start];
      this.start = (this.start + 1) % cap;
      this.count--;
    }
    if (this.count === 0) {
      this.start = 0;
      this.bytesInFlight = 0;
    }
  }

  /** Frees the oldest in-flight message (used when its ack may have been lost). */
  freeFirstOne(): void {
    if (this.count === 0) return;
    this.freeLE(this.lastIndexes[this.start]);
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytesInFlight = 0;
  }
}

export class Progress {
  /** Highest index known to be replicated on the peer. */
  match: number;
  /** Index of the next entry to send. */
  next: number;
  state: ProgressState = 'probe';
  /** Probe state: an append is outstanding, wait for a response (or heartbeat response). */
  probeSent = false;
  /** Heard from the peer since the last check-quorum round. */
  recentActive = false;
  /** Snapshot state: index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Learners receive the log but never vote or count for commit/quorum. */
  isLearner = false;
  /** The commit index carried by the last append sent to the peer (leader's bookkeeping). */
  sentCommit = 0;
  readonly inflights: Inflights;

  constructor(next: number, maxInflightMsgs: number, maxInflightBytes = 0) {
    this.match = 0;
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs, maxInflightBytes);
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // Leaving snapshot state: the follower holds at least the snapshot (if it arrived).
    const from = this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.resetState('probe');
    this.pendingSnapshot = 0;
    this.next = from;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
    this.next = snapshotIndex + 1;
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.pendingSnapshot = 0;
    this.next = this.match + 1;
  }

  /** The leader cannot send appends to this peer right now. */
  isPaused(): boolean {
    if (this.state === 'snapshot') return true;
    return this.state === 'probe' ? this.probeSent : this.inflights.full();
  }

  /** Records that an append carrying `entryCount` entries (`payloadBytes` of data) ending at `lastIndex` was sent. */
  sentEntries(entryCount: number, lastIndex: number, payloadBytes = 0): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, payloadBytes);
      }
    } else {
      this.probeSent = true;
    }
  }

  /** Handles a successful append response for `index`. Returns false if it told us nothing new. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < index + 1) this.next = index + 1;
    return updated;
  }

  /**
   * Handles a rejected append whose prevIndex was `rejected`; `matchHint` is the highest index
   * that may match (from the follower's rejectHint). Returns false if the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'snapshot') return false; // a response to an append sent before the snapshot
    if (this.state === 'replicate') {
      // A rejection at or below match is a reordered/duplicated old response.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // Probe: only the response to the outstanding probe (prevIndex == next - 1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }
}

// How large one peer-stream frame may be, derived from the member's replication limits and checked
// against the gRPC message limit of the peer stream at startup. Every frame the transport writes is at
// most this budget (frame-codec.ts encodeFrames splits a turn's messages across frames), and the
// budget always holds the largest single Raft message the limits allow, so no limit change can make
// the stream carry a frame it refuses (which would break it and make the peer redial forever).

import type { ReplicationLimits } from '../raft/replication-limits.ts';
import { ENTRY_OVERHEAD_BYTES } from '../raft/replication-limits.ts';

/** The peer stream's gRPC max message length, both directions (send and receive). */
export const PEER_GRPC_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * The largest answer a member sends a peer: a forwarded request's (ShardKv), whose answer is the client's,
 * may be as large as etcd would send its client (etcd's server sends up to 2 GiB). Requests, stream frames
 * and a read's pages stay within PEER_GRPC_MAX_MESSAGE_BYTES.
 */
export const PEER_GRPC_MAX_ANSWER_BYTES = 2 ** 31 - 1;

/**
 * Upper bound of a Raft message's bytes on the wire beyond its entries: the envelope, ids, terms,
 * indexes, a ReadIndex context and a snapshot's metadata with its membership lists.
 */
export const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

/** Frames hold a few of the largest messages: fewer writes while a follower catches up. */
const MESSAGES_PER_FRAME = 4;

export class FrameBudgetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FrameBudgetError';
  }
}

/** The largest encoded Raft message the limits allow: a full append, or one entry of the largest size. */
export function largestMessageBytes(limits: ReplicationLimits, maxEntryBytes: number): number {
  return Math.max(limits.maxSizePerMsgBytes, maxEntryBytes + ENTRY_OVERHEAD_BYTES) + MESSAGE_OVERHEAD_BYTES;
}

/**
 * The frame budget for these limits. Throws FrameBudgetError when the largest message could not
 * travel in one frame under the gRPC limit: the member must not start with such settings.
 */
export function frameBudgetBytes(limits: ReplicationLimits, maxEntryBytes: number, grpcMaxMessageBytes = PEER_GRPC_MAX_MESSAGE_BYTES): number {
  const largest = largestMessageBytes(limits, maxEntryBytes);
  if (largest > grpcMaxMessageBytes) {
    throw new FrameBudgetError(
      `replication limits disagree with the peer stream: a Raft message may take ${largest} bytes ` +
        `(max size per message ${limits.maxSizePerMsgBytes}, largest entry ${maxEntryBytes}), above the gRPC limit of ${grpcMaxMessageBytes}`,
    );
  }
  return Math.min(grpcMaxMessageBytes, largest * MESSAGES_PER_FRAME);
}

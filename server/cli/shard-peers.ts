// How a member reaches the shard replicas and the oracle on other members: the ShardPeers seam the hosting
// layer (shard-hosting.ts) calls, and its implementation over the peer port's ShardPeer service
// (server/shard/peer-shard-rpc.ts). Each call maps the wire outcome onto what the caller handles: a
// `notLeader` answer to follow, the MVCC error a client sees, or a shard error it retries until its deadline.
import type { NodeId } from '../raft/types.ts';
import type { RangeOp, RangeResult } from '../mvcc/types.ts';
import type { OracleTransport } from '../shard/oracle-protocol.ts';
import { ShardDeadlineError, ShardNotReadyError } from '../shard/shard-write-path.ts';
import { GrpcOracleTransport, closeAtOnPeer, rangeAtOnPeer, shardKvOnPeer, shardStatusOnPeer, watchShardTransport, type CloseAtOutcome, type RangeAtOutcome, type RemoteShardStatus, type ShardKvOutcome, type ShardPeerChannels } from '../shard/peer-shard-rpc.ts';
import { readPaged } from '../shard/range-pages.ts';
import type { ShardKvRequest } from '../shard/shard-kv-wire.ts';
import type { WatchShardTransport } from '../shard/remote-watch-source.ts';

/** How this member reaches the shard leaders and the oracle on other members (the peer port). */
export interface ShardPeers {
  oracle: OracleTransport;
  /** `op` read at `revision` by the leader of `groupId` on member `to`; `notLeader` names who leads there. */
  rangeAt(to: NodeId, groupId: number, op: RangeOp, revision: number, deadlineMs: number): Promise<RangeResult | { notLeader: NodeId }>;
  /** The leader of `groupId` on member `to` closes at `revision` or below (ShardWritePath.closeAt). */
  closeAt(to: NodeId, groupId: number, revision: number, deadlineMs: number): Promise<ShardClose | { notLeader: NodeId }>;
  /** Member `to` executes one single-shard KV operation on its replica (ShardKv); never rejects. */
  shardKv(to: NodeId, request: ShardKvRequest, callDeadlineMs: number): Promise<ShardKvOutcome>;
  /** WatchShard streams to members hosting a shard (a merged watch's remote shards); absent: none. */
  watchShard?: WatchShardTransport;
  /** Leader and applied revision of those of `groupIds` member `to` hosts, from its own state; never rejects ([] on failure). */
  shardStatus(to: NodeId, groupIds: readonly number[], deadlineMs: number): Promise<RemoteShardStatus[]>;
  /** Pages after the first of reads on other members larger than one peer message, since start (absent: none counted). */
  readPages?(): number;
}

/** A close on a shard's leader: the revision closed, and the leader's applied index of the group after it. */
export interface ShardClose {
  revision: number;
  appliedIndex: number;
}

/** ShardPeers over the peer port's ShardPeer service (server/shard/peer-shard-rpc.ts). */
export function shardPeersOverGrpc(channels: ShardPeerChannels): ShardPeers {
  let readPages = 0;
  return {
    readPages: () => readPages,
    oracle: new GrpcOracleTransport(channels),
    watchShard: watchShardTransport(channels),
    shardStatus: (to, groupIds, deadlineMs) => shardStatusOnPeer(channels, to, groupIds, deadlineMs),
    async rangeAt(to, groupId, op, revision, deadlineMs) {
      // A leadership that moves between pages: the whole read starts again on the new leader.
      let movedTo: NodeId | null = null;
      try {
        return await readPaged(op, revision, async (sub, continued) => {
          if (continued) readPages++;
          const outcome = await rangeAtOnPeer(channels, to, groupId, sub, revision, deadlineMs, { pageBytes: RANGE_PAGE_BYTES, continued });
          if (outcome.kind === 'ok') return { result: outcome.result, pageEnd: outcome.pageEnd ?? null };
          if (outcome.kind === 'not-leader') {
            movedTo = outcome.leaderId;
            throw LEADERSHIP_MOVED;
          }
          throw peerFailure(groupId, to, outcome);
        });
      } catch (err) {
        if (err === LEADERSHIP_MOVED && movedTo !== null) return { notLeader: movedTo };
        throw err;
      }
    },
    async closeAt(to, groupId, revision, deadlineMs) {
      const outcome = await closeAtOnPeer(channels, to, groupId, revision, deadlineMs);
      switch (outcome.kind) {
        case 'closed':
          return { revision: outcome.revision, appliedIndex: outcome.appliedIndex };
        case 'not-leader':
          return { notLeader: outcome.leaderId };
        default:
          throw peerFailure(groupId, to, outcome);
      }
    },
    shardKv: (to, request, callDeadlineMs) => shardKvOnPeer(channels, to, request, callDeadlineMs),
  };
}

/** Pages of a read on another member (server/shard/range-pages.ts): a quarter of the peer message cap. */
export const RANGE_PAGE_BYTES = 16 * 1024 * 1024;
const LEADERSHIP_MOVED = new Error('leadership moved during a paged read');

/** What a failed RangeAt or CloseAt throws: the MVCC error a client sees, or a shard error retried until the deadline. */
function peerFailure(groupId: number, to: NodeId, outcome: Exclude<RangeAtOutcome | CloseAtOutcome, { kind: 'ok' } | { kind: 'closed' } | { kind: 'not-leader' }>): Error {
  if (outcome.kind === 'mvcc') return outcome.error; // compacted or future revision: the client's answer
  const what = `shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`;
  if (outcome.kind === 'deadline') return new ShardDeadlineError(what);
  if (outcome.kind === 'unavailable') return new ShardNotReadyError(what);
  return new Error(what);
}

// How a member reaches the shard replicas and the oracle on other members: the ShardPeers seam the hosting
// layer (shard-hosting.ts) calls, and its implementation over the peer port's ShardPeer service
// (server/shard/peer-shard-rpc.ts). Each call maps the wire outcome onto what the caller handles: a
// `notLeader` answer to follow, the MVCC error a client sees, or a shard error it retries until its deadline.
import type { NodeId } from '../raft/types.ts';
import type { RangeOp, RangeResult } from '../mvcc/types.ts';
import type { OracleTransport } from '../shard/oracle-protocol.ts';
import { ShardDeadlineError, ShardNotReadyError } from '../shard/shard-write-path.ts';
import { GrpcOracleTransport, closeAtOnPeer, rangeAtOnPeer, shardKvOnPeer, shardStatusOnPeer, watchShardTransport, type RemoteShardStatus, type ShardKvOutcome, type ShardPeerChannels } from '../shard/peer-shard-rpc.ts';
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
}

/** A close on a shard's leader: the revision closed, and the leader's applied index of the group after it. */
export interface ShardClose {
  revision: number;
  appliedIndex: number;
}

/** ShardPeers over the peer port's ShardPeer service (server/shard/peer-shard-rpc.ts). */
export function shardPeersOverGrpc(channels: ShardPeerChannels): ShardPeers {
  return {
    oracle: new GrpcOracleTransport(channels),
    watchShard: watchShardTransport(channels),
    shardStatus: (to, groupIds, deadlineMs) => shardStatusOnPeer(channels, to, groupIds, deadlineMs),
    async rangeAt(to, groupId, op, revision, deadlineMs) {
      const outcome = await rangeAtOnPeer(channels, to, groupId, op, revision, deadlineMs);
      switch (outcome.kind) {
        case 'ok':
          return outcome.result;
        case 'not-leader':
          return { notLeader: outcome.leaderId };
        case 'mvcc':
          throw outcome.error; // compacted or future revision: the client's answer
        case 'deadline':
          throw new ShardDeadlineError(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
        case 'unavailable':
          throw new ShardNotReadyError(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
        default:
          throw new Error(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
      }
    },
    async closeAt(to, groupId, revision, deadlineMs) {
      const outcome = await closeAtOnPeer(channels, to, groupId, revision, deadlineMs);
      switch (outcome.kind) {
        case 'closed':
          return { revision: outcome.revision, appliedIndex: outcome.appliedIndex };
        case 'not-leader':
          return { notLeader: outcome.leaderId };
        case 'deadline':
          throw new ShardDeadlineError(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
        case 'unavailable':
          throw new ShardNotReadyError(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
        default:
          throw new Error(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
      }
    },
    shardKv: (to, request, callDeadlineMs) => shardKvOnPeer(channels, to, request, callDeadlineMs),
  };
}

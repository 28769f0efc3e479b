// The API's side of cross-shard transactions: the member's TxnCoordinator (server/txn/coordinator.ts)
// wired to this member's shards — oracle revisions, reads at R on shard leaders, and proposals to any
// shard, hosted here or forwarded to a member that hosts it.
import { randomUUID } from 'node:crypto';
import type { ApiContext, GroupTarget, ShardedKeyspace } from './context.ts';
import { newTxnCoordinatorStats, TxnCoordinator, type TxnCoordinatorStats } from '../txn/coordinator.ts';
import { ShardAdmission } from '../txn/shard-admission.ts';
import { DECIDE_AT_PREPARE_RULES, TXN_OP_POSITION_RULES } from '../member/member.ts';

/** One member's coordinators (its KV service's and its lease sweeper's) count together, for its metrics. */
const memberStats = new WeakMap<ApiContext, TxnCoordinatorStats>();
/** ... and queue for their shards together (txn/shard-admission.ts). */
const memberAdmission = new WeakMap<ApiContext, ShardAdmission>();

export function crossShardStats(ctx: ApiContext): TxnCoordinatorStats {
  let stats = memberStats.get(ctx);
  if (stats === undefined) memberStats.set(ctx, (stats = newTxnCoordinatorStats()));
  return stats;
}

export function crossShardCoordinator(ctx: ApiContext, shards: ShardedKeyspace): TxnCoordinator {
  const targetOf = (groupId: number): GroupTarget => {
    const t = shards.targets().find((x) => x.groupId === groupId);
    if (t === undefined) throw new Error(`cross-shard txn: no shard group ${groupId}`);
    return t;
  };
  const memberHex = ctx.member.memberId.toString(16);
  let admission = memberAdmission.get(ctx);
  if (admission === undefined) memberAdmission.set(ctx, (admission = new ShardAdmission()));
  if (ctx.testTxnPauseBeforeDecisionMs > 0) ctx.logger.warn({ pauseMs: ctx.testTxnPauseBeforeDecisionMs }, 'TEST ONLY: cross-shard transactions coordinated here pause between prepare and decision (--test-txn-pause-before-decision-ms)');
  return new TxnCoordinator({
    freshRevision: (deadlineMs) => shards.freshRevision(deadlineMs),
    groupOfKey: (key) => shards.shardOf(key).groupId,
    groupsOfRange: (key, rangeEnd) => shards.shardsOfRange(key, rangeEnd).map((t) => t.groupId),
    rangeAt: (groupId, op, revision, deadlineMs) => shards.rangeAt(targetOf(groupId), op, revision, deadlineMs),
    propose: (groupId, body, timeoutMs, internal) => ctx.proposeWrite(body, { target: targetOf(groupId), timeoutMs, internal }),
    deadlineMs: () => ctx.deadlineMs(),
    newTxnId: () => `${memberHex}-${randomUUID()}`,
    pauseBeforeDecisionMs: ctx.testTxnPauseBeforeDecisionMs,
    random: Math.random,
    admission,
    prepareMayDecide: () => ctx.member.clusterImplements(DECIDE_AT_PREPARE_RULES),
    txnOpPositions: () => ctx.member.clusterImplements(TXN_OP_POSITION_RULES),
  }, crossShardStats(ctx));
}

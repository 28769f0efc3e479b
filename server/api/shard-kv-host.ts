// The hosting side of a forwarded single-shard KV operation (the ShardKv peer RPC): executes on this
// member's replica of the shard exactly what the forwarding member would have done on its own, and
// answers with what its client must see. Reads are served as ShardedKv serves a one-shard read (ReadIndex
// unless serializable, the header at the shard's applied revision); a write's entry is proposed as
// received, as its client's (the caller and token revision it carries) or, with `internal`, as the
// server's own work.
// Safe because:
//   - the forwarding member authenticated its client and checked its permissions before forwarding, and
//     the peer port is trusted as the Raft stream is (peer TLS); the entry's caller still reaches the
//     apply-time checks as any entry's does;
//   - a member that does not serve the shard (not hosted, or a learner's replica) answers `not-hosted`
//     and does nothing, so the forwarder may ask the next member without risk of a second execution;
//   - every failure is answered as the client-facing services would answer it (toServiceError: etcd's
//     codes and texts), never thrown.
import { ApiContext, toServiceError, type GroupTarget } from './context.ts';
import { replicaReadRevision } from './sharded-kv.ts';
import { runAsCaller, runAsServer } from './caller-context.ts';
import { txnOpFromWire } from '../etcd/convert.ts';
import type { InternalRequestBody } from '../shard/request-codec.ts';
import { decodeForwardedEntry } from '../shard/forwarded-entry.ts';
import type { ResponseOp } from '../mvcc/types.ts';
import type { TxnRecoveryResult } from '../txn/shard-txn-table.ts';
import type { NodeId } from '../raft/types.ts';
import type { ShardKvAnswer, ShardKvPayload, ShardKvRequest } from '../shard/shard-kv-wire.ts';

/** The target for `groupId` when this member's API serves it from its own replica, else null. */
function servedHere(ctx: ApiContext, groupId: number): GroupTarget | null {
  const shards = ctx.shards;
  if (shards === null || !shards.hosts(groupId) || ctx.isLearner()) return null;
  if (ctx.member.isLearner(groupId)) return null;
  return shards.targets().find((t) => t.groupId === groupId) ?? null;
}

/** What a put, delete or txn's apply resolved with, as the answer's response op. */
function payloadOf(body: InternalRequestBody, result: unknown): ShardKvPayload {
  let response: ResponseOp | null = null;
  if ('put' in body && body.put) response = { type: 'put', put: result as Extract<ResponseOp, { type: 'put' }>['put'] };
  else if ('delete_range' in body && body.delete_range) response = { type: 'deleteRange', deleteRange: result as Extract<ResponseOp, { type: 'deleteRange' }>['deleteRange'] };
  else if ('txn' in body && body.txn) response = { type: 'txn', txn: result as Extract<ResponseOp, { type: 'txn' }>['txn'] };
  else if ('txn_recover' in body && body.txn_recover) return { kind: 'recovery', recovery: result as TxnRecoveryResult };
  else if (('txn_intent' in body && body.txn_intent) || ('txn_resolve' in body && body.txn_resolve)) {
    // A cross-shard transaction's share or resolution answers as a txn (cross-shard-txn.ts).
    response = result === null ? null : { type: 'txn', txn: result as Extract<ResponseOp, { type: 'txn' }>['txn'] };
  }
  return response === null ? { kind: 'nothing' } : { kind: 'response', response };
}

async function barrier(ctx: ApiContext, target: GroupTarget, deadlineMs: number): Promise<void> {
  if (ctx.unsafeStaleReads) return; // the test-only broken build, as ApiContext.readBarrier
  await ctx.shardReadBarrier(target.groupId, deadlineMs);
}

/** Executes `request` on this member's replica of its shard. Never rejects. */
export async function serveShardKv(ctx: ApiContext, request: ShardKvRequest): Promise<ShardKvAnswer> {
  const { groupId, deadlineMs, op } = request;
  const leaderId = (): NodeId => {
    try {
      return ctx.member.leaderId(groupId);
    } catch {
      return 0;
    }
  };
  const target = servedHere(ctx, groupId);
  if (target === null) return { kind: 'not-hosted', leaderId: leaderId() };
  // The replica may have left this member while the operation ran (its shard moved): the answer stands,
  // with the term it was served in.
  const servedTerm = ctx.member.term(groupId);
  const done = (revision: number, payload: ShardKvPayload): ShardKvAnswer => ({
    kind: 'done',
    revision,
    raftTerm: ctx.member.hostsGroup(groupId) ? ctx.member.term(groupId) : servedTerm,
    payload,
    leaderId: leaderId(),
  });
  try {
    switch (op.kind) {
      case 'range': {
        // As ShardedKv.range: past what this replica applied, the forwarding member reads at a fresh
        // oracle revision on the shard's leader instead.
        const applied = target.sm.readableRevision();
        if (op.op.revision > applied) return { kind: 'beyond-applied', applied, leaderId: leaderId() };
        if (!op.serializable) await barrier(ctx, target, deadlineMs);
        const through = await replicaReadRevision(target, !op.serializable, deadlineMs);
        return done(through, { kind: 'range', result: target.sm.store.range(op.op, through) });
      }
      case 'read-txn': {
        if (!op.serializable) await barrier(ctx, target, deadlineMs);
        await replicaReadRevision(target, !op.serializable, deadlineMs);
        const out = target.sm.store.txn(txnOpFromWire(op.txn));
        return done(out.revision, { kind: 'response', response: { type: 'txn', txn: out.result } });
      }
      case 'lease-keys': {
        await barrier(ctx, target, deadlineMs);
        return done(await replicaReadRevision(target, true, deadlineMs), { kind: 'keys', keys: target.sm.leases.keysOf(op.leaseId) });
      }
      case 'write': {
        const { body, caller } = decodeForwardedEntry(op.entry);
        const timeoutMs = Math.max(1, deadlineMs - Date.now());
        // The forwarding member refused its learners' clients already; this replica serves (not a learner).
        const propose = (): Promise<{ revision: number; result: unknown }> => ctx.proposeWrite(body, { target, internal: true, timeoutMs });
        const out = await (caller && !op.internal ? runAsCaller(caller, propose) : runAsServer(propose));
        return done(out.revision, payloadOf(body, out.result));
      }
    }
  } catch (err) {
    const e = toServiceError(err, ctx.logger);
    return { kind: 'error', code: e.code, message: e.details ?? e.message, leaderId: leaderId() };
  }
}

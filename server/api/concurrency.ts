// Server-side building blocks of locks and elections (etcd's concurrency recipes, run inside the
// member): a key per contender under a common prefix, owned by the contender's lease; the contender
// with the lowest create revision holds it; the others wait for the deletion of the key just before
// theirs. The keys live where clients see them (contender-kv.ts: the group's store, or the shards of a
// sharded cluster); all writes go through Raft like any client's; waits watch the key's store.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { rangeOf, type KeyValue, type TxnResult } from '../mvcc/types.ts';
import { toServiceError, type ApiContext } from './context.ts';
import type { TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';
import { grpcError } from '../etcd/errors.ts';
import { WaitCancelledError, type ContenderKv } from './contender-kv.ts';

/** Thrown when the contender's own key vanished while it waited (its lease ended). */
export class SessionExpiredError extends Error {
  constructor() {
    super('session expired');
    this.name = 'SessionExpiredError';
  }
}

/**
 * etcd's lock and election services return their errors as plain Go errors, so clients see status
 * UNKNOWN with etcd's text (even for "etcdserver: requested lease not found"). Same here.
 */
export function asUnknownStatus(err: unknown, ctx: ApiContext): grpc.ServiceError {
  // The contender's key vanished while it waited (its lease ended): etcd's concurrency.ErrSessionExpired.
  if (err instanceof SessionExpiredError) return grpcError({ code: grpc.status.UNKNOWN, message: err.message });
  if (err instanceof WaitCancelledError) {
    // The client went away or its deadline passed; nobody reads this answer.
    const e = new Error('canceled') as grpc.ServiceError;
    e.code = grpc.status.CANCELLED;
    e.details = 'canceled';
    e.metadata = new grpc.Metadata();
    return e;
  }
  const e = toServiceError(err, ctx.logger);
  e.code = grpc.status.UNKNOWN;
  return e;
}

/**
 * etcd's server-side session for a request with lease 0: a fresh lease with the session TTL
 * (60 s). etcd also keeps it alive from inside the server for ever; Synod does not, so such a lock
 * or campaign ends when that lease does instead of leaking.
 */
export const SESSION_TTL_SECONDS = 60;

export async function leaseOrSession(ctx: ApiContext, lease: string): Promise<string> {
  if (lease !== '0' && lease !== '') return lease;
  const id = newLeaseId();
  await ctx.proposeWrite({ lease_grant: { ID: id, TTL: String(SESSION_TTL_SECONDS) } });
  return id;
}

/** A random positive int64 as a decimal string: the id of a lease the client left to the server. */
export function newLeaseId(): string {
  for (;;) {
    const id = randomBytes(8).readBigUInt64BE(0) & 0x7fff_ffff_ffff_ffffn;
    if (id !== 0n) return id.toString();
  }
}

export { WaitCancelledError };

/** etcd's prefix of a lock or election: its name and a slash, so "a" and "ab" never mix. */
export function contenderPrefix(name: Buffer): Buffer {
  return Buffer.concat([name, Buffer.from('/')]);
}

/** etcd's key for a contender: `<name>/<lease id in hex>`. */
export function contenderKey(name: Buffer, lease: string): Buffer {
  return Buffer.concat([contenderPrefix(name), Buffer.from(BigInt(lease).toString(16))]);
}

export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: everything after
}


/**
 * The key under `prefix/` created first (the holder), or null. `fresh`: a linearizable read (Leader, an
 * observer's first look); without it, one group reads its store, which holds whatever the caller was
 * told of (a contender's own write, a watch event).
 */
export async function firstCreated(kv: ContenderKv, prefix: Buffer, fresh: boolean): Promise<{ kv: KeyValue | null; revision: number }> {
  const r = await kv.range(rangeOf(prefix, prefixEnd(prefix), { limit: 1, sortOrder: 'ASCEND', sortTarget: 'CREATE' }), fresh);
  return { kv: r.kvs[0] ?? null, revision: r.revision };
}

/** The key under `prefix/` created last before `beforeRevision` (or null), and the revision read at. */
async function lastCreatedBefore(kv: ContenderKv, prefix: Buffer, beforeRevision: number): Promise<{ kv: KeyValue | null; revision: number }> {
  const r = await kv.range(rangeOf(prefix, prefixEnd(prefix), { limit: 1, sortOrder: 'DESCEND', sortTarget: 'CREATE', maxCreateRevision: beforeRevision - 1 }));
  return { kv: r.kvs[0] ?? null, revision: r.revision };
}

export async function getKey(kv: ContenderKv, key: Buffer): Promise<KeyValue | null> {
  return (await kv.range(rangeOf(key))).kvs[0] ?? null;
}

export function putOp(key: Buffer, value: Buffer, lease: string, ignoreLease = false): WireRequestOp {
  return {
    request_put: { key, value, lease: ignoreLease ? '0' : lease, prev_kv: false, ignore_value: false, ignore_lease: ignoreLease },
  };
}

export function deleteOp(key: Buffer): WireRequestOp {
  return { request_delete_range: { key, range_end: Buffer.alloc(0), prev_kv: false } };
}

/** Deletes `key` (a contender leaving the queue), as a Txn wherever the key lives. */
export function deleteKey(kv: ContenderKv, key: Buffer): Promise<{ result: TxnResult; revision: number }> {
  return kv.txn({ compare: [], success: [deleteOp(key)], failure: [] });
}

export function createRevisionEquals(key: Buffer, revision: number | string): TxnRequest['compare'][number] {
  return { result: 'EQUAL', target: 'CREATE', key, create_revision: String(revision), range_end: Buffer.alloc(0) };
}

/**
 * Waits until no key under `prefix` was created before `myRevision`, i.e. this contender is first, and
 * returns the revision of the read that found it so. Fails with SessionExpiredError if `myKey` disappears
 * meanwhile. `signal` aborts the wait.
 */
export async function waitUntilFirst(kv: ContenderKv, prefix: Buffer, myKey: Buffer, myRevision: number, signal: AbortSignal): Promise<number> {
  for (;;) {
    if (signal.aborted) throw new WaitCancelledError();
    const mine = await getKey(kv, myKey);
    if (!mine || mine.createRevision !== myRevision) throw new SessionExpiredError();
    const before = await lastCreatedBefore(kv, prefix, myRevision);
    if (!before.kv) return before.revision;
    const predecessorGone = kv.deleted(before.kv.key, before.revision);
    const myKeyGone = kv.deleted(myKey, before.revision);
    const onAbort = (): void => {
      predecessorGone.cancel();
      myKeyGone.cancel();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await Promise.race([predecessorGone.done, myKeyGone.done]);
    } catch (err) {
      if (!(err instanceof WaitCancelledError) || signal.aborted) throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      predecessorGone.cancel();
      myKeyGone.cancel();
      predecessorGone.done.catch(() => undefined);
      myKeyGone.done.catch(() => undefined);
    }
  }
}

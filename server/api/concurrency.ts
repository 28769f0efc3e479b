// Server-side building blocks of locks and elections (etcd's concurrency recipes, run inside the
// member): a key per contender under a common prefix, owned by the contender's lease; the contender
// with the lowest create revision holds it; the others wait for the deletion of the key just before
// theirs. All writes go through Raft like any client's; waits use the watch hub.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { rangeOf, type MvccEvent, type KeyValue } from '../mvcc/types.ts';
import { toServiceError, type ApiContext } from './context.ts';
import type { TxnResult } from '../mvcc/types.ts';
import type { TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';

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

export class WaitCancelledError extends Error {
  constructor() {
    super('wait cancelled');
    this.name = 'WaitCancelledError';
  }
}

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


/** The key under `prefix/` created first (the holder), or null. */
export function firstCreated(ctx: ApiContext, prefix: Buffer): KeyValue | null {
  const r = ctx.sm.store.range(rangeOf(prefix, prefixEnd(prefix), { limit: 1, sortOrder: 'ASCEND', sortTarget: 'CREATE' }));
  return r.kvs[0] ?? null;
}

/** The key under `prefix/` created last before `beforeRevision`, or null. */
function lastCreatedBefore(ctx: ApiContext, prefix: Buffer, beforeRevision: number): KeyValue | null {
  const r = ctx.sm.store.range(
    rangeOf(prefix, prefixEnd(prefix), { limit: 1, sortOrder: 'DESCEND', sortTarget: 'CREATE', maxCreateRevision: beforeRevision - 1 }),
  );
  return r.kvs[0] ?? null;
}

export function getKey(ctx: ApiContext, key: Buffer): KeyValue | null {
  return ctx.sm.store.range(rangeOf(key)).kvs[0] ?? null;
}

export async function proposeTxn(ctx: ApiContext, txn: TxnRequest): Promise<{ result: TxnResult; revision: number }> {
  const out = await ctx.proposeWrite({ txn });
  return { result: out.result as TxnResult, revision: out.revision };
}

export function putOp(key: Buffer, value: Buffer, lease: string, ignoreLease = false): WireRequestOp {
  return {
    request_put: { key, value, lease: ignoreLease ? '0' : lease, prev_kv: false, ignore_value: false, ignore_lease: ignoreLease },
  };
}

export function deleteOp(key: Buffer): WireRequestOp {
  return { request_delete_range: { key, range_end: Buffer.alloc(0), prev_kv: false } };
}

export function createRevisionEquals(key: Buffer, revision: number | string): TxnRequest['compare'][number] {
  return { result: 'EQUAL', target: 'CREATE', key, create_revision: String(revision), range_end: Buffer.alloc(0) };
}

/**
 * Resolves on the first event of `key` after `afterRevision` that matches `accept`. The returned
 * cancel() detaches the watcher (and rejects with WaitCancelledError).
 */
export function waitForEvent(
  ctx: ApiContext,
  key: Buffer,
  afterRevision: number,
  accept: (e: MvccEvent) => boolean,
): { done: Promise<MvccEvent>; cancel: () => void } {
  let handle = -1;
  let settled = false;
  let rejectFn: (err: Error) => void = () => undefined;
  const done = new Promise<MvccEvent>((resolve, reject) => {
    rejectFn = reject;
    const finish = (e: MvccEvent): void => {
      if (settled) return;
      settled = true;
      if (handle >= 0) ctx.sm.hub.cancel(handle);
      resolve(e);
    };
    handle = ctx.sm.hub.watch(
      { key, rangeEnd: Buffer.alloc(0), startRevision: afterRevision + 1, prevKv: false, noPut: false, noDelete: false },
      {
        onEvents: (events) => {
          const hit = events.find(accept);
          if (hit) finish(hit);
        },
        onCompacted: () => {
          // History before the wait is gone: the caller re-reads current state and waits again.
          if (settled) return;
          settled = true;
          reject(new WaitCancelledError());
        },
      },
    );
    // The hub may have delivered (and we cancelled) synchronously inside watch().
    if (settled && handle >= 0) ctx.sm.hub.cancel(handle);
  });
  return {
    done,
    cancel: () => {
      if (settled) return;
      settled = true;
      if (handle >= 0) ctx.sm.hub.cancel(handle);
      rejectFn(new WaitCancelledError());
    },
  };
}

/**
 * Waits until no key under `prefix` was created before `myRevision`, i.e. this contender is first.
 * Fails with SessionExpiredError if `myKey` disappears meanwhile. `signal` aborts the wait.
 */
export async function waitUntilFirst(ctx: ApiContext, prefix: Buffer, myKey: Buffer, myRevision: number, signal: AbortSignal): Promise<void> {
  for (;;) {
    if (signal.aborted) throw new WaitCancelledError();
    const mine = getKey(ctx, myKey);
    if (!mine || mine.createRevision !== myRevision) throw new SessionExpiredError();
    const before = lastCreatedBefore(ctx, prefix, myRevision);
    if (!before) return;
    const at = ctx.sm.store.currentRevision();
    const predecessorGone = waitForEvent(ctx, before.key, at, (e) => e.type === 'DELETE');
    const myKeyGone = waitForEvent(ctx, myKey, at, (e) => e.type === 'DELETE');
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

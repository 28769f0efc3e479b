// v3lockpb.Lock: a distributed mutex on leases (etcd's recipe, run in the server). Waiters queue
// fairly by the create revision of their key; the holder's key create revision is a monotonic
// fencing token; a holder whose lease ends loses the lock because its key is deleted with the lease.
import type * as grpc from '@grpc/grpc-js';
import type { ApiContext } from './context.ts';
import { grpcError } from '../etcd/errors.ts';
import {
  SessionExpiredError,
  asUnknownStatus,
  leaseOrSession,
  contenderKey,
  contenderPrefix,
  createRevisionEquals,
  deleteKey,
  getKey,
  putOp,
  waitUntilFirst,
} from './concurrency.ts';
import { contenderKv, type ContenderKv } from './contender-kv.ts';
import { checkDelete } from './validate.ts';

interface LockRequest {
  name: Buffer;
  lease: string;
}

/**
 * Takes (or re-finds) the contender's key and returns its create revision. A contender that calls
 * Lock again with the same lease keeps its place in the queue.
 */
async function enqueue(kv: ContenderKv, key: Buffer, lease: string): Promise<number> {
  const out = await kv.txn({
    compare: [createRevisionEquals(key, 0)],
    success: [putOp(key, Buffer.alloc(0), lease)],
    failure: [],
  });
  if (out.result.succeeded) return out.revision;
  const existing = await getKey(kv, key);
  if (!existing) throw new SessionExpiredError();
  return existing.createRevision;
}

export function lockService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  // The contenders' keys live where clients read them (the shards of a sharded cluster), as in etcd.
  const kv = contenderKv(ctx);
  return {
    Lock: (call: grpc.ServerUnaryCall<LockRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const req = call.request;
      const name = req.name ?? Buffer.alloc(0);
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      let key: Buffer = Buffer.alloc(0);
      let created = false;
      (async () => {
        await ctx.readBarrier();
        const lease = await leaseOrSession(ctx, String(req.lease ?? '0'));
        key = contenderKey(name, lease);
        const myRevision = await enqueue(kv, key, lease);
        created = true;
        const readAt = await waitUntilFirst(kv, contenderPrefix(name), key, myRevision, abort.signal);
        return { header: ctx.header(kv.headerRevision(readAt)), key };
      })().then(
        (res) => callback(null, res),
        (err: unknown) => {
          // A waiter that gives up leaves the queue, so it never blocks the ones behind it.
          if (created && !(err instanceof SessionExpiredError)) {
            deleteKey(kv, key).catch(() => undefined);
          }
          callback(asUnknownStatus(err, ctx));
        },
      );
    },

    Unlock: (call: grpc.ServerUnaryCall<{ key: Buffer }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const key = call.request.key ?? Buffer.alloc(0);
      const bad = checkDelete({ key, range_end: Buffer.alloc(0), prev_kv: false });
      if (bad) {
        callback(asUnknownStatus(grpcError(bad), ctx));
        return;
      }
      deleteKey(kv, key).then(
        (out) => callback(null, { header: ctx.header(out.revision) }),
        (err: unknown) => callback(asUnknownStatus(err, ctx)),
      );
    },
  };
}

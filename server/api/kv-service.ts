// etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact. Writes go through Raft; linearizable
// reads wait on a ReadIndex barrier and are then served from the local store; serializable reads are
// served locally at once. Range, DeleteRange, Txn and RangeStream replies are encoded by
// kv-response-encoder.ts in slices that yield to the event loop (Raft shares it), not by protobufjs.
import type * as grpc from '@grpc/grpc-js';
import { grpcError } from '../etcd/errors.ts';
import { ApiContext, toServiceError, unary } from './context.ts';
import { shardedKvOf, type ShardedKv } from './sharded-kv.ts';
import { checkDelete, checkPut, checkRange, checkTxn } from './validate.ts';
import { encodePutResponse } from './put-response-encoder.ts';
import { installPreframedResponses } from './preframed-response.ts';
import { ResponseTooLargeError, encodeDeleteRangeResponse, encodeRangeResponse, encodeTxnResponse } from './kv-response-encoder.ts';
import { kvToWire, rangeOpFromWire, txnIsReadOnly, txnOpFromWire } from '../etcd/convert.ts';
import type {
  CompactionRequest,
  DeleteRangeRequest,
  PutRequest,
  RangeRequest,
  TxnRequest,
  WireRequestOp,
} from '../etcd/wire-types.ts';
import type { DeleteRangeResult, PutResult, TxnResult } from '../mvcc/types.ts';
import { status as grpcStatus } from '@grpc/grpc-js';
import { endWithStatus } from './stream-status.ts';

/** The hand encoders' only refusal, as grpc-go words it for etcd (ResourceExhausted). */
function tooLarge(err: unknown): unknown {
  if (!(err instanceof ResponseTooLargeError)) return err;
  return grpcError({ code: grpcStatus.RESOURCE_EXHAUSTED, message: err.message });
}

function txnIsSerializable(t: TxnRequest): boolean {
  const ops = (list: WireRequestOp[]): boolean =>
    (list ?? []).every((op) =>
      op.request_range ? op.request_range.serializable : op.request_txn ? txnIsSerializable(op.request_txn) : true,
    );
  return ops(t.success) && ops(t.failure);
}

export function kvService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  if (!installPreframedResponses()) ctx.logger.warn('grpc-js internals moved: large Range responses are copied once more, synchronously');
  return ctx.shards === null ? oneShardKv(ctx) : shardedKvService(ctx, shardedKvOf(ctx, ctx.shards));
}

/** A sharded cluster's KV (sharded-kv.ts routes each request to its shard); replies encoded as below. */
function shardedKvService(ctx: ApiContext, kv: ShardedKv): grpc.UntypedServiceImplementation {
  return {
    Range: unary(ctx, async (req: RangeRequest): Promise<object> => {
      const bad = checkRange(req);
      if (bad) throw grpcError(bad);
      const { header, result } = await kv.range(req);
      return encodeRangeResponse(header, result.kvs, result.more, result.count).catch((err: unknown) => {
        throw tooLarge(err);
      });
    }),
    Put: unary(ctx, async (req: PutRequest): Promise<object> => {
      const bad = checkPut(req);
      if (bad) throw grpcError(bad);
      const { header, out } = await kv.put(req);
      const result = out.result as PutResult;
      if (!result.prevKv) return encodePutResponse(header);
      return { header, prev_kv: kvToWire(result.prevKv) };
    }),
    DeleteRange: unary(ctx, async (req: DeleteRangeRequest): Promise<object> => {
      const bad = checkDelete(req);
      if (bad) throw grpcError(bad);
      const { header, out } = await kv.deleteRange(req);
      const result = out.result as DeleteRangeResult;
      return encodeDeleteRangeResponse(header, result.deleted, result.prevKvs).catch((err: unknown) => {
        throw tooLarge(err);
      });
    }),
    Txn: unary(ctx, async (req: TxnRequest): Promise<object> => {
      const bad = checkTxn(req, ctx.limits.maxTxnOps);
      if (bad) throw grpcError(bad);
      const { header, out } = await kv.txn(req, txnIsSerializable(req));
      return encodeTxnResponse(header, out.result as TxnResult).catch((err: unknown) => {
        throw tooLarge(err);
      });
    }),
    Compact: unary(ctx, async (req: CompactionRequest) => {
      const out = await kv.compact(req);
      return { header: ctx.header(out.revision) };
    }),

    RangeStream: (call: grpc.ServerWritableStream<RangeRequest, unknown>) => {
      const bad = checkRange(call.request);
      if (bad) {
        endWithStatus(call, grpcError(bad));
        return;
      }
      kv.range(call.request)
        .then(async ({ header, result }) => {
          call.write(await encodeRangeResponse(header, result.kvs, result.more, result.count, 1).catch((err: unknown) => {
            throw tooLarge(err);
          }));
          call.end();
        })
        .catch((err: unknown) => endWithStatus(call, toServiceError(err, ctx.logger)));
    },
  };
}

/** One shard (DATA_GROUP_ID): exactly etcd's KV. */
function oneShardKv(ctx: ApiContext): grpc.UntypedServiceImplementation {
  return {
    Range: unary(ctx, async (req: RangeRequest): Promise<object> => {
      const bad = checkRange(req);
      if (bad) throw grpcError(bad);
      if (!req.serializable) await ctx.readBarrier();
      // The read itself is synchronous (one revision, and the key-values' buffers are the store's
      // immutable ones); the encoding, which is what costs for large values, yields between slices.
      const result = ctx.sm.store.range(rangeOpFromWire(req));
      return encodeRangeResponse(ctx.header(), result.kvs, result.more, result.count).catch((err: unknown) => {
        throw tooLarge(err);
      });
    }),

    // Without prev_kv the reply is encoded here (put-response-encoder.ts); the serializer passes it on.
    Put: unary(ctx, async (req: PutRequest): Promise<object> => {
      const bad = checkPut(req);
      if (bad) throw grpcError(bad);
      const out = await ctx.proposeWrite({ put: req });
      const result = out.result as PutResult;
      if (!result.prevKv) return encodePutResponse(ctx.header(out.revision));
      return { header: ctx.header(out.revision), prev_kv: kvToWire(result.prevKv) };
    }),

    DeleteRange: unary(ctx, async (req: DeleteRangeRequest): Promise<object> => {
      const bad = checkDelete(req);
      if (bad) throw grpcError(bad);
      const out = await ctx.proposeWrite({ delete_range: req });
      const result = out.result as DeleteRangeResult;
      return encodeDeleteRangeResponse(ctx.header(out.revision), result.deleted, result.prevKvs).catch((err: unknown) => {
        throw tooLarge(err);
      });
    }),

    Txn: unary(ctx, async (req: TxnRequest): Promise<object> => {
      const bad = checkTxn(req, ctx.limits.maxTxnOps);
      if (bad) throw grpcError(bad);
      if (txnIsReadOnly(req)) {
        // A txn that writes nothing needs no log entry: a read barrier gives it the same guarantee.
        if (!txnIsSerializable(req)) await ctx.readBarrier();
        const out = ctx.sm.store.txn(txnOpFromWire(req));
        return encodeTxnResponse(ctx.header(out.revision), out.result).catch((err: unknown) => {
          throw tooLarge(err);
        });
      }
      const out = await ctx.proposeWrite({ txn: req });
      return encodeTxnResponse(ctx.header(out.revision), out.result as TxnResult).catch((err: unknown) => {
        throw tooLarge(err);
      });
    }),

    Compact: unary(ctx, async (req: CompactionRequest) => {
      const out = await ctx.proposeWrite({ compaction: req });
      return { header: ctx.header(out.revision) };
    }),

    RangeStream: (call: grpc.ServerWritableStream<RangeRequest, unknown>) => {
      // etcd 3.7's streaming Range: one response carrying the whole range is a valid stream.
      const req = call.request;
      const bad = checkRange(req);
      if (bad) {
        endWithStatus(call, grpcError(bad));
        return;
      }
      (req.serializable ? Promise.resolve() : ctx.readBarrier())
        .then(async () => {
          const result = ctx.sm.store.range(rangeOpFromWire(req));
          // RangeStreamResponse{range_response = 1}, encoded as Range's reply is (kv-response-encoder.ts).
          call.write(await encodeRangeResponse(ctx.header(), result.kvs, result.more, result.count, 1).catch((err: unknown) => {
            throw tooLarge(err);
          }));
          call.end();
        })
        .catch((err: unknown) => endWithStatus(call, toServiceError(err, ctx.logger)));
    },
  };
}

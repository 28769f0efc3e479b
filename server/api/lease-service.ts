// etcdserverpb.Lease: grant and revoke go through Raft; keep-alive and time-to-live are answered by
// the leader's lease clocks (forwarded when this member does not lead); listing is local. On a sharded
// cluster a revoke answers once every shard deleted the lease's keys (lease-sweeper.ts), and
// time-to-live lists the keys of every shard.
import type * as grpc from '@grpc/grpc-js';
import { ApiContext, toServiceError, unary } from './context.ts';
import { ETCD_ERRORS, grpcError } from '../etcd/errors.ts';
import { num } from '../etcd/convert.ts';
import { MAX_LEASE_TTL_SECONDS, type LeaseManager } from './lease-manager.ts';
import { newLeaseId } from './concurrency.ts';
import { CoalescingStreamWriter, frameOf } from './stream-writer.ts';
import { etcdServices } from '../etcd/proto.ts';
import { endWithStatus } from './stream-status.ts';
import { leaseKeysByShard } from './lease-sweeper.ts';


/** A lease's keys: the cluster group's (one shard), or every shard's (a sharded cluster). */
async function attachedKeys(ctx: ApiContext, id: string): Promise<Buffer[]> {
  const shards = ctx.shards;
  if (shards === null) return ctx.sm.leases.keysOf(id);
  const perShard = await leaseKeysByShard(ctx, shards, id, ctx.deadlineMs());
  return [...perShard.values()].flat().sort(Buffer.compare);
}

export function leaseService(ctx: ApiContext, leases: LeaseManager): grpc.UntypedServiceImplementation {
  const serializeKeepAlive = etcdServices().Lease.LeaseKeepAlive.responseSerialize as (value: object) => Buffer;
  return {
    LeaseGrant: unary(ctx, async (req: { TTL: string; ID: string }) => {
      const requested = num(req.TTL);
      if (requested > MAX_LEASE_TTL_SECONDS) throw grpcError(ETCD_ERRORS.LEASE_TTL_TOO_LARGE);
      const ttlSeconds = Math.max(requested, leases.minTtlSeconds);
      const id = req.ID && req.ID !== '0' ? String(req.ID) : newLeaseId();
      const out = await ctx.proposeWrite({ lease_grant: { ID: id, TTL: String(ttlSeconds) } });
      return { header: ctx.header(out.revision), ID: id, TTL: ttlSeconds, error: '' };
    }),

    LeaseRevoke: unary(ctx, async (req: { ID: string }) => {
      const id = String(req.ID);
      const out = await ctx.proposeWrite({ lease_revoke: { ID: id } });
      const sweeper = ctx.leaseSweeper;
      if (sweeper === null) return { header: ctx.header(out.revision) };
      // A sharded cluster: answered once every shard deleted the lease's keys, as etcd answers once its
      // one store did; the header names the last shard revision the deletion used.
      const { generation } = out.result as { generation: number };
      const swept = await sweeper.sweepBy(id, generation, ctx.deadlineMs());
      return { header: ctx.header(swept > 0 ? swept : out.revision) };
    }),

    LeaseTimeToLive: unary(ctx, async (req: { ID: string; keys: boolean }) => {
      const id = String(req.ID);
      const remainingMs = await leases.remainingMs(id);
      const lease = ctx.sm.leases.get(id);
      if (remainingMs === null || !lease) return { header: ctx.header(), ID: id, TTL: -1, grantedTTL: 0, keys: [] };
      return {
        header: ctx.header(),
        ID: id,
        TTL: Math.floor(remainingMs / 1000),
        grantedTTL: lease.ttlSeconds,
        keys: req.keys ? await attachedKeys(ctx, id) : [],
      };
    }),

    LeaseLeases: unary(ctx, async () => {
      await ctx.readBarrier();
      const ids = ctx.sm.leases.all().map((l) => BigInt(l.id));
      ids.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return { header: ctx.header(), leases: ids.map((id) => ({ ID: id.toString() })) };
    }),

    LeaseKeepAlive: (call: grpc.ServerDuplexStream<{ ID: string }, unknown>) => {
      // Renewals run concurrently (several in flight on one stream share the leader's work or the
      // forwarding), and the answers go out in request order: a FIFO whose settled head is written.
      const queue: Array<{ id: string; ttl: number; err: unknown; settled: boolean }> = [];
      // Answers settled in one turn leave in one HTTP/2 write (grpc-js would send them one by one).
      const writer = new CoalescingStreamWriter(call as grpc.ServerDuplexStream<unknown, unknown>);
      let head = 0;
      let closed = false;
      let ending = false;
      const drain = (): void => {
        while (!closed && head < queue.length && queue[head].settled) {
          const r = queue[head];
          queue[head++] = undefined as never;
          if (r.err !== undefined) {
            writer.close();
            closed = true;
            endWithStatus(call, toServiceError(r.err, ctx.logger));
            return;
          }
          writer.write(frameOf(serializeKeepAlive, { header: ctx.header(), ID: r.id, TTL: r.ttl }));
        }
        if (head === queue.length) {
          queue.length = 0;
          head = 0;
          // The client half-closing still gets the answers to what it already sent.
          if (ending && !closed) {
            writer.close();
            closed = true;
            call.end();
          }
        }
      };
      call.on('data', (req: { ID: string }) => {
        if (closed) return;
        const r = { id: String(req.ID), ttl: 0, err: undefined as unknown, settled: false };
        queue.push(r);
        leases.renew(r.id).then(
          (ttl) => {
            r.ttl = ttl;
            r.settled = true;
            drain();
          },
          (err: unknown) => {
            r.err = err ?? new Error('renew failed');
            r.settled = true;
            drain();
          },
        );
      });
      call.on('end', () => {
        ending = true;
        drain();
      });
      const gone = (): void => {
        closed = true;
        writer.close();
      };
      call.on('cancelled', gone);
      call.on('error', gone);
    },
  };
}

// v3electionpb.Election: leader election on leases (etcd's recipe, run in the server). Candidates
// hold a key `<name>/<lease hex>`; the earliest-created one leads; Proclaim changes the leader's value
// only while its key (same create revision) still stands; Observe streams each leader and value.
import type * as grpc from '@grpc/grpc-js';
import type { ApiContext } from './context.ts';
import { OTHER_ERRORS, grpcError } from '../etcd/errors.ts';
import {
  SessionExpiredError,
  asUnknownStatus,
  contenderKey,
  contenderPrefix,
  createRevisionEquals,
  deleteKey,
  deleteOp,
  firstCreated,
  getKey,
  leaseOrSession,
  prefixEnd,
  putOp,
  waitUntilFirst,
} from './concurrency.ts';
import { contenderKv } from './contender-kv.ts';
import { kvToWire, num } from '../etcd/convert.ts';
import { endWithStatus } from './stream-status.ts';

interface LeaderKey {
  name: Buffer;
  key: Buffer;
  rev: string;
  lease: string;
}

function unaryCall<Req>(
  ctx: ApiContext,
  fn: (req: Req, signal: AbortSignal) => Promise<unknown>,
): (call: grpc.ServerUnaryCall<Req, unknown>, cb: grpc.sendUnaryData<unknown>) => void {
  return (call, cb) => {
    const abort = new AbortController();
    call.on('cancelled', () => abort.abort());
    fn(call.request, abort.signal).then(
      (res) => cb(null, res),
      (err: unknown) => cb(asUnknownStatus(err, ctx)),
    );
  };
}

export function electionService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  // The candidates' keys live where clients read them (the shards of a sharded cluster), as in etcd.
  const kv = contenderKv(ctx);
  return {
    Campaign: unaryCall(ctx, async (req: { name: Buffer; lease: string; value: Buffer }, signal) => {
      const name = req.name ?? Buffer.alloc(0);
      await ctx.readBarrier();
      const lease = await leaseOrSession(ctx, String(req.lease ?? '0'));
      const key = contenderKey(name, lease);
      const value = req.value ?? Buffer.alloc(0);
      const out = await kv.txn({
        compare: [createRevisionEquals(key, 0)],
        success: [putOp(key, value, lease)],
        failure: [],
      });
      let myRevision = out.revision;
      if (!out.result.succeeded) {
        // Campaigning again with the same lease keeps the place and updates the value (as etcd).
        const existing = await getKey(kv, key);
        // Gone since the txn found it: its lease ended meanwhile, as Lock's enqueue sees it.
        if (!existing) throw new SessionExpiredError();
        myRevision = existing.createRevision;
        if (!existing.value.equals(value)) await kv.txn({ compare: [], success: [putOp(key, value, '0', true)], failure: [] });
      }
      let readAt: number;
      try {
        readAt = await waitUntilFirst(kv, contenderPrefix(name), key, myRevision, signal);
      } catch (err) {
        // A candidate that gives up withdraws, as etcd's Campaign does on cancellation.
        deleteKey(kv, key).catch(() => undefined);
        throw err;
      }
      return { header: ctx.header(kv.headerRevision(readAt)), leader: { name, key, rev: String(myRevision), lease } };
    }),

    Proclaim: unaryCall(ctx, async (req: { leader: LeaderKey | null; value: Buffer }) => {
      if (!req.leader) throw grpcError(OTHER_ERRORS.MISSING_LEADER_KEY);
      const out = await kv.txn({
        compare: [createRevisionEquals(req.leader.key, num(req.leader.rev))],
        success: [putOp(req.leader.key, req.value ?? Buffer.alloc(0), '0', true)],
        failure: [],
      });
      if (!out.result.succeeded) throw grpcError(OTHER_ERRORS.ELECTION_NOT_LEADER);
      return { header: ctx.header(out.revision) };
    }),

    Leader: unaryCall(ctx, async (req: { name: Buffer }) => {
      const { kv: leader, revision } = await firstCreated(kv, contenderPrefix(req.name ?? Buffer.alloc(0)), true);
      if (!leader) throw grpcError(OTHER_ERRORS.ELECTION_NO_LEADER);
      return { header: ctx.header(kv.headerRevision(revision)), kv: kvToWire(leader) };
    }),

    Resign: unaryCall(ctx, async (req: { leader: LeaderKey | null }) => {
      if (!req.leader) throw grpcError(OTHER_ERRORS.MISSING_LEADER_KEY);
      // A stale leader key (another create revision) deletes nothing and is not an error, as in etcd.
      const out = await kv.txn({
        compare: [createRevisionEquals(req.leader.key, num(req.leader.rev))],
        success: [deleteOp(req.leader.key)],
        failure: [],
      });
      return { header: ctx.header(out.revision) };
    }),

    Observe: (call: grpc.ServerWritableStream<{ name: Buffer }, unknown>) => {
      const name = call.request.name ?? Buffer.alloc(0);
      let lastSent: { key: string; modRevision: number } | null = null;
      let closed = false;
      // One look at a time; a change meanwhile asks for one more after it.
      let looking = false;
      let again = false;
      // The first look is a linearizable read; later ones follow watch events already applied here.
      let fresh = true;
      const sendLeaderIfChanged = async (): Promise<void> => {
        if (closed) return;
        if (looking) {
          again = true;
          return;
        }
        looking = true;
        try {
          do {
            again = false;
            const { kv: leader, revision } = await firstCreated(kv, contenderPrefix(name), fresh);
            fresh = false;
            if (closed || !leader) continue; // no leader: wait for one
            const id = { key: leader.key.toString('hex'), modRevision: leader.modRevision };
            if (lastSent && lastSent.key === id.key && lastSent.modRevision === id.modRevision) continue;
            lastSent = id;
            call.write({ header: ctx.header(kv.headerRevision(revision)), kv: kvToWire(leader) });
          } while (again && !closed);
        } finally {
          looking = false;
        }
      };
      const look = (): void => {
        sendLeaderIfChanged().catch(() => {
          // A read that failed (no leader during an election): the next change or poll looks again.
        });
      };
      // Every change under the election prefix may change who leads or what the leader proclaims.
      const stopWatching = kv.onWrites(contenderPrefix(name), prefixEnd(contenderPrefix(name)), look);
      const stop = (): void => {
        if (closed) return;
        closed = true;
        stopWatching();
      };
      call.on('cancelled', stop);
      call.on('error', stop);
      call.on('close', stop);
      // The first answer must not be stale: it is a linearizable read. Observe is a long-lived stream: a
      // read that fails (no leader during an election) is retried while the observer stays connected, as
      // etcd's client-side Observe retries its Get.
      const firstRead = (attempt: number): void => {
        if (closed) return;
        sendLeaderIfChanged().catch((err: unknown) => {
          if (attempt >= 40) {
            stop();
            endWithStatus(call, asUnknownStatus(err, ctx));
            return;
          }
          setTimeout(() => firstRead(attempt + 1), 250);
        });
      };
      firstRead(0);
    },
  };
}

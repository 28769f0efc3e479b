// Puts the auth guard in front of the etcd services without changing them: each handler first
// resolves its caller and checks what the request reads (request-permissions.ts), then runs inside
// runAsCaller() so the writes it proposes carry the caller to the apply-time check. With auth off the
// checks pass at once; only the caller lookup and the async hop remain.
import type * as grpc from '@grpc/grpc-js';
import type { ApiContext } from './context.ts';
import { toServiceError } from './context.ts';
import { ETCD_ERRORS } from '../etcd/errors.ts';
import { asUnknownStatus, contenderKey, contenderPrefix, prefixEnd } from './concurrency.ts';
import { txnIsReadOnly } from '../etcd/convert.ts';
import { checkDelete, checkPut, checkRange, checkTxn } from './validate.ts';
import type { AuthGuard } from './auth-guard.ts';
import type { Caller } from '../shard/auth-wire.ts';
import { runAsCaller } from './caller-context.ts';
import { access, deleteNeeds, leaseIsSet, putNeeds, rangeNeeds, txnNeeds, type Requirement } from '../shard/request-permissions.ts';
import { leaseKeysByShard } from './lease-sweeper.ts';
import type { DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';
import { endWithStatus } from './stream-status.ts';

/** A request-time check; resolves true when it passed a read barrier the handler may skip. */
type Check<Req> = (caller: Caller, req: Req) => Promise<boolean | void> | boolean | void;
type ErrorMapper = (err: unknown) => grpc.ServiceError;
type AnyStream = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

const AUTHENTICATED: Requirement[] = [{ kind: 'authenticated' }];

function guardUnary<Req>(guard: AuthGuard, inner: grpc.UntypedHandleCall, check: Check<Req> | null, mapError: ErrorMapper): grpc.handleUnaryCall<Req, unknown> {
  const handler = inner as grpc.handleUnaryCall<Req, unknown>;
  return (call, callback) => {
    // A write with auth off and no token: its caller is known now, and the two promise hops of the
    // general path are a measurable share of a put's CPU at low concurrency.
    const known = check === null ? guard.callerNow(call) : null;
    if (known !== null) {
      try {
        runAsCaller(known, () => handler(call, callback));
      } catch (err) {
        callback(mapError(err));
      }
      return;
    }
    guard
      .callerOf(call)
      .then(async (caller) => ({ caller, fresh: check ? (await check(caller, call.request)) === true : false }))
      .then(
        ({ caller, fresh }) => {
          try {
            runAsCaller(caller, () => handler(call, callback), { freshBarrier: fresh });
          } catch (err) {
            callback(mapError(err));
          }
        },
        (err: unknown) => callback(mapError(err)),
      );
  };
}

/** Server-streaming and bidi calls: checked once, when the stream opens (its metadata is fixed then). */
function guardStream<Req>(guard: AuthGuard, inner: grpc.UntypedHandleCall, check: Check<Req> | null, mapError: ErrorMapper): grpc.UntypedHandleCall {
  const handler = inner as unknown as (call: AnyStream) => void;
  const guarded = (call: AnyStream): void => {
    guard
      .callerOf(call)
      .then(async (caller) => ({ caller, fresh: check ? (await check(caller, (call as { request?: Req }).request as Req)) === true : false }))
      .then(
        ({ caller, fresh }) => {
          try {
            runAsCaller(caller, () => handler(call), { freshBarrier: fresh });
          } catch (err) {
            endWithStatus(call, mapError(err));
          }
        },
        (err: unknown) => endWithStatus(call, mapError(err)),
      );
  };
  return guarded as unknown as grpc.UntypedHandleCall;
}

function txnIsSerializable(t: TxnRequest): boolean {
  const ops = (list: WireRequestOp[] | null | undefined): boolean =>
    (list ?? []).every((op) => (op.request_range ? op.request_range.serializable : op.request_txn ? txnIsSerializable(op.request_txn) : true));
  return ops(t.success) && ops(t.failure);
}

/**
 * The keys attached to each of `ids`: the cluster group's (one group; checked again at apply), or every
 * shard's (a sharded cluster: the shards hold the keys, and nothing checks them at apply).
 */
async function attachedKeys(ctx: ApiContext, ids: Iterable<string>): Promise<(id: string) => Buffer[]> {
  const shards = ctx.shards;
  if (shards === null) return (id) => ctx.sm.leases.keysOf(id);
  const found = new Map<string, Buffer[]>();
  for (const id of new Set(ids)) found.set(id, [...(await leaseKeysByShard(ctx, shards, id, ctx.deadlineMs())).values()].flat());
  return (id) => found.get(id) ?? [];
}

/** The lease a put attaches its key to (none: []). */
function putLeases(p: PutRequest): string[] {
  return leaseIsSet(p.lease) ? [String(p.lease)] : [];
}

/** The leases the puts of a txn (nested ones included) attach keys to. */
function txnLeases(t: TxnRequest): string[] {
  return [...(t.success ?? []), ...(t.failure ?? [])].flatMap((op) => (op.request_put ? putLeases(op.request_put) : op.request_txn ? txnLeases(op.request_txn) : []));
}

export function guardKv(ctx: ApiContext, guard: AuthGuard, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const mapError = (err: unknown): grpc.ServiceError => toServiceError(err, ctx.logger);
  const leaseKeys = (id: string): Buffer[] => ctx.sm.leases.keysOf(id);
  // A malformed request gets its validation error from the handler first, as etcd validates before
  // it checks permissions.
  const readRange: Check<RangeRequest> = (caller, req) => (checkRange(req) ? false : guard.requireForRead(caller, rangeNeeds(req), req.serializable));
  // Writes are decided at apply time, against the auth state at their place in the log (as in etcd);
  // here they only get their caller. On a sharded cluster the auth state lives in the cluster group and
  // the shards that apply the writes hold none, so a write is decided here instead, after a read barrier
  // on the cluster group (as a read is): a permission revoked before the request arrived is always seen;
  // one revoked while the write is in flight is not, which is the one difference from a single group.
  const sharded = ctx.shards !== null;
  // With auth off here nothing is checked and no barrier is paid: a write arriving in the moment between
  // an auth enable's commit and its apply on this member is let through, as one in flight would be.
  const writeCheck = <Req>(needs: (req: Req) => Requirement[], invalid: (req: Req) => unknown = () => null): Check<Req> | null =>
    sharded ? (caller, req) => (invalid(req) || !guard.enabled ? false : guard.requireForRead(caller, needs(req), false)) : null;
  // A put attaching a key to a lease needs write access to the lease's other keys (etcd's
  // checkLeasePuts); on a sharded cluster they are on the shards.
  const leasedWriteCheck = <Req>(leasesOf: (req: Req) => string[], needs: (req: Req, keys: (id: string) => Buffer[]) => Requirement[], invalid: (req: Req) => unknown): Check<Req> | null =>
    sharded
      ? async (caller, req) => {
          if (invalid(req) || !guard.enabled) return false;
          const leases = leasesOf(req);
          const keys = leases.length > 0 ? await attachedKeys(ctx, leases) : leaseKeys;
          return guard.requireForRead(caller, needs(req, keys), false);
        }
      : null;
  const leasedWrite = leasedWriteCheck<TxnRequest>(txnLeases, (req, keys) => txnNeeds(req, keys), () => null);
  return {
    ...impl,
    Range: guardUnary(guard, impl.Range, readRange, mapError),
    RangeStream: guardStream(guard, impl.RangeStream, readRange, mapError),
    Put: guardUnary<PutRequest>(guard, impl.Put, leasedWriteCheck<PutRequest>(putLeases, (req, keys) => putNeeds(req, keys), checkPut), mapError),
    DeleteRange: guardUnary<DeleteRangeRequest>(guard, impl.DeleteRange, writeCheck((req) => deleteNeeds(req), checkDelete), mapError),
    Compact: guardUnary(guard, impl.Compact, writeCheck(() => AUTHENTICATED), mapError),
    Txn: guardUnary<TxnRequest>(
      guard,
      impl.Txn,
      // A read-only txn never reaches the log, so it is decided here, like a Range.
      (caller, req) => {
        if (checkTxn(req, ctx.limits.maxTxnOps)) return false;
        if (txnIsReadOnly(req)) return guard.requireForRead(caller, txnNeeds(req, leaseKeys), txnIsSerializable(req));
        return leasedWrite === null ? false : leasedWrite(caller, req);
      },
      mapError,
    ),
  };
}

export function guardLease(ctx: ApiContext, guard: AuthGuard, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const mapError = (err: unknown): grpc.ServiceError => toServiceError(err, ctx.logger);
  const authenticated: Check<unknown> = (caller) => guard.requireForRead(caller, AUTHENTICATED, true);
  return {
    ...impl,
    LeaseGrant: guardUnary(guard, impl.LeaseGrant, authenticated, mapError),
    // Revoking deletes the lease's keys: the caller needs write access to every one (etcd). One group
    // checks it at apply; a sharded cluster's keys are on the shards, so it is checked here.
    LeaseRevoke: guardUnary<{ ID: string }>(
      guard,
      impl.LeaseRevoke,
      ctx.shards === null
        ? authenticated
        : async (caller, req) => {
            await guard.requireForRead(caller, AUTHENTICATED, false);
            if (guard.enabled) guard.require(caller, (await attachedKeys(ctx, [String(req.ID)]))(String(req.ID)).map((k) => access('write', k)));
            return true;
          },
      mapError,
    ),
    LeaseLeases: guardUnary(guard, impl.LeaseLeases, authenticated, mapError),
    LeaseTimeToLive: guardUnary<{ ID: string; keys: boolean }>(
      guard,
      impl.LeaseTimeToLive,
      // Listing a lease's keys reveals them: the caller must be able to read every one (etcd 3.5).
      async (caller, req) => {
        await guard.requireForRead(caller, AUTHENTICATED, false);
        if (req.keys && guard.enabled) guard.require(caller, (await attachedKeys(ctx, [String(req.ID)]))(String(req.ID)).map((k) => access('read', k)));
        return true;
      },
      mapError,
    ),
    LeaseKeepAlive: guardStream(guard, impl.LeaseKeepAlive, authenticated, mapError),
  };
}

/** What taking a lock or campaigning touches: reads the whole `<name>/` queue, writes its own key. */
function contenderNeeds(name: Buffer, lease: string): Requirement[] {
  const prefix = contenderPrefix(name);
  const own = lease && lease !== '0' ? access('write', contenderKey(name, lease)) : access('write', prefix, prefixEnd(prefix));
  return [access('read', prefix, prefixEnd(prefix)), own];
}

function observerNeeds(name: Buffer): Requirement[] {
  const prefix = contenderPrefix(name);
  return [access('read', prefix, prefixEnd(prefix))];
}

export function guardLock(ctx: ApiContext, guard: AuthGuard, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  // etcd's lock service returns its failures as plain errors: status UNKNOWN with etcd's text.
  const mapError = (err: unknown): grpc.ServiceError => asUnknownStatus(err, ctx);
  return {
    ...impl,
    Lock: guardUnary<{ name: Buffer; lease: string }>(
      guard,
      impl.Lock,
      (caller, req) => guard.requireForRead(caller, contenderNeeds(req.name ?? Buffer.alloc(0), String(req.lease ?? '0')), false),
      mapError,
    ),
    Unlock: guardUnary(guard, impl.Unlock, null, mapError),
  };
}

export function guardElection(ctx: ApiContext, guard: AuthGuard, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const mapError = (err: unknown): grpc.ServiceError => asUnknownStatus(err, ctx);
  const leader: Check<{ name: Buffer }> = (caller, req) => guard.requireForRead(caller, observerNeeds(req.name ?? Buffer.alloc(0)), false);
  // Observe retries its first read barrier through elections itself; with auth off, do not add one
  // here that would fail the stream instead.
  const observe: Check<{ name: Buffer }> = (caller, req) => (guard.enabled ? leader(caller, req) : false);
  return {
    ...impl,
    Campaign: guardUnary<{ name: Buffer; lease: string }>(
      guard,
      impl.Campaign,
      (caller, req) => guard.requireForRead(caller, contenderNeeds(req.name ?? Buffer.alloc(0), String(req.lease ?? '0')), false),
      mapError,
    ),
    Proclaim: guardUnary(guard, impl.Proclaim, null, mapError),
    Resign: guardUnary(guard, impl.Resign, null, mapError),
    Leader: guardUnary(guard, impl.Leader, leader, mapError),
    Observe: guardStream(guard, impl.Observe, observe, mapError),
  };
}

/**
 * Root only, decided after a read barrier while auth is on (nothing to decide while it is off). The
 * handlers it guards take no read barrier of their own, so none is marked as already passed.
 */
function adminCheck(guard: AuthGuard): Check<unknown> {
  return async (caller) => {
    if (guard.enabled) await guard.requireForRead(caller, [{ kind: 'admin' }], false);
    return false;
  };
}

/** Membership changes are for root, as in etcd (checkMembershipOperationPermission); MemberList stays open. */
export function guardCluster(ctx: ApiContext, guard: AuthGuard, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const mapError = (err: unknown): grpc.ServiceError => toServiceError(err, ctx.logger);
  const admin = adminCheck(guard);
  return {
    ...impl,
    MemberAdd: guardUnary(guard, impl.MemberAdd, admin, mapError),
    MemberRemove: guardUnary(guard, impl.MemberRemove, admin, mapError),
    MemberPromote: guardUnary(guard, impl.MemberPromote, admin, mapError),
    MemberUpdate: guardUnary(guard, impl.MemberUpdate, admin, mapError),
  };
}

/**
 * Placement is cluster metadata like MemberList and Status: any caller may read it, but a token that is
 * presented must be valid (the guard resolves the caller before the handler runs).
 */
export function guardPlacement(ctx: ApiContext, guard: AuthGuard, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const mapError = (err: unknown): grpc.ServiceError => toServiceError(err, ctx.logger);
  const open: Check<unknown> = () => false;
  return {
    GetPlacement: guardUnary(guard, impl.GetPlacement, open, mapError),
    LocateKey: guardUnary(guard, impl.LocateKey, open, mapError),
    // Moving every replica off a member is a membership operation: root only, as MemberRemove.
    Drain: guardUnary(guard, impl.Drain, adminCheck(guard), mapError),
    // A leadership move, as Maintenance.MoveLeader: root only.
    TransferLeaderships: guardUnary(guard, impl.TransferLeaderships, adminCheck(guard), mapError),
  };
}

/** Leadership moves and defragmentation are for root, as in etcd; Status and Alarm stay open. */
export function guardMaintenance(ctx: ApiContext, guard: AuthGuard, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const mapError = (err: unknown): grpc.ServiceError => toServiceError(err, ctx.logger);
  const admin = adminCheck(guard);
  return {
    ...impl,
    MoveLeader: guardUnary(guard, impl.MoveLeader, admin, mapError),
    Defragment: guardUnary(guard, impl.Defragment, admin, mapError),
  };
}

interface WatchCreate {
  key: Buffer;
  range_end: Buffer;
  watch_id: string;
}

/**
 * Watch: every create request is checked when it arrives. One the caller may not read is answered
 * created+canceled with etcd's reason and never reaches the watch service; the stream stays open.
 * Requests are handed on strictly in arrival order (a check may wait for a read barrier), so create
 * answers keep matching the order of the creates, which clients rely on.
 */
export function guardWatch(ctx: ApiContext, guard: AuthGuard, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const inner = impl.Watch as unknown as (call: grpc.ServerDuplexStream<unknown, unknown>) => void;
  return {
    ...impl,
    Watch: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      const caller = guard.callerOf(call).then(
        (c) => ({ ok: true as const, caller: c }),
        () => ({ ok: false as const }),
      );
      let chain: Promise<unknown> = Promise.resolve();
      let closed = false;
      for (const event of ['cancelled', 'error', 'close']) call.on(event, () => (closed = true));

      const refusalOf = async (create: WatchCreate): Promise<string | null> => {
        if (!guard.enabled) return null;
        const who = await caller;
        if (!who.ok) return ETCD_ERRORS.INVALID_AUTH_TOKEN.message;
        const key = create.key && create.key.length > 0 ? create.key : Buffer.from([0]);
        const needs = [access('read', key, create.range_end ?? Buffer.alloc(0))];
        try {
          guard.require(who.caller, needs);
          return null;
        } catch {
          // Refuse only what is still refused once this member has caught up (a grant may be in flight).
          await ctx.readBarrier().catch(() => undefined);
          try {
            guard.require(who.caller, needs);
            return null;
          } catch {
            return ETCD_ERRORS.PERMISSION_DENIED.message;
          }
        }
      };

      const admit = async (req: { create_request?: WatchCreate | null }): Promise<boolean> => {
        if (!req.create_request) return true;
        const reason = await refusalOf(req.create_request);
        if (reason === null) return true;
        if (!closed) {
          call.write({ header: ctx.header(), watch_id: req.create_request.watch_id, created: true, canceled: true, cancel_reason: reason });
        }
        return false;
      };

      // One step of the stream's ordered work; a failure is logged and never stops the steps after it.
      const inOrder = async (step: () => Promise<void>): Promise<void> => {
        try {
          await step();
        } catch (err) {
          ctx.logger.error({ err }, 'watch request handling failed');
        }
      };

      const filtered = new Proxy(call, {
        get(target, prop) {
          if (prop === 'on' || prop === 'addListener') {
            return (event: string, listener: (...args: unknown[]) => void) => {
              if (event === 'data') {
                target.on('data', (req: { create_request?: WatchCreate | null }) => {
                  chain = chain.then(() => inOrder(async () => {
                    if ((await admit(req)) && !closed) listener(req);
                  }));
                });
              } else if (event === 'end') {
                // The client's half-close must not overtake creates still being checked.
                target.on('end', (...args: unknown[]) => {
                  chain = chain.then(() => inOrder(async () => listener(...args)));
                });
              } else {
                target.on(event, listener);
              }
              return filtered;
            };
          }
          const value: unknown = Reflect.get(target, prop, target);
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      inner(filtered);
    },
  };
}

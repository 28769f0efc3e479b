// gRPC synod.v1.Placement (proto/synod/placement.proto) on the client port: GetPlacement answers the
// same view as `GET /placement`, LocateKey the slot and shard of a key, Drain marks a member draining,
// TransferLeaderships hands this member's shard and metadata leaderships over (before it is stopped). Read-only and local: it shows
// what this member has applied (like etcd's Maintenance.Status), so a learner answers too. It sits
// behind the auth guard and the wire-strictness interceptor like every client-facing service.
import * as grpc from '@grpc/grpc-js';
import type { ApiContext } from './context.ts';
import { unary } from './context.ts';
import { ETCD_ERRORS, grpcError } from '../etcd/errors.ts';
import { LOADER_OPTIONS } from '../etcd/proto.ts';
import { grpcServiceClient } from '../protobuf/proto-schemas.ts';
import { observePlacement } from './placement-source.ts';
import { buildPlacementView, locateKey, type PlacementView } from '../placement/placement-view.ts';
import type { ResponseHeader } from '../etcd/wire-types.ts';

/** Drain moves shard replicas: a cluster of one group has none to move. */
const NOT_SHARDED = { code: grpc.status.FAILED_PRECONDITION, message: 'synod: drain needs a sharded cluster (--shards > 1); a one-group cluster has no replicas to move' };

export const PLACEMENT_SERVICE_NAME = 'synod.v1.Placement';

let constructor: grpc.ServiceClientConstructor | undefined;

/** The client constructor of synod.v1.Placement (its `.service` is the server's definition). */
export function placementClientConstructor(): grpc.ServiceClientConstructor {
  if (!constructor) {
    constructor = grpcServiceClient(PLACEMENT_SERVICE_NAME, LOADER_OPTIONS);
  }
  return constructor;
}

/** GetPlacementResponse as proto-loader hands it over (keepCase, 64-bit integers as decimal strings). */
export interface GetPlacementWire {
  header?: ResponseHeader;
  version: string;
  members: Array<{ id: string; name: string; zone: string; client_urls: string[]; peer_urls: string[] }>;
  shards: Array<{ id: number; first_slot: number; last_slot: number; replicas: string[]; learners: string[]; leader: string; revision: string }>;
  moves: { pending: string; in_progress: string; done: string };
  /** Hex; '' on a one-group cluster or when no leader is known. */
  metadata_leader: string;
}

export interface LocateKeyWire {
  header?: ResponseHeader;
  key: Buffer;
  slot: number;
  shard: number;
}

export function viewToWire(view: PlacementView, header: ResponseHeader, metadataLeaderId = 0): GetPlacementWire {
  return {
    header,
    metadata_leader: metadataLeaderId === 0 ? '' : metadataLeaderId.toString(16),
    version: String(view.version),
    members: view.members.map((m) => ({ id: m.id, name: m.name, zone: m.zone, client_urls: m.clientURLs, peer_urls: m.peerURLs })),
    shards: view.shards.map((s) => ({
      id: s.id,
      first_slot: s.slots[0],
      last_slot: s.slots[1],
      replicas: s.replicas,
      learners: s.learners,
      leader: s.leader ?? '',
      revision: String(s.revision),
    })),
    moves: { pending: String(view.moves.pending), in_progress: String(view.moves.inProgress), done: String(view.moves.done) },
  };
}

/** The inverse of viewToWire: the brief's JSON shape from a GetPlacement answer (`synod placement --json`). */
export function wireToView(w: GetPlacementWire): PlacementView {
  return {
    version: Number(w.version),
    members: w.members.map((m) => ({ id: m.id, name: m.name, zone: m.zone, clientURLs: m.client_urls, peerURLs: m.peer_urls })),
    shards: w.shards.map((s) => ({
      id: s.id,
      slots: [s.first_slot, s.last_slot],
      replicas: s.replicas,
      learners: s.learners,
      leader: s.leader === '' ? null : s.leader,
      revision: Number(s.revision),
    })),
    moves: { pending: Number(w.moves.pending), inProgress: Number(w.moves.in_progress), done: Number(w.moves.done) },
  };
}

export function placementService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  return {
    GetPlacement: unary<unknown, GetPlacementWire>(ctx, async () => {
      await ctx.shards?.refreshRemoteViews(Math.min(ctx.deadlineMs(), Date.now() + 1_000)).catch(() => undefined);
      const observation = observePlacement(ctx);
      return viewToWire(buildPlacementView(observation), ctx.header(), ctx.shards?.metadataLeaderId() ?? 0);
    }),
    Drain: unary<{ member_id: string; cancel: boolean }, { header: ResponseHeader; draining: boolean; replicas_remaining: number }>(ctx, async (req) => {
      if (ctx.shards === null) throw grpcError(NOT_SHARDED);
      const memberId = Number(req.member_id);
      if (!ctx.members().some((m) => m.id === memberId)) throw grpcError(ETCD_ERRORS.MEMBER_NOT_FOUND);
      const out = await ctx.shards.drain(memberId, Boolean(req.cancel), ctx.deadlineMs());
      return { header: ctx.header(), draining: out.draining, replicas_remaining: out.replicasRemaining };
    }),
    TransferLeaderships: unary<unknown, { header: ResponseHeader; transferred: number; leaderships_remaining: number }>(ctx, async () => {
      // A one-group cluster has no shard leaderships: nothing to hand over (MoveLeader moves its leader).
      if (ctx.shards === null) return { header: ctx.header(), transferred: 0, leaderships_remaining: 0 };
      const out = await ctx.shards.transferLeaderships(ctx.deadlineMs());
      return { header: ctx.header(), transferred: out.transferred, leaderships_remaining: out.remaining };
    }),
    LocateKey: unary<{ key: Buffer }, LocateKeyWire>(ctx, async (req) => {
      if (req.key.length === 0) throw grpcError(ETCD_ERRORS.EMPTY_KEY);
      return { header: ctx.header(), key: req.key, ...locateKey(observePlacement(ctx).slotMap, req.key) };
    }),
  };
}

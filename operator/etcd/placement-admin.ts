// The operator's view of a sharded cluster's placement, over Synod's gRPC synod.v1.Placement service
// (proto/synod/placement.proto): GetPlacement (members, each shard's voters, learners, leader and
// applied revision, move counts, the metadata group's leader), Drain / undrain (move every replica off
// a member before it is removed), and TransferLeaderships (hand a member's shard and metadata group
// leaderships over before its pod is deleted). PlacementAdmin is the interface the reconciler uses;
// GrpcPlacementAdmin implements it with @grpc/grpc-js over the repository's .proto files, with the same
// channel recovery options as the etcd admin client (a pod's name that moved is found again in 2 s).

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { RECOVERY_CHANNEL_OPTIONS } from '../../server/transport/channel-recovery.ts';
import { hexToId, needsNewToken } from './etcd-admin.ts';

/** One shard as the member asked sees it. Member ids are hex, as etcdctl prints them. */
export interface PlacementShard {
  id: number;
  firstSlot: number;
  lastSlot: number;
  voters: string[];
  learners: string[];
  /** '' when the member asked knows no leader. */
  leader: string;
  /** The applied revision of this member's replica (where it hosts one), else as its hosts last answered. */
  revision: number;
}

export interface PlacementSnapshot {
  /** Index of the last placement or membership change (grows only). */
  version: number;
  members: { id: string; name: string; zone: string }[];
  shards: PlacementShard[];
  moves: { pending: number; inProgress: number; done: number };
  /** The metadata group's leader (hex); '' on a one-group cluster or when none is known. */
  metadataLeader: string;
}

export interface DrainResult {
  draining: boolean;
  /** Shard replicas (voters and learners) still on the member. */
  replicasRemaining: number;
}

export interface TransferLeadershipsResult {
  transferred: number;
  /** Leaderships the member still holds in groups that have another voter (0: safe to stop it). */
  remaining: number;
}

export interface PlacementAdmin {
  /** GetPlacement on one member (its client endpoint, host:port): that member's view. */
  getPlacement(endpoint: string): Promise<PlacementSnapshot>;
  /** Placement/Drain of `memberId` (hex), or undrain with `cancel`, through the first endpoint that answers. */
  drain(endpoints: readonly string[], memberId: string, cancel?: boolean): Promise<DrainResult>;
  /** Placement/TransferLeaderships sent to the member itself. */
  transferLeaderships(memberEndpoint: string): Promise<TransferLeadershipsResult>;
  close(): void;
}

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');
const PLACEMENT_PROTO = 'synod/placement.proto';

interface WirePlacement {
  version: string;
  members: { id: string; name: string; zone: string }[];
  shards: { id: number; first_slot: number; last_slot: number; replicas: string[]; learners: string[]; leader: string; revision: string }[];
  moves: { pending: string; in_progress: string; done: string } | null;
  metadata_leader: string;
}

type UnaryCall<Req, Res> = (request: Req, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: Res) => void) => grpc.ClientUnaryCall;

interface PlacementClient extends grpc.Client {
  GetPlacement: UnaryCall<object, WirePlacement>;
  Drain: UnaryCall<{ member_id: string; cancel: boolean }, { draining: boolean; replicas_remaining: number }>;
  TransferLeaderships: UnaryCall<object, { transferred: number; leaderships_remaining: number }>;
}

type ClientConstructor = new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) => PlacementClient;

let placementConstructor: ClientConstructor | undefined;

function loadConstructor(): ClientConstructor {
  if (placementConstructor === undefined) {
    const definition = protoLoader.loadSync(PLACEMENT_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [PROTO_ROOT] });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { synod: { v1: { Placement: ClientConstructor } } };
    placementConstructor = loaded.synod.v1.Placement;
  }
  return placementConstructor;
}

export function snapshotFromWire(wire: WirePlacement): PlacementSnapshot {
  return {
    version: Number(wire.version),
    members: wire.members.map((m) => ({ id: m.id, name: m.name, zone: m.zone })),
    shards: wire.shards.map((s) => ({
      id: s.id, firstSlot: s.first_slot, lastSlot: s.last_slot, voters: s.replicas, learners: s.learners, leader: s.leader, revision: Number(s.revision),
    })),
    moves: { pending: Number(wire.moves?.pending ?? 0), inProgress: Number(wire.moves?.in_progress ?? 0), done: Number(wire.moves?.done ?? 0) },
    metadataLeader: wire.metadata_leader,
  };
}

export interface GrpcPlacementAdminOptions {
  callTimeoutMs?: number;
  /** TransferLeaderships waits for every handover: a longer deadline than a read. */
  transferTimeoutMs?: number;
  channelOptions?: grpc.ChannelOptions;
  /** The cluster's TLS credentials (default: plaintext). */
  credentials?: grpc.ChannelCredentials;
  /**
   * Each call's metadata (the root token on a cluster with auth: Drain and TransferLeaderships are
   * admin calls); `refresh` after a token was refused. Default: none.
   */
  metadata?: (endpoint: string, refresh: boolean) => Promise<grpc.Metadata>;
}

export class GrpcPlacementAdmin implements PlacementAdmin {
  readonly #callTimeoutMs: number;
  readonly #transferTimeoutMs: number;
  readonly #channelOptions: grpc.ChannelOptions;
  readonly #clients = new Map<string, PlacementClient>();
  readonly #credentials: grpc.ChannelCredentials;
  readonly #metadata: (endpoint: string, refresh: boolean) => Promise<grpc.Metadata>;

  constructor(options: GrpcPlacementAdminOptions = {}) {
    this.#callTimeoutMs = options.callTimeoutMs ?? 3_000;
    this.#transferTimeoutMs = options.transferTimeoutMs ?? 10_000;
    this.#channelOptions = { ...RECOVERY_CHANNEL_OPTIONS, ...options.channelOptions };
    this.#credentials = options.credentials ?? grpc.credentials.createInsecure();
    this.#metadata = options.metadata ?? (() => Promise.resolve(new grpc.Metadata()));
  }

  async getPlacement(endpoint: string): Promise<PlacementSnapshot> {
    const client = this.#client(endpoint);
    return snapshotFromWire(await this.#call(endpoint, client, client.GetPlacement, {}, this.#callTimeoutMs));
  }

  async drain(endpoints: readonly string[], memberId: string, cancel = false): Promise<DrainResult> {
    let lastError: unknown = new Error('no endpoints');
    for (const endpoint of endpoints) {
      const client = this.#client(endpoint);
      try {
        const out = await this.#call(endpoint, client, client.Drain, { member_id: hexToId(memberId), cancel }, this.#callTimeoutMs);
        return { draining: out.draining, replicasRemaining: out.replicas_remaining };
      } catch (error) {
        lastError = error;
        // A refusal (not sharded on a subset, no such member) is the cluster's answer, not a dead endpoint.
        const code = (error as { code?: number }).code;
        if (code === grpc.status.FAILED_PRECONDITION || code === grpc.status.NOT_FOUND || code === grpc.status.PERMISSION_DENIED) throw error;
      }
    }
    throw lastError;
  }

  async transferLeaderships(memberEndpoint: string): Promise<TransferLeadershipsResult> {
    const client = this.#client(memberEndpoint);
    const out = await this.#call(memberEndpoint, client, client.TransferLeaderships, {}, this.#transferTimeoutMs);
    return { transferred: out.transferred, remaining: out.leaderships_remaining };
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  #client(endpoint: string): PlacementClient {
    let client = this.#clients.get(endpoint);
    if (client === undefined) {
      client = new (loadConstructor())(endpoint, this.#credentials, this.#channelOptions);
      this.#clients.set(endpoint, client);
    }
    return client;
  }

  /** One call with the cluster's metadata; once more with a fresh token when the token was refused. */
  async #call<Req, Res>(endpoint: string, client: grpc.Client, fn: UnaryCall<Req, Res>, request: Req, timeoutMs: number): Promise<Res> {
    const once = async (refresh: boolean): Promise<Res> => {
      const metadata = await this.#metadata(endpoint, refresh);
      return new Promise((resolve, reject) => {
        fn.call(client, request, metadata, { deadline: Date.now() + timeoutMs }, (error, response) => {
          if (error !== null) reject(error);
          else resolve(response as Res);
        });
      });
    };
    try {
      return await once(false);
    } catch (error) {
      if (!needsNewToken(error)) throw error;
      return once(true);
    }
  }
}

// The operator's view of a cluster's membership, through etcd's v3 gRPC API (Cluster and Maintenance
// services), so it works against etcd and Synod alike. EtcdAdmin is the interface the reconciler
// uses; GrpcEtcdAdmin implements it with @grpc/grpc-js over the repository's etcd .proto files.
//
// etcd rules followed here: MemberAdd/Remove/Promote go to any member (they are proposed through Raft);
// MoveLeader must be sent to the current leader; member ids are uint64 (decimal strings on the wire,
// hex in etcdctl's output and in this interface).
//
// Channels are cached per endpoint and use the peer transport's recovery options
// (server/transport/channel-recovery.ts): a member's pod name that did not resolve yet, or that moved
// to a new IP, is found again within 2 s instead of after the 30 s re-resolution limit and a reconnect
// backoff grown to minutes.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { RECOVERY_CHANNEL_OPTIONS } from '../../server/transport/channel-recovery.ts';

export interface EtcdMember {
  /** Hex member id, as etcdctl prints it. */
  id: string;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

export interface EtcdEndpointStatus {
  /** Hex id of the member that answered. */
  memberId: string;
  /** Hex id of the leader it knows ('0' when none). */
  leaderId: string;
  raftIndex: number;
  raftAppliedIndex: number;
  raftTerm: number;
  version: string;
  isLearner: boolean;
}

export interface EtcdAdmin {
  /** MemberList through the first endpoint that answers. */
  memberList(endpoints: readonly string[]): Promise<EtcdMember[]>;
  /** Maintenance.Status of one member (its client endpoint, host:port). */
  status(endpoint: string): Promise<EtcdEndpointStatus>;
  memberAddLearner(endpoints: readonly string[], peerUrl: string): Promise<EtcdMember>;
  memberPromote(endpoints: readonly string[], memberId: string): Promise<void>;
  memberRemove(endpoints: readonly string[], memberId: string): Promise<void>;
  /** MoveLeader sent to the leader's own endpoint. */
  moveLeader(leaderEndpoint: string, targetMemberId: string): Promise<void>;
  close(): void;
}

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');
const RPC_PROTO = 'etcd/api/etcdserverpb/rpc.proto';

interface WireMember {
  ID: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

interface WireStatus {
  header: { member_id: string } | null;
  leader: string;
  raftIndex: string;
  raftTerm: string;
  raftAppliedIndex: string;
  version: string;
  isLearner: boolean;
}

type UnaryCall<Req, Res> = (request: Req, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: Res) => void) => grpc.ClientUnaryCall;

interface ClusterClient extends grpc.Client {
  MemberList: UnaryCall<{ linearizable: boolean }, { members: WireMember[] }>;
  MemberAdd: UnaryCall<{ peerURLs: string[]; isLearner: boolean }, { member: WireMember | null }>;
  MemberRemove: UnaryCall<{ ID: string }, object>;
  MemberPromote: UnaryCall<{ ID: string }, object>;
}

interface MaintenanceClient extends grpc.Client {
  Status: UnaryCall<object, WireStatus>;
  MoveLeader: UnaryCall<{ targetID: string }, object>;
}

type ClientConstructor<C> = new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) => C;

let constructors: { Cluster: ClientConstructor<ClusterClient>; Maintenance: ClientConstructor<MaintenanceClient> } | undefined;

function loadConstructors(): NonNullable<typeof constructors> {
  if (constructors === undefined) {
    const definition = protoLoader.loadSync(RPC_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [PROTO_ROOT] });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { etcdserverpb: Record<string, unknown> };
    constructors = {
      Cluster: loaded.etcdserverpb['Cluster'] as ClientConstructor<ClusterClient>,
      Maintenance: loaded.etcdserverpb['Maintenance'] as ClientConstructor<MaintenanceClient>,
    };
  }
  return constructors;
}

export function idToHex(decimal: string): string {
  return BigInt(decimal).toString(16);
}

export function hexToId(hex: string): string {
  return BigInt(`0x${hex}`).toString(10);
}

/** "http://host:2379" → "host:2379" (gRPC targets have no scheme). */
export function endpointOf(url: string): string {
  return url.replace(/^https?:\/\//, '').replace(/\/$/, '');
}

export interface GrpcEtcdAdminOptions {
  /** Deadline of each call. */
  callTimeoutMs?: number;
  /** Overrides of the channels' options (tests reproduce grpc-js defaults with it). */
  channelOptions?: grpc.ChannelOptions;
}

export class GrpcEtcdAdmin implements EtcdAdmin {
  readonly #callTimeoutMs: number;
  readonly #channelOptions: grpc.ChannelOptions;
  readonly #clusterClients = new Map<string, ClusterClient>();
  readonly #maintenanceClients = new Map<string, MaintenanceClient>();

  constructor(options: GrpcEtcdAdminOptions = {}) {
    this.#callTimeoutMs = options.callTimeoutMs ?? 3_000;
    this.#channelOptions = { ...RECOVERY_CHANNEL_OPTIONS, ...options.channelOptions };
  }

  async memberList(endpoints: readonly string[]): Promise<EtcdMember[]> {
    return this.#firstAnswer(endpoints, async (endpoint) => {
      const response = await this.#callOn(this.#cluster(endpoint), (c) => c.MemberList, { linearizable: false });
      return response.members.map(toMember);
    });
  }

  async status(endpoint: string): Promise<EtcdEndpointStatus> {
    const response = await this.#callOn(this.#maintenance(endpoint), (c) => c.Status, {});
    return {
      memberId: idToHex(response.header?.member_id ?? '0'),
      leaderId: idToHex(response.leader || '0'),
      raftIndex: Number(response.raftIndex),
      raftAppliedIndex: Number(response.raftAppliedIndex),
      raftTerm: Number(response.raftTerm),
      version: response.version,
      isLearner: response.isLearner,
    };
  }

  async memberAddLearner(endpoints: readonly string[], peerUrl: string): Promise<EtcdMember> {
    return this.#firstAnswer(endpoints, async (endpoint) => {
      const response = await this.#callOn(this.#cluster(endpoint), (c) => c.MemberAdd, { peerURLs: [peerUrl], isLearner: true });
      if (response.member === null) throw new Error('MemberAdd answered without the new member');
      return toMember(response.member);
    });
  }

  async memberPromote(endpoints: readonly string[], memberId: string): Promise<void> {
    await this.#firstAnswer(endpoints, (endpoint) => this.#callOn(this.#cluster(endpoint), (c) => c.MemberPromote, { ID: hexToId(memberId) }));
  }

  async memberRemove(endpoints: readonly string[], memberId: string): Promise<void> {
    await this.#firstAnswer(endpoints, (endpoint) => this.#callOn(this.#cluster(endpoint), (c) => c.MemberRemove, { ID: hexToId(memberId) }));
  }

  async moveLeader(leaderEndpoint: string, targetMemberId: string): Promise<void> {
    await this.#callOn(this.#maintenance(leaderEndpoint), (c) => c.MoveLeader, { targetID: hexToId(targetMemberId) });
  }

  close(): void {
    for (const client of [...this.#clusterClients.values(), ...this.#maintenanceClients.values()]) client.close();
    this.#clusterClients.clear();
    this.#maintenanceClients.clear();
  }

  #cluster(endpoint: string): ClusterClient {
    let client = this.#clusterClients.get(endpoint);
    if (client === undefined) {
      client = new (loadConstructors().Cluster)(endpoint, grpc.credentials.createInsecure(), this.#channelOptions);
      this.#clusterClients.set(endpoint, client);
    }
    return client;
  }

  #maintenance(endpoint: string): MaintenanceClient {
    let client = this.#maintenanceClients.get(endpoint);
    if (client === undefined) {
      client = new (loadConstructors().Maintenance)(endpoint, grpc.credentials.createInsecure(), this.#channelOptions);
      this.#maintenanceClients.set(endpoint, client);
    }
    return client;
  }

  #call<Req, Res>(client: grpc.Client, fn: UnaryCall<Req, Res>, request: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      fn.call(client, request, { deadline: Date.now() + this.#callTimeoutMs }, (error, response) => {
        if (error !== null) reject(error);
        else resolve(response as Res);
      });
    });
  }

  #callOn<C extends grpc.Client, Req, Res>(client: C, pick: (c: C) => UnaryCall<Req, Res>, request: Req): Promise<Res> {
    return this.#call(client, pick(client), request);
  }

  async #firstAnswer<T>(endpoints: readonly string[], call: (endpoint: string) => Promise<T>): Promise<T> {
    let lastError: unknown = new Error('no endpoints');
    for (const endpoint of endpoints) {
      try {
        return await call(endpoint);
      } catch (error) {
        lastError = error;
        // A refusal by etcd's rules (FailedPrecondition and the like) is an answer, not an unreachable member.
        if (isEtcdRefusal(error)) throw error;
      }
    }
    throw lastError;
  }
}

function isEtcdRefusal(error: unknown): boolean {
  const code = (error as { code?: number }).code;
  return code === grpc.status.FAILED_PRECONDITION || code === grpc.status.INVALID_ARGUMENT || code === grpc.status.NOT_FOUND || code === grpc.status.ALREADY_EXISTS;
}

function toMember(wire: WireMember): EtcdMember {
  return { id: idToHex(wire.ID), name: wire.name, peerUrls: wire.peerURLs, clientUrls: wire.clientURLs, isLearner: wire.isLearner };
}

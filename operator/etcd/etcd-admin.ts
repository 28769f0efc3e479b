// The operator's view of a cluster's membership, through etcd's v3 gRPC API (Cluster and Maintenance
// services), so it works against etcd and Synod alike. EtcdAdmin is the interface the reconciler
// uses; GrpcEtcdAdmin implements it with @grpc/grpc-js over the repository's etcd .proto files.
//
// etcd rules followed here: MemberAdd/Remove/Promote go to any member (they are proposed through Raft);
// MoveLeader must be sent to the current leader; member ids are uint64 (decimal strings on the wire,
// hex in etcdctl's output and in this interface).
//
// With AdminSecurity (spec.tls / spec.auth of the cluster), channels are TLS (the cluster's CA bundle,
// and the operator's client certificate when client certificates are required), and calls carry the
// root user's token as etcd clients do: Authenticate when first needed, again on "invalid auth token"
// (expiry) or "user name is empty" (auth was enabled since); "authentication is not enabled" means
// calls go without a token until a call is refused for want of one. EtcdAuthAdmin turns auth on and
// off through the Auth service, idempotently.
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

/** How the operator connects to one cluster's members: TLS material and root credentials. */
export interface AdminSecurity {
  tls: {
    /** PEM bundle the members' certificates must chain to. */
    caPem: string;
    /** The operator's client certificate and key (PEM), presented when the cluster requires client certificates. */
    certPem?: string;
    keyPem?: string;
  } | null;
  auth: { username: string; password: string } | null;
}

export type AuthChange = 'enabled' | 'disabled' | 'unchanged';

/** etcd's Auth API as the operator uses it: turning auth on after bootstrap and off again. */
export interface EtcdAuthAdmin {
  authEnabled(endpoints: readonly string[]): Promise<boolean>;
  /**
   * Ensures user `root` with `password` holding role `root`, then AuthEnable. Each step tolerates
   * having been done before (an operator restarted half-way). 'unchanged' when auth was already on.
   */
  enableAuth(endpoints: readonly string[], password: string): Promise<AuthChange>;
  /** AuthDisable as root; 'unchanged' when auth was already off. */
  disableAuth(endpoints: readonly string[]): Promise<AuthChange>;
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

interface AuthClient extends grpc.Client {
  AuthStatus: UnaryCall<object, { enabled: boolean }>;
  AuthEnable: UnaryCall<object, object>;
  AuthDisable: UnaryCall<object, object>;
  Authenticate: UnaryCall<{ name: string; password: string }, { token: string }>;
  UserAdd: UnaryCall<{ name: string; password: string }, object>;
  UserChangePassword: UnaryCall<{ name: string; password: string }, object>;
  RoleAdd: UnaryCall<{ name: string }, object>;
  UserGrantRole: UnaryCall<{ user: string; role: string }, object>;
}

type ClientConstructor<C> = new (address: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) => C;

let constructors: { Cluster: ClientConstructor<ClusterClient>; Maintenance: ClientConstructor<MaintenanceClient>; Auth: ClientConstructor<AuthClient> } | undefined;

function loadConstructors(): NonNullable<typeof constructors> {
  if (constructors === undefined) {
    const definition = protoLoader.loadSync(RPC_PROTO, { keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [PROTO_ROOT] });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { etcdserverpb: Record<string, unknown> };
    constructors = {
      Cluster: loaded.etcdserverpb['Cluster'] as ClientConstructor<ClusterClient>,
      Maintenance: loaded.etcdserverpb['Maintenance'] as ClientConstructor<MaintenanceClient>,
      Auth: loaded.etcdserverpb['Auth'] as ClientConstructor<AuthClient>,
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
  /** TLS and root credentials of the cluster; none: plaintext, no token. */
  security?: AdminSecurity | null;
}

/** The root user etcd's auth enable requires; the operator authenticates as it. */
export const ROOT_USER = 'root';

type TokenState = { kind: 'unknown' } | { kind: 'auth-off' } | { kind: 'token'; token: string };

export class GrpcEtcdAdmin implements EtcdAdmin, EtcdAuthAdmin {
  readonly #callTimeoutMs: number;
  readonly #channelOptions: grpc.ChannelOptions;
  readonly #credentials: grpc.ChannelCredentials;
  readonly #auth: { username: string; password: string } | null;
  readonly #clusterClients = new Map<string, ClusterClient>();
  readonly #maintenanceClients = new Map<string, MaintenanceClient>();
  readonly #authClients = new Map<string, AuthClient>();
  #token: TokenState = { kind: 'unknown' };
  #login: Promise<void> | null = null;

  constructor(options: GrpcEtcdAdminOptions = {}) {
    this.#callTimeoutMs = options.callTimeoutMs ?? 3_000;
    this.#channelOptions = { ...RECOVERY_CHANNEL_OPTIONS, ...options.channelOptions };
    const tls = options.security?.tls ?? null;
    this.#credentials = tls === null
      ? grpc.credentials.createInsecure()
      : grpc.credentials.createSsl(
        Buffer.from(tls.caPem),
        tls.keyPem === undefined ? null : Buffer.from(tls.keyPem),
        tls.certPem === undefined ? null : Buffer.from(tls.certPem),
      );
    this.#auth = options.security?.auth ?? null;
  }

  async memberList(endpoints: readonly string[]): Promise<EtcdMember[]> {
    return this.#firstAnswer(endpoints, async (endpoint) => {
      const response = await this.#callOn(endpoint, this.#cluster(endpoint), (c) => c.MemberList, { linearizable: false });
      return response.members.map(toMember);
    });
  }

  async status(endpoint: string): Promise<EtcdEndpointStatus> {
    const response = await this.#callOn(endpoint, this.#maintenance(endpoint), (c) => c.Status, {});
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
      const response = await this.#callOn(endpoint, this.#cluster(endpoint), (c) => c.MemberAdd, { peerURLs: [peerUrl], isLearner: true });
      if (response.member === null) throw new Error('MemberAdd answered without the new member');
      return toMember(response.member);
    });
  }

  async memberPromote(endpoints: readonly string[], memberId: string): Promise<void> {
    await this.#firstAnswer(endpoints, (endpoint) => this.#callOn(endpoint, this.#cluster(endpoint), (c) => c.MemberPromote, { ID: hexToId(memberId) }));
  }

  async memberRemove(endpoints: readonly string[], memberId: string): Promise<void> {
    await this.#firstAnswer(endpoints, (endpoint) => this.#callOn(endpoint, this.#cluster(endpoint), (c) => c.MemberRemove, { ID: hexToId(memberId) }));
  }

  async moveLeader(leaderEndpoint: string, targetMemberId: string): Promise<void> {
    await this.#callOn(leaderEndpoint, this.#maintenance(leaderEndpoint), (c) => c.MoveLeader, { targetID: hexToId(targetMemberId) });
  }

  async authEnabled(endpoints: readonly string[]): Promise<boolean> {
    return this.#firstAnswer(endpoints, async (endpoint) => (await this.#callOn(endpoint, this.#authClient(endpoint), (c) => c.AuthStatus, {})).enabled);
  }

  async enableAuth(endpoints: readonly string[], password: string): Promise<AuthChange> {
    if (await this.authEnabled(endpoints)) return 'unchanged';
    await this.#firstAnswer(endpoints, async (endpoint) => {
      const auth = this.#authClient(endpoint);
      const call = <Req, Res>(pick: (c: AuthClient) => UnaryCall<Req, Res>, request: Req): Promise<Res> => this.#callOn(endpoint, auth, pick, request);
      try {
        await call((c) => c.UserAdd, { name: ROOT_USER, password });
      } catch (error) {
        // Left by an earlier attempt, or made by hand: the password must be the Secret's.
        if (!hasDetails(error, 'user name already exists')) throw error;
        await call((c) => c.UserChangePassword, { name: ROOT_USER, password });
      }
      try {
        await call((c) => c.RoleAdd, { name: ROOT_USER });
      } catch (error) {
        if (!hasDetails(error, 'role name already exists')) throw error;
      }
      await call((c) => c.UserGrantRole, { user: ROOT_USER, role: ROOT_USER });
      await call((c) => c.AuthEnable, {});
    });
    // Calls need a token from now on.
    this.#token = { kind: 'unknown' };
    return 'enabled';
  }

  async disableAuth(endpoints: readonly string[]): Promise<AuthChange> {
    if (!(await this.authEnabled(endpoints))) return 'unchanged';
    await this.#firstAnswer(endpoints, (endpoint) => this.#callOn(endpoint, this.#authClient(endpoint), (c) => c.AuthDisable, {}));
    this.#token = { kind: 'auth-off' };
    return 'disabled';
  }

  close(): void {
    for (const client of [...this.#clusterClients.values(), ...this.#maintenanceClients.values(), ...this.#authClients.values()]) client.close();
    this.#clusterClients.clear();
    this.#maintenanceClients.clear();
    this.#authClients.clear();
  }

  #cluster(endpoint: string): ClusterClient {
    return cached(this.#clusterClients, endpoint, () => new (loadConstructors().Cluster)(endpoint, this.#credentials, this.#channelOptions));
  }

  #maintenance(endpoint: string): MaintenanceClient {
    return cached(this.#maintenanceClients, endpoint, () => new (loadConstructors().Maintenance)(endpoint, this.#credentials, this.#channelOptions));
  }

  #authClient(endpoint: string): AuthClient {
    return cached(this.#authClients, endpoint, () => new (loadConstructors().Auth)(endpoint, this.#credentials, this.#channelOptions));
  }

  #call<Req, Res>(client: grpc.Client, fn: UnaryCall<Req, Res>, request: Req, metadata: grpc.Metadata): Promise<Res> {
    return new Promise((resolve, reject) => {
      // grpc-js's generated methods take (request, metadata, options, callback).
      (fn as unknown as (req: Req, md: grpc.Metadata, options: grpc.CallOptions, cb: (error: grpc.ServiceError | null, response?: Res) => void) => grpc.ClientUnaryCall)
        .call(client, request, metadata, { deadline: Date.now() + this.#callTimeoutMs }, (error, response) => {
          if (error !== null) reject(error);
          else resolve(response as Res);
        });
    });
  }

  /** One call on `endpoint`, with the root token when the cluster has auth on (authenticating first when needed). */
  async #callOn<C extends grpc.Client, Req, Res>(endpoint: string, client: C, pick: (c: C) => UnaryCall<Req, Res>, request: Req): Promise<Res> {
    if (this.#auth === null) return this.#call(client, pick(client), request, new grpc.Metadata());
    if (this.#token.kind === 'unknown') await this.#authenticate(endpoint);
    try {
      return await this.#call(client, pick(client), request, this.#metadata());
    } catch (error) {
      // With client certificates a tokenless call is made as the certificate's CN, which is no user
      // ("user name not found") or has no rights ("permission denied") once auth is on.
      const deniedWithoutToken = this.#token.kind === 'auth-off' && (hasDetails(error, 'permission denied') || hasDetails(error, 'user name not found'));
      if (!needsNewToken(error) && !deniedWithoutToken) throw error;
      // Expired token, or auth enabled (by someone else) since we found it off: authenticate once more.
      this.#token = { kind: 'unknown' };
      await this.#authenticate(endpoint);
      return this.#call(client, pick(client), request, this.#metadata());
    }
  }

  /** The channel credentials of this cluster (TLS or plaintext): other services' clients use them too. */
  get credentials(): grpc.ChannelCredentials {
    return this.#credentials;
  }

  /**
   * The metadata of a call as root on `endpoint`'s cluster (the token, authenticating first when none is
   * known, or when `refresh`: the last one was refused); empty without auth or with auth off.
   */
  async authMetadata(endpoint: string, refresh = false): Promise<grpc.Metadata> {
    if (this.#auth === null) return new grpc.Metadata();
    if (refresh) this.#token = { kind: 'unknown' };
    if (this.#token.kind === 'unknown') await this.#authenticate(endpoint);
    return this.#metadata();
  }

  #metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.#token.kind === 'token') metadata.set('token', this.#token.token);
    return metadata;
  }

  /** Authenticate as root; one login at a time, shared by concurrent calls. */
  #authenticate(endpoint: string): Promise<void> {
    const credentials = this.#auth;
    if (credentials === null) return Promise.resolve();
    this.#login ??= (async () => {
      const client = this.#authClient(endpoint);
      try {
        const { token } = await this.#call(client, client.Authenticate, { name: credentials.username, password: credentials.password }, new grpc.Metadata());
        this.#token = { kind: 'token', token };
      } catch (error) {
        if (!hasDetails(error, 'authentication is not enabled')) throw error;
        this.#token = { kind: 'auth-off' };
      }
    })().finally(() => {
      this.#login = null;
    });
    return this.#login;
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

function cached<C>(clients: Map<string, C>, endpoint: string, make: () => C): C {
  let client = clients.get(endpoint);
  if (client === undefined) {
    client = make();
    clients.set(endpoint, client);
  }
  return client;
}

function hasDetails(error: unknown, text: string): boolean {
  const details = (error as { details?: unknown }).details;
  return typeof details === 'string' && details.includes(text);
}

/** etcd's answers that a (new) token would change: none sent while auth is on, or one that expired. */
export function needsNewToken(error: unknown): boolean {
  return hasDetails(error, 'user name is empty') || hasDetails(error, 'invalid auth token');
}

function isEtcdRefusal(error: unknown): boolean {
  const code = (error as { code?: number }).code;
  return code === grpc.status.FAILED_PRECONDITION || code === grpc.status.INVALID_ARGUMENT || code === grpc.status.NOT_FOUND || code === grpc.status.ALREADY_EXISTS;
}

function toMember(wire: WireMember): EtcdMember {
  return { id: idToHex(wire.ID), name: wire.name, peerUrls: wire.peerURLs, clientUrls: wire.clientURLs, isLearner: wire.isLearner };
}

// Composition of one member process: storage, the Raft member, the peer transport, the etcd gRPC
// API and the HTTP endpoints, wired together and started in dependency order; stop() tears them
// down in reverse so no client is acknowledged after the disk is closed.
import { DEFAULT_REPLICATION_LIMITS } from '../raft/replication-limits.ts';
import { frameBudgetBytes } from '../transport/frame-budget.ts';
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import path from 'node:path';
import { randomInt } from 'node:crypto';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { MemberDb } from '../storage/member-db.ts';
import { APPLY_RULES, Member, MemberStoppedError, TransferTargetGoneError } from '../member/member.ts';
import { DEFAULT_BCRYPT_COST } from '../auth/password.ts';
import { BACKUPS_AT_ONCE, BACKUPS_WAITING, HASHES_AT_ONCE, HASHES_WAITING, WorkSlots } from '../api/work-slots.ts';
import { PeerTransport } from '../transport/peer-transport.ts';
import { FaultInjector } from '../transport/fault-injector.ts';
import { KvStateMachine } from '../shard/kv-state-machine.ts';
import { serveShardKv } from '../api/shard-kv-host.ts';
import { ApiContext, DATA_GROUP_ID, DEFAULT_LIMITS, type ApiLimits } from '../api/context.ts';
import { etcdServices } from '../etcd/proto.ts';
import { etcdWireStrictness } from '../api/wire-strictness.ts';
import { kvService } from '../api/kv-service.ts';
import { watchService } from '../api/watch-service.ts';
import { ClusterService } from '../api/cluster-service.ts';
import { maintenanceService } from '../api/maintenance-service.ts';
import { memberHttp, type MemberHttp } from '../api/http-endpoints.ts';
import { SendRateLimiter } from '../transport/send-rate-limiter.ts';
import { LeaseManager } from '../api/lease-manager.ts';
import { leaseService } from '../api/lease-service.ts';
import { LeaseSweeper } from '../api/lease-sweeper.ts';
import { lockService } from '../api/lock-service.ts';
import { electionService } from '../api/election-service.ts';
import { authService } from '../api/auth-service.ts';
import { AuthGuard } from '../api/auth-guard.ts';
import { guardCluster, guardElection, guardKv, guardLease, guardLock, guardMaintenance, guardPlacement, guardWatch } from '../api/guarded-services.ts';
import { placementClientConstructor, placementService } from '../api/placement-service.ts';
import { CertificateFiles } from '../tls/certificate-files.ts';
import { listenTls } from '../tls/tls-listener.ts';
import { admitClientConnection } from '../api/authority-repair.ts';
import { listenPlain, listenPrivateUnix } from '../api/client-listener.ts';
import { JsonGateway } from '../api/json-gateway.ts';
import { peerChannelCredentials } from '../tls/channel-credentials.ts';
import { bootstrapClusterRecord, clusterReplicationFactor, clusterShardCount, hostPort, type ClusterRecord, type MemberInfo } from '../api/cluster-info.ts';
import { validateShardCount } from '../routing/slots.ts';
import { METADATA_GROUP_ID, ShardHosting } from './shard-hosting.ts';
import { shardPeersOverGrpc } from './shard-peers.ts';
import { SHARD_PEER_STREAM_SERVICE, ShardPeerChannels, shardPeerServiceDefinition, shardPeerServiceImpl, shardPeerStreamHandler } from '../shard/peer-shard-rpc.ts';
import { TurnBatch } from '../storage/member-db.ts';
import { joinExistingCluster } from './join-cluster.ts';

export interface ServerConfig {
  name: string;
  dataDir: string;
  listenClientUrls: string[];
  advertiseClientUrls: string[];
  listenPeerUrls: string[];
  initialAdvertisePeerUrls: string[];
  /** etcd's form: name=http://host:port,... */
  initialCluster: string;
  initialClusterToken: string;
  /** 'new' bootstraps from --initial-cluster; 'existing' joins a running cluster that added this member. */
  initialClusterState?: 'new' | 'existing';
  /** Applied entries between snapshot points (etcd's --snapshot-count). */
  snapshotCount?: number;
  /** Pace of snapshot bytes sent to peers, summed over every transfer (0: unlimited). */
  maxSnapshotSendBytesPerSecond?: number;
  /** host:port for /healthz, /readyz, /metrics; empty = none. */
  listenMetricsAddress: string;
  tickMs: number;
  electionTimeoutTicks: number;
  /** How often the leader records remaining lease TTLs through Raft (etcd: 5 minutes). */
  leaseCheckpointIntervalMs: number;
  limits: ApiLimits;
  logger: Logger;
  /** TEST-ONLY (--experimental-fault-injection): POST /debug/fault/partition on the metrics server. */
  faultInjection?: boolean;
  /** TEST-ONLY (--experimental-unsafe-stale-reads): linearizable reads skip ReadIndex. */
  unsafeStaleReads?: boolean;
  /** --no-lease-reads: every linearizable read waits for a heartbeat round (MemberOptions.leaseReads). */
  leaseReads?: boolean;
  /** TEST-ONLY (--test-txn-pause-before-decision-ms): a coordinator pauses between prepares and decision. */
  testTxnPauseBeforeDecisionMs?: number;
  /** TEST-ONLY (--test-txn-fence-keep-ms; 0: the default): how old a transaction's fences must be to go. */
  testTxnFenceKeepMs?: number;
  /** TEST-ONLY (--experimental-test-remote-watch-shards): merged watches here read these shards from another member. */
  testRemoteWatchShards?: readonly number[];
  /** Client TLS (--cert-file, --key-file, --trusted-ca-file, --client-cert-auth); needed for https client URLs. */
  clientTls?: TlsConfig;
  /** Peer TLS (--peer-cert-file, ...); needed for https peer URLs. */
  peerTls?: TlsConfig;
  /** How often certificate files are checked for rotation (ms). */
  tlsReloadIntervalMs?: number;
  /** --auth-token-ttl: lifetime of tokens from Authenticate, in seconds (etcd's default: 300). */
  authTokenTtlSeconds?: number;
  /** --bcrypt-cost: cost of the bcrypt hashes made for new passwords (etcd's default: 10). */
  bcryptCost?: number;
  /** --quota-backend-bytes: 0 = etcd's default (2 GiB), negative = no quota (server/shard/quota.ts). */
  quotaBackendBytes?: number;
  /** --zone: this member's failure domain, published through the log for placement ('' = none). */
  zone?: string;
  /**
   * --shards: the shard count of a cluster being created (a power of two; absent: 1). Given to a member
   * of an existing cluster it must equal the cluster's. With S > 1 the member hosts the metadata group and its shard replicas (server/cli/shard-hosting.ts).
   */
  shards?: number;
  /** --dead-member-grace: how long a member may be unreachable before its shard replicas are placed elsewhere. */
  deadMemberGraceMs?: number;
  /** --replication-factor: replicas per shard of a cluster being created (absent: 3 with --shards > 1, defaultReplicationFactor); given later it must match. */
  replicationFactor?: number;
  /** TEST-ONLY (--test-forward-shards): shards this member's API forwards as if it hosted none of them. */
  testForwardShards?: readonly number[] | 'all';
  /** Called after the server stopped itself because this member was removed from the cluster. */
  onRemoved?: () => void;
}

export interface TlsConfig {
  certFile: string;
  keyFile: string;
  /** CA bundle the other side's certificate must chain to; empty: the system's roots. */
  trustedCaFile: string;
  /** Require and verify the other side's certificate (etcd's --client-cert-auth / --peer-client-cert-auth). */
  clientCertAuth: boolean;
}

export const DEFAULT_AUTH_TOKEN_TTL_SECONDS = 300;

/** Loads one side's certificate files, refusing a configuration that cannot work (https without a cert, ...). */
function loadTls(side: 'client' | 'peer', tls: TlsConfig | undefined, urls: string[], reloadMs: number, log: Logger): CertificateFiles | null {
  const flag = side === 'client' ? '--' : '--peer-';
  const wantsTls = urls.some((u) => u.startsWith('https:'));
  if (!tls || (!tls.certFile && !tls.keyFile)) {
    if (wantsTls) throw new Error(`https ${side} URLs need ${flag}cert-file and ${flag}key-file`);
    if (tls?.clientCertAuth) throw new Error(`${flag}client-cert-auth needs TLS: https ${side} URLs, ${flag}cert-file and ${flag}key-file`);
    return null;
  }
  if (!tls.certFile || !tls.keyFile) throw new Error(`${flag}cert-file and ${flag}key-file go together`);
  if (tls.clientCertAuth && !tls.trustedCaFile) throw new Error(`${flag}client-cert-auth needs ${flag}trusted-ca-file`);
  if (!wantsTls) log.warn({ side }, `${flag}cert-file is set but the ${side} URLs are http: serving plaintext`);
  return new CertificateFiles(tls, log.child({ tls: side }), reloadMs);
}

export interface RunningServer {
  memberId: number;
  clusterId: number;
  clientPorts: number[];
  peerPort: number;
  metricsPort: number;
  ctx: ApiContext;
  stop(): Promise<void>;
}

const GRPC_OVERHEAD_BYTES = 512 * 1024;

export const DEFAULT_SERVER_TIMING = { tickMs: 100, electionTimeoutTicks: 10 };
export const DEFAULT_SNAPSHOT_COUNT = 10_000;
/**
 * Default pace of snapshot bytes a member sends (all transfers together): enough to move a 2 GiB shard
 * in about half a minute, low enough that a rebalance leaves the peer links to Raft's own traffic.
 */
export const DEFAULT_MAX_SNAPSHOT_SEND_BYTES_PER_SECOND = 64 * 1024 * 1024;



/**
 * The cluster record: stored one wins (the --initial-* flags only matter the first time, as in etcd);
 * otherwise bootstrapped from --initial-cluster, or fetched from the running cluster when joining.
 */
async function loadOrBootstrapCluster(db: MemberDb, cfg: ServerConfig, peerCredentials: grpc.ChannelCredentials): Promise<ClusterRecord> {
  const stored = await db.loadCluster<ClusterRecord>();
  if (stored) return stored;
  const record =
    cfg.initialClusterState === 'existing'
      ? await joinExistingCluster(cfg, cfg.logger, peerCredentials)
      : bootstrapClusterRecord(cfg.initialCluster, cfg.initialClusterToken, cfg.name, cfg.advertiseClientUrls, cfg.shards ?? 1, cfg.replicationFactor);
  const batch = new TurnBatch();
  batch.putCluster(record);
  await db.write(batch, true);
  return record;
}

function dirSizeBytes(dir: string): number {
  let total = 0;
  for (const name of fs.readdirSync(dir)) {
    try {
      total += fs.statSync(path.join(dir, name)).size;
    } catch {
      // a file LevelDB removed between readdir and stat
    }
  }
  return total;
}

/** A member's durable state, opened and loaded: what every later step of the start builds on. */
interface OpenedState {
  db: MemberDb;
  dbDir: string;
  cluster: ClusterRecord;
  shards: number;
  replicationFactor: number;
  memberId: number;
  snapshotDir: string;
  loaded: Awaited<ReturnType<typeof Member.recoverSnapshot>>;
  sm: KvStateMachine;
  /** Where a restart's time went, logged with "member loaded" (issue 13: restart to ready). */
  startup: { sinceProcessStartMs: number; openMs: number; loadMs: number; stateMachineMs: number };
}

const REMOVED_MESSAGE = 'this member was removed from the cluster; to rejoin, add it again (member add) and start it with an empty --data-dir';

/** Opens the database, loads or bootstraps the cluster record, and rebuilds the cluster group's state machine. */
async function openMemberState(cfg: ServerConfig, peerCredentials: grpc.ChannelCredentials): Promise<OpenedState> {
  fs.mkdirSync(cfg.dataDir, { recursive: true });
  const dbDir = path.join(cfg.dataDir, 'db');
  const startup = { sinceProcessStartMs: Math.round(performance.now()), openMs: 0, loadMs: 0, stateMachineMs: 0 };
  let phaseStart = performance.now();
  const db = await MemberDb.open(dbDir);
  startup.openMs = Math.round(performance.now() - phaseStart);
  const cluster = await loadOrBootstrapCluster(db, cfg, peerCredentials);
  const shards = clusterShardCount(cluster, cfg.shards);
  const replicationFactor = clusterReplicationFactor(cluster, cfg.replicationFactor);
  if (cluster.removed) throw new Error(REMOVED_MESSAGE);
  const self = cluster.selfId !== undefined ? cluster.members.find((m) => m.id === cluster.selfId) ?? { id: cluster.selfId } : cluster.members.find((m) => m.name === cfg.name);
  if (!self) throw new Error(`data dir ${cfg.dataDir} belongs to another member (no member named ${cfg.name})`);
  const memberId = self.id;
  const snapshotDir = path.join(cfg.dataDir, 'snap');
  // What a backup cut short by a crash left behind.
  fs.rmSync(backupSpoolDir(cfg.dataDir), { recursive: true, force: true });

  phaseStart = performance.now();
  const loaded = await Member.recoverSnapshot(db, DATA_GROUP_ID, snapshotDir, await db.loadGroup(DATA_GROUP_ID), cfg.logger);
  startup.loadMs = Math.round(performance.now() - phaseStart);
  phaseStart = performance.now();
  // A sharded cluster's cluster group holds the leases; their keys are on the shards (lease-sweeper.ts).
  const sm = new KvStateMachine(memberId, loaded.stateRecords, cluster.members, { leaseSweeps: shards > 1 });
  loaded.stateRecords = []; // the state machine holds them now
  startup.stateMachineMs = Math.round(performance.now() - phaseStart);
  if (sm.membership.get(String(memberId))?.removed) throw new Error(REMOVED_MESSAGE);
  return { db, dbDir, cluster, shards, replicationFactor, memberId, snapshotDir, loaded, sm, startup };
}

/** The Member with the cluster group on `state`, and the peer frame budget its replication limits give. */
function newMember(cfg: ServerConfig, state: OpenedState): { member: Member; maxFrameBytes: number } {
  const { db, cluster, shards, memberId, snapshotDir, loaded, sm } = state;
  // The peer stream's frame budget comes from the same limits Raft enforces; startup stops here when
  // they disagree (a message that could not travel in one frame would break the stream for good).
  const replicationLimits = DEFAULT_REPLICATION_LIMITS;
  const maxFrameBytes = frameBudgetBytes(replicationLimits, cfg.limits.maxRequestBytes);
  const member = new Member({
    memberId,
    db,
    replicationLimits,
    tickMs: cfg.tickMs,
    electionTimeoutTicks: cfg.electionTimeoutTicks,
    heartbeatTicks: 1,
    logger: cfg.logger,
    snapshotDir,
    snapshotCount: cfg.snapshotCount ?? DEFAULT_SNAPSHOT_COUNT,
    // Idle groups of a sharded cluster go quiet (docs/architecture.md, "Quiescence"); one group keeps
    // today's heartbeats byte for byte.
    quiesce: shards > 1,
    leaseReads: cfg.leaseReads !== false,
  });
  member.addGroup({
    groupId: DATA_GROUP_ID,
    voters: cluster.members.filter((m) => !m.isLearner).map((m) => m.id),
    stateMachine: sm,
    loaded,
    randomSeed: randomInt(2 ** 31),
  });
  return { member, maxFrameBytes };
}

/**
 * Peer addresses: the replicated membership, plus (for a member that just joined and has not replayed
 * the log yet) the members the running cluster reported when it joined. Warns of members whose peer
 * URLs use the other scheme: they will not connect.
 */
function peerAddressesOf(state: OpenedState, peerTlsOn: boolean, log: Logger): Map<number, string> {
  const { cluster, sm } = state;
  const peerAddresses = new Map<number, string>();
  for (const m of cluster.joinMembers ?? []) if (m.peerUrls[0]) peerAddresses.set(m.id, hostPort(m.peerUrls[0]));
  for (const m of sm.members()) if (m.peerUrls[0]) peerAddresses.set(Number(m.id), hostPort(m.peerUrls[0]));
  const mismatched = sm.members().filter((m) => m.peerUrls[0] && m.peerUrls[0].startsWith('https:') !== peerTlsOn).map((m) => BigInt(m.id).toString(16));
  if (mismatched.length > 0) log.warn({ members: mismatched, peerTls: peerTlsOn }, 'these members\' peer URLs use the other scheme than this member; they will not connect');
  return peerAddresses;
}

/** The members as MemberList shows them: the replicated membership, named from what each published or bootstrapped. */
function memberInfos(cfg: ServerConfig, state: OpenedState): () => MemberInfo[] {
  const { cluster, sm, memberId } = state;
  const zone = cfg.zone ?? '';
  const bootstrapNames = new Map(cluster.members.map((m) => [String(m.id), m]));
  return () =>
    sm.members().map((m) => {
      const published = sm.published.get(m.id);
      const boot = bootstrapNames.get(m.id);
      return {
        id: Number(m.id),
        name: published?.name ?? boot?.name ?? (Number(m.id) === memberId ? cfg.name : ''),
        peerUrls: m.peerUrls,
        clientUrls: published?.clientUrls ?? boot?.clientUrls ?? [],
        isLearner: m.isLearner,
        zone: published?.zone ?? (Number(m.id) === memberId ? zone : ''),
      };
    });
}

/**
 * The client-facing gRPC server: etcd's services (each behind the auth guard, a pass-through while auth
 * is off) and Synod's Placement. Not listening yet (listenForClients).
 */
function clientGrpcServer(
  cfg: ServerConfig,
  ctx: ApiContext,
  parts: { db: MemberDb; dbDir: string; leases: LeaseManager; clusterAdmin: ClusterService; transport: PeerTransport; backupSlots: WorkSlots; hashSlots: WorkSlots },
): grpc.Server {
  const grpcServer = new grpc.Server({
    // Malformed frames and messages are refused with etcd's (grpc-go's) status before decoding.
    interceptors: [etcdWireStrictness({ maxTxnOps: cfg.limits.maxTxnOps })],
    'grpc.max_receive_message_length': cfg.limits.maxRequestBytes + GRPC_OVERHEAD_BYTES,
    'grpc.max_send_message_length': 2 ** 31 - 1,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    // Channelz's per-call bookkeeping is on grpc-js's request path and nothing here reads it.
    'grpc.enable_channelz': 0,
  });
  const services = etcdServices();
  const guard = new AuthGuard(ctx, { clientCertAuth: cfg.clientTls?.clientCertAuth ?? false });
  grpcServer.addService(services.KV, guardKv(ctx, guard, kvService(ctx)));
  grpcServer.addService(services.Watch, guardWatch(ctx, guard, watchService(ctx)));
  grpcServer.addService(services.Lease, guardLease(ctx, guard, leaseService(ctx, parts.leases)));
  grpcServer.addService(services.Lock, guardLock(ctx, guard, lockService(ctx)));
  grpcServer.addService(services.Election, guardElection(ctx, guard, electionService(ctx)));
  grpcServer.addService(services.Cluster, guardCluster(ctx, guard, parts.clusterAdmin.implementation()));
  // The same service on the peer port: members that are not the leader forward changes there
  // (already checked by the member the client called; peers are trusted through peer TLS).
  parts.transport.addService(services.Cluster, parts.clusterAdmin.implementation());
  const maintenance = maintenanceService(ctx, {
    backupSlots: parts.backupSlots,
    hashSlots: parts.hashSlots,
    dbSizeBytes: () => dirSizeBytes(parts.dbDir),
    db: parts.db,
    spoolDir: backupSpoolDir(cfg.dataDir),
    quotaBackendBytes: cfg.quotaBackendBytes ?? 0,
    requireAdmin: async (call) => {
      const caller = await guard.callerOf(call);
      if (guard.enabled) await guard.requireForRead(caller, [{ kind: 'admin' }], false);
    },
  });
  grpcServer.addService(services.Maintenance, guardMaintenance(ctx, guard, maintenance));
  grpcServer.addService(placementClientConstructor().service, guardPlacement(ctx, guard, placementService(ctx)));
  grpcServer.addService(services.Auth, authService(ctx, guard, { tokenTtlSeconds: cfg.authTokenTtlSeconds ?? DEFAULT_AUTH_TOKEN_TTL_SECONDS, bcryptCost: cfg.bcryptCost ?? DEFAULT_BCRYPT_COST }));
  return grpcServer;
}

/** Where backups spool their records while they are written (server/api/etcd-backup.ts). */
function backupSpoolDir(dataDir: string): string {
  return path.join(dataDir, 'backup-spool');
}

/** Listens on every client URL (TLS where https); answers the ports. Each listener goes into `listeners` to be closed. */
async function listenForClients(cfg: ServerConfig, grpcServer: grpc.Server, ctx: ApiContext, clientCerts: CertificateFiles | null, http: MemberHttp, listeners: Array<{ close(): Promise<void> }>): Promise<number[]> {
  const clientPorts: number[] = [];
  // Each client connection's first request is seen before grpc-js takes it (api/authority-repair.ts);
  // one speaking HTTP/1.x is answered as etcd answers /health, /version and /metrics on its client port.
  const http1 = (socket: Duplex, head: Buffer): void => http.serveClientConnection(socket, head);
  const admit = (socket: Duplex, inject: (connection: Duplex) => void): void => admitClientConnection(socket, inject, ctx.clientConnections, http1);
  for (const url of cfg.listenClientUrls) {
    if (url.startsWith('https:') && clientCerts) {
      const listener = await listenTls(grpcServer, hostPort(url), { files: clientCerts, requireClientCert: cfg.clientTls?.clientCertAuth ?? false, role: 'client', logger: cfg.logger, admit, http1 });
      listeners.push(listener);
      clientPorts.push(listener.port);
    } else {
      const listener = await listenPlain(grpcServer, hostPort(url), ctx.clientConnections, http1);
      listeners.push(listener);
      clientPorts.push(listener.port);
    }
  }
  return clientPorts;
}

/**
 * Publishes this member's name, client URLs and zone through the log once a leader exists (etcd's
 * "publish"); again after a restart with a different --advertise-client-urls or --zone. Answers a
 * function that stops any retry still pending.
 */
function startPublishing(cfg: ServerConfig, ctx: ApiContext, member: Member, sm: KvStateMachine, memberId: number): () => void {
  const zone = cfg.zone ?? '';
  let publishTimer: NodeJS.Timeout | null = null;
  const publish = (): void => {
    publishTimer = null;
    const mine = sm.published.get(String(memberId));
    if (mine && JSON.stringify(mine.clientUrls) === JSON.stringify(cfg.advertiseClientUrls) && (mine.zone ?? '') === zone) return;
    ctx
      .proposeWrite({ member_attributes: { member_id: String(memberId), name: cfg.name, client_urls: cfg.advertiseClientUrls, zone } }, { internal: true })
      .then(
        () => cfg.logger.info({ clientUrls: cfg.advertiseClientUrls, zone }, 'published client URLs and zone'),
        () => {
          publishTimer = setTimeout(publish, 500);
        },
      );
  };
  // As soon as a leader is known (a joining member is otherwise listed nameless for a while).
  publishTimer = setTimeout(publish, 200);
  member.onLeaderChange((_group, leaderId) => {
    if (leaderId === 0 || publishTimer === null) return;
    clearTimeout(publishTimer);
    publishTimer = setTimeout(publish, 0);
  });
  return () => {
    if (publishTimer) clearTimeout(publishTimer);
  };
}

/** What the peer transport is built from (newPeerTransport). */
interface PeerTransportParts {
  state: OpenedState;
  member: Member;
  maxFrameBytes: number;
  peerAddresses: Map<number, string>;
  faults: FaultInjector | undefined;
  peerCredentials: grpc.ChannelCredentials;
  /** Peer TLS on: the peer port is a TLS listener, which goes into `listeners` to be closed. */
  peerTls: CertificateFiles | null;
  listeners: Array<{ close(): Promise<void> }>;
  snapshotSendLimiter: SendRateLimiter;
  members: () => MemberInfo[];
  onRemoved: () => void;
}

/** The peer transport: Raft's messages, snapshots, and ClusterInfo for joining members; not started yet. */
function newPeerTransport(cfg: ServerConfig, p: PeerTransportParts): PeerTransport {
  const { cluster, memberId, snapshotDir, sm } = p.state;
  const { member, listeners } = p;
  const log = cfg.logger;
  const peerCerts = p.peerTls;
  return new PeerTransport({
    clusterId: cluster.clusterId,
    memberId,
    applyRules: APPLY_RULES,
    listenAddress: hostPort(cfg.listenPeerUrls[0]),
    peers: p.peerAddresses,
    onMessages: (_from, messages) => member.step(messages),
    maxFrameBytes: p.maxFrameBytes,
    onUnreachable: (peer) => {
      for (const groupId of member.groupIds()) member.reportUnreachable(groupId, peer);
    },
    faults: p.faults,
    logger: log,
    credentials: p.peerCredentials,
    bind:
      peerCerts !== null
        ? async (server, address) => {
            const listener = await listenTls(server, address, { files: peerCerts, requireClientCert: cfg.peerTls?.clientCertAuth ?? false, role: 'peer', logger: log });
            listeners.push(listener);
            return listener.port;
          }
        : undefined,
    snapshotSendLimiter: p.snapshotSendLimiter,
    snapshots: {
      dir: snapshotDir,
      chunks: (groupId, index) => member.snapshotChunks(groupId, index),
      report: (groupId, to, status) => member.reportSnapshot(groupId, to, status),
      received: (groupId, message, filePath) => member.receiveSnapshot(groupId, message, filePath),
    },
    isRemoved: (id) => sm.membership.get(String(id))?.removed === true,
    onRemoved: () => p.onRemoved(),
    clusterInfo: () =>
      JSON.stringify({
        clusterId: cluster.clusterId,
        token: cluster.token,
        bootstrap: cluster.members,
        members: p.members(),
        shards: cluster.shards ?? 1,
        replicationFactor: cluster.replicationFactor ?? 0,
      }),
  });
}

/**
 * A sharded member's shards wired to its peers: the shard layer attached over the peer channels, and the
 * shard peer service served to other members, as unary calls and on the peer streams.
 */
function attachShards(
  cfg: ServerConfig,
  ctx: ApiContext,
  p: { sharding: ShardHosting; shardChannels: ShardPeerChannels; member: Member; sm: KvStateMachine; transport: PeerTransport; isBlocked: ((id: number) => boolean) | undefined },
): void {
  const { sharding, shardChannels, member, sm, transport, isBlocked } = p;
  const log = cfg.logger;
  sharding.attach(
    member,
    shardPeersOverGrpc(shardChannels),
    {
      peerUrlsOf: (id) => sm.membership.get(String(id))?.peerUrls ?? [],
      zoneOf: (id) => sm.published.get(String(id))?.zone ?? '',
      logger: log,
    },
    cfg.limits.maxRequestBytes,
  );
  const shardPeerImpl = shardPeerServiceImpl({
    oracle: () => sharding.oracle(),
    oracleLeader: () => member.leaderId(METADATA_GROUP_ID),
    rangeAt: (groupId, op, revision, deadlineMs) => sharding.readAtHere(groupId, op, revision, deadlineMs),
    leaderOf: (groupId) => (member.hostsGroup(groupId) ? member.leaderId(groupId) : 0),
    isBlocked,
    closeAt: (groupId, revision, deadlineMs) => sharding.closeAtHere(groupId, revision, deadlineMs),
    shardStatus: (groupId) => sharding.shardStatusHere(groupId),
    shardKv: (request) => serveShardKv(ctx, request),
    watchShard: sharding.watchShardServer() ?? undefined,
  });
  transport.addService(shardPeerServiceDefinition(), shardPeerImpl);
  // The oracle's requests and the closing rounds ride the peer streams to members that serve them there.
  transport.serveOnStream(SHARD_PEER_STREAM_SERVICE, shardPeerStreamHandler(shardPeerImpl));
}

/** What stop() ends, in the order it ends them. */
interface StopParts {
  cfg: ServerConfig;
  member: Member;
  sm: KvStateMachine;
  db: MemberDb;
  grpcServer: grpc.Server;
  transport: PeerTransport;
  leases: LeaseManager;
  sweeper: LeaseSweeper | null;
  clusterAdmin: ClusterService;
  sharding: ShardHosting | null;
  shardChannels: ShardPeerChannels | null;
  listeners: Array<{ close(): Promise<void> }>;
  certificates: Array<CertificateFiles | null>;
  httpServer: http.Server | null;
  stopPublishing: () => void;
}

/** The server's stop(): once, however often it is called. */
function stopper(p: StopParts): () => Promise<void> {
  const log = p.cfg.logger;
  let stopping: Promise<void> | null = null;
  return () => {
    stopping ??= (async () => {
      p.stopPublishing();
      // A leader that stops hands leadership to its most caught-up follower first, so the cluster
      // does not sit out an election timeout (rolling restarts stay fast).
      if (p.member.status(DATA_GROUP_ID).role === 'leader') {
        const target = p.member.bestTransferee(DATA_GROUP_ID);
        if (target !== 0) {
          await p.member
            .transferLeadership(DATA_GROUP_ID, target, 2 * p.cfg.tickMs * p.cfg.electionTimeoutTicks)
            .then(
              () => log.info({ to: target.toString(16) }, 'leadership transferred before stopping'),
              (err: unknown) =>
                // Its target stopped too (a whole cluster stopping at once): nothing to hand over to.
                err instanceof TransferTargetGoneError
                  ? log.info({ to: target.toString(16) }, 'leadership not transferred before stopping: the target is gone')
                  : log.warn({ err }, 'leadership transfer before stopping failed'),
            );
        }
      }
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          p.grpcServer.forceShutdown();
          resolve();
        }, 2_000);
        p.grpcServer.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      p.leases.stop();
      p.sweeper?.stop();
      p.clusterAdmin.close();
      p.sharding?.stop();
      p.shardChannels?.close();
      await p.member.stop();
      p.sm.failAll(new MemberStoppedError('stopping (the server is shutting down)'));
      await p.transport.stop();
      await Promise.all(p.listeners.map((l) => l.close()));
      for (const c of p.certificates) c?.close();
      const httpServer = p.httpServer;
      if (httpServer) await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      await p.db.close();
      log.info('stopped');
    })();
    return stopping;
  };
}

export async function startServer(cfg: ServerConfig): Promise<RunningServer> {
  const log = cfg.logger;
  // The shard count and certificates first: a bad flag fails the start before any data is touched.
  if (cfg.shards !== undefined) validateShardCount(cfg.shards);
  const reloadMs = cfg.tlsReloadIntervalMs ?? 1_000;
  const clientCerts = loadTls('client', cfg.clientTls, cfg.listenClientUrls, reloadMs, log);
  const peerCerts = loadTls('peer', cfg.peerTls, cfg.listenPeerUrls, reloadMs, log);
  const peerTlsOn = peerCerts !== null && cfg.listenPeerUrls.some((u) => u.startsWith('https:'));
  const peerCredentials = peerChannelCredentials(peerTlsOn ? peerCerts : null);
  const listeners: Array<{ close(): Promise<void> }> = [];

  const state = await openMemberState(cfg, peerCredentials);
  const { db, dbDir, cluster, shards, replicationFactor, memberId, snapshotDir, loaded, sm } = state;
  const { member, maxFrameBytes } = newMember(cfg, state);
  const sharding =
    shards > 1
      ? await ShardHosting.load({ member, db, snapshotDir, memberId, bootstrap: cluster.members, shardCount: shards, replicationFactor, deadMemberGraceMs: cfg.deadMemberGraceMs, randomSeed: () => randomInt(2 ** 31), logger: log, testForwardShards: cfg.testForwardShards, testRemoteWatchShards: cfg.testRemoteWatchShards, testTxnFenceKeepMs: cfg.testTxnFenceKeepMs })
      : null;
  log.info(
    {
      shards,
      memberId: memberId.toString(16),
      clusterId: cluster.clusterId.toString(16),
      applied: loaded.applied,
      lastIndex: loaded.entries.at(-1)?.index ?? loaded.appliedLogSkipped?.index ?? loaded.snapshot?.index ?? 0,
      ...(loaded.appliedLogSkipped ? { logCompactedToApplied: true } : {}),
      snapshotIndex: loaded.snapshot?.index ?? 0,
      ...state.startup,
    },
    'member loaded',
  );

  // Test-only switches: loud, because either one voids Synod's guarantees or opens a debug door.
  const faults = cfg.faultInjection ? new FaultInjector() : undefined;
  if (cfg.faultInjection) log.warn('EXPERIMENTAL FAULT INJECTION ON: POST /debug/fault/partition can cut this member off (tests only)');
  if (cfg.testForwardShards !== undefined && sharding === null) log.warn('--test-forward-shards ignored: this cluster has one shard');
  if (cfg.unsafeStaleReads) log.warn('UNSAFE STALE READS ON: linearizable reads skip ReadIndex and may be stale (tests only, never in production)');

  const peerAddresses = peerAddressesOf(state, peerTlsOn, log);
  const members = memberInfos(cfg, state);
  const snapshotSendLimiter = new SendRateLimiter(cfg.maxSnapshotSendBytesPerSecond ?? DEFAULT_MAX_SNAPSHOT_SEND_BYTES_PER_SECOND);
  // This member removed from the cluster (the transport hears it, or the cluster group applies it): the
  // removal is recorded, then the server stops itself. stop() exists once the start is over.
  let stop: (() => Promise<void>) | null = null;
  let removedHandled = false;
  const onRemoved = (): void => {
    if (removedHandled) return;
    removedHandled = true;
    log.error('this member has been permanently removed from the cluster; stopping');
    const record: ClusterRecord = { ...cluster, removed: true };
    const batch = new TurnBatch();
    batch.putCluster(record);
    void db
      .write(batch, true)
      .then(() => {
        if (stop === null) throw new Error('removed before the server finished starting');
        return stop();
      })
      .catch((err: unknown) => log.error({ err }, 'stopping after removal failed'))
      .finally(() => cfg.onRemoved?.());
  };
  const transport = newPeerTransport(cfg, {
    state,
    member,
    maxFrameBytes,
    peerAddresses,
    faults,
    peerCredentials,
    peerTls: peerTlsOn ? peerCerts : null,
    listeners,
    snapshotSendLimiter,
    members,
    onRemoved: () => onRemoved(),
  });
  member.setSink(transport);
  sm.membershipListener = () => {
    for (const m of sm.membership.values()) {
      if (m.removed) transport.removePeer(Number(m.id));
      else if (m.peerUrls[0]) transport.setPeer(Number(m.id), hostPort(m.peerUrls[0]));
    }
  };

  const ctx = new ApiContext({ member, sm, clusterId: String(cluster.clusterId), limits: cfg.limits, logger: log, members, unsafeStaleReads: cfg.unsafeStaleReads, testTxnPauseBeforeDecisionMs: cfg.testTxnPauseBeforeDecisionMs, shards: sharding });
  // Test-only partitions (--experimental-fault-injection) cut the shards' peer RPCs as they cut Raft's messages.
  const isBlocked = faults ? (id: number): boolean => faults.isBlocked(id) : undefined;
  const shardChannels =
    sharding !== null ? new ShardPeerChannels({ peerAddress: (id) => transport.peerAddress(id), credentials: peerCredentials, selfId: memberId, isBlocked, streams: transport }) : null;
  if (sharding !== null && shardChannels !== null) attachShards(cfg, ctx, { sharding, shardChannels, member, sm, transport, isBlocked });
  const sweeper = sharding !== null ? new LeaseSweeper(ctx, sharding, log) : null;
  ctx.leaseSweeper = sweeper;
  const clusterAdmin = new ClusterService({ ctx, peerAddress: (id) => transport.peerAddress(id), members, credentials: peerCredentials });
  const leases = new LeaseManager({
    ctx,
    peerAddress: (id) => transport.peerAddress(id),
    electionTimeoutMs: cfg.tickMs * cfg.electionTimeoutTicks,
    checkpointIntervalMs: cfg.leaseCheckpointIntervalMs,
    logger: log,
    credentials: peerCredentials,
  });
  transport.addService(LeaseManager.forwardServiceDefinition(), leases.forwardServiceImpl());
  const backupSlots = new WorkSlots(BACKUPS_AT_ONCE, BACKUPS_WAITING);
  const hashSlots = new WorkSlots(HASHES_AT_ONCE, HASHES_WAITING);
  const grpcServer = clientGrpcServer(cfg, ctx, { db, dbDir, leases, clusterAdmin, transport, backupSlots, hashSlots });

  await transport.start();
  // etcd's JSON gateway: a gRPC client of this member, on a private Unix socket (api/json-gateway.ts).
  const gatewayListener = await listenPrivateUnix(grpcServer, cfg.dataDir);
  const gateway = new JsonGateway({ target: gatewayListener.target, maxBodyBytes: 2 * cfg.limits.maxRequestBytes + 65_536, unaryTimeoutMs: cfg.limits.requestTimeoutMs + 1_000 });
  listeners.push({ close: async () => gateway.close() }, gatewayListener);
  const memberHttpServing = memberHttp(ctx, { faults, snapshotSend: snapshotSendLimiter.stats, streamCalls: transport.streamCallStats, gateway, backupSlots, hashSlots });
  listeners.push({ close: async () => memberHttpServing.close() });
  const clientPorts = await listenForClients(cfg, grpcServer, ctx, clientCerts, memberHttpServing, listeners);
  let httpServer: http.Server | null = null;
  if (cfg.listenMetricsAddress) {
    const [host, port] = cfg.listenMetricsAddress.split(/:(?=\d+$)/);
    httpServer = await memberHttpServing.listen(host, Number(port));
  }
  member.start();
  leases.start();
  sweeper?.start();
  const stopPublishing = startPublishing(cfg, ctx, member, sm, memberId);

  const metricsPort = httpServer ? (httpServer.address() as { port: number }).port : 0;
  log.info({ name: cfg.name, clientUrls: cfg.advertiseClientUrls, clientPorts, peerPort: transport.port, metricsPort }, 'serving');

  const stopServer = stopper({ cfg, member, sm, db, grpcServer, transport, leases, sweeper, clusterAdmin, sharding, shardChannels, listeners, certificates: [clientCerts, peerCerts], httpServer, stopPublishing });
  stop = stopServer;
  // Only the cluster group: a shard replica moved off this member ends that replica, not the process.
  member.onClusterRemoval(() => onRemoved());

  return { memberId, clusterId: cluster.clusterId, clientPorts, peerPort: transport.port, metricsPort, ctx, stop: stopServer };
}

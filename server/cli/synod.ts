#!/usr/bin/env -S node --max-semi-space-size=8
// (The shebang's flags are member-node-flags.ts's; keep them in step.)
// The `synod` command: `synod server` runs one member (etcd's flag names), `synod local` runs a
// 3-member cluster on loopback for trying Synod without Kubernetes.
import { Command, Option } from 'commander';
import pino from 'pino';
import { DEFAULT_LIMITS } from '../api/context.ts';
import { DEFAULT_AUTH_TOKEN_TTL_SECONDS, DEFAULT_SERVER_TIMING, DEFAULT_MAX_SNAPSHOT_SEND_BYTES_PER_SECOND, DEFAULT_SNAPSHOT_COUNT, startServer } from './start-server.ts';
import { runLocalCluster } from './local-cluster.ts';
import { restoreSnapshot } from './snapshot-restore.ts';
import { DEFAULT_QUOTA_BACKEND_BYTES, SUGGESTED_MAX_QUOTA_BACKEND_BYTES } from '../shard/quota.ts';
import { validateZoneName } from '../placement/zone-name.ts';
import { validateShardCount } from '../routing/slots.ts';
import { runPlacementCommand } from './placement-command.ts';
import { DEFAULT_BCRYPT_COST, MAX_BCRYPT_COST, MIN_BCRYPT_COST, isBcryptCost } from '../auth/password.ts';

const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter(Boolean);

/** `--shards` as given (undefined: not given), refused unless a power of two in 1..1024. */
function parseShards(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new RangeError(`--shards must be a power of two (got ${JSON.stringify(text)})`);
  const shards = Number(text);
  validateShardCount(shards);
  return shards;
}

function parseReplicationFactor(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) > 7) throw new RangeError(`--replication-factor must be an integer from 0 to 7 (got ${text})`);
  return Number(text);
}

const program = new Command();
program.name('synod').description('Synod: a replicated, etcd-compatible coordination service');

program
  .command('server')
  .description('run one Synod member')
  .requiredOption('--name <name>', 'human-readable name of this member', 'default')
  .option('--data-dir <dir>', 'where this member keeps its data (default: <name>.synod)')
  .option('--listen-client-urls <urls>', 'URLs to serve clients on', 'http://127.0.0.1:2379')
  .option('--advertise-client-urls <urls>', 'client URLs to publish to the cluster (default: listen URLs)')
  .option('--listen-peer-urls <urls>', 'URLs to serve peers on', 'http://127.0.0.1:2380')
  .option('--initial-advertise-peer-urls <urls>', 'peer URLs to publish (default: listen peer URLs)')
  .option('--initial-cluster <spec>', 'name=peerURL,... of the bootstrap members (default: this member alone)')
  .option('--initial-cluster-token <token>', 'distinguishes clusters bootstrapped with the same URLs', 'synod-cluster')
  .addOption(new Option('--initial-cluster-state <state>', 'new or existing').choices(['new', 'existing']).default('new'))
  .option('--listen-metrics-urls <url>', 'URL for /healthz, /readyz and /metrics (empty: none)', '')
  .option('--heartbeat-interval <ms>', 'Raft tick and heartbeat interval in ms', String(DEFAULT_SERVER_TIMING.tickMs))
  .option('--election-timeout <ms>', 'Raft election timeout in ms', String(DEFAULT_SERVER_TIMING.tickMs * DEFAULT_SERVER_TIMING.electionTimeoutTicks))
  .option('--max-request-bytes <n>', 'largest client request accepted', String(DEFAULT_LIMITS.maxRequestBytes))
  .option('--max-txn-ops <n>', 'most operations in one txn', String(DEFAULT_LIMITS.maxTxnOps))
  .option('--request-timeout <ms>', 'how long a request may wait for consensus', String(DEFAULT_LIMITS.requestTimeoutMs))
  .option('--watch-progress-notify-interval <ms>', 'interval of watch progress notifications', String(DEFAULT_LIMITS.watchProgressNotifyIntervalMs))
  .option('--lease-checkpoint-interval <ms>', 'how often the leader records remaining lease TTLs through Raft', '300000')
  .option('--cert-file <path>', 'client TLS certificate (for https client URLs)', '')
  .option('--key-file <path>', 'client TLS private key', '')
  .option('--trusted-ca-file <path>', 'CA bundle that client certificates must chain to', '')
  .option('--client-cert-auth', 'require client certificates signed by --trusted-ca-file; their CN authenticates as that user')
  .option('--peer-cert-file <path>', 'peer TLS certificate (for https peer URLs; also presented when dialling peers)', '')
  .option('--peer-key-file <path>', 'peer TLS private key', '')
  .option('--peer-trusted-ca-file <path>', 'CA bundle that peer certificates must chain to', '')
  .option('--peer-client-cert-auth', 'require peers to present certificates signed by --peer-trusted-ca-file')
  .option('--tls-reload-interval <ms>', 'how often certificate files are checked for rotation', '1000')
  .addOption(new Option('--auth-token <type>', 'auth token type (Synod issues signed tokens every member verifies; see docs/security.md)').choices(['simple']).default('simple'))
  .option('--auth-token-ttl <seconds>', 'lifetime of an auth token', String(DEFAULT_AUTH_TOKEN_TTL_SECONDS))
  .option('--bcrypt-cost <n>', `cost of the bcrypt hashes made for new passwords (${MIN_BCRYPT_COST}..${MAX_BCRYPT_COST})`, String(DEFAULT_BCRYPT_COST))
  .option('--snapshot-count <n>', 'applied entries between snapshots; the Raft log keeps at least this many', String(DEFAULT_SNAPSHOT_COUNT))
  .option('--max-snapshot-send-bytes-per-second <n>', 'pace of snapshot bytes this member sends to peers, all transfers together (0: unlimited)', String(DEFAULT_MAX_SNAPSHOT_SEND_BYTES_PER_SECOND))
  .option('--quota-backend-bytes <n>', `space quota: past it writes fail and NOSPACE is raised (0: ${DEFAULT_QUOTA_BACKEND_BYTES}; negative: none)`, '0')
  .option('--zone <name>', 'failure domain of this member (topology.kubernetes.io/zone), for placement; empty: none', '')
  .option('--shards <n>', 'shard count of a new cluster (a power of two, fixed at creation; default 1); given later it must match')
  .option('--dead-member-grace <seconds>', 'with --replication-factor: how long a member may be unreachable before its shard replicas are placed elsewhere', '300')
  .option('--replication-factor <n>', 'replicas per shard of a new sharded cluster (fixed at creation; default 3, or every member when fewer; 0: every member hosts every shard); given later it must match')
  .option('--no-lease-reads', 'answer every linearizable read after a heartbeat round to a quorum, never on a leader lease (leases assume clocks that run at nearly the same rate, and the same --heartbeat-interval and --election-timeout on every member)')
  .option('--log-level <level>', 'pino log level', 'info')
  // Test-only switches for the fault suite (test/fault); both off by default.
  .option('--experimental-fault-injection', 'TEST ONLY: serve POST /debug/fault/partition on the metrics URL')
  .option('--experimental-unsafe-stale-reads', 'TEST ONLY, UNSAFE: serve linearizable reads without ReadIndex')
  .option('--test-forward-shards <list>', 'TEST ONLY: shard indexes (e.g. 0,3) or "all" whose KV requests this member forwards to another member, as if it hosted no replica of them')
  .option('--test-txn-pause-before-decision-ms <ms>', 'TEST ONLY: a cross-shard transaction this member coordinates waits this long between its prepares and its decision', '0')
  .option('--test-txn-fence-keep-ms <ms>', 'TEST ONLY: how old a cross-shard transaction must be for its fences to go (default five minutes; the horizon then moves at most every minute or every this long, whichever is shorter)', '0')
  .option('--experimental-test-remote-watch-shards <list>', 'TEST ONLY: merged watches on this member read these shard indexes (comma-separated) from another member over the peer port, though hosted here', '')
  .action(async (o: Record<string, string>) => {
    const logger = pino({ level: o.logLevel, base: { member: o.name } });
    const listenClientUrls = list(o.listenClientUrls);
    const listenPeerUrls = list(o.listenPeerUrls);
    const peerUrls = o.initialAdvertisePeerUrls ? list(o.initialAdvertisePeerUrls) : listenPeerUrls;
    const tickMs = Number(o.heartbeatInterval);
    const electionMs = Number(o.electionTimeout);
    if (!(tickMs > 0) || !(electionMs >= 5 * tickMs)) {
      logger.fatal('--election-timeout must be at least 5 x --heartbeat-interval');
      process.exit(2);
    }
    const maxSnapshotSendBytesPerSecond = Number(o.maxSnapshotSendBytesPerSecond);
    if (!/^\d+$/.test(o.maxSnapshotSendBytesPerSecond)) {
      logger.fatal(`--max-snapshot-send-bytes-per-second must be a non-negative integer (got ${o.maxSnapshotSendBytesPerSecond})`);
      process.exit(2);
    }
    const quotaBackendBytes = Number(o.quotaBackendBytes);
    if (!Number.isFinite(quotaBackendBytes)) {
      logger.fatal('--quota-backend-bytes must be a number of bytes');
      process.exit(2);
    }
    if (quotaBackendBytes > SUGGESTED_MAX_QUOTA_BACKEND_BYTES) {
      logger.warn({ quotaBackendBytes, suggestedMax: SUGGESTED_MAX_QUOTA_BACKEND_BYTES }, 'quota-backend-bytes exceeds the suggested maximum; Synod holds the whole store in memory');
    }
    try {
      validateZoneName(o.zone);
    } catch (err) {
      logger.fatal((err as Error).message);
      process.exit(2);
    }
    let shards: number | undefined;
    try {
      shards = parseShards(o.shards);
    } catch (err) {
      logger.fatal((err as Error).message);
      process.exit(2);
    }
    let replicationFactor: number | undefined;
    try {
      replicationFactor = o.replicationFactor === undefined ? undefined : parseReplicationFactor(o.replicationFactor);
    } catch (err) {
      logger.fatal((err as Error).message);
      process.exit(2);
    }
    const deadMemberGraceSeconds = Number(o.deadMemberGrace);
    if (!(deadMemberGraceSeconds > 0)) {
      logger.fatal(`--dead-member-grace must be a positive number of seconds (got ${o.deadMemberGrace})`);
      process.exit(2);
    }
    let testForwardShards: number[] | 'all' | undefined;
    if (o.testForwardShards !== undefined) {
      const text = String(o.testForwardShards).trim();
      testForwardShards = text === 'all' ? 'all' : text.split(',').map((x) => Number(x.trim()));
      if (testForwardShards !== 'all' && testForwardShards.some((i) => !Number.isInteger(i) || i < 0)) {
        logger.fatal('--test-forward-shards must be "all" or shard indexes separated by commas');
        process.exit(2);
      }
    }
    if (!(Number(o.authTokenTtl) > 0)) {
      logger.fatal('--auth-token-ttl must be a positive number of seconds');
      process.exit(2);
    }
    if (!isBcryptCost(Number(o.bcryptCost))) {
      // etcd takes up to 31; bcrypt here is JavaScript on a worker thread, and cost 14 is about a second.
      logger.fatal(`--bcrypt-cost must be an integer from ${MIN_BCRYPT_COST} to ${MAX_BCRYPT_COST}`);
      process.exit(2);
    }
    try {
      const server = await startServer({
        name: o.name,
        dataDir: o.dataDir ?? `${o.name}.synod`,
        listenClientUrls,
        advertiseClientUrls: o.advertiseClientUrls ? list(o.advertiseClientUrls) : listenClientUrls,
        listenPeerUrls,
        initialAdvertisePeerUrls: peerUrls,
        initialCluster: o.initialCluster ?? `${o.name}=${peerUrls[0]}`,
        initialClusterToken: o.initialClusterToken,
        initialClusterState: o.initialClusterState === 'existing' ? 'existing' : 'new',
        snapshotCount: Number(o.snapshotCount),
        maxSnapshotSendBytesPerSecond,
        listenMetricsAddress: o.listenMetricsUrls ? new URL(o.listenMetricsUrls).host : '',
        tickMs,
        electionTimeoutTicks: Math.round(electionMs / tickMs),
        leaseCheckpointIntervalMs: Number(o.leaseCheckpointInterval),
        limits: {
          maxRequestBytes: Number(o.maxRequestBytes),
          maxTxnOps: Number(o.maxTxnOps),
          requestTimeoutMs: Number(o.requestTimeout),
          watchProgressNotifyIntervalMs: Number(o.watchProgressNotifyInterval),
        },
        logger,
        faultInjection: Boolean(o.experimentalFaultInjection),
        unsafeStaleReads: Boolean(o.experimentalUnsafeStaleReads),
        leaseReads: String(o.leaseReads) !== 'false', // commander's boolean, typed as the other options' strings
        testTxnPauseBeforeDecisionMs: Number(o.testTxnPauseBeforeDecisionMs),
        testTxnFenceKeepMs: Number(o.testTxnFenceKeepMs),
        testRemoteWatchShards: list(o.experimentalTestRemoteWatchShards).map(Number),
        clientTls: { certFile: o.certFile, keyFile: o.keyFile, trustedCaFile: o.trustedCaFile, clientCertAuth: Boolean(o.clientCertAuth) },
        peerTls: { certFile: o.peerCertFile, keyFile: o.peerKeyFile, trustedCaFile: o.peerTrustedCaFile, clientCertAuth: Boolean(o.peerClientCertAuth) },
        tlsReloadIntervalMs: Number(o.tlsReloadInterval),
        authTokenTtlSeconds: Number(o.authTokenTtl),
        bcryptCost: Number(o.bcryptCost),
        quotaBackendBytes,
        zone: o.zone,
        shards,
        replicationFactor,
        deadMemberGraceMs: deadMemberGraceSeconds * 1000,
        testForwardShards,
        // As etcd: a member removed from the cluster stops (the server did) and exits.
        onRemoved: () => process.exit(0),
      });
      // Ctrl-C under `synod local` reaches a member twice (the terminal's SIGINT and the parent's
      // SIGTERM): the first starts a clean shutdown, later ones are ignored.
      let shuttingDown = false;
      const shutdown = (signal: string): void => {
        if (shuttingDown) return;
        shuttingDown = true;
        logger.info({ signal }, 'shutting down');
        server.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            logger.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGTERM', () => shutdown('SIGTERM'));
    } catch (err) {
      logger.fatal({ err }, 'failed to start');
      process.exit(1);
    }
  });

program
  .command('local')
  .description('run a 3-member cluster on loopback (clients 2379, 22379, 32379; peers 2380, 22380, 32380)')
  .option('--data-dir <dir>', 'parent folder of the members\' data', 'data')
  .option('--client-ports <ports>', 'three client ports', '2379,22379,32379')
  .option('--peer-ports <ports>', 'three peer ports', '2380,22380,32380')
  .option('--metrics-ports <ports>', 'three ports for /metrics, /healthz, /readyz', '2381,22381,32381')
  .option('--tls', 'TLS for clients and peers, with development certificates generated into <data-dir>/certs')
  .option('--client-cert-auth', 'with --tls: clients must present a certificate from the development CA')
  .option('--zone <names>', 'zone of the members: one name for all three, or three comma-separated names', '')
  .option('--shards <n>', 'shard count of the cluster (a power of two; default 1)')
  .option('--replication-factor <n>', 'replicas per shard (default 3; 0: every member hosts every shard); members added later receive a share')
  .action(async (o: { dataDir: string; clientPorts: string; peerPorts: string; metricsPorts: string; tls?: boolean; clientCertAuth?: boolean; zone: string; shards?: string; replicationFactor?: string }) => {
    const ports = (v: string, flag: string): number[] => {
      const p = list(v).map(Number);
      if (p.length !== 3 || p.some((n) => !Number.isInteger(n) || n <= 0 || n > 65535)) {
        console.error(`${flag} needs three ports, e.g. 2379,22379,32379`);
        process.exit(2);
      }
      return p;
    };
    const zoneList = o.zone === '' ? [''] : o.zone.split(',').map((s) => s.trim());
    if (zoneList.length !== 1 && zoneList.length !== 3) {
      console.error('--zone takes one zone for all three members or three comma-separated zones');
      process.exit(2);
    }
    const zones = zoneList.length === 1 ? [zoneList[0], zoneList[0], zoneList[0]] : zoneList;
    try {
      zones.forEach(validateZoneName);
    } catch (err) {
      console.error((err as Error).message);
      process.exit(2);
    }
    let shards: number | undefined;
    try {
      shards = parseShards(o.shards);
    } catch (err) {
      console.error((err as Error).message);
      process.exit(2);
    }
    if (o.replicationFactor !== undefined && (!/^\d+$/.test(o.replicationFactor) || Number(o.replicationFactor) > 7)) {
      console.error(`--replication-factor must be an integer from 0 to 7 (got ${o.replicationFactor})`);
      process.exit(2);
    }
    await runLocalCluster({
      zones,
      shards,
      replicationFactor: o.replicationFactor === undefined ? undefined : Number(o.replicationFactor),
      dataDir: o.dataDir,
      clientPorts: ports(o.clientPorts, '--client-ports'),
      peerPorts: ports(o.peerPorts, '--peer-ports'),
      metricsPorts: ports(o.metricsPorts, '--metrics-ports'),
      tls: Boolean(o.tls),
      clientCertAuth: Boolean(o.clientCertAuth),
    });
  });

program
  .command('placement')
  .description('show where the keyspace lives: shards, slot ranges, replicas, leaders, revisions and moves')
  .option('--endpoints <list>', 'member client addresses to ask, tried in order (host:port,...)', '127.0.0.1:2379')
  .option('--key <key>', 'show the hash slot and shard of this key instead')
  .option('--json', 'print JSON (the shape of GET /placement)')
  .option('--drain <member>', 'mark a member (hex id) draining: every shard replica moves off it; repeat to see how many remain')
  .option('--undrain', 'with --drain: mark the member up again instead')
  .option('--dial-timeout <ms>', 'how long to wait for each endpoint', '5000')
  .option('--cacert <file>', 'TLS: CA bundle the members\' certificates chain to (implies TLS)')
  .option('--cert <file>', 'TLS: client certificate')
  .option('--key-file <file>', 'TLS: client certificate\'s private key')
  .action(async (o: { endpoints: string; key?: string; json?: boolean; drain?: string; undrain?: boolean; dialTimeout: string; cacert?: string; cert?: string; keyFile?: string }) => {
    process.exitCode = await runPlacementCommand({ ...o, timeoutMs: Number(o.dialTimeout) });
  });

const snapshot = program.command('snapshot').description('backups: restore what `etcdctl snapshot save` wrote, from Synod or from etcd');
snapshot
  .command('restore <file>')
  .description('restore a backup (Synod\'s, or an etcd snapshot) into a fresh data dir, for one member of a new cluster (like `etcdutl snapshot restore`)')
  .option('--name <name>', 'name of the member this data dir is for', 'default')
  .option('--data-dir <dir>', 'data dir to create (default: <name>.synod)')
  .option('--initial-cluster <spec>', 'name=peerURL,... of the new cluster (default: this member alone on http://127.0.0.1:2380)')
  .option('--initial-cluster-token <token>', 'the new cluster\'s token', 'synod-cluster')
  .option('--initial-advertise-peer-urls <urls>', 'this member\'s peer URLs (checked against --initial-cluster)')
  .option('--skip-hash-check', 'do not check the sha256 trailer')
  .option('--shards <n>', 'the new cluster\'s shard count, a power of two (default: the backup\'s source cluster\'s)')
  .option('--replication-factor <n>', 'the new cluster\'s replicas per shard (default 3 with more than one shard; 0: every member hosts every shard)')
  .action(async (file: string, o: { name: string; dataDir?: string; initialCluster?: string; initialClusterToken: string; initialAdvertisePeerUrls?: string; skipHashCheck?: boolean; shards?: string; replicationFactor?: string }) => {
    const peerUrls = o.initialAdvertisePeerUrls ? list(o.initialAdvertisePeerUrls) : undefined;
    try {
      const r = await restoreSnapshot({
        snapshotPath: file,
        name: o.name,
        dataDir: o.dataDir ?? `${o.name}.synod`,
        initialCluster: o.initialCluster ?? `${o.name}=${peerUrls?.[0] ?? 'http://127.0.0.1:2380'}`,
        initialClusterToken: o.initialClusterToken,
        ...(peerUrls ? { initialAdvertisePeerUrls: peerUrls } : {}),
        skipHashCheck: Boolean(o.skipHashCheck),
        ...(o.shards !== undefined ? { shards: parseShards(o.shards) } : {}),
        ...(o.replicationFactor !== undefined ? { replicationFactor: parseReplicationFactor(o.replicationFactor) } : {}),
      });
      const layout = r.shards > 1 ? `, ${r.hostedShards} of ${r.shards} shards` : '';
      console.log(
        `restored ${r.records} records of ${r.source === 'etcd' ? 'an etcd snapshot' : 'a Synod backup'} (revision ${r.revision}, compacted at ${r.compactRevision}${layout}) into ${o.dataDir ?? `${o.name}.synod`}: member ${r.memberId} of cluster ${r.clusterId}`,
      );
    } catch (err) {
      console.error(`snapshot restore failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    }
  });

await program.parseAsync(process.argv);

// Entrypoint of the Synod server image in a SynodCluster pod: turns the pod's name, namespace and the
// ConfigMap's environment into the server's etcd-style flags, then runs the server.
//
//   data directory already holds data → restart: the member's identity and membership are on disk.
//   SYNOD_INITIAL_CLUSTER_STATE=new    → bootstrap with the fixed SYNOD_INITIAL_CLUSTER (stable peer DNS).
//   SYNOD_INITIAL_CLUSTER_STATE=existing → join: the operator has already added this pod's peer URL as a
//     learner (MemberAdd); Cluster.MemberList through the client Service gives the initial cluster,
//     exactly as `etcdctl member add` prints it. Waits until the member appears.
//
// SYNOD_SERVER_COMMAND overrides the server command (JSON array; default: the Synod server in the image).
// SYNOD_ENTRYPOINT_DRY_RUN=1 prints the command as JSON instead of running it (used by the tests).
// SYNOD_JOIN_ENDPOINTS overrides where MemberList is asked (default: the client Service).
//
// Sharded clusters (operator/render/children.ts sets these only when asked for):
//   SYNOD_SHARDS, SYNOD_REPLICATION_FACTOR → --shards, --replication-factor (on every start: a member
//     that restarts with them checks they match the cluster's).
//   SYNOD_ZONE_FILE → wait until the file (a downward API view of the pod's synod.dev/zone annotation,
//     which the operator writes from the node's zone label) is not empty, then --zone with its content;
//     '-' means the node has no zone label: no --zone.
// SYNOD_LISTEN_HOST overrides the address the server listens on (default 0.0.0.0; tests give each
// simulated pod a loopback address of its own).

// TLS (spec.tls, set by the operator in the pod's environment): SYNOD_CLIENT_TLS=true serves the client
// port with the Secret mounted at /etc/synod/tls/client (and SYNOD_CLIENT_CERT_AUTH=true requires client
// certificates signed by its ca.crt); SYNOD_PEER_TLS=true does the same for the peer port with
// /etc/synod/tls/peer, peers always required to present certificates. The URLs become https://. A
// joining member asks MemberList over TLS too, presenting the client Secret's certificate when
// client certificates are required. SYNOD_TLS_CLIENT_DIR / SYNOD_TLS_PEER_DIR override the directories.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { ENV_CLIENT_CERT_AUTH, ENV_CLIENT_TLS, ENV_PEER_TLS, SECRET_KEY_CA, SECRET_KEY_CERT, SECRET_KEY_KEY, TLS_CLIENT_DIR, TLS_PEER_DIR } from '../api/types.ts';
import { GrpcEtcdAdmin } from '../etcd/etcd-admin.ts';
import type { AdminSecurity, EtcdMember } from '../etcd/etcd-admin.ts';
import { MEMBER_NODE_FLAGS } from '../../server/cli/member-node-flags.ts';

export const CLIENT_PORT = 2379;
export const PEER_PORT = 2380;
export const METRICS_PORT = 2381;
export const DEFAULT_SERVER_COMMAND = ['node', ...MEMBER_NODE_FLAGS, '/app/server/cli/synod.ts', 'server'];

export interface PodIdentity {
  name: string;
  namespace: string;
  peerService: string;
  clientService: string;
  dataDir: string;
  clusterState: 'new' | 'existing';
  initialCluster: string;
  token: string;
  clientTls: boolean;
  peerTls: boolean;
  clientCertAuth: boolean;
  tlsClientDir: string;
  tlsPeerDir: string;
  listenHost?: string;
  shards?: number;
  replicationFactor?: number;
}

export function identityFromEnv(env: NodeJS.ProcessEnv): PodIdentity {
  const name = env['POD_NAME'] ?? env['HOSTNAME'] ?? '';
  const cluster = env['SYNOD_CLUSTER_NAME'] ?? name.replace(/-\d+$/, '');
  if (name === '') throw new Error('POD_NAME (or HOSTNAME) is not set');
  return {
    name,
    namespace: env['POD_NAMESPACE'] ?? 'default',
    peerService: env['SYNOD_PEER_SERVICE'] ?? `${cluster}-peer`,
    clientService: env['SYNOD_CLIENT_SERVICE'] ?? `${cluster}-client`,
    dataDir: env['SYNOD_DATA_DIR'] ?? '/var/lib/synod',
    clusterState: env['SYNOD_INITIAL_CLUSTER_STATE'] === 'new' ? 'new' : 'existing',
    initialCluster: env['SYNOD_INITIAL_CLUSTER'] ?? '',
    token: env['SYNOD_INITIAL_CLUSTER_TOKEN'] ?? cluster,
    clientTls: env[ENV_CLIENT_TLS] === 'true',
    peerTls: env[ENV_PEER_TLS] === 'true',
    clientCertAuth: env[ENV_CLIENT_TLS] === 'true' && env[ENV_CLIENT_CERT_AUTH] === 'true',
    tlsClientDir: env['SYNOD_TLS_CLIENT_DIR'] ?? TLS_CLIENT_DIR,
    tlsPeerDir: env['SYNOD_TLS_PEER_DIR'] ?? TLS_PEER_DIR,
    ...(env['SYNOD_LISTEN_HOST'] === undefined ? {} : { listenHost: env['SYNOD_LISTEN_HOST'] }),
    ...(env['SYNOD_SHARDS'] === undefined ? {} : { shards: Number(env['SYNOD_SHARDS']) }),
    ...(env['SYNOD_REPLICATION_FACTOR'] === undefined ? {} : { replicationFactor: Number(env['SYNOD_REPLICATION_FACTOR']) }),
  };
}

export function advertisedHost(id: PodIdentity): string {
  return `${id.name}.${id.peerService}.${id.namespace}.svc`;
}

export function ownPeerUrl(id: PodIdentity): string {
  return `${id.peerTls ? 'https' : 'http'}://${advertisedHost(id)}:${PEER_PORT}`;
}

function commonFlags(id: PodIdentity): string[] {
  const host = advertisedHost(id);
  const client = id.clientTls ? 'https' : 'http';
  const peer = id.peerTls ? 'https' : 'http';
  const listen = id.listenHost ?? '0.0.0.0';
  return [
    '--name', id.name,
    '--data-dir', id.dataDir,
    '--listen-client-urls', `${client}://${listen}:${CLIENT_PORT}`,
    '--advertise-client-urls', `${client}://${host}:${CLIENT_PORT}`,
    '--listen-peer-urls', `${peer}://${listen}:${PEER_PORT}`,
    '--initial-advertise-peer-urls', `${peer}://${host}:${PEER_PORT}`,
    // Plain HTTP on purpose: the kubelet's probes and Prometheus read it; it serves no keys.
    '--listen-metrics-urls', `http://${listen}:${METRICS_PORT}`,
    '--initial-cluster-token', id.token,
    ...tlsFlags(id),
    ...shardingFlags(id),
  ];
}

/** The server's etcd-style TLS flags for the mounted Secrets. */
export function tlsFlags(id: PodIdentity): string[] {
  const flags: string[] = [];
  if (id.clientTls) {
    flags.push(
      '--cert-file', path.join(id.tlsClientDir, SECRET_KEY_CERT), '--key-file', path.join(id.tlsClientDir, SECRET_KEY_KEY),
      '--trusted-ca-file', path.join(id.tlsClientDir, SECRET_KEY_CA),
    );
    if (id.clientCertAuth) flags.push('--client-cert-auth');
  }
  if (id.peerTls) {
    flags.push(
      '--peer-cert-file', path.join(id.tlsPeerDir, SECRET_KEY_CERT), '--peer-key-file', path.join(id.tlsPeerDir, SECRET_KEY_KEY),
      '--peer-trusted-ca-file', path.join(id.tlsPeerDir, SECRET_KEY_CA), '--peer-client-cert-auth',
    );
  }
  return flags;
}

/** How a joining member reaches the client port for MemberList: the client Secret's CA (and certificate). */
export function joinSecurity(id: PodIdentity): AdminSecurity | null {
  if (!id.clientTls) return null;
  const read = (key: string): string => readFileSync(path.join(id.tlsClientDir, key), 'utf8');
  return {
    tls: { caPem: read(SECRET_KEY_CA), ...(id.clientCertAuth ? { certPem: read(SECRET_KEY_CERT), keyPem: read(SECRET_KEY_KEY) } : {}) },
    auth: null,
  };
}

// ---- Sharding (issue 16) ----

/** --shards and --replication-factor of a sharded cluster (none for one group). */
export function shardingFlags(id: PodIdentity): string[] {
  if (id.shards === undefined) return [];
  return ['--shards', String(id.shards), ...(id.replicationFactor === undefined ? [] : ['--replication-factor', String(id.replicationFactor)])];
}

/** The zone annotation's value as the downward API file shows it ('' while the operator has not written it). */
export function zoneFromFile(content: string): { known: boolean; flags: string[] } {
  const zone = content.trim();
  if (zone === '') return { known: false, flags: [] };
  return { known: true, flags: zone === '-' ? [] : ['--zone', zone] };
}

/** Waits for the zone file (SYNOD_ZONE_FILE) and answers the --zone flags; none without the file setting. */
export async function resolveZoneFlags(env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<string[]> {
  const file = env['SYNOD_ZONE_FILE'];
  if (file === undefined || file === '') return [];
  const timeoutMs = Number(env['SYNOD_ZONE_TIMEOUT_MS'] ?? 300_000);
  const retryMs = Number(env['SYNOD_ZONE_RETRY_MS'] ?? 1_000);
  const deadline = Date.now() + timeoutMs;
  for (let logged = false; ; logged = true) {
    const zone = zoneFromFile(existsSync(file) ? readFileSync(file, 'utf8') : '');
    if (zone.known) return zone.flags;
    if (!logged) log(`waiting for the operator to write this pod's zone (${file})`);
    if (Date.now() > deadline) throw new Error(`no zone in ${file} within ${timeoutMs} ms: is the operator running?`);
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}

/** Flags for a member that restarts on its own data. */
export function restartFlags(id: PodIdentity): string[] {
  return [...commonFlags(id), '--initial-cluster', `${id.name}=${ownPeerUrl(id)}`, '--initial-cluster-state', 'existing'];
}

/** Flags for an initial member bootstrapping the cluster. */
export function bootstrapFlags(id: PodIdentity): string[] {
  const entries = id.initialCluster.split(',').filter((e) => e !== '');
  if (!entries.some((e) => e === `${id.name}=${ownPeerUrl(id)}`)) {
    throw new Error(`SYNOD_INITIAL_CLUSTER does not list ${id.name}=${ownPeerUrl(id)}: ${id.initialCluster}`);
  }
  return [...commonFlags(id), '--initial-cluster', entries.join(','), '--initial-cluster-state', 'new'];
}

/**
 * Flags for a new member joining an existing cluster, from the MemberList that already holds it
 * (as a learner with no name yet). Null while the operator has not added it.
 */
export function joinFlags(id: PodIdentity, members: readonly EtcdMember[]): string[] | null {
  const own = ownPeerUrl(id);
  if (!members.some((m) => m.peerUrls.includes(own))) return null;
  const entries: string[] = [];
  for (const m of members) {
    const name = m.peerUrls.includes(own) ? id.name : m.name;
    // Another member added but not started yet has no name; etcd leaves it out too.
    if (name === '') continue;
    for (const url of m.peerUrls) entries.push(`${name}=${url}`);
  }
  return [...commonFlags(id), '--initial-cluster', entries.join(','), '--initial-cluster-state', 'existing'];
}

export function hasData(dataDir: string): boolean {
  return existsSync(dataDir) && readdirSync(dataDir).some((entry) => entry !== 'lost+found');
}

export async function resolveFlags(id: PodIdentity, env: NodeJS.ProcessEnv, log: (line: string) => void): Promise<string[]> {
  if (hasData(id.dataDir)) {
    log(`${id.name}: data found in ${id.dataDir}, restarting as an existing member`);
    return restartFlags(id);
  }
  if (id.clusterState === 'new') {
    log(`${id.name}: bootstrapping a new cluster`);
    return bootstrapFlags(id);
  }
  const endpoints = (env['SYNOD_JOIN_ENDPOINTS'] ?? `${id.clientService}.${id.namespace}.svc:${CLIENT_PORT}`).split(',');
  const timeoutMs = Number(env['SYNOD_JOIN_TIMEOUT_MS'] ?? 300_000);
  const retryMs = Number(env['SYNOD_JOIN_RETRY_MS'] ?? 2_000);
  const admin = new GrpcEtcdAdmin({ callTimeoutMs: 3_000, security: joinSecurity(id) });
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      try {
        const flags = joinFlags(id, await admin.memberList(endpoints));
        if (flags !== null) {
          log(`${id.name}: joining the existing cluster`);
          return flags;
        }
        log(`${id.name}: not a member yet (the operator adds it as a learner first); waiting`);
      } catch (error) {
        log(`${id.name}: MemberList through ${endpoints.join(',')} failed: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (Date.now() > deadline) throw new Error(`${id.name}: not added to the cluster within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  } finally {
    admin.close();
  }
}

async function main(): Promise<void> {
  const env = process.env;
  const id = identityFromEnv(env);
  const log = (line: string): void => void process.stderr.write(`${JSON.stringify({ level: 30, time: Date.now(), component: 'synod-entrypoint', msg: line })}\n`);
  const flags = [...(await resolveFlags(id, env, log)), ...(await resolveZoneFlags(env, log))];
  const command = env['SYNOD_SERVER_COMMAND'] !== undefined ? (JSON.parse(env['SYNOD_SERVER_COMMAND']) as string[]) : DEFAULT_SERVER_COMMAND;
  const argv = [...command, ...flags];
  if (env['SYNOD_ENTRYPOINT_DRY_RUN'] === '1') {
    process.stdout.write(`${JSON.stringify(argv)}\n`);
    return;
  }
  const child = spawn(argv[0], argv.slice(1), { stdio: 'inherit' });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}

// The operator's admin connection (GrpcEtcdAdmin with AdminSecurity) against a real `synod server`
// process over real gRPC, with the certificates the operator generates for spec.tls.generate (made
// by reconcileGeneratedTls into the in-memory API double's Secrets, a stand-in for the API server's
// storage, then written to files as kubelet would mount them) and the server flags the pods'
// entrypoint derives from them (tlsFlags). Client certificates are required; auth is enabled by the
// operator's own enableAuth, which must survive a root user left by an earlier attempt with another
// password; every later call authenticates as root with a token, re-authenticating when it expires.
// A joining pod's entrypoint asks MemberList over TLS with the mounted client Secret while auth is on.
// Three members, with mutual TLS between peers too. Here the peer port uses the generated server
// certificate (same CA, server and client usage, and it names 127.0.0.1, which members dial here);
// the generated peer certificate names only the pods' DNS names (checked in generated-tls.test.ts).

import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Secret } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatedSecretNames } from '../operator/api/types.ts';
import { tlsFlags } from '../operator/bootstrap/server-entrypoint.ts';
import type { AdminSecurity } from '../operator/etcd/etcd-admin.ts';
import { GrpcEtcdAdmin, ROOT_USER } from '../operator/etcd/etcd-admin.ts';
import { GrpcAdminPool } from '../operator/etcd/admin-pool.ts';
import { GrpcPlacementAdmin } from '../operator/etcd/placement-admin.ts';
import { adminSecurityFrom } from '../operator/security/cluster-security.ts';
import { reconcileGeneratedTls } from '../operator/security/generated-tls.ts';
import { InMemoryApiDouble } from '../operator/testing/in-memory-api-double.ts';
import { withDefaults } from '../operator/api/spec-defaults.ts';
import { AuthClient, failure } from './support/auth-client.ts';
import { ProcessCluster } from './support/process-cluster.ts';

const REF = { name: 'demo', namespace: 'team-a', uid: 'uid-1' };
const SPEC = withDefaults({ replicas: 1, tls: { generate: true, client: { clientCertAuth: true } }, auth: { rootSecret: { name: 'demo-root' } } });
const PASSWORD = 'secret-from-the-root-secret';
const POD_HOST = 'demo-0.demo-peer.team-a.svc';
const ENTRYPOINT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'operator', 'bootstrap', 'server-entrypoint.ts');

let dir = '';
let cluster: ProcessCluster;
let security: AdminSecurity;
const admins: GrpcEtcdAdmin[] = [];
const raw: AuthClient[] = [];

function admin(sec: AdminSecurity | null, channelOptions: grpc.ChannelOptions = {}): GrpcEtcdAdmin {
  const a = new GrpcEtcdAdmin({ callTimeoutMs: 3_000, security: sec, channelOptions });
  admins.push(a);
  return a;
}

const endpoint = (): string => cluster.addressOf(0);
const endpoints = (): string[] => [0, 1, 2].map((i) => cluster.addressOf(i));

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'synod-op-tls-'));
  const api = new InMemoryApiDouble();
  await reconcileGeneratedTls(api, REF, SPEC.tls!, Date.now());
  api.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'demo-root', namespace: REF.namespace }, data: { password: Buffer.from(PASSWORD).toString('base64') } } as never);
  // The Secrets as files, as kubelet mounts them at /etc/synod/tls/{client,peer}.
  const names = generatedSecretNames(REF.name);
  const mount = (secretName: string, into: string): void => {
    mkdirSync(into, { recursive: true });
    const secret = api.get<V1Secret & { kind: string }>('Secret', REF.namespace, secretName)!;
    for (const [key, value] of Object.entries(secret.data ?? {})) writeFileSync(path.join(into, key), Buffer.from(value, 'base64'));
  };
  mount(names.server, path.join(dir, 'client'));
  const flags = tlsFlags({
    name: 'demo-0', namespace: REF.namespace, peerService: 'demo-peer', clientService: 'demo-client', dataDir: '', clusterState: 'new', initialCluster: '', token: '',
    clientTls: true, peerTls: true, clientCertAuth: true, tlsClientDir: path.join(dir, 'client'), tlsPeerDir: path.join(dir, 'client'),
  });
  expect(flags).toContain('--client-cert-auth');
  expect(flags).toContain('--peer-client-cert-auth');
  cluster = await ProcessCluster.start({ size: 3, clientTls: true, peerTls: true, extraArgs: [...flags, '--auth-token-ttl', '2'] });

  const secrets = new Map<string, V1Secret | null>();
  for (const name of [names.operatorClient, 'demo-root']) secrets.set(name, (await api.getSecret(REF.namespace, name)) ?? null);
  const resolved = adminSecurityFrom(REF.name, REF.namespace, SPEC, secrets);
  if (!resolved.ok || resolved.security === null) throw new Error(`no admin security: ${JSON.stringify(resolved)}`);
  security = resolved.security;
}, 60_000);

afterAll(async () => {
  for (const a of admins) a.close();
  for (const c of raw) c.close();
  await cluster?.destroy();
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('operator admin connection: TLS with client certificates and root auth, against a real synod server', () => {
  it('is refused in plaintext, and without a client certificate', async () => {
    await expect(admin(null).status(endpoint())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await expect(admin({ tls: { caPem: security.tls!.caPem }, auth: null }).status(endpoint())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(cluster.members[0].logFile).toBeTruthy();
  });

  it('talks TLS with the generated CA and client certificate, checking the pod\'s DNS name on the server certificate', async () => {
    const secured = admin(security);
    const members = await secured.memberList([endpoint()]);
    expect(members).toHaveLength(3);
    for (const m of members) expect(m.peerUrls[0]).toMatch(/^https:\/\//);
    // Every member answers, and they agree on a leader: the peers talk mutual TLS with these certificates.
    const statuses = await Promise.all(endpoints().map((e) => secured.status(e)));
    expect(new Set(statuses.map((s) => s.leaderId)).size).toBe(1);
    expect(statuses.map((s) => s.memberId)).toContain(statuses[0].leaderId);
    const status = statuses[0];
    // In a cluster the operator dials the pod's DNS name: the certificate must carry it.
    const asPod = admin(security, { 'grpc.ssl_target_name_override': POD_HOST });
    expect((await asPod.status(endpoint())).memberId).toBe(status.memberId);
    const elsewhere = admin(security, { 'grpc.ssl_target_name_override': 'demo-0.other-peer.team-a.svc' });
    await expect(elsewhere.status(endpoint())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });

  it('enables auth idempotently, even over a root user left with another password', async () => {
    // An earlier attempt (or a person) added root with another password, and stopped there.
    const creds = grpc.credentials.createSsl(Buffer.from(security.tls!.caPem), Buffer.from(security.tls!.keyPem!), Buffer.from(security.tls!.certPem!));
    const person = new AuthClient(endpoint(), creds);
    raw.push(person);
    await person.call('Auth', 'UserAdd', { name: ROOT_USER, password: 'someone-elses' });

    const secured = admin(security);
    expect(await secured.authEnabled([endpoint()])).toBe(false);
    expect(await secured.enableAuth([endpoint()], security.auth!.password)).toBe('enabled');
    expect(await secured.authEnabled([endpoint()])).toBe(true);
    expect(await secured.enableAuth([endpoint()], security.auth!.password)).toBe('unchanged');
    // The Secret's password is root's now.
    await expect(person.login(ROOT_USER, 'someone-elses')).rejects.toMatchObject({ details: expect.stringContaining('authentication failed') });
    expect(await person.login(ROOT_USER, PASSWORD)).toMatch(/^synod1\./);
  });

  it('makes root-only calls (membership changes, MoveLeader) as root with a token, and re-authenticates when the token expires', async () => {
    const secured = admin(security);
    const learner = await secured.memberAddLearner([endpoint()], 'https://demo-3.demo-peer.team-a.svc:2380');
    expect(learner.isLearner).toBe(true);
    // Tokens live 2 s here: the next call's token has expired, and the admin logs in again.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    await secured.memberRemove([endpoint()], learner.id);
    expect((await secured.memberList([endpoint()])).map((m) => m.id)).not.toContain(learner.id);
    // MoveLeader goes to the leader's own endpoint: a token from another member's login works there too.
    const statuses = await Promise.all(endpoints().map((e) => secured.status(e)));
    const leader = statuses.findIndex((s) => s.memberId === s.leaderId);
    const target = statuses[(leader + 1) % 3].memberId;
    await secured.moveLeader(endpoints()[leader], target);
    await expect.poll(async () => (await secured.status(endpoints()[leader])).leaderId, { timeout: 10_000 }).toBe(target);

    // The same certificate without the password is user "synod-operator" (its CN), which is no user.
    const noPassword = admin({ tls: security.tls, auth: null });
    expect((await failure(noPassword.memberAddLearner([endpoint()], 'https://demo-4.demo-peer.team-a.svc:2380'))).details).toMatch(/user name not found/);
    // A wrong password is refused with etcd's words.
    const wrong = admin({ tls: security.tls, auth: { username: ROOT_USER, password: 'nope' } });
    expect((await failure(wrong.memberList([endpoint()]))).details).toMatch(/authentication failed, invalid user ID or password/);
  });

  it('lets a joining pod\'s entrypoint ask MemberList over TLS with the mounted client Secret while auth is on', async () => {
    const secured = admin(security);
    const own = 'https://demo-5.demo-peer.team-a.svc:2380';
    const learner = await secured.memberAddLearner([endpoint()], own);
    try {
      const argv = await new Promise<string[]>((resolve, reject) => {
        const child = spawn(process.execPath, [ENTRYPOINT], {
          env: {
            PATH: process.env['PATH'] ?? '', POD_NAME: 'demo-5', POD_NAMESPACE: 'team-a', SYNOD_CLUSTER_NAME: 'demo', SYNOD_DATA_DIR: path.join(dir, 'join-data'),
            SYNOD_ENTRYPOINT_DRY_RUN: '1', SYNOD_INITIAL_CLUSTER_STATE: 'existing', SYNOD_JOIN_ENDPOINTS: endpoint(), SYNOD_JOIN_TIMEOUT_MS: '10000',
            SYNOD_CLIENT_TLS: 'true', SYNOD_CLIENT_CERT_AUTH: 'true', SYNOD_PEER_TLS: 'true', SYNOD_TLS_CLIENT_DIR: path.join(dir, 'client'),
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(stdout) as string[]) : reject(new Error(stderr))));
      });
      const initialCluster = argv[argv.indexOf('--initial-cluster') + 1] ?? '';
      expect(initialCluster).toContain(`demo-5=${own}`);
      expect(initialCluster.split(',')).toHaveLength(4);
      expect(initialCluster).not.toContain('http://');
      expect(argv[argv.indexOf('--initial-cluster-state') + 1]).toBe('existing');
    } finally {
      await secured.memberRemove([endpoint()], learner.id);
    }
  });

  it('asks Placement on the same connection: GetPlacement over TLS, TransferLeaderships as root with a token (renewed when it expires)', async () => {
    const pool = new GrpcAdminPool({ callTimeoutMs: 3_000 });
    try {
      const secured = pool.adminFor(REF, security);
      const placement = pool.placementFor(REF)!;
      expect(placement).toBeDefined();
      const view = await placement.getPlacement(endpoint());
      expect(view.members).toHaveLength(3);
      expect(view.shards[0].voters).toHaveLength(3);
      // An admin call, made as root (this one-group cluster has no shard leaderships to hand over).
      const statuses = await Promise.all(endpoints().map((e) => secured.status(e)));
      const leader = statuses.findIndex((st) => st.memberId === st.leaderId);
      expect((await placement.transferLeaderships(endpoints()[leader])).remaining).toBe(0);
      // Tokens live 2 s here: the next admin call's token has expired, and the client logs in again.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect((await placement.transferLeaderships(endpoint())).remaining).toBe(0);
      // The same TLS connection without root's token is the certificate's CN, which is no user.
      const tokenless = new GrpcPlacementAdmin({ credentials: secured.credentials });
      try {
        expect((await failure(tokenless.transferLeaderships(endpoint()))).details).toMatch(/user name not found|permission denied/);
        expect((await tokenless.getPlacement(endpoint())).members).toHaveLength(3); // open, as MemberList
      } finally {
        tokenless.close();
      }
      // In plaintext the cluster is not reached at all.
      const plain = new GrpcPlacementAdmin();
      try {
        await expect(plain.getPlacement(endpoint())).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      } finally {
        plain.close();
      }
    } finally {
      pool.close();
    }
  });

  it('disables auth again when asked, idempotently', async () => {
    const secured = admin(security);
    expect(await secured.disableAuth([endpoint()])).toBe('disabled');
    expect(await secured.disableAuth([endpoint()])).toBe('unchanged');
    expect(await secured.authEnabled([endpoint()])).toBe(false);
  });
});

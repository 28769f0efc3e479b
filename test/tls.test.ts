// TLS for clients and peers on real Synod processes with certificates made at test time (openssl):
// etcdctl over TLS with --cacert and with client certificates (whose CN authenticates as the user), a
// plaintext client refused with a log line, certificate rotation without restart, and a peer whose
// certificate comes from another CA refused with a log line while the rest of the cluster carries on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { AuthClient, failure } from './support/auth-client.ts';
import { createCa, issueCertificate, LOOPBACK_ALT_NAMES, type CertificatePair } from '../server/tls/dev-certs.ts';

let dir: string;
let ca: CertificatePair;
let otherCa: CertificatePair;
const clients: AuthClient[] = [];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * For an etcdctl that must fail to connect: it gives up after 1 s of dialing and 2 s in all instead of
 * the 3 s + 8 s a working call is allowed (the refusal is what is checked, not how long it retries).
 */
const GIVE_UP_SOON = ['--dial-timeout=1s', '--command-timeout=2s'];

async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(200);
  }
}

function logOf(cluster: ProcessCluster, i: number): string {
  return fs.readFileSync(cluster.members[i].logFile, 'utf8');
}

/** The serial number of the certificate a TLS server presents now (a fresh connection). */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(ca.certFile), ALPNProtocols: ['h2'], servername: 'localhost' }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

const serialOf = (file: string): string => new X509Certificate(fs.readFileSync(file)).serialNumber;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-tls-'));
  ca = await createCa(dir, 'ca');
  otherCa = await createCa(dir, 'other-ca', 'Someone else\'s CA');
  await issueCertificate(ca, dir, 'server', { commonName: 'synod', altNames: LOOPBACK_ALT_NAMES, usage: 'server+client' });
  for (let i = 0; i < 3; i++) await issueCertificate(ca, dir, `peer-${i}`, { commonName: `peer-${i}`, altNames: LOOPBACK_ALT_NAMES, usage: 'server+client' });
  for (const user of ['root', 'alice']) await issueCertificate(ca, dir, `client-${user}`, { commonName: user, usage: 'client' });
});

afterAll(() => {
  for (const c of clients) c.close();
  if (dir && !process.env.SYNOD_KEEP_TEST_DATA) fs.rmSync(dir, { recursive: true, force: true });
});

describe('client and peer TLS on a 3-member cluster', () => {
  let cluster: ProcessCluster;
  const f = (name: string): string => path.join(dir, name);

  beforeAll(async () => {
    cluster = await ProcessCluster.start({
      size: 3,
      clientTls: true,
      peerTls: true,
      extraArgs: ['--cert-file', f('server.pem'), '--key-file', f('server-key.pem'), '--peer-trusted-ca-file', f('ca.pem'), '--peer-client-cert-auth', '--tls-reload-interval', '200'],
      memberArgs: (i) => ['--peer-cert-file', f(`peer-${i}.pem`), '--peer-key-file', f(`peer-${i}-key.pem`)],
    });
  });

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('etcdctl talks TLS with --cacert', async () => {
    const cacert = ['--cacert', ca.certFile];
    expect(await etcdctlOk(cluster.endpoints, [...cacert, 'put', 'tls-key', 'secret'])).toBe('OK\n');
    for (let i = 0; i < 3; i++) expect(await etcdctlOk(cluster.endpointOf(i), [...cacert, 'get', 'tls-key'])).toBe('tls-key\nsecret\n');
    // A watch over TLS (its responses take the coalesced HTTP/2 writes of server/api/stream-writer.ts).
    const watched = await etcdctl(cluster.endpointOf(1), [...cacert, 'watch', 'tls-key', '--rev=1'], { timeoutMs: 3_000, quietMs: 700 });
    expect(watched.stdout).toBe('PUT\ntls-key\nsecret\n');
    const status = await etcdctlOk(cluster.endpoints, [...cacert, 'endpoint', 'status', '-w', 'json']);
    expect((JSON.parse(status) as unknown[]).length).toBe(3);
    // Without the CA the server is not trusted.
    const untrusted = await etcdctl(cluster.endpointOf(0), [...GIVE_UP_SOON, 'get', 'tls-key']);
    expect(untrusted.code).not.toBe(0);
  });

  it('HTTPS on the client port: /health over HTTP/1.1 (ALPN h2 and http/1.1 offered, as curl does, or none), gRPC still h2', async () => {
    const get = (alpn: string[] | undefined): Promise<{ status: number; body: string; protocol: string | false | null }> =>
      new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: cluster.members[0].clientPort, ca: fs.readFileSync(ca.certFile), servername: 'localhost', ...(alpn ? { ALPNProtocols: alpn } : {}) }, () => {
          socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
        });
        let raw = '';
        socket.setEncoding('utf8');
        socket.on('data', (d: string) => (raw += d));
        socket.on('end', () => resolve({ status: Number(raw.split(' ')[1]), body: raw.slice(raw.indexOf('\r\n\r\n') + 4), protocol: socket.alpnProtocol }));
        socket.on('error', reject);
      });
    const offered = await get(['h2', 'http/1.1']);
    expect(offered.protocol).toBe('http/1.1');
    expect(offered.status).toBe(200);
    expect(offered.body).toBe('{"health":"true","reason":""}');
    const none = await get(undefined); // no ALPN at all: told apart by its first bytes
    expect(none.protocol).toBe(false);
    expect(none.body).toBe('{"health":"true","reason":""}');
    // A gRPC client offers h2 alone and gets it.
    expect(await etcdctlOk(cluster.endpointOf(0), ['--cacert', ca.certFile, 'put', 'tls-http', 'beside'])).toBe('OK\n');
    expect(await etcdctlOk(cluster.endpointOf(0), ['--cacert', ca.certFile, 'get', 'tls-http', '--print-value-only'])).toBe('beside\n');
  });

  it('lease renewals and membership changes sent to followers reach the leader over peer TLS', async () => {
    const cacert = ['--cacert', ca.certFile];
    const leader = await cluster.leaderIndex();
    const follower = (leader + 1) % 3;
    const grant = await etcdctlOk(cluster.endpointOf(follower), [...cacert, 'lease', 'grant', '30']);
    const id = /lease ([0-9a-f]+) granted/.exec(grant)?.[1];
    expect(id, grant).toBeDefined();
    // Keep-alives are answered by the leader's lease clock: a follower forwards them on the peer port.
    expect(await etcdctlOk(cluster.endpointOf(follower), [...cacert, 'lease', 'keep-alive', '--once', id!])).toMatch(new RegExp(`lease ${id} keepalived with TTL\\(30\\)`));
    // Membership changes are decided at the leader: a follower forwards them on the peer port too.
    const added = await etcdctlOk(cluster.endpointOf(follower), [...cacert, 'member', 'add', 'spare', '--learner', '--peer-urls=https://127.0.0.1:1']);
    const memberId = /Member\s+([0-9a-f]+) added/.exec(added)![1];
    expect(await etcdctlOk(cluster.endpointOf(follower), [...cacert, 'member', 'remove', memberId])).toMatch(/removed/);
  });

  it('refuses a plaintext client quickly, with a log line saying why', async () => {
    const started = Date.now();
    const r = await etcdctl(cluster.addressOf(1), [...GIVE_UP_SOON, 'get', 'tls-key']); // no https://: plaintext gRPC
    expect(r.code).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    const plain = new AuthClient(cluster.addressOf(1));
    clients.push(plain);
    expect((await failure(plain.call('KV', 'Range', { key: Buffer.from('tls-key') }, 3_000))).code).toBe(grpc.status.UNAVAILABLE);
    await eventually('the refusal in the log', () => /refused a connection on the TLS client port: not TLS: a plaintext client/.test(logOf(cluster, 1)));
  });

  it('reloads a rotated certificate without a restart', async () => {
    const port = cluster.members[0].clientPort;
    const before = await servedSerial(port);
    expect(before.toLowerCase()).toBe(serialOf(f('server.pem')).toLowerCase());
    await issueCertificate(ca, dir, 'server', { commonName: 'synod', altNames: LOOPBACK_ALT_NAMES, usage: 'server+client' });
    const rotated = serialOf(f('server.pem')).toLowerCase();
    expect(rotated).not.toBe(before.toLowerCase());
    await eventually('the new certificate on new connections', async () => (await servedSerial(port)).toLowerCase() === rotated);
    expect(logOf(cluster, 0)).toMatch(/reloaded TLS certificate from disk/);
    expect(await etcdctlOk(cluster.endpoints, ['--cacert', ca.certFile, 'get', 'tls-key'])).toBe('tls-key\nsecret\n');
  });

  it('refuses a peer whose certificate is from another CA, logs why, and keeps serving; a good certificate lets it back in', async () => {
    await cluster.kill9(2);
    await issueCertificate(otherCa, dir, 'peer-2', { commonName: 'peer-2', altNames: LOOPBACK_ALT_NAMES, usage: 'server+client' });
    cluster.startMember(2);

    // Both directions are refused, and the healthy members say why in their logs.
    await eventually('members 0/1 refusing its connections', () =>
      [0, 1].some((i) => /refused a connection on the TLS peer port: client certificate rejected: not signed by the trusted CA/.test(logOf(cluster, i))),
    );
    await eventually('members 0/1 refusing its server certificate', () =>
      [0, 1].some((i) => logOf(cluster, i).split('\n').some((l) => l.includes('cannot reach peer') && /unable to verify|certificate/i.test(l))),
    );
    await eventually('member 2 unable to reach its peers', () => /cannot reach peer/.test(logOf(cluster, 2)));

    // The other two still form a quorum and serve.
    await etcdctlOk(cluster.endpointOf(0), ['--cacert', ca.certFile, 'put', 'while-2-is-out', 'yes']);
    // The shunned member answers at once instead of hanging, and is not ready.
    const shunned = new AuthClient(cluster.addressOf(2), grpc.credentials.createSsl(fs.readFileSync(ca.certFile)));
    clients.push(shunned);
    const started = Date.now();
    await failure(shunned.put('through-2', 'x'));
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await cluster.readyz(2)).toBe(false);

    // Rotating in a certificate from the right CA heals it without a restart.
    await issueCertificate(ca, dir, 'peer-2', { commonName: 'peer-2', altNames: LOOPBACK_ALT_NAMES, usage: 'server+client' });
    await eventually('member 2 ready again', () => cluster.readyz(2), 30_000);
    expect(await etcdctlOk(cluster.endpointOf(2), ['--cacert', ca.certFile, 'get', 'while-2-is-out'])).toBe('while-2-is-out\nyes\n');
  });
});

describe('client certificate authentication', () => {
  let cluster: ProcessCluster;
  const f = (name: string): string => path.join(dir, name);
  const asUser = (user: string): string[] => ['--cacert', ca.certFile, '--cert', f(`client-${user}.pem`), '--key', f(`client-${user}-key.pem`)];

  beforeAll(async () => {
    cluster = await ProcessCluster.start({
      size: 1,
      clientTls: true,
      extraArgs: ['--cert-file', f('server.pem'), '--key-file', f('server-key.pem'), '--trusted-ca-file', f('ca.pem'), '--client-cert-auth'],
    });
  });

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('requires a client certificate from the trusted CA, and logs a refusal', async () => {
    const ep = cluster.endpointOf(0);
    expect(await etcdctlOk(ep, [...asUser('root'), 'put', 'k', 'v'])).toBe('OK\n');
    const noCert = await etcdctl(ep, [...GIVE_UP_SOON, '--cacert', ca.certFile, 'get', 'k']);
    expect(noCert.code).not.toBe(0);
    await eventually('the refusal in the log', () => /refused a connection on the TLS client port: no client certificate/.test(logOf(cluster, 0)));
  });

  it('with auth on, the certificate\'s CN is the user: root manages, alice is confined', async () => {
    const ep = cluster.endpointOf(0);
    await etcdctlOk(ep, [...asUser('root'), 'user', 'add', 'root:root-pw']);
    await etcdctlOk(ep, [...asUser('root'), 'user', 'add', 'alice:alice-pw']);
    await etcdctlOk(ep, [...asUser('root'), 'role', 'add', 'app']);
    await etcdctlOk(ep, [...asUser('root'), 'role', 'grant-permission', '--prefix=true', 'app', 'readwrite', '/app/']);
    await etcdctlOk(ep, [...asUser('root'), 'user', 'grant-role', 'alice', 'app']);
    expect(await etcdctlOk(ep, [...asUser('root'), 'auth', 'enable'])).toBe('Authentication Enabled\n');

    // No password anywhere: the certificates say who is calling.
    expect(await etcdctlOk(ep, [...asUser('root'), 'get', 'k'])).toBe('k\nv\n');
    expect(await etcdctlOk(ep, [...asUser('alice'), 'put', '/app/x', '1'])).toBe('OK\n');
    const denied = await etcdctl(ep, [...asUser('alice'), 'get', 'k']);
    expect(denied.stderr).toContain('etcdserver: permission denied');
    // A token still wins over the certificate, as in etcd.
    expect(await etcdctlOk(ep, [...asUser('alice'), '--user', 'root:root-pw', 'get', 'k'])).toBe('k\nv\n');
    expect(await etcdctlOk(ep, [...asUser('root'), 'auth', 'disable'])).toBe('Authentication Disabled\n');
  });
});

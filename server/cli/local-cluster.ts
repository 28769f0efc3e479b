// `synod local`: three member processes on loopback at etcd's own local-cluster ports, data under
// one folder (kept across runs), logs to files beside it. Ctrl-C stops all three cleanly. With --tls,
// clients and peers talk TLS with certificates generated once into <data dir>/certs.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateDevCertificates, type DevCertificates } from '../tls/dev-certs.ts';
import { MEMBER_NODE_FLAGS } from './member-node-flags.ts';

const SYNOD_CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), 'synod.ts');

export interface LocalClusterOptions {
  dataDir: string;
  clientPorts: number[];
  peerPorts: number[];
  metricsPorts: number[];
  /** TLS for clients and peers (peers always authenticate each other with certificates). */
  tls?: boolean;
  /** --zone of each of the three members ('' = none). */
  zones?: string[];
  /** --shards for every member (absent: not given, the cluster's own). */
  shards?: number;
  /** --replication-factor for every member (absent: not given, the cluster's own). */
  replicationFactor?: number;
  /** With tls: clients must present a certificate signed by the dev CA (its CN is the auth user). */
  clientCertAuth?: boolean;
}

/** The dev certificates under `dir`, generated on first use and reused afterwards. */
async function devCertificates(dir: string): Promise<DevCertificates> {
  const pair = (name: string): { certFile: string; keyFile: string } => ({ certFile: path.join(dir, `${name}.pem`), keyFile: path.join(dir, `${name}-key.pem`) });
  const existing: DevCertificates = { dir, ca: pair('ca'), server: pair('server'), clients: { root: pair('client-root') } };
  const all = [existing.ca, existing.server, existing.clients.root].flatMap((p) => [p.certFile, p.keyFile]);
  if (all.every((f) => fs.existsSync(f))) return existing;
  return generateDevCertificates(dir, ['root']);
}

export async function runLocalCluster(opts: LocalClusterOptions): Promise<void> {
  const MEMBERS = [0, 1, 2].map((i) => ({
    name: `synod-${i + 1}`,
    client: opts.clientPorts[i],
    peer: opts.peerPorts[i],
    metrics: opts.metricsPorts[i],
  }));
  const dataDir = path.resolve(opts.dataDir);
  fs.mkdirSync(dataDir, { recursive: true });
  const scheme = opts.tls ? 'https' : 'http';
  const certs = opts.tls ? await devCertificates(path.join(dataDir, 'certs')) : null;
  const tlsArgs = certs
    ? [
        '--cert-file', certs.server.certFile,
        '--key-file', certs.server.keyFile,
        '--trusted-ca-file', certs.ca.certFile,
        ...(opts.clientCertAuth ? ['--client-cert-auth'] : []),
        '--peer-cert-file', certs.server.certFile,
        '--peer-key-file', certs.server.keyFile,
        '--peer-trusted-ca-file', certs.ca.certFile,
        '--peer-client-cert-auth',
      ]
    : [];
  const initialCluster = MEMBERS.map((m) => `${m.name}=${scheme}://127.0.0.1:${m.peer}`).join(',');
  const children: ChildProcess[] = [];
  let stopping = false;

  for (const [i, m] of MEMBERS.entries()) {
    const zone = opts.zones?.[i] ?? '';
    const logFile = path.join(dataDir, `${m.name}.log`);
    const out = fs.openSync(logFile, 'a');
    const child = spawn(
      process.execPath,
      [
        ...MEMBER_NODE_FLAGS,
        SYNOD_CLI,
        'server',
        '--name', m.name,
        '--data-dir', path.join(dataDir, m.name),
        '--listen-client-urls', `${scheme}://127.0.0.1:${m.client}`,
        '--listen-peer-urls', `${scheme}://127.0.0.1:${m.peer}`,
        '--initial-cluster', initialCluster,
        '--initial-cluster-token', 'synod-local',
        '--listen-metrics-urls', `http://127.0.0.1:${m.metrics}`,
        ...(zone ? ['--zone', zone] : []),
        ...(opts.shards !== undefined ? ['--shards', String(opts.shards)] : []),
        ...(opts.replicationFactor !== undefined ? ['--replication-factor', String(opts.replicationFactor)] : []),
        ...tlsArgs,
      ],
      { stdio: ['ignore', out, out] },
    );
    child.on('exit', (code, signal) => {
      if (!stopping) {
        console.error(`${m.name} exited (code ${code}, signal ${signal}); see ${logFile}`);
      }
    });
    children.push(child);
  }

  const endpoints = MEMBERS.map((m) => `${certs ? 'https://' : ''}127.0.0.1:${m.client}`).join(',');
  const tlsFlags = certs
    ? ` --cacert=${certs.ca.certFile}` + (opts.clientCertAuth ? ` --cert=${certs.clients.root.certFile} --key=${certs.clients.root.keyFile}` : '')
    : '';
  const etcdctl = `ETCDCTL_API=3 etcdctl --endpoints=${endpoints}${tlsFlags}`;
  console.log(`Synod local cluster: 3 members${certs ? ' (TLS for clients and peers)' : ''}, data in ${dataDir}, logs in ${dataDir}/synod-*.log`);
  for (const m of MEMBERS) {
    console.log(`  ${m.name}: client ${scheme}://127.0.0.1:${m.client}  peer ${scheme}://127.0.0.1:${m.peer}  metrics http://127.0.0.1:${m.metrics}/metrics`);
  }
  console.log('');
  console.log('Talk to it with etcdctl (Debian package etcd-client), for example:');
  console.log(`  ${etcdctl} put foo bar`);
  console.log(`  ${etcdctl} get foo`);
  console.log(`  ${etcdctl} endpoint status -w table`);
  const curlTls = certs ? ` --cacert ${certs.ca.certFile}` + (opts.clientCertAuth ? ` --cert ${certs.clients.root.certFile} --key ${certs.clients.root.keyFile}` : '') : '';
  console.log(`Or over HTTP, as etcd: curl${curlTls} ${scheme}://127.0.0.1:${MEMBERS[0].client}/health, or its JSON gateway: curl${curlTls} -X POST ${scheme}://127.0.0.1:${MEMBERS[0].client}/v3/kv/range -d '{"key":"Zm9v"}'`);
  console.log(`Where the keyspace lives: curl http://127.0.0.1:${MEMBERS[0].metrics}/placement, or synod placement --endpoints 127.0.0.1:${MEMBERS[0].client}${certs ? ` --cacert ${certs.ca.certFile}` : ''}${certs && opts.clientCertAuth ? ` --cert ${certs.clients.root.certFile} --key-file ${certs.clients.root.keyFile}` : ''}`);
  if (certs) {
    console.log(`Certificates (a development CA, never for production) are in ${certs.dir}.`);
    if (opts.clientCertAuth) console.log('Client certificates are required; with auth enabled, client-root.pem authenticates as the user root.');
  }
  console.log('Press Ctrl-C to stop the cluster (data is kept for the next run).');

  const stopAll = (): void => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping the cluster...');
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
  await Promise.all(
    children.map((c) => new Promise<void>((resolve) => (c.exitCode !== null ? resolve() : c.once('exit', () => resolve())))),
  );
  console.log('stopped.');
}

// `synod local`: three member processes on loopback at etcd's own local-cluster ports, data under
// one folder (kept across runs), logs to files beside it. Ctrl-C stops all three cleanly.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MEMBER_NODE_FLAGS } from './member-node-flags.ts';

const SYNOD_CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), 'synod.ts');

export interface LocalClusterOptions {
  dataDir: string;
  clientPorts: number[];
  peerPorts: number[];
  metricsPorts: number[];
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
  const initialCluster = MEMBERS.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const children: ChildProcess[] = [];
  let stopping = false;

  for (const m of MEMBERS) {
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
        '--listen-client-urls', `http://127.0.0.1:${m.client}`,
        '--listen-peer-urls', `http://127.0.0.1:${m.peer}`,
        '--initial-cluster', initialCluster,
        '--initial-cluster-token', 'synod-local',
        '--listen-metrics-urls', `http://127.0.0.1:${m.metrics}`,
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

  const endpoints = MEMBERS.map((m) => `127.0.0.1:${m.client}`).join(',');
  console.log(`Synod local cluster: 3 members, data in ${dataDir}, logs in ${dataDir}/synod-*.log`);
  for (const m of MEMBERS) {
    console.log(`  ${m.name}: client http://127.0.0.1:${m.client}  peer http://127.0.0.1:${m.peer}  metrics http://127.0.0.1:${m.metrics}/metrics`);
  }
  console.log('');
  console.log('Talk to it with etcdctl (Debian package etcd-client), for example:');
  console.log(`  ETCDCTL_API=3 etcdctl --endpoints=${endpoints} put foo bar`);
  console.log(`  ETCDCTL_API=3 etcdctl --endpoints=${endpoints} get foo`);
  console.log(`  ETCDCTL_API=3 etcdctl --endpoints=${endpoints} endpoint status -w table`);
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

// Benchmark: backups and HashKV against etcd. The same `keys` × `valueBytes` are put into a real etcd 3.4
// and into 3-member Synod clusters (one group, and 16 shards), then each is timed:
//   - `etcdctl snapshot save` (an etcd snapshot from both; docs/operations.md, "Backups");
//   - `etcdctl snapshot status` of that file;
//   - `etcdctl endpoint hashkv` (etcd's number from both);
//   - `synod snapshot restore` of Synod's file, and of etcd's, into one group and into 16 shards.
//   node bench/backup.ts [keys=100000] [valueBytes=1000]
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { EtcdReference } from '../test/support/etcd-reference.ts';
import { KvClient } from '../test/support/kv-client.ts';
import { ProcessCluster } from '../test/support/process-cluster.ts';
import { synodCli } from '../test/support/synod-backup.ts';

const keys = Number(process.argv[2] ?? 100_000);
const valueBytes = Number(process.argv[3] ?? 1000);
const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-backup-'));

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const out = await fn();
  return [out, performance.now() - started];
}

async function etcdctl(args: string[]): Promise<string> {
  const { stdout } = await run('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' }, maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

async function fill(addresses: string[]): Promise<number> {
  const clients = addresses.map((a) => new KvClient(a));
  let next = 0;
  const [, ms] = await timed(() =>
    Promise.all(
      Array.from({ length: 64 }, async () => {
        for (let i = next++; i < keys; i = next++) await clients[i % clients.length].put(`bench/${String(i).padStart(8, '0')}`, Buffer.alloc(valueBytes, i % 251), {}, 30_000);
      }),
    ),
  );
  for (const c of clients) c.close();
  return ms;
}

interface Row {
  system: string;
  saveMs: number;
  fileMiB: number;
  statusMs: number;
  hashKvMs: number;
}

async function measure(system: string, endpoint: string, file: string): Promise<Row> {
  const [, saveMs] = await timed(() => etcdctl([`--endpoints=${endpoint}`, 'snapshot', 'save', file]));
  const [, statusMs] = await timed(() => etcdctl(['snapshot', 'status', file, '-w', 'json']));
  const [, hashKvMs] = await timed(() => etcdctl([`--endpoints=${endpoint}`, '--command-timeout=120s', 'endpoint', 'hashkv']));
  return { system, saveMs, fileMiB: fs.statSync(file).size / 2 ** 20, statusMs, hashKvMs };
}

async function restoreMs(file: string, shards: number): Promise<number> {
  const target = path.join(dir, `restored-${path.basename(file)}-${shards}`);
  const [r, ms] = await timed(() => synodCli(['snapshot', 'restore', file, '--name', 'm1', '--data-dir', target, '--shards', String(shards), '--initial-cluster', 'm1=http://127.0.0.1:2380,m2=http://127.0.0.1:2480,m3=http://127.0.0.1:2580']));
  if (r.code !== 0) throw new Error(`restore of ${file} failed: ${r.stderr}`);
  fs.rmSync(target, { recursive: true, force: true });
  return ms;
}

const rows: Row[] = [];
const restores: string[] = [];
try {
  const etcd = await EtcdReference.start();
  try {
    const fillMs = await fill([etcd.endpoint]);
    console.log(`etcd 3.4: ${keys} × ${valueBytes} B put in ${(fillMs / 1000).toFixed(1)} s`);
    rows.push(await measure('etcd 3.4', etcd.endpoint, path.join(dir, 'etcd.db')));
  } finally {
    await etcd.stop();
  }
  for (const shards of [1, 16]) {
    const cluster = await ProcessCluster.start({ size: 3, memberArgs: () => ['--shards', String(shards)] });
    try {
      const fillMs = await fill([0, 1, 2].map((i) => cluster.addressOf(i)));
      console.log(`Synod, ${shards === 1 ? 'one group' : `${shards} shards`}: ${keys} × ${valueBytes} B put in ${(fillMs / 1000).toFixed(1)} s`);
      rows.push(await measure(`Synod, ${shards === 1 ? 'one group' : `${shards} shards`}`, cluster.endpointOf(0), path.join(dir, `synod-${shards}.db`)));
    } finally {
      await cluster.destroy();
    }
  }
  for (const [file, from] of [['etcd.db', 'etcd'], ['synod-1.db', 'Synod (one group)']]) {
    for (const shards of [1, 16]) restores.push(`synod snapshot restore of ${from}'s file into ${shards === 1 ? 'one group' : '16 shards'}: ${((await restoreMs(path.join(dir, file), shards)) / 1000).toFixed(2)} s`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

console.log(`\n${keys} keys of ${valueBytes} B, 3 members (etcd: one)\n`);
console.log('| system | snapshot save | file | snapshot status | endpoint hashkv |');
console.log('|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.system} | ${(r.saveMs / 1000).toFixed(2)} s | ${r.fileMiB.toFixed(0)} MiB | ${(r.statusMs / 1000).toFixed(2)} s | ${(r.hashKvMs / 1000).toFixed(2)} s |`);
console.log('');
for (const line of restores) console.log(line);

// The operator image runs an esbuild bundle of operator/main.ts (images/operator/Dockerfile, built by
// images/operator/bundle-operator.sh). Without Docker here, this builds the bundle with the same script
// into a directory laid out like the image (/app/operator/dist/main.mjs beside /app/node_modules and
// /app/proto) and checks what could differ from running the sources: the etcd .proto files are found
// and 64-bit member ids survive (they need protobufjs's Long support); the operator boots and serves
// /healthz; and it idles at far less memory than the .ts sources (issue 11: ~197 MB RSS of 256 Mi).

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../test/support/ports.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NODE = process.execPath;
const ESBUILD = path.join(ROOT, 'node_modules', '.bin', 'esbuild');
const BIG_MEMBER_ID = '10276657743932975437'; // 0x8e9e05c52164694d: not a safe JavaScript number

let app: string;
const children: ChildProcess[] = [];

function bundle(entry: string, outfile: string): void {
  execFileSync('sh', [path.join(ROOT, 'images', 'operator', 'bundle-operator.sh'), ESBUILD, entry, outfile], { cwd: ROOT, stdio: 'pipe' });
}

beforeAll(() => {
  app = mkdtempSync(path.join(tmpdir(), 'synod-operator-image-'));
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(app, 'node_modules'));
  symlinkSync(path.join(ROOT, 'proto'), path.join(app, 'proto'));
  mkdirSync(path.join(app, 'operator', 'dist'), { recursive: true });
  bundle('operator/main.ts', path.join(app, 'operator', 'dist', 'main.mjs'));
});

afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(app, { recursive: true, force: true });
});

/** VmRSS of a process, in MB. */
function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024;
}

/** Starts the operator against an API server that refuses connections; resolves once /healthz answers. */
async function startOperator(args: string[]): Promise<ChildProcess> {
  const kubeconfig = path.join(app, 'kubeconfig');
  writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]\ncurrent-context: x\n');
  const port = await freePort();
  const child = spawn(NODE, args, { cwd: app, stdio: 'ignore', env: { ...process.env, KUBECONFIG: kubeconfig, SYNOD_OPERATOR_METRICS_PORT: String(port), SYNOD_OPERATOR_LOG_LEVEL: 'silent' } });
  children.push(child);
  const started = Date.now();
  while (Date.now() - started < 30_000) {
    if (child.exitCode !== null) throw new Error(`operator exited with ${child.exitCode}`);
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
    if (ok) return child;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error('operator did not serve /healthz within 30 s');
}

async function idleRssMb(args: string[]): Promise<number> {
  const child = await startOperator(args);
  await new Promise((resolve) => setTimeout(resolve, 4_000));
  const rss = rssMb(child.pid!);
  child.kill('SIGKILL');
  return rss;
}

describe('the operator image\'s bundle', () => {
  it('finds the etcd .proto files and keeps 64-bit member ids (GrpcEtcdAdmin.status through the bundle)', async () => {
    const definition = protoLoader.loadSync('etcd/api/etcdserverpb/rpc.proto', { keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [path.join(ROOT, 'proto')] });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as { etcdserverpb: { Maintenance: grpc.ServiceClientConstructor } };
    const server = new grpc.Server();
    server.addService(loaded.etcdserverpb.Maintenance.service, {
      Status: (_call: unknown, callback: grpc.sendUnaryData<object>) => callback(null, { header: { member_id: BIG_MEMBER_ID }, leader: BIG_MEMBER_ID, version: '3.5.0' }),
    });
    const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
    try {
      const entry = path.join(app, 'probe-entry.ts');
      writeFileSync(entry, `import { GrpcEtcdAdmin } from ${JSON.stringify(path.join(ROOT, 'operator', 'etcd', 'etcd-admin.ts'))};\nconst admin = new GrpcEtcdAdmin();\nconsole.log(JSON.stringify(await admin.status(process.argv[2]!)));\nadmin.close();\n`);
      const probe = path.join(app, 'operator', 'dist', 'probe.mjs');
      bundle(entry, probe);
      const output = await new Promise<string>((resolve, reject) => {
        const child = spawn(NODE, [probe, `127.0.0.1:${port}`], { cwd: app, stdio: ['ignore', 'pipe', 'inherit'] });
        children.push(child);
        let text = '';
        child.stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
        child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`probe exited with ${code}`))));
      });
      expect(JSON.parse(output)).toMatchObject({ memberId: '8e9e05c52164694d', leaderId: '8e9e05c52164694d' });
    } finally {
      server.forceShutdown();
    }
  });

  it('boots, serves /healthz, and idles at far less memory than the .ts sources', async () => {
    const bundled = await idleRssMb([path.join(app, 'operator', 'dist', 'main.mjs')]);
    const sources = await idleRssMb([path.join(ROOT, 'operator', 'main.ts')]);
    console.log(`operator idle RSS: bundle ${bundled.toFixed(0)} MB, .ts sources ${sources.toFixed(0)} MB`);
    expect(bundled).toBeLessThan(sources * 0.7);
    expect(bundled).toBeLessThan(140);
  });
});

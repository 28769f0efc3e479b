// End to end on Kubernetes (`make e2e`): create a kind cluster, build and load the server and operator
// images, helm install the operator, apply a 3-member SynodCluster, wait for Available, write and read
// through the client Service, scale 3 → 5 → 3 under a writing client, kill the operator mid-scale,
// upgrade the version, delete the leader pod, and check that no acknowledged write was lost.
//
// Switches (see docs/operator.md):
//   SYNOD_E2E_EXISTING_CLUSTER=1  use the cluster in KUBECONFIG; images must already be pullable there:
//   SYNOD_E2E_SERVER_IMAGE, SYNOD_E2E_OPERATOR_IMAGE   (the upgrade step re-tags nothing: it sets a new
//   version with the same image, which still restarts every pod through the template hash)
//   SYNOD_E2E_KEEP=1              keep the cluster / namespace afterwards
// Without Docker+kind and without that switch it prints one line saying why and exits 0.

import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseMode, systemProbes } from './e2e-mode.ts';
import { KvClient } from './kv-client.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const NS = 'synod-e2e';
const CLUSTER = 'demo';
const HELM = path.join(ROOT, '.tools', 'bin', 'helm');
const LOCAL_PORT = 23790;

function sh(command: string, args: string[], options: { input?: string; quiet?: boolean } = {}): string {
  if (options.quiet !== true) console.log(`$ ${command} ${args.join(' ')}`);
  return execFileSync(command, args, { cwd: ROOT, input: options.input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'inherit'], timeout: 15 * 60_000 });
}

function kubectl(...args: string[]): string {
  return sh('kubectl', ['-n', NS, ...args], { quiet: true });
}

function clusterField(jsonPath: string): string {
  return kubectl('get', 'synodcluster', CLUSTER, '-o', `jsonpath={${jsonPath}}`).trim();
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 10 * 60_000): Promise<void> {
  const started = Date.now();
  process.stdout.write(`waiting: ${what} ...`);
  while (true) {
    let ok = false;
    try {
      ok = check();
    } catch {
      ok = false;
    }
    if (ok) break;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
  }
  console.log(` ok (${Math.round((Date.now() - started) / 1_000)} s)`);
}

function converged(replicas: number, version: string): boolean {
  const conditions = JSON.parse(clusterField('.status.conditions') || '[]') as { type: string; status: string }[];
  const status = (type: string): string | undefined => conditions.find((c) => c.type === type)?.status;
  return status('Available') === 'True' && status('Progressing') === 'False' && status('Upgrading') === 'False' &&
    clusterField('.status.readyReplicas') === String(replicas) && clusterField('.status.currentVersion') === version &&
    clusterField('.status.observedGeneration') === kubectl('get', 'synodcluster', CLUSTER, '-o', 'jsonpath={.metadata.generation}').trim();
}

/** A port-forward to the client Service that is restarted whenever it dies (its pod was deleted). */
class ClientForward {
  #child: ChildProcess | null = null;
  #stopped = false;
  start(): void {
    if (this.#stopped) return;
    this.#child = spawn('kubectl', ['-n', NS, 'port-forward', `svc/${CLUSTER}-client`, `${LOCAL_PORT}:2379`], { stdio: 'ignore' });
    this.#child.on('exit', () => setTimeout(() => this.start(), 1_000));
  }
  stop(): void {
    this.#stopped = true;
    this.#child?.kill('SIGTERM');
  }
}

/** Writes e2e/<n> keys one after another, remembering every acknowledged one. */
class Writer {
  readonly acknowledged = new Map<string, string>();
  failures = 0;
  #running = true;
  #done: Promise<void> | null = null;
  start(): void {
    this.#done = (async () => {
      let n = 0;
      let client = new KvClient(`127.0.0.1:${LOCAL_PORT}`, 3_000);
      while (this.#running) {
        const key = `e2e/${String(n).padStart(8, '0')}`;
        const value = `v${n}-${Date.now()}`;
        try {
          await client.put(key, value);
          this.acknowledged.set(key, value);
          n += 1;
        } catch {
          this.failures += 1;
          client.close();
          client = new KvClient(`127.0.0.1:${LOCAL_PORT}`, 3_000);
          await new Promise((resolve) => setTimeout(resolve, 500));
        }
      }
      client.close();
    })();
  }
  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
  }
}

async function main(): Promise<void> {
  const mode = chooseMode(process.env, systemProbes);
  if (mode.mode === 'skip') {
    console.log(`e2e: skipped: ${mode.reason}`);
    return;
  }
  let serverImage: string;
  let operatorImage: string;
  if (mode.mode === 'kind') {
    const existing = sh('kind', ['get', 'clusters'], { quiet: true }).split('\n');
    if (!existing.includes(mode.clusterName)) sh('kind', ['create', 'cluster', '--name', mode.clusterName, '--wait', '120s']);
    serverImage = 'synod:e2e';
    operatorImage = 'synod-operator:e2e';
    sh('docker', ['build', '-f', 'images/server/Dockerfile', '-t', serverImage, '.']);
    sh('docker', ['build', '-f', 'images/operator/Dockerfile', '-t', operatorImage, '.']);
    sh('kind', ['load', 'docker-image', serverImage, operatorImage, '--name', mode.clusterName]);
  } else {
    serverImage = mode.serverImage;
    operatorImage = mode.operatorImage;
  }
  const [operatorRepo, operatorTag] = splitImage(operatorImage);
  const forward = new ClientForward();
  const writer = new Writer();
  try {
    sh(HELM, ['upgrade', '--install', 'synod-operator', 'charts/synod-operator', '--namespace', NS, '--create-namespace',
      '--set', `image.repository=${operatorRepo}`, '--set', `image.tag=${operatorTag}`, '--set', 'image.pullPolicy=IfNotPresent', '--wait', '--timeout', '5m']);
    const manifest = (replicas: number, version: string): string => JSON.stringify({
      apiVersion: 'synod.dev/v1alpha1', kind: 'SynodCluster', metadata: { name: CLUSTER, namespace: NS },
      spec: { replicas, version, image: serverImage, imagePullPolicy: 'IfNotPresent', storage: { size: '256Mi', retentionPolicyOnScaleIn: 'Delete' } },
    });
    sh('kubectl', ['apply', '-f', '-'], { input: manifest(3, 'e2e-1') });
    await waitFor('3 members Available', () => converged(3, 'e2e-1'));

    forward.start();
    await waitFor('client Service reachable', () => {
      try {
        execFileSync(process.execPath, ['-e', `require('node:net').connect(${LOCAL_PORT},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))`], { timeout: 5_000 });
        return true;
      } catch {
        return false;
      }
    }, 60_000);
    const probe = new KvClient(`127.0.0.1:${LOCAL_PORT}`);
    await probe.put('e2e-hello', 'world');
    const hello = await probe.getPrefix('e2e-hello');
    probe.close();
    if (hello.get('e2e-hello') !== 'world') throw new Error('read after write through the client Service failed');
    console.log('write and read through the client Service: ok');

    writer.start();
    sh('kubectl', ['-n', NS, 'scale', `synodcluster/${CLUSTER}`, '--replicas=5']);
    await waitFor('scale out to 5', () => converged(5, 'e2e-1'));

    sh('kubectl', ['-n', NS, 'scale', `synodcluster/${CLUSTER}`, '--replicas=3']);
    await waitFor('scale-in started', () => clusterField('.status.conditions[?(@.type=="Progressing")].reason') === 'ScalingIn' || converged(3, 'e2e-1'), 120_000);
    sh('kubectl', ['-n', NS, 'delete', 'pod', '-l', 'app.kubernetes.io/name=synod-operator', '--wait=false']);
    console.log('killed the operator mid-scale');
    await waitFor('scale in to 3 after the operator restart', () => converged(3, 'e2e-1'));

    sh('kubectl', ['apply', '-f', '-'], { input: manifest(3, 'e2e-2') });
    await waitFor('rolling upgrade to e2e-2', () => converged(3, 'e2e-2'));

    const leader = clusterField('.status.leader');
    sh('kubectl', ['-n', NS, 'delete', 'pod', leader]);
    await waitFor(`recovery after deleting the leader pod ${leader}`, () => converged(3, 'e2e-2'));

    await writer.stop();
    const checker = new KvClient(`127.0.0.1:${LOCAL_PORT}`, 10_000);
    const stored = await checker.getPrefix('e2e/');
    checker.close();
    const lost = [...writer.acknowledged].filter(([key, value]) => stored.get(key) !== value);
    console.log(`writes acknowledged: ${writer.acknowledged.size}, failed attempts: ${writer.failures}, lost: ${lost.length}`);
    if (writer.acknowledged.size === 0) throw new Error('the writer never got a write acknowledged');
    if (lost.length > 0) throw new Error(`acknowledged writes lost: ${lost.slice(0, 10).map(([k]) => k).join(', ')}`);
    console.log('e2e: passed');
  } finally {
    await writer.stop();
    forward.stop();
    if (process.env['SYNOD_E2E_KEEP'] !== '1') {
      if (mode.mode === 'kind') sh('kind', ['delete', 'cluster', '--name', mode.clusterName]);
      else {
        sh(HELM, ['uninstall', 'synod-operator', '--namespace', NS]);
        sh('kubectl', ['delete', 'namespace', NS, '--wait=false']);
      }
    }
  }
}

function splitImage(image: string): [string, string] {
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > slash ? [image.slice(0, colon), image.slice(colon + 1)] : [image, 'latest'];
}

main().catch((error: unknown) => {
  console.error(`e2e: failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});

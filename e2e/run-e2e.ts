// End to end on Kubernetes (`make e2e`): create a kind cluster, build and load the server and operator
// images, helm install the operator, apply a 3-member SynodCluster, wait for Available, write and read
// through the client Service, scale 3 → 5 → 3 under a writing client, kill the operator while the
// scale-out is really under way (a learner added, not yet promoted: checked before and right after the
// kill through MemberList) and check it converges after the restart, upgrade the version, delete the
// leader pod, and check that no acknowledged write was lost. Every phase's duration is printed.
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
import { describeScaleSnapshot, membersFromStatus, scaleProgress, type ScaleSnapshot } from './scale-progress.ts';

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

/** Each phase and how long it took, printed as it ends and again as a table at the end. */
const phases: { name: string; seconds: number }[] = [];

function recordPhase(name: string, startedMs: number): void {
  const seconds = Math.round((Date.now() - startedMs) / 100) / 10;
  phases.push({ name, seconds });
  console.log(`phase: ${name}: ${seconds} s`);
}

function printPhases(): void {
  if (phases.length === 0) return;
  console.log('phase times:');
  for (const { name, seconds } of phases) console.log(`  ${String(seconds).padStart(7)} s  ${name}`);
}

/** Thrown by a waitFor check when waiting longer cannot help (other errors count as "not yet"). */
class WaitAborted extends Error {}

async function waitFor(what: string, check: () => boolean, options: { timeoutMs?: number; pollMs?: number } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 10 * 60_000;
  const started = Date.now();
  console.log(`waiting: ${what} ...`);
  while (true) {
    let ok = false;
    try {
      ok = check();
    } catch (error) {
      if (error instanceof WaitAborted) throw error;
      ok = false;
    }
    if (ok) break;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${Math.round(timeoutMs / 1_000)} s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 3_000));
  }
  recordPhase(what, started);
}

/** What the operator has written about the members, and the StatefulSet's replicas. */
function statusSnapshot(): ScaleSnapshot {
  const members = JSON.parse(clusterField('.status.members') || '[]') as { name: string; role: string }[];
  const replicas = kubectl('get', 'statefulset', CLUSTER, '-o', 'jsonpath={.spec.replicas}').trim();
  return { members: membersFromStatus(members), statefulSetReplicas: replicas === '' ? null : Number(replicas) };
}

/** The membership as the servers see it (not the operator's possibly stale status), and the StatefulSet's replicas. */
async function liveSnapshot(): Promise<ScaleSnapshot> {
  for (let attempt = 1; ; attempt += 1) {
    const client = new KvClient(`127.0.0.1:${LOCAL_PORT}`, 5_000);
    try {
      const members = await client.memberList();
      return { members, statefulSetReplicas: statusSnapshot().statefulSetReplicas };
    } catch (error) {
      // The port-forward may be restarting (its pod went away): a few more tries.
      if (attempt >= 5) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    } finally {
      client.close();
    }
  }
}

function operatorPods(): { name: string; ready: boolean }[] {
  const pods = JSON.parse(kubectl('get', 'pods', '-l', 'app.kubernetes.io/name=synod-operator', '-o', 'json')) as {
    items: { metadata: { name: string; deletionTimestamp?: string }; status?: { conditions?: { type: string; status: string }[] } }[];
  };
  return pods.items
    .filter((p) => p.metadata.deletionTimestamp === undefined)
    .map((p) => ({ name: p.metadata.name, ready: p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true }));
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
    const installStarted = Date.now();
    sh(HELM, ['upgrade', '--install', 'synod-operator', 'charts/synod-operator', '--namespace', NS, '--create-namespace',
      '--set', `image.repository=${operatorRepo}`, '--set', `image.tag=${operatorTag}`, '--set', 'image.pullPolicy=IfNotPresent', '--wait', '--timeout', '5m']);
    recordPhase('helm install of the operator', installStarted);
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
    }, { timeoutMs: 60_000, pollMs: 1_000 });
    const probe = new KvClient(`127.0.0.1:${LOCAL_PORT}`);
    await probe.put('e2e-hello', 'world');
    const hello = await probe.getPrefix('e2e-hello');
    probe.close();
    if (hello.get('e2e-hello') !== 'world') throw new Error('read after write through the client Service failed');
    console.log('write and read through the client Service: ok');

    writer.start();
    // Scale out 3 → 5 and kill the operator in the middle of it: after the first learner was added
    // (or the StatefulSet grew for it) and before the scale is done. Polled every second: the window
    // between MemberAdd and the promotion is the learner pod's start-up, seconds to tens of seconds.
    const scaleStarted = Date.now();
    sh('kubectl', ['-n', NS, 'scale', `synodcluster/${CLUSTER}`, '--replicas=5']);
    await waitFor('scale-out 3 → 5 under way (learner added, not yet promoted)', () => {
      const progress = scaleProgress(statusSnapshot(), 3, 5);
      if (progress === 'done') throw new WaitAborted('the scale-out finished before it was seen under way: nothing to interrupt');
      return progress === 'in-progress';
    }, { timeoutMs: 5 * 60_000, pollMs: 1_000 });
    const operatorsBefore = new Set(operatorPods().map((p) => p.name));
    // Force: no graceful shutdown, no Lease handed over; the replacement must take over from whatever
    // the killed operator left half done (a learner not promoted, a StatefulSet not matching membership).
    sh('kubectl', ['-n', NS, 'delete', 'pod', '-l', 'app.kubernetes.io/name=synod-operator', '--grace-period=0', '--force', '--wait=false']);
    const killedAt = Date.now();
    const atKill = await liveSnapshot();
    console.log(`killed the operator mid-scale; membership right after the kill: ${describeScaleSnapshot(atKill)}`);
    if (scaleProgress(atKill, 3, 5) !== 'in-progress') {
      throw new Error(`the operator was not killed mid-scale: the scale was ${scaleProgress(atKill, 3, 5)} (${describeScaleSnapshot(atKill)})`);
    }
    await waitFor('a replacement operator Ready', () => operatorPods().some((p) => p.ready && !operatorsBefore.has(p.name)), { timeoutMs: 5 * 60_000, pollMs: 1_000 });
    await waitFor('scale out to 5 after the operator restart', () => converged(5, 'e2e-1'));
    recordPhase('operator killed → scale-out converged', killedAt);
    recordPhase('scale-out 3 → 5 in total', scaleStarted);

    sh('kubectl', ['-n', NS, 'scale', `synodcluster/${CLUSTER}`, '--replicas=3']);
    await waitFor('scale in to 3', () => converged(3, 'e2e-1'));

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
    printPhases();
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

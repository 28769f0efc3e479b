// A StatefulSet controller and kubelet for one SynodCluster in the in-memory API double, whose pods are
// REAL processes: each pod runs the server image's entrypoint (operator/bootstrap/server-entrypoint.ts)
// with the environment its template and the ConfigMap give it, which runs a real `synod server`. Pod i
// listens on its own loopback address (pod-dns.ts) on the standard ports, its stable DNS names resolve
// there (pod-dns-preload.ts in every process), its PVC is a data directory. sync() does one round: pods
// and PVCs per the StatefulSet's replicas (OnDelete: a deleted pod is re-created with the current
// template), processes started and stopped with them, readiness from each member's /readyz.
// TEST-ONLY stand-in for a Kubernetes node: no containers, no cluster DNS here.

import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1ConfigMap, V1Pod, V1StatefulSet } from '@kubernetes/client-node';
import type { InMemoryApiDouble } from '../../operator/testing/in-memory-api-double.ts';
import { MEMBER_NODE_FLAGS } from '../../server/cli/member-node-flags.ts';
import { podIp, type PodDns } from './pod-dns.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ENTRYPOINT = path.join(ROOT, 'operator', 'bootstrap', 'server-entrypoint.ts');
const SYNOD_CLI = path.join(ROOT, 'server', 'cli', 'synod.ts');
const PRELOAD = path.join(ROOT, 'test', 'support', 'pod-dns-preload.ts');

interface RunningPod {
  uid: string;
  ordinal: number;
  child: ChildProcess;
  exited: Promise<void>;
}

export interface ProcessKubeletOptions {
  dns: PodDns;
  /** Where the PVCs' data directories and the pods' logs go. */
  dir: string;
  /** Extra `synod server` flags (faster Raft ticks for tests). */
  serverArgs?: readonly string[];
}

export class ProcessKubelet {
  readonly #api: InMemoryApiDouble;
  readonly #opts: ProcessKubeletOptions;
  readonly #running = new Map<string, RunningPod>();
  /** Pod starts, in order ("name@uid"), for assertions. */
  readonly starts: string[] = [];
  /** Containers that exited on their own (restarted, as a kubelet does): which, how, and the end of their log. */
  readonly crashes: { pod: string; exitCode: number | null; signal: string | null; logTail: string }[] = [];

  constructor(api: InMemoryApiDouble, opts: ProcessKubeletOptions) {
    this.#api = api;
    this.#opts = opts;
  }

  podEnv(ns: string): NodeJS.ProcessEnv {
    return { SYNOD_TEST_POD_IP_PREFIX: this.#opts.dns.prefix, SYNOD_TEST_POD_CLUSTER: this.#opts.dns.cluster, SYNOD_TEST_POD_NAMESPACE: ns };
  }

  async sync(): Promise<void> {
    const { cluster, namespace: ns } = this.#opts.dns;
    const sts = this.#api.get('StatefulSet', ns, cluster) as unknown as V1StatefulSet | undefined;
    if (sts === undefined) return;
    const replicas = sts.spec?.replicas ?? 0;
    const template = sts.spec?.template;
    // Containers that exited on their own: restarted below, as restartPolicy Always does.
    for (const [name, run] of [...this.#running]) {
      if (run.child.exitCode === null && run.child.signalCode === null) continue;
      this.#running.delete(name);
      const logTail = readFileSync(path.join(this.#opts.dir, `${name}.log`), 'utf8').split('\n').slice(-15).join('\n');
      this.crashes.push({ pod: name, exitCode: run.child.exitCode, signal: run.child.signalCode, logTail });
    }
    // Pods the operator deleted, or above replicas: stop their processes first (their ports are reused).
    for (const [name, run] of [...this.#running]) {
      const pod = this.#api.get('Pod', ns, name) as unknown as V1Pod | undefined;
      if (pod === undefined || pod.metadata?.uid !== run.uid || run.ordinal >= replicas) {
        await this.#stop(name);
        if (pod !== undefined && run.ordinal >= replicas) this.#api.remove('Pod', ns, name);
      }
    }
    for (const pod of this.#api.objectsOf('Pod', ns) as unknown as V1Pod[]) {
      const ordinal = Number((pod.metadata?.name ?? '').slice(cluster.length + 1));
      if (ordinal >= replicas) this.#api.remove('Pod', ns, pod.metadata?.name ?? '');
    }
    // PVCs the operator deleted: their data goes with them (only once no pod uses them).
    for (let i = 0; i < 16; i++) {
      const pvc = `data-${cluster}-${i}`;
      if (this.#api.get('PersistentVolumeClaim', ns, pvc) === undefined && !this.#running.has(`${cluster}-${i}`)) rmSync(path.join(this.#opts.dir, pvc), { recursive: true, force: true });
    }
    const configMap = this.#api.get('ConfigMap', ns, `${cluster}-config`) as unknown as V1ConfigMap | undefined;
    for (let i = 0; i < replicas; i++) {
      const name = `${cluster}-${i}`;
      const pvc = `data-${name}`;
      if (this.#api.get('PersistentVolumeClaim', ns, pvc) === undefined) {
        this.#api.put({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: pvc, namespace: ns, labels: { ...(sts.spec?.selector?.matchLabels ?? {}) } }, spec: {} });
      }
      let pod = this.#api.get('Pod', ns, name) as unknown as V1Pod | undefined;
      if (pod === undefined) {
        pod = this.#api.put({
          apiVersion: 'v1', kind: 'Pod',
          metadata: { name, namespace: ns, labels: { ...(template?.metadata?.labels ?? {}) }, annotations: { ...(template?.metadata?.annotations ?? {}) } },
          spec: structuredClone(template?.spec ?? {}) as Record<string, unknown>, status: { conditions: [{ type: 'Ready', status: 'False' }] },
        }) as unknown as V1Pod;
      }
      if (!this.#running.has(name)) this.#start(pod, i, configMap?.data ?? {});
      const ready = await this.#ready(i);
      const wasReady = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
      if (ready !== wasReady) this.#api.put({ ...(pod as unknown as Record<string, unknown>), kind: 'Pod', status: { conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } });
    }
  }

  #start(pod: V1Pod, ordinal: number, configMap: Record<string, string>): void {
    const { namespace: ns } = this.#opts.dns;
    const name = pod.metadata?.name ?? '';
    const container = pod.spec?.containers?.[0];
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '', ...configMap, ...this.podEnv(ns) };
    for (const e of container?.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = name;
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = ns;
    }
    const dataDir = path.join(this.#opts.dir, `data-${name}`);
    mkdirSync(dataDir, { recursive: true });
    env['SYNOD_DATA_DIR'] = dataDir;
    env['SYNOD_LISTEN_HOST'] = podIp(this.#opts.dns, ordinal);
    env['SYNOD_JOIN_RETRY_MS'] = '200';
    env['SYNOD_SERVER_COMMAND'] = JSON.stringify([process.execPath, ...MEMBER_NODE_FLAGS, '--import', PRELOAD, SYNOD_CLI, 'server', ...(this.#opts.serverArgs ?? [])]);
    const log = openSync(path.join(this.#opts.dir, `${name}.log`), 'a');
    // Its own process group: the entrypoint and the server it runs are stopped together, by that id.
    const child = spawn(process.execPath, ['--import', PRELOAD, ENTRYPOINT], { env, stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.#running.set(name, { uid: pod.metadata?.uid ?? '', ordinal, child, exited });
    this.starts.push(`${name}@${pod.metadata?.uid ?? ''}`);
  }

  async #ready(ordinal: number): Promise<boolean> {
    try {
      const res = await fetch(`http://${podIp(this.#opts.dns, ordinal)}:2381/readyz`, { signal: AbortSignal.timeout(1_000) });
      return res.status === 200;
    } catch {
      return false;
    }
  }

  async #stop(name: string): Promise<void> {
    const run = this.#running.get(name);
    if (run === undefined) return;
    this.#running.delete(name);
    const pid = run.child.pid;
    if (pid !== undefined && run.child.exitCode === null) {
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      const killed = await Promise.race([run.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
      if (!killed) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
        await run.exited;
      }
    }
    // The server (the group's other member) may outlive the entrypoint by a moment: wait for the port.
    await new Promise((r) => setTimeout(r, 200));
  }

  async stopAll(): Promise<void> {
    for (const name of [...this.#running.keys()]) await this.#stop(name);
  }
}

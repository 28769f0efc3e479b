// The control loop: supervised informers on SynodClusters and on their StatefulSets, pods and PVCs
// map every change to the owning cluster's key (namespace/name) in a de-duplicating work queue;
// workers take keys and reconcile, requeueing with backoff on failure and after the plan's delay
// otherwise. A key is never reconciled by two workers at once.

import type { KubernetesListObject, KubernetesObject, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { GROUP, LABEL_CLUSTER, PLURAL, VERSION } from '../api/types.ts';
import type { Reconciler } from './reconciler.ts';
import { ReconcileConflict } from './reconciler.ts';
import type { OperatorMetrics } from './operator-metrics.ts';
import { SupervisedInformer } from './supervised-informer.ts';
import { WorkQueue } from './work-queue.ts';

/** Where informers list and watch: a real API server, or a stand-in in tests. */
export interface InformerSources {
  watch: Watch;
  /** Lists the resource at an API path (e.g. /api/v1/pods) with an optional label selector. */
  list(path: string, labelSelector?: string): Promise<KubernetesListObject<KubernetesObject>>;
}

export interface ControllerOptions {
  sources: InformerSources;
  reconciler: Reconciler;
  metrics: OperatorMetrics;
  logger: Logger;
  /** Watch one namespace only; all namespaces when unset. */
  namespace?: string;
  workers?: number;
  queue?: WorkQueue;
  informerRestartBaseDelayMs?: number;
  /** Caps the plan's requeue-after (tests run the loop fast). */
  maxRequeueAfterMs?: number;
}

export function resourcePaths(namespace?: string): { clusters: string; statefulSets: string; pods: string; pvcs: string } {
  const ns = namespace === undefined ? '' : `/namespaces/${namespace}`;
  return {
    clusters: `/apis/${GROUP}/${VERSION}${ns}/${PLURAL}`,
    statefulSets: `/apis/apps/v1${ns}/statefulsets`,
    pods: `/api/v1${ns}/pods`,
    pvcs: `/api/v1${ns}/persistentvolumeclaims`,
  };
}

export class Controller {
  readonly queue: WorkQueue;
  readonly informers: SupervisedInformer<KubernetesObject>[];
  readonly #o: ControllerOptions;
  #running = false;
  #workers: Promise<void>[] = [];

  constructor(options: ControllerOptions) {
    this.#o = options;
    this.queue = options.queue ?? new WorkQueue();
    const paths = resourcePaths(options.namespace);
    const make = (name: string, path: string, labelSelector: string | undefined, keyOf: (o: KubernetesObject) => string | null): SupervisedInformer<KubernetesObject> =>
      new SupervisedInformer<KubernetesObject>({
        name, path, labelSelector,
        watch: options.sources.watch,
        list: () => options.sources.list(path, labelSelector),
        restartBaseDelayMs: options.informerRestartBaseDelayMs,
        onChange: (_kind, object) => {
          const key = keyOf(object);
          if (key !== null) this.enqueue(key);
        },
        onRestart: (error, delayMs) => {
          options.metrics.informerRestartsTotal.inc({ informer: name });
          options.logger.warn({ err: error, informer: name, delayMs }, 'informer restarting');
        },
      });
    const ownKey = (o: KubernetesObject): string | null => `${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? ''}`;
    const childKey = (o: KubernetesObject): string | null => {
      const cluster = o.metadata?.labels?.[LABEL_CLUSTER];
      return cluster === undefined ? null : `${o.metadata?.namespace ?? 'default'}/${cluster}`;
    };
    this.informers = [
      make('synodclusters', paths.clusters, undefined, ownKey),
      make('statefulsets', paths.statefulSets, LABEL_CLUSTER, childKey),
      make('pods', paths.pods, LABEL_CLUSTER, childKey),
      make('persistentvolumeclaims', paths.pvcs, LABEL_CLUSTER, childKey),
    ];
  }

  enqueue(key: string): void {
    this.queue.add(key);
    this.#o.metrics.queueDepth.set(this.queue.length);
  }

  async start(): Promise<void> {
    this.#running = true;
    await Promise.all(this.informers.map((i) => i.start()));
    const workers = this.#o.workers ?? 2;
    this.#workers = Array.from({ length: workers }, () => this.#work());
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.queue.shutDown();
    await Promise.all(this.informers.map((i) => i.stop()));
    await Promise.all(this.#workers);
  }

  async #work(): Promise<void> {
    const { reconciler, metrics, logger } = this.#o;
    while (this.#running) {
      const key = await this.queue.get();
      if (key === null) return;
      metrics.queueDepth.set(this.queue.length);
      const [namespace, name] = splitKey(key);
      const started = performance.now();
      let result = 'ok';
      try {
        const outcome = await reconciler.reconcile(namespace, name);
        this.queue.forget(key);
        if (outcome.requeueAfterMs !== null) {
          this.queue.addAfter(key, Math.min(outcome.requeueAfterMs, this.#o.maxRequeueAfterMs ?? Infinity));
        }
      } catch (error) {
        result = error instanceof ReconcileConflict ? 'conflict' : 'error';
        const delayMs = this.queue.addRateLimited(key);
        logger.warn({ err: error, key, delayMs }, `reconcile ${result}, requeued`);
      } finally {
        metrics.reconcilesTotal.inc({ result });
        metrics.reconcileDurationSeconds.observe({ result }, (performance.now() - started) / 1_000);
        this.queue.done(key);
      }
    }
  }
}

function splitKey(key: string): [string, string] {
  const slash = key.indexOf('/');
  return [key.slice(0, slash), key.slice(slash + 1)];
}

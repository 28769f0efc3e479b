// An informer that never stays down: @kubernetes/client-node's ListWatch (list, then watch from the
// list's resourceVersion; 410 Gone → re-list, emitting deletes for what vanished) supervised so that
// any other error (a failed list, a broken watch, an API server restart) restarts it after an
// exponential backoff instead of leaving the cache frozen. Every add/update/delete is reported to
// onChange, which the controller maps to work-queue keys.

import type { KubernetesObject, ListPromise, Watch } from '@kubernetes/client-node';
import { ListWatch } from '@kubernetes/client-node';

export type ChangeKind = 'add' | 'update' | 'delete';

export interface SupervisedInformerOptions<T extends KubernetesObject> {
  /** For logs and metrics, e.g. "pods". */
  name: string;
  /** API path to watch, e.g. /api/v1/pods. */
  path: string;
  watch: Watch;
  list: ListPromise<T>;
  labelSelector?: string;
  onChange: (kind: ChangeKind, object: T) => void;
  onRestart?: (error: unknown, delayMs: number) => void;
  restartBaseDelayMs?: number;
  restartMaxDelayMs?: number;
  /** Injectable sleep, for tests. */
  delay?: (ms: number) => Promise<void>;
}

export class SupervisedInformer<T extends KubernetesObject> {
  readonly name: string;
  readonly #options: SupervisedInformerOptions<T>;
  readonly #listWatch: ListWatch<T>;
  #stopped = true;
  #consecutiveErrors = 0;
  #restarts = 0;
  #synced = false;
  #restarting = false;

  constructor(options: SupervisedInformerOptions<T>) {
    this.name = options.name;
    this.#options = options;
    this.#listWatch = new ListWatch<T>(options.path, options.watch, this.#listThenMarkSynced, false, options.labelSelector, undefined, {
      delayFn: options.delay ?? defaultDelay,
    });
    this.#listWatch.on('add', (o) => this.#changed('add', o));
    this.#listWatch.on('update', (o) => this.#changed('update', o));
    this.#listWatch.on('delete', (o) => this.#changed('delete', o));
    this.#listWatch.on('error', (err) => void this.#restart(err));
  }

  /** True once a list has completed (the cache reflects the API server at some resourceVersion). */
  get synced(): boolean {
    return this.#synced;
  }

  get restarts(): number {
    return this.#restarts;
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await this.#startListWatch();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#listWatch.stop();
  }

  list(namespace?: string): readonly T[] {
    return this.#listWatch.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#listWatch.get(name, namespace);
  }

  readonly #listThenMarkSynced = async (): ReturnType<ListPromise<T>> => {
    const result = await this.#options.list();
    this.#synced = true;
    this.#consecutiveErrors = 0;
    return result;
  };

  #changed(kind: ChangeKind, object: T): void {
    this.#consecutiveErrors = 0;
    this.#options.onChange(kind, object);
  }

  async #restart(error: unknown): Promise<void> {
    if (this.#stopped || this.#restarting) return;
    this.#restarting = true;
    try {
      const base = this.#options.restartBaseDelayMs ?? 1_000;
      const max = this.#options.restartMaxDelayMs ?? 30_000;
      const delayMs = Math.min(max, base * 2 ** this.#consecutiveErrors);
      this.#consecutiveErrors += 1;
      this.#restarts += 1;
      this.#options.onRestart?.(error, delayMs);
      await (this.#options.delay ?? defaultDelay)(delayMs);
      if (this.#stopped) return;
    } finally {
      this.#restarting = false;
    }
    await this.#startListWatch();
  }

  async #startListWatch(): Promise<void> {
    try {
      await this.#listWatch.start();
    } catch (error) {
      // Watch.watch() can throw before the done callback exists (e.g. connection refused).
      void this.#restart(error);
    }
  }
}

function defaultDelay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

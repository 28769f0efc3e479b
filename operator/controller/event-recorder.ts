// Records Kubernetes Events (core/v1) against a SynodCluster, one for every action the operator takes
// and for every failure, so `kubectl describe synodcluster` tells the story of each step.

import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { API_VERSION, FIELD_MANAGER, KIND } from '../api/types.ts';
import type { KubeApi } from '../kube/kube-api.ts';
import { kubeTime } from '../kube/kube-time.ts';

export interface EventTarget {
  name: string;
  namespace: string;
  uid: string;
}

export class EventRecorder {
  readonly #api: KubeApi;
  readonly #logger: Logger;
  readonly #instance: string;
  readonly #now: () => Date;

  constructor(api: KubeApi, logger: Logger, instance: string, now: () => Date = () => new Date()) {
    this.#api = api;
    this.#logger = logger;
    this.#instance = instance;
    this.#now = now;
  }

  /** Never throws: a lost event must not fail a reconcile. */
  async record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const time = this.#now().toISOString();
    const event: CoreV1Event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${target.name}.`, namespace: target.namespace },
      involvedObject: { apiVersion: API_VERSION, kind: KIND, name: target.name, namespace: target.namespace, uid: target.uid },
      type,
      reason,
      message,
      source: { component: FIELD_MANAGER },
      reportingComponent: FIELD_MANAGER,
      reportingInstance: this.#instance,
      firstTimestamp: kubeTime(time),
      lastTimestamp: kubeTime(time),
      count: 1,
    };
    try {
      await this.#api.createEvent(event);
    } catch (error) {
      this.#logger.warn({ err: error, reason }, 'could not record event');
    }
  }
}

// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: acquire
// the Lease when it is free or expired, renew it every retry period, and stop leading when it could
// not be renewed within the renew deadline. Updates are optimistic (resourceVersion), so two
// replicas racing for the Lease get a 409 and exactly one wins.
//
// acquireTime and renewTime are metav1.MicroTime: they go out with exactly six fractional digits
// (kube-time.ts), because the API server refuses anything else with a 400; what the server sends back
// (a string, client-node does not parse MicroTime) is read with parseKubeInstant. The elector also
// keeps what it last saw (ElectionStatus) for the operator's /readyz.

import type { V1Lease, V1LeaseSpec } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeApi } from '../kube/kube-api.ts';
import { isConflict } from '../kube/kube-api.ts';
import { microTime, parseKubeInstant } from '../kube/kube-time.ts';

/** What the elector last learnt from the API server, for readiness. */
export interface ElectionStatus {
  leading: boolean;
  /** Holder seen on the last successful read ('' when free); null before any read succeeded. */
  observedHolder: string | null;
  /** Whether that holder's lease was unexpired when it was read. */
  observedFresh: boolean;
  /** When a Lease request last got an answer from the API server (a 409 counts); 0 = never. */
  lastContactMs: number;
  /** Lease requests that failed in a row (no answer, or an error other than 409). */
  consecutiveFailures: number;
  leaseDurationMs: number;
}

export interface LeaderElectionOptions {
  api: KubeApi;
  namespace: string;
  leaseName: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  logger: Logger;
}

export class LeaderElector {
  readonly #o: Required<Omit<LeaderElectionOptions, 'logger' | 'api'>> & Pick<LeaderElectionOptions, 'logger' | 'api'>;
  #leading = false;
  #lastRenewMs = 0;
  #stopped = false;
  #observedHolder: string | null = null;
  #observedFresh = false;
  #lastContactMs = 0;
  #consecutiveFailures = 0;

  constructor(options: LeaderElectionOptions) {
    this.#o = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      now: () => Date.now(),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      ...options,
    };
  }

  get leading(): boolean {
    return this.#leading;
  }

  get identity(): string {
    return this.#o.identity;
  }

  status(): ElectionStatus {
    return {
      leading: this.#leading,
      observedHolder: this.#observedHolder,
      observedFresh: this.#observedFresh,
      lastContactMs: this.#lastContactMs,
      consecutiveFailures: this.#consecutiveFailures,
      leaseDurationMs: this.#o.leaseDurationMs,
    };
  }

  /** One attempt to acquire or renew the Lease. True when this identity holds it afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, leaseName, identity } = this.#o;
    const nowMs = this.#o.now();
    const durationSeconds = Math.ceil(this.#o.leaseDurationMs / 1_000);
    try {
      const lease = await api.getLease(namespace, leaseName);
      this.#contact(nowMs);
      if (lease === null) {
        await api.createLease({
          apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
          metadata: { name: leaseName, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: microTime(nowMs), renewTime: microTime(nowMs), leaseTransitions: 0 },
        });
        return this.#held(nowMs);
      }
      const spec: V1LeaseSpec = lease.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      const renewMs = parseKubeInstant(spec.renewTime) ?? 0;
      const expired = holder === '' || renewMs + (spec.leaseDurationSeconds ?? durationSeconds) * 1_000 < nowMs;
      this.#observedHolder = holder;
      this.#observedFresh = !expired;
      if (holder !== identity && !expired) return this.#lost();
      const acquireTime = holder === identity && spec.acquireTime !== undefined ? microTime(spec.acquireTime) : microTime(nowMs);
      await api.replaceLease(leaseForUpdate(lease, {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: microTime(nowMs),
        acquireTime,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (holder === identity ? 0 : 1),
      }));
      return this.#held(nowMs);
    } catch (error) {
      if (isConflict(error)) {
        this.#contact(nowMs);
      } else {
        this.#consecutiveFailures += 1;
        this.#o.logger.warn({ err: error, failures: this.#consecutiveFailures }, 'leader election: lease request failed');
      }
      // Leadership survives failed renewals until the renew deadline passes.
      if (this.#leading && nowMs - this.#lastRenewMs < this.#o.renewDeadlineMs) return true;
      return this.#lost();
    }
  }

  /**
   * Campaigns until leading, calls onStartedLeading, renews until the Lease is lost or stop() is
   * called, then calls onStoppedLeading (the operator exits then, to start again from a clean state).
   */
  async run(callbacks: { onStartedLeading: () => void; onStoppedLeading: () => void }): Promise<void> {
    while (!this.#stopped && !(await this.tryAcquireOrRenew())) await this.#o.sleep(this.#o.retryPeriodMs);
    if (this.#stopped) return;
    // The identity is in the logger's bindings (main.ts), so it is not repeated here.
    this.#o.logger.info('leader election: started leading');
    callbacks.onStartedLeading();
    while (!this.#stopped) {
      await this.#o.sleep(this.#o.retryPeriodMs);
      if (this.#stopped) break;
      if (!(await this.tryAcquireOrRenew())) break;
    }
    this.#o.logger.info('leader election: stopped leading');
    callbacks.onStoppedLeading();
  }

  /** Stops campaigning and, when leading, releases the Lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (!this.#leading) return;
    this.#leading = false;
    try {
      const lease = await this.#o.api.getLease(this.#o.namespace, this.#o.leaseName);
      if (lease?.spec?.holderIdentity === this.#o.identity) {
        const { acquireTime, ...spec } = lease.spec;
        await this.#o.api.replaceLease(leaseForUpdate(lease, {
          ...spec,
          ...(acquireTime === undefined ? {} : { acquireTime: microTime(acquireTime) }),
          holderIdentity: '',
          renewTime: microTime(this.#o.now()),
        }));
      }
    } catch (error) {
      this.#o.logger.warn({ err: error }, 'leader election: could not release the lease');
    }
  }

  #held(nowMs: number): boolean {
    this.#leading = true;
    this.#lastRenewMs = nowMs;
    this.#observedHolder = this.#o.identity;
    this.#observedFresh = true;
    this.#contact(nowMs);
    return true;
  }

  #contact(nowMs: number): void {
    this.#lastContactMs = nowMs;
    this.#consecutiveFailures = 0;
  }

  #lost(): boolean {
    this.#leading = false;
    return false;
  }
}

/**
 * The body of an update: the Lease as read, with only the metadata an update needs (name, namespace,
 * resourceVersion for the optimistic lock, uid, labels, annotations). Server-written fields
 * (creationTimestamp, managedFields) are left out: the server keeps them, and client-node would
 * write them back with milliseconds.
 */
function leaseForUpdate(lease: V1Lease, spec: V1LeaseSpec): V1Lease {
  const m = lease.metadata ?? {};
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name: m.name,
      namespace: m.namespace,
      ...(m.resourceVersion === undefined ? {} : { resourceVersion: m.resourceVersion }),
      ...(m.uid === undefined ? {} : { uid: m.uid }),
      ...(m.labels === undefined ? {} : { labels: m.labels }),
      ...(m.annotations === undefined ? {} : { annotations: m.annotations }),
    },
    spec,
  };
}

// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: acquire
// the Lease when it is free or expired, renew it every retry period, and stop leading when it could
// not be renewed within the renew deadline. Updates are optimistic (resourceVersion), so two
// replicas racing for the Lease get a 409 and exactly one wins.

import type { V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { KubeApi } from '../kube/kube-api.ts';
import { isConflict } from '../kube/kube-api.ts';

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

  /** One attempt to acquire or renew the Lease. True when this identity holds it afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, leaseName, identity } = this.#o;
    const nowMs = this.#o.now();
    const now = new Date(nowMs);
    const durationSeconds = Math.ceil(this.#o.leaseDurationMs / 1_000);
    try {
      const lease = await api.getLease(namespace, leaseName);
      if (lease === null) {
        await api.createLease({
          apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
          metadata: { name: leaseName, namespace },
          spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
        });
        return this.#held(nowMs);
      }
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity ?? '';
      const renewMs = spec.renewTime === undefined ? 0 : new Date(spec.renewTime).getTime();
      const expired = holder === '' || renewMs + (spec.leaseDurationSeconds ?? durationSeconds) * 1_000 < nowMs;
      if (holder !== identity && !expired) return this.#lost();
      const next: V1Lease = {
        ...lease,
        spec: {
          ...spec,
          holderIdentity: identity,
          leaseDurationSeconds: durationSeconds,
          renewTime: now,
          acquireTime: holder === identity ? spec.acquireTime : now,
          leaseTransitions: (spec.leaseTransitions ?? 0) + (holder === identity ? 0 : 1),
        },
      };
      await api.replaceLease(next);
      return this.#held(nowMs);
    } catch (error) {
      if (!isConflict(error)) this.#o.logger.warn({ err: error }, 'leader election: lease request failed');
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
    this.#o.logger.info({ identity: this.#o.identity }, 'leader election: started leading');
    callbacks.onStartedLeading();
    while (!this.#stopped) {
      await this.#o.sleep(this.#o.retryPeriodMs);
      if (this.#stopped) break;
      if (!(await this.tryAcquireOrRenew())) break;
    }
    this.#o.logger.info({ identity: this.#o.identity }, 'leader election: stopped leading');
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
        await this.#o.api.replaceLease({ ...lease, spec: { ...lease.spec, holderIdentity: '', renewTime: new Date(this.#o.now()) } });
      }
    } catch (error) {
      this.#o.logger.warn({ err: error }, 'leader election: could not release the lease');
    }
  }

  #held(nowMs: number): boolean {
    this.#leading = true;
    this.#lastRenewMs = nowMs;
    return true;
  }

  #lost(): boolean {
    this.#leading = false;
    return false;
  }
}

// The operator's Prometheus metrics (prom-client, one registry per operator instance so tests can
// create several): reconciles, their duration, actions by type and result, queue depth, informer
// restarts, leadership, and per-cluster member counts.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class OperatorMetrics {
  readonly registry: Registry;
  readonly reconcilesTotal: Counter<'result'>;
  readonly reconcileDurationSeconds: Histogram<'result'>;
  readonly actionsTotal: Counter<'action' | 'result'>;
  readonly queueDepth: Gauge;
  readonly informerRestartsTotal: Counter<'informer'>;
  readonly isLeader: Gauge;
  readonly clusterMembers: Gauge<'namespace' | 'cluster' | 'state'>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    this.registry = new Registry();
    if (options.defaultMetrics === true) collectDefaultMetrics({ register: this.registry, prefix: 'synod_operator_' });
    const registers = [this.registry];
    this.reconcilesTotal = new Counter({ name: 'synod_operator_reconciles_total', help: 'Reconciles by result (ok, error, conflict).', labelNames: ['result'], registers });
    this.reconcileDurationSeconds = new Histogram({
      name: 'synod_operator_reconcile_duration_seconds', help: 'Duration of one reconcile.', labelNames: ['result'], registers,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.actionsTotal = new Counter({ name: 'synod_operator_actions_total', help: 'Planned actions executed, by type and result.', labelNames: ['action', 'result'], registers });
    this.queueDepth = new Gauge({ name: 'synod_operator_work_queue_depth', help: 'Keys waiting in the work queue.', registers });
    this.informerRestartsTotal = new Counter({ name: 'synod_operator_informer_restarts_total', help: 'Informer restarts after errors.', labelNames: ['informer'], registers });
    this.isLeader = new Gauge({ name: 'synod_operator_is_leader', help: '1 while this replica holds the leader-election Lease.', registers });
    this.clusterMembers = new Gauge({ name: 'synod_operator_cluster_members', help: 'Members of each SynodCluster by state (ready, total, desired).', labelNames: ['namespace', 'cluster', 'state'], registers });
  }
}

// The operator process: reads its settings from the environment (set by the Helm chart), serves
// /metrics, /healthz and /readyz, campaigns for the leader-election Lease, and runs the controller
// while it leads. Losing the Lease exits the process (the Deployment restarts it clean), as
// client-go operators do. SIGTERM stops the controller (in-flight reconciles finish) and then releases
// the Lease so a standby takes over at once (shutdown.ts). /readyz: readiness.ts.
//
//   node operator/main.ts            (in cluster, or with KUBECONFIG pointing at a cluster)

import { createServer } from 'node:http';
import { hostname } from 'node:os';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import { Controller } from './controller/controller.ts';
import { EventRecorder } from './controller/event-recorder.ts';
import { LeaderElector } from './controller/leader-election.ts';
import { OperatorMetrics } from './controller/operator-metrics.ts';
import { operatorReadiness } from './controller/readiness.ts';
import { Reconciler } from './controller/reconciler.ts';
import { shutDownInOrder } from './controller/shutdown.ts';
import { GrpcAdminPool } from './etcd/admin-pool.ts';
import { GrpcEtcdAdmin } from './etcd/etcd-admin.ts';
import { GrpcPlacementAdmin } from './etcd/placement-admin.ts';
import { ClientNodeKubeApi } from './kube/client-node-api.ts';
import { clientNodeSources } from './kube/client-node-sources.ts';

export interface OperatorSettings {
  identity: string;
  namespace: string;
  watchNamespace: string | undefined;
  leaderElection: boolean;
  leaseName: string;
  metricsPort: number;
  logLevel: string;
}

export function settingsFromEnv(env: NodeJS.ProcessEnv): OperatorSettings {
  return {
    identity: env['POD_NAME'] ?? hostname(),
    namespace: env['POD_NAMESPACE'] ?? 'default',
    watchNamespace: env['SYNOD_OPERATOR_WATCH_NAMESPACE'] === undefined || env['SYNOD_OPERATOR_WATCH_NAMESPACE'] === '' ? undefined : env['SYNOD_OPERATOR_WATCH_NAMESPACE'],
    leaderElection: env['SYNOD_OPERATOR_LEADER_ELECTION'] !== 'false',
    leaseName: env['SYNOD_OPERATOR_LEASE_NAME'] ?? 'synod-operator-leader',
    metricsPort: Number(env['SYNOD_OPERATOR_METRICS_PORT'] ?? 8080),
    logLevel: env['SYNOD_OPERATOR_LOG_LEVEL'] ?? 'info',
  };
}

async function main(): Promise<void> {
  const settings = settingsFromEnv(process.env);
  const logger = pino({ level: settings.logLevel, base: { component: 'synod-operator', identity: settings.identity } });
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const api = new ClientNodeKubeApi(kubeConfig);
  const metrics = new OperatorMetrics({ defaultMetrics: true });
  const etcd = new GrpcEtcdAdmin();
  const admins = new GrpcAdminPool();
  const placement = new GrpcPlacementAdmin();
  const reconciler = new Reconciler({ api, etcd, admins, placement, events: new EventRecorder(api, logger, settings.identity), metrics, logger });
  const controller = new Controller({ sources: clientNodeSources(kubeConfig, settings.watchNamespace), reconciler, metrics, logger, namespace: settings.watchNamespace });

  let controllerStarted = false;
  let elector: LeaderElector | undefined;
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      }, (error: unknown) => {
        res.writeHead(500);
        res.end(String(error));
      });
      return;
    }
    if (req.url === '/healthz') {
      res.writeHead(200).end('ok');
      return;
    }
    if (req.url === '/readyz') {
      const { ready, message } = operatorReadiness({
        nowMs: Date.now(),
        controllerStarted,
        informersSynced: controller.informers.every((i) => i.synced),
        election: elector?.status(),
      });
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(message);
      return;
    }
    res.writeHead(404).end();
  });
  server.listen(settings.metricsPort);

  const startController = (): void => {
    controllerStarted = true;
    metrics.isLeader.set(1);
    controller.start().catch((error: unknown) => {
      logger.fatal({ err: error }, 'controller failed to start');
      process.exit(1);
    });
  };

  let shuttingDown = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    logger.info({ signal }, 'shutting down');
    await shutDownInOrder({
      stopController: () => controller.stop(),
      releaseLease: async () => {
        await elector?.stop();
      },
      closeRest: () => {
        etcd.close();
        admins.close();
        placement.close();
        server.close();
      },
      controllerStopTimeoutMs: 20_000,
      onControllerStopTimeout: () => logger.warn('controller did not stop in time: leaving the Lease to expire instead of releasing it'),
    });
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  if (!settings.leaderElection) {
    logger.info('leader election disabled: acting at once');
    startController();
    return;
  }
  elector = new LeaderElector({ api, namespace: settings.namespace, leaseName: settings.leaseName, identity: settings.identity, logger });
  await elector.run({
    onStartedLeading: startController,
    onStoppedLeading: () => {
      metrics.isLeader.set(0);
      // stop() during shutdown ends run() too; shutdown() exits once the Lease is released.
      if (shuttingDown) return;
      logger.warn('lost the leader-election Lease: exiting so that only one operator acts');
      process.exit(1);
    },
  });
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}

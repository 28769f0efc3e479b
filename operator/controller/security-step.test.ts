// The reconciler with spec.tls (generated) and spec.auth, against the in-memory API double (Kubernetes
// objects and the etcd membership double) and an auth stand-in for the Auth API (the real Auth calls
// are tested against a real server in test/operator-admin-tls-auth.test.ts): certificates exist
// before any pod could mount them, a missing root Secret stops everything with a clear status, the
// admin connection gets the generated CA, client certificate and the Secret's password, and auth is
// enabled once, after the cluster converged (and disabled when asked).

import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Condition, SynodClusterStatus } from '../api/types.ts';
import { API_VERSION, KIND, generatedSecretNames } from '../api/types.ts';
import type { ClusterKey, EtcdAdminSource } from '../etcd/admin-pool.ts';
import type { AdminSecurity, AuthChange, EtcdAdmin, EtcdAuthAdmin } from '../etcd/etcd-admin.ts';
import { InMemoryApiDouble } from '../testing/in-memory-api-double.ts';
import { EventRecorder } from './event-recorder.ts';
import { OperatorMetrics } from './operator-metrics.ts';
import { Reconciler } from './reconciler.ts';

const NS = 'apps';
const NAME = 'kv';
const logger = pino({ level: 'silent' });
const SPEC = {
  replicas: 3, version: '0.1.0', storage: { size: '1Gi', retentionPolicyOnScaleIn: 'Delete' },
  tls: { generate: true, client: { clientCertAuth: true } },
  auth: { enabled: true, rootSecret: { name: 'kv-root', passwordKey: 'password' } },
};

/** Stand-in for the Auth API: remembers whether auth is on and who asked for what. */
class AuthStandIn implements EtcdAdminSource {
  enabled = false;
  /** When set, enableAuth fails with it (as the Auth API refusing a stale root password would). */
  failure: Error | null = null;
  readonly calls: string[] = [];
  readonly securities: AdminSecurity[] = [];
  readonly #api: InMemoryApiDouble;

  constructor(api: InMemoryApiDouble) {
    this.#api = api;
  }

  adminFor(cluster: ClusterKey, security: AdminSecurity): EtcdAdmin & EtcdAuthAdmin {
    this.securities.push(security);
    const membership = this.#api.etcdAdmin(cluster.namespace, cluster.name);
    return {
      ...membership,
      authEnabled: async () => this.enabled,
      enableAuth: async (_endpoints, password): Promise<AuthChange> => {
        this.calls.push(`enable:${password}`);
        if (this.failure !== null) throw this.failure;
        if (this.enabled) return 'unchanged';
        this.enabled = true;
        return 'enabled';
      },
      disableAuth: async (): Promise<AuthChange> => {
        this.calls.push('disable');
        if (!this.enabled) return 'unchanged';
        this.enabled = false;
        return 'disabled';
      },
    };
  }

  release(): void {}
  close(): void {}
}

function putCluster(api: InMemoryApiDouble, spec: Record<string, unknown>): void {
  const existing = api.get('SynodCluster', NS, NAME);
  api.put({ apiVersion: API_VERSION, kind: KIND, metadata: { name: NAME, namespace: NS }, spec, status: existing?.status });
}

function condition(api: InMemoryApiDouble, type: string): Condition | undefined {
  return ((api.get('SynodCluster', NS, NAME)?.status ?? {}) as Partial<SynodClusterStatus>).conditions?.find((c) => c.type === type);
}

describe('reconciling a SynodCluster with generated TLS and auth (API double, auth stand-in)', () => {
  it('generates certificates first, waits for the root Secret, then converges and enables auth once', async () => {
    const api = new InMemoryApiDouble();
    const auth = new AuthStandIn(api);
    const reconciler = new Reconciler({
      api, etcd: api.etcdAdmin(NS, NAME), admins: auth, events: new EventRecorder(api, logger, 'test'), metrics: new OperatorMetrics(), logger,
      now: () => new Date('2026-01-01T00:00:00Z'),
    });
    putCluster(api, SPEC);

    // No root Secret yet: the certificates are made, nothing else.
    const waiting = await reconciler.reconcile(NS, NAME);
    expect(waiting.executed).toEqual([]);
    const names = generatedSecretNames(NAME);
    for (const secret of Object.values(names)) expect(api.get('Secret', NS, secret), secret).toBeDefined();
    expect(api.get('StatefulSet', NS, NAME)).toBeUndefined();
    expect(condition(api, 'Progressing')).toMatchObject({ status: 'True', reason: 'WaitingForSecrets', message: 'waiting for Secret apps/kv-root (spec.auth.rootSecret) not found' });
    expect(api.events.filter((e) => e.reason === 'WaitingForSecrets')).toHaveLength(1);
    expect(api.events.filter((e) => e.reason === 'Certificates')).toHaveLength(4);
    await reconciler.reconcile(NS, NAME);
    expect(api.events.filter((e) => e.reason === 'WaitingForSecrets')).toHaveLength(1);
    expect(api.events.filter((e) => e.reason === 'Certificates')).toHaveLength(4);

    api.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'kv-root', namespace: NS }, data: { password: Buffer.from('s3cret').toString('base64') } } as never);
    for (let round = 0; round < 100 && !auth.enabled; round++) {
      await reconciler.reconcile(NS, NAME);
      if (!auth.enabled) {
        // Never before the cluster converged.
        expect(auth.calls).toEqual([]);
        api.tick();
      }
    }
    expect(auth.calls).toEqual(['enable:s3cret']);
    expect(api.events.filter((e) => e.reason === 'AuthEnabled').map((e) => e.message)).toEqual(['enabled authentication (user root with the root role)']);
    expect(condition(api, 'Available')?.status).toBe('True');

    // The admin connection had the generated CA bundle, the operator's certificate and the password.
    const operatorSecret = api.get('Secret', NS, names.operatorClient) as unknown as { data: Record<string, string> };
    const text = (key: string): string => Buffer.from(operatorSecret.data[key] ?? '', 'base64').toString('utf8');
    expect(auth.securities.at(-1)).toEqual({ tls: { caPem: text('ca.crt'), certPem: text('tls.crt'), keyPem: text('tls.key') }, auth: { username: 'root', password: 's3cret' } });

    // The pods mount the generated Secrets; Secrets were written before the StatefulSet.
    const sts = api.get('StatefulSet', NS, NAME) as unknown as { spec: { template: { spec: { volumes: { secret?: { secretName: string } }[] } } } };
    expect(sts.spec.template.spec.volumes.flatMap((v) => (v.secret === undefined ? [] : [v.secret.secretName]))).toEqual([names.server, names.peer]);
    expect(api.calls.indexOf('apply:Secret')).toBeLessThan(api.calls.indexOf('apply:StatefulSet'));

    // Converged and enabled: the next rounds ask, and change nothing.
    await reconciler.reconcile(NS, NAME);
    expect(auth.calls).toEqual(['enable:s3cret', 'enable:s3cret']);
    expect(api.events.filter((e) => e.reason === 'AuthEnabled')).toHaveLength(1);

    // enabled: false turns it off again.
    putCluster(api, { ...SPEC, auth: { ...SPEC.auth, enabled: false } });
    await reconciler.reconcile(NS, NAME);
    expect(auth.enabled).toBe(false);
    expect(api.events.filter((e) => e.reason === 'AuthDisabled')).toHaveLength(1);

    // A refusal from the Auth API fails the round (requeued with backoff) and says why in an Event.
    putCluster(api, SPEC);
    auth.failure = Object.assign(new Error('3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password'), { code: 3 });
    await expect(reconciler.reconcile(NS, NAME)).rejects.toThrow(/authentication failed/);
    expect(api.events.filter((e) => e.reason === 'AuthFailed').map((e) => e.message)).toEqual([
      'enabling authentication failed: 3 INVALID_ARGUMENT: etcdserver: authentication failed, invalid user ID or password',
    ]);
  });

  it('says which key is missing from a Secret the spec names', async () => {
    const api = new InMemoryApiDouble();
    const reconciler = new Reconciler({
      api, etcd: api.etcdAdmin(NS, NAME), admins: new AuthStandIn(api), events: new EventRecorder(api, logger, 'test'), metrics: new OperatorMetrics(), logger,
    });
    putCluster(api, { ...SPEC, tls: { client: { secretName: 'client-tls' } } });
    api.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'client-tls', namespace: NS }, data: { 'tls.crt': 'eA==', 'tls.key': 'eA==' } } as never);
    api.put({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'kv-root', namespace: NS }, data: { pw: 'eA==' } } as never);
    await reconciler.reconcile(NS, NAME);
    expect(condition(api, 'Progressing')?.message).toBe(
      'waiting for Secret apps/client-tls (spec.tls.client.secretName) has no ca.crt; Secret apps/kv-root (spec.auth.rootSecret) has no password',
    );
    expect(api.get('StatefulSet', NS, NAME)).toBeUndefined();
  });
});

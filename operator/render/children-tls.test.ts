// Rendering with spec.tls: the pods mount the client and peer Secrets (whole, read-only, so renewed
// files appear in place) and tell the entrypoint which ports use TLS; the initial cluster and new
// members' peer URLs are https; probes stay HTTP on the metrics port; a cluster without spec.tls
// renders exactly as before (same template hash: no roll when the operator is upgraded). The
// entrypoint, run as a process, turns that environment into the server's TLS flags.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { withDefaults } from '../api/spec-defaults.ts';
import { plan } from '../planner/plan.ts';
import { desiredTemplateHash, renderChildren, renderPodTemplate } from './children.ts';

const REF = { name: 'demo', namespace: 'prod', uid: 'u-1' };
const BASE = { replicas: 3, version: '0.1.0', storage: { size: '1Gi' } };
const ENTRYPOINT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bootstrap', 'server-entrypoint.ts');
const scratch = mkdtempSync(path.join(tmpdir(), 'synod-render-tls-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Container { env: { name: string; value?: string }[]; volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[]; readinessProbe: { httpGet: { port: number } }; livenessProbe: { httpGet: { port: number } } }
interface PodSpec { containers: Container[]; volumes: { name: string; secret?: { secretName: string; defaultMode: number } }[] }

function pod(spec: Record<string, unknown>): PodSpec {
  return renderPodTemplate(REF, withDefaults(spec))['spec'] as PodSpec;
}

function runEntrypoint(env: Record<string, string>): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ENTRYPOINT], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(stdout) as string[]) : reject(new Error(stderr))));
  });
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
}

describe('rendered children with spec.tls', () => {
  it('mounts the generated Secrets read-only and switches TLS on for both ports, with client certificates', () => {
    const spec = pod({ ...BASE, tls: { generate: true, client: { clientCertAuth: true } } });
    expect(spec.volumes.filter((v) => v.secret !== undefined)).toEqual([
      { name: 'tls-client', secret: { secretName: 'demo-tls-server', defaultMode: 0o440 } },
      { name: 'tls-peer', secret: { secretName: 'demo-tls-peer', defaultMode: 0o440 } },
    ]);
    const container = spec.containers[0];
    expect(container.volumeMounts).toContainEqual({ name: 'tls-client', mountPath: '/etc/synod/tls/client', readOnly: true });
    expect(container.volumeMounts).toContainEqual({ name: 'tls-peer', mountPath: '/etc/synod/tls/peer', readOnly: true });
    expect(container.env.filter((e) => e.name.startsWith('SYNOD_'))).toEqual([
      { name: 'SYNOD_CLIENT_TLS', value: 'true' }, { name: 'SYNOD_CLIENT_CERT_AUTH', value: 'true' }, { name: 'SYNOD_PEER_TLS', value: 'true' },
    ]);
    // Probes: plain HTTP on the metrics port, which TLS leaves alone.
    expect(container.readinessProbe.httpGet.port).toBe(2381);
    expect(container.livenessProbe.httpGet.port).toBe(2381);
  });

  it('mounts only the named Secrets: client TLS alone leaves the peer port plain', () => {
    const spec = pod({ ...BASE, tls: { client: { secretName: 'my-client-tls' } } });
    expect(spec.volumes.filter((v) => v.secret !== undefined).map((v) => v.secret?.secretName)).toEqual(['my-client-tls']);
    expect(spec.containers[0].env.filter((e) => e.name.startsWith('SYNOD_'))).toEqual([{ name: 'SYNOD_CLIENT_TLS', value: 'true' }]);
  });

  it('leaves a cluster without spec.tls exactly as before (same pod template, same hash)', () => {
    const plain = withDefaults(BASE);
    expect(JSON.stringify(renderPodTemplate(REF, plain))).not.toMatch(/tls|TLS/);
    expect(desiredTemplateHash(REF, plain)).toBe(desiredTemplateHash(REF, withDefaults({ ...BASE, auth: { rootSecret: { name: 'r' } } })));
    expect(desiredTemplateHash(REF, plain)).not.toBe(desiredTemplateHash(REF, withDefaults({ ...BASE, tls: { generate: true } })));
  });

  it('bootstraps with https peer URLs and adds new members with https peer URLs when the peer port uses TLS', () => {
    const spec = withDefaults({ ...BASE, tls: { generate: true } });
    const configMap = renderChildren(REF, spec, { statefulSetReplicas: 3, clusterState: 'new' }).find((c) => c.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
    expect(configMap.data['SYNOD_INITIAL_CLUSTER']).toBe('demo-0=https://demo-0.demo-peer.prod.svc:2380,demo-1=https://demo-1.demo-peer.prod.svc:2380,demo-2=https://demo-2.demo-peer.prod.svc:2380');
    const hash = desiredTemplateHash(REF, spec);
    const pods = [0, 1, 2].map((ordinal) => ({ ordinal, name: `demo-${ordinal}`, ready: true, terminating: false, templateHash: hash, version: '0.1.0' }));
    const members = [0, 1, 2].map((ordinal) => ({
      id: `${ordinal + 1}`, name: `demo-${ordinal}`, peerUrl: `https://demo-${ordinal}.demo-peer.prod.svc:2380`, ordinal, isLearner: false, healthy: true, isLeader: ordinal === 0, appliedIndex: 10,
    }));
    const decided = plan(
      { name: 'demo', namespace: 'prod', replicas: 5, version: '0.1.0', templateHash: hash, retentionPolicy: 'Delete', peerTls: true },
      { statefulSet: { replicas: 3 }, bootstrapState: 'existing', pods, pvcs: [], members },
    );
    expect(decided.actions.find((a) => a.type === 'AddLearner')).toMatchObject({ peerUrl: 'https://demo-3.demo-peer.prod.svc:2380' });
  });
});

describe('the entrypoint with TLS switched on (as a process, dry run)', () => {
  it('serves https on the client and peer ports with the mounted Secrets, requires certificates, and keeps metrics on http', async () => {
    const argv = await runEntrypoint({
      POD_NAME: 'demo-1', POD_NAMESPACE: 'prod', SYNOD_CLUSTER_NAME: 'demo', SYNOD_DATA_DIR: path.join(scratch, 'boot'), SYNOD_ENTRYPOINT_DRY_RUN: '1',
      SYNOD_INITIAL_CLUSTER_STATE: 'new', SYNOD_INITIAL_CLUSTER: [0, 1, 2].map((i) => `demo-${i}=https://demo-${i}.demo-peer.prod.svc:2380`).join(','),
      SYNOD_CLIENT_TLS: 'true', SYNOD_CLIENT_CERT_AUTH: 'true', SYNOD_PEER_TLS: 'true',
    });
    expect(flag(argv, '--listen-client-urls')).toBe('https://0.0.0.0:2379');
    expect(flag(argv, '--advertise-client-urls')).toBe('https://demo-1.demo-peer.prod.svc:2379');
    expect(flag(argv, '--listen-peer-urls')).toBe('https://0.0.0.0:2380');
    expect(flag(argv, '--initial-advertise-peer-urls')).toBe('https://demo-1.demo-peer.prod.svc:2380');
    expect(flag(argv, '--listen-metrics-urls')).toBe('http://0.0.0.0:2381');
    expect(flag(argv, '--cert-file')).toBe('/etc/synod/tls/client/tls.crt');
    expect(flag(argv, '--key-file')).toBe('/etc/synod/tls/client/tls.key');
    expect(flag(argv, '--trusted-ca-file')).toBe('/etc/synod/tls/client/ca.crt');
    expect(flag(argv, '--peer-cert-file')).toBe('/etc/synod/tls/peer/tls.crt');
    expect(flag(argv, '--peer-key-file')).toBe('/etc/synod/tls/peer/tls.key');
    expect(flag(argv, '--peer-trusted-ca-file')).toBe('/etc/synod/tls/peer/ca.crt');
    expect(argv).toContain('--client-cert-auth');
    expect(argv).toContain('--peer-client-cert-auth');
  });

  it('refuses to bootstrap a TLS pod from an http initial cluster (the operator and the pod must agree on the scheme)', async () => {
    await expect(runEntrypoint({
      POD_NAME: 'demo-1', POD_NAMESPACE: 'prod', SYNOD_CLUSTER_NAME: 'demo', SYNOD_DATA_DIR: path.join(scratch, 'boot2'), SYNOD_ENTRYPOINT_DRY_RUN: '1',
      SYNOD_INITIAL_CLUSTER_STATE: 'new', SYNOD_INITIAL_CLUSTER: 'demo-1=http://demo-1.demo-peer.prod.svc:2380', SYNOD_PEER_TLS: 'true',
    })).rejects.toThrow(/does not list demo-1=https:\/\/demo-1\.demo-peer\.prod\.svc:2380/);
  });
});

// The server image's entrypoint run as a process with a pod's name and the ConfigMap's environment
// (as the operator renders it): a correct bootstrap of an initial member, a correct join of a new
// member (waiting until the operator's MemberAdd, then the initial cluster from a real etcd's
// MemberList), a restart on existing data, and the server's exit code passed through.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcEtcdAdmin } from '../etcd/etcd-admin.ts';
import { renderConfigMap } from '../render/children.ts';
import { eventually, RealEtcdCluster, type ServerKind } from '../testing/real-etcd.ts';
import { MEMBER_NODE_FLAGS } from '../../server/cli/member-node-flags.ts';

const ENTRYPOINT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'server-entrypoint.ts');
const ref = { name: 'demo', namespace: 'prod', uid: 'u-1' };

interface Run { code: number | null; stdout: string; stderr: string }

function runEntrypoint(env: Record<string, string>, onStderr?: (text: string) => void): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ENTRYPOINT], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      onStderr?.(stderr);
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function configMapEnv(clusterState: 'new' | 'existing', replicas = 3): Record<string, string> {
  return (renderConfigMap(ref, { statefulSetReplicas: replicas, clusterState }) as unknown as { data: Record<string, string> }).data;
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i < 0 ? undefined : argv[i + 1];
}

let scratch = '';
beforeAll(() => {
  scratch = mkdtempSync(path.join(tmpdir(), 'synod-entrypoint-'));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('server image entrypoint (as a process)', () => {
  it('bootstraps an initial member from its pod name and the ConfigMap', async () => {
    const env = { ...configMapEnv('new'), POD_NAME: 'demo-1', POD_NAMESPACE: 'prod', SYNOD_DATA_DIR: path.join(scratch, 'boot'), SYNOD_ENTRYPOINT_DRY_RUN: '1' };
    const result = await runEntrypoint(env);
    expect(result.code).toBe(0);
    const argv = JSON.parse(result.stdout) as string[];
    expect(argv.slice(0, 4)).toEqual(['node', ...MEMBER_NODE_FLAGS, '/app/server/cli/synod.ts', 'server']);
    expect(flag(argv, '--name')).toBe('demo-1');
    expect(flag(argv, '--initial-cluster-state')).toBe('new');
    expect(flag(argv, '--initial-cluster')).toBe('demo-0=http://demo-0.demo-peer.prod.svc:2380,demo-1=http://demo-1.demo-peer.prod.svc:2380,demo-2=http://demo-2.demo-peer.prod.svc:2380');
    expect(flag(argv, '--initial-advertise-peer-urls')).toBe('http://demo-1.demo-peer.prod.svc:2380');
    expect(flag(argv, '--advertise-client-urls')).toBe('http://demo-1.demo-peer.prod.svc:2379');
    expect(flag(argv, '--listen-metrics-urls')).toBe('http://0.0.0.0:2381');
    expect(flag(argv, '--initial-cluster-token')).toBe('demo-u-1');
  });

  it('refuses to bootstrap a pod the initial cluster does not list', async () => {
    const env = { ...configMapEnv('new'), POD_NAME: 'demo-3', POD_NAMESPACE: 'prod', SYNOD_DATA_DIR: path.join(scratch, 'boot3'), SYNOD_ENTRYPOINT_DRY_RUN: '1' };
    const result = await runEntrypoint(env);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('SYNOD_INITIAL_CLUSTER does not list demo-3=http://demo-3.demo-peer.prod.svc:2380');
  });

  it('restarts on its own data whatever the ConfigMap says', async () => {
    const dataDir = path.join(scratch, 'restart');
    mkdirSync(path.join(dataDir, 'member'), { recursive: true });
    writeFileSync(path.join(dataDir, 'member', 'LOG'), 'x');
    const result = await runEntrypoint({ ...configMapEnv('new'), POD_NAME: 'demo-0', POD_NAMESPACE: 'prod', SYNOD_DATA_DIR: dataDir, SYNOD_ENTRYPOINT_DRY_RUN: '1' });
    const argv = JSON.parse(result.stdout) as string[];
    expect(flag(argv, '--initial-cluster-state')).toBe('existing');
    expect(flag(argv, '--initial-cluster')).toBe('demo-0=http://demo-0.demo-peer.prod.svc:2380');
  });

  it('runs the server and exits with its exit code', async () => {
    const result = await runEntrypoint({
      ...configMapEnv('new'), POD_NAME: 'demo-2', POD_NAMESPACE: 'prod', SYNOD_DATA_DIR: path.join(scratch, 'run'),
      SYNOD_SERVER_COMMAND: JSON.stringify(['/bin/sh', '-c', 'echo "server $*"; exit 7', 'sh']),
    });
    expect(result.code).toBe(7);
    expect(result.stdout).toContain('server --name demo-2');
  });

  describe.each<ServerKind>(['etcd', 'synod'])('joining a running cluster (real %s)', (kind) => {
    let etcd: RealEtcdCluster;
    const admin = new GrpcEtcdAdmin();
    beforeAll(async () => {
      etcd = await RealEtcdCluster.start(1, kind);
      await eventually(async () => ((await admin.status(etcd.endpoints[0])).leaderId !== '0' ? true : undefined), `${kind} leader`, 30_000);
    });
    afterAll(async () => {
      admin.close();
      await etcd?.stop();
    });

    it('waits until the operator added it as a learner, then joins with the members MemberList reports', async () => {
      const env = {
        ...configMapEnv('existing'), POD_NAME: 'demo-1', POD_NAMESPACE: 'prod', SYNOD_DATA_DIR: path.join(scratch, 'join'),
        SYNOD_ENTRYPOINT_DRY_RUN: '1', SYNOD_JOIN_ENDPOINTS: etcd.endpoints[0], SYNOD_JOIN_RETRY_MS: '100', SYNOD_JOIN_TIMEOUT_MS: '30000',
      };
      let added = false;
      const result = await runEntrypoint(env, (stderr) => {
        if (!added && stderr.includes('not a member yet')) {
          added = true;
          void admin.memberAddLearner(etcd.endpoints, 'http://demo-1.demo-peer.prod.svc:2380');
        }
      });
      expect(added).toBe(true);
      expect(result.code).toBe(0);
      const argv = JSON.parse(result.stdout) as string[];
      expect(flag(argv, '--initial-cluster-state')).toBe('existing');
      expect(flag(argv, '--initial-cluster')?.split(',').sort()).toEqual([`demo-1=http://demo-1.demo-peer.prod.svc:2380`, `etcd0=${etcd.members[0].peerUrl}`]);
      expect(flag(argv, '--name')).toBe('demo-1');
    });

    it('gives up with an error when it is never added', async () => {
      const result = await runEntrypoint({
        ...configMapEnv('existing'), POD_NAME: 'demo-4', POD_NAMESPACE: 'prod', SYNOD_DATA_DIR: path.join(scratch, 'never'),
        SYNOD_ENTRYPOINT_DRY_RUN: '1', SYNOD_JOIN_ENDPOINTS: etcd.endpoints[0], SYNOD_JOIN_RETRY_MS: '100', SYNOD_JOIN_TIMEOUT_MS: '500',
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('demo-4: not added to the cluster within 500 ms');
    });
  });
});

// ---- Sharding (issue 16) ----
describe('server image entrypoint: sharded clusters and zones (as a process)', () => {
  const shardedEnv = (dir: string, extra: Record<string, string> = {}): Record<string, string> => ({
    ...configMapEnv('new'), POD_NAME: 'demo-0', POD_NAMESPACE: 'prod', SYNOD_DATA_DIR: path.join(scratch, dir), SYNOD_ENTRYPOINT_DRY_RUN: '1',
    SYNOD_SHARDS: '16', SYNOD_REPLICATION_FACTOR: '3', ...extra,
  });

  it('passes --shards and --replication-factor, on bootstrap and on restart', async () => {
    const boot = JSON.parse((await runEntrypoint(shardedEnv('sharded-boot'))).stdout) as string[];
    expect(flag(boot, '--shards')).toBe('16');
    expect(flag(boot, '--replication-factor')).toBe('3');
    mkdirSync(path.join(scratch, 'sharded-restart', 'member'), { recursive: true });
    const restart = JSON.parse((await runEntrypoint(shardedEnv('sharded-restart'))).stdout) as string[];
    expect(flag(restart, '--initial-cluster-state')).toBe('existing');
    expect(flag(restart, '--shards')).toBe('16');
  });

  it('waits for the zone the operator writes on the pod, then passes it as --zone', async () => {
    const zoneFile = path.join(scratch, 'zone');
    writeFileSync(zoneFile, '');
    let written = false;
    const result = await runEntrypoint(shardedEnv('zoned', { SYNOD_ZONE_FILE: zoneFile, SYNOD_ZONE_RETRY_MS: '50' }), (stderr) => {
      if (!written && stderr.includes('waiting for the operator to write this pod\'s zone')) {
        written = true;
        writeFileSync(zoneFile, 'eu-west-1b');
      }
    });
    expect(written).toBe(true);
    expect(result.code).toBe(0);
    expect(flag(JSON.parse(result.stdout) as string[], '--zone')).toBe('eu-west-1b');
  });

  it('starts without --zone when the node has no zone label ("-"), and gives up when no zone ever comes', async () => {
    const zoneFile = path.join(scratch, 'no-zone');
    writeFileSync(zoneFile, '-');
    const none = JSON.parse((await runEntrypoint(shardedEnv('unzoned', { SYNOD_ZONE_FILE: zoneFile }))).stdout) as string[];
    expect(none).not.toContain('--zone');
    const never = await runEntrypoint(shardedEnv('zone-never', { SYNOD_ZONE_FILE: path.join(scratch, 'missing'), SYNOD_ZONE_RETRY_MS: '50', SYNOD_ZONE_TIMEOUT_MS: '300' }));
    expect(never.code).toBe(1);
    expect(never.stderr).toMatch(/no zone in .*missing within 300 ms/);
  });

  it('passes no sharding flags for a one-group cluster', async () => {
    const argv = JSON.parse((await runEntrypoint({ ...configMapEnv('new'), POD_NAME: 'demo-0', POD_NAMESPACE: 'prod', SYNOD_DATA_DIR: path.join(scratch, 'single'), SYNOD_ENTRYPOINT_DRY_RUN: '1' })).stdout) as string[];
    expect(argv).not.toContain('--shards');
    expect(argv).not.toContain('--zone');
  });
});

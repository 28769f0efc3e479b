// The operator's reconcile loop on a SHARDED SynodCluster (8 shards, 3 replicas each) against the
// in-memory API double, with every pod a real process: the server image's entrypoint running a real
// `synod server` (test/support/process-kubelet.ts), so MemberList, Status and GetPlacement answers, the
// drains and the moves are the real server's. 3 members bootstrap; scale-out to 5 converges with the
// progress in status (Rebalancing while replicas move, status.shards); scale-in back to 3 drains the
// fifth and fourth members, each before its MemberRemove, loses no key, and leaves every shard on 3 of the remaining members;
// a rolling upgrade then replaces every pod, moving each member's leaderships first, the metadata group's leader last.

import dns from 'node:dns';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Condition, SynodClusterStatus } from '../operator/api/types.ts';
import { API_VERSION, KIND } from '../operator/api/types.ts';
import { EventRecorder } from '../operator/controller/event-recorder.ts';
import { OperatorMetrics } from '../operator/controller/operator-metrics.ts';
import { Reconciler } from '../operator/controller/reconciler.ts';
import { GrpcEtcdAdmin } from '../operator/etcd/etcd-admin.ts';
import { GrpcPlacementAdmin } from '../operator/etcd/placement-admin.ts';
import { InMemoryApiDouble } from '../operator/testing/in-memory-api-double.ts';
import { installPodDns, podIp, type PodDns } from './support/pod-dns.ts';
import { ProcessKubelet } from './support/process-kubelet.ts';

const NS = 'apps';
const NAME = 'kv';
const SHARDS = 8;
// A /24 of loopback addresses of its own (pod i at .10+i), so the standard ports are free.
const POD_DNS: PodDns = { prefix: `127.77.${1 + Math.floor(Math.random() * 250)}`, cluster: NAME, namespace: NS };
const logger = pino({ level: 'silent' });

let dir = '';
let api: InMemoryApiDouble;
let kubelet: ProcessKubelet;
let reconciler: Reconciler;
const etcd = new GrpcEtcdAdmin({ callTimeoutMs: 2_000 });
const placement = new GrpcPlacementAdmin({ callTimeoutMs: 2_000, transferTimeoutMs: 5_000 });

beforeAll(() => {
  installPodDns(dns, POD_DNS);
  dir = mkdtempSync(path.join(tmpdir(), 'synod-op-sharded-'));
  api = new InMemoryApiDouble();
  kubelet = new ProcessKubelet(api, { dns: POD_DNS, dir, serverArgs: ['--heartbeat-interval', '50', '--election-timeout', '500'] });
  reconciler = new Reconciler({ api, etcd, placement, events: new EventRecorder(api, logger, 'test'), metrics: new OperatorMetrics(), logger });
});

afterAll(async () => {
  await kubelet?.stopAll();
  etcd.close();
  placement.close();
  if (dir !== '' && process.env['SYNOD_TEST_KEEP'] !== '1') rmSync(dir, { recursive: true, force: true });
});

function putCluster(replicas: number, version = '0.1.0'): void {
  const existing = api.get('SynodCluster', NS, NAME);
  api.put({
    apiVersion: API_VERSION, kind: KIND, metadata: { name: NAME, namespace: NS },
    spec: { replicas, version, shards: SHARDS, replicationFactor: 3, storage: { size: '1Gi', retentionPolicyOnScaleIn: 'Delete' } },
    status: existing?.status,
  });
}

function status(): Partial<SynodClusterStatus> {
  return (api.get('SynodCluster', NS, NAME)?.status ?? {}) as Partial<SynodClusterStatus>;
}

function condition(type: string): Condition | undefined {
  return status().conditions?.find((c) => c.type === type);
}

interface Sample { members: string; shards: string; rebalancing: string; moves: number; progress: string }

/** Kubelet round + one reconcile until the cluster is converged at `replicas` with every shard settled. */
async function converge(replicas: number, limitMs: number): Promise<Sample[]> {
  const samples: Sample[] = [];
  const deadline = Date.now() + limitMs;
  for (;;) {
    await kubelet.sync();
    await reconciler.reconcile(NS, NAME).catch(() => undefined);
    const s = status();
    samples.push({
      members: s.memberSummary ?? '',
      shards: s.shards?.summary ?? '',
      rebalancing: condition('Rebalancing')?.status ?? '',
      moves: (s.shards?.movesInProgress ?? 0) + (s.shards?.movesPending ?? 0),
      progress: condition('Progressing')?.message ?? '',
    });
    const generation = api.get('SynodCluster', NS, NAME)?.metadata?.generation;
    const done = s.observedGeneration === generation && condition('Progressing')?.status === 'False' && s.memberSummary === `${replicas}/${replicas}` &&
      s.shards?.summary === `${SHARDS}/${SHARDS}` && condition('Rebalancing')?.status === 'False';
    if (done) return samples;
    if (Date.now() > deadline) {
      // What a human would look at: members and their roles, why it is degraded, each shard's view, the pods' logs.
      const view = await placement.getPlacement(`${podIp(POD_DNS, 0)}:2379`).catch((e: unknown) => String(e));
      throw new Error(`not converged at ${replicas} within ${limitMs} ms; last: ${JSON.stringify(samples.slice(-2))}; members ${JSON.stringify(s.members)}; ` +
        `degraded: ${condition('Degraded')?.message}; crashed: ${JSON.stringify(kubelet.crashes)}; placement: ${JSON.stringify(view)}; logs in ${dir} (SYNOD_TEST_KEEP=1 keeps them)`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

function eventReasons(): string[] {
  return api.events.map((e) => `${e.reason ?? ''}: ${e.message ?? ''}`);
}

describe('the reconcile loop on a sharded cluster of real Synod processes (API double, real placement)', () => {
  it('bootstraps 3, scales out to 5 with rebalancing progress in status, scales in to 3 draining first', async () => {
    putCluster(3);
    await converge(3, 25_000);
    expect(status().shards).toEqual({ total: SHARDS, healthy: SHARDS, underReplicated: 0, movesPending: 0, movesInProgress: 0, summary: `${SHARDS}/${SHARDS}` });

    const client = new Etcd3({ hosts: `${podIp(POD_DNS, 0)}:2379` });
    try {
      for (let i = 0; i < 40; i++) await client.put(`/k/${i}`).value(`v${i}`);

      // Scale-out: the learner joins and is promoted as on one group, then the placement moves replicas onto it.
      putCluster(5);
      const out = await converge(5, 40_000);
      expect(out.some((s) => s.rebalancing === 'True' && s.moves > 0), JSON.stringify(out)).toBe(true);
      expect(out.some((s) => s.members === '3/5')).toBe(true);
      const list = await etcd.memberList([`${podIp(POD_DNS, 0)}:2379`]);
      const added = [3, 4].map((i) => list.find((m) => m.name === `${NAME}-${i}`)!.id);
      const afterOut = await placement.getPlacement(`${podIp(POD_DNS, 0)}:2379`);
      for (const id of added) expect(afterOut.shards.filter((s) => s.voters.includes(id)).length).toBeGreaterThan(0);

      // Scale-in: the fourth member is drained until it hosts nothing, and only then removed.
      putCluster(3);
      const inSamples = await converge(3, 40_000);
      expect(inSamples.some((s) => s.rebalancing === 'True')).toBe(true);
      const reasons = eventReasons();
      for (const pod of ['kv-4', 'kv-3']) {
        const drained = reasons.findIndex((r) => r.startsWith(`DrainMember: draining ${pod}`));
        const removed = reasons.findIndex((r) => r.startsWith(`RemoveMember: removed member ${pod}`));
        expect(drained, pod).toBeGreaterThanOrEqual(0);
        expect(removed, pod).toBeGreaterThan(drained);
      }
      // The highest ordinal first.
      expect(reasons.findIndex((r) => r.startsWith('RemoveMember: removed member kv-4'))).toBeLessThan(reasons.findIndex((r) => r.startsWith('DrainMember: draining kv-3')));
      const view = await placement.getPlacement(`${podIp(POD_DNS, 1)}:2379`);
      for (const s of view.shards) {
        expect(s.voters).toHaveLength(3);
        for (const id of added) expect(s.voters).not.toContain(id);
      }
      for (const i of [3, 4]) expect(api.get('PersistentVolumeClaim', NS, `data-${NAME}-${i}`)).toBeUndefined();
      for (let i = 0; i < 40; i++) expect(await client.get(`/k/${i}`).string()).toBe(`v${i}`);

      // Rolling upgrade: every pod replaced one at a time, each member's leaderships moved off before its
      // pod is deleted, the metadata group's leader last.
      const metadataLeader = (await placement.getPlacement(`${podIp(POD_DNS, 0)}:2379`)).metadataLeader;
      const leaderName = (await etcd.memberList([`${podIp(POD_DNS, 0)}:2379`])).find((m) => m.id === metadataLeader)!.name;
      const before = api.events.length;
      putCluster(3, '0.1.1');
      await converge(3, 40_000);
      const upgrade = eventReasons().slice(before);
      const deleted = upgrade.filter((r) => r.startsWith('DeletePod:')).map((r) => /deleted pod (\S+):/.exec(r)![1]);
      expect(new Set(deleted)).toEqual(new Set(['kv-0', 'kv-1', 'kv-2']));
      expect(deleted[deleted.length - 1]).toBe(leaderName);
      expect(upgrade.some((r) => r.startsWith('TransferLeaderships:'))).toBe(true);
      expect(Object.values(api.podVersions(NS, NAME)).every((v) => v.startsWith('0.1.1@'))).toBe(true);
      for (let i = 0; i < 40; i++) expect(await client.get(`/k/${i}`).string()).toBe(`v${i}`);
      // No server process died on its own along the way (the kubelet restarted any): only the removed members
      // stopped themselves, as a removed etcd member does, before their pods were gone.
      expect(kubelet.crashes.filter((c) => c.pod !== 'kv-3' && c.pod !== 'kv-4')).toEqual([]);
      for (const c of kubelet.crashes) expect(c.logTail).toContain('this member has been permanently removed from the cluster');
    } finally {
      client.close();
    }
  }, 90_000);
});

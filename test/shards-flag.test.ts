// --shards as a user meets it (issue 14, bad input): a count that is not a power of two in 1..1024 is
// refused at start with a clear message, before any data is written; --shards 1 starts today's
// one-shard cluster; a member given a count that differs from its cluster's refuses to start; a new sharded
// cluster keeps 3 replicas per shard unless --replication-factor says otherwise.
// (A sharded cluster itself: test/sharded-cluster.test.ts.)
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bootstrapClusterRecord, clusterReplicationFactor, clusterShardCount, type ClusterRecord } from '../server/api/cluster-info.ts';
import { freePorts } from './support/ports.ts';

const SYNOD_CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'server', 'cli', 'synod.ts');

function synod(args: string[], timeoutMs = 20_000): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SYNOD_CLI, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? ((err as NodeJS.ErrnoException & { code?: number }).code as unknown as number) ?? null : 0;
      resolve({ code: typeof code === 'number' ? code : null, output: stdout + stderr });
    });
  });
}

describe('--shards', () => {
  it('refuses counts that are not a power of two in 1..1024 before touching the data dir', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-shards-'));
    try {
      for (const given of ['12', '0', '2048']) {
        const r = await synod(['server', '--name', 'm', '--data-dir', path.join(root, 'bad'), '--shards', given]);
        expect(r.code, given).toBe(2);
        expect(r.output).toContain(`shard count must be a power of two between 1 and 1024 (got ${given})`);
      }
      for (const given of ['abc', '1.5', '']) {
        const r = await synod(['server', '--name', 'm', '--data-dir', path.join(root, 'bad'), '--shards', given]);
        expect(r.code, given).toBe(2);
        expect(r.output).toContain(`--shards must be a power of two (got ${JSON.stringify(given).replaceAll('"', '\\"')})`);
      }
      const local = await synod(['local', '--data-dir', path.join(root, 'local'), '--shards', '6']);
      expect(local.code).toBe(2);
      expect(local.output).toContain('shard count must be a power of two between 1 and 1024 (got 6)');
      for (const dir of ['bad', 'local']) expect(fs.existsSync(path.join(root, dir)), dir).toBe(false);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);

  it('--shards 1 starts today\'s one-shard cluster', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-shards-'));
    const [client, peer, metrics] = await freePorts(3);
    const args = ['server', '--name', 'm1', '--data-dir', path.join(root, 'm1'), '--shards', '1',
      '--listen-client-urls', `http://127.0.0.1:${client}`, '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--initial-cluster', `m1=http://127.0.0.1:${peer}`, '--listen-metrics-urls', `http://127.0.0.1:${metrics}`];
    const child = execFile(process.execPath, [SYNOD_CLI, ...args]);
    try {
      type View = { shards: Array<{ slots: number[] }> };
      const fetchView = (): Promise<View | null> =>
        fetch(`http://127.0.0.1:${metrics}/placement`).then((r) => (r.ok ? (r.json() as Promise<View>) : null), () => null);
      let view = await fetchView();
      for (let i = 0; i < 100 && view === null; i++) {
        await new Promise((r) => setTimeout(r, 100));
        view = await fetchView();
      }
      expect(view?.shards.map((s) => s.slots)).toEqual([[0, 16383]]);
    } finally {
      child.kill('SIGKILL');
      fs.rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);

  it('a member given a count that differs from its cluster\'s refuses; not given, it takes the cluster\'s', () => {
    const record = (shards?: number): ClusterRecord => ({ clusterId: 1, token: 't', members: [], ...(shards === undefined ? {} : { shards }) });
    expect(clusterShardCount(record(), undefined)).toBe(1); // a record from before --shards
    expect(clusterShardCount(record(1), 1)).toBe(1);
    expect(clusterShardCount(record(16), undefined)).toBe(16); // a joiner learns it
    expect(() => clusterShardCount(record(16), 1)).toThrow("--shards 1 differs from this cluster's shard count 16 (fixed when the cluster was created)");
    expect(() => clusterShardCount(record(), 4)).toThrow("--shards 4 differs from this cluster's shard count 1");
  });

  it('a new sharded cluster stores 3 replicas per shard unless told; one group stores none; an old record keeps 0', () => {
    const created = (shards: number, r?: number): ClusterRecord => bootstrapClusterRecord('m1=http://127.0.0.1:1', 't', 'm1', [], shards, r);
    expect(created(16).replicationFactor).toBe(3);
    expect(created(16, 5).replicationFactor).toBe(5);
    expect(created(16, 0).replicationFactor).toBeUndefined(); // every member hosts every shard
    expect(created(1).replicationFactor).toBeUndefined(); // one group: byte for byte the record it always was
    expect(clusterReplicationFactor(created(16), undefined)).toBe(3);
    expect(() => clusterReplicationFactor(created(16), 0)).toThrow("--replication-factor 0 differs from this cluster's 3 (fixed when the cluster was created)");
    const before: ClusterRecord = { clusterId: 1, token: 't', members: [], shards: 16 }; // created while 0 was the default
    expect(clusterReplicationFactor(before, undefined)).toBe(0);
  });
});

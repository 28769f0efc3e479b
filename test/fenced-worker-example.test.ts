// The fencing-token example in docs/locks.md, run for real: a holder stalled past its lease is
// fenced off, and the worker that took the lock over keeps its writes — on one group, and on a 16-shard
// cluster (`make run`'s default), where the lock's key lives on the shards like any client key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { ProcessCluster } from './support/process-cluster.ts';
import { KvClient } from './support/kv-client.ts';

const EXAMPLE = path.resolve(import.meta.dirname, '..', 'examples', 'fenced-worker.ts');
let cluster: ProcessCluster;

function worker(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [EXAMPLE, '--endpoint', cluster.endpointOf(0), ...args], { timeout: 30_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

describe.each([
  { name: 'one group', args: [] as string[] },
  { name: '16 shards', args: ['--shards', '16'] },
])('examples/fenced-worker.ts on $name', ({ args }) => {
  beforeAll(async () => {
    cluster = await ProcessCluster.start({ size: 3, memberArgs: () => [...args] });
  });

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('fences off a holder that stalled past its lease', async () => {
    // a takes the lock first, then stalls past its 2 s lease.
    const a = spawn(process.execPath, [EXAMPLE, '--endpoint', cluster.endpointOf(0), '--name', 'a', '--ttl', '2', '--pause-ms', '4500', '--writes', '2']);
    let old = '';
    const aDone = new Promise<void>((resolve) => a.on('exit', () => resolve()));
    await new Promise<void>((resolve) =>
      a.stdout.on('data', (d: Buffer) => {
        old += d.toString();
        if (old.includes('acquired')) resolve();
      }),
    );
    const fresh = await worker(['--name', 'b', '--ttl', '2', '--writes', '2']);
    await aDone;
    expect(old).toMatch(/^a: acquired jobs\/[0-9a-f]+ with fencing token (\d+)\n/);
    expect(old).toContain('a: fenced off');
    expect(old).not.toContain('a: wrote');
    expect(fresh).toContain('b: wrote jobs/state');
    const tokenA = Number(/token (\d+)/.exec(old)![1]);
    const tokenB = Number(/token (\d+)/.exec(fresh)![1]);
    expect(tokenB).toBeGreaterThan(tokenA);
    const client = new KvClient(cluster.endpointOf(1));
    const state = (await client.range('jobs/state')).kvs[0].value.toString();
    client.close();
    expect(state).toBe(`b@${tokenB}#1`);
  });
});

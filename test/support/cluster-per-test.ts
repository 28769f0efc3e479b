// One process cluster per test, and what the test opens against it (clients, streams, child processes):
// closed, and the cluster destroyed by PID, after each test whatever its outcome (vitest afterEach).
import { afterEach } from 'vitest';
import { ProcessCluster, type ClusterOptions } from './process-cluster.ts';
import { LeaseLockClient } from './lease-lock-client.ts';

export interface ClusterPerTest {
  /** Starts this test's cluster (destroyed after the test). */
  start(options: ClusterOptions): Promise<ProcessCluster>;
  /** Runs `close` after the test, before the cluster goes. */
  closeAfter(close: () => void): void;
  /** A lease and lock client on member `i`, closed after the test. */
  leaseClient(cluster: ProcessCluster, i: number): LeaseLockClient;
}

/** Registers the after-each cleanup in the calling test file; call it once, at its top level. */
export function clusterPerTest(): ClusterPerTest {
  let cluster: ProcessCluster | null = null;
  const closers: Array<() => void> = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) close();
    await cluster?.destroy();
    cluster = null;
  });
  return {
    async start(options) {
      cluster = await ProcessCluster.start(options);
      return cluster;
    },
    closeAfter(close) {
      closers.push(close);
    },
    leaseClient(c, i) {
      const client = new LeaseLockClient(c.endpointOf(i));
      closers.push(() => client.close());
      return client;
    },
  };
}

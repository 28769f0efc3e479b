import { defineConfig } from 'vitest/config';
import { COMPILE_CACHE_DIR } from './test/support/compile-cache.ts';

// `make test` in lanes (one project each; `--project <name>` runs one alone). On the 2-core machine:
//  - serial (forks, one worker: vitest's default of cores − 1): every file under test/ (they start real
//    server processes, or, in test/checker, time themselves), the in-process files that start real
//    clusters, and those whose assertions or real 20 ms Raft ticks need the CPU on time. One file at a
//    time, as `make test` always ran: no two clusters ever compete.
//  - light (threads, up to two at a time), beside it: the other in-process tests, small, or mostly
//    waiting (DNS and reconnect backoff, a bundled operator idling), on the CPU the serial lane's
//    clusters mostly leave idle.
//  - sims (threads), after both (sequence.groupOrder 1): the CPU-bound simulations and property tests,
//    two at a time on a machine with nothing else left to run. They run on simulated time, so sharing
//    the cores changes how long they take, not what they check.
const SIMS = [
  'server/**/sim/**/*.test.ts',
  '**/*.property.test.ts',
  'server/api/watch-encoder.test.ts',
  'server/api/kv-response-encoder.test.ts',
  'server/mvcc/store.model.test.ts',
];
const SERIAL_IN_PROCESS = [
  'server/member/slow-write-heartbeat.test.ts',
  'server/member/active-members.test.ts',
  'server/member/runtime-groups.test.ts',
  'server/shard/peer-shard-rpc.test.ts',
  'server/shard/shard-kv-forwarding.test.ts',
  'server/shard/remote-watch-source.test.ts',
  'server/shard/replica-watch-source.test.ts',
  'operator/etcd/etcd-admin.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Node's compile cache for the workers and every process they start (test/support/compile-cache.ts).
    env: { NODE_COMPILE_CACHE: COMPILE_CACHE_DIR },
    // The threads pool serves both light (beside serial) and sims (alone, after).
    poolOptions: { threads: { maxThreads: 2 } },
    projects: [
      {
        extends: true,
        test: { name: 'serial', include: ['test/**/*.test.ts', ...SERIAL_IN_PROCESS], pool: 'forks', globalSetup: ['test/support/compile-cache.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'light',
          include: ['server/**/*.test.ts', 'operator/**/*.test.ts', 'e2e/**/*.test.ts'],
          exclude: [...SIMS, ...SERIAL_IN_PROCESS],
          pool: 'threads',
        },
      },
      {
        extends: true,
        test: { name: 'sims', include: SIMS, exclude: ['test/**'], pool: 'threads', sequence: { groupOrder: 1 } },
      },
    ],
  },
});

import { defineConfig } from 'vitest/config';

// Two lanes that run side by side, one worker each (each pool gets its own workers, and on a 2-core
// machine a pool's default is one). The `serial` lane (forks) runs one file at a time, as `make test`
// always did: every file under test/ (they start real server processes, or, in test/checker, time
// themselves), the in-process files that start real clusters, the CPU-bound simulations and property
// tests, and the files whose assertions or real 20 ms Raft ticks depend on getting the CPU on time.
// The `light` lane (threads) runs everything else meanwhile: small in-process unit tests, and tests
// that mostly wait (DNS and reconnect backoff, a bundled operator idling), on the core the serial
// lane's clusters mostly leave idle. Run one lane alone with `--project serial` or `--project light`.
const SERIAL_IN_PROCESS = [
  'server/**/sim/**/*.test.ts',
  '**/*.property.test.ts',
  'server/api/watch-encoder.test.ts',
  'server/api/kv-response-encoder.test.ts',
  'server/mvcc/store.model.test.ts',
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
    projects: [
      {
        extends: true,
        test: { name: 'serial', include: ['test/**/*.test.ts', ...SERIAL_IN_PROCESS], pool: 'forks' },
      },
      {
        extends: true,
        test: { name: 'light', include: ['server/**/*.test.ts', 'operator/**/*.test.ts', 'e2e/**/*.test.ts'], exclude: SERIAL_IN_PROCESS, pool: 'threads' },
      },
    ],
  },
});

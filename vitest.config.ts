import { defineConfig } from 'vitest/config';
import { COMPILE_CACHE_DIR } from './test/support/compile-cache.ts';
import { LongestFirstSequencer } from './test/support/longest-first.ts';

// `make test` in lanes (one project each; `--project <name>` runs one alone). On the 2-core machine,
// `make test` runs them as four vitest runs: process alone at normal priority, then exclusive alone with
// --maxWorkers 1; beside them under SCHED_IDLE (`chrt --idle 0`: CPU only when nothing else wants it),
// sims from the start and light beside exclusive. One run sizes one fork pool for all its projects, so
// only a run of its own keeps the exclusive files alone. A plain `vitest run` (one run of every project)
// runs process and light first, then exclusive alone, then sims (groupOrder).
//  - process (forks, two at a time, first): every file under test/ that starts real server processes or,
//    in test/checker, checks histories, except the exclusive ones below, and the in-process files of
//    ON_TIME. The clusters mostly wait (elections, leases, the scenario's pauses, etcdctl), so two at a
//    time take about half the time of one after another (8 of the longest files: 374 s one by one, 164 s
//    in pairs, all passing). What they assert is correctness, with deadlines far above a busy turn. Both
//    cores stay ~92% busy.
//  - exclusive (forks, one at a time, alone at normal priority): the files whose assertions measure time
//    or resources — heartbeat gaps, restart to ready, RSS, put latency during moves, a lock handed over
//    within a lease's TTL, a new leader within seconds, the checker's speed — and the in-process files
//    whose real 20 ms Raft ticks need the CPU on time. Restart to ready (limit 5 s) took 1.9–2.1 s with
//    the light lane beside under SCHED_IDLE, 2.5 s beside it at nice 19, 9.6 s beside it at normal priority.
//  - light (threads, two at a time, modules kept between files): the other in-process tests, small, or
//    mostly waiting (a bundled operator idling, a controller against the API double): ~85 CPU-seconds
//    (198 with a fresh module registry per file), which the exclusive files, mostly waiting, leave idle.
//    Beside process at normal priority they lengthened it by ~165 s.
//  - sims (threads, two at a time): the CPU-bound simulations and property tests. They run on simulated
//    time, so sharing the cores changes how long they take, not what they check; hence their generous
//    timeout. Beside process they cost it 66 s at nice 19 (658 s against 592 alone: a niced task still
//    holds a core for its slice when a test process wakes) and 5 s under SCHED_IDLE.
// `make test` on 2026-12-07 (main checkout, no npm install): 17m50s with light beside process and the sims
// at nice 19; 16m29s with light beside exclusive at nice 19; 15m18s with both under SCHED_IDLE (a fresh
// clone right after, on a slower hour: 17m39s). A fresh clone with the threads reused: 16m28s (lanes of
// 671 s and 286 s; light 160 s beside exclusive, no longer the last to end). With the members started from
// a bundle (test/support/member-bundle.ts), the process lane's workers reused and longest files first:
// 15m04s and 15m29s (lanes of 609 s and 272 s, then 629 s and 277 s).
const SIMS = [
  'server/**/sim/**/*.test.ts',
  '**/*.property.test.ts',
  'server/api/watch-encoder.test.ts',
  'server/api/kv-response-encoder.test.ts',
  'server/mvcc/store.model.test.ts',
];
// In-process files whose assertions bound wall time (a reconnect within 2 s, a wait under 1.5 s, a
// backoff that still fails after 4 s): they run in the process lane, at normal priority, since the light
// lane's CPU at nice 19 or SCHED_IDLE can be withheld for seconds while an exclusive file keeps both cores
// busy (beside it, etcd-admin-recovery's grpc-js backoff saw fewer failed lookups, recovered in 2.6 s and
// failed). They take a few CPU-seconds.
const ON_TIME = [
  'server/api/leader-wait.test.ts',
  'server/shard/oracle-host-client.test.ts',
  'server/shard/peer-shard-stream.test.ts',
  'server/transport/peer-channel-recovery.test.ts',
  'server/transport/peer-transport.test.ts',
  'server/transport/peer-frames.test.ts',
  'operator/etcd/etcd-admin-recovery.test.ts',
];
const EXCLUSIVE = [
  'test/no-stall.test.ts',
  'test/restart-time.test.ts',
  // Not timed, but its follower's 80 MiB snapshot catch-up ran past the server's request timeout beside
  // the process lane (a fresh clone's make test, 2026-12-07).
  'test/restart-compacted-log.test.ts',
  'test/slow-watchers.test.ts',
  'test/faults.test.ts',
  'test/move-leader.test.ts',
  'test/lease-lock-faults.test.ts',
  'test/sharded-writes-during-moves.test.ts',
  'test/cross-shard-txn.test.ts',
  'test/checker/performance.test.ts',
  'server/member/slow-write-heartbeat.test.ts',
  'server/member/active-members.test.ts',
  'server/member/leadership-decline.test.ts',
  'server/member/lost-proposal.test.ts',
  'server/member/runtime-groups.test.ts',
  'server/shard/peer-shard-rpc.test.ts',
  'server/shard/shard-kv-forwarding.test.ts',
  'server/shard/remote-watch-source.test.ts',
  'server/shard/replica-watch-source.test.ts',
  'operator/etcd/etcd-admin.test.ts',
];

export default defineConfig({
  test: {
    // Files at once per pool (vitest's default is cores − 1: one, here); `make test` runs exclusive with 1.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Node's compile cache for the workers and every process they start (test/support/compile-cache.ts).
    env: { NODE_COMPILE_CACHE: COMPILE_CACHE_DIR },
    // The threads pool serves light and sims (each a run of its own under SCHED_IDLE, beside the others).
    // Its threads are reused from file to file (vitest sets this for the pool, not per project); the sims
    // ask for a fresh module registry per file (their poolOptions), light keeps its modules.
    poolOptions: { threads: { maxThreads: 2, isolate: false } },
    // Longest files first, from a fresh clone on (test/support/longest-first.ts).
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      {
        extends: true,
        test: {
          name: 'process',
          include: ['test/**/*.test.ts', ...ON_TIME],
          exclude: EXCLUSIVE,
          pool: 'forks',
          // A worker process runs file after file, keeping the modules it loaded: each file starts and
          // stops its own clusters, and a fresh Node and vitest per file cost ~10% of the lane's CPU
          // (12 of its files: 294 CPU-seconds and 168 s isolated, 265 and 155 not).
          poolOptions: { forks: { isolate: false } },
          globalSetup: ['test/support/member-bundle.ts', 'test/support/compile-cache.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'exclusive',
          include: EXCLUSIVE,
          pool: 'forks',
          poolOptions: { forks: { isolate: true } },
          globalSetup: ['test/support/member-bundle.ts', 'test/support/compile-cache.ts'],
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'light',
          include: ['server/**/*.test.ts', 'operator/**/*.test.ts', 'e2e/**/*.test.ts'],
          exclude: [...SIMS, ...EXCLUSIVE, ...ON_TIME],
          pool: 'threads',
          // The pool's threads are not isolated (poolOptions above) and this lane keeps the modules a file
          // loaded for the next: most of its files are small and import much of the server, and loading it
          // again for each was over half the lane's CPU (alone: 111 s and 198 CPU-seconds isolated, 49 s and 83
          // not). They share no state through modules: fake timers and stubs are undone in afterEach, and
          // the lane passes with its files shuffled (--sequence.shuffle.files).
        },
      },
      {
        extends: true,
        // A sim's timeout is a hang guard in wall time, and under SCHED_IDLE beside busy lanes a sim gets
        // what they leave: on a slow host (2026-12-07, `make test` 20m27s) the ring property test, 12 s
        // alone, ran past 300 s and failed. Twenty minutes still ends a hung sim long before CI's 90.
        test: { name: 'sims', include: SIMS, exclude: ['test/**'], pool: 'threads', poolOptions: { threads: { isolate: true } }, sequence: { groupOrder: 2 }, testTimeout: 1_200_000 },
      },
    ],
  },
});

// One run of the fault suite: start a cluster, start watchers and concurrent clients, let the
// nemesis work through its seeded schedule, heal everything, read every key from every member, then
// check the history: reconciled with the store's own history (no lost or phantom write), checked for
// linearizability, and every watcher's delivery checked against that history.
import { checkLinearizability, type LinearizabilityResult } from '../checker/linearizability.ts';
import { reconcileWithReference } from '../checker/reference-history.ts';
import { checkWatchDelivery } from '../checker/watch-checker.ts';
import { KvClient } from '../support/kv-client.ts';
import { FaultCluster } from './fault-cluster.ts';
import { planSchedule, runNemesis, type InjectedFault } from './nemesis.ts';
import { ResilientWatcher, readFullHistory } from './watchers.ts';
import { Bank, type BankReport } from './bank.ts';
import { SlotMap } from '../../server/routing/slots.ts';
import type { WatchEvent } from '../checker/watch-checker.ts';
import { HistoryRecorder, execute, monotonicClock, startWorkload } from './workload.ts';

export interface FaultRunOptions {
  seed: number;
  members: number;
  durationMs: number;
  clients?: number;
  keys?: number;
  watchers?: number;
  /** A sharded cluster (`--shards`): keys hash-tagged one per tag, a watcher per key, and the bank. */
  shards?: number;
  /** Arguments for one member only (e.g. the TEST-ONLY --test-forward-shards). */
  memberArgs?: (index: number) => string[];
  /** Environment for one member only (e.g. a skewed wall clock through libfaketime). */
  memberEnv?: (index: number) => Record<string, string>;
}

export interface FaultRunReport {
  seed: number;
  /** Every problem found: lost/phantom writes, linearizability and watch violations. */
  violations: string[];
  linearizability: LinearizabilityResult;
  operations: number;
  unknownOutcomes: number;
  faults: InjectedFault[];
  watchEvents: number;
  bank: BankReport | null;
  summary: string;
}

const PREFIX = 'fault/';
const REQUEST_TIMEOUT_MS = 1_500;

export async function runFaultTest(o: FaultRunOptions): Promise<FaultRunReport> {
  const sharded = (o.shards ?? 1) > 1;
  // On a sharded cluster each key carries its own hash tag: the keys spread over the shards, and a
  // watch on one key's prefix is a single-shard watch.
  const keys = [...Array(o.keys ?? 4).keys()].map((k) => (sharded ? `${PREFIX}{k${k}}` : `${PREFIX}k${k}`));
  const shardArgs = sharded ? ['--shards', String(o.shards)] : [];
  const cluster = await FaultCluster.start({ size: o.members, extraArgs: ['--request-timeout', '1000', ...shardArgs], shards: o.shards, memberArgs: o.memberArgs, memberEnv: o.memberEnv });
  const clock = monotonicClock();
  const recorder = new HistoryRecorder(clock);
  const endpoints = cluster.cluster.members.map((_, i) => cluster.endpointOf(i));
  const watchers: ResilientWatcher[] = [];
  // Each watcher sees the whole prefix: on a sharded cluster a watch merged over every shard the keys
  // are on, and one more watcher per key (a single-shard watch) beside them.
  const watchedPrefixes = sharded ? [PREFIX, ...keys] : [PREFIX];
  const bank = sharded
    ? new Bank({ seed: o.seed, endpoints, tags: 4, accountsPerTag: 4, initialBalance: 100, transferClients: 3, readers: 2, requestTimeoutMs: REQUEST_TIMEOUT_MS, crossShardShare: 0.5 })
    : null;
  try {
    const watcherCount = sharded ? watchedPrefixes.length + 1 : (o.watchers ?? 2);
    for (let w = 0; w < watcherCount; w++) {
      const prefix = watchedPrefixes[w % watchedPrefixes.length];
      const watcher = new ResilientWatcher({ name: `watcher-${w}`, endpoints, member: (w + 1) % o.members, prefix, startRevision: 1 });
      watcher.start();
      watchers.push(watcher);
    }
    await bank?.open();
    bank?.start();
    const workload = startWorkload({ seed: o.seed, clients: o.clients ?? 5, keys, endpoints, requestTimeoutMs: REQUEST_TIMEOUT_MS, recorder });
    const schedule = planSchedule(o.seed, o.durationMs, o.members);
    const faults = await runNemesis(cluster, schedule, clock, o.durationMs);
    await cluster.healAll();
    await workload.stop();
    await cluster.cluster.waitReady(30_000);
    const bankReport = bank ? await bank.stop() : null;

    // Every member must now serve every key linearizably, consistent with the whole history.
    for (let m = 0; m < o.members; m++) {
      const kv = new KvClient(cluster.endpointOf(m));
      for (const key of keys) {
        const out = await recorder.record(1_000 + m, { kind: 'get', key }, () => execute(kv, { kind: 'get', key }, 10_000));
        if (out === null) throw new Error(`final read of ${key} from ${cluster.name(m)} failed after healing`);
      }
      kv.close();
    }

    const snapshots = await cluster.snapshotCounts();
    const clocksBehind = sharded ? await cluster.clocksBehindLearnt() : [];
    // The store's history per watched prefix, and all of it in revision order (revisions are unique
    // across shards: one oracle hands them out).
    const references = new Map<string, WatchEvent[]>();
    for (const prefix of watchedPrefixes) references.set(prefix, await readFullHistory(cluster.endpointOf(0), prefix));
    const reference = references.get(PREFIX)!;
    const historyViolations: string[] = [];
    if (sharded) {
      // The merged watch over every shard must be exactly the single-shard watches' histories, interleaved.
      const perKey = keys.flatMap((k) => references.get(k)!).sort((a, b) => a.revision - b.revision);
      const text = (es: WatchEvent[]): string => es.map((e) => `${e.revision}:${e.type}:${e.key}=${e.value ?? ''}`).join(',');
      if (text(perKey) !== text(reference)) historyViolations.push(`the merged history of ${PREFIX} (${reference.length} events) differs from its keys' single-shard histories merged (${perKey.length} events)`);
    }
    const finalRevision = reference.at(-1)?.revision ?? 0;
    const caughtUp = await Promise.all(
      watchers.map((w) => w.catchUp(references.get(w.prefix)!.at(-1)?.revision ?? 0, 15_000)),
    );
    const reconciled = reconcileWithReference(recorder.ops, reference);
    const slots = sharded ? SlotMap.create(o.shards!) : null;
    const revisionDomain = slots ? (key: string): string => String(slots.shardOfKey(Buffer.from(key))) : undefined;
    const linearizability = checkLinearizability(reconciled.history, { timeoutMs: 60_000, revisionDomain });
    // A member that crashed is a failure even when the others carried the run.
    const crashes = cluster.cluster.crashes.map((c) => `member crashed: ${c}`);
    // Faults end requests with etcd's statuses (no leader, timed out, leader changed...), never with an
    // internal error a client cannot act on.
    const internal = cluster.cluster.unexpectedRequestFailures().map((f) => `a request failed unexpectedly (an internal error to its client): ${f}`);
    const violations = [...crashes, ...internal, ...historyViolations, ...reconciled.violations, ...linearizability.violations, ...(bankReport?.violations ?? [])];
    watchers.forEach((w, i) => {
      const own = references.get(w.prefix)!;
      const until = own.at(-1)?.revision ?? 0;
      if (!caughtUp[i]) violations.push(`${w.name}: stuck at revision ${w.lastRevision}, the history of ${w.prefix} ends at ${until}`);
      violations.push(...checkWatchDelivery(w.name, w.events, own, { startRevision: w.startRevision, untilRevision: until }));
    });

    const unknownOutcomes = recorder.ops.filter((op) => op.output === null).length;
    const unknownReads = recorder.ops.filter((op) => op.output === null && op.input.kind === 'get').length;
    const count = (kind: string): number => recorder.ops.filter((op) => op.input.kind === kind).length;
    const casOk = recorder.ops.filter((op) => op.output?.kind === 'cas' && op.output.succeeded).length;
    const mix = `get ${count('get')}, put ${count('put')}, delete ${count('delete')}, cas ${count('cas')} (${casOk} succeeded)`;
    const watchEvents = watchers.reduce((n, w) => n + w.events.length, 0);
    const summary =
      `[fault] seed=${o.seed} members=${o.members} ${(o.durationMs / 1000).toFixed(0)}s: ${recorder.ops.length} ops [${mix}] ` +
      `(${unknownOutcomes} unknown outcomes: ${unknownReads} reads dropped, writes ${reconciled.resolvedUnknown} applied / ${reconciled.droppedUnknown} not per the store history), ` +
      `${linearizability.operations} checked over ${linearizability.partitions} keys, ${reference.length} committed changes, ` +
      `${watchEvents} watch events (${watchers.reduce((n, w) => n + w.reconnects, 0)} reconnects); ` +
      `${faults.length} faults: ${faults.map((f) => `@${(f.atMs / 1000).toFixed(1)}s ${f.text}`).join('; ')}; ` +
      `snapshots sent ${snapshots.sent}, installed ${snapshots.installed} (counted by the processes still running); ` +
      (clocksBehind.length > 0 ? `clocks found behind by fence horizons: ${clocksBehind.join(', ')}; ` : '') +
      (bankReport
        ? `bank over ${o.shards} shards: ${bankReport.transfersCommitted} transfers committed (${bankReport.crossShardCommitted} across shards), ${bankReport.transfersRejected} rejected by their compare, ` +
          `${bankReport.transfersUnknown} unknown; ${bankReport.snapshotReads} multi-shard snapshots summed (${bankReport.snapshotReadsFailed} failed), ${bankReport.snapshotsReread} re-read at their revision; `
        : '') +
      (violations.length === 0 ? 'linearizable, watches exact' : `${violations.length} VIOLATIONS (replay: SYNOD_FAULT_SEED=${o.seed})`);
    return { seed: o.seed, violations, linearizability, operations: recorder.ops.length, unknownOutcomes, faults, watchEvents, bank: bankReport, summary };
  } catch (err) {
    // SYNOD_FAULT_STACK=1: the failure with its stack (which client call, from where).
    if (process.env.SYNOD_FAULT_STACK) console.error(err);
    const crashed = cluster.cluster.crashes.length > 0 ? ` (after a member crashed: ${cluster.cluster.crashes.join('; ')})` : '';
    throw new Error(`fault run seed=${o.seed} failed (replay: SYNOD_FAULT_SEED=${o.seed}); logs in ${cluster.cluster.rootDir}: ${String(err)}${crashed}\n${cluster.cluster.tailLogs()}`);
  } finally {
    for (const w of watchers) w.stop();
    if (bank) await bank.stop().catch(() => undefined);
    await cluster.destroy();
  }
}

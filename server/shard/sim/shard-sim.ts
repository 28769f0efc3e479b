// The sharded write and read path on real Members, simulated: 3 members each host the metadata group
// (MetadataStateMachine + OracleHost, as in oracle-sim.ts) and a replica of each of 4 shard groups
// (KvStateMachine in sharded mode + ShardWritePath with its own OracleClient), over the member
// simulation's doubles (a store that loses unsynced writes at a crash, a network that delays, drops,
// duplicates and reorders, simulated time). Writers put random keys (some hash-tagged), routed to shards
// by the slot map, through the shard leaders; readers take multi-shard snapshots: a revision R from the
// oracle, readAt(R) on every shard's leader, merged with range-merge, and re-read the same R later; a
// closer runs merged watches' closes: closeAt(R) on a shard's leader, which answers the revision C ≤ R it
// closed and its applied index I. Txn writers put a key on one shard and, in the same txn, count every
// key of every shard (the txn's write shard leader reads the others at R − 1, txn-reads.ts), as etcd's
// lock does. Cross-shard txn writers run the two-phase commit (server/txn/coordinator.ts) on a random
// member — put one value to two keys on two shards, or, when a compare fails, to two others; some nested in
// an outer txn — so crashes
// hit coordinators at every step of the protocol; the shard leaders' recoverers finish what they leave.
// Members crash (biased to the member leading most groups) and restart, partitions come and go, and a
// shard leader holding resolutions back (to ride with its next entry) may have its leadership handed over,
// or lose it to a follower that a late timeoutNow makes campaign at the moment of the hold.
//
// Checked:
//   - replicas apply identical entries (same data at every index of every group) and end identical;
//   - every revision is used by at most one entry across all shards, and per shard revisions strictly
//     increase in log order (KvStateMachine also throws on the latter);
//   - no acknowledged write is lost: its entry is in its shard's log at its revision, and the final
//     store holds it at that revision;
//   - every snapshot shows every write acknowledged before its R was requested (at that write's
//     revision or a later one);
//   - every acknowledged txn counted exactly the keys that exist at its revision in the final logs
//     (its own put included): it read every shard at one point, serializably;
//   - history is immutable: a snapshot re-read later at the same R is identical, and every snapshot
//     equals the state at R rebuilt from the shards' final logs;
//   - a close is true: in the shard's final log every entry at a revision ≤ C is at an index ≤ I (so a
//     replica that applied through I has every event ≤ C, and none can follow);
//   - cross-shard transactions are atomic: in the final logs each one is committed on every participant
//     or on none, its writes are at its one revision C on each (so every snapshot, checked against the
//     final logs, shows all of them or none), an acknowledged one is committed, and after healing no
//     shard holds a prepared transaction (every one was resolved), and every committed transaction's
//     record is gone once the shard leaders finish what crashed coordinators left (finishCommitted).
// Everything is drawn from one seed; `SHARD_SIM_SEED=S` replays a failing one.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Member, NoLeaderError } from '../../member/member.ts';
import { newMessage } from '../../raft/raft.ts';
import { Rng } from '../../raft/rng.ts';
import type { Entry, NodeId } from '../../raft/types.ts';
import { SimClock, SIM_OWNER } from '../../member/sim/sim-clock.ts';
import { SimDisk, SimStore, type StoreLatency } from '../../member/sim/sim-store.ts';
import { SimNetwork, NO_FAULTS, randomNetworkFaults, type NetworkFaults } from '../../member/sim/sim-network.ts';
import { rangeOf, type RangeResult } from '../../mvcc/types.ts';
import { mergeShardRanges } from '../../routing/range-merge.ts';
import { SlotMap, slotOf } from '../../routing/slots.ts';
import { MetadataStateMachine } from '../metadata-state-machine.ts';
import { OracleHost } from '../oracle-host.ts';
import { OracleClient } from '../oracle-client.ts';
import { KvStateMachine, writeKeysOf } from '../kv-state-machine.ts';
import { shareKeysMeet, shareKeysOf, type ShareKeys } from '../../txn/share-keys.ts';
import { decodeInternalRequest, revisionOf, type InternalRequestBody } from '../request-codec.ts';
import { ShardNotReadyError, ShardWritePath, type ReadsElsewhere } from '../shard-write-path.ts';
import { isProposalLost } from '../proposal-fence.ts';
import { planTxnReads } from '../txn-reads.ts';
import { txnOpFromWire } from '../../etcd/convert.ts';
import type { TxnResult } from '../../mvcc/types.ts';
import type { ShardRevisionsMutation } from '../shard-revisions.ts';
import { InProcessOracleTransport } from './in-process-oracle-transport.ts';
import { TxnCoordinator, type TxnWriteOutcome } from '../../txn/coordinator.ts';
import { encodeInternalRequest } from '../request-codec.ts';
import type { TxnRequest } from '../../etcd/wire-types.ts';

const METADATA_GROUP = 0;
const START_MS = 1_700_000_000_000;
export const SHARD_REPLAY_HINT = 'SHARD_SIM_SEED=S node_modules/.bin/node node_modules/vitest/vitest.mjs run server/shard/sim/shard-sim.test.ts';

export interface ShardSimOptions {
  members?: number;
  shards?: number;
  writers?: number;
  /** Writers of txns that put one key and count every shard's keys in the same txn. */
  txnWriters?: number;
  /** Writers of cross-shard txns (two-phase commit), each coordinated by a random member. */
  crossTxnWriters?: number;
  readers?: number;
  /** Loops closing random shards at fresh revisions (a merged watch's closing rounds). */
  closers?: number;
  /** Simulated ms of the fault phase. */
  faultMs: number;
  healMs?: number;
  faultEveryMs?: number;
  /** The highest message drop rate a seed's network may draw (randomNetworkFaults). */
  maxDropRate?: number;
  /** The share of plain writes that go to the cross-shard txns' keys (default 0). */
  writesOnTxnKeys?: number;
  /** A cross-shard txn's deadline (simulated ms; its client gives up 100 ms later). */
  crossTxnDeadlineMs?: number;
  /** Per simulated ms, per shard whose leader holds resolutions back: the chance a leadership transfer starts. */
  handoverChancePerMs?: number;
  /** Chance that a resolution held back sends one of the other replicas a late timeoutNow (default 0.25). */
  lateTimeoutChancePerHold?: number;
  /** A deliberately broken rule in every shard leader (the checks must catch it). */
  mutation?: ShardRevisionsMutation;
  /**
   * A deliberately broken rule in every shard replica: 'decide-ignoring-compares', a prepare that decides
   * its transaction's branch says its compares held whatever they evaluate to.
   */
  replicaMutation?: 'decide-ignoring-compares';
  /**
   * A deliberately broken rule of several transactions prepared on a shard at once: 'prepare-overlapping',
   * leaders propose and replicas lay prepares whose keys meet a prepared transaction's; 'materialize-at-once',
   * replicas make a committed share at once, though a transaction prepared below its C is undecided;
   * 'prepare-over-deferred', leaders propose and replicas lay prepares whose keys meet a write deferred
   * behind another transaction (not in the store yet).
   */
  txnMutation?: 'prepare-overlapping' | 'materialize-at-once' | 'prepare-over-deferred';
  /**
   * The apply rules every member says its peers implement (member.ts APPLY_RULES; absent: this build's).
   * Below CONCURRENT_PREPARE_RULES a shard leader proposes one prepare at a time, as for a cluster still
   * running the build before.
   */
  peerApplyRules?: number;
  /**
   * Each member's wall clock against the simulated time (ms; by member, in order; missing: 0): what a member
   * reads with Date.now, and so the deadlines and ages it writes into requests and entries. Requests
   * between members carry the time left, as on the wire (shard-peer-wire.ts deadlineToWire).
   */
  clockSkewsMs?: readonly number[];
}

export interface ShardSimResult {
  seed: number;
  events: number;
  writesAcked: number;
  txnsAcked: number;
  /** Cross-shard transactions acknowledged committed, and committed in the logs (acknowledged or not). */
  crossTxnsAcked: number;
  /** Of those, with compares on the state (each key not written since a revision), and of them the ones that failed. */
  crossTxnsOnStateAcked: number;
  crossTxnsOnStateFailed: number;
  crossTxnsCommitted: number;
  /** Cross-shard transactions aborted in the logs, and those a shard leader's recoverer resolved. */
  crossTxnsAborted: number;
  txnRecoveries: number;
  /** Coordinators that crashed with a transaction in flight. */
  coordinatorsCrashed: number;
  /** Committed transactions' records on the replicas once healed (all gone by the end: forgets or finishing). */
  committedRecordsAtHeal: number;
  entries: number;
  snapshots: number;
  multiShardSnapshots: number;
  rereads: number;
  closes: number;
  /** Closes that arrived while write turns' grants were on their way, and waited for them. */
  closesAfterGrants: number;
  /** Closes answered below R (the leader's floor: a grant on its way did not land within the wait). */
  closesAtFloor: number;
  crashes: number;
  leaderChanges: number;
  grantsRetried: number;
  oracleRequests: number;
  writesProposed: number;
  /** Resolutions the shard leaders held back to ride along, and those of them passed on to the next leader (a leadership ended or a transfer under way). */
  resolvesHeld: number;
  resolvesPassedOn: number;
  /** Of resolvesPassedOn, those still held when their leader's leadership ended (HeldResolutions.passAllOn). */
  resolvesPassedOnAtLoss: number;
  /** Writes a shard leader took out of its outbox to wait for transactions prepared on their shard. */
  writesParked: number;
  /**
   * Acknowledged txns that read a past revision (writesOnTxnKeys runs only): their replicas cannot defer
   * them, so a leader parks them until no transaction is prepared on their shard.
   */
  pastReadWritesAcked: number;
  /** Shard leadership transfers started while the leader held resolutions back (the pass-on path's fault). */
  handovers: number;
  /**
   * Late timeoutNows delivered to a follower while its leader held resolutions back: the follower campaigns
   * at once, and the leader, not transferring, keeps holding until the vote request ends its leadership.
   */
  lateTimeouts: number;
  /** Prepares laid on a shard beside another transaction prepared there (disjoint keys), counted once per entry. */
  concurrentPrepares: number;
  /** Ordinary writes deferred at apply behind a transaction undecided on their shard, counted once per entry. */
  writesDeferred: number;
  traceHash: number;
}

export class ShardSimFailure extends Error {
  readonly seed: number;
  constructor(seed: number, message: string) {
    super(`seed=${seed}: ${message}\n  replay: ${SHARD_REPLAY_HINT.replace('=S ', `=${seed} `)}`);
    this.name = 'ShardSimFailure';
    this.seed = seed;
  }
}

class Violation extends Error {}

interface Incarnation {
  owner: string;
  store: SimStore;
  member: Member | null;
  host: OracleHost | null;
  kv: Map<number, KvStateMachine>;
  paths: Map<number, ShardWritePath>;
  coordinator: TxnCoordinator | null;
  /** Transactions this incarnation coordinates right now. */
  coordinating: number;
}

interface SimMember {
  id: NodeId;
  disk: SimDisk;
  generation: number;
  current: Incarnation | null;
}

interface AppliedEntry {
  data: string;
  revision: number;
  key: string | null;
  value: string | null;
  /** The revision `key` is written at: the entry's own, or a committed transaction's C. */
  writeRevision: number;
  /** A cross-shard transaction's entry: its id, and what it is. */
  txnId?: string;
  txnStep?: 'intent' | 'commit' | 'abort';
  /** A commit's revision C (a read-only participant's commit writes nothing at it). */
  txnRevision?: number;
  /** An intent: laid as prepared at apply (not refused there). */
  laid?: boolean;
}

interface Ack {
  key: string;
  value: string;
  revision: number;
  group: number;
  ackAtMs: number;
}

interface Snapshot {
  revision: number;
  requestedAtMs: number;
  kvs: Map<string, { value: string; modRevision: number }>;
}

/** How many of the cross-shard txns' accounts plain writes also go to (ShardSimOptions.writesOnTxnKeys). */
const HOT_ACCOUNTS = 4;
const LATENCY: StoreLatency = { syncMinMs: 1, syncMaxMs: 12, writeMaxMs: 1, opsPerMs: 10 };
const ALL = rangeOf(Buffer.from([0]), Buffer.from([0]));

function snapshotOf(revision: number, requestedAtMs: number, result: RangeResult): Snapshot {
  const kvs = new Map<string, { value: string; modRevision: number }>();
  for (const kv of result.kvs) kvs.set(kv.key.toString('latin1'), { value: kv.value.toString('latin1'), modRevision: kv.modRevision });
  return { revision, requestedAtMs, kvs };
}

/**
 * What the write path may answer besides an outcome: not the ready leader (ask again), too many requests,
 * a proposal known lost with its leadership ("leader changed": it can no longer apply), or a deadline.
 */
function isRefusal(err: unknown): boolean {
  return isProposalLost(err) || (err instanceof Error && ['ShardNotReadyError', 'TooManyRequestsError', 'ShardDeadlineError', 'DeadlineError'].includes(err.name));
}

function sameSnapshot(a: Snapshot, b: Snapshot): string | null {
  for (const [k, v] of a.kvs) {
    const w = b.kvs.get(k);
    if (!w) return `key ${k} (${v.value}@${v.modRevision}) missing`;
    if (w.value !== v.value || w.modRevision !== v.modRevision) return `key ${k}: ${v.value}@${v.modRevision} then ${w.value}@${w.modRevision}`;
  }
  for (const [k, w] of b.kvs) if (!a.kvs.has(k)) return `key ${k} (${w.value}@${w.modRevision}) appeared`;
  return null;
}

export async function runShardSim(seed: number, options: ShardSimOptions): Promise<ShardSimResult> {
  const rng = new Rng(seed);
  const netRng = new Rng(rng.nextUint32());
  const storeRng = new Rng(rng.nextUint32());
  const faultRng = new Rng(rng.nextUint32());
  const clientRng = new Rng(rng.nextUint32());
  const opts = { members: 3, shards: 4, writers: 6, txnWriters: 2, crossTxnWriters: 2, readers: 2, closers: 1, healMs: 20_000, faultEveryMs: 50, handoverChancePerMs: 0.3, lateTimeoutChancePerHold: 0.25, crossTxnDeadlineMs: 300, maxDropRate: 0.08, writesOnTxnKeys: 0, ...options };
  // Its own stream, so the closers do not shift the other draws of a seed.
  const closeRng = new Rng((seed ^ 0x5bd1e995) >>> 0);
  // And the handovers theirs (they draw only when a resolution is held, which the other draws decide).
  const handoverRng = new Rng((seed ^ 0x27d4eb2f) >>> 0);
  // And which plain writes read a past revision theirs.
  const pastReadRng = new Rng((seed ^ 0x165667b1) >>> 0);
  // And which held resolutions meet a late timeoutNow theirs.
  const lateTimeoutRng = new Rng((seed ^ 0x3c6ef372) >>> 0);
  const netFaults: NetworkFaults = randomNetworkFaults(faultRng, opts.maxDropRate);
  const oracleDropRate = faultRng.nextFloat() * 0.05;
  const clock = new SimClock(START_MS);
  const clockSkewsMs = options.clockSkewsMs ?? [];
  if (clockSkewsMs.some((ms) => ms !== 0)) {
    // A member incarnation's owner is `m<id>#<generation>`.
    const skewOf = new Map<string, number>();
    clock.wallClockSkewMs = (owner) => {
      let ms = skewOf.get(owner);
      if (ms === undefined) {
        const m = /^m(\d+)#/.exec(owner);
        ms = m === null ? 0 : (clockSkewsMs[Number(m[1]) - 1] ?? 0);
        skewOf.set(owner, ms);
      }
      return ms;
    };
  }
  const net = new SimNetwork(clock, netRng, netFaults);
  const logger = pino({ level: 'silent' });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `shard-sim-${seed}-`));
  const ids = Array.from({ length: opts.members }, (_, i) => i + 1);
  const shardGroups = Array.from({ length: opts.shards }, (_, i) => i + 1);
  const slotMap = SlotMap.create(opts.shards);
  const bootstrap = ids.map((id) => ({ id, peerUrls: [`http://member-${id}:2380`], isLearner: false }));
  const members: SimMember[] = ids.map((id) => ({ id, disk: new SimDisk(path.join(root, `m${id}`, 'snap')), generation: 0, current: null }));
  let failure: string | null = null;
  const fail = (msg: string): void => {
    failure ??= msg;
  };

  /** Per shard group: what was applied at each index (the first member to apply it decides). */
  const applied = new Map<number, Map<number, AppliedEntry>>(shardGroups.map((g) => [g, new Map()]));
  /**
   * Cross-shard commits whose shares a later entry made (a transaction prepared below their C was still
   * undecided when they applied): by shard group, the entry's index → the Cs it made.
   */
  const madeLater = new Map<number, Map<number, number[]>>(shardGroups.map((g) => [g, new Map()]));
  const acks: Ack[] = [];
  const txnAcks: Array<{ key: string; revision: number; count: number }> = [];
  const snapshots: Snapshot[] = [];
  let multiShardSnapshots = 0;
  let rereads = 0;
  const closes: Array<{ group: number; asked: number; closed: number; index: number }> = [];
  const crossAcks: Array<{ txnId: string | null; keys: string[]; value: string; revision: number; groups: number[] }> = [];
  // Acknowledged cross-shard txns whose compares depend on the state (each key not written since a
  // revision): the branch each took must be the one its compares give on the final history at C − 1.
  const stateCompares: Array<{ value: string; revision: number; succeeded: boolean; compares: Array<{ key: string; below: number }> }> = [];
  let lastAckedRevision = 0;
  let coordinatorsCrashed = 0;
  let txnRecoveries = 0;
  let crashes = 0;
  let leaderChanges = 0;
  let handovers = 0;
  let lateTimeouts = 0;
  let concurrentPrepares = 0;
  let writesDeferred = 0;
  const pathTotals = { grantsRetried: 0, oracleRequests: 0, writesProposed: 0, closesAfterGrants: 0, closesAtFloor: 0, resolvesHeld: 0, resolvesPassedOn: 0, resolvesPassedOnAtLoss: 0, writesParked: 0 };

  const uninstall = clock.install();
  try {
    const hostOf = (to: NodeId): OracleHost | null => members.find((m) => m.id === to)?.current?.host ?? null;
    const ownerOf = (to: NodeId): string => members.find((m) => m.id === to)?.current?.owner ?? SIM_OWNER;
    const transportFrom = (from: NodeId): InProcessOracleTransport =>
      new InProcessOracleTransport({
        from,
        server: hostOf,
        delayMs: () => clientRng.nextInt(netFaults.maxDelayMs + 1),
        drop: () => clientRng.chance(oracleDropRate),
        connected: (a, b) => net.connected(a, b),
        runAs: (to, fn) => clock.runAs(ownerOf(to), fn),
      });

    const boot = (m: SimMember): void => {
      const owner = `m${m.id}#${++m.generation}`;
      const store = new SimStore(m.disk, clock, storeRng, LATENCY, owner);
      const inc: Incarnation = { owner, store, member: null, host: null, kv: new Map(), paths: new Map(), coordinator: null, coordinating: 0 };
      m.current = inc;
      void clock.runAs(owner, async () => {
        try {
          const member = new Member({
            memberId: m.id,
            db: store,
            tickMs: 10,
            electionTimeoutTicks: 10,
            heartbeatTicks: 1,
            logger,
            snapshotDir: m.disk.snapshotDir,
            snapshotCount: 40,
            onFatal: (err) => fail(`member ${m.id} loop failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
          });
          const metaLoaded = await Member.recoverSnapshot(store, METADATA_GROUP, m.disk.snapshotDir, await store.loadGroup(METADATA_GROUP), logger);
          const meta = new MetadataStateMachine(metaLoaded.stateRecords, bootstrap);
          metaLoaded.stateRecords = [];
          member.addGroup({ groupId: METADATA_GROUP, voters: ids, stateMachine: meta, loaded: metaLoaded, randomSeed: rng.nextUint32() >>> 1 });
          for (const g of shardGroups) {
            const loaded = await Member.recoverSnapshot(store, g, m.disk.snapshotDir, await store.loadGroup(g), logger);
            const sm = new KvStateMachine(m.id, loaded.stateRecords, bootstrap, { sharded: true, groupId: g, ...(opts.replicaMutation === 'decide-ignoring-compares' ? { unsafeDecideIgnoringCompares: true } : {}), ...(opts.txnMutation ? { unsafeTxnMutation: opts.txnMutation } : {}) });
            loaded.stateRecords = [];
            const apply = sm.apply.bind(sm);
            sm.apply = (entry: Entry) => {
              const data = Buffer.from(entry.data).toString('hex');
              const req = decodeInternalRequest(entry.data);
              const revision = revisionOf(req) ?? 0;
              let put = 'put' in req && req.put ? req.put : 'txn' in req && req.txn ? (req.txn.success?.find((op) => op.request_put)?.request_put ?? null) : null;
              let writeRevision = revision;
              let txn: Pick<AppliedEntry, 'txnId' | 'txnStep' | 'txnRevision'> = {};
              if ('txn_intent' in req && req.txn_intent && req.txn_intent.refused !== true) txn = { txnId: req.txn_intent.txn_id, txnStep: 'intent' };
              if ('txn_resolve' in req && req.txn_resolve && req.txn_resolve.forget !== true) {
                // What this resolve does here: commit or abort a transaction prepared on this replica (else nothing).
                // (A commit applied already, its share not made yet, is prepared still: this resolve does nothing.)
                const prepared = sm.txns.committedNotMade(req.txn_resolve.txn_id) ? undefined : sm.txns.getPrepared(req.txn_resolve.txn_id);
                if (prepared !== undefined) {
                  txn = { txnId: prepared.txnId, txnStep: req.txn_resolve.commit ? 'commit' : 'abort', ...(req.txn_resolve.commit ? { txnRevision: Number(req.txn_resolve.revision ?? 0) } : {}) };
                  if (req.txn_resolve.commit) {
                    const share = req.txn_resolve.failure_branch === true ? (prepared.ops.failure ?? []) : prepared.ops.success;
                    put = share.find((op) => op.request_put)?.request_put ?? null;
                    writeRevision = Number(req.txn_resolve.revision ?? 0);
                  }
                }
              }
              if ('txn_recover' in req && req.txn_recover && req.txn_recover.abort_pending === true && sm.txns.getPrepared(req.txn_recover.txn_id) !== undefined && !sm.txns.committedNotMade(req.txn_recover.txn_id)) txn = { txnId: req.txn_recover.txn_id, txnStep: 'abort' };
              const seen = applied.get(g)!.get(entry.index);
              if (seen === undefined) applied.get(g)!.set(entry.index, { data, revision, key: put ? put.key.toString('latin1') : null, value: put ? put.value.toString('latin1') : null, writeRevision: put ? writeRevision : 0, ...txn });
              else if (seen.data !== data) fail(`replicas disagree: shard group ${g} index ${entry.index}: member ${m.id} applied other data (revision ${revision}, first seen ${seen.revision})`);
              const preparedBefore = sm.txns.preparedTxns();
              const deferredBefore = sm.txns.deferredRevisions();
              apply(entry);
              if (seen === undefined && txn.txnStep === 'intent') {
                const laid = sm.txns.getPrepared(txn.txnId!) !== undefined;
                applied.get(g)!.get(entry.index)!.laid = laid;
                if (laid && preparedBefore.length > 0) concurrentPrepares++;
              }
              if (seen === undefined && revision > 0 && sm.txns.deferredRevisions().at(-1) === revision) writesDeferred++;
              if (seen === undefined) {
                // Shares this entry made for commits applied earlier (not the entry's own commit: its C is
                // recorded with it), and writes deferred by earlier entries that it made.
                const made = preparedBefore
                  .filter((p) => p.txnId !== (txn.txnStep === 'commit' ? txn.txnId : undefined) && sm.txns.getPrepared(p.txnId) === undefined)
                  .flatMap((p) => {
                    const d = sm.txns.decisionOf(p.txnId);
                    return d?.state === 'committed' ? [d.revision] : [];
                  });
                const still = new Set(sm.txns.deferredRevisions());
                for (const r of deferredBefore) if (!still.has(r)) made.push(r);
                if (made.length > 0) madeLater.get(g)!.set(entry.index, made);
              }
            };
            inc.kv.set(g, sm);
            member.addGroup({ groupId: g, voters: ids, stateMachine: sm, loaded, randomSeed: rng.nextUint32() >>> 1 });
          }
          if (m.current !== inc) return;
          inc.host = new OracleHost(member, meta, { groupId: METADATA_GROUP, windowRevisions: 20 });
          inc.member = member;
          member.onLeaderChange(() => leaderChanges++);
          for (const g of shardGroups) {
            const oracle = new OracleClient({ requester: `shard-${g}@m${m.id}#${m.generation}`, transport: transportFrom(m.id), members: () => ids, attemptTimeoutMs: 150, random: () => clientRng.nextFloat() });
            const readsElsewhere: ReadsElsewhere = {
              plan: (body) => ('txn' in body && body.txn ? planTxnReads(txnOpFromWire(body.txn), g, (k, e) => slotMap.shardsOfRange(k, e).shards.map((i) => i + 1)) : []),
              read: (group, op, revision, deadlineMs) => {
                const other = leaderOf(group)?.current;
                const p = other?.paths.get(group);
                if (!other || !p) return Promise.reject(new ShardNotReadyError(`no leader of shard group ${group}`));
                const leftMs = deadlineMs - Date.now();
                return clock.runAs(other.owner, () => p.readAt(op, revision, Date.now() + leftMs));
              },
            };
            const recoverTxn = (p: Parameters<TxnCoordinator['recoverPrepared']>[0]): Promise<void> => {
              txnRecoveries++;
              return inc.coordinator === null ? Promise.resolve() : inc.coordinator.recoverPrepared(p, g);
            };
            const path = new ShardWritePath({ member, groupId: g, sm: inc.kv.get(g)!, oracle, readsElsewhere, recoverTxn, ...(opts.mutation ? { unsafeMutation: opts.mutation } : {}), ...(opts.txnMutation === 'prepare-overlapping' || opts.txnMutation === 'prepare-over-deferred' ? { unsafeProposeOverlappingPrepares: true } : {}), onResolutionHeld: () => onResolutionHeld(m, inc, g) });
            inc.paths.set(g, path);
            member.interceptProposals(g, (data) => path.intercept(data));
          }
          inc.coordinator = coordinatorFor(m, inc);
          const sink = net.sinkFor(m.id, owner);
          const rules = opts.peerApplyRules;
          member.setSink(rules === undefined ? sink : { ...sink, peerApplyRules: () => rules });
          net.attach({ id: m.id, owner, member, snapshotDir: m.disk.snapshotDir });
          member.start();
        } catch (err) {
          if (m.current === inc) fail(`member ${m.id} failed to restart: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        }
      });
    };

    const collectPathStats = (inc: Incarnation): void => {
      for (const p of inc.paths.values()) {
        pathTotals.grantsRetried += p.stats.grantsRetried;
        pathTotals.oracleRequests += p.stats.oracleRequests;
        pathTotals.writesProposed += p.stats.writesProposed;
        pathTotals.closesAfterGrants += p.stats.closesAfterGrants;
        pathTotals.closesAtFloor += p.stats.closesAtFloor;
        pathTotals.resolvesHeld += p.resolveCounts.held;
        pathTotals.resolvesPassedOn += p.resolveCounts.passedOn;
        pathTotals.resolvesPassedOnAtLoss += p.resolveCounts.passedOnAtLoss;
        pathTotals.writesParked += p.stats.writesParked;
      }
    };

    const crash = (m: SimMember): void => {
      const inc = m.current;
      if (!inc) return;
      collectPathStats(inc);
      if (inc.coordinating > 0) coordinatorsCrashed++;
      for (const p of inc.paths.values()) p.stop();
      clock.cancelOwner(inc.owner);
      net.detach(m.id);
      inc.store.crash();
      m.current = null;
      crashes++;
    };

    /** A timeout under the simulated clock: a promise from a crashed member's events never settles. */
    const within = <T>(p: Promise<T>, ms: number): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new ShardNotReadyError('no answer in time')), ms);
        p.then(
          (v) => {
            clearTimeout(timer);
            resolve(v);
          },
          (e: unknown) => {
            clearTimeout(timer);
            reject(e instanceof Error ? e : new Error(String(e)));
          },
        );
      });
    // A member's coordinator reaches every shard through the shard's leader, as the API's forwarding does.
    let txnIds = 0;
    function coordinatorFor(m: SimMember, inc: Incarnation): TxnCoordinator {
      const oracle = new OracleClient({ requester: `coordinator@m${m.id}#${m.generation}`, transport: transportFrom(m.id), members: () => ids, attemptTimeoutMs: 150, random: () => clientRng.nextFloat() });
      return new TxnCoordinator({
        // One member's coordinators admit their transactions to shards first, as every real member's do
        // (txn/shard-admission.ts); the others send prepares at once, for the most concurrent prepares.
        ...(m.id === ids[0] ? {} : { admission: null }),
        // One member's coordinators choose the branch before the prepares (reads at R0), the others'
        // prepares decide it (TxnIntent.decide_here): both protocols run side by side on the same shards.
        prepareMayDecide: () => m.id !== ids[2],
        freshRevision: async (deadlineMs) => (await oracle.next(1, deadlineMs)).last,
        groupOfKey: (key) => slotMap.shardOf(slotOf(key)) + 1,
        groupsOfRange: (key, rangeEnd) => slotMap.shardsOfRange(key, rangeEnd).shards.map((i) => i + 1),
        rangeAt: (group, op, revision, deadlineMs) => {
          const other = leaderOf(group)?.current;
          const p = other?.paths.get(group);
          if (!other || !p) return Promise.reject(new ShardNotReadyError(`no leader of shard group ${group}`));
          // The time left goes to the other member, as on the wire: its own clock plus that.
          const leftMs = deadlineMs - Date.now();
          return within(clock.runAs(other.owner, () => p.readAt(op, revision, Date.now() + leftMs)), Math.max(1, leftMs));
        },
        propose: (group, body, timeoutMs) => {
          const other = leaderOf(group)?.current;
          const p = other?.paths.get(group);
          const sm = other?.kv.get(group);
          if (!other || !p || !sm || !other.member) return Promise.reject(new ShardNotReadyError(`no leader of shard group ${group}`));
          const leaderMember = other.member;
          const outcome = clock.runAs(other.owner, (): Promise<TxnWriteOutcome> => {
            if ('txn_intent' in body) return p.write(body, Date.now() + timeoutMs);
            const proposalTerm = leaderMember.proposalTerm(group);
            const tracked = sm.track(proposalTerm);
            try {
              leaderMember.propose(group, encodeInternalRequest({ proposer: sm.proposer, seq: tracked.seq, ...body, ...(proposalTerm > 0 ? { proposal_term: String(proposalTerm) } : {}) }));
            } catch (err) {
              tracked.forget();
              return Promise.reject(err instanceof Error ? err : new Error(String(err)));
            }
            return tracked.outcome;
          });
          return within(outcome, timeoutMs);
        },
        deadlineMs: () => Date.now() + opts.crossTxnDeadlineMs,
        newTxnId: () => `m${m.id}#${m.generation}-${++txnIds}`,
        pauseBeforeDecisionMs: 0,
        random: () => clientRng.nextFloat(),
      });
      void inc;
    }

    const live = (): SimMember[] => members.filter((m) => m.current?.member);
    const leaderOf = (g: number): SimMember | undefined => live().find((m) => m.current!.member!.role(g) === 'leader');
    /**
     * The write path's contract (shard-write-path.ts): it fails only as isRefusal allows. Anything else
     * reaches a client as that error, unretried. A crashed incarnation's answers are not looked at: a
     * killed process answers nothing.
     */
    const expectRefusal = (what: string, m: SimMember, inc: Incarnation, err: unknown): void => {
      if (m.current !== inc || isRefusal(err)) return;
      fail(`${what} failed with ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}, not a refusal or a deadline`);
    };

    // ---- writers ----
    let clientsOn = true;
    let written = 0;
    let pastReadWritesAcked = 0;
    const writeOnce = (w: number): void => {
      const tagged = clientRng.chance(0.25);
      // Some on the cross-shard txns' keys, when asked (the first few accounts only: compares on the
      // others still hold): those wait for a transaction prepared on them, and a prepare meeting one
      // deferred waits for it. (Drawn only then: the other runs' histories stay as they were.)
      const onTxnKeys = opts.writesOnTxnKeys > 0 && clientRng.chance(opts.writesOnTxnKeys);
      const key = onTxnKeys ? accounts[clientRng.nextInt(HOT_ACCOUNTS)] : tagged ? `{t${clientRng.nextInt(4)}}k${clientRng.nextInt(10)}` : `k${clientRng.nextInt(40)}`;
      const value = `w${w}-${++written}`;
      const group = slotMap.shardOf(slotOf(Buffer.from(key))) + 1;
      const leader = leaderOf(group);
      const inc = leader?.current;
      const p = inc?.paths.get(group);
      if (!leader || !inc || !p) return;
      const put = { key: Buffer.from(key, 'latin1'), value: Buffer.from(value, 'latin1'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false };
      // Some as a txn that also reads its key at revision 1 (a past revision), which its replicas cannot
      // defer beside a transaction: it waits for every one prepared on its shard. (Drawn in those runs only,
      // from a stream of their own.)
      const readsThePast = opts.writesOnTxnKeys > 0 && pastReadRng.chance(0.05);
      const body = readsThePast
        ? ({ txn: { compare: [], success: [{ request_put: put }, { request_range: { key: put.key, revision: '1' } }], failure: [] } } as unknown as InternalRequestBody)
        : { put };
      clock.runAs(inc.owner, () =>
        p.write(body, Date.now() + 300).then(
          (o) => {
            acks.push({ key, value, revision: o.revision, group, ackAtMs: clock.now });
            if (readsThePast) pastReadWritesAcked++;
          },
          (err: unknown) => expectRefusal(`a write of ${key} on shard group ${group}`, leader, inc, err),
        ),
      );
    };
    // A txn: put one key here, count every key of every shard (its own put included).
    const txnOnce = (w: number): void => {
      const key = `x${w}-${++written}`;
      const value = `t${w}-${written}`;
      const group = slotMap.shardOf(slotOf(Buffer.from(key))) + 1;
      const leader = leaderOf(group);
      const inc = leader?.current;
      const p = inc?.paths.get(group);
      if (!leader || !inc || !p) return;
      const putOp = { key: Buffer.from(key, 'latin1'), value: Buffer.from(value, 'latin1'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false };
      const countAll = { key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true };
      const body = { txn: { compare: [], success: [{ request_put: putOp }, { request_range: countAll }], failure: [] } } as unknown as InternalRequestBody;
      clock.runAs(inc.owner, () =>
        p.write(body, Date.now() + 300).then(
          (o) => {
            acks.push({ key, value, revision: o.revision, group, ackAtMs: clock.now });
            const r = o.result as TxnResult;
            const counted = r.responses[1]?.type === 'range' ? r.responses[1].range.count : -1;
            txnAcks.push({ key, revision: o.revision, count: counted });
          },
          (err: unknown) => expectRefusal(`a txn putting ${key} on shard group ${group}`, leader, inc, err),
        ),
      );
    };
    const txnLoop = (w: number): void => {
      if (!clientsOn) return;
      txnOnce(w);
      clock.schedule(3 + clientRng.nextInt(15), () => txnLoop(w), SIM_OWNER);
    };
    // A cross-shard txn: one value to two keys on two shards, or (a compare failing) to two others.
    const accountGroups = new Map<string, number>();
    for (let i = 0; accountGroups.size < 16 && i < 1000; i++) accountGroups.set(`acct${i}`, slotMap.shardOf(slotOf(Buffer.from(`acct${i}`))) + 1);
    const accounts = [...accountGroups.keys()];
    const twoOnTwoShards = (): [string, string] | null => {
      const a = accounts[clientRng.nextInt(accounts.length)];
      const others = accounts.filter((k) => accountGroups.get(k) !== accountGroups.get(a));
      return others.length === 0 ? null : [a, others[clientRng.nextInt(others.length)]];
    };
    // Closed loop: each writer waits for its transaction's answer (or its coordinator's crash) first.
    const crossTxnOnce = (w: number, next: () => void): void => {
      const yes = twoOnTwoShards();
      const no = twoOnTwoShards();
      const up = live();
      if (!yes || !no || up.length === 0) return next();
      const coordinatorMember = up[clientRng.nextInt(up.length)];
      const inc = coordinatorMember.current!;
      const coordinator = inc.coordinator;
      if (!coordinator) return next();
      const value = `c${w}-${++written}`;
      // Compares: none (the success branch), one that never holds (the failure branch, two other keys),
      // or, on both of the success branch's keys (two shards), "not written since a revision", which
      // concurrent transactions make hold or fail; then the failure branch puts the first of them alone
      // (a compare-and-swap's shape, whose prepares may decide the branch).
      const kind = (['none', 'never', 'state'] as const)[clientRng.nextInt(3)];
      const comparing = kind === 'never';
      // Somewhere in the history so far: keys written above it fail the compare, the others pass.
      const below = 1 + clientRng.nextInt(lastAckedRevision + 1);
      const stateCompare = (key: string) => ({ result: 'LESS', target: 'MOD', key: Buffer.from(key, 'latin1'), mod_revision: String(below), target_union: 'mod_revision', range_end: Buffer.alloc(0) }) as unknown as TxnRequest['compare'][number];
      const op = (key: string) => ({ request_put: { key: Buffer.from(key, 'latin1'), value: Buffer.from(value, 'latin1'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } });
      const inner: TxnRequest = {
        compare:
          kind === 'never'
            ? [{ result: 'EQUAL', target: 'VALUE', key: Buffer.from(yes[0], 'latin1'), value: Buffer.from('never', 'latin1'), target_union: 'value', range_end: Buffer.alloc(0) } as unknown as TxnRequest['compare'][number]]
            : kind === 'state'
              ? [stateCompare(yes[0]), stateCompare(yes[1])]
              : [],
        success: [op(yes[0]), op(yes[1])],
        failure: kind === 'state' ? [op(yes[0])] : [op(no[0]), op(no[1])],
      };
      // Sometimes nested: the inner txn's compare chooses the writes, inside an outer txn without compares.
      const nested = clientRng.chance(0.3);
      const req: TxnRequest = nested ? { compare: [], success: [{ request_txn: inner } as TxnRequest['success'][number]], failure: [] } : inner;
      inc.coordinating++;
      // A crashed coordinator never answers: its client gives up after the transaction's deadline.
      const giveUp = clock.schedule(opts.crossTxnDeadlineMs + 100, next, SIM_OWNER);
      const done = (): void => {
        clock.cancel(giveUp);
        next();
      };
      clock.runAs(inc.owner, () =>
        coordinator.run(req).then(
          (o) => {
            done();
            inc.coordinating--;
            lastAckedRevision = Math.max(lastAckedRevision, o.revision);
            const outer = o.result as TxnResult;
            const first = outer.responses[0];
            const result = nested ? (first?.type === 'txn' ? first.txn : null) : outer;
            if (result === null || (nested && !outer.succeeded)) return fail(`cross-shard txn ${value}: a nested answer without its nested txn: ${JSON.stringify(outer)}`);
            const keys = result.succeeded ? yes : kind === 'state' ? [yes[0]] : no;
            crossAcks.push({ txnId: null, keys, value, revision: o.revision, groups: keys.map((k) => accountGroups.get(k)!) });
            if (kind === 'state') stateCompares.push({ value, revision: o.revision, succeeded: result.succeeded, compares: [yes[0], yes[1]].map((key) => ({ key, below })) });
            else if (result.succeeded === comparing) fail(`cross-shard txn ${value}: branch ${result.succeeded ? 'success' : 'failure'} with comparing=${comparing}`);
            if (result.responses.length !== keys.length || result.responses.some((r) => r.type !== 'put')) fail(`cross-shard txn ${value}: answered ${JSON.stringify(result.responses.map((r) => r.type))}, not ${keys.length} puts`);
          },
          (err: unknown) => {
            done();
            inc.coordinating--;
            // A coordinator's failures reach its client: a refusal, a deadline (its oracle's too), a shard
            // with no leader in time (etcd's "no leader"; this stand-in's propose does not wait for one as
            // the server's does), or a status chosen for the client (a gRPC code: too old, too large...).
            const chosen = typeof (err as { code?: unknown }).code === 'number' || err instanceof NoLeaderError || (err instanceof Error && err.name === 'OracleDeadlineError');
            if (!chosen) expectRefusal(`cross-shard txn ${value}`, coordinatorMember, inc, err);
          },
        ),
      );
    };
    const crossTxnLoop = (w: number): void => {
      if (!clientsOn) return;
      let called = false;
      crossTxnOnce(w, () => {
        if (called) return;
        called = true;
        clock.schedule(1 + clientRng.nextInt(10), () => crossTxnLoop(w), SIM_OWNER);
      });
    };
    const writerLoop = (w: number): void => {
      if (!clientsOn) return;
      writeOnce(w);
      clock.schedule(1 + clientRng.nextInt(8), () => writerLoop(w), SIM_OWNER);
    };

    // ---- readers: multi-shard snapshots at oracle revisions ----
    const readAt = async (revision: number, deadlineMs: number): Promise<Snapshot | null> => {
      const answers: RangeResult[] = [];
      for (const g of shardGroups) {
        const m = leaderOf(g);
        const inc = m?.current;
        const p = inc?.paths.get(g);
        if (!m || !inc || !p) return null;
        try {
          const leftMs = deadlineMs - clock.now;
          answers.push(await clock.runAs(inc.owner, () => p.readAt(ALL, revision, Date.now() + leftMs)));
        } catch (err) {
          // readAt's contract: a replica that cannot serve says so (the caller asks the shard's leader
          // again), or the deadline passed. Anything else reaches a client as that error, unretried.
          expectRefusal(`shard group ${g}: readAt at ${revision}`, m, inc, err);
          return null;
        }
      }
      const merged = mergeShardRanges(ALL, revision, answers);
      return snapshotOf(revision, 0, merged.result);
    };
    const checkAcksVisible = (s: Snapshot): void => {
      for (const a of acks) {
        if (a.ackAtMs >= s.requestedAtMs) continue;
        const kv = s.kvs.get(a.key);
        if (!kv || kv.modRevision < a.revision) {
          fail(`lost or invisible: ${a.key}=${a.value} acknowledged at revision ${a.revision} (shard group ${a.group}, t=${a.ackAtMs - START_MS}) but the snapshot at ${s.revision} (requested t=${s.requestedAtMs - START_MS}) shows ${kv ? `${kv.value}@${kv.modRevision}` : 'nothing'}`);
        }
      }
    };
    const readers = Array.from({ length: opts.readers }, (_, i) => {
      const home = ids[i % ids.length];
      return new OracleClient({ requester: `reader-${i}`, transport: transportFrom(home), members: () => ids, attemptTimeoutMs: 150, random: () => clientRng.nextFloat() });
    });
    const readOnce = async (reader: OracleClient): Promise<void> => {
      const requestedAtMs = clock.now;
      let revision: number;
      try {
        revision = (await reader.next(1, clock.now + 400)).last;
      } catch {
        return;
      }
      const s = await readAt(revision, clock.now + 400);
      if (!s) return;
      s.requestedAtMs = requestedAtMs;
      snapshots.push(s);
      multiShardSnapshots++;
      checkAcksVisible(s);
      // The same revision again, later (often across a leader change): history must not have moved.
      clock.schedule(
        20 + clientRng.nextInt(300),
        () => {
          void readAt(revision, clock.now + 400).then((again) => {
            if (!again) return;
            rereads++;
            const diff = sameSnapshot(s, again);
            if (diff) fail(`history changed at revision ${revision}: ${diff}`);
          });
        },
        SIM_OWNER,
      );
    };
    const readerLoop = (i: number): void => {
      if (!clientsOn) return;
      void readOnce(readers[i]);
      clock.schedule(5 + clientRng.nextInt(25), () => readerLoop(i), SIM_OWNER);
    };

    // ---- closers: a merged watch's closes (server/shard/shard-closer.ts) ----
    const closerClients = Array.from({ length: opts.closers }, (_, i) => new OracleClient({ requester: `closer-${i}`, transport: transportFrom(ids[i % ids.length]), members: () => ids, attemptTimeoutMs: 150, random: () => closeRng.nextFloat() }));
    const closeOnce = async (client: OracleClient): Promise<void> => {
      const g = shardGroups[closeRng.nextInt(shardGroups.length)];
      let asked: number;
      try {
        asked = (await client.next(1, clock.now + 400)).last;
      } catch {
        return;
      }
      const inc = leaderOf(g)?.current;
      const p = inc?.paths.get(g);
      if (!inc || !p || !inc.member) return;
      const member = inc.member;
      try {
        const closed = await clock.runAs(inc.owner, () => p.closeAt(asked, Date.now() + 400));
        if (closed > asked || closed < 1) fail(`close at ${asked} on shard group ${g} answered ${closed}`);
        closes.push({ group: g, asked, closed, index: member.status(g).applied });
      } catch {
        // Leadership lost or deadline: the round tries again later.
      }
    };
    const closerLoop = (i: number): void => {
      if (!clientsOn) return;
      void closeOnce(closerClients[i]);
      clock.schedule(2 + closeRng.nextInt(10), () => closerLoop(i), SIM_OWNER);
    };

    // ---- faults ----
    let faultsOn = true;
    const faultLoop = (): void => {
      if (!faultsOn) return;
      const action = faultRng.nextInt(11); // crash 3, restart 4, partition 2, heal 2
      if (action < 3) {
        const up = live();
        const leads = (m: SimMember): number => shardGroups.filter((g) => m.current!.member!.role(g) === 'leader').length;
        const busiest = [...up].sort((a, b) => leads(b) - leads(a))[0];
        const victim = busiest && faultRng.chance(0.5) ? busiest : up[faultRng.nextInt(Math.max(1, up.length))];
        if (victim) crash(victim);
      } else if (action < 7) {
        const down = members.filter((m) => m.current === null);
        if (down.length > 0) boot(down[faultRng.nextInt(down.length)]);
      } else if (action < 9) {
        const sides = new Map<NodeId, number>();
        for (const id of ids) sides.set(id, faultRng.nextInt(2));
        net.partition(sides);
      } else net.heal();
      clock.schedule(1 + faultRng.nextInt(2 * opts.faultEveryMs), faultLoop, SIM_OWNER);
    };

    // A leadership handed over while its leader holds resolutions back: they never reached its log, so
    // lose() passes them on to the next leader (as a forwarded write caught the same way). Crashes alone
    // seldom end a leadership inside the short hold, and lose the held resolutions with the process.
    // A transfer makes Raft refuse proposals at once, so the held ones are mostly passed on at their
    // flush. So at the moment a resolution is held, a follower may also get a late timeoutNow (one sent
    // by a transfer that timed out, held up by the network): it campaigns, skipping pre-vote and leases,
    // while its leader goes on holding until the vote request ends its leadership mid-hold.
    const transferring = new Set<string>();
    const MAX_LATE_TIMEOUTS = 20;
    const onResolutionHeld = (m: SimMember, inc: Incarnation, groupId: number): void => {
      // Also while healing: most holds come then, once the clients stop and the shards go quiet (a busy
      // leader has writes in flight, and holds nothing). A budget keeps the healing finite.
      if (lateTimeouts >= MAX_LATE_TIMEOUTS || m.current !== inc || !lateTimeoutRng.chance(opts.lateTimeoutChancePerHold)) return;
      const others = live().filter((o) => o !== m && o.current?.member?.hostsGroup(groupId));
      if (others.length === 0) return;
      const target = others[lateTimeoutRng.nextInt(others.length)].current!;
      lateTimeouts++;
      const message = newMessage('timeoutNow', m.id, target.member!.memberId, inc.member!.term(groupId));
      void clock.runAs(target.owner, () => target.member!.step([{ groupId, message }]));
    };
    const handoverLoop = (): void => {
      if (!faultsOn) return;
      for (const m of live()) {
        const inc = m.current!;
        for (const [g, p] of inc.paths) {
          const key = `${inc.owner}/${g}`;
          if (p.heldResolutionCount === 0 || transferring.has(key) || inc.member!.role(g) !== 'leader' || !handoverRng.chance(opts.handoverChancePerMs)) continue;
          const others = live().filter((o) => o !== m);
          if (others.length === 0) continue;
          const target = others[handoverRng.nextInt(others.length)].id;
          handovers++;
          transferring.add(key);
          void clock
            .runAs(inc.owner, () => inc.member!.transferLeadership(g, target, 200))
            .catch(() => {
              // A transfer that does not finish in time (partitioned, lagging target) is itself a fault.
            })
            .finally(() => transferring.delete(key));
        }
      }
      clock.schedule(1, handoverLoop, SIM_OWNER);
    };

    const checkNow = (): void => {
      if (clock.error) throw new Violation(`an event threw: ${clock.error instanceof Error ? (clock.error.stack ?? clock.error.message) : String(clock.error)}`);
      if (failure) throw new Violation(failure);
    };
    const runUntil = (endMs: number, done?: () => boolean): Promise<boolean> => clock.runUntil(endMs, checkNow, () => new Violation('nothing scheduled'), done);

    for (const m of members) boot(m);
    for (let w = 0; w < opts.writers; w++) clock.schedule(100 + clientRng.nextInt(50), () => writerLoop(w), SIM_OWNER);
    for (let w = 0; w < opts.txnWriters; w++) clock.schedule(100 + clientRng.nextInt(50), () => txnLoop(opts.writers + w), SIM_OWNER);
    for (let w = 0; w < opts.crossTxnWriters; w++) clock.schedule(100 + clientRng.nextInt(50), () => crossTxnLoop(opts.writers + opts.txnWriters + w), SIM_OWNER);
    for (let i = 0; i < opts.readers; i++) clock.schedule(100 + clientRng.nextInt(50), () => readerLoop(i), SIM_OWNER);
    for (let i = 0; i < opts.closers; i++) clock.schedule(100 + closeRng.nextInt(50), () => closerLoop(i), SIM_OWNER);
    clock.schedule(150 + faultRng.nextInt(opts.faultEveryMs), faultLoop, SIM_OWNER);
    clock.schedule(150, handoverLoop, SIM_OWNER);
    await runUntil(START_MS + opts.faultMs);

    // ---- heal: everyone up, a clean network; every shard converges and serves one more snapshot ----
    faultsOn = false;
    clientsOn = false;
    net.heal();
    net.faults = { ...NO_FAULTS };
    for (const m of members) if (!m.current) boot(m);
    let finalSnapshot: Snapshot | null = null;
    let finalReading = false;
    const converged = (): boolean => {
      if (live().length !== members.length) return false;
      for (const g of [METADATA_GROUP, ...shardGroups]) {
        const statuses = members.map((m) => m.current!.member!.status(g));
        const leader = statuses.find((s) => s.role === 'leader');
        if (!leader || !statuses.every((s) => s.applied === leader.commit && s.leaderId === leader.leaderId)) return false;
      }
      // Every client's cross-shard transaction answered (one still retrying at healing may prepare
      // again after the shards look settled: seed 1098 of the cross-shard run was acknowledged 31 ms
      // before the checks, its resolutions still on their way), and none still prepared on a shard.
      if (members.some((m) => m.current!.coordinating > 0)) return false;
      if (members.some((m) => shardGroups.some((g) => m.current!.kv.get(g)!.txns.preparedCount() > 0))) return false;
      if (finalSnapshot === null && !finalReading) {
        finalReading = true;
        const requestedAtMs = clock.now;
        void readers[0]
          .next(1, clock.now + 400)
          .then((g) => readAt(g.last, clock.now + 400))
          .then(
            (s) => {
              if (s) {
                s.requestedAtMs = requestedAtMs;
                finalSnapshot = s;
              }
              finalReading = false;
            },
            () => (finalReading = false),
          );
      }
      return finalSnapshot !== null;
    };
    if (!(await runUntil(clock.now + opts.healMs, converged))) {
      throw new Violation(`liveness: the shards did not converge and serve a snapshot within ${opts.healMs} ms of healing`);
    }
    // Long enough for every scheduled re-read to run on the healed cluster.
    await runUntil(clock.now + 400);
    checkNow();

    // Committed transactions' records go with their coordinators' forgets; those a crashed coordinator
    // left are finished by the shard leaders holding them (TxnCoordinator.finishCommitted, which the
    // server's ShardHosting calls for records that look stale). None may be left.
    const committedLeft = (): number => members.reduce((n, m) => n + shardGroups.reduce((k, g) => k + m.current!.kv.get(g)!.txns.decidedCount('committed'), 0), 0);
    const recordsBefore = committedLeft();
    const finishing = new Set<string>();
    const finishStale = (): void => {
      for (const g of shardGroups) {
        const inc = leaderOf(g)?.current;
        const coordinator = inc?.coordinator;
        if (!inc || !coordinator) continue;
        for (const d of inc.kv.get(g)!.txns.committedTxns()) {
          if (finishing.has(d.txnId)) continue;
          finishing.add(d.txnId);
          clock.runAs(inc.owner, () => coordinator.finishCommitted(d.txnId, d.revision, d.participantGroups ?? [], d.failureBranch === true)).then(
            () => finishing.delete(d.txnId),
            () => finishing.delete(d.txnId),
          );
        }
      }
      if (committedLeft() > 0) clock.schedule(200, finishStale, SIM_OWNER);
    };
    finishStale();
    if (!(await runUntil(clock.now + 10_000, () => committedLeft() === 0))) {
      throw new Violation(`records: ${committedLeft()} committed transaction records left on the replicas after finishing (${recordsBefore} at healing)`);
    }

    // ---- final checks ----
    // Revisions: unique across shards, strictly increasing per shard in log order.
    const owners = new Map<number, string>();
    /** The transaction whose prepare used a revision: its commit is at the highest of its prepares'. */
    const intentOf = new Map<number, string>();
    let entries = 0;
    for (const g of shardGroups) {
      const log = [...applied.get(g)!.entries()].sort((a, b) => a[0] - b[0]);
      let last = 0;
      for (const [index, e] of log) {
        if (e.revision === 0) continue;
        entries++;
        if (e.revision <= last) throw new Violation(`shard group ${g}: revision ${e.revision} at index ${index} not above ${last}`);
        last = e.revision;
        const other = owners.get(e.revision);
        if (other !== undefined) throw new Violation(`revision ${e.revision} used twice: ${other} and shard group ${g} index ${index}`);
        owners.set(e.revision, `shard group ${g} index ${index}`);
        if (e.txnStep === 'intent' && e.txnId !== undefined) intentOf.set(e.revision, e.txnId);
      }
    }
    // Replicas identical.
    for (const g of shardGroups) {
      const dumps = members.map((m) => {
        const sm = m.current!.kv.get(g)!;
        const r = sm.store.range(ALL, sm.appliedRevision());
        return `${sm.appliedRevision()}|${r.kvs.map((kv) => `${kv.key.toString('latin1')}=${kv.value.toString('latin1')}@${kv.modRevision}`).join(',')}`;
      });
      if (dumps.some((d) => d !== dumps[0])) throw new Violation(`shard group ${g}: replicas differ at the end`);
    }
    // A commit's revision C: one of its own prepares' revisions (used by no other entry), at or above its
    // prepare on this shard. Between its prepare and its commit in its shard's log, no write touches its
    // keys there (other writes are deferred until it is decided, and made in revision order); and every
    // write after a commit is above its C (several transactions on disjoint keys may be prepared at once,
    // and commit in either order).
    const keysOfEntry = (e: AppliedEntry): ShareKeys => {
      const req = decodeInternalRequest(Buffer.from(e.data, 'hex'));
      if ('txn_intent' in req && req.txn_intent) {
        const ops = req.txn_intent.ops;
        // As its replicas lay it (KvStateMachine.applyTxnIntent): both branches only when its prepares decide.
        const failure = req.txn_intent.decide_here === true ? (ops.failure ?? []) : [];
        return shareKeysOf({ compare: ops.compare ?? [], success: ops.success ?? [], failure }, req.txn_intent.lease_sweep !== undefined && req.txn_intent.lease_sweep !== null);
      }
      return writeKeysOf(req);
    };
    for (const g of shardGroups) {
      let lastCommit = 0;
      const preparedAt = new Map<string, { revision: number; keys: ShareKeys }>();
      const writesSince = new Map<string, Array<{ index: number; revision: number; keys: ShareKeys }>>();
      // Where each deferred write was made (a later entry's index), and those deferred so far.
      const madeAt = new Map<number, number>();
      for (const [at, revisions] of madeLater.get(g)!) for (const r of revisions) madeAt.set(r, at);
      const deferred: Array<{ index: number; revision: number; keys: ShareKeys; madeAt: number }> = [];
      for (const [index, e] of [...applied.get(g)!.entries()].sort((a, b) => a[0] - b[0])) {
        if (e.txnStep === 'intent' && e.txnId !== undefined) {
          if (e.laid !== true) continue; // refused at apply: it checked nothing and holds nothing
          const keys = keysOfEntry(e);
          // Its check and responses ran on the store at its index: every write before it must be made by then.
          const unseen = deferred.find((w) => w.madeAt > index && shareKeysMeet(w.keys, keys));
          if (unseen) throw new Violation(`shard group ${g}: txn ${e.txnId} prepared at index ${index} on keys of the write at index ${unseen.index} (revision ${unseen.revision}), made only at index ${unseen.madeAt}`);
          preparedAt.set(e.txnId, { revision: e.revision, keys });
          writesSince.set(e.txnId, []);
          continue;
        }
        if (e.txnStep === 'commit') {
          const at = e.txnRevision ?? 0;
          const prepared = preparedAt.get(e.txnId!);
          if (intentOf.get(at) !== e.txnId) throw new Violation(`txn ${e.txnId} committed at ${at}, which ${owners.get(at) ?? 'no prepare of it'} uses`);
          if (!(at >= (prepared?.revision ?? Infinity))) throw new Violation(`txn ${e.txnId} committed at ${at} on shard group ${g}, below its prepare there (${prepared?.revision ?? 'none before it'})`);
          const meeting = (writesSince.get(e.txnId!) ?? []).find((w) => shareKeysMeet(w.keys, prepared!.keys));
          writesSince.delete(e.txnId!);
          if (meeting) throw new Violation(`shard group ${g}: the write at index ${meeting.index} (revision ${meeting.revision}) touches txn ${e.txnId}'s keys between its prepare and its commit at ${at}`);
          lastCommit = Math.max(lastCommit, at);
          continue;
        }
        if (e.txnStep === 'abort') {
          writesSince.delete(e.txnId!);
          continue;
        }
        if (e.revision === 0) continue;
        if (e.revision <= lastCommit) throw new Violation(`shard group ${g}: revision ${e.revision} at index ${index} (write) not above a commit before it in the log at ${lastCommit}`);
        const w = { index, revision: e.revision, keys: keysOfEntry(e) };
        for (const list of writesSince.values()) list.push(w);
        const made = madeAt.get(e.revision);
        if (made !== undefined && made > index) deferred.push({ ...w, madeAt: made });
      }
    }
    // Cross-shard transactions: committed on every participant or none; at one revision; acks committed.
    const txnOutcomes = new Map<string, { commits: Map<number, number>; aborts: Set<number>; intents: Set<number> }>();
    for (const g of shardGroups) {
      for (const e of applied.get(g)!.values()) {
        if (e.txnId === undefined) continue;
        let t = txnOutcomes.get(e.txnId);
        if (!t) txnOutcomes.set(e.txnId, (t = { commits: new Map(), aborts: new Set(), intents: new Set() }));
        if (e.txnStep === 'intent') t.intents.add(g);
        else if (e.txnStep === 'commit') t.commits.set(g, e.txnRevision ?? 0);
        else t.aborts.add(g);
      }
    }
    let crossCommitted = 0;
    let crossAborted = 0;
    for (const [txnId, t] of txnOutcomes) {
      if (t.commits.size > 0 && t.aborts.size > 0) throw new Violation(`txn ${txnId} committed on groups ${[...t.commits.keys()]} but aborted on ${[...t.aborts]}`);
      if (t.commits.size > 0 && t.commits.size !== t.intents.size) throw new Violation(`txn ${txnId} prepared on groups ${[...t.intents]} but committed only on ${[...t.commits.keys()]}`);
      if (new Set(t.commits.values()).size > 1) throw new Violation(`txn ${txnId} committed at several revisions: ${[...t.commits.values()]}`);
      if (t.commits.size > 0) crossCommitted++;
      else crossAborted++;
    }
    for (const a of crossAcks) {
      for (const [i, key] of a.keys.entries()) {
        const e = [...applied.get(a.groups[i])!.values()].find((x) => x.key === key && x.value === a.value && x.txnStep === 'commit');
        if (!e || e.writeRevision !== a.revision) throw new Violation(`acknowledged cross-shard txn ${a.value} at ${a.revision}: ${key} is ${e ? `at ${e.writeRevision}` : 'not committed'} in shard group ${a.groups[i]}'s log`);
      }
    }
    // No acknowledged write lost.
    for (const a of acks) {
      const owner = owners.get(a.revision);
      const e = owner === undefined ? undefined : [...applied.get(a.group)!.values()].find((x) => x.revision === a.revision);
      if (!e || e.key !== a.key || e.value !== a.value) throw new Violation(`acknowledged ${a.key}=${a.value} at revision ${a.revision} is not in shard group ${a.group}'s log (${owner ?? 'no entry'})`);
      const sm = members[0].current!.kv.get(a.group)!;
      const r = sm.store.range({ ...rangeOf(Buffer.from(a.key, 'latin1')), revision: a.revision }, sm.appliedRevision());
      if (r.kvs.length !== 1 || r.kvs[0].value.toString('latin1') !== a.value || r.kvs[0].modRevision !== a.revision) throw new Violation(`acknowledged ${a.key}=${a.value} at ${a.revision} is not in the final store at that revision`);
    }
    // Every snapshot equals the state at its revision rebuilt from the final logs; the final one shows every ack.
    const puts = shardGroups.flatMap((g) => [...applied.get(g)!.values()].filter((e) => e.key !== null && e.writeRevision > 0)).sort((a, b) => a.writeRevision - b.writeRevision);
    const modelAt = (revision: number): Snapshot => {
      const kvs = new Map<string, { value: string; modRevision: number }>();
      for (const e of puts) {
        if (e.writeRevision > revision) break;
        kvs.set(e.key!, { value: e.value!, modRevision: e.writeRevision });
      }
      return { revision, requestedAtMs: 0, kvs };
    };
    // Every txn with compares on the state took the branch they give just below its revision C.
    for (const t of stateCompares) {
      const before = modelAt(t.revision - 1);
      const held = t.compares.every((c) => (before.kvs.get(c.key)?.modRevision ?? 0) < c.below);
      if (held !== t.succeeded) throw new Violation(`cross-shard txn ${t.value} at ${t.revision} took its ${t.succeeded ? 'success' : 'failure'} branch; its compares (${t.compares.map((c) => `mod(${c.key}) < ${c.below}: ${before.kvs.get(c.key)?.modRevision ?? 0}`).join(', ')}) give the other at ${t.revision - 1}`);
    }
    const all = finalSnapshot ? [...snapshots, finalSnapshot] : snapshots;
    for (const s of all) {
      const diff = sameSnapshot(s, modelAt(s.revision));
      if (diff) throw new Violation(`snapshot at ${s.revision} differs from the shards' final history: ${diff}`);
    }
    if (finalSnapshot) checkAcksVisible(finalSnapshot);
    // Every acknowledged txn counted the keys of every shard as they were at its revision.
    for (const t of txnAcks) {
      const want = modelAt(t.revision).kvs.size;
      if (t.count !== want) throw new Violation(`txn putting ${t.key} at revision ${t.revision} counted ${t.count} keys over every shard; ${want} exist at that revision`);
    }
    // Every close is true of the final logs: no entry at or below its revision past its index.
    for (const c of closes) {
      for (const [index, e] of applied.get(c.group)!) {
        // (A cross-shard commit carries no revision of its own: it writes at its transaction's C.)
        const at = e.revision || e.writeRevision;
        if (at > 0 && at <= c.closed && index > c.index) {
          throw new Violation(`close broken: shard group ${c.group} closed at ${c.closed} (asked ${c.asked}) through index ${c.index}, but index ${index} holds revision ${at}`);
        }
      }
      for (const [index, revisions] of madeLater.get(c.group)!) {
        const at = Math.min(...revisions);
        if (at <= c.closed && index > c.index) throw new Violation(`close broken: shard group ${c.group} closed at ${c.closed} (asked ${c.asked}) through index ${c.index}, but index ${index} made a commit's writes at ${at}`);
      }
    }
    checkNow();
    for (const m of members) if (m.current) collectPathStats(m.current);
    return {
      seed,
      events: clock.events,
      writesAcked: acks.length,
      txnsAcked: txnAcks.length,
      crossTxnsAcked: crossAcks.length,
      crossTxnsOnStateAcked: stateCompares.length,
      crossTxnsOnStateFailed: stateCompares.filter((t) => !t.succeeded).length,
      crossTxnsCommitted: crossCommitted,
      crossTxnsAborted: crossAborted,
      txnRecoveries,
      coordinatorsCrashed,
      committedRecordsAtHeal: recordsBefore,
      entries,
      snapshots: all.length,
      multiShardSnapshots,
      rereads,
      closes: closes.length,
      closesAfterGrants: pathTotals.closesAfterGrants,
      closesAtFloor: pathTotals.closesAtFloor,
      crashes,
      leaderChanges,
      grantsRetried: pathTotals.grantsRetried,
      oracleRequests: pathTotals.oracleRequests,
      writesProposed: pathTotals.writesProposed,
      resolvesHeld: pathTotals.resolvesHeld,
      resolvesPassedOn: pathTotals.resolvesPassedOn,
      resolvesPassedOnAtLoss: pathTotals.resolvesPassedOnAtLoss,
      writesParked: pathTotals.writesParked,
      pastReadWritesAcked,
      handovers,
      lateTimeouts,
      concurrentPrepares,
      writesDeferred,
      traceHash: (clock.traceHash ^ acks.length) >>> 0,
    };
  } catch (err) {
    if (err instanceof Violation) throw new ShardSimFailure(seed, `${err.message} (at sim ${clock.now - START_MS} ms, event ${clock.events})`);
    throw err;
  } finally {
    for (const m of members) if (m.current) clock.cancelOwner(m.current.owner);
    uninstall();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

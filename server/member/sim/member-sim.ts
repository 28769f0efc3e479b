// The member-level deterministic simulation (issue 12): several real Members (server/member/member.ts)
// with the real KV state machine and the real write path (ApiContext.proposeWrite) in one process,
// over the crash-losing storage double (sim-store.ts), the faulty network (sim-network.ts) and
// simulated time (sim-clock.ts), everything drawn from one seed.
//
// A run: a fault phase (clients put unique keys at random members, retrying on "no leader"; members
// crash abruptly, losing unsynced writes, and restart from what their disk kept; partitions come and
// go; messages are delayed, reordered, dropped and duplicated), then a heal phase (every member up,
// the network clean) that must converge. Checked throughout: at most one leader per term; no two
// members apply different entries at one index; members agree on the MVCC revision after each index;
// no member fails its loop (Member's fatal handler). Checked at the end: every member applied the same
// index with identical MVCC state, durable logs match where their terms match, and every ACKNOWLEDGED
// write is present on every member at the revision it was acknowledged with.
//
// A failure throws MemberSimFailure, whose message starts with `seed=S` and says how to replay it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import pino from 'pino';
import { DeadlineError, Member, NoLeaderError, TooManyRequestsError, type GroupStateMachine, type UnsafeMutation } from '../member.ts';
import { KvStateMachine } from '../../shard/kv-state-machine.ts';
import { ApiContext, DEFAULT_LIMITS } from '../../api/context.ts';
import { Rng } from '../../raft/rng.ts';
import type { ConfChange, ConfState, Entry, NodeId } from '../../raft/types.ts';
import { rangeOf } from '../../mvcc/types.ts';
import { SimClock, SIM_OWNER } from './sim-clock.ts';
import { SimDisk, SimStore, type StoreLatency } from './sim-store.ts';
import { SimNetwork, NO_FAULTS, randomNetworkFaults, type NetworkFaults } from './sim-network.ts';

export const GROUP = 0;

/**
 * A deliberate bug for the mutation check: one of Member's (UnsafeMutation), or 'ignore-proposal-fence':
 * every replica applies a fenced entry at any term, so a write proposed again after its first attempt
 * was known lost can apply twice (proposal-fence.ts).
 */
export type MemberSimMutation = UnsafeMutation | 'ignore-proposal-fence';
const START_MS = 1_700_000_000_000;

export const REPLAY_HINT = 'MEMBER_SIM_SEED=S node_modules/.bin/node node_modules/vitest/vitest.mjs run server/member/sim';

export interface MemberSimOptions {
  members: number;
  /** Simulated ms of the fault phase. */
  faultMs: number;
  /** Simulated ms the heal phase may take to converge. */
  healMs?: number;
  tickMs?: number;
  electionTimeoutTicks?: number;
  snapshotCount?: number;
  /** Mean simulated ms between client requests. */
  requestEveryMs?: number;
  /** Mean simulated ms between fault actions (crash, restart, partition, heal). */
  faultEveryMs?: number;
  /** Fault action weights. */
  crashWeight?: number;
  restartWeight?: number;
  partitionWeight?: number;
  healWeight?: number;
  /** A member stopped (SIGSTOP) for one to four election timeouts, the leader half the time. */
  pauseWeight?: number;
  /** The leader hands its leadership to another live member (Member.transferLeadership). */
  transferWeight?: number;
  /** Probability a crash hits the leader (else a random live member). */
  crashLeaderBias?: number;
  /** Share of client requests that are linearizable reads (the rest are puts). */
  readShare?: number;
  /** Probability a member that was just handed a snapshot crashes within the next few ms. */
  crashDuringInstall?: number;
  network?: Partial<NetworkFaults>;
  latency?: Partial<StoreLatency>;
  /** TEST-ONLY deliberate bug in every member (mutation check). */
  mutation?: MemberSimMutation;
  /** Hand a member no snapshot while it installs one (SimNetwork.holdSnapshotWhileInstalling); default false. */
  holdSnapshotWhileInstalling?: boolean;
  /** Members quiesce idle groups and send member-level liveness (MemberOptions.quiesce); default false. */
  quiesce?: boolean;
  /** MemberOptions.leaseReads (default true, as in production). */
  leaseReads?: boolean;
}

/**
 * Server bugs this simulation found (both fixed in 344bce6; the runs keep exercising them):
 *  - request ids: KvStateMachine numbered its proposals from 1 in every process, so after a restart an
 *    entry proposed by the previous incarnation (committed but applied only after the restart) settled
 *    the NEW request with the same number: a client acknowledged with another write's revision, and an
 *    acknowledged write lost when its own proposal was lost (first version, seeds 2, 5, 8);
 *  - a second snapshot arriving while a member installed a first one (its turn awaiting the install's
 *    writes, between Raft's ready() and advance()) was stepped into Raft at once, and the install of the
 *    first failed in takePoint ("no term for applied index N"): the member loop died (seed 227). The
 *    runs count such arrivals (snapshotsDuringInstall).
 */

export interface MemberSimResult {
  /** Quiescence (with opts.quiesce): times a group quiesced on some member, and was woken by the liveness rule. */
  quiescences: number;
  livenessWakes: number;
  seed: number;
  events: number;
  simMs: number;
  traceHash: number;
  acked: number;
  indeterminate: number;
  /** Writes answered "leader changed" (lost with the leadership that appended them): checked never applied. */
  lostAnswered: number;
  /** Writes proposed again because an attempt was known lost (ApiContext.proposeFenced, proposal-fence.ts). */
  proposalsRetried: number;
  crashes: number;
  /** Crashes that lost batches the member had seen complete (unsynced ones). */
  crashesLosingUnsynced: number;
  /** Crashes that cut a write in flight. */
  crashesDuringWrite: number;
  /** Crashes of a leader. */
  leaderCrashes: number;
  /** Linearizable reads served (and checked). */
  reads: number;
  /** Of the ReadIndex requests, those a leader answered on its lease, without a heartbeat round. */
  readsOnLease: number;
  /** Proposals and read requests passed on, and read answers given on a lease, outside the members' turns (Member.stats). */
  sentAtOnce: number;
  /** Answers to read rounds taken as they arrived, outside the members' turns. */
  readAnswersOnArrival: number;
  pauses: number;
  transfers: number;
  /** Restarts that found a received snapshot durable but not installed (and finished installing it). */
  interruptedInstalls: number;
  /** Snapshots handed to a member while it was installing another. */
  snapshotsDuringInstall: number;
  leaderTerms: number;
  maxApplied: number;
  snapshotsInstalled: number;
  messages: number;
}

export class MemberSimFailure extends Error {
  readonly seed: number;
  constructor(seed: number, message: string, mutation?: MemberSimMutation) {
    const hint = REPLAY_HINT.replace('=S ', `=${seed} `);
    super(`seed=${seed}: ${message}\n  replay: ${mutation ? `MEMBER_SIM_MUTATION=${mutation} ${hint}/member-sim.test.ts` : hint}`);
    this.name = 'MemberSimFailure';
    this.seed = seed;
  }
}

class Violation extends Error {}

function entryKey(e: Entry): string {
  return `${e.term}/${e.type}/${createHash('sha1').update(e.data).digest('hex')}`;
}

/** Cross-member safety state: what was applied at each index, and who led each term. */
class Checker {
  private readonly appliedAt = new Map<number, string>();
  private readonly revisionAt = new Map<number, number>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  maxApplied = 0;
  snapshotsInstalled = 0;

  get terms(): number {
    return this.leaderOfTerm.size;
  }

  onApply(id: NodeId, e: Entry, revision: number): void {
    const key = entryKey(e);
    const seen = this.appliedAt.get(e.index);
    if (seen === undefined) this.appliedAt.set(e.index, key);
    else if (seen !== key) throw new Violation(`state machine safety: member ${id} applied ${key} at index ${e.index}, another member applied ${seen}`);
    this.onRevision(id, e.index, revision);
    if (e.index > this.maxApplied) this.maxApplied = e.index;
  }

  onRevision(id: NodeId, index: number, revision: number): void {
    const r = this.revisionAt.get(index);
    if (r === undefined) this.revisionAt.set(index, revision);
    else if (r !== revision) throw new Violation(`state machines disagree: member ${id} is at revision ${revision} after index ${index}, another member was at ${r}`);
  }

  onLeader(id: NodeId, term: number): void {
    const known = this.leaderOfTerm.get(term);
    if (known === undefined) this.leaderOfTerm.set(term, id);
    else if (known !== id) throw new Violation(`election safety: members ${known} and ${id} both lead term ${term}`);
  }
}

/** The KV state machine as the member sees it, reporting every apply to the checker. */
class CheckedStateMachine implements GroupStateMachine {
  readonly inner: KvStateMachine;
  private readonly id: NodeId;
  private readonly checker: Checker;

  constructor(inner: KvStateMachine, id: NodeId, checker: Checker) {
    this.inner = inner;
    this.id = id;
    this.checker = checker;
  }

  apply(entry: Entry): void {
    this.inner.apply(entry);
    this.checker.onApply(this.id, entry, this.inner.store.currentRevision());
  }

  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }> {
    return this.inner.drainPersistOps();
  }

  applyConfChange(entry: Entry, change: ConfChange, confState: ConfState): void {
    this.inner.applyConfChange(entry, change, confState);
    this.checker.onApply(this.id, entry, this.inner.store.currentRevision());
  }

  restore(records: Array<[Buffer, Buffer]>): void {
    this.inner.restore(records);
    this.checker.snapshotsInstalled++;
  }

  appliedThrough(index: number, term: number): void {
    this.inner.appliedThrough(index, term);
  }

  failAll(err: Error): void {
    this.inner.failAll(err);
  }
}

interface Incarnation {
  owner: string;
  store: SimStore;
  member: Member | null;
  ctx: ApiContext | null;
  sm: KvStateMachine | null;
}

interface SimMember {
  id: NodeId;
  disk: SimDisk;
  generation: number;
  /** Null while crashed. */
  current: Incarnation | null;
  downSinceMs: number;
}

interface AckedWrite {
  key: string;
  value: string;
  revision: number;
  by: NodeId;
}


const DEFAULT_LATENCY: StoreLatency = { syncMinMs: 1, syncMaxMs: 12, writeMaxMs: 1, opsPerMs: 10 };

export async function runMemberSim(seed: number, options: MemberSimOptions): Promise<MemberSimResult> {
  const opts = {
    healMs: 20_000,
    tickMs: 10,
    electionTimeoutTicks: 10,
    snapshotCount: 24,
    requestEveryMs: 6,
    faultEveryMs: 60,
    crashWeight: 3,
    restartWeight: 4,
    partitionWeight: 2,
    healWeight: 2,
    pauseWeight: 2,
    transferWeight: 2,
    crashLeaderBias: 0.5,
    readShare: 0.2,
    crashDuringInstall: 0.4,
    holdSnapshotWhileInstalling: false,
    ...options,
  };
  const rng = new Rng(seed);
  // Independent streams, so that e.g. a storage latency draw does not shift every network draw.
  const netRng = new Rng(rng.nextUint32());
  const storeRng = new Rng(rng.nextUint32());
  const faultRng = new Rng(rng.nextUint32());
  const clientRng = new Rng(rng.nextUint32());
  const netFaults: NetworkFaults = { ...randomNetworkFaults(faultRng), ...options.network };
  const latency: StoreLatency = { ...DEFAULT_LATENCY, ...options.latency };
  const clock = new SimClock(START_MS);
  const net = new SimNetwork(clock, netRng, netFaults);
  net.holdSnapshotWhileInstalling = opts.holdSnapshotWhileInstalling;
  const checker = new Checker();
  const logger = pino({ level: 'silent' });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `member-sim-${seed}-`));
  const ids = Array.from({ length: opts.members }, (_, i) => i + 1);
  const bootstrap = ids.map((id) => ({ id, peerUrls: [`http://member-${id}:2380`], isLearner: false }));
  const members: SimMember[] = ids.map((id) => ({ id, disk: new SimDisk(path.join(root, `m${id}`, 'snap')), generation: 0, current: null, downSinceMs: 0 }));
  const acked: AckedWrite[] = [];
  /** Writes answered etcd's "leader changed": a definite failure, so none may be in any member's state. */
  const lostAnswered: Array<{ key: string; value: string; by: number }> = [];
  const contexts: ApiContext[] = [];
  let indeterminate = 0;
  let crashes = 0;
  let crashesLosingUnsynced = 0;
  let crashesDuringWrite = 0;
  let leaderCrashes = 0;
  let reads = 0;
  let interruptedInstalls = 0;
  let failure: string | null = null;
  const fail = (msg: string): void => {
    failure ??= msg;
  };

  const uninstall = clock.install();
  try {
    /** Boots (or reboots) a member from its disk, as start-server does. */
    const boot = (m: SimMember): void => {
      const owner = `m${m.id}#${++m.generation}`;
      const store = new SimStore(m.disk, clock, storeRng, latency, owner);
      const inc: Incarnation = { owner, store, member: null, ctx: null, sm: null };
      m.current = inc;
      void clock.runAs(owner, async () => {
        try {
          const stored = await store.loadGroup(GROUP);
          if (stored.snapshot && stored.snapshot.index > stored.applied) interruptedInstalls++;
          const loaded = await Member.recoverSnapshot(store, GROUP, m.disk.snapshotDir, stored, logger);
          const sm = new KvStateMachine(m.id, loaded.stateRecords, bootstrap, opts.mutation === 'ignore-proposal-fence' ? { unsafeIgnoreProposalFence: true } : {});
          loaded.stateRecords = [];
          const member = new Member({
            memberId: m.id,
            db: store,
            tickMs: opts.tickMs,
            electionTimeoutTicks: opts.electionTimeoutTicks,
            heartbeatTicks: 1,
            logger,
            snapshotDir: m.disk.snapshotDir,
            snapshotCount: opts.snapshotCount,
            onFatal: (err) => fail(`member ${m.id} loop failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
            ...(opts.mutation !== undefined && opts.mutation !== 'ignore-proposal-fence' ? { unsafeMutation: opts.mutation } : {}),
            ...(opts.quiesce ? { quiesce: true } : {}),
            ...(opts.leaseReads === false ? { leaseReads: false } : {}),
          });
          member.addGroup({ groupId: GROUP, voters: ids, stateMachine: new CheckedStateMachine(sm, m.id, checker), loaded, randomSeed: rng.nextUint32() >>> 1 });
          checker.onRevision(m.id, loaded.applied, sm.store.currentRevision());
          if (m.current !== inc) return; // crashed while booting
          inc.member = member;
          inc.sm = sm;
          inc.ctx = new ApiContext({ member, sm, clusterId: '1', limits: { ...DEFAULT_LIMITS, requestTimeoutMs: 3_000 }, logger, members: () => [] });
          contexts.push(inc.ctx);
          member.setSink(net.sinkFor(m.id, owner));
          net.attach({ id: m.id, owner, member, snapshotDir: m.disk.snapshotDir });
          member.start();
        } catch (err) {
          if (m.current === inc) fail(`member ${m.id} failed to restart: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        }
      });
    };

    let quiescences = 0;
    let livenessWakes = 0;
    let readsOnLease = 0;
    let sentAtOnce = 0;
    let readAnswersOnArrival = 0;
    let pauses = 0;
    let transfers = 0;
    const countQuiescence = (member: Member | null): void => {
      if (!member) return;
      quiescences += member.quiescenceCounts().quiesced;
      livenessWakes += member.stats.livenessWakes;
      readsOnLease += member.readsOnLease();
      sentAtOnce += member.stats.messagesSentAtOnce;
      readAnswersOnArrival += member.stats.readAnswersTakenOnArrival;
    };
    const crash = (m: SimMember): void => {
      const inc = m.current;
      if (!inc) return;
      const inFlight = inc.store.inFlight;
      const wasLeader = inc.member?.role(GROUP) === 'leader';
      countQuiescence(inc.member);
      clock.cancelOwner(inc.owner);
      net.detach(m.id);
      const outcome = inc.store.crash();
      m.current = null;
      m.downSinceMs = clock.now;
      crashes++;
      if (outcome.lostCompletedUnsynced > 0) crashesLosingUnsynced++;
      if (inFlight > 0) crashesDuringWrite++;
      if (wasLeader) leaderCrashes++;
    };

    const live = (): SimMember[] => members.filter((m) => m.current?.member);
    const leaderOf = (): SimMember | undefined => live().find((m) => m.current!.member!.role(GROUP) === 'leader');

    // ---- client workload ----
    let nextRequest = 0;
    let clientsOn = true;
    const putAt = (m: SimMember, key: string, value: string, triesLeft: number, onAck?: () => void): void => {
      const inc = m.current;
      if (!inc?.ctx) {
        retry(key, value, triesLeft, onAck);
        return;
      }
      const ctx = inc.ctx;
      const request = clock.runAs(inc.owner, () =>
        ctx.proposeWrite({ put: { key: Buffer.from(key), value: Buffer.from(value), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } }),
      );
      request.then(
        (outcome) => {
          acked.push({ key, value, revision: outcome.revision, by: m.id });
          onAck?.();
        },
        (err: unknown) => {
          // Refused before it was proposed: safe to send again (elsewhere).
          if (err instanceof NoLeaderError || err instanceof TooManyRequestsError) retry(key, value, triesLeft, onAck);
          else if ((err as { details?: unknown }).details === 'etcdserver: leader changed') lostAnswered.push({ key, value, by: m.id });
          else if (err instanceof DeadlineError) indeterminate++;
          // A write ends applied, refused, lost or at its deadline; anything else would reach its client
          // as an internal error. A killed process answers nothing, so its incarnation's errors are not looked at.
          else if (m.current === inc) fail(`a put of ${key} through member ${m.id} failed with ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}, not an outcome a client can act on`);
        },
      );
    };
    const retry = (key: string, value: string, triesLeft: number, onAck?: () => void): void => {
      if (triesLeft <= 0) {
        indeterminate++;
        return;
      }
      clock.schedule(5 + clientRng.nextInt(30), () => {
        const candidates = live();
        if (candidates.length === 0) return retry(key, value, triesLeft - 1, onAck);
        putAt(candidates[clientRng.nextInt(candidates.length)], key, value, triesLeft - 1, onAck);
      }, SIM_OWNER);
    };
    /**
     * A linearizable read (ReadIndex, as the KV service's Range does): once the barrier passes, the
     * member's state must hold every write acknowledged before the read began.
     */
    const readAt = (m: SimMember): void => {
      const inc = m.current;
      if (!inc?.ctx || !inc.sm) return;
      const ctx = inc.ctx;
      const sm = inc.sm;
      const before = acked.length;
      const sample = before === 0 ? [] : [before - 1, clientRng.nextInt(before), clientRng.nextInt(before)];
      clock.runAs(inc.owner, () => ctx.readBarrier()).then(
        () => {
          reads++;
          for (const i of sample) {
            const w = acked[i];
            const kv = sm.store.range(rangeOf(Buffer.from(w.key))).kvs[0];
            if (!kv || kv.modRevision !== w.revision) {
              fail(`linearizability: a read at member ${m.id} misses ${w.key}=${w.value}@${w.revision}, acknowledged by member ${w.by} before the read began (has ${kv ? `${kv.value.toString()}@${kv.modRevision}` : 'nothing'})`);
            }
          }
        },
        () => {},
      );
    };
    const clientLoop = (): void => {
      if (!clientsOn) return;
      const candidates = live();
      if (candidates.length > 0) {
        const target = candidates[clientRng.nextInt(candidates.length)];
        if (clientRng.chance(opts.readShare)) readAt(target);
        else {
          const n = ++nextRequest;
          putAt(target, `k${n}`, `v${n}/${seed}`, 20);
        }
      }
      clock.schedule(1 + clientRng.nextInt(2 * opts.requestEveryMs), clientLoop, SIM_OWNER);
    };

    // ---- faults ----
    let faultsOn = true;
    const faultLoop = (): void => {
      if (!faultsOn) return;
      const w = [opts.crashWeight, opts.restartWeight, opts.partitionWeight, opts.healWeight, opts.pauseWeight, opts.transferWeight];
      let pick = faultRng.nextInt(w.reduce((a, b) => a + b, 0));
      let action = 0;
      while (pick >= w[action]) pick -= w[action++];
      if (action === 0) {
        const up = live();
        const leader = leaderOf();
        const victim = leader && faultRng.chance(opts.crashLeaderBias) ? leader : up[faultRng.nextInt(Math.max(1, up.length))];
        if (victim && up.length > 0) crash(victim);
      } else if (action === 1) {
        const down = members.filter((m) => m.current === null);
        if (down.length > 0) boot(down[faultRng.nextInt(down.length)]);
      } else if (action === 2) {
        const sides = new Map<NodeId, number>();
        for (const id of ids) sides.set(id, faultRng.nextInt(2));
        net.partition(sides);
      } else if (action === 3) {
        net.heal();
      } else if (action === 4) {
        // SIGSTOP: its timers and deliveries wait; the clock runs on, so it wakes to find time passed.
        const up = live();
        const leader = leaderOf();
        const victim = leader && faultRng.chance(0.5) ? leader : up[faultRng.nextInt(Math.max(1, up.length))];
        if (victim?.current && up.length > 0) {
          const electionTimeoutMs = opts.tickMs * opts.electionTimeoutTicks;
          clock.pauseOwner(victim.current.owner, clock.now + electionTimeoutMs * (1 + faultRng.nextInt(4)) + faultRng.nextInt(electionTimeoutMs));
          pauses++;
        }
      } else {
        const leader = leaderOf();
        const others = live().filter((m) => m !== leader);
        const inc = leader?.current;
        if (inc?.member && others.length > 0) {
          const target = others[faultRng.nextInt(others.length)];
          const member = inc.member;
          transfers++;
          clock.runAs(inc.owner, () => member.transferLeadership(GROUP, target.id, opts.tickMs * opts.electionTimeoutTicks * 2)).catch(() => {});
        }
      }
      clock.schedule(1 + faultRng.nextInt(2 * opts.faultEveryMs), faultLoop, SIM_OWNER);
    };

    // Crashes in the middle of installing a received snapshot (its point durable, its records not yet):
    // the restart must finish the install (Member.recoverSnapshot).
    net.onSnapshotDelivered = (to) => {
      if (!faultsOn || !faultRng.chance(opts.crashDuringInstall)) return;
      const m = members.find((x) => x.id === to)!;
      const inc = m.current;
      clock.schedule(faultRng.nextInt(12), () => {
        if (faultsOn && m.current === inc) crash(m);
      }, SIM_OWNER);
    };

    const checkNow = (): void => {
      if (clock.error) throw new Violation(`an event threw: ${clock.error instanceof Error ? (clock.error.stack ?? clock.error.message) : String(clock.error)}`);
      if (failure) throw new Violation(failure);
      for (const m of members) {
        const member = m.current?.member;
        if (member && member.role(GROUP) === 'leader') checker.onLeader(m.id, member.term(GROUP));
      }
    };

    const runUntil = (endMs: number, done?: () => boolean): Promise<boolean> => clock.runUntil(endMs, checkNow, () => new Violation('nothing scheduled'), done);

    for (const m of members) boot(m);
    clock.schedule(50, clientLoop, SIM_OWNER);
    clock.schedule(100 + faultRng.nextInt(opts.faultEveryMs), faultLoop, SIM_OWNER);
    await runUntil(START_MS + opts.faultMs);

    // ---- heal: everyone up, a clean network; the cluster must converge ----
    faultsOn = false;
    clientsOn = false;
    net.heal();
    net.faults = { ...NO_FAULTS };
    for (const m of members) if (!m.current) boot(m);
    let probeAcked = false;
    let probes = 0;
    const probe = (): void => {
      const up = live();
      if (up.length === 0) {
        clock.schedule(20, probe, SIM_OWNER);
        return;
      }
      const n = ++probes;
      putAt(up[clientRng.nextInt(up.length)], `probe${n}`, `probe${n}/${seed}`, 1000, () => {
        probeAcked = true;
      });
      // A probe lost with a leader change is not retried by putAt (its outcome is unknown): send another.
      clock.schedule(4_000, () => {
        if (!probeAcked) probe();
      }, SIM_OWNER);
    };
    clock.schedule(10, probe, SIM_OWNER);
    const converged = (): boolean => {
      if (!probeAcked || live().length !== members.length) return false;
      const statuses = members.map((m) => m.current!.member!.status(GROUP));
      const leader = statuses.find((s) => s.role === 'leader');
      if (!leader) return false;
      return statuses.every((s) => s.applied === leader.commit && s.commit === leader.commit && s.leaderId === leader.leaderId);
    };
    if (!(await runUntil(clock.now + opts.healMs, converged))) {
      const statuses = members.map((m) => (m.current?.member ? JSON.stringify(m.current.member.status(GROUP)) : `${m.id}: down`));
      throw new Violation(`liveness: no convergence within ${opts.healMs} ms after healing (probe acked: ${probeAcked}); ${statuses.join(' ')}`);
    }
    // Let in-flight writes settle so the durable logs can be compared.
    await runUntil(clock.now + 200);

    // ---- final checks ----
    const sms = members.map((m) => m.current!.sm!);
    const digests = sms.map((sm) => {
      const h = createHash('sha1');
      for (const [key, value] of sm.store.exportRecords()) h.update(key).update(value);
      return h.digest('hex');
    });
    for (let i = 1; i < digests.length; i++) {
      if (digests[i] !== digests[0]) throw new Violation(`state machines differ after convergence: member ${members[i].id} vs member ${members[0].id}`);
    }
    const writtenAt = (sm: KvStateMachine, revision: number): string => {
      const all = sm.store.range(rangeOf(Buffer.from([0]), Buffer.from([0]), { minModRevision: revision, maxModRevision: revision }));
      return all.kvs.map((kv) => `${kv.key.toString()}=${kv.value.toString()}`).join(',') || 'nothing live';
    };
    for (const w of acked) {
      for (const m of members) {
        const kv = m.current!.sm!.store.range(rangeOf(Buffer.from(w.key))).kvs[0];
        if (!kv) throw new Violation(`acknowledged write lost: ${w.key}=${w.value} (acknowledged by member ${w.by} at revision ${w.revision}, where member ${m.id} has ${writtenAt(m.current!.sm!, w.revision)}) is missing on member ${m.id}`);
        if (kv.value.toString() !== w.value || kv.modRevision !== w.revision) {
          throw new Violation(`acknowledged write changed: ${w.key}=${w.value}@${w.revision} (acknowledged by member ${w.by}) is ${kv.value.toString()}@${kv.modRevision} on member ${m.id}, where revision ${w.revision} wrote ${writtenAt(m.current!.sm!, w.revision)}`);
        }
        // Each key is put by one request, proposed again only once an attempt was known lost: applied once.
        if (kv.version !== 1) throw new Violation(`acknowledged write applied more than once: ${w.key}=${w.value} has version ${kv.version} on member ${m.id} (created at ${kv.createRevision}, acknowledged at ${w.revision})`);
      }
    }
    for (const w of lostAnswered) {
      for (const m of members) {
        const kv = m.current!.sm!.store.range(rangeOf(Buffer.from(w.key))).kvs[0];
        if (kv) throw new Violation(`a write answered "leader changed" was applied: ${w.key}=${w.value} (answered by member ${w.by}) is ${kv.value.toString()}@${kv.modRevision} on member ${m.id}`);
      }
    }
    // Log matching over the durable logs: equal (index, term) means equal entries.
    const logs = await Promise.all(members.map((m) => m.current!.store.loadGroup(GROUP)));
    const byIndex = new Map<number, Map<number, string>>();
    for (let i = 0; i < logs.length; i++) {
      for (const e of logs[i].entries) {
        let terms = byIndex.get(e.index);
        if (!terms) byIndex.set(e.index, (terms = new Map()));
        const key = entryKey(e);
        const seen = terms.get(e.term);
        if (seen === undefined) terms.set(e.term, key);
        else if (seen !== key) throw new Violation(`log matching: two members hold different entries at index ${e.index} term ${e.term}`);
      }
    }
    for (const m of members) countQuiescence(m.current?.member ?? null);
    return {
      seed,
      quiescences,
      livenessWakes,
      events: clock.events,
      simMs: clock.now - START_MS,
      traceHash: (clock.traceHash ^ acked.length) >>> 0,
      acked: acked.length,
      lostAnswered: lostAnswered.length,
      proposalsRetried: contexts.reduce((n, c) => n + c.proposalsRetried, 0),
      indeterminate,
      crashes,
      crashesLosingUnsynced,
      crashesDuringWrite,
      leaderCrashes,
      reads,
      readsOnLease,
      sentAtOnce,
      readAnswersOnArrival,
      pauses,
      transfers,
      interruptedInstalls,
      snapshotsDuringInstall: net.stats.snapshotsDuringInstall,
      leaderTerms: checker.terms,
      maxApplied: checker.maxApplied,
      snapshotsInstalled: checker.snapshotsInstalled,
      messages: net.stats.delivered,
    };
  } catch (err) {
    if (err instanceof Violation) throw new MemberSimFailure(seed, `${err.message} (at sim ${clock.now - START_MS} ms, event ${clock.events})`, opts.mutation);
    throw err;
  } finally {
    for (const m of members) if (m.current) clock.cancelOwner(m.current.owner);
    uninstall();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

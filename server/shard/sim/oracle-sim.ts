// The metadata group's revision oracle on real Members, simulated: the member simulation's doubles (the
// crash-losing store, the faulty network, simulated time; server/member/sim) carry 3 or 5 Members hosting
// the metadata group (MetadataStateMachine) with an OracleHost each, and several requesters (OracleClient,
// as shard leaders would use it) ask for revisions concurrently over an in-process transport that delays
// and drops. Members crash (losing unsynced writes; biased to the leader) and restart from their disks,
// are paused (SIGSTOP: everything due for them waits until they wake), partitions come and go (half of
// them cut the leader off alone), leadership moves. Windows of marks range from one batch to
// production's. Everything is drawn from one seed.
//
// Checked as it happens:
//   - every revision is handed out once across all time: grants ordered by term are ordered by revision
//     (a new leader starts above every mark committed before), and no two grants overlap;
//   - a grant carries the term of the member that hands it out, which leads at that term (at most one
//     leader per term);
//   - grants a requester accepts strictly increase;
//   - real-time order, across requesters: a grant asked for after another grant was received (by
//     anyone) lies above it. This is what lets a write acknowledged before another began carry the
//     lower revision; a deposed leader still granting (from a lease it no longer holds, say) breaks it;
//   - the high-water mark on disk covers every revision granted: at every grant and after every crash, a
//     majority of members hold on disk (log entry or state record) a mark ≥ the highest revision granted;
//   - every member applies the same entries and decides bootstraps alike (a second bootstrap with a
//     different shard count is refused by all), and no member loop fails.
// At the end (every member up, a clean network): requesters still obtain revisions, and every member's
// state machine holds the same mark (≥ every revision granted) and the same cluster shape.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { Member } from '../../member/member.ts';
import { Rng } from '../../raft/rng.ts';
import type { NodeId } from '../../raft/types.ts';
import { SimClock, SIM_OWNER } from '../../member/sim/sim-clock.ts';
import { SimDisk, SimStore, type StoreLatency } from '../../member/sim/sim-store.ts';
import { SimNetwork, NO_FAULTS, randomNetworkFaults, type NetworkFaults } from '../../member/sim/sim-network.ts';
import { decodeEntry } from '../../storage/codec.ts';
import { logRange, stateKey } from '../../storage/keys.ts';
import { decodeMetadataEntry, encodeMetadataEntry } from '../metadata-entry-codec.ts';
import { MetadataStateMachine, type MetadataApplied } from '../metadata-state-machine.ts';
import { OracleHost } from '../oracle-host.ts';
import { DEFAULT_WINDOW } from '../../placement/revision-oracle.ts';
import { OracleClient } from '../oracle-client.ts';
import { InProcessOracleTransport } from './in-process-oracle-transport.ts';

export const METADATA_GROUP = 0;
const START_MS = 1_700_000_000_000;
export const ORACLE_REPLAY_HINT = 'ORACLE_SIM_SEED=S node_modules/.bin/node node_modules/vitest/vitest.mjs run server/shard/sim';

export interface OracleSimOptions {
  members: number;
  requesters: number;
  /** Simulated ms of the fault phase. */
  faultMs: number;
  healMs?: number;
  /** Revisions per persisted mark (small, so marks are persisted often and snapshots happen). */
  windowRevisions?: number;
  snapshotCount?: number;
  faultEveryMs?: number;
  crashLeaderBias?: number;
  /** Mutation check: what a broken host would do (the runs must catch it). */
  mutation?: 'grant-without-persist' | 'start-at-mark' | 'establish-without-barrier';
}

export interface OracleSimResult {
  seed: number;
  events: number;
  grants: number;
  revisions: number;
  accepted: number;
  crashes: number;
  leaderCrashes: number;
  /** Members frozen for a while (SIGSTOP). */
  pauses: number;
  leaderTerms: number;
  persists: number;
  batches: number;
  barriers: number;
  staleRefused: number;
  bootstrapsRefused: number;
  coverageChecks: number;
  snapshotsInstalled: number;
  traceHash: number;
}

export class OracleSimFailure extends Error {
  readonly seed: number;
  constructor(seed: number, message: string) {
    super(`seed=${seed}: ${message}\n  replay: ${ORACLE_REPLAY_HINT.replace('=S ', `=${seed} `)}`);
    this.name = 'OracleSimFailure';
    this.seed = seed;
  }
}

class Violation extends Error {}

interface Incarnation {
  owner: string;
  store: SimStore;
  member: Member | null;
  sm: MetadataStateMachine | null;
  host: OracleHost | null;
}

interface SimMember {
  id: NodeId;
  disk: SimDisk;
  generation: number;
  current: Incarnation | null;
}

const LATENCY: StoreLatency = { syncMinMs: 1, syncMaxMs: 12, writeMaxMs: 1, opsPerMs: 10 };

/** The highest high-water mark a member's disk holds (durable log entries and the state record). */
function durableHighWater(disk: SimDisk): number {
  let max = 0;
  const record = disk.durable.get(stateKey(METADATA_GROUP, Buffer.from('h')).toString('latin1'));
  if (record) {
    const e = decodeMetadataEntry(record);
    if (e.kind === 'high-water') max = e.highWater;
  }
  const r = logRange(METADATA_GROUP);
  const gte = r.gte.toString('latin1');
  const lt = r.lt.toString('latin1');
  for (const [key, value] of disk.durable) {
    if (key < gte || key >= lt) continue;
    const entry = decodeEntry(value);
    if (entry.type !== 'normal' || entry.data.length === 0) continue;
    const e = decodeMetadataEntry(entry.data);
    if (e.kind === 'high-water' && e.highWater > max) max = e.highWater;
  }
  return max;
}

export async function runOracleSim(seed: number, options: OracleSimOptions): Promise<OracleSimResult> {
  const rng = new Rng(seed);
  const netRng = new Rng(rng.nextUint32());
  const storeRng = new Rng(rng.nextUint32());
  const faultRng = new Rng(rng.nextUint32());
  const clientRng = new Rng(rng.nextUint32());
  const opts = {
    healMs: 20_000,
    // 0: a mark per batch; small: marks persisted often (and snapshots); the production window: a leader
    // cut off from its quorum could go on granting from its mark alone, were it not for its barriers.
    windowRevisions: faultRng.chance(0.3) ? 0 : faultRng.chance(0.4) ? DEFAULT_WINDOW : faultRng.nextInt(60),
    snapshotCount: 4,
    faultEveryMs: 60,
    crashLeaderBias: 0.5,
    ...options,
  };
  const netFaults: NetworkFaults = randomNetworkFaults(faultRng);
  const oracleDropRate = faultRng.nextFloat() * 0.1;
  const clock = new SimClock(START_MS);
  const net = new SimNetwork(clock, netRng, netFaults);
  const logger = pino({ level: 'silent' });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `oracle-sim-${seed}-`));
  const ids = Array.from({ length: opts.members }, (_, i) => i + 1);
  const majority = Math.floor(opts.members / 2) + 1;
  const bootstrap = ids.map((id) => ({ id, peerUrls: [`http://member-${id}:2380`], isLearner: false }));
  const members: SimMember[] = ids.map((id) => ({ id, disk: new SimDisk(path.join(root, `m${id}`, 'snap')), generation: 0, current: null }));
  let failure: string | null = null;
  const fail = (msg: string): void => {
    failure ??= msg;
  };

  // ---- cross-member state for the checks ----
  const leaderOfTerm = new Map<number, NodeId>();
  /** Per term: lowest first and highest last granted in it. */
  const byTerm = new Map<number, { minFirst: number; maxLast: number }>();
  const allGrants: Array<{ first: number; last: number; term: number; by: NodeId }> = [];
  let maxGranted = 0;
  let coverageChecks = 0;
  const appliedAt = new Map<number, string>();
  let bootstrapsRefused = 0;
  let snapshotsInstalled = 0;
  let crashes = 0;
  let leaderCrashes = 0;
  let accepted = 0;
  let pauses = 0;
  let staleRefused = 0;
  const hostTotals = { persists: 0, batches: 0, barriers: 0 };

  const coverage = (): number => {
    coverageChecks++;
    const marks = members.map((m) => durableHighWater(m.disk)).sort((a, b) => b - a);
    return marks[majority - 1];
  };
  const checkCoverage = (when: string): void => {
    const covered = coverage();
    if (covered < maxGranted) fail(`durability: ${when}, a majority's disks cover revisions up to ${covered} only, but ${maxGranted} was granted`);
  };

  const onGrant = (by: SimMember, inc: Incarnation, g: { requester: string; first: number; last: number; term: number }): void => {
    const member = inc.member!;
    const term = member.term(METADATA_GROUP);
    if (g.term !== term || member.role(METADATA_GROUP) !== 'leader') fail(`stale grant: member ${by.id} granted ${g.first}..${g.last} with term ${g.term} while at term ${term} as ${member.role(METADATA_GROUP)}`);
    const leader = leaderOfTerm.get(g.term);
    if (leader !== undefined && leader !== by.id) fail(`grant at term ${g.term} by member ${by.id}, but member ${leader} led that term`);
    if (g.last < g.first) fail(`empty grant ${g.first}..${g.last}`);
    for (const [t, span] of byTerm) {
      if (t < g.term && span.maxLast >= g.first) fail(`repeat: term ${g.term} granted ${g.first}..${g.last}, but term ${t} granted up to ${span.maxLast}`);
      if (t > g.term && span.minFirst <= g.last) fail(`repeat: term ${g.term} granted ${g.first}..${g.last} after term ${t} granted from ${span.minFirst}`);
      if (t === g.term && span.maxLast >= g.first) fail(`repeat within term ${t}: ${g.first}..${g.last} after ${span.maxLast}`);
    }
    const span = byTerm.get(g.term) ?? { minFirst: g.first, maxLast: g.last };
    span.minFirst = Math.min(span.minFirst, g.first);
    span.maxLast = Math.max(span.maxLast, g.last);
    byTerm.set(g.term, span);
    allGrants.push({ first: g.first, last: g.last, term: g.term, by: by.id });
    if (g.last > maxGranted) {
      maxGranted = g.last;
      checkCoverage(`at a grant of ${g.first}..${g.last} by member ${by.id} (term ${g.term})`);
    }
  };

  // The clock's install() covers performance.now too (the member's heartbeat-during-a-slow-write rule
  // reads it): on real time a loaded machine would change the run and a seed would no longer replay.
  const uninstall = clock.install();
  try {
    const boot = (m: SimMember): void => {
      const owner = `m${m.id}#${++m.generation}`;
      const store = new SimStore(m.disk, clock, storeRng, LATENCY, owner);
      const inc: Incarnation = { owner, store, member: null, sm: null, host: null };
      m.current = inc;
      void clock.runAs(owner, async () => {
        try {
          const stored = await store.loadGroup(METADATA_GROUP);
          const loaded = await Member.recoverSnapshot(store, METADATA_GROUP, m.disk.snapshotDir, stored, logger);
          const sm = new MetadataStateMachine(loaded.stateRecords, bootstrap);
          loaded.stateRecords = [];
          const member = new Member({
            memberId: m.id,
            db: store,
            tickMs: 10,
            electionTimeoutTicks: 10,
            heartbeatTicks: 1,
            logger,
            snapshotDir: m.disk.snapshotDir,
            snapshotCount: opts.snapshotCount,
            onFatal: (err) => fail(`member ${m.id} loop failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
          });
          sm.onApplied((a: MetadataApplied) => {
            if (a.kind === 'bootstrap-refused') bootstrapsRefused++;
            const what = a.kind === 'high-water' ? `hw:${a.highWater}@${a.proposedTerm}` : a.kind === 'bootstrap' || a.kind === 'bootstrap-refused' ? `${a.kind}:${a.shape.shardCount}/${a.shape.slotMapVersion}` : JSON.stringify(a);
            const seen = appliedAt.get(a.index);
            if (seen === undefined) appliedAt.set(a.index, what);
            else if (seen !== what) fail(`members disagree at index ${a.index}: member ${m.id} applied ${what}, another ${seen}`);
          });
          const origRestore = sm.restore.bind(sm);
          sm.restore = (records) => {
            snapshotsInstalled++;
            origRestore(records);
          };
          member.addGroup({ groupId: METADATA_GROUP, voters: ids, stateMachine: sm, loaded, randomSeed: rng.nextUint32() >>> 1 });
          if (m.current !== inc) return;
          const host = new OracleHost(member, sm, {
            groupId: METADATA_GROUP,
            windowRevisions: opts.windowRevisions,
            onGrant: (g) => onGrant(m, inc, g),
            ...(opts.mutation ? { unsafeMutation: opts.mutation } : {}),
          });
          inc.member = member;
          inc.sm = sm;
          inc.host = host;
          member.setSink(net.sinkFor(m.id, owner));
          net.attach({ id: m.id, owner, member, snapshotDir: m.disk.snapshotDir });
          member.start();
        } catch (err) {
          if (m.current === inc) fail(`member ${m.id} failed to restart: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        }
      });
    };

    const collectHostStats = (inc: Incarnation): void => {
      if (!inc.host) return;
      hostTotals.persists += inc.host.stats.persists;
      hostTotals.batches += inc.host.stats.batches;
      hostTotals.barriers += inc.host.stats.barriers;
    };

    const crash = (m: SimMember): void => {
      const inc = m.current;
      if (!inc) return;
      if (inc.member?.role(METADATA_GROUP) === 'leader') leaderCrashes++;
      collectHostStats(inc);
      clock.cancelOwner(inc.owner);
      net.detach(m.id);
      inc.store.crash();
      m.current = null;
      crashes++;
      checkCoverage(`after member ${m.id} crashed`);
    };

    const live = (): SimMember[] => members.filter((m) => m.current?.member);
    const leaderOf = (): SimMember | undefined => live().find((m) => m.current!.member!.role(METADATA_GROUP) === 'leader');

    // ---- the bootstrap entry, and a later one with a different shard count that every member must refuse ----
    const proposeBootstrap = (shardCount: number, then: () => void): void => {
      const leader = leaderOf();
      const inc = leader?.current;
      if (!inc?.member) {
        clock.schedule(20, () => proposeBootstrap(shardCount, then), SIM_OWNER);
        return;
      }
      try {
        clock.runAs(inc.owner, () => inc.member!.propose(METADATA_GROUP, encodeMetadataEntry({ kind: 'bootstrap', shardCount, slotMapVersion: 1 })));
        then();
      } catch {
        clock.schedule(20, () => proposeBootstrap(shardCount, then), SIM_OWNER);
      }
    };

    // ---- requesters ----
    let clientsOn = true;
    const acceptedBy = new Map<string, { last: number; term: number }>();
    /** Every accepted grant with when it was asked for and when it arrived (simulated ms). */
    const timedGrants: Array<{ askedAtMs: number; receivedAtMs: number; first: number; last: number; requester: string }> = [];
    const clients = Array.from({ length: opts.requesters }, (_, i) => {
      const home = ids[i % ids.length];
      const requester = `shard-${i}`;
      const transport = new InProcessOracleTransport({
        from: home,
        server: (to) => members.find((m) => m.id === to)?.current?.host ?? null,
        delayMs: () => clientRng.nextInt(netFaults.maxDelayMs + 1),
        drop: () => clientRng.chance(oracleDropRate),
        connected: (a, b) => net.connected(a, b),
        runAs: (to, fn) => clock.runAs(members.find((m) => m.id === to)!.current!.owner, fn),
      });
      const client = new OracleClient({ requester, transport, members: () => ids, attemptTimeoutMs: 150, random: () => clientRng.nextFloat() });
      return { requester, client };
    });
    const ask = (c: (typeof clients)[number], parallel: number): void => {
      for (let p = 0; p < parallel; p++) {
        const count = 1 + clientRng.nextInt(20);
        const askedAtMs = clock.now;
        c.client.next(count, clock.now + 200 + clientRng.nextInt(800)).then(
          (g) => {
            timedGrants.push({ askedAtMs, receivedAtMs: clock.now, first: g.first, last: g.last, requester: c.requester });
            if (g.last - g.first + 1 !== count) fail(`${c.requester} asked ${count} revisions and got ${g.first}..${g.last}`);
            const prev = acceptedBy.get(c.requester);
            if (prev && (g.first <= prev.last || g.term < prev.term)) fail(`${c.requester}: grant ${g.first}..${g.last}@${g.term} after ${prev.last}@${prev.term}`);
            acceptedBy.set(c.requester, { last: g.last, term: g.term });
            accepted++;
          },
          () => {},
        );
      }
    };
    const clientLoop = (c: (typeof clients)[number]): void => {
      if (!clientsOn) return;
      ask(c, clientRng.chance(0.3) ? 2 : 1); // two callers in one turn share one request
      clock.schedule(1 + clientRng.nextInt(12), () => clientLoop(c), SIM_OWNER);
    };

    // ---- faults ----
    let faultsOn = true;
    const faultLoop = (): void => {
      if (!faultsOn) return;
      const action = faultRng.nextInt(13); // crash 3, restart 4, partition 2, heal 2, pause 2
      if (action >= 11) {
        // SIGSTOP (or a stalled loop): from half an election timeout to three, mostly the leader's.
        const up = live();
        const leader = leaderOf();
        const victim = leader && faultRng.chance(opts.crashLeaderBias) ? leader : up[faultRng.nextInt(Math.max(1, up.length))];
        if (victim?.current) {
          clock.pauseOwner(victim.current.owner, clock.now + 50 + faultRng.nextInt(250));
          pauses++;
        }
      } else if (action < 3) {
        const up = live();
        const leader = leaderOf();
        const victim = leader && faultRng.chance(opts.crashLeaderBias) ? leader : up[faultRng.nextInt(Math.max(1, up.length))];
        if (victim) crash(victim);
      } else if (action < 7) {
        const down = members.filter((m) => m.current === null);
        if (down.length > 0) boot(down[faultRng.nextInt(down.length)]);
      } else if (action < 9) {
        // Random sides, or the leader cut off alone (it may still serve the requesters on its side).
        const sides = new Map<NodeId, number>();
        const leader = leaderOf();
        const isolate = leader !== undefined && faultRng.chance(0.5);
        for (const id of ids) sides.set(id, isolate ? (id === leader.id ? 1 : 0) : faultRng.nextInt(2));
        net.partition(sides);
      } else net.heal();
      clock.schedule(1 + faultRng.nextInt(2 * opts.faultEveryMs), faultLoop, SIM_OWNER);
    };

    const checkNow = (): void => {
      if (clock.error) throw new Violation(`an event threw: ${clock.error instanceof Error ? (clock.error.stack ?? clock.error.message) : String(clock.error)}`);
      if (failure) throw new Violation(failure);
      for (const m of members) {
        const member = m.current?.member;
        if (!member || member.role(METADATA_GROUP) !== 'leader') continue;
        const term = member.term(METADATA_GROUP);
        const known = leaderOfTerm.get(term);
        if (known === undefined) leaderOfTerm.set(term, m.id);
        else if (known !== m.id) throw new Violation(`election safety: members ${known} and ${m.id} both lead term ${term}`);
      }
    };
    const runUntil = (endMs: number, done?: () => boolean): Promise<boolean> => clock.runUntil(endMs, checkNow, () => new Violation('nothing scheduled'), done);

    for (const m of members) boot(m);
    // 16 shards, re-proposed until some member applied it (a proposal may die with its leader); then 4,
    // which every member must refuse.
    const bootstrapped = (): boolean => members.some((m) => m.current?.sm?.shape != null);
    const bootstrapUntilApplied = (): void => {
      if (bootstrapped()) {
        clock.schedule(100 + faultRng.nextInt(500), () => proposeBootstrap(4, () => {}), SIM_OWNER);
        return;
      }
      proposeBootstrap(16, () => clock.schedule(150, bootstrapUntilApplied, SIM_OWNER));
    };
    clock.schedule(30, bootstrapUntilApplied, SIM_OWNER);
    for (const c of clients) clock.schedule(50 + clientRng.nextInt(50), () => clientLoop(c), SIM_OWNER);
    clock.schedule(100 + faultRng.nextInt(opts.faultEveryMs), faultLoop, SIM_OWNER);
    await runUntil(START_MS + opts.faultMs);

    // ---- heal: everyone up, a clean network; every requester must obtain revisions again ----
    faultsOn = false;
    clientsOn = false;
    net.heal();
    net.faults = { ...NO_FAULTS };
    for (const m of members) if (!m.current) boot(m);
    const afterHeal = new Set<string>();
    const probe = (c: (typeof clients)[number]): void => {
      c.client.next(1, clock.now + 2_000).then(
        (g) => {
          const prev = acceptedBy.get(c.requester);
          if (prev && (g.first <= prev.last || g.term < prev.term)) fail(`${c.requester}: grant ${g.first}..${g.last}@${g.term} after ${prev.last}@${prev.term}`);
          acceptedBy.set(c.requester, { last: g.last, term: g.term });
          accepted++;
          afterHeal.add(c.requester);
        },
        () => clock.schedule(10, () => probe(c), SIM_OWNER),
      );
    };
    for (const c of clients) probe(c);
    const converged = (): boolean => {
      if (afterHeal.size !== clients.length || live().length !== members.length) return false;
      const statuses = members.map((m) => m.current!.member!.status(METADATA_GROUP));
      const leader = statuses.find((s) => s.role === 'leader');
      return leader !== undefined && statuses.every((s) => s.applied === leader.commit && s.leaderId === leader.leaderId);
    };
    if (!(await runUntil(clock.now + opts.healMs, converged))) {
      const statuses = members.map((m) => (m.current?.member ? JSON.stringify(m.current.member.status(METADATA_GROUP)) : `${m.id}: down`));
      throw new Violation(`liveness: requesters ${[...afterHeal].join(',')} of ${clients.length} obtained revisions within ${opts.healMs} ms of healing; ${statuses.join(' ')}`);
    }
    await runUntil(clock.now + 100);
    checkNow();

    // ---- final checks ----
    checkRealTimeOrder(timedGrants);
    const sorted = [...allGrants].sort((a, b) => a.first - b.first);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i].first <= sorted[i - 1].last) throw new Violation(`repeat: ${JSON.stringify(sorted[i - 1])} and ${JSON.stringify(sorted[i])} overlap`);
    }
    const sms = members.map((m) => m.current!.sm!);
    for (const [i, sm] of sms.entries()) {
      if (sm.highWater !== sms[0].highWater) throw new Violation(`members disagree on the mark: member ${members[i].id} has ${sm.highWater}, member ${members[0].id} ${sms[0].highWater}`);
      if (sm.highWater < maxGranted) throw new Violation(`member ${members[i].id}'s mark ${sm.highWater} is below the highest revision granted, ${maxGranted}`);
      if (JSON.stringify(sm.shape) !== JSON.stringify({ shardCount: 16, slotMapVersion: 1 })) throw new Violation(`member ${members[i].id} has cluster shape ${JSON.stringify(sm.shape)}, not the bootstrapped 16 shards`);
      if (sm.members().length !== ids.length) throw new Violation(`member ${members[i].id} knows ${sm.members().length} members`);
    }
    checkCoverage('after healing');
    if (failure) throw new Violation(failure);
    for (const m of members) if (m.current) collectHostStats(m.current);
    for (const c of clients) staleRefused += c.client.stats.staleGrantsRefused;
    return {
      seed,
      events: clock.events,
      grants: allGrants.length,
      revisions: allGrants.reduce((n, g) => n + g.last - g.first + 1, 0),
      accepted,
      crashes,
      leaderCrashes,
      pauses,
      leaderTerms: leaderOfTerm.size,
      persists: hostTotals.persists,
      batches: hostTotals.batches,
      barriers: hostTotals.barriers,
      staleRefused,
      bootstrapsRefused,
      coverageChecks,
      snapshotsInstalled,
      traceHash: (clock.traceHash ^ allGrants.length) >>> 0,
    };
  } catch (err) {
    if (err instanceof Violation) throw new OracleSimFailure(seed, `${err.message} (at sim ${clock.now - START_MS} ms, event ${clock.events})`);
    throw err;
  } finally {
    for (const m of members) if (m.current) clock.cancelOwner(m.current.owner);
    uninstall();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/**
 * Real-time order of accepted grants: each grant lies above every grant received strictly before it was
 * asked for. Sorted by arrival, swept in order of asking, with the highest revision received so far.
 */
export function checkRealTimeOrder(grants: ReadonlyArray<{ askedAtMs: number; receivedAtMs: number; first: number; last: number; requester: string }>): void {
  const byArrival = [...grants].sort((a, b) => a.receivedAtMs - b.receivedAtMs);
  const byAsking = [...grants].sort((a, b) => a.askedAtMs - b.askedAtMs);
  let arrived = 0;
  let highest: (typeof grants)[number] | null = null;
  for (const g of byAsking) {
    while (arrived < byArrival.length && byArrival[arrived].receivedAtMs < g.askedAtMs) {
      if (highest === null || byArrival[arrived].last > highest.last) highest = byArrival[arrived];
      arrived++;
    }
    if (highest !== null && g.first <= highest.last) {
      throw new Violation(
        `real-time order: ${g.requester} asked at ${g.askedAtMs} ms and got ${g.first}..${g.last}, below ${highest.first}..${highest.last} that ${highest.requester} received at ${highest.receivedAtMs} ms`,
      );
    }
  }
}

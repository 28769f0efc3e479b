// A seeded simulation of shard replicas moving between members at runtime, on the member simulation's
// doubles (sim-clock.ts, sim-store.ts, sim-network.ts): four real Members, one shard group with three
// replicas, and a mover that keeps moving one replica to the member without one — host it there
// (Member.addGroup at runtime), add it as a learner, wait for it to catch up (a snapshot: the log is
// compacted), promote it, remove the source replica, and drop it on its member (Member.removeGroup).
// With four members and three replicas the member a replica moves to is always the one a replica last
// left: every move brings a replica back to a member under the same Raft id, starting from the
// tombstone its predecessor left. Members crash (also in the middle of a removal) and restart; a
// restarted member hosts the group if the mover's record says so, and drops what it stores otherwise
// (MemberStore.storedGroupIds / dropGroup), as a hosting layer does at start.
//
// Checked throughout: at most one leader per term, no two replicas apply different entries at one index,
// no member loop fails. At the end (faults off, every member up, the last move finished): every replica
// holds every acknowledged write at its index, and no member that does not host the group stores any key
// of it.
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import pino from 'pino';
import { Member } from '../member.ts';
import { Rng } from '../../raft/rng.ts';
import type { ConfChange, ConfState, Entry, NodeId } from '../../raft/types.ts';
import { SimClock, SIM_OWNER } from './sim-clock.ts';
import { SimDisk, SimStore, type StoreLatency } from './sim-store.ts';
import { SimNetwork, NO_FAULTS, randomNetworkFaults } from './sim-network.ts';
import { RecordingStateMachine } from '../runtime-groups-harness.ts';

const GROUP = 2;
const BOOTSTRAP_VOTERS = [1, 2, 3];
const START_MS = 1_700_000_000_000;
const LATENCY: StoreLatency = { syncMinMs: 1, syncMaxMs: 8, writeMaxMs: 1, opsPerMs: 20 };

export interface MoveSimOptions {
  faultMs: number;
  healMs?: number;
  /** Mean simulated ms between crashes or restarts. */
  faultEveryMs?: number;
  /** Probability a member is crashed just as its replica's removal starts. */
  crashDuringRemoval?: number;
}

export interface MoveSimResult {
  seed: number;
  movesDone: number;
  acked: number;
  crashes: number;
  crashesDuringRemoval: number;
  dropsAtStart: number;
  leaderTerms: number;
  snapshotsInstalled: number;
}

export class MoveSimFailure extends Error {
  constructor(seed: number, message: string) {
    super(`seed=${seed}: ${message}\n  replay: MOVE_SIM_SEED=${seed} node_modules/.bin/node node_modules/vitest/vitest.mjs run server/member/sim/move-sim.test.ts`);
    this.name = 'MoveSimFailure';
  }
}

class Violation extends Error {}

interface SimMember {
  id: NodeId;
  disk: SimDisk;
  generation: number;
  current: { owner: string; store: SimStore; member: Member | null; sm: RecordingStateMachine | null } | null;
}

function entryKey(e: Entry): string {
  return `${e.term}/${e.type}/${createHash('sha1').update(e.data).digest('hex')}`;
}

export async function runMoveSim(seed: number, options: MoveSimOptions): Promise<MoveSimResult> {
  const opts = { healMs: 20_000, faultEveryMs: 150, crashDuringRemoval: 0.3, ...options };
  const rng = new Rng(seed);
  const netRng = new Rng(rng.nextUint32());
  const storeRng = new Rng(rng.nextUint32());
  const faultRng = new Rng(rng.nextUint32());
  const moveRng = new Rng(rng.nextUint32());
  const clock = new SimClock(START_MS);
  const net = new SimNetwork(clock, netRng, randomNetworkFaults(faultRng, 0.05));
  const logger = pino({ level: 'silent' });
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `move-sim-${seed}-`));
  const ids = [1, 2, 3, 4];
  const members: SimMember[] = ids.map((id) => ({ id, disk: new SimDisk(path.join(root, `m${id}`, 'snap')), generation: 0, current: null }));
  /** The mover's record (the placement): members that host the group. */
  const hosted = new Set<NodeId>(BOOTSTRAP_VOTERS);
  const appliedAt = new Map<number, string>();
  /** Who led each term: member and replica (a replica returning to a member is another replica). */
  const leaderOfTerm = new Map<number, { id: NodeId; replica: RecordingStateMachine; owner: string }>();
  const acked: Array<{ key: string; index: number }> = [];
  const result: MoveSimResult = { seed, movesDone: 0, acked: 0, crashes: 0, crashesDuringRemoval: 0, dropsAtStart: 0, leaderTerms: 0, snapshotsInstalled: 0 };
  let failure: string | null = null;
  const fail = (msg: string): void => {
    failure ??= msg;
  };
  const traceOn = process.env.MOVE_SIM_TRACE === '1';
  const trace = (what: string): void => {
    if (traceOn) console.log(`${clock.now - START_MS} ${what}`);
  };
  const errText = (err: unknown): string => (err instanceof Error ? (err.stack ?? err.message) : String(err));

  /** The replica's state machine, reporting every apply to the cross-member check. */
  const checkedSm = (id: NodeId, records: Array<[Buffer, Buffer]>): RecordingStateMachine => {
    const sm = new RecordingStateMachine(records);
    const apply = sm.apply.bind(sm);
    sm.apply = (entry: Entry): void => {
      const key = entryKey(entry);
      const seen = appliedAt.get(entry.index);
      if (seen === undefined) appliedAt.set(entry.index, key);
      else if (seen !== key) fail(`state machine safety: member ${id} applied ${key} at index ${entry.index}, another replica applied ${seen}`);
      apply(entry);
    };
    return sm;
  };

  /**
   * Every replica, a new one included, starts from the group's BOOTSTRAP voters (server/raft/README.md):
   * a replica that catches up from the log's start replays every membership change from there.
   */
  const hostOn = async (m: SimMember, inc: NonNullable<SimMember['current']>): Promise<void> => {
    const loaded = await Member.recoverSnapshot(inc.store, GROUP, m.disk.snapshotDir, await inc.store.loadGroup(GROUP), logger);
    if (m.current !== inc || !inc.member || inc.member.groupIds().includes(GROUP)) return;
    const sm = checkedSm(m.id, loaded.stateRecords);
    loaded.stateRecords = [];
    inc.member.addGroup({ groupId: GROUP, voters: BOOTSTRAP_VOTERS, stateMachine: sm, loaded, randomSeed: moveRng.nextUint32() >>> 1 });
    trace(`${inc.owner}: hosts the group: hs ${JSON.stringify(loaded.hardState)} applied ${loaded.applied} entries ${loaded.entries.length} snap ${loaded.snapshot?.index ?? '-'}`);
    inc.sm = sm;
  };

  const uninstall = clock.install();
  try {
    const boot = (m: SimMember): void => {
      const owner = `m${m.id}#${++m.generation}`;
      const store = new SimStore(m.disk, clock, storeRng, LATENCY, owner);
      const inc: NonNullable<SimMember['current']> = { owner, store, member: null, sm: null };
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
            snapshotCount: 16,
            onFatal: (err) => fail(`member ${m.id} loop failed: ${errText(err)}`),
          });
          inc.member = member;
          member.onLeaderChange((g, leaderId, term) => trace(`${owner}: leader ${leaderId} term ${term} (last ${member.groupIds().includes(g) ? member.status(g).lastIndex : '-'})`));
          const stored = (await store.storedGroupIds()).includes(GROUP);
          if (hosted.has(m.id)) await hostOn(m, inc);
          else if (stored) {
            // Placed elsewhere meanwhile (or a removal a crash cut short): drop it, as a start does.
            await store.dropGroup(GROUP);
            trace(`${owner}: dropped the group at start`);
            result.dropsAtStart++;
          }
          if (m.current !== inc) return;
          member.setSink(net.sinkFor(m.id, owner));
          net.attach({ id: m.id, owner, member, snapshotDir: m.disk.snapshotDir });
          member.start();
        } catch (err) {
          if (m.current === inc) fail(`member ${m.id} failed to start: ${errText(err)}`);
        }
      });
    };
    const crash = (m: SimMember): void => {
      const inc = m.current;
      if (!inc) return;
      clock.cancelOwner(inc.owner);
      net.detach(m.id);
      inc.store.crash();
      trace(`${inc.owner}: crash`);
      m.current = null;
      result.crashes++;
    };
    const running = (m: SimMember): Member | null => (m.current?.member && net.isAlive(m.id, m.current.owner) ? m.current.member : null);
    const replicaOf = (m: SimMember): Member | null => {
      const member = running(m);
      return member && member.groupIds().includes(GROUP) ? member : null;
    };
    const leader = (): SimMember | undefined =>
      members.find((m) => {
        const r = replicaOf(m);
        return r !== null && r.role(GROUP) === 'leader' && r.leaderId(GROUP) === m.id;
      });
    const sleep = (ms: number): Promise<void> => clock.sleep(ms, SIM_OWNER);
    const until = async (cond: () => boolean, timeoutMs: number): Promise<boolean> => {
      const end = clock.now + timeoutMs;
      while (!cond()) {
        if (clock.now >= end) return false;
        await sleep(5);
      }
      return true;
    };
    const leaderConf = (): ConfState | null => {
      const l = leader();
      return l ? replicaOf(l)!.confState(GROUP) : null;
    };

    // ---- client writes: proposed at the leader, acknowledged when the leader applied them ----
    let writes = 0;
    let clientsOn = true;
    const clientLoop = (): void => {
      if (!clientsOn) return;
      const l = leader();
      if (l) {
        const key = `k${++writes}`;
        const sm = l.current!.sm!;
        const member = replicaOf(l)!;
        sm.whenApplied(key).then(
          () => acked.push({ key, index: Number(sm.records.get(key)) }),
          () => {},
        );
        clock.runAs(l.current!.owner, () => {
          try {
            member.propose(GROUP, Buffer.from(key));
          } catch {
            // no leader after all: not acknowledged
          }
        });
      }
      clock.schedule(1 + moveRng.nextInt(8), clientLoop, SIM_OWNER);
    };

    // ---- the mover ----
    let moving = true;
    let moveInProgress = false;
    /** What the mover waits for now (for a liveness failure's message). */
    let stage = 'idle';
    /** Proposes `change` at the leader until the leader's applied membership satisfies `done`. */
    const changeUntil = async (change: ConfChange, done: (cs: ConfState) => boolean): Promise<void> => {
      for (;;) {
        const cs = leaderConf();
        if (cs && done(cs)) return;
        const l = leader();
        if (l) {
          clock.runAs(l.current!.owner, () => {
            try {
              replicaOf(l)!.proposeConfChange(GROUP, change);
            } catch {
              // an earlier change applying, or leadership moving: try again
            }
          });
        }
        await until(() => {
          const now = leaderConf();
          return now !== null && done(now);
        }, 200);
      }
    };
    const moveOnce = async (): Promise<void> => {
      const target = ids.find((id) => !hosted.has(id))!;
      stage = `waiting for a leader to move to ${target}`;
      let cs: ConfState | null = null;
      await until(() => (cs = leaderConf()) !== null, 1_000_000);
      const voters = cs!.voters.filter((v) => v !== target);
      const source = voters[moveRng.nextInt(voters.length)];
      hosted.add(target);
      const t = members.find((m) => m.id === target)!;
      // Hosted now if it runs; a down target hosts it when it boots (the record says so). A boot under
      // way read the record already: wait for it, so the two never act on the group at once.
      await until(() => t.current === null || running(t) !== null, 1_000_000);
      if (t.current?.member && !t.current.member.groupIds().includes(GROUP)) {
        const inc = t.current;
        await clock.runAs(inc.owner, () => hostOn(t, inc));
      }
      stage = `adding learner ${target} (source ${source})`;
      trace(stage);
      await changeUntil({ type: 'addLearner', nodeId: target }, (c) => c.learners.includes(target) || c.voters.includes(target));
      stage = `waiting for learner ${target} to catch up`;
      await until(() => {
        const l = leader();
        const c = leaderConf();
        return c !== null && (c.voters.includes(target) || (l !== undefined && replicaOf(l)!.learnerReady(GROUP, target)));
      }, 1_000_000);
      stage = `promoting ${target}`;
      trace(stage);
      await changeUntil({ type: 'promoteLearner', nodeId: target }, (c) => c.voters.includes(target));
      stage = `removing ${source}`;
      trace(stage);
      await changeUntil({ type: 'removeNode', nodeId: source }, (c) => !c.voters.includes(source) && !c.learners.includes(source));
      hosted.delete(source);
      const s = members.find((m) => m.id === source)!;
      stage = `dropping ${source}`;
      await until(() => s.current === null || running(s) !== null, 1_000_000);
      const member = replicaOf(s);
      if (member) {
        const inc = s.current!;
        trace(`${inc.owner}: removeGroup (term ${member.term(GROUP)}, ${JSON.stringify(member.status(GROUP))})`);
        const removal = clock.runAs(inc.owner, () => member.removeGroup(GROUP));
        if (moving && faultRng.chance(opts.crashDuringRemoval)) {
          clock.schedule(faultRng.nextInt(6), () => {
            if (faultsOn && s.current === inc) {
              result.crashesDuringRemoval++;
              crash(s);
            }
          }, SIM_OWNER);
        }
        let over = false;
        void removal.then(
          () => (over = true),
          () => (over = true),
        );
        // A crash ends it (a dead store never answers); the restart finishes the drop.
        await until(() => over || s.current !== inc, 1_000_000);
      }
      result.movesDone++;
    };
    const moverLoop = async (): Promise<void> => {
      while (moving) {
        moveInProgress = true;
        await moveOnce();
        moveInProgress = false;
        await sleep(moveRng.nextInt(40));
      }
    };

    // ---- faults: crashes and restarts ----
    let faultsOn = true;
    const faultLoop = (): void => {
      if (!faultsOn) return;
      const up = members.filter((m) => m.current !== null);
      const down = members.filter((m) => m.current === null);
      // At most one member down at a time: a move goes through with any three of four up.
      if (down.length > 0) boot(down[faultRng.nextInt(down.length)]);
      else crash(up[faultRng.nextInt(up.length)]);
      clock.schedule(1 + faultRng.nextInt(2 * opts.faultEveryMs), faultLoop, SIM_OWNER);
    };

    const checkNow = (): void => {
      if (clock.error) throw new Violation(`an event threw: ${errText(clock.error)}`);
      if (failure) throw new Violation(failure);
      for (const m of members) {
        const r = replicaOf(m);
        if (!r || r.role(GROUP) !== 'leader') continue;
        const term = r.term(GROUP);
        const known = leaderOfTerm.get(term);
        const replica = m.current!.sm!;
        if (known === undefined) leaderOfTerm.set(term, { id: m.id, replica, owner: m.current!.owner });
        else if (known.id !== m.id) throw new Violation(`election safety: members ${known.id} and ${m.id} both lead term ${term}`);
        else if (known.replica !== replica) throw new Violation(`election safety: two replicas on member ${m.id} (${known.owner}, then ${m.current!.owner}) both lead term ${term}`);
      }
    };
    const runUntil = (endMs: number, done?: () => boolean): Promise<boolean> => clock.runUntil(endMs, checkNow, () => new Violation('nothing scheduled'), done);

    for (const m of members) boot(m);
    clock.schedule(50, clientLoop, SIM_OWNER);
    clock.schedule(100, () => void clock.runAs(SIM_OWNER, moverLoop), SIM_OWNER);
    clock.schedule(100 + faultRng.nextInt(opts.faultEveryMs), faultLoop, SIM_OWNER);
    await runUntil(START_MS + opts.faultMs);

    // ---- heal: every member up, a clean network, the last move finished ----
    faultsOn = false;
    moving = false;
    net.faults = { ...NO_FAULTS };
    for (const m of members) if (!m.current) boot(m);
    const statuses = (): string =>
      members
        .map((m) => {
          const r = replicaOf(m);
          if (!r) return `${m.id}: ${running(m) ? 'no replica' : 'down'}`;
          const st = r.status(GROUP);
          return `${m.id}: ${st.role} term ${st.term} leader ${st.leaderId} commit ${st.commit} applied ${st.applied} last ${st.lastIndex} conf ${JSON.stringify(r.confState(GROUP))}`;
        })
        .join('; ');
    if (!(await runUntil(clock.now + opts.healMs, () => !moveInProgress))) throw new Violation(`liveness: the last move did not finish within ${opts.healMs} ms after healing: ${stage}; ${statuses()}`);
    clientsOn = false;
    const probe = `probe-${seed}`;
    let probeAcked = false;
    const probeLoop = (): void => {
      if (probeAcked) return;
      const l = leader();
      if (l) {
        const sm = l.current!.sm!;
        sm.whenApplied(probe).then(
          () => {
            probeAcked = true;
            acked.push({ key: probe, index: Number(sm.records.get(probe)) });
          },
          () => {},
        );
        clock.runAs(l.current!.owner, () => {
          try {
            replicaOf(l)!.propose(GROUP, Buffer.from(probe));
          } catch {
            // retried below
          }
        });
      }
      clock.schedule(500, probeLoop, SIM_OWNER);
    };
    probeLoop();
    const converged = (): boolean => {
      if (!probeAcked) return false;
      return members.every((m) => (hosted.has(m.id) ? (m.current?.sm?.records.has(probe) ?? false) : running(m) !== null));
    };
    if (!(await runUntil(clock.now + opts.healMs, converged))) {
      throw new Violation(`liveness: no convergence within ${opts.healMs} ms after healing (probe acked: ${probeAcked}, hosted: ${[...hosted].join(',')}): ${statuses()}`);
    }
    await runUntil(clock.now + 300);

    // ---- final checks ----
    for (const m of members) {
      const inc = m.current!;
      const stored = await settle(clock, inc.store.storedGroupIds());
      if (hosted.has(m.id)) {
        const sm = inc.sm!;
        for (const w of acked) {
          const at = sm.records.get(w.key);
          if (at !== String(w.index)) throw new Violation(`acknowledged write lost: ${w.key} (applied at index ${w.index}) is ${at === undefined ? 'missing' : `at index ${at}`} on member ${m.id}`);
        }
      } else if (stored.includes(GROUP) || inc.member!.groupIds().includes(GROUP)) {
        throw new Violation(`member ${m.id} hosts no replica of the group but still ${inc.member!.groupIds().includes(GROUP) ? 'runs one' : 'stores its keys'}`);
      }
      result.snapshotsInstalled += inc.member!.stats.snapshotsInstalled;
    }
    result.acked = acked.length;
    result.leaderTerms = leaderOfTerm.size;
    return result;
  } catch (err) {
    if (err instanceof Violation) throw new MoveSimFailure(seed, `${err.message} (at sim ${clock.now - START_MS} ms, event ${clock.events}, moves done ${result.movesDone})`);
    throw err;
  } finally {
    for (const m of members) if (m.current) clock.cancelOwner(m.current.owner);
    uninstall();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

/** Runs the clock until `p` settles (a store read in the final checks). */
async function settle<T>(clock: SimClock, p: Promise<T>): Promise<T> {
  let out: { value: T } | null = null;
  void p.then((value) => (out = { value }));
  while (out === null) {
    await clock.step();
    await Promise.resolve();
  }
  return (out as { value: T }).value;
}

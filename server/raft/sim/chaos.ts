// Seeded randomized driver for SimCluster: a fault phase (partitions, message loss,
// duplication, delay/reordering, crashes at every point of Ready handling, restarts) under a
// continuous client load of proposals and ReadIndex reads, followed by a heal phase that
// checks liveness (a leader is elected and a new proposal is applied everywhere within a
// bounded number of ticks). Membership changes run throughout (add a learner, promote it once
// caught up, remove voters including the leader, within [minVoters, maxVoters]) and random
// nodes compact their logs at their applied index, so lagging followers get snapshots.
// Safety is checked continuously by the cluster's SafetyChecker.
// Any failure is rethrown as `seed=S, step=N: ...` so it can be replayed with RAFT_SEED=S.

import { SimCluster } from './cluster.ts';
import type { NetworkFaults } from './network.ts';
import type { ConfChange, NodeId } from '../types.ts';

export interface ChaosOptions {
  nodeCount: number;
  /** Steps of the fault phase. */
  faultSteps: number;
  /** Base bound on heal-phase steps to apply a fresh proposal on a quorum (plus 15 per backlog entry), and again for all nodes to catch up. */
  livenessSteps?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  faults?: NetworkFaults;
  /** Per-step probabilities. */
  partitionRate?: number;
  healRate?: number;
  crashRate?: number;
  restartRate?: number;
  proposeRate?: number;
  readRate?: number;
  /** Per-step probability of attempting a membership change at the leader (0 disables). */
  confChangeRate?: number;
  /** Per-step probability that a random node snapshots + compacts its log (0 disables). */
  compactRate?: number;
  /** Quiesce idle groups, with the member-level liveness rule (SimClusterOptions.quiesce). */
  quiesce?: boolean;
}

export interface ChaosResult {
  seed: number;
  steps: number;
  traceHash: number;
  traceEvents: number;
  committed: number;
  leaderChanges: number;
  readsServed: number;
  confChangesApplied: number;
  snapshotsInstalled: number;
  /** Members at the end (ids added over the run show membership churn). */
  finalMembers: number[];
  /** Quiescence: times a node went quiescent, and was woken by the liveness rule. */
  quiesceEvents: number;
  livenessWakes: number;
}

/** Preset for heavy faults: high loss, duplication, long delays, frequent partitions and crashes. */
export const HEAVY_FAULTS: Omit<ChaosOptions, 'nodeCount'> = {
  faultSteps: 1000,
  partitionRate: 0.04,
  healRate: 0.04,
  crashRate: 0.03,
  restartRate: 0.06,
  faults: { dropRate: 0.2, duplicateRate: 0.15, maxDelaySteps: 8 },
};

const CRASH_POINTS = ['now', 'beforePersist', 'afterPersist', 'afterSend'] as const;

function payload(n: number): Uint8Array {
  const b = new Uint8Array(4 + (n % 13));
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

export function runChaos(seed: number, opts: ChaosOptions): ChaosResult {
  const c = new SimCluster({
    nodeCount: opts.nodeCount,
    seed,
    preVote: opts.preVote ?? true,
    checkQuorum: opts.checkQuorum ?? true,
    faults: opts.faults ?? { dropRate: 0.05, duplicateRate: 0.03, maxDelaySteps: 3 },
    // Flow-control knobs vary with the seed: one entry per message with a window of one
    // exercises very different interleavings from large pipelined batches.
    maxInflightMsgs: [1, 3, 64][seed % 3],
    maxSizePerMsgBytes: [0, 40, 1 << 20][Math.floor(seed / 3) % 3],
    // Most seeds also overlap writes with sends and receives, as the member does.
    writeOverlapRate: [0, 0.3, 0.7][Math.floor(seed / 9) % 3],
    quiesce: opts.quiesce ?? false,
  });
  const rng = c.rng;
  const partitionRate = opts.partitionRate ?? 0.01;
  const healRate = opts.healRate ?? 0.02;
  const crashRate = opts.crashRate ?? 0.005;
  const restartRate = opts.restartRate ?? 0.03;
  const proposeRate = opts.proposeRate ?? 0.3;
  const readRate = opts.readRate ?? 0.1;
  const confChangeRate = opts.confChangeRate ?? 0.02;
  const compactRate = opts.compactRate ?? 0.02;
  const minVoters = Math.max(3, opts.nodeCount - 1);
  const maxVoters = opts.nodeCount + 1;
  const changeMembership = (): void => {
    const leader = c.leader();
    if (leader === 0) return;
    const raw = c.node(leader);
    const st = raw.status();
    const learner = st.learners.find((l) => raw.learnerReady(l) && c.isUp(l));
    let cc: ConfChange | null = null;
    if (learner !== undefined) {
      cc = { type: rng.chance(0.5) ? 'promoteLearner' : 'addNode', nodeId: learner };
    } else if (st.learners.length === 0 && st.voters.length < maxVoters && rng.chance(0.6)) {
      cc = { type: 'addLearner', nodeId: c.allocateNodeId(), context: new Uint8Array([1, 2, 3]) };
    } else if (st.voters.length > minVoters) {
      // Sometimes the leader itself (it steps down once the removal applies).
      const victim = rng.chance(0.3) ? leader : st.voters[rng.nextInt(st.voters.length)];
      cc = { type: 'removeNode', nodeId: victim };
    } else if (st.learners.length > 0 && rng.chance(0.2)) {
      cc = { type: 'removeNode', nodeId: st.learners[rng.nextInt(st.learners.length)] };
    }
    if (cc !== null) c.proposeConfChange(leader, cc);
  };
  const maxDown = (opts.nodeCount - 1) >> 1; // keep a quorum of machines (not necessarily connected)
  let proposalSeq = 0;
  const randomUp = (): NodeId => {
    const up = c.upIds();
    return up.length === 0 ? 0 : up[rng.nextInt(up.length)];
  };

  try {
    for (let i = 0; i < opts.faultSteps; i++) {
      if (rng.chance(partitionRate)) {
        const groups: NodeId[][] = [[], []];
        for (const id of c.ids) groups[rng.nextInt(2)].push(id);
        c.network.partition(groups);
      }
      if (c.network.isPartitioned() && rng.chance(healRate)) c.network.heal();
      const down = c.ids.length - c.upIds().length;
      if (down < maxDown && rng.chance(crashRate)) {
        const victim = randomUp();
        const point = CRASH_POINTS[rng.nextInt(CRASH_POINTS.length)];
        if (point === 'now') c.crash(victim);
        // Sometimes wait for a Ready that installs a snapshot, to crash between persisting and installing it.
        else c.crashDuringNextReady(victim, point, rng.chance(0.3));
      }
      if (down > 0 && rng.chance(restartRate)) {
        const downIds = c.ids.filter((id) => !c.isUp(id));
        c.restart(downIds[rng.nextInt(downIds.length)]);
      }
      if (rng.chance(confChangeRate)) changeMembership();
      if (rng.chance(compactRate)) {
        const id = randomUp();
        if (id !== 0) c.compact(id);
      }
      if (rng.chance(proposeRate)) {
        const id = randomUp();
        if (id !== 0) c.propose(id, payload(++proposalSeq));
      }
      if (rng.chance(readRate)) {
        const id = randomUp();
        if (id !== 0) c.readIndex(id);
      }
      c.step();
    }

    // Heal phase: everything restarts, network becomes reliable (delays remain).
    c.network.heal();
    c.network.faults = { dropRate: 0, duplicateRate: 0, maxDelaySteps: Math.min(2, c.network.faults.maxDelaySteps) };
    for (const id of c.ids) if (!c.isUp(id)) c.restart(id);
    c.disarmCrashes();
    // Entries some node may still have to receive; with a window of one single-entry message
    // each costs a full round trip, so the bounds below grow with it.
    const backlog =
      Math.max(...c.ids.map((id) => c.node(id).status().lastIndex)) - Math.min(...c.ids.map((id) => c.applied(id).length));
    // Liveness, part 1: within a fixed bound a leader is elected and a fresh proposal is
    // applied by a quorum. Part 2: every node catches up, within a bound proportional to the
    // backlog (the slowest seeds replicate one entry per round trip with long delays).
    const quorumBound = (opts.livenessSteps ?? 40 * c.electionTimeoutTicks) + 15 * backlog;
    // Members (voters and learners) at the end of the run; a learner counts as one more node
    // that must apply the marker, which only makes the bound stricter.
    const quorum = () => (c.ids.length >> 1) + 1;
    const retryEverySteps = 3 * c.electionTimeoutTicks;
    const marker = payload(0xfffffff0);
    const isMarker = (data: Uint8Array): boolean =>
      data.byteLength === marker.byteLength && data.every((b, k) => b === marker[k]);
    let lastProposedAt = -Infinity;
    const markerApplied = new Set<NodeId>();
    const scannedUpTo = new Map<NodeId, number>();
    const describe = (): string =>
      c.upIds().map((id) => {
        const s = c.node(id).status();
        return `${id}:${s.role}/t${s.term}/c${s.commit}/a${s.applied}/f${s.firstIndex}/l${s.lastIndex}/v${s.voters.join('.')}/L${s.learners.join('.')}`;
      }).join(' ');
    let i = 0;
    let catchUpBound = Infinity;
    const appliedBy = (): number => c.ids.filter((id) => markerApplied.has(id)).length;
    for (; appliedBy() < c.ids.length; i++) {
      if (appliedBy() < quorum() && i >= quorumBound) {
        throw new Error(`liveness: no fresh proposal applied by a quorum within ${quorumBound} steps after healing (${describe()})`);
      }
      if (i >= catchUpBound) {
        throw new Error(`liveness: nodes did not catch up within ${catchUpBound} steps after healing (${describe()})`);
      }
      c.step();
      // Like a real client, re-propose if the marker may have been lost with a deposed leader.
      const leader = c.leader();
      if (appliedBy() < quorum() && leader !== 0 && i - lastProposedAt >= retryEverySteps && c.propose(leader, marker)) {
        lastProposedAt = i;
      }
      for (const id of c.ids) {
        const applied = c.applied(id);
        for (let k = scannedUpTo.get(id) ?? 0; k < applied.length; k++) if (isMarker(applied[k].data)) markerApplied.add(id);
        scannedUpTo.set(id, applied.length);
      }
      if (appliedBy() >= quorum() && catchUpBound === Infinity) catchUpBound = i + quorumBound;
    }
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const setup = `[nodes=${opts.nodeCount} preVote=${opts.preVote ?? true} checkQuorum=${opts.checkQuorum ?? true}]`;
    const wrapped = new Error(`seed=${seed}, step=${c.nowStep}: ${setup} ${msg}`);
    if (err instanceof Error) wrapped.stack = `${wrapped.message}\n${err.stack ?? ''}`;
    throw wrapped;
  }
  return {
    seed,
    steps: c.nowStep,
    traceHash: c.traceHash,
    traceEvents: c.traceEvents,
    committed: c.checker.committedCount(),
    leaderChanges: c.checker.leaderChanges,
    readsServed: c.checker.readsServed,
    confChangesApplied: c.checker.confChangesApplied,
    snapshotsInstalled: c.checker.snapshotsInstalled,
    finalMembers: c.ids.slice(),
    quiesceEvents: c.quiesceEvents,
    livenessWakes: c.livenessWakes,
  };
}

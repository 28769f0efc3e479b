// Seeded randomized driver for SimCluster: a fault phase (partitions, message loss,
// duplication, delay/reordering, crashes at every point of Ready handling, restarts) under a
// continuous client load of proposals and ReadIndex reads, followed by a heal phase that
// checks liveness (a leader is elected and a new proposal is applied everywhere within a
// bounded number of ticks). Safety is checked continuously by the cluster's SafetyChecker.
// Any failure is rethrown as `seed=S, step=N: ...` so it can be replayed with RAFT_SEED=S.

import { SimCluster } from './cluster.ts';
import type { NetworkFaults } from './network.ts';
import type { NodeId } from '../types.ts';

export interface ChaosOptions {
  nodeCount: number;
  /** Steps of the fault phase. */
  faultSteps: number;
  /** Bound on steps for the heal phase to elect a leader and apply a fresh proposal everywhere. */
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
}

export interface ChaosResult {
  seed: number;
  steps: number;
  traceHash: number;
  traceEvents: number;
  committed: number;
  leaderChanges: number;
  readsServed: number;
}

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
  });
  const rng = c.rng;
  const partitionRate = opts.partitionRate ?? 0.01;
  const healRate = opts.healRate ?? 0.02;
  const crashRate = opts.crashRate ?? 0.005;
  const restartRate = opts.restartRate ?? 0.03;
  const proposeRate = opts.proposeRate ?? 0.3;
  const readRate = opts.readRate ?? 0.1;
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
        else c.crashDuringNextReady(victim, point);
      }
      if (down > 0 && rng.chance(restartRate)) {
        const downIds = c.ids.filter((id) => !c.isUp(id));
        c.restart(downIds[rng.nextInt(downIds.length)]);
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
    c.network.faults = { dropRate: 0, duplicateRate: 0, maxDelaySteps: c.network.faults.maxDelaySteps };
    for (const id of c.ids) if (!c.isUp(id)) c.restart(id);
    c.disarmCrashes();
    const bound = opts.livenessSteps ?? 40 * c.electionTimeoutTicks;
    const retryEverySteps = 3 * c.electionTimeoutTicks;
    const marker = payload(0xfffffff0);
    const isMarker = (data: Uint8Array): boolean =>
      data.byteLength === marker.byteLength && data.every((b, k) => b === marker[k]);
    // Like a real client, re-propose if the marker may have been lost with a deposed leader.
    let lastProposedAt = -Infinity;
    const markerApplied = new Set<NodeId>();
    const scannedUpTo = new Map<NodeId, number>();
    for (let i = 0; i < bound && markerApplied.size < c.ids.length; i++) {
      c.step();
      const leader = c.leader();
      if (leader !== 0 && i - lastProposedAt >= retryEverySteps && c.propose(leader, marker)) lastProposedAt = i;
      for (const id of c.ids) {
        const applied = c.applied(id);
        for (let k = scannedUpTo.get(id) ?? 0; k < applied.length; k++) if (isMarker(applied[k].data)) markerApplied.add(id);
        scannedUpTo.set(id, applied.length);
      }
    }
    const done = markerApplied.size === c.ids.length;
    if (!done) {
      const states = c.upIds().map((id) => {
        const s = c.node(id).status();
        return `${id}:${s.role}/t${s.term}/c${s.commit}/a${s.applied}/l${s.lastIndex}`;
      });
      throw new Error(`liveness: no leader applied a fresh proposal on all nodes within ${bound} steps after healing (${states.join(' ')})`);
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
  };
}

// The planner driven against a simulated cluster (pods start, learners catch up, leaders move), with
// the operator killed after a random prefix of each plan's actions and members going down at random.
// Checks safety after every action (the leader is never removed, a ready pod is deleted only when
// every other member is ready, quorum is kept) and that the cluster converges to the spec.

import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Action, DesiredCluster, ObservedCluster } from './model.ts';
import { peerUrl, podName, pvcName } from './naming.ts';
import { plan, quorumSize } from './plan.ts';

const NAME = 'sim';
const NS = 'default';

interface SimPod { hash: string; ready: boolean }
interface SimMember { id: string; ordinal: number; learner: boolean; started: boolean; caughtUp: boolean }

interface World {
  sts: number | null;
  state: 'new' | 'existing' | null;
  hash: string;
  pods: Map<number, SimPod>;
  members: SimMember[];
  leader: number | null;
  /** PVCs by ordinal, with the id of the member whose data they hold ('' before it starts). */
  pvcs: Map<number, string>;
  down: number | null;
  nextId: number;
}

function freshWorld(): World {
  return { sts: null, state: null, hash: 'h1', pods: new Map(), members: [], leader: null, pvcs: new Map(), down: null, nextId: 1 };
}

function observe(world: World): ObservedCluster {
  const healthy = (m: SimMember): boolean => m.started && world.pods.get(m.ordinal)?.ready === true;
  const anyHealthy = world.members.some(healthy);
  return {
    statefulSet: world.sts === null ? null : { replicas: world.sts },
    bootstrapState: world.state,
    pods: [...world.pods].map(([ordinal, p]) => ({ ordinal, name: podName(NAME, ordinal), ready: p.ready, terminating: false, templateHash: p.hash, version: p.hash })),
    pvcs: [...world.pvcs.keys()].map((ordinal) => ({ ordinal, name: pvcName(NAME, ordinal), terminating: false })),
    members: !anyHealthy ? null : world.members.map((m) => ({
      id: m.id, name: m.started ? podName(NAME, m.ordinal) : '', peerUrl: peerUrl(NAME, NS, m.ordinal), ordinal: m.ordinal,
      isLearner: m.learner, healthy: healthy(m), isLeader: world.leader === m.ordinal && healthy(m), appliedIndex: m.caughtUp ? 1000 : 0,
    })),
  };
}

function voters(world: World): SimMember[] {
  return world.members.filter((m) => !m.learner);
}

function healthyVoters(world: World): number {
  return voters(world).filter((m) => m.started && world.pods.get(m.ordinal)?.ready === true).length;
}

/** The cluster's own dynamics for one tick: the StatefulSet controller, kubelet, Raft. */
function tick(world: World, failures: string[]): void {
  if (world.sts === null) return;
  for (const ordinal of [...world.pods.keys()]) if (ordinal >= world.sts) world.pods.delete(ordinal);
  for (let i = 0; i < world.sts; i++) {
    if (!world.pods.has(i)) {
      world.pods.set(i, { hash: world.hash, ready: false });
      if (world.state === 'new' && !world.members.some((m) => m.ordinal === i)) {
        world.members.push({ id: `m${world.nextId++}`, ordinal: i, learner: false, started: false, caughtUp: false });
      }
      const owner = world.pvcs.get(i);
      const current = world.members.find((m) => m.ordinal === i);
      // A pod starting on the data of a member that no longer exists is the stale-PVC failure.
      if (owner !== undefined && owner !== '' && owner !== current?.id) failures.push(`pod ${i} started on the stale PVC of ${owner}`);
      if (owner === undefined) world.pvcs.set(i, '');
      continue;
    }
    const pod = world.pods.get(i)!;
    const m = world.members.find((x) => x.ordinal === i);
    // A pod becomes ready when it is a member of the cluster and not the one taken down.
    if (m !== undefined && world.down !== i) {
      m.started = true;
      if (world.pvcs.get(i) === '') world.pvcs.set(i, m.id);
      pod.ready = true;
      m.caughtUp = true;
    } else {
      pod.ready = false;
    }
  }
  const leaderHealthy = world.leader !== null && voters(world).some((m) => m.ordinal === world.leader && world.pods.get(m.ordinal)?.ready === true);
  if (!leaderHealthy && healthyVoters(world) >= quorumSize(voters(world).length)) {
    const next = voters(world).filter((m) => world.pods.get(m.ordinal)?.ready === true).sort((a, b) => a.ordinal - b.ordinal)[0];
    world.leader = next?.ordinal ?? null;
  }
}

function apply(world: World, action: Action, failures: string[]): void {
  switch (action.type) {
    case 'EnsureChildren':
      if (world.sts === null) world.sts = action.statefulSetReplicas;
      world.state = action.clusterState;
      return;
    case 'AddLearner':
      world.members.push({ id: `m${world.nextId++}`, ordinal: action.ordinal, learner: true, started: false, caughtUp: false });
      return;
    case 'PromoteLearner': {
      const m = world.members.find((x) => x.id === action.memberId)!;
      if (!m.caughtUp) failures.push('promoted a learner that is not caught up');
      m.learner = false;
      return;
    }
    case 'MoveLeader': {
      const to = world.members.find((x) => x.id === action.toMemberId)!;
      if (to.learner) failures.push('moved leadership to a learner');
      world.leader = to.ordinal;
      return;
    }
    case 'RemoveMember': {
      const m = world.members.find((x) => x.id === action.memberId)!;
      if (!m.learner && world.leader === m.ordinal) failures.push(`removed the leader ${m.id}`);
      world.members = world.members.filter((x) => x !== m);
      if (!m.learner && world.state === 'existing' && healthyVoters(world) < quorumSize(voters(world).length)) failures.push('removal lost quorum');
      return;
    }
    case 'ScaleStatefulSet':
      world.sts = action.replicas;
      for (const ordinal of [...world.pods.keys()]) if (ordinal >= action.replicas) world.pods.delete(ordinal);
      return;
    case 'DeletePod': {
      const ordinal = Number(action.podName.slice(NAME.length + 1));
      const pod = world.pods.get(ordinal)!;
      if (pod.ready) {
        const othersReady = [...world.pods].filter(([o]) => o !== ordinal).every(([, p]) => p.ready);
        if (!othersReady) failures.push(`deleted ready pod ${action.podName} while another is not ready`);
        if (world.leader === ordinal && voters(world).length > 1) failures.push(`deleted the leader pod ${action.podName}`);
      }
      world.pods.delete(ordinal);
      if (world.leader === ordinal) world.leader = null;
      return;
    }
    case 'DeletePvc': {
      const ordinal = Number(action.pvcName.slice(`data-${NAME}-`.length));
      if (world.pods.has(ordinal)) failures.push(`deleted the PVC of a running pod ${action.pvcName}`);
      if (world.members.some((m) => m.ordinal === ordinal && world.pvcs.get(ordinal) === m.id)) failures.push(`deleted the data of live member ${action.pvcName}`);
      world.pvcs.delete(ordinal);
      return;
    }
  }
}

function converged(world: World, d: DesiredCluster): boolean {
  return world.sts === d.replicas &&
    voters(world).length === d.replicas && world.members.every((m) => !m.learner) &&
    [...world.pods.values()].every((p) => p.ready && p.hash === world.hash) &&
    (d.retentionPolicy === 'Retain' || [...world.pvcs.keys()].every((o) => o < d.replicas));
}

interface Scenario { retain?: boolean; then?: number; from: number; to: number; upgrade: boolean; crashSeeds: number[]; downAt: number; downFor: number; downOrdinal: number }

function runScenario(s: Scenario): { failures: string[]; world: World; ticks: number } {
  const world = freshWorld();
  const failures: string[] = [];
  let d: DesiredCluster = { name: NAME, namespace: NS, replicas: s.from, version: 'v', templateHash: world.hash, retentionPolicy: s.retain === true ? 'Retain' : 'Delete' };
  // Bootstrap to `from` first.
  for (let t = 0; t < 50 && !converged(world, d); t++) {
    for (const a of plan(d, observe(world)).actions) apply(world, a, failures);
    tick(world, failures);
  }
  if (!converged(world, d)) failures.push(`bootstrap of ${s.from} did not converge`);
  // Then the change under test, with operator crashes and one member down for a while.
  if (s.upgrade) world.hash = 'h2';
  d = { ...d, replicas: s.to, templateHash: world.hash };
  let t = 0;
  for (; t < 300 && !(converged(world, d) && world.down === null); t++) {
    world.down = t >= s.downAt && t < s.downAt + s.downFor ? s.downOrdinal : null;
    const actions = plan(d, observe(world)).actions;
    // The operator dies after a random number of this plan's actions (restart = plan again next tick).
    // It keeps crashing for the first 100 ticks at most: a crash loop that never ends cannot converge.
    const crashAfter = t < 100 ? s.crashSeeds[t % s.crashSeeds.length] % (actions.length + 1) : 0;
    actions.slice(0, crashAfter === 0 ? actions.length : crashAfter).forEach((a) => apply(world, a, failures));
    tick(world, failures);
  }
  if (!converged(world, d)) failures.push(`did not converge to ${s.to} (upgrade ${s.upgrade}) in ${t} ticks`);
  // Optionally a second resize (e.g. back up after a scale-in: old PVCs must not poison the new members).
  if (s.then !== undefined) {
    d = { ...d, replicas: s.then };
    let u = 0;
    for (; u < 300 && !converged(world, d); u++) {
      for (const a of plan(d, observe(world)).actions) apply(world, a, failures);
      tick(world, failures);
    }
    if (!converged(world, d)) failures.push(`did not converge to ${s.then} in ${u} ticks`);
  }
  return { failures, world, ticks: t };
}

describe('plan against a simulated cluster with operator crashes mid-step', () => {
  it('scales 3 → 5 → 3 and upgrades without an unsafe step', () => {
    for (const [from, to, upgrade] of [[3, 5, false], [5, 3, false], [3, 3, true], [1, 3, true], [3, 1, false], [5, 3, true]] as const) {
      const result = runScenario({ from, to, upgrade, crashSeeds: [0], downAt: 1_000, downFor: 0, downOrdinal: 0 });
      expect(result.failures, `${from} → ${to} upgrade=${upgrade}`).toEqual([]);
    }
  });

  it('never starts a member on a stale PVC when scaling back up, whatever the retention policy', () => {
    for (const retain of [false, true]) {
      const result = runScenario({ from: 5, to: 3, then: 5, retain, upgrade: false, crashSeeds: [0], downAt: 1_000, downFor: 0, downOrdinal: 0 });
      expect(result.failures, `retain=${retain}`).toEqual([]);
      expect([...result.world.pvcs.keys()].sort()).toEqual([0, 1, 2, 3, 4]);
    }
  });

  it('converges safely from random sizes, crash points and a member down (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.record({
          from: fc.constantFrom(1, 3, 5),
          to: fc.constantFrom(1, 3, 5, 7),
          upgrade: fc.boolean(),
          crashSeeds: fc.array(fc.nat(5), { minLength: 1, maxLength: 8 }),
          downAt: fc.nat(20),
          downFor: fc.nat(15),
          downOrdinal: fc.nat(6),
          retain: fc.boolean(),
          then: fc.option(fc.constantFrom(1, 3, 5, 7), { nil: undefined }),
        }),
        (s) => {
          const result = runScenario(s);
          expect(result.failures).toEqual([]);
        },
      ),
      { numRuns: 300, seed: 4242 },
    );
  });
});

// The planner driven against a simulated SHARDED cluster: 16 shards, 3 replicas each (placement on a
// subset), modelled replica by replica. The simulated server does what docs/sharding.md says the real
// one does: a placer over the cluster group's voters (draining members get nothing, loads balanced),
// at most 4 shards moving at once, each move one Raft change at a time (learner → caught up → promote →
// hand leadership over → remove the leaving replica, so voters go R → R+1 → R), shard groups dropping
// replicas of members that left the cluster, shard and metadata leaders elected among live, caught-up
// voters with a quorum. The Kubernetes side (StatefulSet controller, kubelet) is the one of
// plan.simulation.test.ts.
//
// Checked after every action and every tick: every shard keeps a quorum of live voters, no replica is
// lost (a member is removed only once it hosts none; no shard ever has fewer voters than it should), a
// pod is deleted only while every shard is healthy and caught up and only once it leads no shard and not
// the metadata group, the metadata group's leader is upgraded last. Scenarios: scale 3 → 5 → 3, a
// member down during scale-in, the operator killed between drain and remove, an upgrade while one shard is
// under-replicated (it waits), a scale-in below the replication factor (refused), and random ones.

import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Action, DesiredCluster, ObservedCluster, Plan } from './model.ts';
import { peerUrl, podName, pvcName } from './naming.ts';
import { plan, quorumSize } from './plan.ts';
import { shardsStatus } from './status.ts';

const NAME = 'sim';
const NS = 'default';
const SHARDS = 16;
const R = 3;
const MAX_MOVING = 4;
const LEADER_REVISION = 5_000;

interface SimPod { hash: string; ready: boolean }
interface SimMember { id: string; ordinal: number; learner: boolean; started: boolean }
interface SimShard { voters: string[]; learners: string[]; leader: string }

interface World {
  sts: number | null;
  state: 'new' | 'existing' | null;
  hash: string;
  pods: Map<number, SimPod>;
  members: SimMember[];
  /** Cluster group (group 0) leader's ordinal. */
  leader: number | null;
  pvcs: Map<number, string>;
  down: Set<number>;
  nextId: number;
  // ---- the sharded side ----
  shards: SimShard[];
  /** Desired replicas per shard, as the placer last wrote them (anchors the next placement). */
  targets: string[][];
  /** Replicas behind their leader (a member that was down, a learner before it caught up): "shard/member". */
  lagging: Set<string>;
  draining: Set<string>;
  metadataLeader: string;
  /**
   * The members that answer do not know the metadata group's leader (an election under way, or the view
   * of a member that just restarted): GetPlacement names none although one leads.
   */
  metadataLeaderUnknown: boolean;
  /** A shard kept from re-adding a lost replica until `until` (the under-replicated scenario). */
  stuck: { shard: number; until: number } | null;
  tickCount: number;
}

function freshWorld(): World {
  return {
    sts: null, state: null, hash: 'h1', pods: new Map(), members: [], leader: null, pvcs: new Map(), down: new Set(), nextId: 1,
    shards: [], targets: [], lagging: new Set(), draining: new Set(), metadataLeader: '', metadataLeaderUnknown: false, stuck: null, tickCount: 0,
  };
}

const memberById = (w: World, id: string): SimMember | undefined => w.members.find((m) => m.id === id);
const alive = (w: World, id: string): boolean => {
  const m = memberById(w, id);
  return m !== undefined && m.started && !w.down.has(m.ordinal) && w.pods.get(m.ordinal)?.ready === true;
};
const clusterVoters = (w: World): SimMember[] => w.members.filter((m) => !m.learner);
const inCluster = (w: World, id: string): boolean => w.members.some((m) => m.id === id);
const caughtUp = (w: World, shard: number, id: string): boolean => alive(w, id) && !w.lagging.has(`${shard}/${id}`);
const wanted = (w: World): number => Math.min(R, clusterVoters(w).length);

function observe(w: World): ObservedCluster {
  const healthy = (m: SimMember): boolean => m.started && !w.down.has(m.ordinal) && w.pods.get(m.ordinal)?.ready === true;
  const anyHealthy = w.members.some(healthy);
  const observed: ObservedCluster = {
    statefulSet: w.sts === null ? null : { replicas: w.sts },
    bootstrapState: w.state,
    pods: [...w.pods].map(([ordinal, p]) => ({ ordinal, name: podName(NAME, ordinal), ready: p.ready, terminating: false, templateHash: p.hash, version: p.hash })),
    pvcs: [...w.pvcs.keys()].map((ordinal) => ({ ordinal, name: pvcName(NAME, ordinal), terminating: false })),
    members: !anyHealthy ? null : w.members.map((m) => ({
      id: m.id, name: m.started ? podName(NAME, m.ordinal) : '', peerUrl: peerUrl(NAME, NS, m.ordinal), ordinal: m.ordinal,
      isLearner: m.learner, healthy: healthy(m), isLeader: w.leader === m.ordinal && healthy(m), appliedIndex: 1000,
    })),
  };
  if (w.state === 'existing' || w.shards.length > 0) {
    const unsettled = unsettledShards(w);
    observed.placement = !anyHealthy || w.shards.length === 0 ? null : {
      shards: w.shards.map((s, i) => {
        const revisions: Record<string, number> = {};
        // Each member that answers reports its own replica's applied revision.
        for (const id of [...s.voters, ...s.learners]) if (alive(w, id)) revisions[id] = w.lagging.has(`${i}/${id}`) ? 0 : LEADER_REVISION;
        return { id: i, voters: [...s.voters], learners: [...s.learners], leader: alive(w, s.leader) ? s.leader : '', revisions };
      }),
      movesInProgress: Math.min(MAX_MOVING, unsettled.length),
      movesPending: Math.max(0, unsettled.length - MAX_MOVING),
      metadataLeader: alive(w, w.metadataLeader) && !w.metadataLeaderUnknown ? w.metadataLeader : '',
    };
  }
  return observed;
}

// ---- the simulated server: placer, moves, elections ----

/** Desired replicas per shard: anchored to the last targets, least loaded members fill, loads within [floor, ceil] of the mean. */
function place(w: World): string[][] {
  const eligible = clusterVoters(w).map((m) => m.id).filter((id) => !w.draining.has(id)).sort();
  const r = Math.min(R, eligible.length);
  const load = new Map(eligible.map((id) => [id, 0]));
  const result = w.shards.map((s, i) => {
    const keep = (w.targets[i] ?? s.voters).filter((id) => load.has(id)).slice(0, r);
    for (const id of keep) load.set(id, (load.get(id) ?? 0) + 1);
    return keep;
  });
  const leastLoaded = (exclude: readonly string[]): string | undefined =>
    eligible.filter((id) => !exclude.includes(id)).sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || a.localeCompare(b))[0];
  for (const target of result) {
    while (target.length < r) {
      const id = leastLoaded(target);
      if (id === undefined) break;
      target.push(id);
      load.set(id, (load.get(id) ?? 0) + 1);
    }
  }
  if (eligible.length === 0) return result;
  for (let guard = 0; guard < 200; guard++) {
    const byLoad = [...eligible].sort((a, b) => (load.get(a) ?? 0) - (load.get(b) ?? 0) || a.localeCompare(b));
    const under = byLoad[0];
    const over = byLoad[byLoad.length - 1];
    if ((load.get(over) ?? 0) - (load.get(under) ?? 0) <= 1) break;
    const shard = result.findIndex((t) => t.includes(over) && !t.includes(under));
    if (shard < 0) break;
    result[shard] = result[shard].map((id) => (id === over ? under : id));
    load.set(over, (load.get(over) ?? 0) - 1);
    load.set(under, (load.get(under) ?? 0) + 1);
  }
  return result;
}

function settled(w: World, i: number): boolean {
  const s = w.shards[i];
  const t = w.targets[i] ?? [];
  return s.learners.length === 0 && s.voters.length === t.length && t.every((id) => s.voters.includes(id));
}

function unsettledShards(w: World): number[] {
  return w.shards.map((_, i) => i).filter((i) => !settled(w, i));
}

/** One Raft membership change of shard i towards its target (nextMembershipStep's order), made by its leader. */
function moveStep(w: World, i: number): void {
  const s = w.shards[i];
  const target = w.targets[i];
  if (!alive(w, s.leader)) return;
  const liveAfterRemoving = (id: string): boolean => {
    const rest = s.voters.filter((v) => v !== id);
    return rest.filter((v) => alive(w, v)).length >= quorumSize(rest.length);
  };
  const gone = s.voters.find((id) => !inCluster(w, id));
  if (gone !== undefined) {
    if (gone !== s.leader && liveAfterRemoving(gone)) s.voters = s.voters.filter((v) => v !== gone);
    return;
  }
  const unwantedLearner = s.learners.find((id) => !target.includes(id));
  if (unwantedLearner !== undefined) {
    s.learners = s.learners.filter((v) => v !== unwantedLearner);
    return;
  }
  const missing = target.find((id) => !s.voters.includes(id) && !s.learners.includes(id));
  if (missing !== undefined) {
    s.learners.push(missing);
    w.lagging.add(`${i}/${missing}`);
    return;
  }
  const ready = s.learners.find((id) => caughtUp(w, i, id));
  if (ready !== undefined) {
    s.learners = s.learners.filter((v) => v !== ready);
    s.voters.push(ready);
    return;
  }
  if (s.learners.length > 0) return;
  const leaving = s.voters.find((id) => !target.includes(id));
  if (leaving === undefined) return;
  if (leaving === s.leader) {
    const to = s.voters.find((id) => id !== leaving && target.includes(id) && caughtUp(w, i, id));
    if (to !== undefined) s.leader = to;
    return;
  }
  if (liveAfterRemoving(leaving)) s.voters = s.voters.filter((v) => v !== leaving);
}

function elect(w: World, voters: readonly string[], current: string, shard: number | null): string {
  if (voters.includes(current) && alive(w, current)) return current;
  const live = voters.filter((id) => alive(w, id));
  if (live.length < quorumSize(voters.length)) return '';
  return live.filter((id) => shard === null || !w.lagging.has(`${shard}/${id}`)).sort()[0] ?? '';
}

/** The cluster's own dynamics for one tick: the StatefulSet controller, kubelet, Raft of every group, the placer. */
function tick(w: World, failures: string[]): void {
  w.tickCount++;
  if (w.sts === null) return;
  for (const ordinal of [...w.pods.keys()]) if (ordinal >= w.sts) w.pods.delete(ordinal);
  for (let i = 0; i < w.sts; i++) {
    if (!w.pods.has(i)) {
      w.pods.set(i, { hash: w.hash, ready: false });
      if (w.state === 'new' && !w.members.some((m) => m.ordinal === i)) w.members.push({ id: `m${w.nextId++}`, ordinal: i, learner: false, started: false });
      const owner = w.pvcs.get(i);
      const current = w.members.find((m) => m.ordinal === i);
      if (owner !== undefined && owner !== '' && owner !== current?.id) failures.push(`pod ${i} started on the stale PVC of ${owner}`);
      if (owner === undefined) w.pvcs.set(i, '');
      continue;
    }
    const pod = w.pods.get(i)!;
    const m = w.members.find((x) => x.ordinal === i);
    if (m !== undefined && !w.down.has(i)) {
      m.started = true;
      if (w.pvcs.get(i) === '') w.pvcs.set(i, m.id);
      pod.ready = true;
    } else {
      pod.ready = false;
    }
  }
  const voterOrdinals = clusterVoters(w);
  const leaderOk = w.leader !== null && voterOrdinals.some((m) => m.ordinal === w.leader && alive(w, m.id));
  if (!leaderOk) {
    const live = voterOrdinals.filter((m) => alive(w, m.id)).sort((a, b) => a.ordinal - b.ordinal);
    w.leader = live.length >= quorumSize(voterOrdinals.length) ? live[0]?.ordinal ?? null : null;
  }
  // Shards are created once every initial member runs (the bootstrap placement: nothing moves).
  if (w.shards.length === 0) {
    const ids = clusterVoters(w).map((m) => m.id);
    if (ids.length === 0 || !ids.every((id) => alive(w, id))) return;
    w.shards = Array.from({ length: SHARDS }, () => ({ voters: [], learners: [], leader: '' }));
    w.targets = place(w);
    w.shards = w.targets.map((t) => ({ voters: [...t], learners: [], leader: t[0] ?? '' }));
    // Not the cluster group's leader (ordinal 0): leader-last must tell the two apart.
    w.metadataLeader = ids[ids.length - 1];
    return;
  }
  // A replica that was down catches up once its member answers again (a tick behind).
  for (const key of [...w.lagging]) {
    const id = key.slice(key.indexOf('/') + 1);
    if (alive(w, id)) w.lagging.delete(key);
  }
  for (const [i, s] of w.shards.entries()) for (const id of [...s.voters, ...s.learners]) if (!alive(w, id)) w.lagging.add(`${i}/${id}`);
  if (w.stuck !== null && w.tickCount < w.stuck.until) {
    const s = w.shards[w.stuck.shard];
    const victim = s.voters.find((id) => id !== s.leader);
    if (s.voters.length === wanted(w) && victim !== undefined) s.voters = s.voters.filter((v) => v !== victim);
  }
  w.targets = place(w);
  const moving = unsettledShards(w)
    .filter((i) => w.stuck === null || w.tickCount >= w.stuck.until || i !== w.stuck.shard)
    .sort((a, b) => Number(w.shards[b].voters.length < wanted(w)) - Number(w.shards[a].voters.length < wanted(w)) || a - b)
    .slice(0, MAX_MOVING);
  for (const i of moving) moveStep(w, i);
  for (const [i, s] of w.shards.entries()) s.leader = elect(w, s.voters, s.leader, i);
  w.metadataLeader = elect(w, clusterVoters(w).map((m) => m.id), w.metadataLeader, null);
}

/** Safety of every shard, after every action and tick. */
function checkShards(w: World, failures: string[], when: string): void {
  if (w.shards.length === 0) return;
  for (const [i, s] of w.shards.entries()) {
    const live = s.voters.filter((id) => alive(w, id)).length;
    // One member down (the scenarios take down at most one) never costs a shard of 3 its quorum; anything more is the operator's doing.
    const downVoters = s.voters.filter((id) => { const m = memberById(w, id); return m !== undefined && w.down.has(m.ordinal); }).length;
    if (live + downVoters < quorumSize(s.voters.length)) failures.push(`${when}: shard ${i} lost its quorum (${live}/${s.voters.length} live voters)`);
    const voters = s.voters.filter((id) => inCluster(w, id)).length;
    if (w.stuck === null && voters < wanted(w)) failures.push(`${when}: shard ${i} has ${voters} voters in the cluster, fewer than ${wanted(w)} (a replica lost)`);
  }
}

function leads(w: World, id: string): string | null {
  const shard = w.shards.findIndex((s) => s.leader === id && s.voters.length > 1);
  if (shard >= 0) return `shard ${shard}`;
  return w.metadataLeader === id && clusterVoters(w).length > 1 ? 'the metadata group' : null;
}

function apply(w: World, action: Action, failures: string[]): void {
  const when = `${action.type} at tick ${w.tickCount}`;
  switch (action.type) {
    case 'EnsureChildren':
      if (w.sts === null) w.sts = action.statefulSetReplicas;
      w.state = action.clusterState;
      return;
    case 'AddLearner':
      w.members.push({ id: `m${w.nextId++}`, ordinal: action.ordinal, learner: true, started: false });
      return;
    case 'PromoteLearner':
      w.members.find((x) => x.id === action.memberId)!.learner = false;
      return;
    case 'MoveLeader':
      w.leader = w.members.find((x) => x.id === action.toMemberId)!.ordinal;
      return;
    case 'RemoveMember': {
      const m = w.members.find((x) => x.id === action.memberId)!;
      const hosted = w.shards.filter((s) => s.voters.includes(m.id) || s.learners.includes(m.id)).length;
      if (!m.learner && hosted > 0) failures.push(`${when}: removed ${m.id} while it still hosts ${hosted} shard replica(s) (replicas lost)`);
      if (!m.learner && w.leader === m.ordinal) failures.push(`${when}: removed the cluster group's leader`);
      w.members = w.members.filter((x) => x !== m);
      return;
    }
    case 'ScaleStatefulSet':
      w.sts = action.replicas;
      for (const ordinal of [...w.pods.keys()]) if (ordinal >= action.replicas) w.pods.delete(ordinal);
      return;
    case 'DeletePod': {
      const ordinal = Number(action.podName.slice(NAME.length + 1));
      const pod = w.pods.get(ordinal)!;
      const m = w.members.find((x) => x.ordinal === ordinal);
      if (pod.ready && m !== undefined && w.shards.length > 0) {
        const led = leads(w, m.id);
        if (led !== null) failures.push(`${when}: deleted ${action.podName} while it leads ${led}`);
        const unhealthy = w.shards.findIndex((s, i) => s.voters.length < wanted(w) || s.learners.length > 0 || s.voters.some((id) => !caughtUp(w, i, id)));
        if (unhealthy >= 0) failures.push(`${when}: deleted ready pod ${action.podName} while shard ${unhealthy} is not healthy`);
        const outdatedOthers = [...w.pods].filter(([o, p]) => o !== ordinal && p.hash !== w.hash).length;
        if (m.id === w.metadataLeader && outdatedOthers > 0) failures.push(`${when}: upgraded the metadata group's leader before ${outdatedOthers} other pod(s)`);
      }
      w.pods.delete(ordinal);
      if (w.leader === ordinal) w.leader = null;
      return;
    }
    case 'DeletePvc': {
      const ordinal = Number(action.pvcName.slice(`data-${NAME}-`.length));
      if (w.pods.has(ordinal)) failures.push(`${when}: deleted the PVC of a running pod ${action.pvcName}`);
      w.pvcs.delete(ordinal);
      return;
    }
    case 'EnsurePvcMetadata':
      return;
    case 'DrainMember':
      w.draining.add(action.memberId);
      return;
    case 'UndrainMember':
      w.draining.delete(action.memberId);
      return;
    case 'TransferLeaderships': {
      const from = action.memberId;
      const outdatedOthers = [...w.pods].filter(([o, p]) => o !== memberById(w, from)?.ordinal && p.hash !== w.hash).length;
      if (w.metadataLeader === from && outdatedOthers > 0) failures.push(`${when}: moved the metadata group's leadership away with ${outdatedOthers} other pod(s) still to upgrade (not last)`);
      for (const [i, s] of w.shards.entries()) {
        if (s.leader !== from) continue;
        const to = s.voters.find((id) => id !== from && caughtUp(w, i, id));
        if (to !== undefined) s.leader = to;
      }
      if (w.metadataLeader === from) w.metadataLeader = clusterVoters(w).map((m) => m.id).find((id) => id !== from && alive(w, id)) ?? from;
      return;
    }
  }
}

function converged(w: World, d: DesiredCluster): boolean {
  return w.sts === d.replicas &&
    clusterVoters(w).length === d.replicas && w.members.every((m) => !m.learner) &&
    [...w.pods.values()].every((p) => p.ready && p.hash === w.hash) &&
    [...w.pvcs.keys()].every((o) => o < d.replicas) &&
    w.shards.length === SHARDS && unsettledShards(w).length === 0 && w.members.every((m) => !w.draining.has(m.id));
}

/** One operator round (plan and its actions, cut after `crashAfter` of them) and one tick, with checks. */
function round(w: World, d: DesiredCluster, failures: string[], crashAfter = 0): Plan {
  const decided = plan(d, observe(w));
  const actions = crashAfter === 0 ? decided.actions : decided.actions.slice(0, crashAfter);
  for (const a of actions) {
    apply(w, a, failures);
    checkShards(w, failures, `after ${a.type}`);
  }
  tick(w, failures);
  checkShards(w, failures, `tick ${w.tickCount}`);
  return decided;
}

function desiredOf(replicas: number, w: World): DesiredCluster {
  return { name: NAME, namespace: NS, replicas, version: 'v', templateHash: w.hash, retentionPolicy: 'Delete', sharding: { shards: SHARDS, replicationFactor: R } };
}

function bootstrap(size: number): { w: World; failures: string[] } {
  const w = freshWorld();
  const failures: string[] = [];
  const d = desiredOf(size, w);
  for (let t = 0; t < 50 && !converged(w, d); t++) round(w, d, failures);
  if (!converged(w, d)) failures.push(`bootstrap of ${size} did not converge`);
  return { w, failures };
}

function runTo(w: World, d: DesiredCluster, failures: string[], maxTicks = 400, crashSeeds: readonly number[] = [0]): number {
  let t = 0;
  for (; t < maxTicks && !converged(w, d); t++) {
    const crash = t < 100 ? crashSeeds[t % crashSeeds.length] : 0;
    const actions = plan(d, observe(w)).actions.length;
    round(w, d, failures, crash % (actions + 1));
  }
  if (!converged(w, d)) failures.push(`did not converge to ${d.replicas} in ${t} ticks (unsettled shards: ${unsettledShards(w).join(',')})`);
  return t;
}

function replicasPerMember(w: World): number[] {
  return clusterVoters(w).map((m) => w.shards.filter((s) => s.voters.includes(m.id)).length).sort((a, b) => a - b);
}

describe('plan against a simulated sharded cluster (16 shards, 3 replicas each)', () => {
  it('scales 3 → 5 → 3: joins, waits for the placement to settle, drains before removing; every shard keeps its quorum', () => {
    const { w, failures } = bootstrap(3);
    expect(replicasPerMember(w)).toEqual([16, 16, 16]);
    // Scale-out: Rebalancing is reported while replicas move, and the plan is not done before they stop.
    let sawRebalancing = false;
    let d = desiredOf(5, w);
    for (let t = 0; t < 400 && !converged(w, d); t++) {
      const decided = round(w, d, failures);
      if (decided.progress?.reason === 'Rebalancing') sawRebalancing = true;
      const status = shardsStatus(d, observe(w));
      if (status !== undefined && status.movesInProgress + status.movesPending > 0) expect(decided.progress).not.toBeNull();
    }
    expect(failures).toEqual([]);
    expect(converged(w, d)).toBe(true);
    expect(sawRebalancing).toBe(true);
    // 48 replicas over 5 members: 9 or 10 each.
    expect(replicasPerMember(w)).toEqual([9, 9, 10, 10, 10]);
    expect(shardsStatus(d, observe(w))).toEqual({ total: 16, healthy: 16, underReplicated: 0, movesPending: 0, movesInProgress: 0, summary: '16/16' });
    // Scale-in: drain the highest ordinal, then remove it, then the next.
    const drainedBeforeRemoved: string[] = [];
    d = desiredOf(3, w);
    for (let t = 0; t < 400 && !converged(w, d); t++) {
      const decided = round(w, d, failures);
      for (const a of decided.actions) if (a.type === 'DrainMember' && !drainedBeforeRemoved.includes(a.memberName)) drainedBeforeRemoved.push(a.memberName);
      for (const a of decided.actions) if (a.type === 'RemoveMember') expect(drainedBeforeRemoved).toContain(a.memberName);
    }
    expect(failures).toEqual([]);
    expect(converged(w, d)).toBe(true);
    expect(drainedBeforeRemoved).toEqual(['sim-4', 'sim-3']);
    expect(replicasPerMember(w)).toEqual([16, 16, 16]);
  });

  it('scales in with a member down: the drain goes on around it and nothing is lost', () => {
    const { w, failures } = bootstrap(5);
    const d = desiredOf(3, w);
    for (let t = 0; t < 400 && !(converged(w, d) && w.down.size === 0); t++) {
      if (t === 3) w.down.add(1);
      if (t === 25) w.down.delete(1);
      round(w, d, failures);
    }
    expect(failures).toEqual([]);
    expect(converged(w, d)).toBe(true);
  });

  it('the operator killed between drain and remove: a restarted planner removes the drained member, re-drains nothing else', () => {
    const { w, failures } = bootstrap(5);
    const d = desiredOf(3, w);
    // Run until the first drain is issued, then the operator is dead for 40 ticks while the server moves replicas.
    let drained: string | null = null;
    for (let t = 0; t < 50 && drained === null; t++) {
      const decided = round(w, d, failures);
      drained = decided.actions.find((a) => a.type === 'DrainMember')?.type === 'DrainMember' ? (decided.actions.find((a) => a.type === 'DrainMember') as { memberId: string }).memberId : null;
    }
    expect(drained).not.toBeNull();
    for (let t = 0; t < 40; t++) {
      tick(w, failures);
      checkShards(w, failures, `operator down, tick ${w.tickCount}`);
    }
    // Every replica moved off while the operator was away; a fresh planner goes straight to MemberRemove.
    expect(w.shards.every((s) => !s.voters.includes(drained!) && !s.learners.includes(drained!))).toBe(true);
    const next = plan(d, observe(w));
    expect(next.actions.map((a) => a.type)).toContain('RemoveMember');
    expect(next.actions.filter((a) => a.type === 'DrainMember')).toEqual([]);
    runTo(w, d, failures, 400, [1, 2, 0, 1]);
    expect(failures).toEqual([]);
  });

  it('an upgrade waits while a shard is under-replicated, then rolls every pod, leaderships moved first, metadata leader last', () => {
    const { w, failures } = bootstrap(5);
    w.hash = 'h2';
    w.stuck = { shard: 5, until: w.tickCount + 25 };
    tick(w, failures); // the shard loses a replica
    const d = desiredOf(5, w);
    const waits: string[] = [];
    let deletedWhileStuck = 0;
    let transfers = 0;
    for (let t = 0; t < 400 && !converged(w, d); t++) {
      const stuck = w.stuck !== null && w.tickCount < w.stuck.until;
      const decided = round(w, d, failures);
      if (stuck) {
        deletedWhileStuck += decided.actions.filter((a) => a.type === 'DeletePod').length;
        if (decided.progress !== null) waits.push(decided.progress.message);
      }
      transfers += decided.actions.filter((a) => a.type === 'TransferLeaderships').length;
    }
    expect(failures).toEqual([]);
    expect(converged(w, d)).toBe(true);
    expect(deletedWhileStuck).toBe(0);
    expect(waits.some((m) => /shard 5 is under-replicated/.test(m))).toBe(true);
    expect(transfers).toBeGreaterThan(0);
  });

  it('refuses a scale-in below the replication factor, with a clear message, and removes nobody', () => {
    const { w, failures } = bootstrap(3);
    const d = desiredOf(1, w);
    let last: Plan | null = null;
    for (let t = 0; t < 20; t++) last = round(w, d, failures);
    expect(failures).toEqual([]);
    expect(clusterVoters(w)).toHaveLength(3);
    expect(last?.progress?.reason).toBe('ScaleInRefused');
    expect(last?.progress?.message).toMatch(/could not hold 3 replicas of every shard \(spec\.replicationFactor 3\)/);
  });

  it('converges safely from random sizes, upgrades, crash points, a member down and the metadata group’s leader unknown for a while (fast-check)', () => {
    fc.assert(
      fc.property(
        fc.record({
          from: fc.constantFrom(3, 5),
          to: fc.constantFrom(3, 5, 7),
          upgrade: fc.boolean(),
          crashSeeds: fc.array(fc.nat(5), { minLength: 1, maxLength: 6 }),
          downAt: fc.nat(20),
          downFor: fc.nat(15),
          downOrdinal: fc.nat(6),
          unknownLeaderAt: fc.nat(30),
          unknownLeaderFor: fc.nat(12),
        }),
        (s) => {
          const { w, failures } = bootstrap(s.from);
          if (s.upgrade) w.hash = 'h2';
          const d = desiredOf(s.to, w);
          let t = 0;
          for (; t < 500 && !(converged(w, d) && w.down.size === 0); t++) {
            w.down.clear();
            if (t >= s.downAt && t < s.downAt + s.downFor) w.down.add(s.downOrdinal);
            w.metadataLeaderUnknown = t >= s.unknownLeaderAt && t < s.unknownLeaderAt + s.unknownLeaderFor;
            const crash = t < 100 ? s.crashSeeds[t % s.crashSeeds.length] : 0;
            const count = plan(d, observe(w)).actions.length;
            round(w, d, failures, crash % (count + 1));
          }
          if (!converged(w, d)) failures.push(`did not converge to ${s.to} in ${t} ticks`);
          expect(failures).toEqual([]);
        },
      ),
      { numRuns: 60, seed: 1616 },
    );
  });
});

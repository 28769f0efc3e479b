// plan() and deriveStatus() on observed states of a sharded cluster (8 shards, 3 replicas each): one safe
// next action for each, and status.shards / the Rebalancing condition. The simulation
// (plan.sharded.simulation.test.ts) drives whole scale and upgrade runs; these pin single decisions.

import { describe, expect, it } from 'vitest';
import type { DesiredCluster, ObservedCluster, ObservedPlacement, ObservedShard, Plan } from './model.ts';
import { HASH_OLD, desired as baseDesired, healthyCluster, memberId, withAllPods, withPod } from './observed-builder.ts';
import { plan } from './plan.ts';
import { deriveStatus } from './status.ts';

const SHARDS = 8;

function desired(replicas: number, overrides: Partial<DesiredCluster> = {}): DesiredCluster {
  return baseDesired(replicas, { sharding: { shards: SHARDS, replicationFactor: 3 }, ...overrides });
}

/** Shard i on members (i, i+1, i+2) mod `size`, led by the first, every replica caught up. */
function placementOf(size: number, overrides: Partial<ObservedPlacement> = {}): ObservedPlacement {
  const shards: ObservedShard[] = Array.from({ length: SHARDS }, (_, i) => {
    const voters = [0, 1, 2].map((k) => memberId((i + k) % size));
    return { id: i, voters, learners: [], leader: voters[0], revisions: Object.fromEntries(voters.map((v) => [v, 5_000])) };
  });
  return { shards, movesPending: 0, movesInProgress: 0, metadataLeader: memberId(0), ...overrides };
}

function sharded(size: number, placement: ObservedPlacement | null = placementOf(size)): ObservedCluster {
  return { ...healthyCluster(size), placement };
}

function types(p: Plan): string[] {
  return p.actions.filter((a) => a.type !== 'EnsureChildren').map((a) => a.type);
}

describe('plan on a sharded cluster: scale-in', () => {
  it('drains the highest ordinal while it hosts replicas, and does not remove it yet', () => {
    const p = plan(desired(3), sharded(4));
    expect(p.actions).toContainEqual({ type: 'DrainMember', memberId: memberId(3), memberName: 'demo-3', replicasRemaining: 6 });
    expect(types(p)).toEqual(['DrainMember']);
    expect(p.progress).toEqual({ reason: 'Draining', message: 'draining demo-3: 6 shard replica(s) still on it' });
  });

  it('removes it and shrinks the StatefulSet once it hosts no replica', () => {
    const placement = placementOf(3);
    expect(types(plan(desired(3), sharded(4, placement)))).toEqual(['RemoveMember', 'ScaleStatefulSet']);
  });

  it('counts a learner replica as hosted (a move onto it in flight)', () => {
    const placement = placementOf(3);
    const withLearner = { ...placement, shards: placement.shards.map((s, i) => (i === 2 ? { ...s, learners: [memberId(3)] } : s)) };
    expect(types(plan(desired(3), sharded(4, withLearner)))).toEqual(['DrainMember']);
  });

  it('waits without a placement view: it cannot tell what the member hosts', () => {
    const p = plan(desired(3), sharded(4, null));
    expect(types(p)).toEqual([]);
    expect(p.progress?.message).toMatch(/no member answered GetPlacement/);
  });

  it('refuses to go below the replication factor with a clear message', () => {
    const p = plan(desired(1), sharded(3));
    expect(types(p)).toEqual([]);
    expect(p.progress).toEqual({
      reason: 'ScaleInRefused',
      message: 'not removing demo-2: the 2 member(s) left could not hold 3 replicas of every shard (spec.replicationFactor 3); set spec.replicas to at least 3',
    });
  });

  it('with replicationFactor 0 (every shard on every member) removes without draining', () => {
    expect(types(plan(desired(3, { sharding: { shards: SHARDS, replicationFactor: 0 } }), sharded(4)))).toEqual(['RemoveMember', 'ScaleStatefulSet']);
  });
});

describe('plan on a sharded cluster: scale-out and settling', () => {
  it('does not add the next member while replicas move, and is not converged until they stop', () => {
    const moving = placementOf(3, { movesInProgress: 2, movesPending: 1 });
    const p = plan(desired(5), sharded(3, moving));
    expect(types(p)).toEqual([]);
    expect(p.progress).toEqual({ reason: 'Rebalancing', message: 'waiting for the placement to settle before adding demo-3' });
    const q = plan(desired(3), sharded(3, moving));
    expect(q.progress).toEqual({ reason: 'Rebalancing', message: 'replicas are moving: 2 in progress, 1 pending' });
    expect(plan(desired(3), sharded(3)).progress).toBeNull();
  });

  it('marks up again a wanted member that hosts nothing on a settled placement (a drain called off)', () => {
    const p = plan(desired(4), sharded(4, placementOf(3)));
    expect(p.actions).toContainEqual({ type: 'UndrainMember', memberId: memberId(3), memberName: 'demo-3' });
  });
});

describe('plan on a sharded cluster: rolling upgrade', () => {
  const outdated = (size: number, placement: ObservedPlacement | null = placementOf(size)): ObservedCluster => ({ ...withAllPods(healthyCluster(size), { templateHash: HASH_OLD }), placement });

  it('moves the shard leaderships of a follower away in the same round as deleting its pod', () => {
    const p = plan(desired(3), outdated(3));
    expect(types(p)).toEqual(['TransferLeaderships', 'DeletePod']);
    expect(p.actions[2]).toMatchObject({ podName: 'demo-2' });
    expect(p.actions[1]).toMatchObject({ memberId: memberId(2) });
  });

  it('deletes a pod leading nothing without a transfer', () => {
    const placement = placementOf(3);
    const ledBy0 = { ...placement, shards: placement.shards.map((s) => ({ ...s, leader: s.voters.includes(memberId(0)) ? memberId(0) : s.voters[0] })) };
    const p = plan(desired(3), { ...withPod(outdated(3, ledBy0), 0, { templateHash: 'bbbbbbbbbbbbbbbb' }), placement: { ...ledBy0, shards: ledBy0.shards.map((s) => ({ ...s, leader: memberId(0) === s.leader ? s.leader : s.voters.find((v) => v !== memberId(2)) ?? s.leader })) } });
    expect(types(p)).toEqual(['DeletePod']);
    expect(p.actions[1]).toMatchObject({ podName: 'demo-2' });
  });

  it('waits while a shard is under-replicated or a replica is not caught up, naming the shard', () => {
    const placement = placementOf(3);
    const short = { ...placement, shards: placement.shards.map((s, i) => (i === 5 ? { ...s, voters: s.voters.slice(0, 2) } : s)) };
    const p = plan(desired(3), outdated(3, short));
    expect(types(p)).toEqual([]);
    expect(p.progress?.message).toMatch(/waiting: shard 5 is under-replicated \(2\/3 replicas on members that answer\)/);
    const behind = { ...placement, shards: placement.shards.map((s, i) => (i === 4 ? { ...s, revisions: { ...s.revisions, [s.voters[2]]: 3_000 } } : s)) };
    expect(plan(desired(3), outdated(3, behind)).progress?.message).toMatch(/shard 4's replica on \w+ is not caught up/);
    expect(types(plan(desired(3), outdated(3, placementOf(3, { movesInProgress: 1 }))))).toEqual([]);
  });

  it('waits while no answering member knows the metadata group\'s leader: its pod could not be kept for last', () => {
    for (const [metadataLeader, why] of [['', /waiting: the metadata group has no leader/], ['ffffffffffff', /waiting: the metadata group's leader ffffffffffff does not answer/]] as const) {
      const p = plan(desired(3), outdated(3, placementOf(3, { metadataLeader })));
      expect(types(p)).toEqual([]);
      expect(p.progress?.message).toMatch(why);
    }
  });

  it('upgrades the metadata group\'s leader last, after the cluster group\'s leader', () => {
    // Member 0 leads the cluster group, member 1 the metadata group, member 2 is updated already.
    const placement = placementOf(3, { metadataLeader: memberId(1) });
    const observed = { ...withPod(outdated(3, placement), 2, { templateHash: 'bbbbbbbbbbbbbbbb' }) };
    const first = plan(desired(3), observed);
    expect(types(first)).toEqual(['MoveLeader']);
    expect(first.actions[1]).toMatchObject({ fromMemberId: memberId(0), toMemberId: memberId(2) });
    // Once member 0 no longer leads the cluster group, it goes before the metadata leader.
    const moved = { ...observed, members: observed.members!.map((m) => ({ ...m, isLeader: m.ordinal === 2 })) };
    const second = plan(desired(3), moved);
    expect(second.actions.find((a) => a.type === 'DeletePod')).toMatchObject({ podName: 'demo-0' });
    // Then the metadata leader, its leaderships moved first.
    const last = { ...withPod(moved, 0, { templateHash: 'bbbbbbbbbbbbbbbb' }) };
    expect(types(plan(desired(3), last))).toEqual(['TransferLeaderships', 'DeletePod']);
    expect(plan(desired(3), last).actions.find((a) => a.type === 'DeletePod')).toMatchObject({ podName: 'demo-1' });
  });
});

describe('status of a sharded cluster', () => {
  const statusOf = (observed: ObservedCluster, p: Plan): ReturnType<typeof deriveStatus> =>
    deriveStatus({ desired: desired(observed.members?.length ?? 3), observed, plan: p, generation: 1, selector: 's', previousConditions: [], now: '2026-01-01T00:00:00Z' });

  it('status.shards counts healthy and under-replicated shards and the moves; Rebalancing follows the moves', () => {
    const placement = placementOf(3, { movesInProgress: 2, movesPending: 3 });
    const short = { ...placement, shards: placement.shards.map((s, i) => (i === 1 ? { ...s, voters: s.voters.slice(0, 2) } : s)) };
    const s = statusOf(sharded(3, short), plan(desired(3), sharded(3, short)));
    expect(s.shards).toEqual({ total: 8, healthy: 7, underReplicated: 1, movesPending: 3, movesInProgress: 2, summary: '7/8' });
    expect(s.conditions.find((c) => c.type === 'Rebalancing')).toMatchObject({ status: 'True', reason: 'MovingReplicas', message: '2 shard move(s) in progress, 3 pending' });
    const settled = statusOf(sharded(3), plan(desired(3), sharded(3)));
    expect(settled.shards?.summary).toBe('8/8');
    expect(settled.conditions.find((c) => c.type === 'Rebalancing')).toMatchObject({ status: 'False', reason: 'Settled' });
  });

  it('Rebalancing is True while a member drains, Unknown without a placement view; absent on a one-group cluster', () => {
    const draining = sharded(4);
    const s = deriveStatus({ desired: desired(3), observed: draining, plan: plan(desired(3), draining), generation: 1, selector: 's', previousConditions: [], now: '2026-01-01T00:00:00Z' });
    expect(s.conditions.find((c) => c.type === 'Rebalancing')).toMatchObject({ status: 'True', reason: 'Draining' });
    expect(statusOf(sharded(3, null), plan(desired(3), sharded(3, null))).conditions.find((c) => c.type === 'Rebalancing')?.status).toBe('Unknown');
    const single = deriveStatus({ desired: baseDesired(3), observed: healthyCluster(3), plan: plan(baseDesired(3), healthyCluster(3)), generation: 1, selector: 's', previousConditions: [], now: '2026-01-01T00:00:00Z' });
    expect(single.shards).toBeUndefined();
    expect(single.conditions.map((c) => c.type)).not.toContain('Rebalancing');
  });
});

describe('plan with spec.zones', () => {
  it('writes each scheduled pod\'s node zone on it, "-" for a node without the label, alongside the next step', () => {
    const base = healthyCluster(3);
    const observed: ObservedCluster = {
      ...base,
      pods: base.pods.map((p) => (p.ordinal === 0 ? { ...p, nodeName: 'n0', zone: 'zone-a' } : p.ordinal === 1 ? { ...p, nodeName: 'n1' } : { ...p, nodeName: 'n2' })),
      nodeZones: { n1: 'zone-b', n2: '' },
    };
    const p = plan(baseDesired(3, { zoneTopologyKey: 'topology.kubernetes.io/zone' }), observed);
    expect(p.actions.filter((a) => a.type === 'AnnotatePodZone')).toEqual([
      { type: 'AnnotatePodZone', podName: 'demo-1', zone: 'zone-b' },
      { type: 'AnnotatePodZone', podName: 'demo-2', zone: '-' },
    ]);
    expect(plan(baseDesired(3), observed).actions.filter((a) => a.type === 'AnnotatePodZone')).toEqual([]);
  });
});

// The reconcile decision: plan(desired, observed) → the one safe next step, as a pure function.
// Every step is re-derived from the observed state (Kubernetes objects + etcd membership), never from
// memory, so an operator killed between any two actions picks up exactly where the cluster is.
//
// Order of concerns, first match wins:
//   fresh → create children (bootstrap all members at once, initial-cluster-state new)
//   outdated pods that are not ready → delete (broken pods first; never lowers availability)
//   bootstrapping → wait for every member, then flip the ConfigMap to 'existing'
//   membership unreadable → wait
//   a learner in flight → resume it: scale the StatefulSet to it, promote it once caught up, or drop it
//   voters beyond spec.replicas → highest ordinal: move leadership away, MemberRemove, shrink
//   StatefulSet larger than the membership → shrink (resumes a scale-in cut short)
//   outdated pods → followers one at a time (highest ordinal first), leader last after MoveLeader
//   fewer voters than spec.replicas → retire a stale PVC, then MemberAdd as learner + grow StatefulSet
// PVCs of removed members are retired per spec.storage.retentionPolicyOnScaleIn alongside any step.
//
// A sharded cluster (spec.shards > 1) adds, from the observed placement (shard-health.ts):
//   scale-in  → refused below spec.replicationFactor members; else Placement/Drain the target until it
//               hosts no replica, and only then the steps above (MemberRemove, shrink, retire the PVC)
//   scale-out → as above, then wait for the placement to settle (no move pending or in progress)
//               before the next member and before calling the cluster converged
//   upgrade   → only while every shard is healthy, caught up and not moving; members leading neither
//               the cluster group nor the metadata group first, the metadata group's leader last; a
//               pod is deleted right after TransferLeaderships has moved its shard leaderships away
//   a wanted member hosting nothing on a settled placement was left draining: undrain it
//
// Before all of that, whose data the PVCs hold (when desired.uid is known): a PVC labelled with another
// SynodCluster's uid, or an unlabelled one while no StatefulSet of ours exists, is another cluster's
// data (one deleted with whenDeleted: Retain). Starting on it would bring back the old member and
// cluster ids under the new name and token, so nothing at all is done (ForeignData) until the PVCs are
// deleted or the SynodCluster is annotated synod.dev/adopt-data=true. Our own PVCs get our uid label
// at first sight and an owner reference exactly when spec.persistence.whenDeleted is Delete.

import type { Action, DesiredCluster, ForeignData, ObservedCluster, ObservedMember, ObservedPod, Plan, Progress } from './model.ts';
import { NO_ZONE } from './model.ts';
import { peerUrl, podName } from './naming.ts';
import { drainsOnScaleIn, isRebalancing, leadershipsOf, replicasOn, shardingOf, shardsBlockingDisruption } from './shard-health.ts';

/** A member whose applied index is within this many entries of the leader's counts as caught up. */
export const CAUGHT_UP_MAX_LAG_ENTRIES = 100;
/** Requeue while a step is in flight (pods starting, learner catching up, leadership moving). */
export const REQUEUE_IN_FLIGHT_MS = 2_000;
/** Requeue of a converged cluster: etcd health has no watch, so look again now and then. */
export const REQUEUE_STEADY_MS = 30_000;

export function quorumSize(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

export function plan(desired: DesiredCluster, observed: ObservedCluster): Plan {
  const foreign = foreignData(desired, observed);
  if (foreign !== null && desired.adoptData !== true) {
    return { actions: [], progress: { reason: 'ForeignData', message: foreign.message }, requeueAfterMs: REQUEUE_STEADY_MS, foreignData: foreign };
  }
  const decided = planSteps(desired, observed);
  const metadata = [...pvcMetadataActions(desired, observed, decided.actions), ...zoneAnnotationActions(desired, observed)];
  if (metadata.length > 0) decided.actions.splice(decided.actions[0]?.type === 'EnsureChildren' ? 1 : 0, 0, ...metadata);
  return decided;
}

/** PVCs holding another SynodCluster's data, or null when there are none (or ownership is not tracked). */
export function foreignData(desired: DesiredCluster, observed: ObservedCluster): ForeignData | null {
  const uid = desired.uid;
  if (uid === undefined) return null;
  const ownerUid = observed.statefulSet?.ownerUid;
  const stsOurs = observed.statefulSet !== null && (ownerUid === undefined || ownerUid === uid);
  const foreign = observed.pvcs.filter((c) => !c.terminating && (c.clusterUid !== undefined ? c.clusterUid !== uid : !stsOurs));
  if (foreign.length === 0) return null;
  const pvcs = foreign.map((c) => c.name);
  const clusterUids = [...new Set(foreign.map((c) => c.clusterUid ?? 'unlabelled'))];
  const message = `PVC(s) ${pvcs.join(', ')} hold the data of another SynodCluster named ${desired.name} (uid ${clusterUids.join(', ')}), ` +
    'not this one: nothing is started on it. Delete the PVCs to start afresh, or annotate this SynodCluster ' +
    'synod.dev/adopt-data=true to run on that data (its member and cluster ids).';
  return { pvcs, clusterUids, message };
}

/** Labels our PVCs with our uid and sets or removes their owner reference per whenDeleted. */
function pvcMetadataActions(desired: DesiredCluster, observed: ObservedCluster, planned: readonly Action[]): Action[] {
  if (desired.uid === undefined) return [];
  const deleteWithCluster = desired.whenDeleted === 'Delete';
  const actions: Action[] = [];
  for (const pvc of observed.pvcs) {
    if (pvc.terminating || planned.some((a) => a.type === 'DeletePvc' && a.pvcName === pvc.name)) continue;
    const labelled = pvc.clusterUid === desired.uid;
    if (labelled && (pvc.ownedByCluster === true) === deleteWithCluster) continue;
    const reason = !labelled
      ? pvc.clusterUid === undefined ? 'record whose data it holds' : `adopt data of SynodCluster ${pvc.clusterUid}`
      : deleteWithCluster ? 'persistence.whenDeleted is Delete' : 'persistence.whenDeleted is Retain';
    actions.push({ type: 'EnsurePvcMetadata', pvcName: pvc.name, deleteWithCluster, reason });
  }
  return actions;
}

function planSteps(desired: DesiredCluster, observed: ObservedCluster): Plan {
  const sts = observed.statefulSet;
  if (sts === null) {
    return inFlight(
      [{ type: 'EnsureChildren', statefulSetReplicas: desired.replicas, clusterState: 'new' }],
      { reason: 'Creating', message: `creating a ${desired.replicas}-member cluster` },
    );
  }
  const clusterState = observed.bootstrapState ?? 'existing';
  const ensure: Action = { type: 'EnsureChildren', statefulSetReplicas: sts.replicas, clusterState };
  const actions: Action[] = [ensure];
  const pods = livePods(observed.pods, sts.replicas);
  const members = observed.members;

  // Broken pods first: an outdated pod that is not ready serves nobody, so replacing it is always safe.
  // Once membership is known, only pods of current members count (a removed member's pod awaits the shrink).
  const memberOrdinals = members === null ? null : new Set(members.map((m) => m.ordinal));
  const brokenOutdated = pods
    .filter((p) => !p.terminating && !p.ready && p.templateHash !== desired.templateHash)
    .filter((p) => memberOrdinals === null || clusterState === 'new' || memberOrdinals.has(p.ordinal))
    .sort(byOrdinalDescending);
  if (brokenOutdated.length > 0) {
    const pod = brokenOutdated[0];
    actions.push({ type: 'DeletePod', podName: pod.name, reason: 'outdated and not ready' });
    return inFlight(actions, { reason: 'ReplacingBrokenPod', message: `replacing broken pod ${pod.name}` });
  }

  if (clusterState === 'new') {
    const allUp =
      members !== null &&
      members.filter((m) => !m.isLearner && m.healthy).length === sts.replicas &&
      pods.length === sts.replicas &&
      pods.every((p) => p.ready);
    if (!allUp) return inFlight(actions, { reason: 'Bootstrapping', message: 'waiting for every initial member' });
    ensure.clusterState = 'existing';
    return inFlight(actions, { reason: 'Bootstrapped', message: 'every initial member is up' });
  }

  if (members === null) {
    return inFlight(actions, { reason: 'MembersUnreachable', message: 'no member answered MemberList' });
  }

  retireStalePvcs(desired, observed, sts.replicas, members, actions);

  const voters = members.filter((m) => !m.isLearner);
  const learners = members.filter((m) => m.isLearner).sort(byMemberOrdinalDescending);
  const sharding = shardingOf(desired);
  const leader = members.find((m) => m.isLeader) ?? null;

  // A learner in flight (MemberAdd done): finish or undo it before anything else.
  if (learners.length > 0) {
    const learner = learners[0];
    const ordinal = learner.ordinal;
    if (learners.length > 1 || ordinal === null || ordinal >= desired.replicas) {
      actions.push({ type: 'RemoveMember', memberId: learner.id, memberName: memberLabel(desired, learner), reason: 'learner no longer wanted' });
      if (ordinal !== null && sts.replicas > ordinal && ordinal >= voterTop(voters) + 1) {
        actions.push({ type: 'ScaleStatefulSet', replicas: ordinal, reason: 'drop the unwanted learner pod' });
      }
      return inFlight(actions, { reason: 'RemovingLearner', message: `removing learner ${memberLabel(desired, learner)}` });
    }
    if (sts.replicas < ordinal + 1) {
      actions.push({ type: 'ScaleStatefulSet', replicas: ordinal + 1, reason: `start learner ${podName(desired.name, ordinal)}` });
      return inFlight(actions, { reason: 'ScalingOut', message: `starting learner ${podName(desired.name, ordinal)}` });
    }
    const pod = pods.find((p) => p.ordinal === ordinal);
    if (pod !== undefined && pod.ready && learner.healthy && caughtUp(learner, leader)) {
      actions.push({ type: 'PromoteLearner', memberId: learner.id, memberName: pod.name });
      return inFlight(actions, { reason: 'ScalingOut', message: `promoting ${pod.name}` });
    }
    return inFlight(actions, { reason: 'ScalingOut', message: `learner ${podName(desired.name, ordinal)} is catching up` });
  }

  const top = voterTop(voters);
  // The StatefulSet has pods above the highest member: a scale-in cut short after MemberRemove.
  if (sts.replicas > top + 1) {
    actions.push({ type: 'ScaleStatefulSet', replicas: top + 1, reason: 'pods above the highest member' });
    return inFlight(actions, { reason: 'ScalingIn', message: `shrinking the StatefulSet to ${top + 1}` });
  }

  // Scale in: voters beyond the desired size (or not ours at all), highest ordinal first.
  const excess = voters
    .filter((m) => m.ordinal === null || m.ordinal >= desired.replicas)
    .sort(byMemberOrdinalDescending);
  if (excess.length > 0) {
    const target = excess[0];
    const label = memberLabel(desired, target);
    const drain = drainStep(desired, observed, voters, target, label);
    if (drain !== null) {
      actions.push(...drain.actions);
      return inFlight(actions, drain.progress);
    }
    if (target.isLeader) {
      const to = transferee(voters, leader, (m) => m !== target && m.ordinal !== null && m.ordinal < desired.replicas, pods);
      if (to === null) return inFlight(actions, { reason: 'ScalingIn', message: `no healthy member to take leadership from ${label}` });
      actions.push({ type: 'MoveLeader', fromMemberId: target.id, toMemberId: to.id, toMemberName: memberLabel(desired, to), reason: `${label} is being removed` });
      return inFlight(actions, { reason: 'ScalingIn', message: `moving leadership away from ${label}` });
    }
    const remaining = voters.filter((m) => m !== target);
    const healthyRemaining = remaining.filter((m) => m.healthy).length;
    if (healthyRemaining < quorumSize(remaining.length)) {
      return inFlight(actions, { reason: 'ScalingIn', message: `removing ${label} now would leave no healthy quorum` });
    }
    actions.push({ type: 'RemoveMember', memberId: target.id, memberName: label, reason: 'scale in' });
    if (target.ordinal !== null && sts.replicas > target.ordinal && target.ordinal > voterTop(remaining)) {
      actions.push({ type: 'ScaleStatefulSet', replicas: target.ordinal, reason: `${label} left the cluster` });
    }
    return inFlight(actions, { reason: 'ScalingIn', message: `removing ${label}` });
  }

  const missingOrRestarting = sts.replicas - pods.filter((p) => !p.terminating).length;
  const outdated = pods.filter((p) => p.templateHash !== desired.templateHash).sort(byOrdinalDescending);
  const healthy = isHealthy(voters, leader, pods, sts.replicas);

  // Rolling upgrade: one pod at a time, only while every member is ready and caught up.
  if (outdated.length > 0) {
    const progress: Progress = { reason: 'Upgrading', message: `${outdated.length} pod(s) to update` };
    if (missingOrRestarting > 0 || !healthy) return inFlight(actions, { ...progress, message: `${progress.message}; waiting for every member to be ready and caught up` });
    const blocking = sharding === null ? null : shardsBlockingDisruption(sharding, voters, observed.placement);
    if (blocking !== null) return inFlight(actions, { ...progress, message: `${progress.message}; waiting: ${blocking}` });
    const memberOf = (p: ObservedPod): ObservedMember | undefined => voters.find((m) => m.ordinal === p.ordinal);
    const metadataLeader = sharding === null ? '' : observed.placement?.metadataLeader ?? '';
    const leadsMetadata = (p: ObservedPod): boolean => metadataLeader !== '' && memberOf(p)?.id === metadataLeader;
    const follower = outdated.find((p) => memberOf(p)?.isLeader !== true && !leadsMetadata(p));
    if (follower !== undefined) {
      actions.push(...deletePodActions(desired, observed, voters, memberOf(follower), follower, 'rolling upgrade (follower)'));
      return inFlight(actions, progress);
    }
    // Only members leading a group are left: the cluster group's leader first, the metadata group's last.
    const leaderPod = [...outdated].sort((a, b) => Number(leadsMetadata(a)) - Number(leadsMetadata(b)))[0];
    const current = memberOf(leaderPod);
    if (current !== undefined && !current.isLeader && voters.length > 1) {
      actions.push(...deletePodActions(desired, observed, voters, current, leaderPod, 'rolling upgrade (metadata group leader last)'));
      return inFlight(actions, progress);
    }
    if (current !== undefined && leader !== null) {
      const updated = new Set(pods.filter((p) => p.templateHash === desired.templateHash).map((p) => p.ordinal));
      const to =
        transferee(voters, leader, (m) => m !== current && m.ordinal !== null && updated.has(m.ordinal), pods) ??
        transferee(voters, leader, (m) => m !== current, pods);
      if (to !== null) {
        actions.push({ type: 'MoveLeader', fromMemberId: current.id, toMemberId: to.id, toMemberName: memberLabel(desired, to), reason: 'rolling upgrade (leader last)' });
        return inFlight(actions, { ...progress, message: `moving leadership away from ${leaderPod.name} before updating it` });
      }
    }
    // A single-member cluster has nobody to hand leadership to: update it in place.
    if (voters.length === 1) {
      actions.push({ type: 'DeletePod', podName: leaderPod.name, reason: 'rolling upgrade (only member)' });
      return inFlight(actions, progress);
    }
    return inFlight(actions, { ...progress, message: `${progress.message}; no member can take leadership` });
  }

  // Scale out: one learner at a time, the next ordinal, on a healthy cluster.
  if (voters.length < desired.replicas) {
    const ordinal = top + 1;
    const name = podName(desired.name, ordinal);
    if (missingOrRestarting > 0 || !healthy) {
      return inFlight(actions, { reason: 'ScalingOut', message: `waiting for every member to be ready before adding ${name}` });
    }
    if (sharding !== null && observed.placement !== undefined && (observed.placement === null || isRebalancing(observed.placement))) {
      return inFlight(actions, { reason: 'Rebalancing', message: `waiting for the placement to settle before adding ${name}` });
    }
    const stale = observed.pvcs.find((c) => c.ordinal === ordinal);
    if (stale !== undefined) {
      const queued = actions.some((a) => a.type === 'DeletePvc' && a.pvcName === stale.name);
      if (!stale.terminating && !queued) actions.push({ type: 'DeletePvc', pvcName: stale.name, reason: `stale data of a former ${name}` });
      return inFlight(actions, { reason: 'ScalingOut', message: `retiring stale PVC ${stale.name} before adding ${name}` });
    }
    actions.push({ type: 'AddLearner', ordinal, memberName: name, peerUrl: peerUrl(desired.name, desired.namespace, ordinal, desired.peerTls === true) });
    actions.push({ type: 'ScaleStatefulSet', replicas: ordinal + 1, reason: `start learner ${name}` });
    return inFlight(actions, { reason: 'ScalingOut', message: `adding ${name} as a learner` });
  }

  if (missingOrRestarting > 0 || !healthy) {
    return inFlight(actions, { reason: 'Recovering', message: 'waiting for every member to be ready' });
  }
  if (sharding !== null) {
    const settling = settleStep(desired, observed, voters);
    if (settling !== null) {
      actions.push(...settling.actions);
      return inFlight(actions, settling.progress);
    }
  }
  return { actions, progress: null, requeueAfterMs: REQUEUE_STEADY_MS };
}

// ---- Sharding (issue 16) ----

interface Step {
  actions: Action[];
  progress: Progress;
}

/**
 * Scale-in of a sharded cluster with placement on a subset: refused when the members left could not
 * hold spec.replicationFactor replicas of every shard; else drain `target` until it hosts no replica.
 * null: nothing to drain (one group, R = 0, or the target hosts nothing) — go on to MemberRemove.
 */
function drainStep(desired: DesiredCluster, observed: ObservedCluster, voters: readonly ObservedMember[], target: ObservedMember, label: string): Step | null {
  const sharding = shardingOf(desired);
  if (!drainsOnScaleIn(sharding) || sharding === null) return null;
  const remaining = voters.length - 1;
  if (remaining < sharding.replicationFactor) {
    return {
      actions: [],
      progress: {
        reason: 'ScaleInRefused',
        message: `not removing ${label}: the ${remaining} member(s) left could not hold ${sharding.replicationFactor} replicas of every shard ` +
          `(spec.replicationFactor ${sharding.replicationFactor}); set spec.replicas to at least ${sharding.replicationFactor}`,
      },
    };
  }
  const placement = observed.placement;
  if (placement === null || placement === undefined) {
    return { actions: [], progress: { reason: 'ScalingIn', message: `no member answered GetPlacement: cannot tell what ${label} still hosts` } };
  }
  const hosted = replicasOn(placement, target.id);
  if (hosted === 0) return null;
  return {
    actions: [{ type: 'DrainMember', memberId: target.id, memberName: label, replicasRemaining: hosted }],
    progress: { reason: 'Draining', message: `draining ${label}: ${hosted} shard replica(s) still on it` },
  };
}

/**
 * The actions that delete `pod` during a rolling upgrade: on a sharded cluster whose member there leads
 * shards or the metadata group, TransferLeaderships first, in the same round (the reconciler stops
 * before the delete if leaderships remain), so that no shard waits out an election timeout.
 */
function deletePodActions(desired: DesiredCluster, observed: ObservedCluster, voters: readonly ObservedMember[], member: ObservedMember | undefined, pod: ObservedPod, reason: string): Action[] {
  const deletePod: Action = { type: 'DeletePod', podName: pod.name, reason };
  const placement = observed.placement;
  if (shardingOf(desired) === null || member === undefined || placement === null || placement === undefined || voters.length < 2) return [deletePod];
  if (leadershipsOf(placement, member.id) === 0) return [deletePod];
  return [{ type: 'TransferLeaderships', memberId: member.id, memberName: memberLabel(desired, member), reason: `${pod.name} is about to be deleted (${reason})` }, deletePod];
}

/**
 * With spec.zones, each scheduled pod gets its node's zone as an annotation, which its entrypoint reads
 * (downward API volume) before starting the server with --zone: a pod cannot read its node's labels
 * itself without its own API credentials, which server pods do not have. Alongside any step: a pod
 * waiting for its zone is not ready, and every other step may be waiting for it.
 */
function zoneAnnotationActions(desired: DesiredCluster, observed: ObservedCluster): Action[] {
  if (desired.zoneTopologyKey === undefined) return [];
  const actions: Action[] = [];
  for (const pod of observed.pods) {
    if (pod.terminating || pod.zone !== undefined || pod.nodeName === undefined) continue;
    const zone = observed.nodeZones?.[pod.nodeName];
    if (zone === undefined) continue;
    actions.push({ type: 'AnnotatePodZone', podName: pod.name, zone: zone === '' ? NO_ZONE : zone });
  }
  return actions;
}

/**
 * A converged membership of a sharded cluster is converged only once its placement is: while replicas
 * move, Rebalancing. A wanted member hosting nothing on a settled placement (R > 0) is marked draining
 * (a scale-in called off after its drain): undrain it so the placer gives it its share.
 */
function settleStep(desired: DesiredCluster, observed: ObservedCluster, voters: readonly ObservedMember[]): Step | null {
  const placement = observed.placement;
  if (placement === undefined) return null;
  if (placement === null) return { actions: [], progress: { reason: 'PlacementUnknown', message: 'no member answered GetPlacement' } };
  if (isRebalancing(placement)) {
    return { actions: [], progress: { reason: 'Rebalancing', message: `replicas are moving: ${placement.movesInProgress} in progress, ${placement.movesPending} pending` } };
  }
  const sharding = shardingOf(desired);
  if (sharding === null || !drainsOnScaleIn(sharding)) return null;
  // With fewer replicas than members (S·R < N) some members rightly host nothing.
  if (sharding.shards * Math.min(sharding.replicationFactor, voters.length) < voters.length) return null;
  const idle = voters.filter((m) => m.ordinal !== null && m.ordinal < desired.replicas && replicasOn(placement, m.id) === 0);
  if (idle.length === 0) return null;
  return {
    actions: idle.map((m): Action => ({ type: 'UndrainMember', memberId: m.id, memberName: memberLabel(desired, m) })),
    progress: { reason: 'Rebalancing', message: `${idle.map((m) => memberLabel(desired, m)).join(', ')} host(s) no replica: marking up again` },
  };
}

/** Whether every voter answers, a leader is known, every one is caught up, and every pod is ready. */
export function isHealthy(voters: readonly ObservedMember[], leader: ObservedMember | null, pods: readonly ObservedPod[], stsReplicas: number): boolean {
  if (leader === null) return false;
  if (!voters.every((m) => m.healthy && caughtUp(m, leader))) return false;
  const ready = pods.filter((p) => p.ready && !p.terminating && p.ordinal < stsReplicas).length;
  return ready === stsReplicas;
}

export function caughtUp(member: ObservedMember, leader: ObservedMember | null): boolean {
  if (leader === null) return false;
  return member.healthy && member.appliedIndex + CAUGHT_UP_MAX_LAG_ENTRIES >= leader.appliedIndex;
}

function retireStalePvcs(desired: DesiredCluster, observed: ObservedCluster, stsReplicas: number, members: readonly ObservedMember[], actions: Action[]): void {
  if (desired.retentionPolicy !== 'Delete') return;
  for (const pvc of observed.pvcs) {
    if (pvc.terminating || pvc.ordinal < stsReplicas) continue;
    if (observed.pods.some((p) => p.ordinal === pvc.ordinal)) continue;
    if (members.some((m) => m.ordinal === pvc.ordinal)) continue;
    actions.push({ type: 'DeletePvc', pvcName: pvc.name, reason: 'member removed on scale-in (retention policy Delete)' });
  }
}

function transferee(
  voters: readonly ObservedMember[],
  leader: ObservedMember | null,
  eligible: (m: ObservedMember) => boolean,
  pods: readonly ObservedPod[],
): ObservedMember | null {
  const candidates = voters
    .filter((m) => eligible(m) && m.healthy && caughtUp(m, leader))
    .filter((m) => pods.some((p) => p.ordinal === m.ordinal && p.ready && !p.terminating))
    .sort((a, b) => (a.ordinal ?? Infinity) - (b.ordinal ?? Infinity));
  return candidates[0] ?? null;
}

function livePods(pods: readonly ObservedPod[], stsReplicas: number): ObservedPod[] {
  return pods.filter((p) => p.ordinal < stsReplicas);
}

function voterTop(voters: readonly ObservedMember[]): number {
  return voters.reduce((top, m) => (m.ordinal !== null && m.ordinal > top ? m.ordinal : top), -1);
}

function memberLabel(desired: DesiredCluster, m: ObservedMember): string {
  if (m.name !== '') return m.name;
  return m.ordinal !== null ? podName(desired.name, m.ordinal) : m.id;
}

function byOrdinalDescending(a: ObservedPod, b: ObservedPod): number {
  return b.ordinal - a.ordinal;
}

function byMemberOrdinalDescending(a: ObservedMember, b: ObservedMember): number {
  return (b.ordinal ?? Infinity) - (a.ordinal ?? Infinity);
}

function inFlight(actions: Action[], progress: Progress): Plan {
  return { actions, progress, requeueAfterMs: REQUEUE_IN_FLIGHT_MS };
}

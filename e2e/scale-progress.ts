// Whether a scale from `from` to `to` members has started, is under way, or is done, judged from what
// the e2e test can see: the members (status.members or a MemberList) and the StatefulSet's replicas.
// `make e2e` kills the operator only while this says 'in-progress' and checks it again right after the
// kill, so the restart really interrupts a scale instead of restarting an idle operator.

export interface ScaleMember {
  name: string;
  isLearner: boolean;
}

export interface ScaleSnapshot {
  members: readonly ScaleMember[];
  /** spec.replicas of the server StatefulSet; null when it could not be read. */
  statefulSetReplicas: number | null;
}

export type ScaleProgress = 'not-started' | 'in-progress' | 'done';

export function scaleProgress(snapshot: ScaleSnapshot, from: number, to: number): ScaleProgress {
  const voters = snapshot.members.filter((m) => !m.isLearner).length;
  const learners = snapshot.members.length - voters;
  const sts = snapshot.statefulSetReplicas;
  if (learners === 0 && voters === to && (sts === null || sts === to)) return 'done';
  if (learners === 0 && voters === from && (sts === null || sts === from)) return 'not-started';
  return 'in-progress';
}

/** One line for the log: "3 voters + 1 learner (demo-3), StatefulSet 4". */
export function describeScaleSnapshot(snapshot: ScaleSnapshot): string {
  const learners = snapshot.members.filter((m) => m.isLearner);
  const voters = snapshot.members.length - learners.length;
  const learnerText = learners.length === 0 ? '' : ` + ${learners.length} learner(s) (${learners.map((m) => m.name || 'not started').join(', ')})`;
  return `${voters} voters${learnerText}, StatefulSet ${snapshot.statefulSetReplicas ?? '?'}`;
}

/** status.members of a SynodCluster (role 'learner' for learners) as scale members. */
export function membersFromStatus(statusMembers: readonly { name: string; role: string }[]): ScaleMember[] {
  return statusMembers.map((m) => ({ name: m.name, isLearner: m.role === 'learner' }));
}

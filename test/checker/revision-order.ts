// A cross-key check the per-key partitioning cannot make: etcd's header revisions are one global
// sequence, so (1) no two changes share a revision (every op here touches one key), and (2) real
// time orders revisions: if A completed before B was invoked, B's header revision is at least A's,
// and strictly greater when B changed a key. A stale read of any key shows up here even when the
// key's own history is too sparse to expose it.
import { changedKey, describeOp, type Operation } from './history.ts';

export function checkRevisionOrder(history: ReadonlyArray<Operation>): string[] {
  const violations: string[] = [];
  const known = history.filter((op) => op.output !== null);

  const byRevision = new Map<number, Operation>();
  for (const op of known) {
    if (!changedKey(op.output!)) continue;
    const other = byRevision.get(op.output!.revision);
    if (other) violations.push(`two changes at revision ${op.output!.revision}: ${describeOp(other)} and ${describeOp(op)}`);
    else byRevision.set(op.output!.revision, op);
  }

  const byComplete = [...known].sort((a, b) => a.complete - b.complete);
  const byInvoke = [...known].sort((a, b) => a.invoke - b.invoke);
  let maxBefore = 0;
  let maxOp: Operation | null = null;
  let c = 0;
  for (const b of byInvoke) {
    while (c < byComplete.length && byComplete[c].complete < b.invoke) {
      if (byComplete[c].output!.revision > maxBefore) {
        maxBefore = byComplete[c].output!.revision;
        maxOp = byComplete[c];
      }
      c++;
    }
    const rev = b.output!.revision;
    const changed = changedKey(b.output!);
    if (maxOp && (changed ? rev <= maxBefore : rev < maxBefore)) {
      violations.push(`revision went back in real time: ${describeOp(b)} was invoked after ${describeOp(maxOp)} completed`);
    }
  }
  return violations;
}

// A cross-key check the per-key partitioning cannot make: etcd's header revisions are one global
// sequence, so (1) no two changes share a revision (every op here touches one key), and (2) real
// time orders revisions: if A completed before B was invoked, B's header revision is at least A's,
// and strictly greater when B changed a key. A stale read of any key shows up here even when the
// key's own history is too sparse to expose it.
//
// On a sharded cluster (`domainOf` given: key → its shard) (2) is weaker, as the design brief allows: a
// read's header is its shard's last applied revision, so it is ordered in real time only against
// operations on the same shard. A change still takes its revision from the one oracle after it was
// invoked, so a change is ordered against every operation that completed before it, on any shard.
import { changedKey, describeOp, type Operation } from './history.ts';

export function checkRevisionOrder(history: ReadonlyArray<Operation>, domainOf: (key: string) => string = () => ''): string[] {
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
  // The newest revision completed before the current invoke: over all operations, and per domain.
  let newest: Operation | null = null;
  const newestIn = new Map<string, Operation>();
  const revisionOf = (op: Operation | null | undefined): number => op?.output?.revision ?? 0;
  let c = 0;
  for (const b of byInvoke) {
    while (c < byComplete.length && byComplete[c].complete < b.invoke) {
      const a = byComplete[c++];
      if (revisionOf(a) > revisionOf(newest)) newest = a;
      const domain = domainOf(a.input.key);
      if (revisionOf(a) > revisionOf(newestIn.get(domain))) newestIn.set(domain, a);
    }
    const rev = b.output!.revision;
    const changed = changedKey(b.output!);
    const before = changed ? newest : (newestIn.get(domainOf(b.input.key)) ?? null);
    if (before && (changed ? rev <= revisionOf(before) : rev < revisionOf(before))) {
      violations.push(`revision went back in real time: ${describeOp(b)} was invoked after ${describeOp(before)} completed`);
    }
  }
  return violations;
}

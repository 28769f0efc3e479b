// The proposals a shard leader appended to its own log, by index, until the log applies past them. Raft
// never moves an entry: one appended at index i either commits there or is overwritten by another
// leader's entry at i. So once this replica has applied index i and the proposal appended there has not
// settled (its own apply settles it first), it never will: it was lost with its leadership. Its waiter
// can hear so at once ("etcdserver: leader changed", as etcd says of a proposal its leader dropped)
// instead of at its deadline. Pure bookkeeping; KvStateMachine owns the waiters.

export class AppendedProposals {
  /** Ascending by index (proposals of one leadership arrive in index order; a later one may start lower). */
  private readonly byIndex: Array<{ readonly index: number; readonly seq: string }> = [];

  /** The proposal `seq` took log index `index` (> 0) on this replica, as its leader. */
  add(index: number, seq: string): void {
    if (!(Number.isSafeInteger(index) && index > 0)) throw new Error(`appended proposal ${seq}: bad log index ${index}`);
    let at = this.byIndex.length;
    while (at > 0 && this.byIndex[at - 1].index > index) at--;
    this.byIndex.splice(at, 0, { index, seq });
  }

  /** Removes and returns the proposals at or below `appliedIndex`: settled already, or lost. */
  takeThrough(appliedIndex: number): string[] {
    let n = 0;
    while (n < this.byIndex.length && this.byIndex[n].index <= appliedIndex) n++;
    return n === 0 ? [] : this.byIndex.splice(0, n).map((p) => p.seq);
  }

  /** Forgets them all (a snapshot replaced the state: one of them may be in it, applied, unseen). */
  clear(): void {
    this.byIndex.length = 0;
  }

  get size(): number {
    return this.byIndex.length;
  }
}

// Where a replica's own waiting proposals landed in its log, by index, until the log applies past them:
// entries it appended as leader, and entries its leader appended for it (a follower's forwarded proposal,
// which comes back in the leader's appends). Raft never moves an entry: one at index i either commits
// there or is overwritten by another leader's entry at i. So once this replica has applied index i and
// the proposal that was at i here has not settled (its own apply settles it first), it never will: it
// was lost with the leadership that appended it. Its waiter can hear so at once ("etcdserver: leader
// changed", as etcd says of a proposal lost to a leader change) instead of at its deadline. A proposal
// that never reached this replica's log (dropped on the way, or lost before the leader's append came
// here) is not known here and still waits. Pure; KvStateMachine owns the waiters.
import { readNumberVarint, writeVarint } from '../protobuf/varint.ts';

/**
 * The first bytes of every entry `proposer` makes (internal.proto InternalRequest: field 1, proposer, a
 * varint, encoded first); null for proposer 0, which is never written.
 */
export function proposerTag(proposer: string): Uint8Array | null {
  const id = BigInt(proposer);
  if (id === 0n) return null;
  const buf = Buffer.alloc(11);
  buf[0] = 0x08;
  return buf.subarray(0, writeVarint(buf, 1, id));
}

/** The seq (field 2) of an InternalRequest that starts with `tag` (this proposer's); null otherwise. */
export function proposalSeqOf(data: Uint8Array, tag: Uint8Array | null): string | null {
  if (tag === null || data.length <= tag.length + 1) return null;
  for (let i = 0; i < tag.length; i++) if (data[i] !== tag[i]) return null;
  if (data[tag.length] !== 0x10) return null;
  const seq = readNumberVarint(data, tag.length + 1);
  return seq === null ? null : String(seq[0]);
}

export class AppendedProposals {
  /** Ascending by index (proposals of one leadership arrive in index order; a later one may start lower). */
  private readonly byIndex: Array<{ readonly index: number; readonly seq: string }> = [];

  /** The proposal `seq` is at log index `index` (> 0) of this replica's log. */
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

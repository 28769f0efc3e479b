// A shard leader's revision bookkeeping (pure: no I/O, no timers; the shell is shard-write-path.ts).
//
// In a sharded cluster a shard's writes are stamped with revisions from the metadata group's oracle, and
// every replica applies each entry at exactly its revision (KvStateMachine, sharded mode). This module
// decides, for one replica while it leads its shard, which granted revisions may be proposed and when a
// read at a revision R may be served. It owns four numbers and one list:
//
//   - `leaderTerm`: the shard's Raft term this leadership began at (0: not leading, or not ready yet);
//   - `floor`: no revision ≤ floor is ever proposed again in this leadership. It is the maximum of the
//     last revision stamped, `maxReadRevision`, and the start floor;
//   - `maxReadRevision`: the highest revision a read on this shard was (or is being) served at;
//   - `oracleTerm`: the highest oracle term of a grant used here; a grant of a lower term is stale;
//   - `inFlight`: revisions proposed in this leadership and not yet applied on this replica, increasing.
//
// Rules, each asserted:
//   1. Start. A replica that becomes leader at term T is ready only after (a) a read barrier at T, so its
//      whole log, every entry of earlier leaders included, is committed and applied, and (b) a fresh
//      revision F from the oracle. `begin(T, F, applied)` sets maxReadRevision = F and floor = max(F,
//      applied): everything already in the log is below its future stamps, and so is every revision an
//      earlier leader served a read at (that read chose its R from the oracle before this leader asked
//      for F; the oracle's revisions follow real time, see revision-oracle.ts).
//   2. Stamp. One oracle request covers a turn's writes. `stamp(grant, count, T)` accepts the grant only
//      if it was obtained in this very leadership, is not from a stale oracle term, is exactly `count`
//      revisions long and lies wholly above floor; otherwise the whole grant is dropped (a gap) and the
//      writes ask again. Accepted revisions go to `inFlight` and raise floor to the grant's last: the
//      shell proposes them at once, in order, so revisions strictly increase in log order.
//   3. Read at R. `raiseRead(R)` lifts maxReadRevision and floor to at least R *before* the read is
//      served: from then on no write of this leadership can be stamped ≤ R, even with a grant the oracle
//      issued before R existed and that arrives late (the case that would otherwise rewrite history).
//      The read then waits until no in-flight revision ≤ R remains (`readyToRead(R)`), passes a ReadIndex
//      (which also applies every committed entry), and reads the store at R.
//   4. End. `end()` on leadership loss: unused revisions are dropped (gaps), in-flight ones are forgotten
//      (they commit or not by Raft; either way not under this leadership), waiting reads fail.
//
// Why history at R never changes after a read at R on this shard: a write at r ≤ R would have to be
// (a) already in the log when the read's ReadIndex was taken — then the wait for in-flight revisions and
// the ReadIndex made it applied before the read; (b) proposed later by this leader — impossible, floor ≥
// R since raiseRead; (c) proposed later by a later leader — impossible, its floor starts at a fresh
// oracle revision F > R (rule 1); or (d) proposed by an earlier, deposed leader — such an entry was never
// in the log of the leader that served the read (or it is case a), and a read barrier passed at the
// reader's term T means an entry of T is committed, after which no entry of an older term can commit.
import type { ClientGrant } from './oracle-client.ts';

export type StampRefusal = 'not-leading' | 'stale-oracle-term' | 'not-above-floor' | 'wrong-count';

export type StampResult = { readonly ok: true; readonly revisions: readonly number[] } | { readonly ok: false; readonly reason: StampRefusal };

/** Deliberately broken rules, for the simulation's mutation check (never set outside tests). */
export type ShardRevisionsMutation =
  | 'skip-max-read-revision'
  | 'skip-wait-for-proposed'
  | 'close-over-pending-grant'
  | 'propose-before-reads-elsewhere'
  | 'propose-while-txn-prepared'
  | 'propose-below-logged-commit'
  | 'propose-undeferrable-beside-txn';

export class ShardRevisions {
  private leaderTermValue = 0;
  private floorValue = 0;
  private maxReadValue = 0;
  private oracleTermValue = 0;
  private inFlight: number[] = [];
  private readonly mutation: ShardRevisionsMutation | null;
  readonly stats = { grantsUsed: 0, grantsDropped: 0, revisionsStamped: 0, revisionsAbandoned: 0, leaderships: 0 };

  constructor(mutation: ShardRevisionsMutation | null = null) {
    this.mutation = mutation;
  }

  /** The shard term this replica leads and is ready in; 0 when not. */
  get leaderTerm(): number {
    return this.leaderTermValue;
  }

  get maxReadRevision(): number {
    return this.maxReadValue;
  }

  get floor(): number {
    return this.floorValue;
  }

  /** Revisions proposed in this leadership and not yet applied here, increasing. */
  inFlightRevisions(): readonly number[] {
    return this.inFlight;
  }

  /** Rule 1: ready to stamp at shard term `term`, after a barrier; `freshRevision` from the oracle. */
  begin(term: number, freshRevision: number, appliedRevision: number, oracleTerm: number): void {
    if (!Number.isSafeInteger(term) || term < 1) throw new Error(`shard revisions: leadership term ${term} is not a positive integer`);
    if (!Number.isSafeInteger(freshRevision) || freshRevision < 1) throw new Error(`shard revisions: fresh revision ${freshRevision} is not a positive integer`);
    this.leaderTermValue = term;
    this.maxReadValue = freshRevision;
    this.floorValue = Math.max(freshRevision, appliedRevision);
    this.oracleTermValue = Math.max(this.oracleTermValue, oracleTerm);
    this.inFlight = [];
    this.stats.leaderships++;
  }

  /** Rule 4: leadership lost (or the replica stops). */
  end(): void {
    this.leaderTermValue = 0;
    this.inFlight = [];
  }

  /** Rule 2: the revisions for `count` writes from `grant`, obtained while leading at `term`. */
  stamp(grant: ClientGrant, count: number, term: number): StampResult {
    const refuse = (reason: StampRefusal): StampResult => {
      this.stats.grantsDropped++;
      return { ok: false, reason };
    };
    if (this.leaderTermValue === 0 || term !== this.leaderTermValue) return refuse('not-leading');
    if (grant.term < this.oracleTermValue) return refuse('stale-oracle-term');
    if (grant.last - grant.first + 1 !== count || count < 1) return refuse('wrong-count');
    if (grant.first <= this.floorValue) return refuse('not-above-floor');
    this.oracleTermValue = grant.term;
    const revisions: number[] = [];
    for (let r = grant.first; r <= grant.last; r++) revisions.push(r);
    this.inFlight.push(...revisions);
    this.floorValue = grant.last;
    this.stats.grantsUsed++;
    this.stats.revisionsStamped += count;
    return { ok: true, revisions };
  }

  /** A stamped revision whose proposal failed at once (never entered the log): a gap. */
  abandon(revision: number): void {
    const i = this.inFlight.indexOf(revision);
    if (i >= 0) {
      this.inFlight.splice(i, 1);
      this.stats.revisionsAbandoned++;
    }
  }

  /**
   * Entries apply in log order, and this leadership proposed its revisions in increasing order, so
   * every in-flight revision ≤ `revision` has been applied (or was never going to be: a gap).
   */
  appliedThrough(revision: number): void {
    let n = 0;
    while (n < this.inFlight.length && this.inFlight[n] <= revision) n++;
    if (n > 0) this.inFlight.splice(0, n);
  }

  /** Rule 3, first step: from now on nothing of this leadership is stamped at or below `revision`. */
  raiseRead(revision: number): void {
    if (this.leaderTermValue === 0) throw new Error('shard revisions: raiseRead while not leading');
    if (revision > this.maxReadValue) this.maxReadValue = revision;
    if (this.mutation === 'skip-max-read-revision') return;
    if (revision > this.floorValue) this.floorValue = revision;
  }

  /** Rule 3, second step: no revision ≤ `revision` proposed here is still unapplied. */
  readyToRead(revision: number): boolean {
    if (this.mutation === 'skip-wait-for-proposed') return true;
    return this.inFlight.length === 0 || this.inFlight[0] > revision;
  }
}

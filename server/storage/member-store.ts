// What the member needs from its durable store: the interface Member (server/member/member.ts) and its
// snapshot helpers take, so the production store (MemberDb on classic-level) and test doubles (the
// member simulation's crash-losing store, server/member/sim/sim-store.ts) are interchangeable. Only
// the methods the member uses; opening, closing and the cluster record stay with MemberDb.
import type { DbSnapshot, LoadedGroup, ReplicaLast, TurnBatch } from './member-db.ts';

export interface MemberStore {
  /**
   * A group's log, hard state, applied index, membership, snapshot point and state records as
   * stored. A group dropped earlier loads empty with its tombstone's term and vote (a drop a crash
   * cut short is finished first).
   */
  loadGroup(groupId: number): Promise<LoadedGroup>;
  /** Every state-machine record of a group (store-relative keys, sorted), optionally as of a snapshot. */
  stateRecords(groupId: number, snapshot?: DbSnapshot): AsyncGenerator<[Buffer, Buffer]>;
  /** A point-in-time view of the store, taken synchronously: it sees exactly the writes completed so far. */
  snapshot(): DbSnapshot;
  /** Removes a group's state-machine records. */
  clearState(groupId: number): Promise<void>;
  /** Removes log entries up to and including `index`. */
  clearLogThrough(groupId: number, index: number): Promise<void>;
  /**
   * Deletes every key of a group and leaves a tombstone holding its replica's latest term, vote and
   * last log position (the latest of `last` — Raft's in-memory state — the stored hard state and log,
   * and an older tombstone), which the group's next load starts from (hard state, voteFloor). Resolves once the deletion is durable. The caller must
   * not write the group's keys while it runs. Without `last`: a group stored here but not hosted (its
   * replica moved away while this member was down, or a removal a crash cut short), dropped at start.
   */
  dropGroup(groupId: number, last?: ReplicaLast): Promise<void>;
  /** Every group with a key in the store, hosted or not (a tombstone alone does not count), ascending. */
  storedGroupIds(): Promise<number[]>;
  /** Writes one batch atomically; with `sync` it is durable before the promise resolves, without it a crash may lose it. */
  write(batch: TurnBatch, sync: boolean): Promise<void>;
}

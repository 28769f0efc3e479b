// The placer: the metadata group's leader turns the cluster's members (zones, draining marks) into desired
// replicas per shard (server/placement/ring.ts place()) and writes them into the metadata group; each shard's leader then moves its group there (group-membership.ts) and reports the
// membership it reached (a shard-conf entry). The decision (planPlacementChange) is a pure function of the
// metadata state; the shell (Placer) runs it on a timer on the member leading the metadata group.
//
// Why it is safe and converges:
//   - it only writes where shards should be; every membership change is made by the shard's own leader,
//     one Raft change at a time, adding before removing (nextMembershipStep): a stale or superseded
//     desired placement can waste a move, never a quorum;
//   - the whole answer is written at once, and shard leaders move at most a few shards at a time
//     (movesAllowed, from the metadata state every member shares), so snapshot traffic and the number of
//     groups with an extra replica stay bounded; a shard not yet reported is not moved;
//   - place() is anchored to the desired placement already written and deterministic: once written, its
//     answer is a fixed point, and the moves are exactly the ones it chose;
//   - the desired replicas only name members of the cluster group (place() is given those only), and a
//     shard's leader further ignores any that left since (stale records);
//   - a member unreachable for the grace period is placed nothing (its replicas move, adding before
//     removing, so the shard keeps its other voters throughout); it stays a member, and when it is heard
//     again it gets a share back like a joiner.
import type { Logger } from 'pino';
import type { NodeId } from '../raft/types.ts';
import { place } from '../placement/ring.ts';
import type { PlacementMember } from '../placement/types.ts';
import { encodeMetadataEntry } from './metadata-entry-codec.ts';
import type { ShardConf } from './metadata-state-machine.ts';

export interface PlacementState {
  /** Voting members of the cluster group, with their zones; learners get no replicas until promoted. */
  readonly members: ReadonlyArray<{ readonly id: NodeId; readonly zone: string }>;
  readonly draining: ReadonlySet<NodeId>;
  /** Members unreachable past the grace period: their replicas are placed elsewhere (they stay members). */
  readonly dead?: ReadonlySet<NodeId>;
  readonly shardCount: number;
  readonly replicationFactor: number;
  desired(shard: number): readonly NodeId[] | null;
  observed(shard: number): ShardConf | null;
  /** The preferred leader written for a shard (kept while it stays within its share). */
  preferredLeader?(shard: number): NodeId | null;
}

export interface PlacementChange {
  /** New desired replicas for these shards (ascending shard ids). */
  readonly shards: ReadonlyArray<{ readonly shard: number; readonly replicas: readonly NodeId[] }>;
  /** New preferred leaders (each one of its shard's desired replicas). */
  readonly leaders: ReadonlyArray<{ readonly shard: number; readonly leader: NodeId }>;
}

const sameSet = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && [...a].sort((x, y) => x - y).every((v, i) => v === [...b].sort((x, y) => x - y)[i]);

/** Whether a shard is where it should be: reported voters = desired, no learner left over. */
export function shardSettled(desired: readonly NodeId[] | null, observed: ShardConf | null): boolean {
  if (desired === null) return true;
  return observed !== null && observed.learners.length === 0 && sameSet(observed.voters, desired);
}

/**
 * The next desired placement to write, or null when nothing changes: place()'s whole answer for every
 * shard whose leader has reported where it is. Written whole, not a few shards at a time: place() is
 * anchored to what is written, so answering again after a partial write can pick a different target and
 * cost moves the first answer did not need (a seeded test measured 17 moves for an ideal of 14). How many
 * shards move at once is limited where moves are made (movesAllowed).
 */
export function planPlacementChange(state: PlacementState): PlacementChange | null {
  if (state.members.length === 0) return null;
  const memberIds = new Set(state.members.map((m) => m.id));
  const members: PlacementMember[] = state.members.map((m) => ({ id: m.id, zone: m.zone, weight: 1, state: state.dead?.has(m.id) ? 'dead' : state.draining.has(m.id) ? 'draining' : 'up' }));
  if (!members.some((m) => m.state === 'up')) return null; // everything draining: nowhere to go
  const shards = Array.from({ length: state.shardCount }, (_, i) => i);
  // Anchored to what is written (or, before the first write, to where the shard is): a member that left
  // the cluster is no replica any more.
  const current = shards.map((shard) => {
    const base = state.desired(shard) ?? state.observed(shard)?.voters ?? [];
    const leader = state.preferredLeader?.(shard) ?? null;
    return { shard, replicas: base.filter((id) => memberIds.has(id)), leader: leader !== null && memberIds.has(leader) ? leader : null };
  });
  const result = place({ members, shards, replicationFactor: state.replicationFactor, current });
  const changes = result.shards
    .filter(({ shard, replicas }) => {
      const written = state.desired(shard);
      // A shard whose leader has not said where it is yet is left alone.
      return state.observed(shard) !== null && (written === null || !sameSet(written, replicas));
    })
    .map(({ shard, replicas }) => ({ shard, replicas }));
  const leaders = result.shards
    .filter(({ shard, leader }) => leader !== null && state.observed(shard) !== null && leader !== (state.preferredLeader?.(shard) ?? null))
    .map(({ shard, leader }) => ({ shard, leader: leader! }));
  return changes.length === 0 && leaders.length === 0 ? null : { shards: changes, leaders };
}

/**
 * The shards whose leaders may move them now: of the shards away from their desired replicas, the first
 * `maxMovingShards` — those short of a replica first (they restore what the cluster lost), then by id.
 * A pure function of the metadata group's state, so every shard leader decides alike; snapshot traffic and
 * the number of shards carrying an extra replica stay bounded. (Reports lag the moves by a round, so for
 * a moment one more may move.)
 */
export function movesAllowed(shardCount: number, desired: (shard: number) => readonly NodeId[] | null, observed: (shard: number) => ShardConf | null, maxMovingShards: number): Set<number> {
  const unsettled: Array<{ shard: number; short: boolean }> = [];
  for (let shard = 0; shard < shardCount; shard++) {
    const want = desired(shard);
    const seen = observed(shard);
    if (shardSettled(want, seen)) continue;
    unsettled.push({ shard, short: seen !== null && want !== null && seen.voters.length < want.length });
  }
  unsettled.sort((a, b) => Number(b.short) - Number(a.short) || a.shard - b.shard);
  return new Set(unsettled.slice(0, maxMovingShards).map((u) => u.shard));
}

export interface PlacerMember {
  role(groupId: number): string;
  propose(groupId: number, data: Uint8Array): void;
  /** Leader only: the members heard from within an election timeout. */
  activeMembers(groupId: number): NodeId[];
}

/**
 * Which members have been unreachable from the metadata group's leader for longer than the grace
 * period. A new leader (or a member it has not tracked yet) starts every clock at "now": a member is
 * declared dead only after a whole grace period of this leader not hearing from it.
 */
export class DeadMemberClock {
  private readonly lastSeenMs = new Map<NodeId, number>();
  private readonly graceMs: number;

  constructor(graceMs: number) {
    this.graceMs = graceMs;
  }

  /** One observation; returns the members dead now. */
  observe(members: readonly NodeId[], active: readonly NodeId[], nowMs: number): Set<NodeId> {
    const heard = new Set(active);
    for (const id of [...this.lastSeenMs.keys()]) if (!members.includes(id)) this.lastSeenMs.delete(id);
    const dead = new Set<NodeId>();
    for (const id of members) {
      if (heard.has(id) || !this.lastSeenMs.has(id)) this.lastSeenMs.set(id, nowMs);
      else if (nowMs - this.lastSeenMs.get(id)! > this.graceMs) dead.add(id);
    }
    return dead;
  }

  /** Leadership lost: the next leader term starts every clock afresh. */
  reset(): void {
    this.lastSeenMs.clear();
  }
}

export interface PlacerOptions {
  member: PlacerMember;
  metadataGroupId: number;
  state: () => PlacementState;
  logger: Logger;
  intervalMs?: number;
  /** How long a member may be unreachable before its replicas are placed elsewhere (default 5 minutes). */
  deadMemberGraceMs?: number;
}

/** CockroachDB's default time until a store is considered dead (server.time_until_store_dead). */
const DEFAULT_DEAD_MEMBER_GRACE_MS = 5 * 60_000;

/** A proposal lost with a leader change is made again after this long. */
const RESEND_AFTER_MS = 5_000;

/** Runs planPlacementChange on the metadata group's leader and proposes what it decides. */
export class Placer {
  private readonly opts: PlacerOptions;
  private timer: NodeJS.Timeout | null = null;
  /** Placement entries proposed (for tests and metrics). */
  proposals = 0;
  /** Shards whose move waited for others at the last round (the view's "pending"). */
  deferred = 0;
  /** The last change proposed and when: not proposed again while it may still be on its way to apply. */
  private last: { text: string; atMs: number } | null = null;
  private readonly deadClock: DeadMemberClock;
  /** Members taken for dead at the last round (for the view and logs). */
  dead: ReadonlySet<NodeId> = new Set();

  constructor(opts: PlacerOptions) {
    this.opts = opts;
    this.deadClock = new DeadMemberClock(opts.deadMemberGraceMs ?? DEFAULT_DEAD_MEMBER_GRACE_MS);
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.round(), this.opts.intervalMs ?? 1_000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  round(): void {
    const { member, metadataGroupId, logger } = this.opts;
    if (member.role(metadataGroupId) !== 'leader') {
      this.deadClock.reset();
      this.dead = new Set();
      return;
    }
    const state = this.opts.state();
    const dead = this.deadClock.observe(
      state.members.map((m) => m.id),
      member.activeMembers(metadataGroupId),
      Date.now(),
    );
    for (const id of dead) if (!this.dead.has(id)) logger.warn({ member: id.toString(16) }, 'placement: member unreachable past the grace period; its replicas are placed elsewhere');
    this.dead = dead;
    const change = planPlacementChange({ ...state, dead });
    if (change === null) return;
    const text = JSON.stringify(change);
    if (this.last !== null && this.last.text === text && Date.now() - this.last.atMs < RESEND_AFTER_MS) return;
    try {
      // Replicas before leaders: a preferred leader is one of its shard's desired replicas.
      if (change.shards.length > 0) member.propose(metadataGroupId, encodeMetadataEntry({ kind: 'placement', shards: change.shards }));
      if (change.leaders.length > 0) member.propose(metadataGroupId, encodeMetadataEntry({ kind: 'leaders', shards: change.leaders }));
      this.proposals++;
      this.last = { text, atMs: Date.now() };
      for (const s of change.shards) logger.info({ shard: s.shard, replicas: s.replicas.map((id) => id.toString(16)) }, 'placement: shard moves to new replicas');
    } catch (err) {
      // Leadership just lost, or too many proposals in flight: the next round decides again.
      logger.debug({ err: String(err) }, 'placement proposal refused; retrying next round');
    }
  }
}

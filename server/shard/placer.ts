// The placer: the metadata group's leader turns the cluster's members (zones, draining marks) into desired
// replicas per shard (server/placement/ring.ts place()) and writes them, a few shards at a time, into the
// metadata group; each shard's leader then moves its group there (group-membership.ts) and reports the
// membership it reached (a shard-conf entry). The decision (planPlacementChange) is a pure function of the
// metadata state; the shell (Placer) runs it on a timer on the member leading the metadata group.
//
// Why it is safe and converges:
//   - it only writes where shards should be; every membership change is made by the shard's own leader,
//     one Raft change at a time, adding before removing (nextMembershipStep): a stale or superseded
//     desired placement can waste a move, never a quorum;
//   - at most `maxMovingShards` shards differ from where they were last reported, so snapshot traffic
//     and the number of groups with an extra replica stay bounded; a shard not yet reported is not moved;
//   - place() is anchored to the desired placement already written and deterministic, so writing part of
//     its answer and asking again gives the rest of the same answer: the rounds reach its fixed point;
//   - the desired replicas only name members of the cluster group (place() is given those only), and a
//     shard's leader further ignores any that left since (stale records).
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
  readonly shardCount: number;
  readonly replicationFactor: number;
  desired(shard: number): readonly NodeId[] | null;
  observed(shard: number): ShardConf | null;
}

export interface PlacementChange {
  /** New desired replicas for these shards (ascending shard ids). */
  readonly shards: ReadonlyArray<{ readonly shard: number; readonly replicas: readonly NodeId[] }>;
  /** Shards whose move waits for others to finish (the limit). */
  readonly deferred: number;
}

const sameSet = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && [...a].sort((x, y) => x - y).every((v, i) => v === [...b].sort((x, y) => x - y)[i]);

/** Whether a shard is where it should be: reported voters = desired, no learner left over. */
export function shardSettled(desired: readonly NodeId[] | null, observed: ShardConf | null): boolean {
  if (desired === null) return true;
  return observed !== null && observed.learners.length === 0 && sameSet(observed.voters, desired);
}

/** The next desired placement to write (possibly none, with moves deferred), or null when nothing changes. */
export function planPlacementChange(state: PlacementState, maxMovingShards: number): PlacementChange | null {
  if (state.members.length === 0) return null;
  const memberIds = new Set(state.members.map((m) => m.id));
  const members: PlacementMember[] = state.members.map((m) => ({ id: m.id, zone: m.zone, weight: 1, state: state.draining.has(m.id) ? 'draining' : 'up' }));
  if (!members.some((m) => m.state === 'up')) return null; // everything draining: nowhere to go
  const shards = Array.from({ length: state.shardCount }, (_, i) => i);
  // Anchored to what is written (or, before the first write, to where the shard is): a member that left
  // the cluster is no replica any more.
  const current = shards.map((shard) => {
    const base = state.desired(shard) ?? state.observed(shard)?.voters ?? [];
    return { shard, replicas: base.filter((id) => memberIds.has(id)), leader: null };
  });
  const result = place({ members, shards, replicationFactor: state.replicationFactor, current });
  let moving = shards.filter((s) => !shardSettled(state.desired(s), state.observed(s))).length;
  const changes: Array<{ shard: number; replicas: readonly NodeId[] }> = [];
  let deferred = 0;
  // Shards with a replica on a member that is leaving go first: they restore what the cluster is losing.
  const urgency = (shard: number): number => (current[shard].replicas.some((id) => state.draining.has(id)) || current[shard].replicas.length < (state.desired(shard)?.length ?? 0) ? 0 : 1);
  for (const { shard, replicas } of [...result.shards].sort((a, b) => urgency(a.shard) - urgency(b.shard) || a.shard - b.shard)) {
    const written = state.desired(shard);
    if (written !== null && sameSet(written, replicas)) continue;
    const observed = state.observed(shard);
    if (observed === null) continue; // its leader has not said where it is yet
    // Writing where the shard already is costs nothing; anything else is a move, within the limit.
    const free = sameSet(observed.voters, replicas) && observed.learners.length === 0;
    const alreadyMoving = !shardSettled(written, observed);
    if (!free && !alreadyMoving) {
      if (moving >= maxMovingShards) {
        deferred++;
        continue;
      }
      moving++;
    }
    changes.push({ shard, replicas });
  }
  if (changes.length === 0 && deferred === 0) return null;
  changes.sort((a, b) => a.shard - b.shard);
  return { shards: changes, deferred };
}

export interface PlacerMember {
  role(groupId: number): string;
  propose(groupId: number, data: Uint8Array): void;
}

export interface PlacerOptions {
  member: PlacerMember;
  metadataGroupId: number;
  state: () => PlacementState;
  logger: Logger;
  maxMovingShards?: number;
  intervalMs?: number;
}

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

  constructor(opts: PlacerOptions) {
    this.opts = opts;
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
    if (member.role(metadataGroupId) !== 'leader') return;
    const change = planPlacementChange(this.opts.state(), this.opts.maxMovingShards ?? 4);
    this.deferred = change?.deferred ?? 0;
    if (change === null || change.shards.length === 0) return;
    const text = JSON.stringify(change.shards);
    if (this.last !== null && this.last.text === text && Date.now() - this.last.atMs < RESEND_AFTER_MS) return;
    try {
      member.propose(metadataGroupId, encodeMetadataEntry({ kind: 'placement', shards: change.shards }));
      this.proposals++;
      this.last = { text, atMs: Date.now() };
      for (const s of change.shards) logger.info({ shard: s.shard, replicas: s.replicas.map((id) => id.toString(16)), deferred: change.deferred }, 'placement: shard moves to new replicas');
    } catch (err) {
      // Leadership just lost, or too many proposals in flight: the next round decides again.
      logger.debug({ err: String(err) }, 'placement proposal refused; retrying next round');
    }
  }
}

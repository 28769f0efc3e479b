// Moves: the pure diff from the observed Raft membership of every shard to the desired placement, as
// per-shard replica moves, and the next Raft step of a move given what is observed now. Not yet wired into
// the server (a later session runs this in the metadata group's leader and executes the steps).
//
// A move of shard s from member A to member B is Raft membership of s, one change at a time:
//   add B as a learner (fresh replica id) → B catches up (snapshot) → promote B to voter →
//   transfer leadership away if A's replica leads → remove A → delete A's data.
// Why it is safe:
//   - voters go R → R+1 → R: a move never leaves fewer voters than it found (the old replica is removed
//     only once the new one votes), and a pure removal (R lowered) never goes below R, so a move never
//     costs fault tolerance;
//   - a learner does not vote, so a slow snapshot never stalls commits;
//   - a replica id is never reused (monotonic counter, persisted by the caller), so a message or snapshot
//     from an old incarnation of a replica cannot be mistaken for a new one when a shard returns to a
//     member that hosted it before; replica ids also never equal a member id;
//   - one move per shard, each live member in at most one move at a time, at most maxConcurrentMoves in
//     flight: snapshot traffic stays bounded so client latency does not suffer.

import type { MemberId, ShardPlacement } from './types.ts';

export type ReplicaId = number;

export interface Replica {
  readonly replicaId: ReplicaId;
  readonly member: MemberId;
}

/** One shard's Raft membership as observed now. */
export interface ShardMembership {
  readonly shard: number;
  readonly voters: readonly Replica[];
  readonly learners: readonly Replica[];
  /** Replica id of the current Raft leader, or null when none is known. */
  readonly leader: ReplicaId | null;
}

/** A replica move in one shard; a pure addition has no source, a pure removal no target. */
export interface Move {
  readonly shard: number;
  readonly source: Replica | null;
  readonly target: Replica | null;
}

export interface MovePlanInput {
  readonly observed: readonly ShardMembership[];
  readonly desired: readonly ShardPlacement[];
  readonly inProgress: readonly Move[];
  readonly maxConcurrentMoves: number;
  /** Next replica id to hand out (persisted by the caller with the plan; never goes back). */
  readonly nextReplicaId: ReplicaId;
  /** Every member id ever known: replica ids skip them, so the two id spaces never meet. */
  readonly memberIds: readonly MemberId[];
  /** Members that are dead: their replicas are replaced first and they do not count as busy. */
  readonly deadMembers?: readonly MemberId[];
}

export interface MovePlan {
  /** Moves to begin now (their targets carry freshly allocated replica ids). */
  readonly start: readonly Move[];
  /** Moves still needed after these, deferred by the concurrency limits. */
  readonly deferred: number;
  /** Leadership transfers towards the preferred leader, for shards with no move in flight. */
  readonly leaderTransfers: readonly { readonly shard: number; readonly to: ReplicaId }[];
  /** The counter after allocation: persist it before executing `start`. */
  readonly nextReplicaId: ReplicaId;
}

export function planMoves(input: MovePlanInput): MovePlan {
  if (!Number.isInteger(input.maxConcurrentMoves) || input.maxConcurrentMoves < 1) throw new RangeError(`maxConcurrentMoves must be a positive integer (got ${input.maxConcurrentMoves})`);
  const dead = new Set(input.deadMembers ?? []);
  const desired = new Map(input.desired.map((d) => [d.shard, d]));
  const moving = new Set(input.inProgress.map((m) => m.shard));
  const busy = new Set<MemberId>();
  for (const m of input.inProgress) for (const r of [m.source, m.target]) if (r && !dead.has(r.member)) busy.add(r.member);

  const candidates = [...input.observed]
    .sort((a, b) => a.shard - b.shard)
    .filter((s) => !moving.has(s.shard) && desired.has(s.shard))
    .flatMap((s) => diffShard(s, desired.get(s.shard)!))
    .sort((a, b) => urgency(b, dead) - urgency(a, dead) || a.shard - b.shard);

  const ids = new ReplicaIdAllocator(input.nextReplicaId, input.memberIds);
  const start: Move[] = [];
  const startedShards = new Set<number>();
  let deferred = 0;
  for (const c of candidates) {
    const members = [c.sourceMember, c.targetMember].filter((m): m is MemberId => m !== null && !dead.has(m));
    const blocked = startedShards.has(c.shard) || input.inProgress.length + start.length >= input.maxConcurrentMoves || members.some((m) => busy.has(m));
    if (blocked) {
      deferred++;
      continue;
    }
    for (const m of members) busy.add(m);
    startedShards.add(c.shard);
    const target = c.targetMember === null ? null : (c.existingTarget ?? { replicaId: ids.next(), member: c.targetMember });
    start.push({ shard: c.shard, source: c.source, target });
  }
  const leaderTransfers = planLeaderTransfers(input.observed, desired, new Set([...moving, ...startedShards, ...candidates.map((c) => c.shard)]));
  return { start, deferred, leaderTransfers, nextReplicaId: ids.peek() };
}

interface Candidate {
  readonly shard: number;
  readonly source: Replica | null;
  readonly sourceMember: MemberId | null;
  readonly targetMember: MemberId | null;
  /** A learner left by an abandoned move on a wanted member: finish it rather than add a second replica. */
  readonly existingTarget: Replica | null;
}

/** Pairs each replica to remove with a member to add (both in id order); leftovers are pure adds/removes. */
function diffShard(observed: ShardMembership, desired: ShardPlacement): Candidate[] {
  const want = new Set(desired.replicas);
  const voterMembers = new Set(observed.voters.map((r) => r.member));
  const strayLearner = new Map(observed.learners.filter((r) => want.has(r.member)).map((r) => [r.member, r]));
  const adds = [...want].filter((m) => !voterMembers.has(m)).sort((a, b) => a - b);
  // A learner that is not wanted is a leftover of an abandoned move: remove it like a voter.
  const removes = [...observed.voters, ...observed.learners].filter((r) => !want.has(r.member)).sort((a, b) => a.member - b.member || a.replicaId - b.replicaId);
  const out: Candidate[] = [];
  for (let i = 0; i < Math.max(adds.length, removes.length); i++) {
    const source = removes[i] ?? null;
    const targetMember = adds[i] ?? null;
    const existingTarget = targetMember === null ? null : (strayLearner.get(targetMember) ?? null);
    out.push({ shard: observed.shard, source, sourceMember: source?.member ?? null, targetMember, existingTarget });
  }
  return out;
}

/** Replacing a dead member's replica restores redundancy: it goes first. Pure additions next. */
function urgency(c: Candidate, dead: ReadonlySet<MemberId>): number {
  if (c.sourceMember !== null && dead.has(c.sourceMember)) return 2;
  return c.sourceMember === null ? 1 : 0;
}

function planLeaderTransfers(observed: readonly ShardMembership[], desired: ReadonlyMap<number, ShardPlacement>, skip: ReadonlySet<number>): { shard: number; to: ReplicaId }[] {
  const out: { shard: number; to: ReplicaId }[] = [];
  for (const s of [...observed].sort((a, b) => a.shard - b.shard)) {
    const preferred = desired.get(s.shard)?.leader ?? null;
    if (skip.has(s.shard) || preferred === null || s.leader === null) continue;
    const target = s.voters.find((r) => r.member === preferred);
    if (target && target.replicaId !== s.leader) out.push({ shard: s.shard, to: target.replicaId });
  }
  return out;
}

/** Monotonic replica ids that skip every member id. */
class ReplicaIdAllocator {
  private value: ReplicaId;
  private readonly taken: ReadonlySet<number>;

  constructor(next: ReplicaId, memberIds: readonly MemberId[]) {
    if (!Number.isSafeInteger(next) || next < 1) throw new RangeError(`nextReplicaId must be a positive integer (got ${next})`);
    this.value = next;
    this.taken = new Set(memberIds);
  }

  next(): ReplicaId {
    while (this.taken.has(this.value)) this.value++;
    return this.value++;
  }

  peek(): ReplicaId {
    while (this.taken.has(this.value)) this.value++;
    return this.value;
  }
}

/** What the executor reports about a move besides Raft membership. */
export interface MoveProgress {
  /** The target learner has caught up with the leader (snapshot installed, log close to the tip). */
  readonly learnerCaughtUp: boolean;
  /** The source member has deleted the removed replica's data. */
  readonly sourceDataDeleted: boolean;
}

export type MoveStep =
  | { readonly kind: 'add-learner'; readonly shard: number; readonly replica: Replica }
  | { readonly kind: 'wait'; readonly shard: number; readonly reason: string }
  | { readonly kind: 'promote'; readonly shard: number; readonly replicaId: ReplicaId }
  | { readonly kind: 'transfer-leader'; readonly shard: number; readonly from: ReplicaId; readonly to: ReplicaId }
  | { readonly kind: 'remove'; readonly shard: number; readonly replicaId: ReplicaId }
  | { readonly kind: 'delete-data'; readonly shard: number; readonly replica: Replica }
  | { readonly kind: 'done'; readonly shard: number };

/**
 * The next step of a move, from what is observed now. Idempotent: the executor runs the step, observes
 * again and asks again, so a crash of the executor anywhere resumes at the right step.
 * `replicationFactor` is the voter count a pure removal must never drop below (the desired replica count).
 */
export function nextStep(move: Move, observed: ShardMembership, progress: MoveProgress, replicationFactor: number): MoveStep {
  const shard = move.shard;
  const isVoter = (id: ReplicaId) => observed.voters.some((r) => r.replicaId === id);
  const isLearner = (id: ReplicaId) => observed.learners.some((r) => r.replicaId === id);
  if (move.target) {
    const id = move.target.replicaId;
    if (!isVoter(id) && !isLearner(id)) return { kind: 'add-learner', shard, replica: move.target };
    if (isLearner(id)) return progress.learnerCaughtUp ? { kind: 'promote', shard, replicaId: id } : { kind: 'wait', shard, reason: `learner ${id} is catching up` };
  }
  if (move.source) {
    const id = move.source.replicaId;
    if (isVoter(id) || isLearner(id)) {
      if (observed.leader === id) {
        const to = move.target && isVoter(move.target.replicaId) ? move.target.replicaId : observed.voters.map((r) => r.replicaId).filter((r) => r !== id).sort((a, b) => a - b)[0];
        if (to === undefined) return { kind: 'wait', shard, reason: `replica ${id} is the only voter` };
        return { kind: 'transfer-leader', shard, from: id, to };
      }
      // With its target promoted a move is back to the voter count it found; a pure removal needs spare voters.
      const replaced = move.target !== null && isVoter(move.target.replicaId);
      if (isVoter(id) && !replaced && observed.voters.length - 1 < replicationFactor) return { kind: 'wait', shard, reason: `removing ${id} would leave fewer than ${replicationFactor} voters` };
      return { kind: 'remove', shard, replicaId: id };
    }
    if (!progress.sourceDataDeleted) return { kind: 'delete-data', shard, replica: move.source };
  }
  return { kind: 'done', shard };
}

// The placement function: (members with zones, weights and states; shards; R; current placement) →
// desired placement (voting replicas per shard and a preferred leader). Pure and deterministic: the same
// input, in any order, gives the same output. The server runs it on the metadata group's leader
// (server/shard/placer.ts) and at bootstrap (server/cli/shard-hosting.ts, the shards' first voters).
//
// Algorithm: rendezvous hashing with a load cap, anchored to the current placement.
//   1. Fair shares (fair-share.ts) give each up member a soft band [floor(share), ceil(share)] and a hard
//      band (10% either side: the brief's max/mean ≤ 1.10) of replicas.
//   2. Keep every current replica that is still legal (member up, distinct, zone spread, ≤ R per shard),
//      dropping from the most loaded members first when a shard has too many.
//   3. Fill missing replicas: among legal members, those below the soft band first, then those below its
//      top, then those below the hard top; within a tier the highest rendezvous score (shard, member)
//      wins. At creation this is exactly capped rendezvous hashing.
//   4. Rebalance along the shortest chains of legal single-replica moves (BFS over members): real moves
//      only for members outside their hard band, free moves (re-aiming replicas placed in this run) for
//      members outside their soft band. A member holding nothing yet is filled to floor(share).
//   5. Preferred leaders (leaders.ts).
// Safety rules (distinct members, zone spread, nothing on draining/dead members) are never traded for
// balance; when balance cannot be reached under them, `problems` says so.

import { type Band, bandOf, replicaShares } from './fair-share.ts';
import { assignLeaders } from './leaders.ts';
import { rendezvousScore } from './rendezvous.ts';
import type { MemberId, PlacementInput, PlacementMember, PlacementResult, ShardPlacement } from './types.ts';

export const DEFAULT_REPLICATION_FACTOR = 3;

export function place(input: PlacementInput): PlacementResult {
  const { members, shards, replicationFactor } = normalize(input);
  const eligible = members.filter((m) => m.state === 'up');
  const replicasPerShard = Math.min(replicationFactor, eligible.length);
  const { share, zoneSpread } = replicaShares(eligible, shards.length, replicasPerShard);
  const book = new ReplicaBook(eligible, shards, replicasPerShard, zoneSpread, share);
  book.keep(input.current ?? []);
  book.fill();
  book.rebalance();

  const currentLeader = new Map((input.current ?? []).map((p) => [p.shard, p.leader]));
  const replicaLists = shards.map((shard) => ({ shard, replicas: book.replicasOf(shard), currentLeader: currentLeader.get(shard) ?? null }));
  const leaders = assignLeaders(replicaLists, new Map(eligible.map((m) => [m.id, m.weight])));
  const placement: ShardPlacement[] = replicaLists.map(({ shard, replicas }) => ({ shard, replicas, leader: leaders.get(shard) ?? null }));
  const problems = [...(eligible.length === 0 && shards.length > 0 ? ['no member is up: every shard is unplaced'] : []), ...book.balanceProblems()];
  return { shards: placement, effectiveReplicationFactor: replicasPerShard, zoneSpread, problems };
}

interface Normalized {
  readonly members: readonly PlacementMember[];
  readonly shards: readonly number[];
  readonly replicationFactor: number;
}

/** Validates the input and sorts it, so that nothing downstream depends on input order. */
function normalize(input: PlacementInput): Normalized {
  const replicationFactor = input.replicationFactor ?? DEFAULT_REPLICATION_FACTOR;
  if (!Number.isInteger(replicationFactor) || replicationFactor < 1) throw new RangeError(`replication factor must be a positive integer (got ${replicationFactor})`);
  const seen = new Set<MemberId>();
  for (const m of input.members) {
    if (!Number.isSafeInteger(m.id) || m.id < 0) throw new RangeError(`member id must be a non-negative safe integer (got ${m.id})`);
    if (seen.has(m.id)) throw new RangeError(`member ${m.id} is listed twice`);
    seen.add(m.id);
    if (!(Number.isFinite(m.weight) && m.weight > 0)) throw new RangeError(`member ${m.id} weight must be a positive number (got ${m.weight})`);
  }
  const shards = [...input.shards].sort((a, b) => a - b);
  for (let i = 0; i < shards.length; i++) {
    if (!Number.isSafeInteger(shards[i]) || shards[i] < 0) throw new RangeError(`shard id must be a non-negative integer (got ${shards[i]})`);
    if (i > 0 && shards[i] === shards[i - 1]) throw new RangeError(`shard ${shards[i]} is listed twice`);
  }
  return { members: [...input.members].sort((a, b) => a.id - b.id), shards, replicationFactor };
}

interface Step {
  readonly shard: number;
  readonly from: MemberId;
  readonly to: MemberId;
}

/** The replica assignment being built; private to the placer. */
class ReplicaBook {
  private readonly members: readonly PlacementMember[];
  private readonly byId: Map<MemberId, PlacementMember>;
  private readonly shards: readonly number[];
  private readonly replicasPerShard: number;
  private readonly zoneCap = new Map<string, number>();
  private readonly band = new Map<MemberId, Band>();
  private readonly share: ReadonlyMap<MemberId, number>;
  private readonly replicas = new Map<number, Set<MemberId>>();
  /** Replicas kept from the current placement: moving one costs a real move, moving a fresh one is free. */
  private readonly original = new Map<number, Set<MemberId>>();
  private readonly hosted = new Map<MemberId, Set<number>>();
  private readonly memberIndex: Map<MemberId, number>;
  private readonly shardIndex: Map<number, number>;
  private readonly scores: Float64Array;

  constructor(eligible: readonly PlacementMember[], shards: readonly number[], replicasPerShard: number, zoneSpread: number, share: ReadonlyMap<MemberId, number>) {
    this.members = eligible;
    this.byId = new Map(eligible.map((m) => [m.id, m]));
    this.shards = shards;
    this.replicasPerShard = replicasPerShard;
    this.share = share;
    this.memberIndex = new Map(eligible.map((m, i) => [m.id, i]));
    this.shardIndex = new Map(shards.map((sh, i) => [sh, i]));
    this.scores = new Float64Array(shards.length * eligible.length).fill(Number.NaN);
    const zoneSize = new Map<string, number>();
    for (const m of eligible) zoneSize.set(m.zone, (zoneSize.get(m.zone) ?? 0) + 1);
    for (const [zone, n] of zoneSize) this.zoneCap.set(zone, Math.min(zoneSpread, n));
    for (const m of eligible) {
      this.band.set(m.id, bandOf(share.get(m.id) ?? 0));
      this.hosted.set(m.id, new Set());
    }
    for (const s of shards) this.replicas.set(s, new Set());
  }

  replicasOf(shard: number): MemberId[] {
    return [...(this.replicas.get(shard) ?? [])].sort((a, b) => a - b);
  }

  private load(m: MemberId): number {
    return this.hosted.get(m)?.size ?? 0;
  }

  private bound(m: MemberId, which: keyof Band): number {
    return this.band.get(m)?.[which] ?? 0;
  }

  /** Rendezvous score, cached: the rebalance asks for the same pairs many times. */
  private score(shard: number, m: MemberId): number {
    const row = (this.shardIndex.get(shard) ?? 0) * this.members.length + (this.memberIndex.get(m) ?? 0);
    let s = this.scores[row];
    if (Number.isNaN(s)) s = this.scores[row] = rendezvousScore(shard, m, this.byId.get(m)?.weight ?? 1);
    return s;
  }

  private add(shard: number, m: MemberId): void {
    this.replicas.get(shard)?.add(m);
    this.hosted.get(m)?.add(shard);
  }

  private remove(shard: number, m: MemberId): void {
    this.replicas.get(shard)?.delete(m);
    this.hosted.get(m)?.delete(shard);
  }

  /** May `m` host a replica of `shard` (if `leaving` gives its replica up at the same time)? */
  private canHost(shard: number, m: MemberId, leaving: MemberId | null = null): boolean {
    const set = this.replicas.get(shard);
    const member = this.byId.get(m);
    if (!set || !member || set.has(m)) return false;
    let inZone = 0;
    for (const r of set) if (r !== leaving && this.byId.get(r)?.zone === member.zone) inZone++;
    return inZone < (this.zoneCap.get(member.zone) ?? 0);
  }

  /** Step 2: keep legal current replicas; when a shard has too many, the most loaded members lose theirs. */
  keep(current: readonly ShardPlacement[]): void {
    const wanted = new Map<number, MemberId[]>();
    const tentative = new Map<MemberId, number>();
    for (const p of current) {
      if (!this.replicas.has(p.shard)) continue;
      const ms = [...new Set(p.replicas)].filter((m) => this.byId.has(m));
      wanted.set(p.shard, ms);
      for (const m of ms) tentative.set(m, (tentative.get(m) ?? 0) + 1);
    }
    const pressure = (m: MemberId) => (tentative.get(m) ?? 0) / Math.max(this.share.get(m) ?? 0, 1e-9);
    for (const shard of this.shards) {
      const ms = [...(wanted.get(shard) ?? [])].sort((a, b) => pressure(a) - pressure(b) || this.score(shard, b) - this.score(shard, a) || a - b);
      for (const m of ms) {
        if ((this.replicas.get(shard)?.size ?? 0) < this.replicasPerShard && this.canHost(shard, m)) this.add(shard, m);
      }
      this.original.set(shard, new Set(this.replicas.get(shard)));
    }
    // A member holding nothing yet (a new member) is what the moves are for: fill it to floor(share),
    // not just to the tolerance that spares existing members from extra moves.
    for (const m of this.members) {
      const band = this.band.get(m.id);
      if (band && this.load(m.id) === 0) this.band.set(m.id, { ...band, hardLow: band.softLow });
    }
  }

  /** Change in the number of replica moves (vs the current placement) if `shard` goes from `from` to `to`. */
  private stepCost(shard: number, from: MemberId, to: MemberId): number {
    const was = this.original.get(shard);
    return (was?.has(to) ? 0 : 1) - (was?.has(from) ? 0 : 1);
  }

  /** Step 3: capped rendezvous for every missing replica. */
  fill(): void {
    for (const shard of this.shards) {
      while ((this.replicas.get(shard)?.size ?? 0) < this.replicasPerShard) {
        const m = this.bestHost(shard);
        if (m === null) break; // unreachable: zoneSpread guarantees room (see zoneSpreadFor)
        this.add(shard, m);
      }
    }
  }

  private bestHost(shard: number): MemberId | null {
    const tier = (m: MemberId) => {
      const load = this.load(m);
      return load < this.bound(m, 'softLow') ? 0 : load < this.bound(m, 'softHigh') ? 1 : load < this.bound(m, 'hardHigh') ? 2 : 3;
    };
    let best: MemberId | null = null;
    for (const { id } of this.members) {
      if (!this.canHost(shard, id)) continue;
      if (best === null) {
        best = id;
        continue;
      }
      const byTier = tier(id) - tier(best);
      const byOverload = tier(id) >= 2 ? this.load(id) - this.bound(id, 'softHigh') - (this.load(best) - this.bound(best, 'softHigh')) : 0;
      if (byTier < 0 || (byTier === 0 && (byOverload < 0 || (byOverload === 0 && this.score(shard, id) > this.score(shard, best))))) best = id;
    }
    return best;
  }

  /**
   * Step 4, in two passes. Hard: members outside [hardLow, hardHigh] shed or receive by chains of real
   * moves. Soft: members outside [floor(share), ceil(share)] are evened out only by chains that cost no
   * real move (re-aiming replicas placed in this run), so balance never buys extra data movement.
   * Round robin (one replica per member per round, most urgent first) so that members competing for the
   * same few legal moves (e.g. a zone that must shrink) share them instead of the first taking them all.
   */
  rebalance(): void {
    for (const [low, high, free] of [['hardLow', 'hardHigh', false], ['softLow', 'softHigh', true]] as const) {
      this.roundRobin(
        (m) => this.load(m) > this.bound(m, high),
        (m) => this.load(m) - this.bound(m, high),
        (m) => this.shortestPath(m, 'forward', (v) => this.load(v) < this.bound(v, 'softHigh'), free) ?? this.shortestPath(m, 'forward', (v) => this.load(v) < this.bound(v, high), free),
      );
      this.roundRobin(
        (m) => this.load(m) < this.bound(m, low),
        (m) => this.bound(m, low) - this.load(m),
        (m) => this.shortestPath(m, 'backward', (v) => this.load(v) > this.bound(v, 'softHigh'), free) ?? this.shortestPath(m, 'backward', (v) => this.load(v) > this.bound(v, low), free),
      );
    }
  }

  private roundRobin(needsWork: (m: MemberId) => boolean, urgency: (m: MemberId) => number, findPath: (m: MemberId) => Step[] | null): void {
    const stuck = new Set<MemberId>();
    for (;;) {
      const todo = this.members.map((m) => m.id).filter((m) => !stuck.has(m) && needsWork(m));
      if (todo.length === 0) return;
      todo.sort((a, b) => urgency(b) - urgency(a) || a - b);
      for (const m of todo) {
        if (!needsWork(m)) continue;
        const path = findPath(m);
        if (!path || !this.apply(path)) stuck.add(m);
      }
    }
  }

  /**
   * The replica of a shard on `from` that `to` may take over. Prefers a replica placed in this run (moving
   * it again costs no real move), then shards whose other holders are not overloaded themselves (so they
   * keep their own ways out), then the shard that ranks `to` highest.
   */
  private movable(from: MemberId, to: MemberId): number | null {
    let best: number | null = null;
    let bestCost = 0;
    let bestRivals = 0;
    let bestScore = 0;
    for (const shard of this.hosted.get(from) ?? []) {
      if (!this.canHost(shard, to, from)) continue;
      const cost = this.stepCost(shard, from, to);
      if (best !== null && cost > bestCost) continue;
      let rivals = 0;
      for (const r of this.replicas.get(shard) ?? []) if (r !== from && this.load(r) > this.bound(r, 'softHigh')) rivals++;
      const score = this.score(shard, to);
      // cost ≤ bestCost here; compare (cost, rivals, -score, shard) lexicographically
      const tie = cost === bestCost && rivals === bestRivals;
      if (best === null || cost < bestCost || (cost === bestCost && rivals < bestRivals) || (tie && (score > bestScore || (score === bestScore && shard < best)))) {
        best = shard;
        bestCost = cost;
        bestRivals = rivals;
        bestScore = score;
      }
    }
    return best;
  }

  /**
   * BFS over members where an edge u→v means "some replica can move from u to v". Forward: from an
   * overloaded member to the nearest one satisfying `goal`; backward: from an underloaded member back to
   * the nearest donor. Among goals at the same depth the cheapest chain (fewest real moves) wins, then the
   * goal furthest from its bound, then the lowest id.
   */
  private shortestPath(start: MemberId, direction: 'forward' | 'backward', goal: (m: MemberId) => boolean, freeOnly: boolean): Step[] | null {
    const parent = new Map<MemberId, Step>();
    const visited = new Set<MemberId>([start]);
    const edge = (u: MemberId, v: MemberId): Step | null => {
      const shard = direction === 'forward' ? this.movable(u, v) : this.movable(v, u);
      if (shard === null) return null;
      const step = direction === 'forward' ? { shard, from: u, to: v } : { shard, from: v, to: u };
      // A free chain may only use steps that cost nothing (movable() offers the cheapest step first).
      return freeOnly && this.stepCost(step.shard, step.from, step.to) > 0 ? null : step;
    };
    const slack = (v: MemberId) => (direction === 'forward' ? this.bound(v, 'softHigh') - this.load(v) : this.load(v) - this.bound(v, 'softLow'));
    const cost = new Map<MemberId, number>([[start, 0]]);
    const prev = (step: Step) => (direction === 'forward' ? step.from : step.to);
    const record = (v: MemberId, step: Step) => {
      parent.set(v, step);
      cost.set(v, (cost.get(prev(step)) ?? 0) + this.stepCost(step.shard, step.from, step.to));
    };
    let frontier = [start];
    while (frontier.length > 0) {
      // Goals first: in the common case (one direct move) the rest of the graph is never explored.
      let end: MemberId | null = null;
      for (const u of frontier) {
        for (const { id: v } of this.members) {
          if (visited.has(v) || parent.has(v) || !goal(v)) continue;
          const step = edge(u, v);
          if (!step) continue;
          record(v, step);
          if (end === null || lexLess([cost.get(v) ?? 0, -slack(v), v], [cost.get(end) ?? 0, -slack(end), end])) end = v;
        }
      }
      if (end !== null) return this.unwind(end, start, parent, direction);
      const next: MemberId[] = [];
      for (const u of frontier) {
        for (const { id: v } of this.members) {
          if (visited.has(v) || parent.has(v)) continue;
          const step = edge(u, v);
          if (!step) continue;
          visited.add(v);
          record(v, step);
          next.push(v);
        }
      }
      frontier = next;
    }
    return null;
  }

  private unwind(end: MemberId, start: MemberId, parent: ReadonlyMap<MemberId, Step>, direction: 'forward' | 'backward'): Step[] {
    const steps: Step[] = [];
    for (let v = end; v !== start; ) {
      const step = parent.get(v)!;
      steps.push(step);
      v = direction === 'forward' ? step.from : step.to;
    }
    return steps;
  }

  /** Applies a chain of moves, re-checking each (a shard may recur in a chain); undoes all on failure. */
  private apply(path: readonly Step[]): boolean {
    const done: Step[] = [];
    for (const step of path) {
      if (!this.hosted.get(step.from)?.has(step.shard) || !this.canHost(step.shard, step.to, step.from)) {
        for (const d of done.reverse()) {
          this.remove(d.shard, d.to);
          this.add(d.shard, d.from);
        }
        return false;
      }
      this.remove(step.shard, step.from);
      this.add(step.shard, step.to);
      done.push(step);
    }
    return true;
  }

  /** Members left outside their band, as readable problems. */
  balanceProblems(): string[] {
    return this.members
      .filter((m) => this.load(m.id) > this.bound(m.id, 'hardHigh') || this.load(m.id) < this.bound(m.id, 'hardLow'))
      .map((m) => `member ${m.id} holds ${this.load(m.id)} replicas, fair share ${(this.share.get(m.id) ?? 0).toFixed(2)}: no legal move brings it into [${this.bound(m.id, 'hardLow')}, ${this.bound(m.id, 'hardHigh')}]`);
  }
}

function lexLess(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return false;
}

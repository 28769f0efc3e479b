// Preferred leaders: which replica of each shard should lead, so that leaderships (where the writes of a
// shard are sequenced) are spread over members in proportion to weight. Pure; server/shard/leader-balancer.ts
// acts on it.
//
// A leadership can only sit on one of the shard's replicas, so this is a bipartite assignment with
// capacities: shard → one of its replicas, member m leads at most ceil(fair share). Fair shares are
// water-filled (a member cannot lead more shards than it replicates). The current leader is kept whenever
// it is within its cap (a transfer costs an election's worth of unavailability); overloads are fixed by
// augmenting paths, which move the fewest leaderships. If the caps admit no assignment (Hall's condition
// fails for some group of members), every cap is loosened by 5% until one exists.

import { waterFill } from './fair-share.ts';
import { rendezvousScore } from './rendezvous.ts';
import type { MemberId } from './types.ts';

export interface LeaderInput {
  readonly shard: number;
  /** Ascending member ids. */
  readonly replicas: readonly MemberId[];
  readonly currentLeader: MemberId | null;
}

const SLACK_STEP = 0.05;
const EPSILON = 1e-7;

export function assignLeaders(shards: readonly LeaderInput[], weightOf: ReadonlyMap<MemberId, number>): Map<number, MemberId | null> {
  const placed = shards.filter((s) => s.replicas.length > 0);
  const members = [...new Set(placed.flatMap((s) => s.replicas))].sort((a, b) => a - b);
  const replicaLoad = new Map<MemberId, number>(members.map((m) => [m, 0]));
  for (const s of placed) for (const m of s.replicas) replicaLoad.set(m, (replicaLoad.get(m) ?? 0) + 1);
  const shares = waterFill(members.map((m) => ({ weight: weightOf.get(m) ?? 1, cap: replicaLoad.get(m) ?? 0 })), placed.length);
  const share = new Map(members.map((m, i) => [m, shares[i]]));

  const book = new LeaderBook(placed, weightOf);
  for (let slack = 1; ; slack += SLACK_STEP) {
    const cap = new Map(members.map((m) => [m, Math.ceil((share.get(m) ?? 0) * slack - EPSILON)]));
    if (slack === 1) book.initialAssign(cap);
    if (book.fixOverloads(cap)) break;
  }
  const result = new Map<number, MemberId | null>();
  for (const s of shards) result.set(s.shard, book.leaderOf(s.shard));
  return result;
}

/** Mutable assignment used while solving; kept private to this module. */
class LeaderBook {
  private readonly byShard: Map<number, LeaderInput>;
  private readonly leader = new Map<number, MemberId>();
  private readonly led = new Map<MemberId, Set<number>>();
  private readonly weightOf: ReadonlyMap<MemberId, number>;

  constructor(placed: readonly LeaderInput[], weightOf: ReadonlyMap<MemberId, number>) {
    this.byShard = new Map([...placed].sort((a, b) => a.shard - b.shard).map((s) => [s.shard, s]));
    this.weightOf = weightOf;
  }

  leaderOf(shard: number): MemberId | null {
    return this.leader.get(shard) ?? null;
  }

  private count(m: MemberId): number {
    return this.led.get(m)?.size ?? 0;
  }

  private set(shard: number, m: MemberId): void {
    const old = this.leader.get(shard);
    if (old !== undefined) this.led.get(old)?.delete(shard);
    this.leader.set(shard, m);
    let set = this.led.get(m);
    if (!set) this.led.set(m, (set = new Set()));
    set.add(shard);
  }

  private score(shard: number, m: MemberId): number {
    return rendezvousScore(shard, m, this.weightOf.get(m) ?? 1);
  }

  /** Keep current leaders within their caps; give the rest to the replica with most room (then score). */
  initialAssign(cap: ReadonlyMap<MemberId, number>): void {
    for (const s of this.byShard.values()) {
      const cur = s.currentLeader;
      if (cur !== null && s.replicas.includes(cur) && this.count(cur) < (cap.get(cur) ?? 0)) this.set(s.shard, cur);
    }
    for (const s of this.byShard.values()) {
      if (this.leader.has(s.shard)) continue;
      const room = (m: MemberId) => (cap.get(m) ?? 0) - this.count(m);
      const best = [...s.replicas].sort((a, b) => room(b) - room(a) || this.score(s.shard, b) - this.score(s.shard, a) || a - b)[0];
      this.set(s.shard, best);
    }
  }

  /** Augmenting paths from each over-cap member to one with room; false when some overload is stuck. */
  fixOverloads(cap: ReadonlyMap<MemberId, number>): boolean {
    const over = () => [...this.led.keys()].sort((a, b) => a - b).find((m) => this.count(m) > (cap.get(m) ?? 0));
    for (let m = over(); m !== undefined; m = over()) {
      const path = this.augmentingPath(m, cap);
      if (!path) return false;
      for (const { shard, to } of path) this.set(shard, to);
    }
    return true;
  }

  /** BFS member → shard it leads → another replica of that shard, until a member below its cap. */
  private augmentingPath(from: MemberId, cap: ReadonlyMap<MemberId, number>): { shard: number; to: MemberId }[] | null {
    const parent = new Map<MemberId, { shard: number; prev: MemberId }>();
    const visited = new Set<MemberId>([from]);
    let frontier = [from];
    while (frontier.length > 0) {
      const next: MemberId[] = [];
      for (const u of frontier) {
        for (const shard of [...(this.led.get(u) ?? [])].sort((a, b) => a - b)) {
          for (const v of this.byShard.get(shard)?.replicas ?? []) {
            if (visited.has(v)) continue;
            visited.add(v);
            parent.set(v, { shard, prev: u });
            if (this.count(v) < (cap.get(v) ?? 0)) return this.unwind(v, from, parent);
            next.push(v);
          }
        }
      }
      frontier = next;
    }
    return null;
  }

  private unwind(end: MemberId, start: MemberId, parent: ReadonlyMap<MemberId, { shard: number; prev: MemberId }>): { shard: number; to: MemberId }[] {
    const steps: { shard: number; to: MemberId }[] = [];
    for (let v = end; v !== start; ) {
      const p = parent.get(v)!;
      steps.push({ shard: p.shard, to: v });
      v = p.prev;
    }
    return steps;
  }
}

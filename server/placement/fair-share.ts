// Fair shares: how many replicas (and leaderships) each member should hold, before rounding. Owns the
// zone spread rule and the water-filling that turns weights and hard caps into shares. Pure.
//
// Why water-filling: a member can hold at most one replica per shard, and a zone at most `zoneSpread`
// replicas per shard, so a member's share is proportional to its weight only until one of those caps
// binds; the excess is spread over the rest in proportion to weight. With equal weights and zones of
// similar size nothing binds and every share is R·S/N, i.e. the plain mean.

import type { MemberId, PlacementMember } from './types.ts';

/** Rounding slack so that a share of 4.0000000001 from float arithmetic still rounds to the band [4, 4]. */
const EPSILON = 1e-7;
/** Smaller slack for the hard band, so that it never exceeds 1.10 × share by more than float noise. */
const EXACT = 1e-9;

export interface ReplicaShares {
  /** Fractional fair share of replicas per eligible member. Sums to R_eff · shardCount. */
  readonly share: ReadonlyMap<MemberId, number>;
  /** Per-shard cap of replicas in one zone. */
  readonly zoneSpread: number;
}

/** Smallest per-zone cap c such that Σ_z min(c, members in z) ≥ R: 1 whenever there are ≥ R zones. */
export function zoneSpreadFor(zoneSizes: readonly number[], replicasPerShard: number): number {
  for (let c = 1; ; c++) {
    const room = zoneSizes.reduce((sum, n) => sum + Math.min(c, n), 0);
    if (room >= replicasPerShard || c >= replicasPerShard) return c;
  }
}

/** Members grouped by zone, zones in name order (deterministic regardless of input order). */
export function byZone(members: readonly PlacementMember[]): Map<string, PlacementMember[]> {
  const zones = new Map<string, PlacementMember[]>();
  for (const m of [...members].sort((a, b) => a.id - b.id)) {
    const list = zones.get(m.zone);
    if (list) list.push(m);
    else zones.set(m.zone, [m]);
  }
  return new Map([...zones.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Fair replica shares for `eligible` members hosting `shardCount` shards with `replicasPerShard` each. */
export function replicaShares(eligible: readonly PlacementMember[], shardCount: number, replicasPerShard: number): ReplicaShares {
  const zones = byZone(eligible);
  const zoneSpread = zoneSpreadFor([...zones.values()].map((z) => z.length), replicasPerShard);
  const total = shardCount * replicasPerShard;
  const share = new Map<MemberId, number>();
  if (total === 0) {
    for (const m of eligible) share.set(m.id, 0);
    return { share, zoneSpread };
  }
  const memberCaps = (ms: readonly PlacementMember[]) => ms.map((m) => ({ weight: m.weight, cap: shardCount }));
  // Zone z holds min(S·min(c, |z|), its members' uncapped demand); solve the common λ over all zones.
  const zoneList = [...zones.values()];
  const zoneLoad = (ms: readonly PlacementMember[], lambda: number): number =>
    Math.min(shardCount * Math.min(zoneSpread, ms.length), sumCapped(memberCaps(ms), lambda));
  const lambda = solveLambda((l) => zoneList.reduce((sum, ms) => sum + zoneLoad(ms, l), 0), total);
  for (const ms of zoneList) {
    const zoneTotal = zoneLoad(ms, lambda);
    const shares = waterFill(memberCaps(ms), zoneTotal);
    ms.forEach((m, i) => share.set(m.id, shares[i]));
  }
  return { share, zoneSpread };
}

export interface Capped {
  readonly weight: number;
  readonly cap: number;
}

/** Shares x_i = min(cap_i, weight_i·λ) summing to `total` (or every cap, when total exceeds their sum). */
export function waterFill(items: readonly Capped[], total: number): number[] {
  const capSum = items.reduce((s, it) => s + it.cap, 0);
  if (total >= capSum) return items.map((it) => it.cap);
  const lambda = solveLambda((l) => sumCapped(items, l), total);
  return items.map((it) => Math.min(it.cap, it.weight * lambda));
}

function sumCapped(items: readonly Capped[], lambda: number): number {
  return items.reduce((s, it) => s + Math.min(it.cap, it.weight * lambda), 0);
}

/** λ with f(λ) = total for a non-decreasing f, by bisection (deterministic float arithmetic). */
function solveLambda(f: (lambda: number) => number, total: number): number {
  let lo = 0;
  let hi = 1;
  while (f(hi) < total && hi < 1e15) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) < total) lo = mid;
    else hi = mid;
  }
  return hi;
}

/**
 * Tolerance a member's replica count may stray from its fair share before replicas are moved for it alone:
 * the brief's own bound (max/mean ≤ 1.10). Within it the placer still steers towards
 * [floor(share), ceil(share)], but only with replicas it places anyway, so balance never buys extra data
 * movement (CockroachDB rebalances past a threshold in the same way).
 */
export const BALANCE_TOLERANCE = 0.1;

export interface Band {
  /** Pursued only with replicas being placed anyway (no extra move). */
  readonly softLow: number;
  readonly softHigh: number;
  /** Enforced with real moves. */
  readonly hardLow: number;
  readonly hardHigh: number;
}

/** The integer bands around a fractional share. */
export function bandOf(share: number): Band {
  const softLow = Math.floor(share + EPSILON);
  const softHigh = Math.ceil(share - EPSILON);
  return {
    softLow,
    softHigh,
    hardLow: Math.min(softLow, Math.ceil(share * (1 - BALANCE_TOLERANCE) - EXACT)),
    hardHigh: Math.max(softHigh, Math.floor(share * (1 + BALANCE_TOLERANCE) + EXACT)),
  };
}

// Rendezvous (highest-random-weight) scores: a fixed pseudo-random preference of every shard for every
// member. The placer uses them for every choice that the load caps leave open (which member receives a
// replica, which replica moves, which replica leads), so choices are deterministic, independent of input
// order, and spread evenly; a member's arrival or departure only changes choices that involved it. Pure.

import type { MemberId } from './types.ts';

/** murmur3's 32-bit finalizer: full avalanche, so nearby ids give unrelated scores. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 32-bit hash of (shard, member). Member ids may use up to 53 bits, so both halves are mixed in. */
export function pairHash(shard: number, member: MemberId): number {
  const memberLow = member >>> 0;
  const memberHigh = Math.floor(member / 0x1_0000_0000) >>> 0;
  let h = fmix32((shard >>> 0) ^ 0x9e3779b9);
  h = fmix32(h ^ memberLow);
  h = fmix32(h ^ Math.imul(memberHigh, 0x27d4eb2f) ^ 0x165667b1);
  return h;
}

/**
 * Weighted rendezvous score (Schindelhauer & Schomaker's logarithmic method): -weight / ln(u) with u uniform
 * in (0, 1) from the hash. Highest score wins; a member of weight 2 wins twice as often as one of weight 1.
 */
export function rendezvousScore(shard: number, member: MemberId, weight: number): number {
  const u = (pairHash(shard, member) + 0.5) / 0x1_0000_0000;
  return -weight / Math.log(u);
}

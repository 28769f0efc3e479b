// The cluster-wide placement view that `GET /placement`, `synod.v1.Placement` and `synod placement` show:
// members, each shard's slot range, voters, learners, leader and revision, and move counts. Pure: it
// turns an observation (what one member knows now) into the JSON shape fixed by the sharding brief, and
// answers "which slot and shard holds this key" from slots.ts and a SlotMap.
//
// Why it is safe to show: nothing here decides anything. Member ids are rendered exactly as etcdctl
// prints them (lowercase hex, no padding), so a reader can join this view with `etcdctl member list`.
// The input is what the caller observed at one instant; the view never invents a leader (none → null)
// and lists only members still in the cluster (removed members are the caller's to leave out).

import { slotOf, type SlotMap } from '../routing/slots.ts';
import type { MemberId } from './types.ts';

/** A member as the view receives it: the replicated membership plus its published attributes. */
export interface ObservedMember {
  readonly id: MemberId;
  readonly name: string;
  /** `--zone` as the member published it through the log; empty when it has none. */
  readonly zone: string;
  readonly clientUrls: readonly string[];
  readonly peerUrls: readonly string[];
}

/** One shard as this member observes it now. */
export interface ObservedShard {
  readonly shard: number;
  /** Members holding a voting replica. */
  readonly voters: readonly MemberId[];
  /** Members holding a non-voting replica (a move's target catching up, or a `member add --learner`). */
  readonly learners: readonly MemberId[];
  /** The leader this member knows of; 0 when it knows none. */
  readonly leader: MemberId;
  /** The shard's MVCC revision as applied by this member. */
  readonly revision: number;
}

export interface MoveCounts {
  readonly pending: number;
  readonly inProgress: number;
  readonly done: number;
}

export interface PlacementObservation {
  /** Placement version: see docs/sharding.md, "The placement surface" (what it counts). */
  readonly version: number;
  readonly slotMap: SlotMap;
  readonly members: readonly ObservedMember[];
  readonly shards: readonly ObservedShard[];
  readonly moves: MoveCounts;
}

// The JSON shape of /work/shared/sharding.md "Seeing it", field for field.
export interface PlacementViewMember {
  id: string;
  name: string;
  zone: string;
  clientURLs: string[];
  peerURLs: string[];
}

export interface PlacementViewShard {
  id: number;
  /** Inclusive [first, last] slot range owned by the shard. */
  slots: [number, number];
  replicas: string[];
  learners: string[];
  leader: string | null;
  revision: number;
}

export interface PlacementView {
  version: number;
  members: PlacementViewMember[];
  shards: PlacementViewShard[];
  moves: MoveCounts;
}

export interface KeyLocation {
  key: string;
  slot: number;
  shard: number;
}

/** A member id as etcdctl prints it (`%x` of the uint64): lowercase hex, no leading zeros. */
export function memberHex(id: MemberId): string {
  if (!Number.isSafeInteger(id) || id <= 0) throw new RangeError(`member id must be a positive integer (got ${String(id)})`);
  return id.toString(16);
}

function sortedHex(ids: readonly MemberId[]): string[] {
  return [...new Set(ids)].sort((a, b) => a - b).map(memberHex);
}

/** The single contiguous slot range a shard owns; the brief's shape has room for exactly one. */
function slotRangeOf(slotMap: SlotMap, shard: number): [number, number] {
  const ranges = slotMap.rangesOf(shard);
  if (ranges.length === 0) throw new RangeError(`shard ${shard} owns no slots in slot map version ${slotMap.version}`);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i].firstSlot !== ranges[i - 1].lastSlot + 1) {
      // Splits and merges are not built; when they are, the shape grows a list of ranges.
      throw new RangeError(`shard ${shard} owns non-contiguous slot ranges; the placement view shows one range per shard`);
    }
  }
  return [ranges[0].firstSlot, ranges[ranges.length - 1].lastSlot];
}

/** Builds the view: members by id, shards by id, ids in etcdctl's hex; deterministic for a given input. */
export function buildPlacementView(o: PlacementObservation): PlacementView {
  const members = [...o.members]
    .sort((a, b) => a.id - b.id)
    .map((m) => ({ id: memberHex(m.id), name: m.name, zone: m.zone, clientURLs: [...m.clientUrls], peerURLs: [...m.peerUrls] }));
  const shards = [...o.shards]
    .sort((a, b) => a.shard - b.shard)
    .map((s) => {
      const voters = new Set(s.voters);
      return {
        id: s.shard,
        slots: slotRangeOf(o.slotMap, s.shard),
        replicas: sortedHex(s.voters),
        // A member is a voter or a learner of a shard, never both (Raft's ConfState); voters win if fed both.
        learners: sortedHex(s.learners.filter((id) => !voters.has(id))),
        leader: s.leader === 0 ? null : memberHex(s.leader),
        revision: s.revision,
      };
    });
  return { version: o.version, members, shards, moves: { pending: o.moves.pending, inProgress: o.moves.inProgress, done: o.moves.done } };
}

/** Which slot and shard hold `key` (the slot from the pinned hash, the shard from the slot map). */
export function locateKey(slotMap: SlotMap, key: Uint8Array): { slot: number; shard: number } {
  const slot = slotOf(key);
  return { slot, shard: slotMap.shardOf(slot) };
}

/** `locateKey` in the brief's JSON shape; `key` is shown as UTF-8 text. */
export function keyLocationView(slotMap: SlotMap, key: Uint8Array): KeyLocation {
  return { key: Buffer.from(key).toString('utf8'), ...locateKey(slotMap, key) };
}

/** Replicas and leaderships per member in a view (for the gauges): every listed member appears, 0 included. */
export function loadsPerMember(view: PlacementView): Map<string, { replicas: number; leaders: number }> {
  const out = new Map<string, { replicas: number; leaders: number }>();
  for (const m of view.members) out.set(m.id, { replicas: 0, leaders: 0 });
  for (const s of view.shards) {
    for (const r of s.replicas) {
      const load = out.get(r) ?? { replicas: 0, leaders: 0 };
      load.replicas++;
      out.set(r, load);
    }
    if (s.leader !== null) {
      const load = out.get(s.leader) ?? { replicas: 0, leaders: 0 };
      load.leaders++;
      out.set(s.leader, load);
    }
  }
  return out;
}

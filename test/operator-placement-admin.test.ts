// The operator's Placement admin client (operator/etcd/placement-admin.ts) against a real sharded Synod
// cluster of processes: 4 members, 8 shards, 3 replicas each. GetPlacement shows every shard with 3
// voters and a leader and the metadata group's leader; TransferLeaderships (the server RPC the
// operator's rolling upgrade needs) leaves the member leading no shard and no metadata group; Drain
// moves every replica off a member and undrain marks it up again; a one-group cluster refuses Drain.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { GrpcEtcdAdmin } from '../operator/etcd/etcd-admin.ts';
import { GrpcPlacementAdmin, type PlacementSnapshot } from '../operator/etcd/placement-admin.ts';

let cluster: ProcessCluster;
const placement = new GrpcPlacementAdmin({ callTimeoutMs: 5_000, transferTimeoutMs: 15_000 });
const etcd = new GrpcEtcdAdmin();
/** Member id (hex) by member index. */
let ids: string[];

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 4, extraArgs: ['--shards', '8', '--replication-factor', '3'] });
  ids = await Promise.all(cluster.members.map(async (_, i) => (await etcd.status(cluster.addressOf(i))).memberId));
}, 60_000);

afterAll(async () => {
  placement.close();
  etcd.close();
  await cluster?.destroy();
});

async function eventually<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== null) return v;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what} (${String(last)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const settled = (p: PlacementSnapshot): boolean =>
  p.shards.every((s) => s.voters.length === 3 && s.learners.length === 0 && s.leader !== '') && p.moves.pending === 0 && p.moves.inProgress === 0;

describe('GrpcPlacementAdmin against a real 4-member, 8-shard Synod cluster (R = 3)', () => {
  it('GetPlacement: every shard on 3 members with a leader among them, the metadata leader, the members', async () => {
    const view = await eventually('placement settled', async () => {
      const p = await placement.getPlacement(cluster.addressOf(0));
      return settled(p) && p.metadataLeader !== '' ? p : null;
    });
    expect(view.shards.map((s) => s.id)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(view.members.map((m) => m.id).sort()).toEqual([...ids].sort());
    for (const s of view.shards) {
      expect(new Set(s.voters).size).toBe(3);
      expect(s.voters).toContain(s.leader);
      for (const v of s.voters) expect(ids).toContain(v);
    }
    expect(ids).toContain(view.metadataLeader);
    expect(view.shards[0].firstSlot).toBe(0);
    expect(view.shards[7].lastSlot).toBe(16383);
  });

  it('TransferLeaderships leaves the member leading no shard and not the metadata group', async () => {
    const view = await placement.getPlacement(cluster.addressOf(0));
    // The member leading most groups (the metadata group counts), so that there is something to move.
    const leads = (id: string, p: PlacementSnapshot): number => p.shards.filter((s) => s.leader === id).length + (p.metadataLeader === id ? 1 : 0);
    const index = [...ids.keys()].sort((a, b) => leads(ids[b], view) - leads(ids[a], view))[0];
    expect(leads(ids[index], view)).toBeGreaterThan(0);
    const out = await placement.transferLeaderships(cluster.addressOf(index));
    expect(out.remaining).toBe(0);
    expect(out.transferred).toBeGreaterThan(0);
    const after = await eventually('leaderships gone from the member', async () => {
      const p = await placement.getPlacement(cluster.addressOf((index + 1) % 4));
      return p.shards.every((s) => s.leader !== '') && leads(ids[index], p) === 0 ? p : null;
    }, 5_000);
    expect(after.shards.every((s) => s.leader !== ids[index])).toBe(true);
    // And it stays so while the member runs on (the operator deletes its pod next): the other members'
    // leader balancers, which run every 2 s, must not hand its preferred shards straight back.
    await new Promise((r) => setTimeout(r, 6_000));
    const later = await placement.getPlacement(cluster.addressOf((index + 1) % 4));
    expect(later.shards.filter((s) => s.leader === ids[index]).map((s) => s.id)).toEqual([]);
    expect(later.metadataLeader).not.toBe(ids[index]);
  }, 30_000);

  it('Drain moves every replica off a member; undrain marks it up again', async () => {
    const target = ids[3];
    const first = await placement.drain([cluster.addressOf(0)], target);
    expect(first.draining).toBe(true);
    const drained = await eventually('replicas moved off', async () => {
      const out = await placement.drain([cluster.addressOf(1)], target);
      return out.replicasRemaining === 0 ? out : null;
    }, 40_000);
    expect(drained.draining).toBe(true);
    const view = await eventually('placement settled without the drained member', async () => {
      const p = await placement.getPlacement(cluster.addressOf(0));
      return settled(p) ? p : null;
    });
    for (const s of view.shards) expect([...s.voters, ...s.learners]).not.toContain(target);
    const undrained = await placement.drain([cluster.addressOf(0)], target, true);
    expect(undrained.draining).toBe(false);
  }, 60_000);
});

describe('GrpcPlacementAdmin against a one-group cluster', () => {
  it('Drain is refused with FailedPrecondition; TransferLeaderships has nothing to move', async () => {
    const single = await ProcessCluster.start({ size: 1 });
    const admin = new GrpcPlacementAdmin();
    try {
      const id = (await etcd.status(single.addressOf(0))).memberId;
      await expect(admin.drain([single.addressOf(0)], id)).rejects.toMatchObject({ code: 9 });
      expect(await admin.transferLeaderships(single.addressOf(0))).toEqual({ transferred: 0, remaining: 0 });
      const view = await admin.getPlacement(single.addressOf(0));
      expect(view.shards).toHaveLength(1);
      expect(view.metadataLeader).toBe('');
    } finally {
      admin.close();
      await single.destroy();
    }
  });
});

// GrpcEtcdAdmin against a real 3-member etcd (Debian's etcd-server) and, with the same expectations,
// a real 3-member Synod: MemberList, Status with leader and applied index, MoveLeader on the leader
// (and the refusal elsewhere), a learner added, started, promoted once in sync, and removed — the
// exact calls the operator makes while scaling.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, freePort, RealEtcdCluster, type ServerKind } from '../testing/real-etcd.ts';
import { GrpcEtcdAdmin, hexToId, idToHex } from './etcd-admin.ts';

describe.each<ServerKind>(['etcd', 'synod'])('GrpcEtcdAdmin against real %s', (kind) => {
let cluster: RealEtcdCluster;
const admin = new GrpcEtcdAdmin({ callTimeoutMs: 2_000 });

beforeAll(async () => {
  cluster = await RealEtcdCluster.start(3, kind);
  await eventually(async () => {
    const statuses = await Promise.all(cluster.endpoints.map((e) => admin.status(e)));
    return statuses.every((s) => s.leaderId !== '0') ? true : undefined;
  }, `a ${kind} leader`, 30_000);
});

afterAll(async () => {
  admin.close();
  await cluster?.stop();
});

async function leaderIndex(): Promise<number> {
  const statuses = await Promise.all(cluster.endpoints.slice(0, 3).map((e) => admin.status(e)));
  const leaderId = statuses[0].leaderId;
  return statuses.findIndex((s) => s.memberId === leaderId);
}

  it('converts member ids between etcd\'s decimal wire form and hex', () => {
    expect(idToHex('18446744073709551615')).toBe('ffffffffffffffff');
    expect(hexToId('8e9e05c52164694d')).toBe('10276657743932975437');
  });

  it('lists the members with names, peer and client URLs', async () => {
    const members = await admin.memberList(['127.0.0.1:1', ...cluster.endpoints]);
    expect(members.map((m) => m.name).sort()).toEqual(['etcd0', 'etcd1', 'etcd2']);
    for (const m of members) {
      expect(m.isLearner).toBe(false);
      expect(m.peerUrls).toEqual([cluster.members.find((x) => x.name === m.name)?.peerUrl]);
      expect(m.id).toMatch(/^[0-9a-f]+$/);
    }
  });

  it('reads each member\'s status: its id, the leader, applied index', async () => {
    const status = await admin.status(cluster.endpoints[0]);
    const members = await admin.memberList(cluster.endpoints);
    expect(members.map((m) => m.id)).toContain(status.memberId);
    expect(members.map((m) => m.id)).toContain(status.leaderId);
    expect(status.raftAppliedIndex).toBeGreaterThan(0);
  });

  it('moves leadership when asked on the leader, and is refused on a follower', async () => {
    const from = await leaderIndex();
    const to = (from + 1) % 3;
    const target = (await admin.status(cluster.endpoints[to])).memberId;
    const follower = cluster.endpoints[(from + 2) % 3];
    await expect(admin.moveLeader(follower, target)).rejects.toThrow(/not leader/);
    await admin.moveLeader(cluster.endpoints[from], target);
    await eventually(async () => ((await leaderIndex()) === to ? true : undefined), 'leadership on the target');
  });

  it('adds a learner, refuses to promote it before it runs, promotes it once in sync, removes it', async () => {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    // etcd refuses reconfiguration ("unhealthy cluster") until every member has been connected a while.
    const learner = await eventually(() => admin.memberAddLearner(cluster.endpoints, peerUrl), 'MemberAdd accepted');
    expect(learner).toMatchObject({ name: '', isLearner: true, peerUrls: [peerUrl] });
    await expect(admin.memberPromote(cluster.endpoints, learner.id)).rejects.toThrow(/in sync with leader/);

    const initialCluster = (await admin.memberList(cluster.endpoints))
      .map((m) => `${m.peerUrls.includes(peerUrl) ? 'etcd3' : m.name}=${m.peerUrls[0]}`).join(',');
    const joined = cluster.join('etcd3', clientPort, peerPort, initialCluster);
    await eventually(async () => {
      await admin.memberPromote(cluster.endpoints, learner.id);
      return true;
    }, 'promotion of the caught-up learner');
    // The new member publishes its name through the log once it runs, which may land just after; and
    // MemberList is not linearizable, so the answering member may not have applied the promotion yet.
    const promoted = await eventually(async () => {
      const m = (await admin.memberList(cluster.endpoints)).find((x) => x.id === learner.id);
      return m?.name === 'etcd3' && !m.isLearner ? m : undefined;
    }, 'the promoted member listed with its name');
    expect(promoted).toMatchObject({ name: 'etcd3', isLearner: false });
    expect((await admin.status(joined.clientEndpoint)).memberId).toBe(learner.id);

    await admin.memberRemove(cluster.endpoints.slice(0, 3), learner.id);
    expect((await admin.memberList(cluster.endpoints.slice(0, 3))).map((m) => m.id)).not.toContain(learner.id);
    await expect(admin.memberRemove(cluster.endpoints.slice(0, 3), learner.id)).rejects.toThrow(/member not found/);
  });
});

// GrpcEtcdAdmin against a real 3-member Synod cluster (`synod server` processes on loopback): the
// operator's observation calls (MemberList, Status) and MoveLeader work on Synod as on etcd.
// Membership changes (MemberAdd/Promote/Remove) are covered against etcd in etcd-admin.test.ts.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agreedLeader } from '../controller/observe.ts';
import { eventually, RealEtcdCluster } from '../testing/real-etcd.ts';
import { GrpcEtcdAdmin } from './etcd-admin.ts';

let cluster: RealEtcdCluster;
const admin = new GrpcEtcdAdmin({ callTimeoutMs: 2_000 });

beforeAll(async () => {
  cluster = await RealEtcdCluster.start(3, 'synod');
  await eventually(async () => {
    const statuses = await Promise.all(cluster.endpoints.map((e) => admin.status(e)));
    return statuses.every((s) => s.leaderId !== '0') ? true : undefined;
  }, 'a Synod leader', 30_000);
});

afterAll(async () => {
  admin.close();
  await cluster?.stop();
});

describe('GrpcEtcdAdmin against real Synod', () => {
  it('lists the three members with their peer URLs', async () => {
    const members = await admin.memberList(cluster.endpoints);
    expect(members.map((m) => m.name).sort()).toEqual(['etcd0', 'etcd1', 'etcd2']);
    expect(members.flatMap((m) => m.peerUrls).sort()).toEqual(cluster.members.map((m) => m.peerUrl).sort());
    expect(members.every((m) => !m.isLearner)).toBe(true);
  });

  it('reports one leader that every member agrees on, and applied indexes', async () => {
    const statuses = await Promise.all(cluster.endpoints.map((e) => admin.status(e)));
    const leader = agreedLeader(statuses);
    const ids = (await admin.memberList(cluster.endpoints)).map((m) => m.id);
    expect(ids).toContain(leader);
    expect(new Set(statuses.map((s) => s.leaderId))).toEqual(new Set([leader]));
    expect(statuses.every((s) => s.raftAppliedIndex > 0)).toBe(true);
  });

  it('moves leadership to the member the operator names', async () => {
    const statuses = await Promise.all(cluster.endpoints.map((e) => admin.status(e)));
    const leaderAt = statuses.findIndex((s) => s.memberId === s.leaderId);
    const target = statuses[(leaderAt + 1) % 3].memberId;
    await admin.moveLeader(cluster.endpoints[leaderAt], target);
    await eventually(async () => {
      const now = await Promise.all(cluster.endpoints.map((e) => admin.status(e)));
      return now.every((s) => s.leaderId === target) ? true : undefined;
    }, 'leadership on the target');
  });
});

// etcdserverpb.Maintenance: Status (what `etcdctl endpoint status` prints), MoveLeader (leadership
// transfer, for rolling restarts without an election timeout), Alarm (no alarms are
// raised yet: the store has no space quota), Defragment (LevelDB compacts itself in the background,
// so there is nothing to do and success is the truthful answer).
import type * as grpc from '@grpc/grpc-js';
import { ApiContext, DATA_GROUP_ID, unary } from './context.ts';

/** The etcd API version Synod speaks; clients gate features on it. */
export const ETCD_COMPAT_VERSION = '3.5.0';

export function maintenanceService(
  ctx: ApiContext,
  dbSizeBytes: () => number,
): grpc.UntypedServiceImplementation {
  return {
    Status: unary(ctx, async () => {
      const s = ctx.member.status(DATA_GROUP_ID);
      const size = dbSizeBytes();
      return {
        header: ctx.header(),
        version: ETCD_COMPAT_VERSION,
        dbSize: size,
        leader: String(s.leaderId),
        raftIndex: String(s.commit),
        raftTerm: String(s.term),
        raftAppliedIndex: String(s.applied),
        errors: s.leaderId === 0 ? ['etcdserver: no leader'] : [],
        dbSizeInUse: size,
        isLearner: false,
      };
    }),
    Alarm: unary(ctx, async () => ({ header: ctx.header(), alarms: [] })),
    MoveLeader: unary(ctx, async (req: { targetID: string }) => {
      await ctx.member.transferLeadership(DATA_GROUP_ID, Number(req.targetID), ctx.limits.requestTimeoutMs);
      return { header: ctx.header() };
    }),
    Defragment: unary(ctx, async () => ({ header: ctx.header() })),
  };
}

// etcdserverpb.Cluster. This issue serves MemberList from the member's cluster record; live
// membership changes (add, promote, remove, update) arrive with the membership issue and until then
// answer UNIMPLEMENTED, so no client mistakes them for having happened.
import type * as grpc from '@grpc/grpc-js';
import { ApiContext, unary } from './context.ts';

export function clusterService(ctx: ApiContext): grpc.UntypedServiceImplementation {
  return {
    MemberList: unary(ctx, async (req: { linearizable?: boolean }) => {
      if (req.linearizable) await ctx.readBarrier();
      return {
        header: ctx.header(),
        members: ctx.members().map((m) => ({
          ID: String(m.id),
          name: m.name,
          peerURLs: m.peerUrls,
          clientURLs: m.clientUrls,
          isLearner: m.isLearner,
        })),
      };
    }),
  };
}

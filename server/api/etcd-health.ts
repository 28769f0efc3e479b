// etcd's HTTP health check, `GET /health`, as etcd 3.5 answers it on its client and metrics ports:
// 200 `{"health":"true","reason":""}` when this member has no alarm raised, knows a leader, and can read
// within a second; else 503 with `{"health":"false","reason":...}` in etcd's words ("ALARM NOSPACE",
// "RAFT NO LEADER", "QGET ERROR:..."). `?serializable=true` reads without asking the leader (the member
// alone); `?exclude=NOSPACE` (repeatable) ignores alarms of that type. Kubernetes probes, load balancers and
// monitoring scripts written for etcd call this on port 2379.
//
// The read is the member's own, not a client request: auth does not apply (etcd's check runs inside
// the server too), and on a sharded cluster it is a one-key Range of "health" through the sharded KV,
// which reaches that key's shard wherever it is hosted.
import type { ApiContext } from './context.ts';
import { DATA_GROUP_ID } from './context.ts';
import { shardedKvOf } from './sharded-kv.ts';
import type { RangeRequest } from '../etcd/wire-types.ts';

const HEALTH_KEY = Buffer.from('health');

/** How long the read may take before the member is reported unhealthy (etcd's one second). */
export const HEALTH_READ_TIMEOUT_MS = 1_000;

export interface HealthAnswer {
  health: 'true' | 'false';
  reason: string;
}

export interface HealthQuery {
  serializable: boolean;
  /** Alarm types not to count ("NOSPACE", "CORRUPT"). */
  excludedAlarms: ReadonlySet<string>;
}

/** `?serializable=true&exclude=NOSPACE` → the query (anything else in it is ignored, as etcd does). */
export function parseHealthQuery(search: string): HealthQuery {
  const params = new URLSearchParams(search);
  return { serializable: params.get('serializable') === 'true', excludedAlarms: new Set(params.getAll('exclude')) };
}

export async function checkHealth(ctx: ApiContext, query: HealthQuery, timeoutMs = HEALTH_READ_TIMEOUT_MS): Promise<HealthAnswer> {
  const alarms = ctx.sm.alarms.list().filter((a) => !query.excludedAlarms.has(a.alarm));
  if (alarms.length > 0) return { health: 'false', reason: alarms.map((a) => `ALARM ${a.alarm}`).join(' ') };
  if (ctx.member.status(DATA_GROUP_ID).leaderId === 0) return { health: 'false', reason: 'RAFT NO LEADER' };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('context deadline exceeded')), timeoutMs);
  });
  try {
    await Promise.race([readHealthKey(ctx, query.serializable), timeout]);
    return { health: 'true', reason: '' };
  } catch (err) {
    return { health: 'false', reason: `QGET ERROR:${err instanceof Error ? err.message : String(err)}` };
  } finally {
    clearTimeout(timer);
  }
}

async function readHealthKey(ctx: ApiContext, serializable: boolean): Promise<void> {
  if (ctx.shards === null) {
    // One group: the read barrier is the whole cost of a linearizable read; the store read is local.
    if (!serializable) await ctx.readBarrier();
    return;
  }
  const req: RangeRequest = {
    key: HEALTH_KEY,
    range_end: Buffer.alloc(0),
    limit: '1',
    revision: '0',
    sort_order: 'NONE',
    sort_target: 'KEY',
    serializable,
    keys_only: true,
    count_only: false,
    min_mod_revision: '0',
    max_mod_revision: '0',
    min_create_revision: '0',
    max_create_revision: '0',
  };
  await shardedKvOf(ctx, ctx.shards).range(req);
}

// Deleting a revoked lease's keys on every shard of a sharded cluster (docs/sharding.md, "Leases on a
// sharded cluster"). Leases live in the cluster group; their keys may sit on any shard. A revoke (a
// client's, or the leader's expiry) applied in the cluster group records a pending sweep of that lease
// generation; the sweep proposes one `lease_sweep` entry to every shard (each deletes the lease's keys
// there at its own oracle revision and from then on refuses puts naming that generation), and once every
// shard applied one, records `lease_swept` in the cluster group, which ends the pending sweep.
//
// Who sweeps: the member whose client revoked (it answers the revoke only after the sweep, as etcd
// answers only after deleting the keys), and the cluster group's leader for every pending sweep, every
// scan. Both may sweep the same generation at once: a shard applies the first sweep of a generation and
// ignores repeats, so any number of sweepers, a leader change or a member killed mid-sweep leave
// nothing behind — the pending record stays until some sweeper finished every shard.
//
// Each sweep entry also carries a horizon: the cluster group's applied index as it was HORIZON_AGE_MS
// ago. A shard then refuses puts whose lease was checked before it (their clients gave up long ago: a
// request times out in seconds) and drops the swept records of leases revoked before it, so a shard
// keeps only the records of about the last minute's revokes (LeaseStore.advanceHorizon says why that
// is safe).
import type { Logger } from 'pino';
import { ApiContext, DATA_GROUP_ID, type ShardedKeyspace } from './context.ts';
import { runAsServer } from './caller-context.ts';
import { DeadlineError } from '../member/member.ts';
import { crossShardCoordinator } from './cross-shard-txn.ts';
import type { TxnCoordinator } from '../txn/coordinator.ts';

/**
 * A lease's keys on every shard, by shard group, each read after that shard's ReadIndex (on a member
 * hosting the shard when this member's API does not serve it).
 */
export async function leaseKeysByShard(ctx: ApiContext, shards: ShardedKeyspace, id: string, deadlineMs: number): Promise<Map<number, Buffer[]>> {
  const perShard = await Promise.all(
    shards.targets().map(async (t): Promise<[number, Buffer[]]> => {
      if (shards.hosts(t.groupId)) {
        await ctx.readBarrier(t);
        return [t.groupId, t.sm.leases.keysOf(id)];
      }
      const answer = await shards.forwardKv(t.groupId, { kind: 'lease-keys', leaseId: id }, deadlineMs);
      if (answer.kind !== 'done' || answer.payload.kind !== 'keys') throw new Error(`shard group ${t.groupId}: a forwarded lease keys read answered ${answer.kind}`);
      return [t.groupId, answer.payload.keys];
    }),
  );
  return new Map(perShard);
}

/** How often the cluster group's leader looks for pending sweeps. */
const SCAN_INTERVAL_MS = 250;
/** After a failed sweep, the leader's scan waits this long before trying that lease again. */
const RETRY_AFTER_MS = 1_000;
/**
 * One attempt at one shard: a proposal forwarded to a shard leader that just died is lost without an
 * answer, so each shard is retried after this long rather than after a client's whole request timeout.
 */
const ATTEMPT_TIMEOUT_MS = 1_500;
/** A sweep gives up (to be retried by the leader's next scans) after this long. */
const SWEEP_DEADLINE_MS = 20_000;
const RETRY_PAUSE_MS = 50;
/** How old a put's lease check must be before shards refuse it (and forget the swept leases before it). */
export const HORIZON_AGE_MS = 60_000;

/**
 * The cluster group's applied index over time, sampled: `horizon(now)` is the newest sample at least
 * `ageMs` old (0 before there is one). Only memory of the last `ageMs` and one sample more is kept.
 */
export class AppliedIndexHistory {
  private readonly ageMs: number;
  private samples: Array<{ atMs: number; index: number }> = [];

  constructor(ageMs: number) {
    this.ageMs = ageMs;
  }

  sample(nowMs: number, index: number): void {
    this.samples.push({ atMs: nowMs, index });
    // Keep the newest sample that is old enough, and everything after it.
    let oldEnough = -1;
    for (let i = 0; i < this.samples.length && this.samples[i].atMs <= nowMs - this.ageMs; i++) oldEnough = i;
    if (oldEnough > 0) this.samples = this.samples.slice(oldEnough);
  }

  horizon(nowMs: number): number {
    let h = 0;
    for (const s of this.samples) {
      if (s.atMs > nowMs - this.ageMs) break;
      h = s.index;
    }
    return h;
  }
}

export class LeaseSweeper {
  private readonly ctx: ApiContext;
  private readonly shards: ShardedKeyspace;
  private readonly logger: Logger;
  /** Sweeps running on this member, by `id/generation`. */
  private readonly running = new Map<string, Promise<number>>();
  private readonly failedAt = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private readonly history: AppliedIndexHistory;
  readonly stats = { sweeps: 0, failed: 0 };

  /** Sweeps the shards holding a lease's keys as one transaction (one revision for all of them). */
  private readonly coordinator: TxnCoordinator;

  constructor(ctx: ApiContext, shards: ShardedKeyspace, logger: Logger, horizonAgeMs = HORIZON_AGE_MS) {
    this.ctx = ctx;
    this.shards = shards;
    this.coordinator = crossShardCoordinator(ctx, shards);
    this.logger = logger;
    this.history = new AppliedIndexHistory(horizonAgeMs);
  }

  start(): void {
    this.timer = setInterval(() => this.scan(), SCAN_INTERVAL_MS);
    // A revoke applied here while this member leads the cluster group: start at once, not at the next scan.
    this.ctx.sm.sweepListener = (id, generation) => {
      if (this.leads()) setImmediate(() => this.sweepInBackground(id, generation));
    };
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.ctx.sm.sweepListener = null;
  }

  private leads(): boolean {
    return this.ctx.member.role(DATA_GROUP_ID) === 'leader';
  }

  private scan(): void {
    const now = Date.now();
    this.history.sample(now, this.ctx.member.status(DATA_GROUP_ID).applied);
    if (!this.leads()) return;
    for (const [id, r] of this.ctx.sm.leases.pendingSweepList()) {
      const key = `${id}/${r.generation}`;
      if (this.running.has(key) || now - (this.failedAt.get(key) ?? 0) < RETRY_AFTER_MS) continue;
      this.sweepInBackground(id, r.generation);
    }
  }

  private sweepInBackground(id: string, generation: number): void {
    this.sweep(id, generation).catch((err: unknown) => {
      this.failedAt.set(`${id}/${generation}`, Date.now());
      this.stats.failed++;
      this.logger.debug({ err, lease: id, generation }, 'lease sweep failed; retried');
    });
  }

  /**
   * As sweep(), but a caller waiting on behalf of a client stops waiting at `deadlineMs` with
   * "request timed out" (the sweep itself goes on, and the leader's scans finish it if it fails).
   */
  sweepBy(id: string, generation: number, deadlineMs: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new DeadlineError('lease sweep')), Math.max(0, deadlineMs - Date.now()));
      this.sweep(id, generation).then(
        (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
  }

  /** `attempt` until it succeeds or `deadlineMs` passes (then its last error). Repeats are harmless: see the header. */
  private async retried<T>(deadlineMs: number, attempt: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await attempt();
      } catch (err) {
        if (Date.now() + RETRY_PAUSE_MS >= deadlineMs) throw err;
        await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
      }
    }
  }

  /**
   * Sweeps generation `generation` of lease `id` on every shard, then records it done in the cluster
   * group. Resolves with the highest shard revision the sweep applied at (0: nothing left to sweep).
   * Joins a sweep of the same generation already running here.
   */
  sweep(id: string, generation: number): Promise<number> {
    // The pending record says which generation to sweep: a newer one covers this one; none, it is done.
    const pending = this.ctx.sm.leases.pendingSweep(id);
    if (pending === undefined || pending.generation < generation) return Promise.resolve(0);
    const key = `${id}/${pending.generation}`;
    const running = this.running.get(key);
    if (running !== undefined) return running;
    const body = { ID: id, generation: String(pending.generation), revoked_at: String(pending.revokedAt) };
    const sweepBody = { ...body, horizon: String(this.history.horizon(Date.now())) };
    const deadlineMs = Date.now() + SWEEP_DEADLINE_MS;
    const done = runAsServer(async () => {
      // The shards holding the generation's keys sweep them in one transaction, at one revision C, as
      // etcd's revoke deletes them in one; every other shard gets a plain sweep (it refuses the generation
      // from then on). A key attached to it on such a shard after it was read here (a put racing the
      // revoke) goes at that shard's own sweep revision.
      const keys = await this.retried(deadlineMs, () => leaseKeysByShard(this.ctx, this.shards, id, Math.min(deadlineMs, Date.now() + ATTEMPT_TIMEOUT_MS)));
      const holding = this.shards.targets().filter((t) => (keys.get(t.groupId) ?? []).length > 0);
      const together = holding.length > 1 ? holding : [];
      const swept = together.length > 0 ? await this.retried(deadlineMs, () => this.coordinator.sweepLease(sweepBody, together.map((t) => t.groupId))) : 0;
      const outcomes = await Promise.all(
        this.shards
          .targets()
          .filter((t) => !together.includes(t))
          .map((target) => this.retried(deadlineMs, () => this.ctx.proposeWrite({ lease_sweep: sweepBody }, { target, internal: true, timeoutMs: ATTEMPT_TIMEOUT_MS }))),
      );
      await this.retried(deadlineMs, () => this.ctx.proposeWrite({ lease_swept: body }, { internal: true, timeoutMs: ATTEMPT_TIMEOUT_MS }));
      this.stats.sweeps++;
      this.failedAt.delete(key);
      return Math.max(swept, ...outcomes.map((o) => o.revision));
    });
    this.running.set(key, done);
    const forget = (): void => {
      this.running.delete(key);
    };
    done.then(forget, forget);
    return done;
  }
}

// etcdserverpb.Maintenance: Status (what `etcdctl endpoint status` prints), MoveLeader (leadership
// transfer, for rolling restarts without an election timeout), Alarm (the replicated alarm table,
// server/shard/alarms.ts, and the space quota's NOSPACE, server/shard/quota.ts), Defragment (LevelDB
// compactRange: compacted history leaves the disk), Hash and HashKV (crc32 over the stored records,
// for checking that members agree), Snapshot (a consistent backup stream, server/storage/backup-file.ts,
// that `synod snapshot restore` reads). docs/operations.md says where each differs from etcd.
import * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';
import zlib from 'node:zlib';
import { ApiContext, DATA_GROUP_ID, toServiceError, unary, type GroupTarget } from './context.ts';
import { alarmActionOf, alarmTypeOf, type AlarmMember } from '../shard/alarms.ts';
import { ETCD_ERRORS, grpcError } from '../etcd/errors.ts';
import { effectiveQuotaBytes } from '../shard/quota.ts';
import { MVCC_RECORD_PREFIX } from '../shard/kv-state-machine.ts';
import type { DbSnapshot, MemberDb } from '../storage/member-db.ts';
import { encodeEtcdBackup } from './etcd-backup.ts';
import { etcdHashKv } from '../mvcc/etcd-hash-kv.ts';
import { rangeOf } from '../mvcc/types.ts';
import { decodeMeta, isMetaKey } from '../mvcc/codec.ts';
import { endWithStatus } from './stream-status.ts';
import { shardedBackupRecords } from './sharded-backup.ts';
import type { WorkSlots } from './work-slots.ts';


/** The etcd API version Synod speaks; clients gate features on it. */
export const ETCD_COMPAT_VERSION = '3.5.0';

export interface MaintenanceOptions {
  /** Bytes the member's database takes on disk (Status' dbSize). */
  dbSizeBytes: () => number;
  /** The member's database: consistent snapshots for Hash, HashKV and Snapshot; compaction for Defragment. */
  db: Pick<MemberDb, 'snapshot' | 'stateRecords' | 'compactAll'>;
  /** --quota-backend-bytes as given (0: etcd's default of 2 GiB; negative: no quota). */
  quotaBackendBytes: number;
  /** Where a backup spools its MVCC records while it is written (beside the member's data: it may be as large). */
  spoolDir: string;
  /** Backups at once and waiting (WorkSlots); its counts are on /metrics. */
  backupSlots: WorkSlots;
  /** Hash and HashKV at once and waiting (WorkSlots); its counts are on /metrics. */
  hashSlots: WorkSlots;
  /** Throws unless the caller may run admin operations (root when auth is on); Hash, HashKV and Snapshot are admin-only in etcd. */
  requireAdmin: (call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>) => Promise<void>;
}

/** How long HashKV waits for this member's database to catch up with a revision it has applied (flushes are lazy, ~100 ms). */
const HASH_CATCH_UP_MS = 2_000;

function alarmsToWire(alarms: AlarmMember[]): Array<{ memberID: string; alarm: string }> {
  return alarms.map((a) => ({ memberID: a.memberID, alarm: a.alarm }));
}

/** The MVCC revision counters of group `groupId`'s store as of a database snapshot. */
async function storedRevisions(db: MaintenanceOptions['db'], snap: DbSnapshot, groupId: number): Promise<{ currentRevision: number; compactedRevision: number }> {
  for await (const [key, value] of db.stateRecords(groupId, snap)) {
    if (key[0] === MVCC_RECORD_PREFIX && isMetaKey(key.subarray(1))) return decodeMeta(value);
    if (key[0] > MVCC_RECORD_PREFIX) break;
  }
  return { currentRevision: 1, compactedRevision: 0 };
}

/** Group `groupId`'s MVCC records (store-relative) as of a database snapshot, in key order. */
async function* mvccRecords(db: MaintenanceOptions['db'], snap: DbSnapshot, groupId: number): AsyncGenerator<[Buffer, Buffer]> {
  for await (const [key, value] of db.stateRecords(groupId, snap)) {
    if (key[0] < MVCC_RECORD_PREFIX) continue;
    if (key[0] > MVCC_RECORD_PREFIX) break;
    yield [key.subarray(1), value];
  }
}

/** Hash: crc32 over every state record of the groups (MVCC, leases, auth, membership, alarms), in order. */
async function hashAll(db: MaintenanceOptions['db'], snap: DbSnapshot, groupIds: readonly number[]): Promise<number> {
  let crc = 0;
  for (const groupId of groupIds) {
    for await (const [key, value] of db.stateRecords(groupId, snap)) {
      crc = zlib.crc32(key, crc);
      crc = zlib.crc32(value, crc);
    }
  }
  return crc;
}

export function maintenanceService(ctx: ApiContext, opts: MaintenanceOptions): grpc.UntypedServiceImplementation {
  const quotaBytes = effectiveQuotaBytes(opts.quotaBackendBytes);
  ctx.sm.quotaBytes = quotaBytes;
  // This member raises its own NOSPACE through the log, once at a time (etcd: the member whose
  // backend is full proposes the alarm). The alarm is internal: a learner may raise it too.
  let raising = false;
  ctx.sm.quotaListener = () => {
    if (raising) return;
    raising = true;
    ctx.logger.warn({ sizeBytes: ctx.sm.store.sizeBytes(), quotaBytes }, 'space quota exceeded: raising the NOSPACE alarm');
    ctx
      .proposeWrite({ alarm: { action: 'ACTIVATE', memberID: ctx.memberIdText, alarm: 'NOSPACE' } }, { internal: true })
      .catch((err: unknown) => ctx.logger.warn({ err }, 'raising the NOSPACE alarm failed; retried at the next write'))
      .finally(() => {
        raising = false;
      });
  };
  // A member that starts past its quota (e.g. restarted with a smaller one) raises the alarm once a leader is there.
  setTimeout(() => ctx.sm.checkQuota(), 1_000).unref();

  const backupSlots = opts.backupSlots;
  const hashSlots = opts.hashSlots;

  /**
   * Runs `fn` once a hash slot is free: refused with "too many requests" when too many wait, "request
   * timed out" when the call's deadline passes or its client cancels first.
   */
  const withHashSlot = async <T>(call: grpc.ServerUnaryCall<unknown, unknown>, fn: () => Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((resolve) => {
      call.on('cancelled', () => resolve());
      timer = setTimeout(resolve, Math.max(0, ctx.deadlineMs() - Date.now()));
    });
    // The timer settling `gaveUp` once the slot is held changes nothing (WorkSlots.acquire).
    const out = await hashSlots.run(gaveUp, fn).finally(() => clearTimeout(timer));
    if (out === 'full') throw grpcError(ETCD_ERRORS.REQUEST_TOO_MANY_REQUESTS);
    if (out === 'cancelled') throw grpcError(ETCD_ERRORS.TIMEOUT);
    return out.value;
  };

  /** A sharded member's shard replicas, in shard order (none on one group). */
  const hostedStores = (): GroupTarget[] => (ctx.shards === null ? [] : ctx.shards.targets().filter((t) => ctx.shards!.hosts(t.groupId)));

  /** Runs `fn` on a consistent view of the database, closed afterwards. */
  const withSnapshot = async <T>(fn: (snap: DbSnapshot) => Promise<T>): Promise<T> => {
    const snap = opts.db.snapshot();
    try {
      return await fn(snap);
    } finally {
      await snap.close();
    }
  };

  /** Streams `chunks` as SnapshotResponses (remaining_bytes estimated from `estimateBytes`; 0 on the last). */
  const stream = async (call: grpc.ServerWritableStream<unknown, unknown>, cancel: Promise<void>, chunks: AsyncIterable<Buffer>, estimateBytes: number): Promise<number> => {
    let cancelled = false;
    // A cancelled call never drains: a write waiting for 'drain' waits for the cancel instead, so the
    // stream ends (and its LevelDB snapshot and spool are let go) rather than hanging for ever.
    void cancel.then(() => (cancelled = true));
    const header = ctx.header();
    let remaining = Math.max(1, estimateBytes);
    let sent = 0;
    let pending: Buffer | null = null;
    for await (const chunk of chunks) {
      if (cancelled) return sent;
      if (pending) {
        sent += pending.length;
        remaining = Math.max(1, remaining - pending.length);
        if (!call.write({ header, remaining_bytes: String(remaining), blob: pending })) await Promise.race([once(call, 'drain'), cancel]);
      }
      pending = chunk;
    }
    if (pending && !cancelled) {
      sent += pending.length;
      call.write({ header, remaining_bytes: '0', blob: pending });
    }
    return sent;
  };

  /** A sharded cluster's backup: every key at one oracle revision, from the shards' leaders (sharded-backup.ts). */
  const sendShardedBackup = async (call: grpc.ServerWritableStream<unknown, unknown>, cancel: Promise<void>): Promise<void> => {
    const shards = ctx.shards!;
    const revision = await shards.freshRevision(ctx.deadlineMs());
    const chunks = encodeEtcdBackup(
      { format: 1, clusterId: BigInt(ctx.clusterId).toString(16), memberId: BigInt(ctx.memberIdText).toString(16), createdAt: new Date().toISOString(), shards: shards.targets().length, revision },
      shardedBackupRecords(ctx, shards, revision),
      opts.spoolDir,
    );
    const sent = await stream(call, cancel, chunks, shards.targets().reduce((sum, t) => sum + t.sm.store.sizeBytes(), 0));
    ctx.logger.info({ bytes: sent, revision }, 'sent a backup of the sharded cluster to a client');
    call.end();
  };

  /** One backup: the sharded cluster's, or this member's one group's, streamed to `call` until it ends or is cancelled. */
  const sendBackup = async (call: grpc.ServerWritableStream<unknown, unknown>, cancel: Promise<void>): Promise<void> => {
    if (ctx.shards !== null) return sendShardedBackup(call, cancel);
    const status = ctx.member.status(DATA_GROUP_ID);
    // A Raft snapshot being installed replaces the stored records non-atomically.
    if (status.snapshotIndex > status.applied) throw grpcError(ETCD_ERRORS.TIMEOUT, 'snapshot install in progress; retry');
    // Everything applied here goes into the backup, including what waits for a lazy flush (up to
    // 100 ms): a backup taken right after a write missed it (test/snapshot-save-restore.test.ts).
    await ctx.member.persistApplied(DATA_GROUP_ID, ctx.deadlineMs()).catch(() => {
      throw grpcError(ETCD_ERRORS.TIMEOUT);
    });
    // remaining_bytes is an estimate (the stream is produced as it is read); 0 marks the last message.
    const sent = await withSnapshot((snap) =>
      stream(
        call,
        cancel,
        encodeEtcdBackup(
          { format: 1, clusterId: BigInt(ctx.clusterId).toString(16), memberId: BigInt(ctx.memberIdText).toString(16), createdAt: new Date().toISOString() },
          opts.db.stateRecords(DATA_GROUP_ID, snap),
          opts.spoolDir,
        ),
        ctx.sm.store.sizeBytes(),
      ),
    );
    ctx.logger.info({ bytes: sent }, 'sent a snapshot (backup) to a client');
    call.end();
  };

  return {
    Status: unary(ctx, async () => {
      const s = ctx.member.status(DATA_GROUP_ID);
      return {
        header: ctx.header(ctx.currentRevision()),
        version: ETCD_COMPAT_VERSION,
        // On disk (shrinks on defragment), and the quota's measure (shrinks on compaction).
        dbSize: opts.dbSizeBytes(),
        leader: String(s.leaderId),
        raftIndex: String(s.commit),
        raftTerm: String(s.term),
        raftAppliedIndex: String(s.applied),
        errors: [
          ...(s.leaderId === 0 ? ['etcdserver: no leader'] : []),
          ...ctx.sm.alarms.list().map((a) => `memberID:${a.memberID} alarm:${a.alarm} `),
        ],
        dbSizeInUse: ctx.sm.store.sizeBytes(),
        isLearner: ctx.isLearner(),
      };
    }),

    Alarm: unary(ctx, async (req: { action: unknown; memberID: unknown; alarm: unknown }) => {
      const action = alarmActionOf(req.action);
      const alarm = alarmTypeOf(req.alarm);
      if (action === 'GET') {
        // As etcd: a linearizable read of the replicated table (NONE lists every type).
        await ctx.readBarrier();
        return { header: ctx.header(), alarms: alarmsToWire(ctx.sm.alarms.list().filter((a) => alarm === 'NONE' || a.alarm === alarm)) };
      }
      const out = await ctx.proposeWrite({ alarm: { action, memberID: String(req.memberID ?? '0'), alarm } });
      return { header: ctx.header(out.revision), alarms: alarmsToWire((out.result as { alarms: AlarmMember[] }).alarms) };
    }),

    MoveLeader: unary(ctx, async (req: { targetID: string }) => {
      await ctx.member.transferLeadership(DATA_GROUP_ID, Number(req.targetID), ctx.limits.requestTimeoutMs);
      return { header: ctx.header() };
    }),

    // Compacted records are deleted from LevelDB when the compaction applies, but their bytes stay
    // in its files until LevelDB compacts them; this does it now, for the whole database.
    Defragment: unary(ctx, async () => {
      const before = opts.dbSizeBytes();
      const started = Date.now();
      await opts.db.compactAll();
      ctx.logger.info({ beforeBytes: before, afterBytes: opts.dbSizeBytes(), ms: Date.now() - started }, 'defragmented');
      return { header: ctx.header() };
    }),

    Hash: unary(ctx, async (_req: unknown, call) => {
      await opts.requireAdmin(call);
      // A sharded member: its cluster group, then each shard replica it hosts.
      const hash = await withHashSlot(call, () => withSnapshot((snap) => hashAll(opts.db, snap, [DATA_GROUP_ID, ...hostedStores().map((t) => t.groupId)])));
      return { header: ctx.header(), hash };
    }),

    HashKV: unary(ctx, async (req: { revision: string }, call) => {
      await opts.requireAdmin(call);
      // One group: its store. A sharded member: the stores of the shard replicas it hosts, in shard order
      // (members hosting the same shards hash alike; revisions are the oracle's, one sequence for all).
      const stores = ctx.shards === null ? [{ groupId: DATA_GROUP_ID, sm: ctx.sm }] : hostedStores();
      const asked = Number(req.revision ?? 0);
      if (ctx.shards === null) {
        if (asked > ctx.sm.store.currentRevision()) throw grpcError(ETCD_ERRORS.FUTURE_REV);
      } else if (asked > 0) {
        // A revision of the oracle's sequence: future only past a fresh one. Every write at or below it
        // must be in this member's replicas: each shard is read at it on its leader (no such write can
        // follow), then this replica catches up with a ReadIndex.
        const deadlineMs = ctx.deadlineMs();
        if (asked > (await ctx.shards.freshRevision(deadlineMs))) throw grpcError(ETCD_ERRORS.FUTURE_REV);
        const probe = rangeOf(Buffer.alloc(0), Buffer.alloc(0), { countOnly: true });
        await Promise.all(stores.map(async (t) => {
          await ctx.shards!.rangeAt(t, probe, asked, deadlineMs);
          await ctx.readBarrier(t);
        }));
      }
      // What each store had applied when asked goes to disk first (the lazy flush written now), as for a backup.
      const deadline = Date.now() + HASH_CATCH_UP_MS;
      await Promise.all(stores.map((t) => ctx.member.persistApplied(t.groupId, deadline))).catch(() => {
        throw grpcError(ETCD_ERRORS.TIMEOUT);
      });
      return withHashSlot(call, () => withSnapshot(async (snap) => {
        const revs = await Promise.all(stores.map((t) => storedRevisions(opts.db, snap, t.groupId)));
        const current = Math.max(...revs.map((r) => r.currentRevision));
        const compacted = Math.max(...revs.map((r) => r.compactedRevision));
        const revision = asked > 0 ? asked : current;
        // As etcd (hashByRev): a revision asked for at or below the compaction point is compacted.
        if (revision < compacted || (asked > 0 && asked <= compacted)) throw grpcError(ETCD_ERRORS.COMPACTED);
        // etcd's own hash (mvcc/etcd-hash-kv.ts): equal to etcd's for the same keys and revisions.
        const hash = await etcdHashKv(stores.map((t, i) => ({ records: mvccRecords(opts.db, snap, t.groupId), compactedRevision: revs[i].compactedRevision })), revision);
        return { header: ctx.header(current), hash, compact_revision: String(compacted), hash_revision: String(revision) };
      }));
    }),

    Snapshot: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      const fail = (err: unknown): void => {
        endWithStatus(call, toServiceError(err, ctx.logger));
      };
      const cancel = new Promise<void>((resolve) => call.on('cancelled', () => resolve()));
      void (async () => {
        await opts.requireAdmin(call);
        const out = await backupSlots.run(cancel, () => sendBackup(call, cancel));
        if (out === 'full') throw grpcError(ETCD_ERRORS.REQUEST_TOO_MANY_REQUESTS);
      })().catch(fail);
    },
  };
}

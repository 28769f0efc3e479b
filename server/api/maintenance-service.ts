// etcdserverpb.Maintenance: Status (what `etcdctl endpoint status` prints), MoveLeader (leadership
// transfer, for rolling restarts without an election timeout), Alarm (the replicated alarm table,
// server/shard/alarms.ts, and the space quota's NOSPACE, server/shard/quota.ts), Defragment (LevelDB
// compactRange: compacted history leaves the disk), Hash and HashKV (crc32 over the stored records,
// for checking that members agree), Snapshot (a consistent backup stream, server/storage/backup-file.ts,
// that `synod snapshot restore` reads). docs/operations.md says where each differs from etcd.
import * as grpc from '@grpc/grpc-js';
import { once } from 'node:events';
import zlib from 'node:zlib';
import { ApiContext, DATA_GROUP_ID, toServiceError, unary } from './context.ts';
import { alarmActionOf, alarmTypeOf, type AlarmMember } from '../shard/alarms.ts';
import { ETCD_ERRORS, grpcError, type EtcdErrorSpec } from '../etcd/errors.ts';
import { effectiveQuotaBytes } from '../shard/quota.ts';
import { MVCC_RECORD_PREFIX } from '../shard/kv-state-machine.ts';
import type { DbSnapshot, MemberDb } from '../storage/member-db.ts';
import { encodeBackup } from '../storage/backup-file.ts';
import { decodeMeta, decodeRevKey, isMetaKey, isRevKey } from '../mvcc/codec.ts';
import { endWithStatus } from './stream-status.ts';

/** Hash, HashKV and Snapshot cover one group's records; a sharded cluster's keys are in its shards. */
const NOT_ON_SHARDS = (method: string): EtcdErrorSpec => ({
  code: grpc.status.FAILED_PRECONDITION,
  message: `synod: ${method} of a sharded cluster is not served yet`,
});

/** The etcd API version Synod speaks; clients gate features on it. */
export const ETCD_COMPAT_VERSION = '3.5.0';

export interface MaintenanceOptions {
  /** Bytes the member's database takes on disk (Status' dbSize). */
  dbSizeBytes: () => number;
  /** The member's database: consistent snapshots for Hash, HashKV and Snapshot; compaction for Defragment. */
  db: Pick<MemberDb, 'snapshot' | 'stateRecords' | 'compactAll'>;
  /** --quota-backend-bytes as given (0: etcd's default of 2 GiB; negative: no quota). */
  quotaBackendBytes: number;
  /** Throws unless the caller may run admin operations (root when auth is on); Hash, HashKV and Snapshot are admin-only in etcd. */
  requireAdmin: (call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>) => Promise<void>;
}

/** How long HashKV waits for this member's database to catch up with a revision it has applied (flushes are lazy, ~100 ms). */
const HASH_CATCH_UP_MS = 2_000;

function alarmsToWire(alarms: AlarmMember[]): Array<{ memberID: string; alarm: string }> {
  return alarms.map((a) => ({ memberID: a.memberID, alarm: a.alarm }));
}

/** The MVCC revision counters as of a database snapshot. */
async function storedRevisions(db: MaintenanceOptions['db'], snap: DbSnapshot): Promise<{ currentRevision: number; compactedRevision: number }> {
  for await (const [key, value] of db.stateRecords(DATA_GROUP_ID, snap)) {
    if (key[0] === MVCC_RECORD_PREFIX && isMetaKey(key.subarray(1))) return decodeMeta(value);
    if (key[0] > MVCC_RECORD_PREFIX) break;
  }
  return { currentRevision: 1, compactedRevision: 0 };
}

/**
 * HashKV: crc32 (Castagnoli's polynomial is etcd's; zlib's IEEE crc32 here) over the key and value
 * bytes of every stored MVCC record with revision <= `revision`, in key order. The records are what
 * compaction kept, so members that applied the same log hash alike; any altered record changes it.
 */
async function hashKv(db: MaintenanceOptions['db'], snap: DbSnapshot, revision: number): Promise<number> {
  let crc = 0;
  for await (const [key, value] of db.stateRecords(DATA_GROUP_ID, snap)) {
    if (key[0] < MVCC_RECORD_PREFIX) continue;
    if (key[0] > MVCC_RECORD_PREFIX) break;
    const storeKey = key.subarray(1);
    if (!isRevKey(storeKey) || decodeRevKey(storeKey).main > revision) continue;
    crc = zlib.crc32(storeKey, crc);
    crc = zlib.crc32(value, crc);
  }
  return crc;
}

/** Hash: crc32 over every state record of the group (MVCC, leases, auth, membership, alarms). */
async function hashAll(db: MaintenanceOptions['db'], snap: DbSnapshot): Promise<number> {
  let crc = 0;
  for await (const [key, value] of db.stateRecords(DATA_GROUP_ID, snap)) {
    crc = zlib.crc32(key, crc);
    crc = zlib.crc32(value, crc);
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

  /** Runs `fn` on a consistent view of the database, closed afterwards. */
  const withSnapshot = async <T>(fn: (snap: DbSnapshot) => Promise<T>): Promise<T> => {
    const snap = opts.db.snapshot();
    try {
      return await fn(snap);
    } finally {
      await snap.close();
    }
  };

  return {
    Status: unary(ctx, async () => {
      const s = ctx.member.status(DATA_GROUP_ID);
      return {
        header: ctx.header(),
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
      if (ctx.shards !== null) throw grpcError(NOT_ON_SHARDS('Hash'));
      const hash = await withSnapshot((snap) => hashAll(opts.db, snap));
      return { header: ctx.header(), hash };
    }),

    HashKV: unary(ctx, async (req: { revision: string }, call) => {
      await opts.requireAdmin(call);
      if (ctx.shards !== null) throw grpcError(NOT_ON_SHARDS('HashKV'));
      const asked = Number(req.revision ?? 0);
      if (asked > ctx.sm.store.currentRevision()) throw grpcError(ETCD_ERRORS.FUTURE_REV);
      const deadline = Date.now() + HASH_CATCH_UP_MS;
      for (;;) {
        const answer = await withSnapshot(async (snap) => {
          const revs = await storedRevisions(opts.db, snap);
          const revision = asked > 0 ? asked : revs.currentRevision;
          if (revision > revs.currentRevision) return null; // applied, not yet flushed: wait for it
          if (revision < revs.compactedRevision) throw grpcError(ETCD_ERRORS.COMPACTED);
          const hash = await hashKv(opts.db, snap, revision);
          return { header: ctx.header(revs.currentRevision), hash, compact_revision: String(revs.compactedRevision), hash_revision: String(revision) };
        });
        if (answer) return answer;
        if (Date.now() > deadline) throw grpcError(ETCD_ERRORS.TIMEOUT);
        await new Promise((r) => setTimeout(r, 50));
      }
    }),

    Snapshot: (call: grpc.ServerWritableStream<unknown, unknown>) => {
      const fail = (err: unknown): void => {
        endWithStatus(call, toServiceError(err, ctx.logger));
      };
      void (async () => {
        await opts.requireAdmin(call);
        // A backup of the cluster group alone would hold none of a sharded cluster's keys: refused.
        if (ctx.shards !== null) throw grpcError(NOT_ON_SHARDS('Snapshot'));
        const status = ctx.member.status(DATA_GROUP_ID);
        // A Raft snapshot being installed replaces the stored records non-atomically.
        if (status.snapshotIndex > status.applied) throw grpcError(ETCD_ERRORS.TIMEOUT, 'snapshot install in progress; retry');
        let cancelled = false;
        call.on('cancelled', () => {
          cancelled = true;
        });
        const header = ctx.header();
        // remaining_bytes is an estimate (the stream is produced as it is read); 0 marks the last message.
        let remaining = Math.max(1, ctx.sm.store.sizeBytes());
        let sent = 0;
        await withSnapshot(async (snap) => {
          const chunks = encodeBackup(
            { format: 1, clusterId: BigInt(ctx.clusterId).toString(16), memberId: BigInt(ctx.memberIdText).toString(16), createdAt: new Date().toISOString() },
            opts.db.stateRecords(DATA_GROUP_ID, snap),
          );
          let pending: Buffer | null = null;
          for await (const chunk of chunks) {
            if (cancelled) return;
            if (pending) {
              sent += pending.length;
              remaining = Math.max(1, remaining - pending.length);
              if (!call.write({ header, remaining_bytes: String(remaining), blob: pending })) await once(call, 'drain');
            }
            pending = chunk;
          }
          if (pending && !cancelled) {
            sent += pending.length;
            call.write({ header, remaining_bytes: '0', blob: pending });
          }
        });
        ctx.logger.info({ bytes: sent }, 'sent a snapshot (backup) to a client');
        call.end();
      })().catch(fail);
    },
  };
}

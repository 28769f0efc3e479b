// An etcd snapshot (`etcdctl snapshot save` against etcd or Synod, or a copy of an etcd member's
// member/snap/db) read as Synod's state records, the records Synod's backups hold, so `synod snapshot
// restore` migrates an etcd cluster's data into a new Synod cluster, sharded or not, and restores
// Synod's own backups (written in etcd's form since 2026-12-06, server/api/etcd-backup.ts).
//
// What etcd's backend buckets carry over (facts of etcd's bbolt schema):
//   key        revision (8-byte main BE, '_', 8-byte sub BE, 't' for a tombstone) → mvccpb.KeyValue
//   meta       finishedCompactRev (a revision as above), consistent_index, …
//   lease      lease id (int64 BE) → leasepb.Lease {ID = 1, TTL = 2, RemainingTTL = 3}
//   auth       authEnabled (1 byte), authRevision (u64 BE)
//   authUsers  name → authpb.User {name, password (bcrypt hash), roles, options {no_password}}
//   authRoles  name → authpb.Role {name, keyPermission {permType, key, range_end}}
// What does not: members, members_removed, cluster (the new cluster is its own) and alarms, as etcdutl
// drops them. History is kept at every retained revision, with etcd's compaction point.
import { AUTH_RECORD_PREFIX, AuthStore } from '../auth/auth-store.ts';
import { importedLeaseRecord, LEASE_RECORD_PREFIX } from '../lease/lease-store.ts';
import { encodeLiveValue, encodeMeta, encodeRevKey, META_KEY, TOMBSTONE_VALUE } from '../mvcc/codec.ts';
import { decodeEtcdRevisionKey } from '../mvcc/etcd-records.ts';
import { protoMessageRoot } from '../protobuf/proto-schemas.ts';
import { MVCC_RECORD_PREFIX } from '../shard/kv-state-machine.ts';
import { BboltFile } from '../storage/bbolt-file.ts';
import type { BackupHeader } from '../storage/backup-file.ts';
import { BUCKET, decodeEtcdAuth, decodeEtcdLease, FINISHED_COMPACT_REV, SYNOD_HEADER_KEY } from '../api/etcd-backend-schema.ts';

/** Records per yielded batch. */
const BATCH_RECORDS = 4096;

/** mvccpb.KeyValue with its int64s as decimal strings (lease ids use all 63 bits). */
interface KeyValueMessage {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  lease: string;
}

function safeNumber(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`etcd snapshot: ${what} ${value} out of range`);
  return n;
}

function prefixed(prefix: number, key: Buffer): Buffer {
  return Buffer.concat([Buffer.from([prefix]), key]);
}

function synodHeaderOf(db: BboltFile): BackupHeader | null {
  for (const [key, value] of db.entries(BUCKET.synod)) {
    if (key.toString() === SYNOD_HEADER_KEY) return JSON.parse(value.toString('utf8')) as BackupHeader;
  }
  return null;
}

/**
 * Synod's own header when Synod wrote the file (its backups are etcd snapshots with a "synod" bucket,
 * server/api/etcd-backup.ts); null for a snapshot etcd wrote.
 */
export function readEtcdSnapshotHeader(filePath: string): BackupHeader | null {
  const db = BboltFile.open(filePath);
  try {
    return synodHeaderOf(db);
  } finally {
    db.close();
  }
}

/**
 * The snapshot's state records in batches, as readBackupFile yields a Synod backup's: MVCC records
 * (every retained revision, then the store's meta), leases, auth.
 */
export function* readEtcdSnapshot(filePath: string): Generator<Array<[Buffer, Buffer]>> {
  const db = BboltFile.open(filePath);
  try {
    const kvType = protoMessageRoot().lookupType('mvccpb.KeyValue');
    let batch: Array<[Buffer, Buffer]> = [];
    let lastMain = 0;
    for (const [key, value] of db.entries(BUCKET.key)) {
      const { main, sub, tombstone } = decodeEtcdRevisionKey(key);
      const kv = kvType.toObject(kvType.decode(value), { longs: String, defaults: true }) as KeyValueMessage;
      if (tombstone) {
        batch.push([prefixed(MVCC_RECORD_PREFIX, encodeRevKey(kv.key, main, sub)), TOMBSTONE_VALUE]);
      } else {
        if (safeNumber(kv.mod_revision, 'mod_revision') !== main) throw new Error(`etcd snapshot: key at revision ${main} says mod_revision ${String(kv.mod_revision)}`);
        const lease = BigInt(kv.lease);
        if (lease < 0n) throw new Error(`etcd snapshot: key at revision ${main} has lease ${kv.lease}`);
        const { buf } = encodeLiveValue(safeNumber(kv.create_revision, 'create_revision'), safeNumber(kv.version, 'version'), lease.toString(), kv.value);
        batch.push([prefixed(MVCC_RECORD_PREFIX, encodeRevKey(kv.key, main, sub)), Buffer.from(buf)]);
      }
      lastMain = Math.max(lastMain, main);
      if (batch.length >= BATCH_RECORDS) {
        yield batch;
        batch = [];
      }
    }
    let compactRevision = 0;
    for (const [key, value] of db.entries(BUCKET.meta)) {
      if (key.toString() === FINISHED_COMPACT_REV) compactRevision = decodeEtcdRevisionKey(value).main;
    }
    // etcd restores its revision as the last one written, at least the compaction point (a compaction
    // may have removed the last revision's tombstone); a store that never wrote is at revision 1. A
    // backup Synod wrote also says its store's revision (a sharded cut's R may be above every key's).
    const revision = Math.max(lastMain, compactRevision, synodHeaderOf(db)?.revision ?? 0, 1);
    batch.push([prefixed(MVCC_RECORD_PREFIX, META_KEY), encodeMeta(revision, compactRevision)]);
    for (const [, value] of db.entries(BUCKET.lease)) {
      const lease = decodeEtcdLease(value);
      const [key, record] = importedLeaseRecord(lease.id.toString(), lease.ttlSeconds, lease.remainingTtlSeconds);
      batch.push([prefixed(LEASE_RECORD_PREFIX, key), record]);
    }
    const values = function* (bucket: string): Generator<Buffer> {
      for (const [, value] of db.entries(bucket)) yield value;
    };
    const auth = decodeEtcdAuth(db.entries(BUCKET.auth), values(BUCKET.authUsers), values(BUCKET.authRoles));
    if (auth) for (const [key, value] of AuthStore.imported(auth).records()) batch.push([prefixed(AUTH_RECORD_PREFIX, key), value]);
    yield batch;
  } finally {
    db.close();
  }
}

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
import protobuf from 'protobufjs';
import { AUTH_RECORD_PREFIX, AuthStore, type RoleRecord, type UserRecord } from '../auth/auth-store.ts';
import type { PermType } from '../auth/permissions.ts';
import { importedLeaseRecord, LEASE_RECORD_PREFIX } from '../lease/lease-store.ts';
import { encodeLiveValue, encodeMeta, encodeRevKey, META_KEY, TOMBSTONE_VALUE } from '../mvcc/codec.ts';
import { protoMessageRoot } from '../protobuf/proto-schemas.ts';
import { MVCC_RECORD_PREFIX } from '../shard/kv-state-machine.ts';
import { BboltFile } from '../storage/bbolt-file.ts';
import type { BackupHeader } from '../storage/backup-file.ts';
import { SYNOD_BUCKET, SYNOD_HEADER_KEY } from '../api/etcd-backup.ts';

/** Records per yielded batch. */
const BATCH_RECORDS = 4096;
/** etcd's revision key: 8 + 1 + 8 bytes, and one more for a tombstone's mark. */
const REVISION_KEY_BYTES = 17;
const TOMBSTONE_MARK = 0x74; // 't'

export interface EtcdSnapshotSummary {
  /** The store's revision (etcd's, as it would restore it: the last revision, at least the compaction point). */
  revision: number;
  compactRevision: number;
}

/** mvccpb.KeyValue with its int64s as decimal strings (lease ids use all 63 bits). */
interface KeyValueMessage {
  key: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  value: Buffer;
  lease: string;
}

function safeNumber(value: string | bigint, what: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`etcd snapshot: ${what} ${String(value)} out of range`);
  return n;
}

/** etcd's revision key → main and sub revisions, and whether it marks a tombstone. */
export function decodeEtcdRevision(key: Buffer): { main: number; sub: number; tombstone: boolean } {
  const tombstone = key.length === REVISION_KEY_BYTES + 1 && key[REVISION_KEY_BYTES] === TOMBSTONE_MARK;
  if ((key.length !== REVISION_KEY_BYTES && !tombstone) || key[8] !== 0x5f) throw new Error(`etcd snapshot: malformed revision key ${key.toString('hex')}`);
  const main = safeNumber(key.readBigUInt64BE(0), 'main revision');
  const sub = safeNumber(key.readBigUInt64BE(9), 'sub revision');
  if (sub > 0xffffffff) throw new Error(`etcd snapshot: sub revision ${sub} above 2^32`);
  return { main, sub, tombstone };
}

/** leasepb.Lease: ID = 1, TTL = 2, RemainingTTL = 3 (all int64 varints). */
function decodeLease(value: Buffer): { id: bigint; ttlSeconds: number; remainingTtlSeconds: number } {
  const reader = protobuf.Reader.create(value);
  let id = 0n;
  let ttlSeconds = 0;
  let remainingTtlSeconds = 0;
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    const field = tag >>> 3;
    if ((tag & 7) !== 0) {
      reader.skipType(tag & 7);
      continue;
    }
    const n = BigInt(reader.int64().toString());
    if (n < 0n) throw new Error(`etcd snapshot: lease field ${field} is negative (${n})`);
    if (field === 1) id = n;
    else if (field === 2) ttlSeconds = safeNumber(n, 'lease TTL');
    else if (field === 3) remainingTtlSeconds = safeNumber(n, 'lease remaining TTL');
  }
  return { id, ttlSeconds, remainingTtlSeconds };
}

const PERM_TYPES: readonly PermType[] = ['READ', 'WRITE', 'READWRITE'];

/** etcd's auth buckets as Synod's auth records (one encoding: AuthStore's own). */
function authRecords(db: BboltFile): Array<[Buffer, Buffer]> {
  const root = protoMessageRoot();
  const userType = root.lookupType('authpb.User');
  const roleType = root.lookupType('authpb.Role');
  let enabled = false;
  let revision = 0;
  for (const [key, value] of db.entries('auth')) {
    if (key.toString() === 'authEnabled') enabled = value.length === 1 && value[0] === 1;
    else if (key.toString() === 'authRevision' && value.length === 8) revision = safeNumber(value.readBigUInt64BE(0), 'auth revision');
  }
  const users: UserRecord[] = [];
  for (const [, value] of db.entries('authUsers')) {
    const u = userType.toObject(userType.decode(value), { defaults: true }) as { name: Buffer; password: Buffer; roles: string[]; options?: { no_password?: boolean } };
    users.push({
      name: u.name.toString('utf8'),
      passwordHash: u.password.toString('utf8'),
      noPassword: u.options?.no_password === true,
      roles: [...new Set(u.roles)].sort(),
      credentialRevision: revision,
    });
  }
  const roles: RoleRecord[] = [];
  for (const [, value] of db.entries('authRoles')) {
    const r = roleType.toObject(roleType.decode(value), { defaults: true, enums: Number }) as {
      name: Buffer;
      keyPermission: Array<{ permType: number; key: Buffer; range_end: Buffer }>;
    };
    roles.push({
      name: r.name.toString('utf8'),
      permissions: r.keyPermission.map((p) => {
        const permType = PERM_TYPES[p.permType];
        if (permType === undefined) throw new Error(`etcd snapshot: role ${r.name.toString()} has an unknown permission type ${p.permType}`);
        return { permType, key: p.key, rangeEnd: p.range_end };
      }),
    });
  }
  if (users.length === 0 && roles.length === 0 && !enabled && revision === 0) return [];
  return AuthStore.imported({ enabled, revision, users, roles }).records().map(([key, value]) => [Buffer.concat([Buffer.from([AUTH_RECORD_PREFIX]), key]), value]);
}

function mvccRecord(key: Buffer, value: Buffer): [Buffer, Buffer] {
  return [Buffer.concat([Buffer.from([MVCC_RECORD_PREFIX]), key]), value];
}

/**
 * Synod's own header when Synod wrote the file (its backups are etcd snapshots with a "synod" bucket,
 * server/api/etcd-backup.ts); null for a snapshot etcd wrote.
 */
export function readEtcdSnapshotHeader(filePath: string): BackupHeader | null {
  const db = BboltFile.open(filePath);
  try {
    for (const [key, value] of db.entries(SYNOD_BUCKET)) {
      if (key.toString() === SYNOD_HEADER_KEY) return JSON.parse(value.toString('utf8')) as BackupHeader;
    }
    return null;
  } finally {
    db.close();
  }
}

/**
 * The snapshot's state records in batches, as readBackupFile yields a Synod backup's: MVCC records
 * (every retained revision, then the store's meta), leases, auth. Returns the store's revisions.
 */
export function* readEtcdSnapshot(filePath: string): Generator<Array<[Buffer, Buffer]>, EtcdSnapshotSummary> {
  const db = BboltFile.open(filePath);
  try {
    const kvType = protoMessageRoot().lookupType('mvccpb.KeyValue');
    let batch: Array<[Buffer, Buffer]> = [];
    let lastMain = 0;
    for (const [key, value] of db.entries('key')) {
      const { main, sub, tombstone } = decodeEtcdRevision(key);
      const kv = kvType.toObject(kvType.decode(value), { longs: String, defaults: true }) as KeyValueMessage;
      if (tombstone) {
        batch.push(mvccRecord(encodeRevKey(kv.key, main, sub), TOMBSTONE_VALUE));
      } else {
        if (safeNumber(kv.mod_revision, 'mod_revision') !== main) throw new Error(`etcd snapshot: key at revision ${main} says mod_revision ${String(kv.mod_revision)}`);
        const lease = BigInt(kv.lease);
        if (lease < 0n) throw new Error(`etcd snapshot: key at revision ${main} has lease ${kv.lease}`);
        const { buf } = encodeLiveValue(safeNumber(kv.create_revision, 'create_revision'), safeNumber(kv.version, 'version'), lease.toString(), kv.value);
        batch.push(mvccRecord(encodeRevKey(kv.key, main, sub), Buffer.from(buf)));
      }
      lastMain = Math.max(lastMain, main);
      if (batch.length >= BATCH_RECORDS) {
        yield batch;
        batch = [];
      }
    }
    let compactRevision = 0;
    for (const [key, value] of db.entries('meta')) {
      if (key.toString() === 'finishedCompactRev') compactRevision = decodeEtcdRevision(value).main;
    }
    // etcd restores its revision as the last one written, at least the compaction point (a compaction
    // may have removed the last revision's tombstone); a store that never wrote is at revision 1. A
    // backup Synod wrote also says its store's revision (a sharded cut's R may be above every key's).
    let synodRevision = 0;
    for (const [key, value] of db.entries(SYNOD_BUCKET)) {
      if (key.toString() === SYNOD_HEADER_KEY) synodRevision = (JSON.parse(value.toString('utf8')) as BackupHeader).revision ?? 0;
    }
    const revision = Math.max(lastMain, compactRevision, synodRevision, 1);
    batch.push(mvccRecord(META_KEY, encodeMeta(revision, compactRevision)));
    for (const [, value] of db.entries('lease')) {
      const lease = decodeLease(value);
      if (lease.id <= 0n) throw new Error(`etcd snapshot: lease id ${lease.id} out of range`);
      const [key, record] = importedLeaseRecord(lease.id.toString(), lease.ttlSeconds, lease.remainingTtlSeconds);
      batch.push([Buffer.concat([Buffer.from([LEASE_RECORD_PREFIX]), key]), record]);
    }
    batch.push(...authRecords(db));
    yield batch;
    return { revision, compactRevision };
  } finally {
    db.close();
  }
}

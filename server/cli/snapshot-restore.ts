// `synod snapshot restore`: turns a backup (from `etcdctl snapshot save`, i.e. Maintenance.Snapshot)
// into the data dir of one member of a NEW cluster, as `etcdutl snapshot restore` does. Every member
// of the new cluster is restored from the same file with its own --name (and --data-dir); the keys,
// revisions, compaction point, leases and users/roles come from the backup, while the membership, the
// published client URLs and the alarms are the new cluster's own (etcd also drops the old members).
//
// The new cluster may be sharded (`--shards`, by default the backup's own count): the backup's keys are
// split by slot over the shards this member will host (the same pure placement the member bootstraps with),
// each shard's store carries the backup's revisions, and the revision oracle starts above them. A sharded
// cluster's backup (server/api/sharded-backup.ts) is one store compacted at its revision R, so it restores
// into any shard count, one included; a one-group backup's history is split with its keys.
//
// The file may also be etcd's: a snapshot `etcdctl snapshot save` took from etcd, or an etcd member's
// member/snap/db (with --skip-hash-check, as etcdutl needs for it). It restores as a one-group backup would
// (etcd-snapshot-import.ts): every retained revision, the compaction point, leases, users and roles.
import fs from 'node:fs';
import path from 'node:path';
import { DATA_GROUP_ID } from '../api/context.ts';
import { bootstrapClusterRecord, defaultReplicationFactor, parseInitialCluster, type ClusterRecord } from '../api/cluster-info.ts';
import { appliedRevisionRecord, MEMBERSHIP_RECORD_PREFIX, MVCC_RECORD_PREFIX, PUBLISHED_MEMBER_RECORD_PREFIX } from '../shard/kv-state-machine.ts';
import { highWaterRecord } from '../shard/metadata-state-machine.ts';
import { ALARM_RECORD_PREFIX } from '../shard/alarms.ts';
import { isLeaseRecordKey, LEASE_RECORD_PREFIX, restoredLeaseRecord } from '../lease/lease-store.ts';
import { MemberDb, TurnBatch } from '../storage/member-db.ts';
import { readBackupFile, readBackupHeader, verifyBackupFile, type BackupHeader } from '../storage/backup-file.ts';
import { isBboltFile } from '../storage/bbolt-file.ts';
import { readEtcdSnapshot, readEtcdSnapshotHeader } from './etcd-snapshot-import.ts';
import { decodeMeta, decodeRevKey, isMetaKey, isRevKey } from '../mvcc/codec.ts';
import { SlotMap, validateShardCount } from '../routing/slots.ts';
import { bootstrapPlacement, FIRST_SHARD_GROUP_ID, METADATA_GROUP_ID } from './shard-hosting.ts';

export interface RestoreOptions {
  snapshotPath: string;
  name: string;
  /** etcd's form: name=http://host:port,... (must include `name`). */
  initialCluster: string;
  initialClusterToken: string;
  /** This member's peer URLs; when given they must match its entry in initialCluster (as etcdutl checks). */
  initialAdvertisePeerUrls?: string[];
  dataDir: string;
  /** Skip the sha256 check (etcdutl's --skip-hash-check). */
  skipHashCheck?: boolean;
  /** The new cluster's shard count (default: the backup's source's, 1 for a one-group backup). */
  shards?: number;
  /** The new cluster's replicas per shard (default: defaultReplicationFactor, 3 with more than one shard; 0: every member hosts every shard). */
  replicationFactor?: number;
}

export interface RestoreResult {
  memberId: string;
  clusterId: string;
  records: number;
  revision: number;
  compactRevision: number;
  shards: number;
  /** Shards whose replica this member's data dir holds. */
  hostedShards: number;
  /** Whose backup it was: Synod's own, or an etcd snapshot. */
  source: 'synod' | 'etcd';
}

/** The file's records in batches, whichever form it has; etcd's snapshots are read as a one-group backup's. */
async function* backupRecords(filePath: string, bbolt: boolean): AsyncGenerator<Array<[Buffer, Buffer]>> {
  if (bbolt) yield* readEtcdSnapshot(filePath);
  else yield* readBackupFile(filePath);
}

/** State records that describe the old cluster, not its data. */
const DROPPED = new Set([PUBLISHED_MEMBER_RECORD_PREFIX, MEMBERSHIP_RECORD_PREFIX, ALARM_RECORD_PREFIX]);

export async function restoreSnapshot(o: RestoreOptions): Promise<RestoreResult> {
  if (fs.existsSync(o.dataDir) && fs.readdirSync(o.dataDir).length > 0) {
    throw new Error(`data-dir "${o.dataDir}" exists and is not empty; restore needs a fresh one`);
  }
  const parsed = parseInitialCluster(o.initialCluster);
  const self = parsed.find((m) => m.name === o.name);
  if (!self) throw new Error(`--initial-cluster has no member named "${o.name}"`);
  if (o.initialAdvertisePeerUrls && o.initialAdvertisePeerUrls.length > 0) {
    const want = [...o.initialAdvertisePeerUrls].sort().join(',');
    if ([...self.peerUrls].sort().join(',') !== want) {
      throw new Error(`--initial-cluster must include ${o.name}=${o.initialAdvertisePeerUrls.join(',')} (it has ${self.peerUrls.join(',')})`);
    }
  }
  if (!o.skipHashCheck) await verifyBackupFile(o.snapshotPath);
  // Since 2026-12-06 Synod's backups are etcd snapshots too (with a "synod" bucket); older ones are
  // Synod's record stream.
  const bbolt = isBboltFile(o.snapshotPath);
  const synodHeader = bbolt ? readEtcdSnapshotHeader(o.snapshotPath) : null;
  const etcd = bbolt && synodHeader === null;
  const header: Pick<BackupHeader, 'shards'> = bbolt ? (synodHeader ?? {}) : await readBackupHeader(o.snapshotPath);
  const shards = o.shards ?? header.shards ?? 1;
  if (shards !== 1) validateShardCount(shards);
  const replicationFactor = o.replicationFactor ?? defaultReplicationFactor(shards);

  // The same record `synod server` would bootstrap from these flags (start-server.ts), so a member
  // started with them finds itself in it.
  const record: ClusterRecord = bootstrapClusterRecord(o.initialCluster, o.initialClusterToken, o.name, [], shards, replicationFactor);
  const selfId = record.members.find((m) => m.name === o.name)!.id;
  const sharded = shards > 1;
  const placement = sharded ? bootstrapPlacement(record.members, shards, replicationFactor) : new Map<number, number[]>();
  const hosted = [...placement].filter(([, voters]) => voters.includes(selfId)).map(([shard]) => shard);
  const hostedSet = new Set(hosted);
  const slots = sharded ? SlotMap.create(shards) : null;

  // Into a temp dir first, renamed into place when complete: a failed restore leaves no half data dir.
  const parent = path.dirname(path.resolve(o.dataDir));
  fs.mkdirSync(parent, { recursive: true });
  const temp = fs.mkdtempSync(path.join(parent, `.${path.basename(o.dataDir)}.restoring-`));
  let records = 0;
  let revisions = { currentRevision: 1, compactedRevision: 0 };
  try {
    const db = await MemberDb.open(path.join(temp, 'db'));
    try {
      const reader = backupRecords(o.snapshotPath, bbolt);
      let batch = new TurnBatch();
      for (;;) {
        const next = await reader.next();
        if (next.done) break;
        for (const [key, value] of next.value) {
          if (DROPPED.has(key[0])) continue;
          const storeKey = key.subarray(1);
          if (key[0] === LEASE_RECORD_PREFIX) {
            // Leases only (a sharded cluster's sweep state is its own); a generation where the new cluster needs one.
            if (!isLeaseRecordKey(storeKey)) continue;
            batch.putState(DATA_GROUP_ID, key, restoredLeaseRecord(value, sharded));
          } else if (key[0] === MVCC_RECORD_PREFIX && sharded) {
            // The keys go to their shards; every shard carries the store's revisions.
            if (isMetaKey(storeKey)) {
              revisions = decodeMeta(value);
              for (const shard of hosted) batch.putState(FIRST_SHARD_GROUP_ID + shard, key, value);
            } else if (isRevKey(storeKey)) {
              const shard = slots!.shardOfKey(decodeRevKey(storeKey).key);
              if (!hostedSet.has(shard)) continue;
              batch.putState(FIRST_SHARD_GROUP_ID + shard, key, value);
            } else throw new Error(`unknown MVCC record in the backup (key ${storeKey.toString('hex')})`);
          } else {
            if (key[0] === MVCC_RECORD_PREFIX && isMetaKey(storeKey)) revisions = decodeMeta(value);
            batch.putState(DATA_GROUP_ID, key, value);
          }
          records++;
        }
        if (batch.size >= 4096) {
          await db.write(batch, false);
          batch = new TurnBatch();
        }
      }
      if (sharded) {
        // Each shard has applied everything up to the backup's revision, and the oracle hands out only
        // revisions above it (a new write must never land at or below a restored one).
        for (const shard of hosted) {
          const [key, value] = appliedRevisionRecord(revisions.currentRevision);
          batch.putState(FIRST_SHARD_GROUP_ID + shard, key, value);
        }
        const [key, value] = highWaterRecord(revisions.currentRevision);
        batch.putState(METADATA_GROUP_ID, key, value);
      }
      batch.putCluster(record);
      await db.write(batch, true);
    } finally {
      await db.close();
    }
    if (fs.existsSync(o.dataDir)) fs.rmdirSync(o.dataDir);
    fs.renameSync(temp, o.dataDir);
  } catch (err) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw err;
  }
  return {
    memberId: selfId.toString(16),
    clusterId: record.clusterId.toString(16),
    records,
    revision: revisions.currentRevision,
    compactRevision: revisions.compactedRevision,
    shards,
    hostedShards: hosted.length,
    source: etcd ? 'etcd' : 'synod',
  };
}

// `synod snapshot restore`: turns a backup (from `etcdctl snapshot save`, i.e. Maintenance.Snapshot)
// into the data dir of one member of a NEW cluster, as `etcdutl snapshot restore` does. Every member
// of the new cluster is restored from the same file with its own --name (and --data-dir); the keys,
// revisions, compaction point, leases and users/roles come from the backup, while the membership, the
// published client URLs and the alarms are the new cluster's own (etcd also drops the old members).
import fs from 'node:fs';
import path from 'node:path';
import { DATA_GROUP_ID } from '../api/context.ts';
import { bootstrapClusterRecord, parseInitialCluster, type ClusterRecord } from '../api/cluster-info.ts';
import { MEMBERSHIP_RECORD_PREFIX, MVCC_RECORD_PREFIX, PUBLISHED_MEMBER_RECORD_PREFIX } from '../shard/kv-state-machine.ts';
import { ALARM_RECORD_PREFIX } from '../shard/alarms.ts';
import { MemberDb, TurnBatch } from '../storage/member-db.ts';
import { readBackupFile, verifyBackupFile } from '../storage/backup-file.ts';
import { decodeMeta, isMetaKey } from '../mvcc/codec.ts';

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
}

export interface RestoreResult {
  memberId: string;
  clusterId: string;
  records: number;
  revision: number;
  compactRevision: number;
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

  // The same record `synod server` would bootstrap from these flags (start-server.ts), so a member
  // started with them finds itself in it.
  const record: ClusterRecord = bootstrapClusterRecord(o.initialCluster, o.initialClusterToken, o.name, []);

  // Into a temp dir first, renamed into place when complete: a failed restore leaves no half data dir.
  const parent = path.dirname(path.resolve(o.dataDir));
  fs.mkdirSync(parent, { recursive: true });
  const temp = fs.mkdtempSync(path.join(parent, `.${path.basename(o.dataDir)}.restoring-`));
  let records = 0;
  let revisions = { currentRevision: 1, compactedRevision: 0 };
  try {
    const db = await MemberDb.open(path.join(temp, 'db'));
    try {
      const reader = readBackupFile(o.snapshotPath);
      let batch = new TurnBatch();
      for (;;) {
        const next = await reader.next();
        if (next.done) break;
        for (const [key, value] of next.value) {
          if (DROPPED.has(key[0])) continue;
          if (key[0] === MVCC_RECORD_PREFIX && isMetaKey(key.subarray(1))) revisions = decodeMeta(value);
          batch.putState(DATA_GROUP_ID, key, value);
          records++;
        }
        if (batch.size >= 4096) {
          await db.write(batch, false);
          batch = new TurnBatch();
        }
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
  const selfId = record.members.find((m) => m.name === o.name)!.id;
  return {
    memberId: selfId.toString(16),
    clusterId: record.clusterId.toString(16),
    records,
    revision: revisions.currentRevision,
    compactRevision: revisions.compactedRevision,
  };
}

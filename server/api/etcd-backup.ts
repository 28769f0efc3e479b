// A backup (Maintenance.Snapshot, `etcdctl snapshot save`) written as etcd writes one: a bbolt file in
// etcd's backend schema with its sha256 appended. `etcdctl snapshot status` reads it, etcd's own
// `snapshot restore` turns it into an etcd data dir, and `synod snapshot restore` reads it back
// (server/cli/etcd-snapshot-import.ts, which this module mirrors).
//
// The input is a backup's state records (a one-group store's, or a sharded cluster's cut at R,
// sharded-backup.ts), in Synod's key order. etcd's "key" bucket is in revision order instead, so the MVCC
// records are first spooled to a file beside the member's data (each as the mvccpb.KeyValue etcd stores)
// with an in-memory index (main, sub, place: about 30 bytes a record), sorted, and read back from the spool
// twice: once for the bbolt writer's layout pass, once to write. Leases and auth are small and stay in
// memory. Synod's own header (shard count, revision) goes in a bucket of its own, "synod", which etcd
// carries along unread.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { AUTH_RECORD_PREFIX, AuthStore } from '../auth/auth-store.ts';
import { decodeLeaseRecord, isLeaseRecordKey, LEASE_RECORD_PREFIX } from '../lease/lease-store.ts';
import { decodeMeta, isMetaKey, isRevKey } from '../mvcc/codec.ts';
import { doubled } from '../mvcc/doubled.ts';
import { etcdRecordOf, etcdRevisionKey } from '../mvcc/etcd-records.ts';
import { MVCC_RECORD_PREFIX } from '../shard/kv-state-machine.ts';
import type { BackupHeader } from '../storage/backup-file.ts';
import { encodeBbolt, type BboltBucketSource } from '../storage/bbolt-writer.ts';
import { BUCKET, encodeEtcdAuth, encodeEtcdLease, FINISHED_COMPACT_REV, SCHEDULED_COMPACT_REV, SYNOD_HEADER_KEY } from './etcd-backend-schema.ts';

const SPOOL_WRITE_BYTES = 1024 * 1024;
/** Entries read back from the spool between yields to the event loop (the reads are synchronous). */
const ENTRIES_PER_YIELD = 1024;

/** Growable columns of the spooled MVCC records: where each one's KeyValue sits, and its revision. */
class SpoolIndex {
  mains = new Float64Array(1024);
  subs = new Float64Array(1024);
  offsets = new Float64Array(1024);
  lengths = new Uint32Array(1024);
  tombstones = new Uint8Array(1024);
  count = 0;

  add(main: number, sub: number, offset: number, length: number, tombstone: boolean): void {
    if (this.count === this.mains.length) this.grow();
    const i = this.count++;
    this.mains[i] = main;
    this.subs[i] = sub;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    this.tombstones[i] = tombstone ? 1 : 0;
  }

  private grow(): void {
    this.mains = doubled(this.mains);
    this.subs = doubled(this.subs);
    this.offsets = doubled(this.offsets);
    this.lengths = doubled(this.lengths);
    this.tombstones = doubled(this.tombstones);
  }

  /**
   * Record numbers in revision order, and the sub each one takes. A sharded cut numbers a revision's keys
   * per shard, so a cross-shard txn's keys may share a (main, sub): such a revision's keys are numbered
   * again 0, 1, … in (sub, spool) order. Any other revision keeps its subs.
   */
  revisionOrder(): { order: Uint32Array; subs: Float64Array } {
    const order = new Uint32Array(this.count);
    for (let i = 0; i < this.count; i++) order[i] = i;
    const { mains, subs } = this;
    order.sort((a, b) => mains[a] - mains[b] || subs[a] - subs[b] || a - b);
    const outSubs = new Float64Array(this.count);
    for (let start = 0; start < order.length; ) {
      let end = start + 1;
      let clash = false;
      while (end < order.length && mains[order[end]] === mains[order[start]]) {
        if (subs[order[end]] === subs[order[end - 1]]) clash = true;
        end++;
      }
      for (let i = start; i < end; i++) outSubs[i] = clash ? i - start : subs[order[i]];
      start = end;
    }
    return { order, subs: outSubs };
  }
}

interface Gathered {
  spoolPath: string;
  index: SpoolIndex;
  currentRevision: number;
  compactedRevision: number;
  leases: Array<[Buffer, Buffer]>;
  auth: AuthStore | null;
}

/** One pass over the records: MVCC records to the spool, the rest into memory. */
async function gather(records: AsyncIterable<[Buffer, Buffer]>, spoolPath: string): Promise<Gathered> {
  const index = new SpoolIndex();
  const leases: Array<[Buffer, Buffer]> = [];
  const authRecords: Array<[Buffer, Buffer]> = [];
  let revisions = { currentRevision: 1, compactedRevision: 0 };
  const fd = fs.openSync(spoolPath, 'w');
  let offset = 0;
  // Written in slices of about 1 MiB: one write call per record made a million-record backup pay a
  // million system calls.
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = (): void => {
    if (pendingBytes > 0) fs.writeSync(fd, Buffer.concat(pending, pendingBytes));
    pending = [];
    pendingBytes = 0;
  };
  try {
    for await (const [key, value] of records) {
      const storeKey = key.subarray(1);
      if (key[0] === MVCC_RECORD_PREFIX && isMetaKey(storeKey)) {
        revisions = decodeMeta(value);
      } else if (key[0] === MVCC_RECORD_PREFIX && isRevKey(storeKey)) {
        const { main, sub, tombstone, keyValue } = etcdRecordOf(storeKey, value);
        pending.push(keyValue);
        pendingBytes += keyValue.length;
        if (pendingBytes >= SPOOL_WRITE_BYTES) flush();
        index.add(main, sub, offset, keyValue.length, tombstone);
        offset += keyValue.length;
      } else if (key[0] === LEASE_RECORD_PREFIX && isLeaseRecordKey(storeKey)) {
        const lease = decodeLeaseRecord(storeKey.toString('utf8'), value);
        leases.push(encodeEtcdLease({ id: BigInt(lease.id), ttlSeconds: lease.ttlSeconds, remainingTtlSeconds: lease.remainingTtlSeconds }));
      } else if (key[0] === AUTH_RECORD_PREFIX) {
        authRecords.push([storeKey, value]);
      }
      // Membership, published URLs, alarms and sweep state describe the old cluster: left out, as
      // restores drop them.
    }
    flush();
  } finally {
    fs.closeSync(fd);
  }
  leases.sort(([a], [b]) => Buffer.compare(a, b));
  const auth = authRecords.length > 0 ? AuthStore.restore(authRecords) : null;
  return { spoolPath, index, ...revisions, leases, auth };
}

function fixedBucket(name: string, entries: Array<[Buffer, Buffer]>): BboltBucketSource {
  const sorted = [...entries].sort(([a], [b]) => Buffer.compare(a, b));
  return {
    name: Buffer.from(name),
    entries: async function* () {
      yield* sorted;
    },
  };
}

function keyBucket(g: Gathered): BboltBucketSource {
  const { order, subs } = g.index.revisionOrder();
  const { mains, offsets, lengths, tombstones } = g.index;
  return {
    name: Buffer.from(BUCKET.key),
    entries: async function* () {
      const fd = fs.openSync(g.spoolPath, 'r');
      try {
        for (let i = 0; i < order.length; i++) {
          const r = order[i];
          const value = Buffer.allocUnsafe(lengths[r]);
          fs.readSync(fd, value, 0, value.length, offsets[r]);
          yield [etcdRevisionKey(mains[r], subs[i], tombstones[r] === 1), value];
          if (i % ENTRIES_PER_YIELD === ENTRIES_PER_YIELD - 1) await yieldToLoop();
        }
      } finally {
        fs.closeSync(fd);
      }
    },
  };
}

function authBuckets(auth: AuthStore | null): BboltBucketSource[] {
  const buckets = encodeEtcdAuth(auth?.exported() ?? { enabled: false, revision: 0, users: [], roles: [] });
  return [fixedBucket(BUCKET.auth, buckets.auth), fixedBucket(BUCKET.authUsers, buckets.authUsers), fixedBucket(BUCKET.authRoles, buckets.authRoles)];
}

/**
 * The backup as etcd's snapshot bytes: the bbolt file, then the sha256 of it (etcd's trailer). The spool
 * lives in `spoolDir` for the time of the call and is removed after, however the stream ends.
 */
export async function* encodeEtcdBackup(header: BackupHeader, records: AsyncIterable<[Buffer, Buffer]>, spoolDir: string): AsyncGenerator<Buffer> {
  fs.mkdirSync(spoolDir, { recursive: true });
  const spoolPath = path.join(fs.mkdtempSync(path.join(spoolDir, 'backup-spool-')), 'kv');
  try {
    const g = await gather(records, spoolPath);
    const compact = g.compactedRevision > 0 ? [etcdRevisionKey(g.compactedRevision, 0, false)] : [];
    const buckets: BboltBucketSource[] = [
      keyBucket(g),
      fixedBucket(BUCKET.meta, compact.length > 0 ? [[Buffer.from(FINISHED_COMPACT_REV), compact[0]], [Buffer.from(SCHEDULED_COMPACT_REV), compact[0]]] : []),
      fixedBucket(BUCKET.lease, g.leases),
      ...authBuckets(g.auth),
      fixedBucket(BUCKET.alarm, []),
      fixedBucket(BUCKET.members, []),
      fixedBucket(BUCKET.membersRemoved, []),
      fixedBucket(BUCKET.synod, [[Buffer.from(SYNOD_HEADER_KEY), Buffer.from(JSON.stringify({ ...header, revision: g.currentRevision }))]]),
    ];
    const digest = createHash('sha256');
    for await (const chunk of encodeBbolt(buckets)) {
      digest.update(chunk);
      yield chunk;
    }
    yield digest.digest();
  } finally {
    fs.rmSync(path.dirname(spoolPath), { recursive: true, force: true });
  }
}

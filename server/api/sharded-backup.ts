// A backup of a sharded cluster (Maintenance.Snapshot, `etcdctl snapshot save`): every key as it is at one
// oracle revision R, read page by page on the shards' leaders as a multi-shard range reads them, with the
// cluster group's leases and users/roles. It is written as the records of ONE group's store (the backup
// format of a one-group cluster, server/storage/backup-file.ts): an MVCC store compacted at R holding each
// key's version at R (its create and mod revisions, version and lease kept), so `synod snapshot restore`
// splits it over the shards of the new cluster by slot, or keeps it whole for a one-group cluster.
//
// What differs from a one-group backup, and why: history below R is not in it (each shard keeps its own
// history, at its own points; the backup is one consistent cut instead), so the restored cluster starts
// compacted at R. Keys of a lease revoked before the backup began, whose deletion the shards have not
// applied yet, are left out: the cluster has already decided they go.
import type { ApiContext, ShardedKeyspace } from './context.ts';
import { MVCC_RECORD_PREFIX } from '../shard/kv-state-machine.ts';
import { LEASE_RECORD_PREFIX } from '../lease/lease-store.ts';
import { AUTH_RECORD_PREFIX } from '../auth/auth-store.ts';
import { encodeLiveValue, encodeMeta, encodeRevKey, META_KEY } from '../mvcc/codec.ts';
import { rangeOf, type KeyValue } from '../mvcc/types.ts';

/** Keys read per shard per request: bounded pages keep each answer (and the member's memory) small. */
const PAGE_KEYS = 1_000;

function prefixed(prefix: number, key: Buffer): Buffer {
  return Buffer.concat([Buffer.from([prefix]), key]);
}

/** The MVCC records of one key's version at R. Subs number a revision's keys per shard, in key order. */
function kvRecord(kv: KeyValue, sub: number): [Buffer, Buffer] {
  const { buf } = encodeLiveValue(kv.createRevision, kv.version, kv.lease, kv.value);
  return [prefixed(MVCC_RECORD_PREFIX, encodeRevKey(kv.key, kv.modRevision, sub)), Buffer.from(buf)];
}

/**
 * The backup's records at `revision` (a fresh oracle revision the caller took): the store's meta, every
 * key of every shard, then the leases and the auth state. Each page is read with the caller's per-request
 * deadline, so a large keyspace takes as long as it takes, never stalling one request for all of it.
 */
export async function* shardedBackupRecords(ctx: ApiContext, shards: ShardedKeyspace, revision: number): AsyncGenerator<[Buffer, Buffer]> {
  // The leases before R: a key attached to one of them is kept even if it is revoked meanwhile (at R it
  // was alive). A lease granted since is kept too; one revoked before (its sweep pending) is not.
  await ctx.readBarrier();
  const leasesBefore = new Map(ctx.sm.leases.leaseRecords().map(([id, value]) => [id.toString('utf8'), value]));
  const keepsKey = (lease: string): boolean => lease === '0' || leasesBefore.has(lease) || (ctx.sm.leases.has(lease) && ctx.sm.leases.pendingSweep(lease) === undefined);

  yield [prefixed(MVCC_RECORD_PREFIX, META_KEY), encodeMeta(revision, revision)];
  const everything = Buffer.from([0]);
  for (const target of shards.targets()) {
    const subs = new Map<number, number>();
    let from = everything;
    for (;;) {
      const page = await shards.rangeAt(target, rangeOf(from, everything, { limit: PAGE_KEYS }), revision, ctx.deadlineMs());
      for (const kv of page.kvs) {
        if (!keepsKey(kv.lease)) continue;
        const sub = subs.get(kv.modRevision) ?? 0;
        subs.set(kv.modRevision, sub + 1);
        yield kvRecord(kv, sub);
      }
      if (!page.more || page.kvs.length === 0) break;
      from = Buffer.concat([page.kvs[page.kvs.length - 1].key, Buffer.from([0])]);
    }
  }
  // Leases: those from before R, and those granted since (their records as they are now).
  await ctx.readBarrier();
  for (const [id, value] of ctx.sm.leases.leaseRecords()) leasesBefore.set(id.toString('utf8'), value);
  for (const [id, value] of [...leasesBefore.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    yield [prefixed(LEASE_RECORD_PREFIX, Buffer.from(id, 'utf8')), value];
  }
  for (const [key, value] of ctx.sm.auth.records()) yield [prefixed(AUTH_RECORD_PREFIX, key), value];
}

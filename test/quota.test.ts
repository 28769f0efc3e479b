// The space quota (issue 13 item 3) with Debian's real etcdctl against 3 real Synod processes started
// with a small --quota-backend-bytes: filling past it refuses writes with etcd's error and raises
// NOSPACE through Raft, visible on every member; reads, deletes and compaction still work; and
// `compaction` + `defrag` + `alarm disarm` restore writes, as in etcd's runbook.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { MvccStore } from '../server/mvcc/store.ts';
import { requestCost } from '../server/shard/quota.ts';

const QUOTA = 400_000;
const VALUE_BYTES = 20_000;
const NO_SPACE = 'etcdserver: mvcc: database space exceeded';

let cluster: ProcessCluster;
let ep: string;

interface StatusJson {
  Endpoint: string;
  Status: { header: { member_id: number; revision: number }; dbSize: number; dbSizeInUse: number; errors?: string[] };
}

async function status(i: number): Promise<StatusJson['Status']> {
  const out = JSON.parse(await etcdctlOk(cluster.endpointOf(i), ['endpoint', 'status', '-w', 'json'])) as StatusJson[];
  return out[0].Status;
}

/** Incompressible text, so neither side of the measure is flattered by compression. */
function value(): string {
  return randomBytes(VALUE_BYTES * 0.75).toString('base64');
}

beforeAll(async () => {
  // A small snapshot count keeps the Raft log short, so defragment's effect on disk is visible.
  cluster = await ProcessCluster.start({ size: 3, extraArgs: ['--quota-backend-bytes', String(QUOTA), '--snapshot-count', '4'] });
  ep = cluster.endpoints;
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe('the store size measure', () => {
  it('counts every retained record and only compaction lowers it', () => {
    const s = new MvccStore();
    const put = (k: string, v: string): void => {
      s.put({ key: Buffer.from(k), value: Buffer.from(v), lease: '0', prevKv: false, ignoreValue: false, ignoreLease: false });
    };
    expect(s.sizeBytes()).toBe(0);
    put('a', 'x'.repeat(100));
    const one = s.sizeBytes();
    expect(one).toBe(1 + 100 + 32);
    put('a', 'y'.repeat(100));
    expect(s.sizeBytes()).toBe(2 * one); // history counts
    s.deleteRange({ key: Buffer.from('a'), rangeEnd: Buffer.alloc(0), prevKv: false });
    expect(s.sizeBytes()).toBe(2 * one + 1 + 32); // the tombstone too
    s.compact(s.currentRevision());
    expect(s.sizeBytes()).toBe(0);
    put('b', 'z');
    const small = s.sizeBytes();
    put('large', 'L'.repeat(5000)); // large values are held as Buffers: counted by bytes all the same
    expect(s.sizeBytes()).toBe(small + 5 + 5000 + 32);
    const restored = MvccStore.restore([...s.exportRecords()]);
    expect(restored.sizeBytes()).toBe(s.sizeBytes());
  });

  it('prices a request as etcd does: puts cost, deletes do not, a txn costs its costlier branch', () => {
    const put = { key: Buffer.from('k'), value: Buffer.alloc(10), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false };
    expect(requestCost({ put })).toBe(1 + 10 + 32);
    expect(requestCost({ delete_range: { key: Buffer.from('k'), range_end: Buffer.alloc(0), prev_kv: false } })).toBe(0);
    expect(requestCost({ txn: { compare: [], success: [{ request_put: put }, { request_put: put }], failure: [{ request_put: put }] } })).toBe(2 * 43);
    expect(requestCost({ txn: { compare: [], success: [{ request_delete_range: { key: Buffer.from('k'), range_end: Buffer.alloc(0), prev_kv: false } }], failure: [] } })).toBe(0);
    expect(requestCost({ lease_grant: { ID: '1', TTL: '10' } })).toBeGreaterThan(0);
  });
});

describe('--quota-backend-bytes with etcdctl against 3 members', () => {
  it('refuses writes past the quota with etcd error, raises NOSPACE on every member, and recovers after compaction + defrag + disarm', async () => {
    await etcdctlOk(ep, ['put', 'keep', 'small']);
    await etcdctlOk(ep, ['put', 'doomed', 'small']);
    // Overwrite one key until the quota refuses: its history is what fills the store.
    let refused: { i: number; stderr: string } | null = null;
    for (let i = 0; i < 3 * (QUOTA / VALUE_BYTES) && !refused; i++) {
      const r = await etcdctl(ep, ['put', 'big', value()]);
      if (r.code !== 0) refused = { i, stderr: r.stderr };
    }
    expect(refused, 'the quota never refused a put').not.toBeNull();
    expect(refused!.stderr).toContain(NO_SPACE);
    // It refused about when the measure reached the quota, not long before.
    expect(refused!.i).toBeGreaterThanOrEqual(Math.floor(QUOTA / (VALUE_BYTES + 40)) - 2);

    // Every member lists the alarm (it went through the log) and refuses writes, whichever one is asked.
    for (let m = 0; m < 3; m++) {
      const one = cluster.endpointOf(m);
      await expect.poll(async () => (await etcdctl(one, ['alarm', 'list'])).stdout, { timeout: 5_000 }).toMatch(/^memberID:\d+ alarm:NOSPACE \n/);
      const put = await etcdctl(one, ['put', 'tiny', 'x']);
      expect(put.code).not.toBe(0);
      expect(put.stderr).toContain(NO_SPACE);
      expect((await status(m)).errors?.join(' ')).toMatch(/alarm:NOSPACE/);
    }
    // Txns with puts and lease grants are refused too; reads, deletes and delete-only txns are not.
    const txnPut = await etcdctl(ep, ['txn'], { input: '\nput t1 v\n\n\n' });
    expect(txnPut.stderr).toContain(NO_SPACE);
    const grant = await etcdctl(ep, ['lease', 'grant', '30']);
    expect(grant.code).not.toBe(0);
    expect(grant.stderr).toContain(NO_SPACE);
    expect(await etcdctlOk(ep, ['get', 'keep', '--print-value-only'])).toBe('small\n');
    expect(await etcdctlOk(ep, ['del', 'doomed'])).toBe('1\n');
    expect(await etcdctlOk(ep, ['txn'], { input: '\ndel keep\n\n\n' })).toMatch(/^SUCCESS\n\n1\n$/);

    // Disarming alone does not help: the next write finds the store still full and raises it again.
    await etcdctlOk(ep, ['alarm', 'disarm']);
    const again = await etcdctl(ep, ['put', 'big', value()]);
    expect(again.stderr).toContain(NO_SPACE);
    await expect.poll(async () => (await etcdctl(ep, ['alarm', 'list'])).stdout, { timeout: 5_000 }).toMatch(/alarm:NOSPACE/);

    // etcd's runbook: compact to the current revision, defragment every member, disarm.
    const before = await Promise.all([0, 1, 2].map(status));
    const rev = before[0].header.revision;
    expect(await etcdctlOk(ep, ['compaction', String(rev)])).toBe(`compacted revision ${rev}\n`);
    await expect.poll(async () => (await status(2)).dbSizeInUse, { timeout: 5_000 }).toBeLessThan(before[2].dbSizeInUse / 4);
    // The quota's measure counts what compaction kept: it shrank at once, on every member.
    const compacted = await Promise.all([0, 1, 2].map(status));
    for (let m = 0; m < 3; m++) expect(compacted[m].dbSizeInUse).toBeLessThan(before[m].dbSizeInUse / 4);
    // The disk: the Raft log still holds the old values, and the member's snapshot points (LevelDB
    // snapshots) pin what the compaction deleted until two newer points exist; entries move both on
    // (deletes are allowed under NOSPACE), as ordinary traffic would. And LevelDB's compactRange
    // leaves a table it has just flushed from the memtable to the bottom level alone, so the first
    // defragment of a small database may only flush (docs/operations.md): a second one reclaims.
    let after = compacted;
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 12; i++) await etcdctlOk(ep, ['del', `nothing-${i}`]);
      const defrag = await etcdctlOk(ep, ['defrag']);
      expect(defrag.match(/Finished defragmenting/g)).toHaveLength(3);
      after = await Promise.all([0, 1, 2].map(status));
      if (after.every((a, m) => a.dbSize < before[m].dbSize / 4)) break;
    }
    for (let m = 0; m < 3; m++) expect(after[m].dbSize, `member ${m} on disk`).toBeLessThan(before[m].dbSize / 4);
    expect(await etcdctlOk(ep, ['alarm', 'disarm'])).toMatch(/alarm:NOSPACE/);
    expect(await etcdctlOk(ep, ['alarm', 'list'])).toBe('');
    for (let m = 0; m < 3; m++) expect(await etcdctlOk(cluster.endpointOf(m), ['put', `after-${m}`, 'ok'])).toBe('OK\n');
    expect(await etcdctlOk(ep, ['lease', 'grant', '30'])).toMatch(/granted with TTL\(30s\)/);
  }, 120_000);

  it('Alarm ACTIVATE and DEACTIVATE from a client work as in etcd (an unknown member id is ignored)', async () => {
    const { Status: s } = (JSON.parse(await etcdctlOk(cluster.endpointOf(0), ['endpoint', 'status', '-w', 'json'])) as StatusJson[])[0];
    const memberId = BigInt(s.header.member_id).toString();
    const { alarmClient } = await import('./support/alarm-client.ts');
    const client = alarmClient(cluster.addressOf(1));
    await etcdctlOk(ep, ['alarm', 'disarm']);
    try {
      expect(await client.alarm('ACTIVATE', memberId, 'NOSPACE')).toEqual([{ memberID: memberId, alarm: 'NOSPACE' }]);
      expect(await etcdctlOk(ep, ['alarm', 'list'])).toBe(`memberID:${memberId} alarm:NOSPACE \n`);
      expect((await etcdctl(ep, ['put', 'x', 'y'])).stderr).toContain(NO_SPACE);
      expect(await client.alarm('ACTIVATE', '12345', 'NOSPACE')).toEqual([]);
      expect(await client.alarm('GET', '0', 'CORRUPT')).toEqual([]);
      expect(await client.alarm('DEACTIVATE', memberId, 'NOSPACE')).toEqual([{ memberID: memberId, alarm: 'NOSPACE' }]);
      expect(await client.alarm('DEACTIVATE', memberId, 'NOSPACE')).toEqual([]);
      expect(await etcdctlOk(ep, ['put', 'x', 'y'])).toBe('OK\n');
    } finally {
      client.close();
    }
  }, 30_000);
});

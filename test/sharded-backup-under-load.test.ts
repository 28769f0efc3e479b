// A backup of a 16-shard cluster is one consistent cut even while cross-shard transactions run: the
// bank workload (test/fault/bank.ts: transfers as compare-and-swap Txns, half of them over two shards)
// runs on 3 members while Debian's `etcdctl snapshot save` takes backups through each member in turn.
// Every backup must hold every account, and its balances must sum to the bank's total — read two
// independent ways: by etcd 3.4 itself (`etcdctl snapshot restore`, then a Range on the restored etcd),
// and by `synod snapshot restore`'s reader of the file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { EtcdReference } from './support/etcd-reference.ts';
import { Bank, type BankReport } from './fault/bank.ts';
import { readEtcdSnapshot } from '../server/cli/etcd-snapshot-import.ts';
import { decodeRevKey, decodeValue } from '../server/mvcc/codec.ts';
import { MVCC_RECORD_PREFIX } from '../server/shard/kv-state-machine.ts';

const TAGS = 8;
const ACCOUNTS_PER_TAG = 4;
const BACKUPS = 3;

let cluster: ProcessCluster;
let bank: Bank;
let report: BankReport;
const files: string[] = [];

/** The balances as the file's store holds them now (each key's latest version, tombstones dropping it). */
function balancesInFile(file: string): Map<string, number> {
  const latest = new Map<string, { main: number; sub: number; balance: number | null }>();
  for (const [key, value] of [...readEtcdSnapshot(file)].flat()) {
    if (key[0] !== MVCC_RECORD_PREFIX || key.length < 3) continue;
    const { key: userKey, main, sub } = decodeRevKey(key.subarray(1));
    const v = decodeValue(value);
    const before = latest.get(userKey.toString());
    if (before && (before.main > main || (before.main === main && before.sub > sub))) continue;
    latest.set(userKey.toString(), { main, sub, balance: v.tombstone ? null : Number(value.subarray(v.valueOffset).toString()) });
  }
  return new Map([...latest].filter(([k, v]) => k.startsWith('bank/') && v.balance !== null).map(([k, v]) => [k, v.balance!]));
}

const sum = (balances: Iterable<number>): number => [...balances].reduce((a, b) => a + b, 0);

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3, memberArgs: () => ['--shards', '16'] });
  bank = new Bank({
    seed: 7,
    endpoints: [0, 1, 2].map((i) => cluster.addressOf(i)),
    tags: TAGS,
    accountsPerTag: ACCOUNTS_PER_TAG,
    initialBalance: 100,
    transferClients: 6,
    readers: 1,
    requestTimeoutMs: 5_000,
    crossShardShare: 0.5,
  });
  await bank.open();
  bank.start();
  for (let b = 0; b < BACKUPS; b++) {
    await new Promise((r) => setTimeout(r, 1_500));
    const file = path.join(cluster.rootDir, `under-load-${b}.db`);
    const saved = await etcdctl(cluster.endpointOf(b % 3), ['snapshot', 'save', file]);
    expect(saved.code, saved.stderr).toBe(0);
    files.push(file);
  }
  report = await bank.stop();
  console.log(`[backup-under-load] ${BACKUPS} backups while ${report.transfersCommitted} transfers committed (${report.crossShardCommitted} across shards, ${report.transfersRejected} refused by their compares)`);
}, 180_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe('backups of a 16-shard cluster under cross-shard transfers', () => {
  it('the transfers ran, over two shards too, with no violation of the bank\'s own checks', () => {
    expect(report.violations).toEqual([]);
    expect(report.transfersCommitted).toBeGreaterThan(20);
    expect(report.crossShardCommitted).toBeGreaterThan(5);
  });

  it('every backup sums to the total, read by etcd itself and by synod\'s reader', async () => {
    const total = bank.total;
    for (const file of files) {
      const fromFile = balancesInFile(file);
      expect(fromFile.size, file).toBe(TAGS * ACCOUNTS_PER_TAG);
      expect(sum(fromFile.values()), file).toBe(total);
      const etcd = await EtcdReference.start({ restoreFrom: file });
      try {
        const got = JSON.parse(await etcdctlOk(etcd.endpoint, ['get', 'bank/', '--prefix', '-w', 'json'])) as { kvs: Array<{ key: string; value: string }> };
        const fromEtcd = new Map(got.kvs.map((kv) => [Buffer.from(kv.key, 'base64').toString(), Number(Buffer.from(kv.value, 'base64').toString())]));
        expect(fromEtcd).toEqual(fromFile);
      } finally {
        await etcd.stop();
      }
    }
    // The backups are of different moments: transfers went on between them.
    const distinct = new Set(files.map((f) => JSON.stringify([...balancesInFile(f)].sort())));
    expect(distinct.size).toBeGreaterThan(1);
  }, 60_000);
});

// Mutual exclusion with fencing tokens while leaders are killed, with real server processes, on one group
// and on 16 shards: five workers take a lock in turn through every member and write a resource guarded by
// their token, while the leader is killed with -9 and restarted twice. Tokens only grow, no two live
// holders overlap, and guarded writes land in token order. What it checks holds however loaded the
// machine, so it runs in the process lane, two files at a time (the timed lease and lock checks are in
// lease-lock-faults.test.ts, which runs alone).
import { describe, expect, it } from 'vitest';
import { clusterPerTest } from './support/cluster-per-test.ts';

const tests = clusterPerTest();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Holding {
  worker: number;
  token: number;
  acquiredAtMs: number;
  unlockInvokedAtMs: number | null;
}

interface GuardedWrite {
  token: number;
  revision: number;
}

describe('locks under faults', () => {
  // On 16 shards the lock's keys live on the shards (server/api/contender-kv.ts), the guarded write's
  // compare reads another shard than its put, and the leader killed is the cluster group's.
  it.each([
    { name: 'one group', args: [] as string[] },
    { name: '16 shards', args: ['--shards', '16'] },
  ])('mutual exclusion with fencing tokens while leaders are killed ($name)', async ({ name, args }) => {
    const c = await tests.start({ size: 3, memberArgs: () => [...args] });
    const holdings: Holding[] = [];
    const writes: GuardedWrite[] = [];
    let running = true;
    const workers = [0, 1, 2, 3, 4].map(async (w) => {
      const api = tests.leaseClient(c, w % 3);
      while (running) {
        let lease: string;
        try {
          lease = (await api.grant(2)).ID;
        } catch {
          await sleep(100);
          continue;
        }
        const ka = api.keepAlive(lease, 400);
        try {
          const { key } = await api.lockAcquire('mx', lease, 6_000);
          const acquiredAtMs = Date.now();
          const mine = (await api.range(key)).kvs[0];
          if (!mine) continue; // the lease ended between acquiring and reading: not a holder
          const token = Number(mine.create_revision);
          const holding: Holding = { worker: w, token, acquiredAtMs, unlockInvokedAtMs: null };
          holdings.push(holding);
          for (let i = 0; i < 2; i++) {
            // The guarded write: only while the lock key still has this token's create revision.
            const res = await api.txn({
              compare: [{ key, target: 'CREATE', result: 'EQUAL', create_revision: token }],
              success: [{ request_put: { key: Buffer.from('resource'), value: Buffer.from(`${token}:${i}`) } }],
            });
            if (res.succeeded) writes.push({ token, revision: Number(res.header.revision) });
            await sleep(30);
          }
          // Still the holder? A holder whose lease ended under a fault (its member was the one
          // killed, say) lost the lock without releasing it: the overlap check is about holders
          // whose leases were live, so only a holder this check confirms counts as released here.
          const checkInvokedAtMs = Date.now();
          const still = await api.txn({ compare: [{ key, target: 'CREATE', result: 'EQUAL', create_revision: token }], success: [], failure: [] });
          if (still.succeeded) holding.unlockInvokedAtMs = checkInvokedAtMs;
          await api.unlock(key);
        } catch {
          // an ambiguous failure under a fault: the lease is revoked below, which frees the lock
        } finally {
          ka.stop();
          await api.revoke(lease).catch(() => undefined);
        }
      }
    });

    const faults: string[] = [];
    for (let round = 0; round < 2; round++) {
      await sleep(2_500);
      const leader = await c.leaderIndex();
      await c.kill9(leader);
      faults.push(`kill -9 leader m${leader + 1}`);
      await sleep(2_000);
      c.startMember(leader);
      faults.push(`restart m${leader + 1}`);
    }
    await sleep(2_500);
    running = false;
    await Promise.all(workers);

    // Tokens only grow: each new holder's token is larger than every earlier holder's.
    const byAcquire = [...holdings].sort((a, b) => a.acquiredAtMs - b.acquiredAtMs);
    for (let i = 1; i < byAcquire.length; i++) {
      expect(byAcquire[i].token, `holder ${i} token`).toBeGreaterThan(byAcquire[i - 1].token);
    }
    // No overlap: a holder still live when it released (confirmed by its key) released before the
    // next holder acquired.
    for (let i = 1; i < byAcquire.length; i++) {
      const prev = byAcquire[i - 1];
      if (prev.unlockInvokedAtMs !== null) expect(byAcquire[i].acquiredAtMs).toBeGreaterThanOrEqual(prev.unlockInvokedAtMs);
    }
    // Fenced writes land in token order: an old holder never wrote after a newer one.
    const byRevision = [...writes].sort((a, b) => a.revision - b.revision);
    for (let i = 1; i < byRevision.length; i++) expect(byRevision[i].token).toBeGreaterThanOrEqual(byRevision[i - 1].token);
    expect(holdings.length).toBeGreaterThanOrEqual(8);
    console.log(`mutual exclusion (${name}): ${holdings.length} holders, ${writes.length} fenced writes, faults: ${faults.join(', ')}`);
  });
});

// A flood of Authenticate calls on a real member (bcrypt at cost 12, about 300 ms a check here, on one
// worker thread per spare core): every call ends, with etcd's answers — "authentication failed" for those
// checked, "too many requests" at once past the queue's bound, "request timed out" for those whose
// deadline passed in the queue (dropped unchecked) — while the member keeps serving writes, and the right
// password logs in as soon as the flood is over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { AuthClient } from './support/auth-client.ts';

let cluster: ProcessCluster;
let root: AuthClient;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 1, extraArgs: ['--bcrypt-cost', '12', '--request-timeout', '2000'] });
  root = new AuthClient(cluster.addressOf(0));
  await root.call('Auth', 'UserAdd', { name: 'root', password: 'root-pw' });
  await root.call('Auth', 'UserGrantRole', { user: 'root', role: 'root' });
  await root.call('Auth', 'AuthEnable', {});
  await root.login('root', 'root-pw');
}, 60_000);

afterAll(async () => {
  root?.close();
  await cluster?.destroy();
});

describe('an Authenticate flood', () => {
  it('ends every call with etcd\'s answers, keeps writes flowing, and lets the right password in after', async () => {
    const flooder = new AuthClient(cluster.addressOf(0));
    const outcomes = new Map<string, number>();
    try {
      const flood = Promise.all(
        Array.from({ length: 200 }, () =>
          flooder.call('Auth', 'Authenticate', { name: 'root', password: 'guess' }, 20_000).then(
            () => 'logged in',
            (err: { details?: string }) => err.details ?? String(err),
          ),
        ),
      ).then((all) => {
        for (const o of all) outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
      });
      // Writes go on meanwhile (the member's main thread does no bcrypt).
      for (let i = 0; i < 10; i++) await root.put(`during/${i}`, 'x');
      await flood;
    } finally {
      flooder.close();
    }
    console.log(`200 Authenticate calls with a wrong password at bcrypt cost 12: ${[...outcomes].map(([o, n]) => `${n} × ${o}`).join('; ')}`);
    expect([...outcomes.keys()].sort()).toEqual(
      ['etcdserver: authentication failed, invalid user ID or password', 'etcdserver: request timed out', 'etcdserver: too many requests'].sort(),
    );
    expect(await root.login('root', 'root-pw')).toMatch(/^synod1\./);
  }, 60_000);
});

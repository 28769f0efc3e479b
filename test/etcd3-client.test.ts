// The `etcd3` npm package — an etcd client nobody here wrote — against a 3-member Synod cluster:
// KV, txn, watch, leases with keep-alive, and its lock and election helpers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { ProcessCluster } from './support/process-cluster.ts';

let cluster: ProcessCluster;
let client: Etcd3;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3 });
  client = new Etcd3({ hosts: cluster.members.map((m) => `http://127.0.0.1:${m.clientPort}`) });
});

afterAll(async () => {
  client?.close();
  await cluster?.destroy();
});

describe('the etcd3 npm client against Synod', () => {
  it('puts, gets, prefixes, deletes', async () => {
    await client.put('e3/a').value('1');
    await client.put('e3/b').value('2');
    expect(await client.get('e3/a').string()).toBe('1');
    expect(await client.getAll().prefix('e3/').strings()).toEqual({ 'e3/a': '1', 'e3/b': '2' });
    expect(await client.getAll().prefix('e3/').count()).toBe(2);
    await client.delete().key('e3/a');
    expect(await client.get('e3/a').string()).toBeNull();
  });

  it('runs a compare-and-swap transaction', async () => {
    await client.put('e3/cas').value('old');
    const ok = await client.if('e3/cas', 'Value', '==', 'old').then(client.put('e3/cas').value('new')).commit();
    expect(ok.succeeded).toBe(true);
    const no = await client.if('e3/cas', 'Value', '==', 'old').then(client.put('e3/cas').value('newer')).commit();
    expect(no.succeeded).toBe(false);
    expect(await client.get('e3/cas').string()).toBe('new');
  });

  it('watches a prefix', async () => {
    const watcher = await client.watch().prefix('e3/w/').create();
    const seen: string[] = [];
    const done = new Promise<void>((resolve) =>
      watcher.on('put', (kv) => {
        seen.push(`${kv.key.toString()}=${kv.value.toString()}`);
        if (seen.length === 2) resolve();
      }),
    );
    await client.put('e3/w/1').value('x');
    await client.put('e3/w/2').value('y');
    await done;
    await watcher.cancel();
    expect(seen).toEqual(['e3/w/1=x', 'e3/w/2=y']);
  });

  it('grants a lease, keeps it alive, and its key goes with it on revoke', async () => {
    const lease = client.lease(2);
    await lease.put('e3/leased').value('v');
    await new Promise((r) => setTimeout(r, 3_000)); // longer than the TTL: keep-alives hold it
    expect(await client.get('e3/leased').string()).toBe('v');
    expect(Number((await lease.keepaliveOnce()).TTL)).toBe(2);
    await lease.revoke();
    expect(await client.get('e3/leased').string()).toBeNull();
  });

  it('its lock helper excludes a second holder', async () => {
    const first = await client.lock('e3/lock').ttl(5).acquire();
    await expect(client.lock('e3/lock').ttl(5).acquire()).rejects.toThrow();
    await first.release();
    const second = await client.lock('e3/lock').ttl(5).acquire();
    await second.release();
  });

  it('its election helper elects a leader', async () => {
    const election = client.election('e3/election', 5);
    const campaign = election.campaign('candidate-1');
    await new Promise<void>((resolve, reject) => {
      campaign.on('elected', () => resolve());
      campaign.on('error', reject);
    });
    expect(await election.leader()).toBe('candidate-1');
    await campaign.resign();
  });
});

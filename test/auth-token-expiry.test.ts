// Token lifetime (--auth-token-ttl) on a real member: a token stops working when it expires, clients
// that re-authenticate on "invalid auth token" (as etcd clients do) carry on, and a watch stream keeps
// the identity it was opened with.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Etcd3 } from 'etcd3';
import { ProcessCluster } from './support/process-cluster.ts';
import { AuthClient, failure } from './support/auth-client.ts';

const TTL_SECONDS = 2;
const INVALID_TOKEN = { code: 16, details: 'etcdserver: invalid auth token' };

let cluster: ProcessCluster;
const clients: AuthClient[] = [];

function client(): AuthClient {
  const c = new AuthClient(cluster.addressOf(0));
  clients.push(c);
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 1, extraArgs: ['--auth-token-ttl', String(TTL_SECONDS)] });
  const admin = client();
  await admin.call('Auth', 'UserAdd', { name: 'root', password: 'pw' });
  await admin.call('Auth', 'UserGrantRole', { user: 'root', role: 'root' });
  await admin.call('Auth', 'AuthEnable', {});
});

afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.destroy();
});

describe('auth token expiry', () => {
  it('an expired token is refused with "invalid auth token"; authenticating again works', async () => {
    const c = client();
    await c.login('root', 'pw');
    await c.put('k', 'before');
    const openWatch = c.watch(); // opened while the token is valid
    openWatch.create('k');
    expect((await openWatch.next()).canceled).toBe(false);

    await sleep(TTL_SECONDS * 1000 + 500);
    expect(await failure(c.put('k', 'after'))).toEqual(INVALID_TOKEN);
    expect(await failure(c.get('k'))).toEqual(INVALID_TOKEN);
    expect(await failure(c.call('Lease', 'LeaseGrant', { TTL: 10 }))).toEqual(INVALID_TOKEN);

    // A new watch stream with the stale token: its creates are refused with etcd's reason.
    const late = c.watch();
    late.create('k', '', { watch_id: 3 });
    const refused = await late.next();
    expect(refused).toMatchObject({ created: true, canceled: true, cancel_reason: INVALID_TOKEN.details, watch_id: '3' });

    // The stream opened earlier keeps the identity it was opened with (the token authenticated it).
    openWatch.create('k2');
    expect((await openWatch.next()).canceled).toBe(false);

    await c.login('root', 'pw');
    await c.put('k', 'after');
    expect(String((await c.get('k')).kvs[0].value)).toBe('after');
  });

  it('the etcd3 npm client re-authenticates by itself when its token expires', async () => {
    const etcd = new Etcd3({ hosts: `http://${cluster.addressOf(0)}`, auth: { username: 'root', password: 'pw' } });
    try {
      await etcd.put('e3').value('1');
      await sleep(TTL_SECONDS * 1000 + 500);
      await etcd.put('e3').value('2');
      expect(await etcd.get('e3').string()).toBe('2');
    } finally {
      etcd.close();
    }
  });
});

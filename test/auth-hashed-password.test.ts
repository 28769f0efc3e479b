// AuthUserAddRequest.hashedPassword as etcd 3.5+ clients send it: a bcrypt hash made on the client
// (etcd's own form). Synod stores it as given and verifies the password against it at Authenticate,
// as etcd does; a hash it cannot verify in bounded time (bcrypt cost above 14) or cannot read is refused
// with INVALID_ARGUMENT before anything is written. Real processes, raw gRPC (etcdctl 3.4 has no flag
// for it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import bcrypt from 'bcryptjs';
import { ProcessCluster } from './support/process-cluster.ts';
import { AuthClient } from './support/auth-client.ts';

let cluster: ProcessCluster;
let admin: AuthClient;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 1 });
  admin = new AuthClient(cluster.addressOf(0));
}, 60_000);

afterAll(async () => {
  admin?.close();
  await cluster?.destroy();
});

describe('AuthUserAdd with hashedPassword (bcrypt, as etcd clients make it)', () => {
  it('a user added with a bcrypt hash logs in with its password, and not with another', async () => {
    await admin.call('Auth', 'UserAdd', { name: 'alice', hashedPassword: bcrypt.hashSync('alice-pw', 4) });
    await admin.call('Auth', 'UserAdd', { name: 'root', password: 'root-pw' });
    await admin.call('Auth', 'UserGrantRole', { user: 'root', role: 'root' });
    await admin.call('Auth', 'AuthEnable', {});
    const alice = new AuthClient(cluster.addressOf(0));
    try {
      expect(await alice.login('alice', 'alice-pw')).toMatch(/^synod1\./);
      await expect(alice.login('alice', 'wrong')).rejects.toMatchObject({ details: 'etcdserver: authentication failed, invalid user ID or password' });
    } finally {
      alice.close();
    }
  });

  it('refuses a hash of a cost above 14, or not a hash at all, with INVALID_ARGUMENT', async () => {
    await admin.login('root', 'root-pw');
    const costly = bcrypt.hashSync('x', 4).replace(/^\$2[ab]\$04\$/, '$2a$15$');
    for (const hashedPassword of [costly, 'not-a-hash']) {
      await expect(admin.call('Auth', 'UserAdd', { name: 'bob', hashedPassword })).rejects.toMatchObject({ code: 3, details: expect.stringContaining('hashedPassword must be a bcrypt hash of cost 4 to 14') });
    }
    await expect(admin.call('Auth', 'UserGet', { name: 'bob' })).rejects.toMatchObject({ details: 'etcdserver: user name not found' });
  });
});

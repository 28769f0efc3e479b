// Users made on Synod log in on etcd after a move back: passwords set through etcdctl on a Synod cluster
// are bcrypt hashes at --bcrypt-cost (etcd's form), so `etcdctl snapshot save` against Synod and etcd's own
// `snapshot restore` give an etcd 3.4 (Debian's) where root and a confined user log in with their
// passwords and their roles hold. A password longer than bcrypt's 72 bytes is kept as Synod's scrypt: that
// user logs in on Synod only, as docs/operations.md says. On one group and on 16 shards (whose backup is a
// cut of every shard at one revision, the auth store with it).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';
import { EtcdReference } from './support/etcd-reference.ts';

const ROOT = ['--user', 'root:rootpw'];
const LONG_PASSWORD = 'x'.repeat(80);

describe.each([
  { layout: 'one group', shardArgs: [] as string[] },
  { layout: '16 shards', shardArgs: ['--shards', '16'] },
])('users made on Synod ($layout)', ({ shardArgs }) => {
  let cluster: ProcessCluster;
  let file: string;

  beforeAll(async () => {
    cluster = await ProcessCluster.start({ size: 3, extraArgs: ['--bcrypt-cost', '5', ...shardArgs] });
    const ep = cluster.endpoints;
    await etcdctlOk(ep, ['user', 'add', 'root:rootpw']);
    await etcdctlOk(ep, ['user', 'grant-role', 'root', 'root']);
    await etcdctlOk(ep, ['role', 'add', 'reader']);
    await etcdctlOk(ep, ['role', 'grant-permission', 'reader', '--prefix=true', 'read', 'r/']);
    await etcdctlOk(ep, ['user', 'add', 'alice:alicepw']);
    await etcdctlOk(ep, ['user', 'grant-role', 'alice', 'reader']);
    await etcdctlOk(ep, ['user', 'add', `long:${LONG_PASSWORD}`]);
    await etcdctlOk(ep, ['user', 'grant-role', 'long', 'reader']);
    await etcdctlOk(ep, ['user', 'add', 'changed:first']);
    await etcdctlOk(ep, ['user', 'grant-role', 'changed', 'reader']);
    await etcdctlOk(ep, ['user', 'passwd', 'changed', '--interactive=false'], { input: 'second\n' });
    await etcdctlOk(ep, ['auth', 'enable']);
    await etcdctlOk(ep, [...ROOT, 'put', 'r/1', 'one']);
    file = path.join(cluster.rootDir, 'with-users.db');
    const saved = await etcdctl(cluster.endpointOf(0), [...ROOT, 'snapshot', 'save', file]);
    expect(saved.code, saved.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('log in on Synod, and their hashes are bcrypt at --bcrypt-cost, except the password bcrypt would cut short', async () => {
    const ep = cluster.endpoints;
    expect(await etcdctlOk(ep, ['--user', 'alice:alicepw', 'get', 'r/1', '--print-value-only'])).toBe('one\n');
    expect(await etcdctlOk(ep, ['--user', `long:${LONG_PASSWORD}`, 'get', 'r/1', '--print-value-only'])).toBe('one\n');
    const lastByteCut = await etcdctl(ep, ['--user', `long:${LONG_PASSWORD.slice(0, 72)}`, 'get', 'r/1']);
    expect(lastByteCut.stderr).toContain('etcdserver: authentication failed, invalid user ID or password');
    const bytes = fs.readFileSync(file).toString('latin1');
    // root, alice and changed: bcrypt at cost 5; long: scrypt.
    expect(bytes.match(/\$2b\$05\$[./A-Za-z0-9]{53}/g)?.length).toBe(3);
    expect(bytes.match(/scrypt\$32768\$8\$1\$/g)?.length).toBe(1);
  });

  it('log in on etcd 3.4 restored from a Synod backup, with auth on and their roles holding', async () => {
    const etcd = await EtcdReference.start({ restoreFrom: file, user: 'root:rootpw' });
    try {
      const ep = etcd.endpoint;
      const anonymous = await etcdctl(ep, ['put', 'r/2', 'x']);
      expect(anonymous.stderr).toContain('etcdserver: user name is empty'); // auth is on
      expect(await etcdctlOk(ep, [...ROOT, 'get', 'r/1', '--print-value-only'])).toBe('one\n');
      expect(await etcdctlOk(ep, ['--user', 'alice:alicepw', 'get', 'r/1', '--print-value-only'])).toBe('one\n');
      const denied = await etcdctl(ep, ['--user', 'alice:alicepw', 'put', 'r/1', 'no']);
      expect(denied.stderr).toContain('etcdserver: permission denied');
      expect(await etcdctlOk(ep, ['--user', 'changed:second', 'get', 'r/1', '--print-value-only'])).toBe('one\n');
      const old = await etcdctl(ep, ['--user', 'changed:first', 'get', 'r/1']);
      expect(old.stderr).toContain('etcdserver: authentication failed, invalid user ID or password');
      // The scrypt user exists on etcd but cannot log in there (etcd checks bcrypt only); root resets it.
      const long = await etcdctl(ep, ['--user', `long:${LONG_PASSWORD}`, 'get', 'r/1']);
      expect(long.stderr).toContain('etcdserver: authentication failed, invalid user ID or password');
      expect(await etcdctlOk(ep, [...ROOT, 'user', 'list'])).toContain('long');
    } finally {
      await etcd.stop();
    }
  }, 60_000);
});

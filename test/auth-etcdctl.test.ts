// Debian's real etcdctl driving the Auth API of 3 Synod processes, the way an operator would: users,
// roles, a prefix permission, auth enable, then a user confined to its prefix, and auth disable by root.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';

let cluster: ProcessCluster;
let ep: string;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3 });
  ep = cluster.endpoints;
});

afterAll(async () => {
  await cluster?.destroy();
});

const asRoot = ['--user', 'root:root-pw'];
const asAlice = ['--user', 'alice:alice-pw'];

describe('etcdctl auth workflow', () => {
  it('sets up users and roles, enables auth, confines a user to its prefix, and disables auth as root', async () => {
    expect(await etcdctlOk(ep, ['user', 'add', 'root:root-pw'])).toBe('User root created\n');
    expect(await etcdctlOk(ep, ['user', 'add', 'alice', '--interactive=false'], { input: 'alice-pw\n' })).toBe('User alice created\n');
    expect(await etcdctlOk(ep, ['role', 'add', 'app'])).toBe('Role app created\n');
    expect(await etcdctlOk(ep, ['role', 'grant-permission', '--prefix=true', 'app', 'readwrite', '/app/'])).toBe('Role app updated\n');
    expect(await etcdctlOk(ep, ['user', 'grant-role', 'alice', 'app'])).toBe('Role app is granted to user alice\n');
    await etcdctlOk(ep, ['put', '/secret', 'classified']);
    // etcdctl adds the root role and grants it to root when auth enable reports it missing.
    expect(await etcdctlOk(ep, ['auth', 'enable'])).toBe('Authentication Enabled\n');

    // Without credentials nothing is served.
    const anon = await etcdctl(ep, ['get', '/secret']);
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toContain('etcdserver: user name is empty');

    // alice: her prefix only, on any member.
    for (let i = 0; i < 3; i++) {
      const one = cluster.endpointOf(i);
      expect(await etcdctlOk(one, [...asAlice, 'put', `/app/k${i}`, `v${i}`])).toBe('OK\n');
      expect(await etcdctlOk(one, [...asAlice, 'get', `/app/k${i}`])).toBe(`/app/k${i}\nv${i}\n`);
    }
    expect(await etcdctlOk(ep, [...asAlice, 'get', '--prefix', '/app/'])).toBe('/app/k0\nv0\n/app/k1\nv1\n/app/k2\nv2\n');
    expect(await etcdctlOk(ep, [...asAlice, 'del', '/app/k2'])).toBe('1\n');
    for (const args of [['get', '/secret'], ['put', '/secret', 'mine'], ['del', '/secret'], ['get', '--prefix', '/']]) {
      const r = await etcdctl(ep, [...asAlice, ...args]);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toContain('etcdserver: permission denied');
    }
    const txnDenied = await etcdctl(ep, [...asAlice, 'txn'], { input: 'value("/app/k0") = "v0"\n\nput /app/ok yes\n\nput /secret no\n\n' });
    expect(txnDenied.stderr).toContain('etcdserver: permission denied');
    expect(await etcdctlOk(ep, [...asAlice, 'txn'], { input: 'value("/app/k0") = "v0"\n\nput /app/ok yes\n\nput /app/no no\n\n' })).toBe('SUCCESS\n\nOK\n');

    // Wrong password, and alice cannot manage auth.
    const wrong = await etcdctl(ep, ['--user', 'alice:nope', 'get', '/app/k0']);
    expect(wrong.stderr).toContain('etcdserver: authentication failed, invalid user ID or password');
    const manage = await etcdctl(ep, [...asAlice, 'user', 'add', 'mallory:x']);
    expect(manage.stderr).toContain('etcdserver: permission denied');
    const disableByAlice = await etcdctl(ep, [...asAlice, 'auth', 'disable']);
    expect(disableByAlice.stderr).toContain('etcdserver: permission denied');

    // root sees everything and manages.
    expect(await etcdctlOk(ep, [...asRoot, 'get', '/secret'])).toBe('/secret\nclassified\n');
    expect(await etcdctlOk(ep, [...asRoot, 'user', 'list'])).toBe('alice\nroot\n');
    expect(await etcdctlOk(ep, [...asRoot, 'role', 'list'])).toBe('app\nroot\n');
    expect(await etcdctlOk(ep, [...asRoot, 'user', 'get', 'alice'])).toBe('User: alice\nRoles: app\n');
    expect(await etcdctlOk(ep, [...asRoot, 'role', 'get', 'app'])).toBe('Role app\nKV Read:\n\t[/app/, /app0) (prefix /app/)\nKV Write:\n\t[/app/, /app0) (prefix /app/)\n');
    const dup = await etcdctl(ep, [...asRoot, 'user', 'add', 'alice:x']);
    expect(dup.stderr).toContain('etcdserver: user name already exists');
    const noRole = await etcdctl(ep, [...asRoot, 'user', 'grant-role', 'alice', 'nope']);
    expect(noRole.stderr).toContain('etcdserver: role name not found');
    expect(await etcdctlOk(ep, [...asRoot, 'user', 'passwd', 'alice', '--interactive=false'], { input: 'alice-pw-2\n' })).toBe('Password updated\n');
    expect((await etcdctl(ep, [...asAlice, 'get', '/app/k0'])).stderr).toContain('authentication failed');
    expect(await etcdctlOk(ep, ['--user', 'alice:alice-pw-2', 'get', '/app/k0'])).toBe('/app/k0\nv0\n');
    expect(await etcdctlOk(ep, [...asRoot, 'role', 'revoke-permission', 'app', '/app/', '--prefix=true'])).toBe('Permission of range [/app/, /app0) is revoked from role app\n');
    expect((await etcdctl(ep, ['--user', 'alice:alice-pw-2', 'get', '/app/k0'])).stderr).toContain('etcdserver: permission denied');

    expect(await etcdctlOk(ep, [...asRoot, 'auth', 'disable'])).toBe('Authentication Disabled\n');
    expect(await etcdctlOk(ep, ['get', '/secret'])).toBe('/secret\nclassified\n');
  });
});

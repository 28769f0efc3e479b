// Auth on a sharded cluster (3 members, 4 shards) with Debian's etcdctl: the shards that apply writes hold
// no auth state (it lives in the cluster group), so writes are checked at the API after a read barrier on
// the cluster group. A user confined to /app/ may write there on any shard, and nowhere else: put,
// delete, txn and anonymous writes are refused with etcd's errors, and nothing refused is applied. A lease
// whose keys (on any shard) include one she may not write is not hers to revoke, list or attach to.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { etcdctl, etcdctlOk } from './support/etcdctl.ts';

let cluster: ProcessCluster;
let ep: string;

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3, memberArgs: () => ['--shards', '4'] });
  ep = cluster.endpoints;
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

const asRoot = ['--user', 'root:root-pw'];
const asAlice = ['--user', 'alice:alice-pw'];

describe('auth on a 4-shard cluster', () => {
  it('a user confined to /app/ writes there on every shard and nowhere else', async () => {
    await etcdctlOk(ep, ['user', 'add', 'root:root-pw']);
    await etcdctlOk(ep, ['user', 'add', 'alice', '--interactive=false'], { input: 'alice-pw\n' });
    await etcdctlOk(ep, ['role', 'add', 'app']);
    await etcdctlOk(ep, ['role', 'grant-permission', '--prefix=true', 'app', 'readwrite', '/app/']);
    await etcdctlOk(ep, ['user', 'grant-role', 'alice', 'app']);
    for (let i = 0; i < 8; i++) await etcdctlOk(ep, ['put', `/secret/${i}`, 'classified']);
    expect(await etcdctlOk(ep, ['auth', 'enable'])).toBe('Authentication Enabled\n');

    const anon = await etcdctl(ep, ['put', '/app/anon', 'x']);
    expect(anon.code).not.toBe(0);
    expect(anon.stderr).toContain('etcdserver: user name is empty');

    for (let i = 0; i < 8; i++) {
      const member = cluster.endpointOf(i % 3);
      expect(await etcdctlOk(member, [...asAlice, 'put', `/app/${i}`, `v${i}`])).toBe('OK\n');
      const put = await etcdctl(member, [...asAlice, 'put', `/secret/${i}`, 'overwritten']);
      expect(put.code, put.stdout).not.toBe(0);
      expect(put.stderr).toContain('etcdserver: permission denied');
      const del = await etcdctl(member, [...asAlice, 'del', `/secret/${i}`]);
      expect(del.stderr).toContain('etcdserver: permission denied');
    }
    const txn = await etcdctl(ep, [...asAlice, 'txn'], { input: '\nput /secret/0 txn\n\n\n' });
    expect(txn.stderr).toContain('etcdserver: permission denied');

    // Nothing refused was applied; alice's own writes were.
    const secrets = await etcdctlOk(ep, [...asRoot, 'get', '--prefix', '/secret/', '--print-value-only']);
    expect(secrets.trim().split('\n')).toEqual(Array(8).fill('classified'));
    const mine = await etcdctlOk(ep, [...asAlice, 'get', '--prefix', '/app/', '--keys-only']);
    expect(mine.trim().split('\n').filter(Boolean)).toHaveLength(8);
  }, 60_000);

  it('a lease whose keys include some alice may not write: she cannot revoke it, list its keys or attach to it (etcd\'s lease checks, over every shard)', async () => {
    // Root's lease holds /secret/leased and /app/leased (on two shards of the four, most likely).
    const lease = (await etcdctlOk(ep, [...asRoot, 'lease', 'grant', '600'])).match(/lease ([0-9a-f]+) granted/)![1];
    await etcdctlOk(ep, [...asRoot, 'put', '/secret/leased', 'x', `--lease=${lease}`]);
    await etcdctlOk(ep, [...asRoot, 'put', '/app/leased', 'x', `--lease=${lease}`]);
    const revoke = await etcdctl(ep, [...asAlice, 'lease', 'revoke', lease]);
    expect(revoke.code).not.toBe(0);
    expect(revoke.stderr).toContain('etcdserver: permission denied');
    const keys = await etcdctl(ep, [...asAlice, 'lease', 'timetolive', '--keys', lease]);
    expect(keys.stderr).toContain('etcdserver: permission denied');
    const attach = await etcdctl(ep, [...asAlice, 'put', '/app/mine', 'x', `--lease=${lease}`]);
    expect(attach.stderr).toContain('etcdserver: permission denied');
    const attachInTxn = await etcdctl(ep, [...asAlice, 'txn'], { input: `\nput /app/mine x --lease=${lease}\n\n\n` });
    expect(attachInTxn.stderr).toContain('etcdserver: permission denied');
    // Nothing was revoked or attached; a lease of her own, with keys she may write, is hers to revoke.
    expect(await etcdctlOk(ep, [...asRoot, 'lease', 'timetolive', '--keys', lease])).toMatch(/attached keys\(\[\/(app|secret)\/leased \/(app|secret)\/leased\]\)/);
    const own = (await etcdctlOk(ep, [...asAlice, 'lease', 'grant', '600'])).match(/lease ([0-9a-f]+) granted/)![1];
    expect(await etcdctlOk(ep, [...asAlice, 'put', '/app/own', 'x', `--lease=${own}`])).toBe('OK\n');
    expect(await etcdctlOk(ep, [...asAlice, 'lease', 'timetolive', '--keys', own])).toContain('attached keys([/app/own])');
    expect(await etcdctlOk(ep, [...asAlice, 'lease', 'revoke', own])).toContain('revoked');
    expect(await etcdctlOk(ep, [...asRoot, 'lease', 'revoke', lease])).toContain('revoked');
  }, 60_000);
});

// The etcd Auth API against 3 real Synod processes over real gRPC: a permission matrix (users x roles x
// key ranges x operations, Txn branches and watches included), each case sent to a different member than
// the one auth was enabled on; revocation, passwords, tokens, leases, locks, elections, management rules,
// and auth state surviving a restart of the whole cluster.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCluster } from './support/process-cluster.ts';
import { AuthClient, failure } from './support/auth-client.ts';

const DENIED = { code: 7, details: 'etcdserver: permission denied' };
const USER_EMPTY = { code: 3, details: 'etcdserver: user name is empty' };
const INVALID_TOKEN = { code: 16, details: 'etcdserver: invalid auth token' };
const AUTH_FAILED = { code: 3, details: 'etcdserver: authentication failed, invalid user ID or password' };

const b = (s: string): Buffer => Buffer.from(s);
const PASSWORDS: Record<string, string> = { root: 'root-pw', alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw' };

let cluster: ProcessCluster;
const clients: AuthClient[] = [];

/** A client of member `i` (mod 3), logged in as `user` (null: no credentials). */
async function as(user: string | null, i: number): Promise<AuthClient> {
  const c = new AuthClient(cluster.addressOf(i % 3));
  clients.push(c);
  if (user) await c.login(user, PASSWORDS[user]);
  return c;
}

beforeAll(async () => {
  cluster = await ProcessCluster.start({ size: 3 });
  // Everything is set up through member 0 while auth is still off...
  const admin = await as(null, 0);
  for (const [name, pw] of Object.entries(PASSWORDS)) await admin.call('Auth', 'UserAdd', { name, password: pw });
  await admin.call('Auth', 'UserGrantRole', { user: 'root', role: 'root' });
  await admin.call('Auth', 'RoleAdd', { name: 'app-rw' });
  await admin.call('Auth', 'RoleGrantPermission', { name: 'app-rw', perm: { permType: 'READWRITE', key: b('/app/'), range_end: b('/app0') } });
  await admin.call('Auth', 'RoleAdd', { name: 'app-ro' });
  await admin.call('Auth', 'RoleGrantPermission', { name: 'app-ro', perm: { permType: 'READ', key: b('/app/'), range_end: b('/app0') } });
  await admin.call('Auth', 'RoleAdd', { name: 'logs-w' });
  await admin.call('Auth', 'RoleGrantPermission', { name: 'logs-w', perm: { permType: 'WRITE', key: b('/logs/'), range_end: b('/logs0') } });
  await admin.call('Auth', 'UserGrantRole', { user: 'alice', role: 'app-rw' });
  await admin.call('Auth', 'UserGrantRole', { user: 'bob', role: 'app-ro' });
  await admin.call('Auth', 'UserGrantRole', { user: 'bob', role: 'logs-w' });
  for (const [k, v] of [['/app/k', 'a'], ['/other', 'o'], ['/logs/x', 'l']]) await admin.put(k, v);
  await admin.call('Auth', 'AuthEnable', {});
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.destroy();
});

type Outcome = 'ok' | typeof DENIED | typeof USER_EMPTY;
type Op = (c: AuthClient) => Promise<unknown>;

const put = (key: string, extra: object = {}): Op => (c) => c.put(key, 'v', extra);
const get = (key: string, end = '', extra: object = {}): Op => (c) => c.get(key, end, extra);
const del = (key: string, end = ''): Op => (c) => c.del(key, end);
const txn = (t: object): Op => (c) => c.call('KV', 'Txn', t);
const rangeOp = (key: string, end = ''): object => ({ request_range: { key: b(key), range_end: b(end) } });
const putOp = (key: string): object => ({ request_put: { key: b(key), value: b('t') } });
const cmp = (key: string): object => ({ result: 'EQUAL', target: 'VERSION', key: b(key), version: '1' });

// [name, operation, outcome for root, alice (RW /app/), bob (R /app/ + W /logs/), carol (no roles)]
const MATRIX: Array<[string, Op, Outcome, Outcome, Outcome, Outcome]> = [
  ['get a key in /app/', get('/app/k'), 'ok', 'ok', 'ok', DENIED],
  ['get the /app/ prefix', get('/app/', '/app0'), 'ok', 'ok', 'ok', DENIED],
  ['serializable get in /app/', get('/app/k', '', { serializable: true }), 'ok', 'ok', 'ok', DENIED],
  ['get a key outside', get('/other'), 'ok', DENIED, DENIED, DENIED],
  ['get a range reaching past /app/', get('/app/', '/b'), 'ok', DENIED, DENIED, DENIED],
  ['get everything', get('\0', '\0'), 'ok', DENIED, DENIED, DENIED],
  ['put in /app/', put('/app/k'), 'ok', 'ok', DENIED, DENIED],
  ['put outside', put('/other'), 'ok', DENIED, DENIED, DENIED],
  ['put in /logs/ (write-only role)', put('/logs/x'), 'ok', DENIED, 'ok', DENIED],
  ['put in /logs/ with prev_kv (needs read)', put('/logs/x', { prev_kv: true }), 'ok', DENIED, DENIED, DENIED],
  ['get in /logs/ (write-only role)', get('/logs/x'), 'ok', DENIED, DENIED, DENIED],
  ['delete a key in /app/', del('/app/gone'), 'ok', 'ok', DENIED, DENIED],
  ['delete the /app/ prefix', del('/app/zz/', '/app/zz0'), 'ok', 'ok', DENIED, DENIED],
  ['delete outside', del('/nothing-here'), 'ok', DENIED, DENIED, DENIED],
  ['read-only txn in /app/', txn({ compare: [cmp('/app/k')], success: [rangeOp('/app/k')], failure: [] }), 'ok', 'ok', 'ok', DENIED],
  ['txn writing /app/, failure branch writes outside', txn({ compare: [cmp('/app/k')], success: [putOp('/app/k')], failure: [putOp('/other')] }), 'ok', DENIED, DENIED, DENIED],
  ['txn writing /app/ in both branches', txn({ compare: [cmp('/app/k')], success: [putOp('/app/k')], failure: [putOp('/app/k2')] }), 'ok', 'ok', DENIED, DENIED],
  ['txn comparing a key outside', txn({ compare: [cmp('/other')], success: [putOp('/app/k')], failure: [] }), 'ok', DENIED, DENIED, DENIED],
  ['read-only txn whose failure branch reads outside', txn({ compare: [], success: [rangeOp('/app/k')], failure: [rangeOp('/other')] }), 'ok', DENIED, DENIED, DENIED],
  ['nested txn reading outside', txn({ compare: [], success: [{ request_txn: { compare: [], success: [rangeOp('/other')], failure: [] } }], failure: [] }), 'ok', DENIED, DENIED, DENIED],
  ['nested txn writing /app/', txn({ compare: [], success: [{ request_txn: { compare: [], success: [putOp('/app/n')], failure: [] } }], failure: [] }), 'ok', 'ok', DENIED, DENIED],
];

const USERS = ['root', 'alice', 'bob', 'carol'] as const;

describe('permission matrix (each case on another member than the one auth was enabled on)', () => {
  let n = 1; // member 0 enabled auth: start on member 1
  // One client per user and member for the whole matrix, logged in once: a login (scrypt, slow on
  // purpose) is not what the matrix checks, and its cases still rotate over the members.
  const matrixClients = new Map<string, Promise<AuthClient>>();
  const matrixClient = (user: string | null, i: number): Promise<AuthClient> => {
    const key = `${user}@${i % 3}`;
    if (!matrixClients.has(key)) matrixClients.set(key, as(user, i));
    return matrixClients.get(key)!;
  };
  for (const [name, op, ...outcomes] of MATRIX) {
    it(name, async () => {
      for (let u = 0; u < USERS.length; u++) {
        const c = await matrixClient(USERS[u], n++);
        const want = outcomes[u];
        if (want === 'ok') await expect(op(c), `${USERS[u]}: ${name}`).resolves.toBeDefined();
        else expect(await failure(op(c)), `${USERS[u]}: ${name}`).toEqual(want);
      }
      // A client without credentials is told to authenticate (etcd: "user name is empty").
      expect(await failure(op(await matrixClient(null, n++)))).toEqual(USER_EMPTY);
    });
  }

  it('watches: created for readable ranges, created+canceled with "permission denied" otherwise', async () => {
    const cases: Array<[string | null, string, string, boolean]> = [
      ['root', '\0', '\0', true],
      ['alice', '/app/', '/app0', true],
      ['bob', '/app/', '/app0', true],
      ['bob', '/logs/', '/logs0', false], // write-only
      ['alice', '/other', '', false],
      ['carol', '/app/', '/app0', false],
      [null, '/app/', '/app0', false],
    ];
    for (const [user, key, end, allowed] of cases) {
      const c = await as(user, n++);
      const w = c.watch();
      w.create(key, end, { watch_id: 5 });
      const r = await w.next();
      expect(r.created, `${user} watch ${key}`).toBe(true);
      expect(r.canceled, `${user} watch ${key}`).toBe(!allowed);
      expect(r.cancel_reason).toBe(allowed ? '' : DENIED.details);
      expect(r.watch_id).toBe('5');
      if (allowed) {
        // A live watch delivers events; the stream also stays usable after a refused create.
        await (await as('root', n++)).put(key === '\0' ? '/app/watched' : `${key}watched`, 'x');
        const ev = await w.next();
        expect(ev.events.length).toBe(1);
      } else {
        w.create('/app/', '/app0', { watch_id: 6 });
        const second = await w.next();
        expect(second.created).toBe(true);
        expect(second.canceled).toBe(user === 'alice' || user === 'bob' ? false : true);
      }
    }
  });

  it('leases: granting needs a user; revoking needs write on every attached key', async () => {
    expect(await failure((await as(null, 1)).call('Lease', 'LeaseGrant', { TTL: 30 }))).toEqual(USER_EMPTY);
    const alice = await as('alice', 1);
    const { ID } = await alice.call<{ ID: string }>('Lease', 'LeaseGrant', { TTL: 30 });
    await alice.put('/app/leased', 'x', { lease: ID });
    const bob = await as('bob', 2);
    // bob may read the key, so he may see the lease's keys, but he may not revoke it.
    const ttl = await bob.call<{ keys: Buffer[] }>('Lease', 'LeaseTimeToLive', { ID, keys: true });
    expect(ttl.keys.map(String)).toEqual(['/app/leased']);
    expect(await failure(bob.call('Lease', 'LeaseRevoke', { ID }))).toEqual(DENIED);
    const carol = await as('carol', 0);
    expect(await failure(carol.call('Lease', 'LeaseTimeToLive', { ID, keys: true }))).toEqual(DENIED);
    // Nor may he put his own /logs/ key on that lease: he could not revoke it (etcd's checkLeasePuts).
    expect(await failure(bob.put('/logs/on-lease', 'x', { lease: ID }))).toEqual(DENIED);
    await alice.call('Lease', 'LeaseRevoke', { ID });
    expect((await alice.get('/app/leased')).kvs).toHaveLength(0);
  });

  it('locks and elections: only within a readable and writable prefix; errors as etcd\'s lock service sends them', async () => {
    const alice = await as('alice', 2);
    const lock = await alice.call<{ key: Buffer }>('Lock', 'Lock', { name: b('/app/lock') }, 10_000);
    expect(String(lock.key)).toMatch(/^\/app\/lock\//);
    await alice.call('Lock', 'Unlock', { key: lock.key });
    const deniedLock = await failure((await as('carol', 1)).call('Lock', 'Lock', { name: b('/app/lock') }));
    expect(deniedLock).toEqual({ code: 2, details: DENIED.details }); // UNKNOWN, etcd's text
    expect((await failure(alice.call('Lock', 'Lock', { name: b('/other-lock') }))).details).toBe(DENIED.details);

    const { leader } = await alice.call<{ leader: object }>('Election', 'Campaign', { name: b('/app/elect'), value: b('alice') }, 10_000);
    const bob = await as('bob', 0);
    const seen = await bob.call<{ kv: { value: Buffer } }>('Election', 'Leader', { name: b('/app/elect') });
    expect(String(seen.kv.value)).toBe('alice');
    expect((await failure(bob.call('Election', 'Proclaim', { leader, value: b('bob') }))).details).toBe(DENIED.details);
    expect((await failure((await as('carol', 1)).call('Election', 'Leader', { name: b('/app/elect') }))).details).toBe(DENIED.details);
    await alice.call('Election', 'Resign', { leader });
  });
});

describe('auth management rules', () => {
  it('only root manages; a user may read itself and its own roles', async () => {
    const alice = await as('alice', 1);
    expect(await failure(alice.call('Auth', 'UserAdd', { name: 'mallory', password: 'x' }))).toEqual(DENIED);
    expect(await failure(alice.call('Auth', 'UserGrantRole', { user: 'alice', role: 'root' }))).toEqual(DENIED);
    expect(await failure(alice.call('Auth', 'AuthDisable', {}))).toEqual(DENIED);
    expect(await failure(alice.call('Auth', 'UserList', {}))).toEqual(DENIED);
    expect((await alice.call<{ roles: string[] }>('Auth', 'UserGet', { name: 'alice' })).roles).toEqual(['app-rw']);
    expect(await failure(alice.call('Auth', 'UserGet', { name: 'root' }))).toEqual(DENIED);
    const role = await alice.call<{ perm: Array<{ permType: string; key: Buffer; range_end: Buffer }> }>('Auth', 'RoleGet', { role: 'app-rw' });
    expect(role.perm.map((p) => [p.permType, String(p.key), String(p.range_end)])).toEqual([['READWRITE', '/app/', '/app0']]);
    expect(await failure(alice.call('Auth', 'RoleGet', { role: 'logs-w' }))).toEqual(DENIED);
    expect(await failure((await as(null, 2)).call('Auth', 'UserList', {}))).toEqual(USER_EMPTY);
  });

  it('membership changes and leadership moves need root; member list does not', async () => {
    const alice = await as('alice', 1);
    const learner = { peerURLs: ['http://127.0.0.1:1'], isLearner: true };
    expect(await failure(alice.call('Cluster', 'MemberAdd', learner))).toEqual(DENIED);
    expect(await failure(alice.call('Maintenance', 'MoveLeader', { targetID: '1' }))).toEqual(DENIED);
    expect((await (await as(null, 2)).call<{ members: unknown[] }>('Cluster', 'MemberList', {})).members).toHaveLength(3);
    const root = await as('root', 1); // a follower or the leader: either forwards or decides
    const added = await root.call<{ member: { ID: string } }>('Cluster', 'MemberAdd', learner);
    await root.call('Cluster', 'MemberRemove', { ID: added.member.ID });
  });

  it('etcd\'s errors for management mistakes, and root stays in place while auth is on', async () => {
    const root = await as('root', 2);
    const fp = { code: 9 };
    expect(await failure(root.call('Auth', 'UserAdd', { name: 'alice', password: 'x' }))).toEqual({ ...fp, details: 'etcdserver: user name already exists' });
    expect(await failure(root.call('Auth', 'UserAdd', { name: '', password: 'x' }))).toEqual({ code: 3, details: 'etcdserver: user name is empty' });
    expect(await failure(root.call('Auth', 'UserGet', { name: 'nobody' }))).toEqual({ ...fp, details: 'etcdserver: user name not found' });
    expect(await failure(root.call('Auth', 'RoleAdd', { name: 'app-rw' }))).toEqual({ ...fp, details: 'etcdserver: role name already exists' });
    expect(await failure(root.call('Auth', 'RoleGet', { role: 'nope' }))).toEqual({ ...fp, details: 'etcdserver: role name not found' });
    expect(await failure(root.call('Auth', 'UserRevokeRole', { name: 'alice', role: 'logs-w' }))).toEqual({ ...fp, details: 'etcdserver: role is not granted to the user' });
    expect(await failure(root.call('Auth', 'RoleRevokePermission', { role: 'app-rw', key: b('/zzz') }))).toEqual({ ...fp, details: 'etcdserver: permission is not granted to the role' });
    expect(await failure(root.call('Auth', 'UserDelete', { name: 'root' }))).toEqual({ code: 3, details: 'etcdserver: invalid auth management' });
    expect(await failure(root.call('Auth', 'UserRevokeRole', { name: 'root', role: 'root' }))).toEqual({ code: 3, details: 'etcdserver: invalid auth management' });
    const users = await root.call<{ users: string[] }>('Auth', 'UserList', {});
    expect(users.users).toEqual(['alice', 'bob', 'carol', 'root']);
    const status = await root.call<{ enabled: boolean; authRevision: string }>('Auth', 'AuthStatus', {});
    expect(status.enabled).toBe(true);
    expect(Number(status.authRevision)).toBeGreaterThan(10);
  });

  it('a revoked role stops working on every member at once; a re-grant restores it', async () => {
    const root = await as('root', 0);
    const alice = await as('alice', 2);
    await alice.put('/app/before', 'x');
    await root.call('Auth', 'UserRevokeRole', { name: 'alice', role: 'app-rw' });
    // The revoke is acknowledged before these requests are sent, so no member may let them through.
    for (let i = 0; i < 3; i++) {
      const a = new AuthClient(cluster.addressOf(i));
      clients.push(a);
      a.token = alice.token;
      expect(await failure(a.put('/app/after', 'x'))).toEqual(DENIED);
      expect(await failure(a.get('/app/before'))).toEqual(DENIED);
    }
    await root.call('Auth', 'UserGrantRole', { user: 'alice', role: 'app-rw' });
    await alice.put('/app/after', 'x');
  });
});

describe('validation and compaction', () => {
  it('a malformed request gets its validation error before any permission error, as in etcd', async () => {
    const anon = await as(null, 1);
    expect(await failure(anon.get(''))).toEqual({ code: 3, details: 'etcdserver: key is not provided' });
    expect(await failure(anon.put('', 'x'))).toEqual({ code: 3, details: 'etcdserver: key is not provided' });
    const carol = await as('carol', 2);
    const dup = { compare: [], success: [putOp('/x'), putOp('/x')], failure: [] };
    expect(await failure(carol.call('KV', 'Txn', dup))).toEqual({ code: 3, details: 'etcdserver: duplicate key given in txn request' });
  });

  it('compaction takes an authenticated user, not root (as etcd: kube-apiserver compacts as its own user)', async () => {
    const root = await as('root', 0);
    const { header } = await root.put('/app/compact-me', 'x');
    expect(await failure((await as(null, 1)).call('KV', 'Compact', { revision: header.revision }))).toEqual(USER_EMPTY);
    await (await as('carol', 2)).call('KV', 'Compact', { revision: header.revision });
  });
});

describe('passwords and tokens', () => {
  it('wrong passwords and unknown users fail alike', async () => {
    const c = await as(null, 1);
    expect(await failure(c.login('alice', 'wrong'))).toEqual(AUTH_FAILED);
    expect(await failure(c.login('alice', ''))).toEqual(AUTH_FAILED);
    expect(await failure(c.login('nobody', 'alice-pw'))).toEqual(AUTH_FAILED);
    await c.login('alice', 'alice-pw');
  });

  it('a token from one member works on every member; a forged one does not', async () => {
    const c = await as('bob', 0);
    for (let i = 0; i < 3; i++) {
      const other = new AuthClient(cluster.addressOf(i));
      clients.push(other);
      other.token = c.token;
      expect((await other.get('/app/k')).kvs.length).toBe(1);
      other.token = `${c.token!.slice(0, -4)}AAAA`;
      expect(await failure(other.get('/app/k'))).toEqual(INVALID_TOKEN);
      other.token = 'not-a-token';
      expect(await failure(other.get('/app/k'))).toEqual(INVALID_TOKEN);
    }
  });

  it('changing a password voids the tokens issued before', async () => {
    const root = await as('root', 0);
    const carol = await as('carol', 1);
    await carol.call('Lease', 'LeaseGrant', { TTL: 30 }); // a valid token
    await root.call('Auth', 'UserChangePassword', { name: 'carol', password: 'carol-pw-2' });
    expect(await failure(carol.call('Lease', 'LeaseGrant', { TTL: 30 }))).toEqual(INVALID_TOKEN);
    expect(await failure(carol.login('carol', 'carol-pw'))).toEqual(AUTH_FAILED);
    await carol.login('carol', 'carol-pw-2');
    await carol.call('Lease', 'LeaseGrant', { TTL: 30 });
    await root.call('Auth', 'UserChangePassword', { name: 'carol', password: PASSWORDS.carol });
  });
});

describe('restart', () => {
  it('auth state survives a restart of every member', async () => {
    const alice = await as('alice', 0);
    const token = alice.token;
    for (let i = 0; i < 3; i++) await cluster.stopMember(i);
    for (let i = 0; i < 3; i++) cluster.startMember(i);
    await cluster.waitReady();
    for (let i = 0; i < 3; i++) {
      const c = new AuthClient(cluster.addressOf(i));
      clients.push(c);
      c.token = token; // the replicated secret survived too
      await c.put('/app/after-restart', String(i));
      expect(await failure(c.put('/other', 'x'))).toEqual(DENIED);
      c.token = null;
      expect(await failure(c.get('/app/k'))).toEqual(USER_EMPTY);
    }
    const root = await as('root', 2);
    expect((await root.call<{ enabled: boolean }>('Auth', 'AuthStatus', {})).enabled).toBe(true);
    await root.call('Auth', 'AuthDisable', {});
    expect((await (await as(null, 1)).get('/other')).kvs.length).toBe(1);
  });
});

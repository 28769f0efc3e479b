import { describe, expect, it } from 'vitest';
import { AuthError, AuthStore, type AuthErrorCode } from './auth-store.ts';

const b = (s: string): Buffer => Buffer.from(s);
const SECRET = Buffer.alloc(32, 7);

function refusal(fn: () => void): AuthErrorCode | null {
  try {
    fn();
    return null;
  } catch (err) {
    if (err instanceof AuthError) return err.code;
    throw err;
  }
}

/** A store with root (root role), alice (role app: READWRITE on /app/ prefix) and auth on. */
function populated(): AuthStore {
  const s = new AuthStore();
  s.userAdd('root', 'hash-root', false);
  s.userGrantRole('root', 'root');
  s.userAdd('alice', 'hash-alice', false);
  s.roleAdd('app');
  s.roleGrantPermission('app', { permType: 'READWRITE', key: b('/app/'), rangeEnd: b('/app0') });
  s.userGrantRole('alice', 'app');
  s.enable(SECRET);
  return s;
}

/** Replays the store's persisted records into a fresh store (what a restart does). */
function restart(s: AuthStore, earlier: Map<string, Buffer> = new Map()): AuthStore {
  for (const op of s.drainPersistOps()) {
    if (op.value) earlier.set(op.key.toString('hex'), op.value);
    else earlier.delete(op.key.toString('hex'));
  }
  return AuthStore.restore([...earlier].map(([k, v]) => [Buffer.from(k, 'hex'), v] as [Buffer, Buffer]));
}

describe('auth store (etcd rules)', () => {
  it('enabling needs a root user that holds the root role', () => {
    const s = new AuthStore();
    expect(refusal(() => s.enable(SECRET))).toBe('ROOT_USER_NOT_EXIST');
    s.userAdd('root', 'h', false);
    expect(refusal(() => s.enable(SECRET))).toBe('ROOT_ROLE_NOT_EXIST');
    s.userGrantRole('root', 'root'); // granted before a role named root exists, as etcd allows
    s.enable(SECRET);
    expect(s.enabled).toBe(true);
    expect(s.tokenSecret.equals(SECRET)).toBe(true);
  });

  it('refuses with etcd\'s errors', () => {
    const s = populated();
    expect(refusal(() => s.userAdd('', 'h', false))).toBe('USER_EMPTY');
    expect(refusal(() => s.userAdd('alice', 'h', false))).toBe('USER_ALREADY_EXIST');
    expect(refusal(() => s.userDelete('bob'))).toBe('USER_NOT_FOUND');
    expect(refusal(() => s.userGrantRole('bob', 'app'))).toBe('USER_NOT_FOUND');
    expect(refusal(() => s.userGrantRole('alice', 'nope'))).toBe('ROLE_NOT_FOUND');
    expect(refusal(() => s.userRevokeRole('alice', 'other'))).toBe('ROLE_NOT_GRANTED');
    expect(refusal(() => s.roleAdd(''))).toBe('ROLE_EMPTY');
    expect(refusal(() => s.roleAdd('app'))).toBe('ROLE_ALREADY_EXIST');
    expect(refusal(() => s.roleDelete('nope'))).toBe('ROLE_NOT_FOUND');
    expect(refusal(() => s.roleGrantPermission('nope', { permType: 'READ', key: b('k'), rangeEnd: b('') }))).toBe('ROLE_NOT_FOUND');
    expect(refusal(() => s.roleGrantPermission('app', null))).toBe('PERMISSION_NOT_GIVEN');
    expect(refusal(() => s.roleGrantPermission('app', { permType: 'READ', key: b('z'), rangeEnd: b('a') }))).toBe('INVALID_AUTH_MGMT');
    expect(refusal(() => s.roleRevokePermission('app', b('/other/'), b('/other0')))).toBe('PERMISSION_NOT_GRANTED');
  });

  it('keeps root usable while auth is on', () => {
    const s = populated();
    expect(refusal(() => s.userDelete('root'))).toBe('INVALID_AUTH_MGMT');
    expect(refusal(() => s.userRevokeRole('root', 'root'))).toBe('INVALID_AUTH_MGMT');
    s.roleAdd('root');
    expect(refusal(() => s.roleDelete('root'))).toBe('INVALID_AUTH_MGMT');
    s.disable();
    s.userRevokeRole('root', 'root'); // allowed once auth is off
    expect(s.getUser('root')!.roles).toEqual([]);
  });

  it('decides access: root everything, users their roles\' ranges, nobody without a name', () => {
    const s = populated();
    expect(s.checkAccess('root', 'write', b('anything'), b(''))).toBeNull();
    expect(s.checkAccess('alice', 'write', b('/app/x'), b(''))).toBeNull();
    expect(s.checkAccess('alice', 'read', b('/app/'), b('/app0'))).toBeNull();
    expect(s.checkAccess('alice', 'read', b('/other'), b(''))).toBe('PERMISSION_DENIED');
    expect(s.checkAccess('', 'read', b('/app/x'), b(''))).toBe('USER_EMPTY');
    expect(s.checkAccess('ghost', 'read', b('/app/x'), b(''))).toBe('PERMISSION_DENIED');
    expect(s.checkAdmin('alice')).toBe('PERMISSION_DENIED');
    expect(s.checkAdmin('ghost')).toBe('USER_NOT_FOUND');
    expect(s.checkAdmin('root')).toBeNull();
    s.disable();
    expect(s.checkAccess('', 'write', b('/other'), b(''))).toBeNull();
  });

  it('a deleted role leaves its users; a regranted range replaces its type', () => {
    const s = populated();
    s.roleGrantPermission('app', { permType: 'READ', key: b('/app/'), rangeEnd: b('/app0') });
    expect(s.getRole('app')!.permissions).toHaveLength(1);
    expect(s.checkAccess('alice', 'write', b('/app/x'), b(''))).toBe('PERMISSION_DENIED');
    s.roleDelete('app');
    expect(s.getUser('alice')!.roles).toEqual([]);
    expect(s.checkAccess('alice', 'read', b('/app/x'), b(''))).toBe('PERMISSION_DENIED');
  });

  it('bumps the revision on each change, not on ignored ones; password changes move the credential revision', () => {
    const s = populated();
    const rev = s.revision;
    s.userGrantRole('alice', 'app'); // already granted: ignored
    s.enable(SECRET); // already on: ignored
    expect(s.revision).toBe(rev);
    const before = s.getUser('alice')!.credentialRevision;
    s.userChangePassword('alice', 'new-hash');
    expect(s.getUser('alice')!.credentialRevision).toBeGreaterThan(before);
    expect(s.revision).toBeGreaterThan(rev);
  });

  it('survives a restart from its persisted records', () => {
    const s = populated();
    const records = new Map<string, Buffer>();
    const again = restart(s, records);
    expect(again.enabled).toBe(true);
    expect(again.revision).toBe(s.revision);
    expect(again.tokenSecret.equals(SECRET)).toBe(true);
    expect(again.userNames()).toEqual(['alice', 'root']);
    expect(again.getRole('app')!.permissions[0].key.equals(b('/app/'))).toBe(true);
    expect(again.checkAccess('alice', 'write', b('/app/x'), b(''))).toBeNull();
    // Deletions persist too.
    s.userDelete('alice');
    s.roleDelete('app');
    const third = restart(s, records);
    expect(third.userNames()).toEqual(['root']);
    expect(third.roleNames()).toEqual([]);
  });

  it('shows the root role as "everything", as etcd does', () => {
    const s = populated();
    s.roleAdd('root');
    const [p] = s.rolePermissions('root');
    expect(p.permType).toBe('READWRITE');
    expect(p.rangeEnd.equals(Buffer.from([0]))).toBe(true);
  });
});

describe('an auth store imported from an etcd snapshot', () => {
  const imported = (): AuthStore =>
    AuthStore.imported({
      enabled: true,
      revision: 8,
      users: [{ name: 'root', passwordHash: 'bcrypt-root', noPassword: false, roles: ['root'], credentialRevision: 8 }],
      roles: [{ name: 'r', permissions: [{ permType: 'READ', key: b('b'), rangeEnd: b('c') }, { permType: 'WRITE', key: b('a'), rangeEnd: b('') }] }],
    });

  it('keeps etcd\'s users, roles and auth revision, and is on with no token secret', () => {
    const s = AuthStore.restore(imported().records());
    expect(s.enabled).toBe(true);
    expect(s.revision).toBe(8);
    expect(s.tokenSecret.length).toBe(0);
    expect(s.getUser('root')?.passwordHash).toBe('bcrypt-root');
    expect(s.getRole('r')?.permissions.map((p) => p.key.toString())).toEqual(['a', 'b']); // sorted, as etcd keeps them
    expect(s.checkAdmin('root')).toBeNull();
  });

  it('takes the first enable entry\'s secret, keeps it over later ones and a restart, and bumps nothing', () => {
    const s = imported();
    s.enable(SECRET);
    expect(s.tokenSecret.equals(SECRET)).toBe(true);
    s.enable(Buffer.alloc(32, 9)); // a second member's first Authenticate, applied after the first
    expect(s.tokenSecret.equals(SECRET)).toBe(true);
    expect(s.revision).toBe(8);
    const again = restart(s, new Map(imported().records().map(([k, v]) => [k.toString('hex'), v])));
    expect(again.tokenSecret.equals(SECRET)).toBe(true);
    expect(again.enabled).toBe(true);
  });
});

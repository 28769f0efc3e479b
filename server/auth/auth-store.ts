// The replicated half of auth: whether auth is on, users (password hash, roles), roles (key-range
// permissions), the auth revision, and the secret that signs tokens. Every member applies the same
// auth entries in log order, so every member holds the same state at the same applied index. The rules
// follow etcd's auth store (server/auth/store.go): the `root` user and role, what may not be deleted
// while auth is on, which changes are silently ignored. Refusals are AuthErrors named after etcd's
// errors; the API layer turns them into etcd's gRPC statuses.
import { MIN_TOKEN_SECRET_BYTES } from './token.ts';
import { isValidPermissionRange, permits, samePermissionRange, type Access, type KeyPermission, type PermType } from './permissions.ts';

/** Auth records live in the group's state keyspace under this prefix. */
export const AUTH_RECORD_PREFIX = 0x61; // 'a'

export const ROOT_USER = 'root';
export const ROOT_ROLE = 'root';

/** Names of etcd errors (keys of etcd/errors.ts ETCD_ERRORS) an auth decision can end in. */
export type AuthErrorCode =
  | 'ROOT_USER_NOT_EXIST'
  | 'ROOT_ROLE_NOT_EXIST'
  | 'USER_ALREADY_EXIST'
  | 'USER_EMPTY'
  | 'USER_NOT_FOUND'
  | 'ROLE_ALREADY_EXIST'
  | 'ROLE_NOT_FOUND'
  | 'ROLE_EMPTY'
  | 'AUTH_FAILED'
  | 'PERMISSION_NOT_GIVEN'
  | 'PERMISSION_DENIED'
  | 'ROLE_NOT_GRANTED'
  | 'PERMISSION_NOT_GRANTED'
  | 'AUTH_NOT_ENABLED'
  | 'INVALID_AUTH_TOKEN'
  | 'INVALID_AUTH_MGMT';

export class AuthError extends Error {
  readonly code: AuthErrorCode;
  constructor(code: AuthErrorCode) {
    super(code);
    this.name = 'AuthError';
    this.code = code;
  }
}

export interface UserRecord {
  name: string;
  /** password.ts encoding; empty for a user created with no_password. */
  passwordHash: string;
  noPassword: boolean;
  /** Sorted, no duplicates. */
  roles: string[];
  /** Auth revision of the user's creation or last password change: older tokens are void. */
  credentialRevision: number;
}

export interface RoleRecord {
  name: string;
  /** Sorted by key, then range end (etcd keeps them sorted too). */
  permissions: KeyPermission[];
}

interface Meta {
  enabled: boolean;
  revision: number;
  secret: string; // hex; empty until auth is first enabled
}

const USER_TAG = 0x75; // 'u'
const ROLE_TAG = 0x72; // 'r'
const META_TAG = 0x6d; // 'm'

function recordKey(tag: number, name: string): Buffer {
  return Buffer.concat([Buffer.from([tag]), Buffer.from(name, 'utf8')]);
}

function encodeRole(role: RoleRecord): Buffer {
  return Buffer.from(
    JSON.stringify({
      name: role.name,
      permissions: role.permissions.map((p) => ({ t: p.permType, k: p.key.toString('base64'), e: p.rangeEnd.toString('base64') })),
    }),
  );
}

function decodeRole(value: Buffer): RoleRecord {
  const raw = JSON.parse(value.toString('utf8')) as { name: string; permissions: Array<{ t: PermType; k: string; e: string }> };
  return {
    name: raw.name,
    permissions: raw.permissions.map((p) => ({ permType: p.t, key: Buffer.from(p.k, 'base64'), rangeEnd: Buffer.from(p.e, 'base64') })),
  };
}

function comparePermissions(a: KeyPermission, b: KeyPermission): number {
  return Buffer.compare(a.key, b.key) || Buffer.compare(a.rangeEnd, b.rangeEnd);
}

export class AuthStore {
  private enabledFlag = false;
  private rev = 0;
  private secret: Buffer = Buffer.alloc(0);
  private readonly users = new Map<string, UserRecord>();
  private readonly roles = new Map<string, RoleRecord>();
  private persist: Array<{ key: Buffer; value: Buffer | null }> = [];

  static restore(records: Iterable<[Buffer, Buffer]>): AuthStore {
    const store = new AuthStore();
    for (const [key, value] of records) {
      const name = key.subarray(1).toString('utf8');
      if (key[0] === USER_TAG) store.users.set(name, JSON.parse(value.toString('utf8')) as UserRecord);
      else if (key[0] === ROLE_TAG) store.roles.set(name, decodeRole(value));
      else if (key[0] === META_TAG) {
        const meta = JSON.parse(value.toString('utf8')) as Meta;
        store.enabledFlag = meta.enabled;
        store.rev = meta.revision;
        store.secret = Buffer.from(meta.secret, 'hex');
      } else throw new Error(`unknown auth record tag ${key[0]}`);
    }
    return store;
  }

  /**
   * Another system's auth state (an etcd snapshot's, server/cli/etcd-snapshot-import.ts), with no token
   * secret: a store enabled without one issues no token until the first Authenticate lays one through
   * the log (`enable` on an enabled store with no secret).
   */
  static imported(state: { enabled: boolean; revision: number; users: UserRecord[]; roles: RoleRecord[] }): AuthStore {
    const store = new AuthStore();
    store.enabledFlag = state.enabled;
    store.rev = state.revision;
    for (const user of state.users) store.users.set(user.name, { ...user, roles: [...new Set(user.roles)].sort() });
    for (const role of state.roles) store.roles.set(role.name, { ...role, permissions: [...role.permissions].sort(comparePermissions) });
    return store;
  }

  /** The state `imported` takes, for writing it in another system's form (an etcd snapshot's buckets). */
  exported(): { enabled: boolean; revision: number; users: UserRecord[]; roles: RoleRecord[] } {
    const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    return { enabled: this.enabledFlag, revision: this.rev, users: [...this.users.values()].sort(byName), roles: [...this.roles.values()].sort(byName) };
  }

  get enabled(): boolean {
    return this.enabledFlag;
  }

  /** etcd's auth revision: bumped by every change to auth state. */
  get revision(): number {
    return this.rev;
  }

  /** The token-signing secret (empty before auth was first enabled). */
  get tokenSecret(): Buffer {
    return this.secret;
  }

  getUser(name: string): UserRecord | undefined {
    return this.users.get(name);
  }

  getRole(name: string): RoleRecord | undefined {
    return this.roles.get(name);
  }

  userNames(): string[] {
    return [...this.users.keys()].sort();
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort();
  }

  isRoot(user: UserRecord): boolean {
    return user.roles.includes(ROOT_ROLE);
  }

  /** The permissions of a role as AuthRoleGet shows them: root's are "everything", as in etcd. */
  rolePermissions(name: string): KeyPermission[] {
    const role = this.roles.get(name);
    if (!role) throw new AuthError('ROLE_NOT_FOUND');
    if (name === ROOT_ROLE) return [{ permType: 'READWRITE', key: Buffer.alloc(0), rangeEnd: Buffer.from([0]) }];
    return role.permissions;
  }

  // ---- decisions (etcd's isOpPermitted / IsAdminPermitted), identical on every member ----

  /** null when `username` may perform `access` on every key of (key, rangeEnd). '' is "no user". */
  checkAccess(username: string, access: Access, key: Buffer, rangeEnd: Buffer): AuthErrorCode | null {
    if (!this.enabledFlag) return null;
    if (username === '') return 'USER_EMPTY';
    const user = this.users.get(username);
    if (!user) return 'PERMISSION_DENIED';
    if (this.isRoot(user)) return null;
    const perms: KeyPermission[] = [];
    for (const roleName of user.roles) {
      const role = this.roles.get(roleName);
      if (role) perms.push(...role.permissions);
    }
    return permits(perms, access, key, rangeEnd) ? null : 'PERMISSION_DENIED';
  }

  /** null when `username` is an existing user (or auth is off): enough for leases and compaction. */
  checkAuthenticated(username: string): AuthErrorCode | null {
    if (!this.enabledFlag) return null;
    if (username === '') return 'USER_EMPTY';
    return this.users.has(username) ? null : 'PERMISSION_DENIED';
  }

  /** null when `username` holds the root role (or auth is off): user/role management, auth on/off. */
  checkAdmin(username: string): AuthErrorCode | null {
    if (!this.enabledFlag) return null;
    if (username === '') return 'USER_EMPTY';
    const user = this.users.get(username);
    if (!user) return 'USER_NOT_FOUND';
    return this.isRoot(user) ? null : 'PERMISSION_DENIED';
  }

  // ---- mutations (applied from the log) ----

  /** Turns auth on with a fresh token secret; when it is already on, only lays a secret it lacks. */
  enable(secret: Buffer): void {
    if (this.enabledFlag) {
      // Enabled with no secret (restored from an etcd snapshot, which has none to give): this entry's is
      // the cluster's from now on. Otherwise a no-op, as in etcd.
      if (this.secret.length === 0 && secret.length >= MIN_TOKEN_SECRET_BYTES) {
        this.secret = Buffer.from(secret);
        this.putMeta();
      }
      return;
    }
    const root = this.users.get(ROOT_USER);
    if (!root) throw new AuthError('ROOT_USER_NOT_EXIST');
    if (!this.isRoot(root)) throw new AuthError('ROOT_ROLE_NOT_EXIST');
    if (secret.length < MIN_TOKEN_SECRET_BYTES) throw new Error('auth enable entry carries no token secret');
    this.enabledFlag = true;
    this.secret = Buffer.from(secret);
    this.bump();
  }

  disable(): void {
    if (!this.enabledFlag) return;
    this.enabledFlag = false;
    this.bump();
  }

  userAdd(name: string, passwordHash: string, noPassword: boolean): void {
    if (name === '') throw new AuthError('USER_EMPTY');
    if (this.users.has(name)) throw new AuthError('USER_ALREADY_EXIST');
    this.rev++;
    this.putUser({ name, passwordHash: noPassword ? '' : passwordHash, noPassword, roles: [], credentialRevision: this.rev });
    this.putMeta();
  }

  userDelete(name: string): void {
    if (this.enabledFlag && name === ROOT_USER) throw new AuthError('INVALID_AUTH_MGMT');
    if (!this.users.delete(name)) throw new AuthError('USER_NOT_FOUND');
    this.persist.push({ key: recordKey(USER_TAG, name), value: null });
    this.bump();
  }

  userChangePassword(name: string, passwordHash: string): void {
    const user = this.users.get(name);
    if (!user) throw new AuthError('USER_NOT_FOUND');
    this.rev++;
    // etcd keeps the user's options: a no-password user stays one.
    this.putUser({ ...user, passwordHash: user.noPassword ? '' : passwordHash, credentialRevision: this.rev });
    this.putMeta();
  }

  userGrantRole(name: string, role: string): void {
    const user = this.users.get(name);
    if (!user) throw new AuthError('USER_NOT_FOUND');
    // etcd lets root be granted before a role named root exists.
    if (role !== ROOT_ROLE && !this.roles.has(role)) throw new AuthError('ROLE_NOT_FOUND');
    if (user.roles.includes(role)) return; // etcd ignores a repeated grant
    this.putUser({ ...user, roles: [...user.roles, role].sort() });
    this.bump();
  }

  userRevokeRole(name: string, role: string): void {
    if (this.enabledFlag && name === ROOT_USER && role === ROOT_ROLE) throw new AuthError('INVALID_AUTH_MGMT');
    const user = this.users.get(name);
    if (!user) throw new AuthError('USER_NOT_FOUND');
    if (!user.roles.includes(role)) throw new AuthError('ROLE_NOT_GRANTED');
    this.putUser({ ...user, roles: user.roles.filter((r) => r !== role) });
    this.bump();
  }

  roleAdd(name: string): void {
    if (name === '') throw new AuthError('ROLE_EMPTY');
    if (this.roles.has(name)) throw new AuthError('ROLE_ALREADY_EXIST');
    this.putRole({ name, permissions: [] });
    this.bump();
  }

  roleDelete(name: string): void {
    if (this.enabledFlag && name === ROOT_ROLE) throw new AuthError('INVALID_AUTH_MGMT');
    if (!this.roles.delete(name)) throw new AuthError('ROLE_NOT_FOUND');
    this.persist.push({ key: recordKey(ROLE_TAG, name), value: null });
    // A deleted role leaves every user that had it.
    for (const user of this.users.values()) {
      if (user.roles.includes(name)) this.putUser({ ...user, roles: user.roles.filter((r) => r !== name) });
    }
    this.bump();
  }

  roleGrantPermission(name: string, perm: KeyPermission | null): void {
    const role = this.roles.get(name);
    if (!role) throw new AuthError('ROLE_NOT_FOUND');
    if (!perm) throw new AuthError('PERMISSION_NOT_GIVEN');
    if (!isValidPermissionRange(perm.key, perm.rangeEnd)) throw new AuthError('INVALID_AUTH_MGMT');
    // Granting the same range again replaces its type, as in etcd.
    const others = role.permissions.filter((p) => !samePermissionRange(p, perm));
    const permissions = [...others, { permType: perm.permType, key: Buffer.from(perm.key), rangeEnd: Buffer.from(perm.rangeEnd) }];
    this.putRole({ name, permissions: permissions.sort(comparePermissions) });
    this.bump();
  }

  roleRevokePermission(name: string, key: Buffer, rangeEnd: Buffer): void {
    const role = this.roles.get(name);
    if (!role) throw new AuthError('ROLE_NOT_FOUND');
    const kept = role.permissions.filter((p) => !samePermissionRange(p, { key, rangeEnd }));
    if (kept.length === role.permissions.length) throw new AuthError('PERMISSION_NOT_GRANTED');
    this.putRole({ name, permissions: kept });
    this.bump();
  }

  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }> {
    const ops = this.persist;
    this.persist = [];
    return ops;
  }

  /** The whole state as the records `restore` reads (a backup of a sharded cluster takes it from memory). */
  records(): Array<[Buffer, Buffer]> {
    const meta: Meta = { enabled: this.enabledFlag, revision: this.rev, secret: this.secret.toString('hex') };
    return [
      [Buffer.from([META_TAG]), Buffer.from(JSON.stringify(meta))],
      ...[...this.users.values()].map((u): [Buffer, Buffer] => [recordKey(USER_TAG, u.name), Buffer.from(JSON.stringify(u))]),
      ...[...this.roles.values()].map((r): [Buffer, Buffer] => [recordKey(ROLE_TAG, r.name), encodeRole(r)]),
    ];
  }

  private putUser(user: UserRecord): void {
    this.users.set(user.name, user);
    this.persist.push({ key: recordKey(USER_TAG, user.name), value: Buffer.from(JSON.stringify(user)) });
  }

  private putRole(role: RoleRecord): void {
    this.roles.set(role.name, role);
    this.persist.push({ key: recordKey(ROLE_TAG, role.name), value: encodeRole(role) });
  }

  private bump(): void {
    this.rev++;
    this.putMeta();
  }

  private putMeta(): void {
    const meta: Meta = { enabled: this.enabledFlag, revision: this.rev, secret: this.secret.toString('hex') };
    this.persist.push({ key: Buffer.from([META_TAG]), value: Buffer.from(JSON.stringify(meta)) });
  }
}

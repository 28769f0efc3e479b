// etcd's backend schema for what is not the key bucket (facts of etcd's bbolt layout), both ways: the
// bucket and key names, leases (leasepb.Lease) and auth (authpb.User, authpb.Role, the enabled flag and
// the auth revision). Synod's backups write it (etcd-backup.ts) and `synod snapshot restore` reads it
// (cli/etcd-snapshot-import.ts), whoever wrote the file. The key bucket's records: mvcc/etcd-records.ts.
import protobuf from 'protobufjs';
import type { RoleRecord, UserRecord } from '../auth/auth-store.ts';
import type { PermType } from '../auth/permissions.ts';
import { protoMessageRoot } from '../protobuf/proto-schemas.ts';

export const BUCKET = {
  key: 'key',
  meta: 'meta',
  lease: 'lease',
  auth: 'auth',
  authUsers: 'authUsers',
  authRoles: 'authRoles',
  alarm: 'alarm',
  members: 'members',
  membersRemoved: 'members_removed',
  /** Synod's own: its BackupHeader as JSON under SYNOD_HEADER_KEY. etcd carries it along unread. */
  synod: 'synod',
} as const;
export const SYNOD_HEADER_KEY = 'backup';
export const FINISHED_COMPACT_REV = 'finishedCompactRev';
export const SCHEDULED_COMPACT_REV = 'scheduledCompactRev';
const AUTH_ENABLED = 'authEnabled';
const AUTH_REVISION = 'authRevision';
const PERM_TYPES: readonly PermType[] = ['READ', 'WRITE', 'READWRITE'];

export interface EtcdLease {
  id: bigint;
  ttlSeconds: number;
  remainingTtlSeconds: number;
}

/** A lease's entry in the lease bucket: its id (int64 big-endian) → leasepb.Lease {ID = 1, TTL = 2, RemainingTTL = 3}. */
export function encodeEtcdLease(lease: EtcdLease): [Buffer, Buffer] {
  const key = Buffer.alloc(8);
  key.writeBigInt64BE(lease.id);
  const value = protobuf.Writer.create().uint32(8).int64(lease.id.toString()).uint32(16).int64(lease.ttlSeconds).uint32(24).int64(lease.remainingTtlSeconds).finish();
  return [key, Buffer.from(value)];
}

function safeCount(n: bigint, what: string): number {
  if (n < 0n || n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`etcd snapshot: ${what} ${n} out of range`);
  return Number(n);
}

export function decodeEtcdLease(value: Buffer): EtcdLease {
  const reader = protobuf.Reader.create(value);
  const lease: EtcdLease = { id: 0n, ttlSeconds: 0, remainingTtlSeconds: 0 };
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if ((tag & 7) !== 0) {
      reader.skipType(tag & 7);
      continue;
    }
    const n = BigInt(reader.int64().toString());
    const field = tag >>> 3;
    if (field === 1) lease.id = n;
    else if (field === 2) lease.ttlSeconds = safeCount(n, 'lease TTL');
    else if (field === 3) lease.remainingTtlSeconds = safeCount(n, 'lease remaining TTL');
  }
  if (lease.id <= 0n) throw new Error(`etcd snapshot: lease id ${lease.id} out of range`);
  return lease;
}

export interface EtcdAuth {
  enabled: boolean;
  revision: number;
  users: UserRecord[];
  roles: RoleRecord[];
}

/** The three auth buckets' entries. Users keep their password hashes as they are (bcrypt or Synod's scrypt). */
export function encodeEtcdAuth(auth: EtcdAuth): { auth: Array<[Buffer, Buffer]>; authUsers: Array<[Buffer, Buffer]>; authRoles: Array<[Buffer, Buffer]> } {
  const root = protoMessageRoot();
  const userType = root.lookupType('authpb.User');
  const roleType = root.lookupType('authpb.Role');
  const revision = Buffer.alloc(8);
  revision.writeBigUInt64BE(BigInt(auth.revision));
  return {
    auth: [
      [Buffer.from(AUTH_ENABLED), Buffer.from([auth.enabled ? 1 : 0])],
      [Buffer.from(AUTH_REVISION), revision],
    ],
    authUsers: auth.users.map((u) => [
      Buffer.from(u.name),
      Buffer.from(userType.encode(userType.fromObject({ name: Buffer.from(u.name), password: Buffer.from(u.passwordHash), roles: u.roles, options: { no_password: u.noPassword } })).finish()),
    ]),
    authRoles: auth.roles.map((r) => [
      Buffer.from(r.name),
      Buffer.from(
        roleType
          .encode(roleType.fromObject({ name: Buffer.from(r.name), keyPermission: r.permissions.map((p) => ({ permType: PERM_TYPES.indexOf(p.permType), key: p.key, range_end: p.rangeEnd })) }))
          .finish(),
      ),
    ]),
  };
}

/** The auth buckets' values back as Synod's auth state; null when they hold nothing (auth never used). */
export function decodeEtcdAuth(auth: Iterable<[Buffer, Buffer]>, userValues: Iterable<Buffer>, roleValues: Iterable<Buffer>): EtcdAuth | null {
  const root = protoMessageRoot();
  const userType = root.lookupType('authpb.User');
  const roleType = root.lookupType('authpb.Role');
  let enabled = false;
  let revision = 0;
  for (const [key, value] of auth) {
    if (key.toString() === AUTH_ENABLED) enabled = value.length === 1 && value[0] === 1;
    else if (key.toString() === AUTH_REVISION && value.length === 8) revision = safeCount(value.readBigUInt64BE(0), 'auth revision');
  }
  const users: UserRecord[] = [];
  for (const value of userValues) {
    const u = userType.toObject(userType.decode(value), { defaults: true }) as { name: Buffer; password: Buffer; roles: string[]; options?: { no_password?: boolean } };
    // etcd keeps no per-user credential revision: tokens issued before the restore are void anyway.
    users.push({ name: u.name.toString('utf8'), passwordHash: u.password.toString('utf8'), noPassword: u.options?.no_password === true, roles: [...new Set(u.roles)].sort(), credentialRevision: revision });
  }
  const roles: RoleRecord[] = [];
  for (const value of roleValues) {
    const r = roleType.toObject(roleType.decode(value), { defaults: true, enums: Number }) as { name: Buffer; keyPermission: Array<{ permType: number; key: Buffer; range_end: Buffer }> };
    roles.push({
      name: r.name.toString('utf8'),
      permissions: r.keyPermission.map((p) => {
        const permType = PERM_TYPES[p.permType];
        if (permType === undefined) throw new Error(`etcd snapshot: role ${r.name.toString()} has an unknown permission type ${p.permType}`);
        return { permType, key: p.key, rangeEnd: p.range_end };
      }),
    });
  }
  if (users.length === 0 && roles.length === 0 && !enabled && revision === 0) return null;
  return { enabled, revision, users, roles };
}

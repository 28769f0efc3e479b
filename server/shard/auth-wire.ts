// TypeScript shapes of etcd's Auth messages as @grpc/proto-loader and request-codec deliver them
// (keepCase, bytes as Buffer, enums as names, defaults filled in), and the auth variants of what a
// Raft entry carries (synod.internal.InternalRequest).
import type { PermType } from '../auth/permissions.ts';

export interface WirePermission {
  permType: PermType;
  key: Buffer;
  range_end: Buffer;
}

export interface AuthUserAddRequest {
  name: string;
  password: string;
  options: { no_password: boolean } | null;
  hashedPassword: string;
}

export interface AuthUserChangePasswordRequest {
  name: string;
  password: string;
  hashedPassword: string;
}

export interface AuthUserGrantRoleRequest {
  user: string;
  role: string;
}

export interface AuthUserRevokeRoleRequest {
  name: string;
  role: string;
}

export interface AuthRoleGrantPermissionRequest {
  name: string;
  perm: WirePermission | null;
}

export interface AuthRoleRevokePermissionRequest {
  role: string;
  key: Buffer;
  range_end: Buffer;
}

/** Who a Raft entry was proposed for; username '' = a client without credentials. */
export interface Caller {
  username: string;
  /** The auth revision of the token presented ('0' or absent: none); see internal.proto. */
  token_revision?: string;
}

export type AuthRequestBody =
  | { auth_enable: { token_secret: Buffer } }
  | { auth_disable: Record<string, never> }
  | { auth_user_add: AuthUserAddRequest }
  | { auth_user_delete: { name: string } }
  | { auth_user_change_password: AuthUserChangePasswordRequest }
  | { auth_user_grant_role: AuthUserGrantRoleRequest }
  | { auth_user_revoke_role: AuthUserRevokeRoleRequest }
  | { auth_role_add: { name: string } }
  | { auth_role_delete: { role: string } }
  | { auth_role_grant_permission: AuthRoleGrantPermissionRequest }
  | { auth_role_revoke_permission: AuthRoleRevokePermissionRequest };

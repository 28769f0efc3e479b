// Applying the auth entries of the log to the auth store, and the apply-time permission check every
// client entry passes first. Both are pure functions of the entry and the replicated state, so every
// member takes the same decision at the same index.
import { AuthError, type AuthErrorCode, type AuthStore } from '../auth/auth-store.ts';
import type { KeyPermission } from '../auth/permissions.ts';
import type { InternalRequest } from './request-codec.ts';
import type { WirePermission } from './auth-wire.ts';
import { entryNeeds, firstRefusal, type LeaseKeys } from './request-permissions.ts';

const EMPTY = Buffer.alloc(0);

export function permissionFromWire(p: WirePermission | null | undefined): KeyPermission | null {
  if (!p) return null;
  return { permType: p.permType, key: p.key ?? EMPTY, rangeEnd: p.range_end ?? EMPTY };
}

/**
 * The refusal of a client entry by the auth state it is applied against, or null. Entries without a
 * caller were proposed by the server itself (lease expiry, checkpoints, publish) and are not checked.
 */
export function authorizeEntry(req: InternalRequest, store: AuthStore, leaseKeys: LeaseKeys): AuthErrorCode | null {
  if (!req.caller || !store.enabled) return null;
  // A token checked on a member that had not applied a later password change yet (etcd: the entry's
  // auth revision is old): every member refuses it here, at its place in the log.
  const tokenRevision = Number(req.caller.token_revision ?? 0);
  if (tokenRevision > 0) {
    const user = store.getUser(req.caller.username);
    if (!user || user.credentialRevision > tokenRevision) return 'INVALID_AUTH_TOKEN';
  }
  return firstRefusal(store, req.caller.username, entryNeeds(req, leaseKeys));
}

/** Applies an auth entry; false when the entry is not an auth entry. Refusals throw AuthError. */
export function applyAuthEntry(req: InternalRequest, store: AuthStore): boolean {
  if ('auth_enable' in req && req.auth_enable) store.enable(req.auth_enable.token_secret ?? EMPTY);
  else if ('auth_disable' in req && req.auth_disable) store.disable();
  else if ('auth_user_add' in req && req.auth_user_add) {
    const r = req.auth_user_add;
    store.userAdd(r.name, r.hashedPassword, !!r.options?.no_password);
  } else if ('auth_user_delete' in req && req.auth_user_delete) store.userDelete(req.auth_user_delete.name);
  else if ('auth_user_change_password' in req && req.auth_user_change_password) {
    store.userChangePassword(req.auth_user_change_password.name, req.auth_user_change_password.hashedPassword);
  } else if ('auth_user_grant_role' in req && req.auth_user_grant_role) {
    store.userGrantRole(req.auth_user_grant_role.user, req.auth_user_grant_role.role);
  } else if ('auth_user_revoke_role' in req && req.auth_user_revoke_role) {
    store.userRevokeRole(req.auth_user_revoke_role.name, req.auth_user_revoke_role.role);
  } else if ('auth_role_add' in req && req.auth_role_add) store.roleAdd(req.auth_role_add.name);
  else if ('auth_role_delete' in req && req.auth_role_delete) store.roleDelete(req.auth_role_delete.role);
  else if ('auth_role_grant_permission' in req && req.auth_role_grant_permission) {
    store.roleGrantPermission(req.auth_role_grant_permission.name, permissionFromWire(req.auth_role_grant_permission.perm));
  } else if ('auth_role_revoke_permission' in req && req.auth_role_revoke_permission) {
    const r = req.auth_role_revoke_permission;
    store.roleRevokePermission(r.role, r.key ?? EMPTY, r.range_end ?? EMPTY);
  } else return false;
  return true;
}

export { AuthError };

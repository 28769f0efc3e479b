// etcdserverpb.Auth: turning auth on and off, Authenticate (issues a signed token, see auth/token.ts),
// and user and role management. Changes go through Raft like any write and are checked at apply time
// (root only while auth is on); passwords are hashed here, before proposing, so only hashes are logged.
// Reads of users and roles are linearizable and follow etcd's rules: root sees everything, a user sees
// itself and the roles it holds.
import type * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { ApiContext, unary } from './context.ts';
import { ETCD_ERRORS, grpcError } from '../etcd/errors.ts';
import type { AuthGuard } from './auth-guard.ts';
import type { AuthRequestBody, AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest, AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserGrantRoleRequest, AuthUserRevokeRoleRequest, Caller } from '../shard/auth-wire.ts';
import { runAsCaller } from './caller-context.ts';
import type { Requirement } from '../shard/request-permissions.ts';
import { burnVerification, passwordHashingFor, hashPassword, isBcryptHash, isPasswordHash, verifyPassword, type PasswordHashing } from '../auth/password.ts';
import { BCRYPT_PASSWORD_RULES } from '../member/member.ts';
import { PasswordBusyError, PasswordDeadlineError } from '../auth/job-lane.ts';
import { signToken } from '../auth/token.ts';

export interface AuthServiceOptions {
  /** etcd's --auth-token-ttl: seconds a token from Authenticate stays valid. */
  tokenTtlSeconds: number;
  /** etcd's --bcrypt-cost: the cost of the bcrypt hashes made here for new passwords. */
  bcryptCost: number;
}

const ADMIN: Requirement[] = [{ kind: 'admin' }];
/** How long a new password waits for peers' hellos after a start (a stream redials within 1 s). */
const PEER_HELLO_WAIT_MS = 2_000;

/** A hashedPassword supplied by a client must be one this server can verify (scrypt or bcrypt, see password.ts). */
const UNSUPPORTED_HASH = { code: 3, message: 'etcdserver: hashedPassword must be a bcrypt hash of cost 4 to 14 (as etcd clients make) or a Synod scrypt hash' };
/** A bcrypt hashedPassword while some member could not check it at Authenticate (built before bcrypt). */
const BCRYPT_NOT_YET = { code: 9, message: 'etcdserver: a bcrypt hashedPassword needs every member to check bcrypt; upgrade every member first' };

/**
 * Password work (queued for a bcrypt worker thread or the scrypt lane) as etcd's answers: a full queue is "too many requests",
 * a request whose deadline passed in the queue "request timed out".
 */
async function passwordWork<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof PasswordBusyError) throw grpcError(ETCD_ERRORS.REQUEST_TOO_MANY_REQUESTS);
    if (err instanceof PasswordDeadlineError) throw grpcError(ETCD_ERRORS.TIMEOUT);
    throw err;
  }
}

async function passwordHashOf(password: string, hashedPassword: string, noPassword: boolean, hashing: PasswordHashing, deadlineMs: number): Promise<string> {
  if (noPassword) return '';
  if (hashedPassword) {
    if (!isPasswordHash(hashedPassword)) throw grpcError(UNSUPPORTED_HASH);
    if (isBcryptHash(hashedPassword) && hashing.kind !== 'bcrypt') throw grpcError(BCRYPT_NOT_YET);
    return hashedPassword;
  }
  return passwordWork(hashPassword(password ?? '', hashing, deadlineMs));
}

export function authService(ctx: ApiContext, guard: AuthGuard, opts: AuthServiceOptions): grpc.UntypedServiceImplementation {
  const auth = (): ApiContext['sm']['auth'] => ctx.sm.auth;
  const hashing = (): PasswordHashing => passwordHashingFor(ctx.member.clusterImplements(BCRYPT_PASSWORD_RULES), opts.bcryptCost);
  /**
   * How a new password is hashed. Just after this member started, some peer may not have said its hello
   * yet (its apply rules read as 0): wait for it a little rather than make an scrypt hash that etcd could
   * not check after a move back (the operator adds root as soon as the cluster is up).
   */
  const hashingForNewPassword = async (): Promise<PasswordHashing> => {
    const until = Date.now() + PEER_HELLO_WAIT_MS;
    while (!ctx.member.clusterImplements(BCRYPT_PASSWORD_RULES) && !ctx.member.heardFromEveryMember() && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
    return hashing();
  };

  /** A management call: resolve the caller, then run `fn` as that caller (its proposals carry it). */
  function managed<Req>(fn: (req: Req, caller: Caller) => Promise<object>): grpc.handleUnaryCall<Req, unknown> {
    return unary(ctx, async (req: Req, call: grpc.ServerUnaryCall<Req, unknown>) => {
      const caller = await guard.callerOf(call);
      return runAsCaller(caller, () => fn(req, caller));
    });
  }

  /** A change: root only while auth is on (refused early here, decided at apply time). */
  function change<Req>(build: (req: Req) => Promise<AuthRequestBody> | AuthRequestBody): grpc.handleUnaryCall<Req, unknown> {
    return managed(async (req: Req, caller) => {
      await guard.requireForRead(caller, ADMIN, false);
      const out = await ctx.proposeWrite(await build(req));
      return { header: ctx.header(out.revision) };
    });
  }

  return {
    AuthEnable: change(() => ({ auth_enable: { token_secret: randomBytes(32) } })),
    AuthDisable: change(() => ({ auth_disable: {} })),

    AuthStatus: unary(ctx, async () => {
      await ctx.readBarrier();
      return { header: ctx.header(), enabled: auth().enabled, authRevision: String(auth().revision) };
    }),

    Authenticate: unary(ctx, async (req: { name: string; password: string }) => {
      // Not guarded: a client re-authenticating still sends its expired token.
      await ctx.readBarrier();
      if (!auth().enabled) throw grpcError(ETCD_ERRORS.AUTH_NOT_ENABLED);
      const user = auth().getUser(req.name ?? '');
      const password = req.password ?? '';
      const deadlineMs = ctx.deadlineMs();
      const ok = await passwordWork(
        user && !user.noPassword ? verifyPassword(password, user.passwordHash, deadlineMs) : burnVerification(password, hashing(), deadlineMs).then(() => false),
      );
      if (!ok) {
        ctx.logger.info({ user: req.name }, 'authentication failed');
        throw grpcError(ETCD_ERRORS.AUTH_FAILED);
      }
      if (auth().enabled && auth().tokenSecret.length === 0) {
        // Restored from an etcd snapshot: no secret yet. The first to authenticate lays one through the
        // log (an enable entry, a no-op once a secret exists), so every member signs with the same one.
        await ctx.proposeWrite({ auth_enable: { token_secret: randomBytes(32) } });
      }
      const store = auth();
      if (!store.enabled) throw grpcError(ETCD_ERRORS.AUTH_NOT_ENABLED);
      const token = signToken(store.tokenSecret, { user: req.name, revision: store.revision, expiresAtMs: Date.now() + opts.tokenTtlSeconds * 1000, issuerId: ctx.member.memberId });
      return { header: ctx.header(), token };
    }),

    UserAdd: change(async (req: AuthUserAddRequest) => {
      const noPassword = !!req.options?.no_password;
      const hashedPassword = await passwordHashOf(req.password, req.hashedPassword, noPassword, await hashingForNewPassword(), ctx.deadlineMs());
      return { auth_user_add: { name: req.name ?? '', password: '', options: { no_password: noPassword }, hashedPassword } };
    }),

    UserChangePassword: change(async (req: AuthUserChangePasswordRequest) => {
      const hashedPassword = await passwordHashOf(req.password, req.hashedPassword, false, await hashingForNewPassword(), ctx.deadlineMs());
      return { auth_user_change_password: { name: req.name ?? '', password: '', hashedPassword } };
    }),

    UserDelete: change((req: { name: string }) => ({ auth_user_delete: { name: req.name ?? '' } })),
    UserGrantRole: change((req: AuthUserGrantRoleRequest) => ({ auth_user_grant_role: { user: req.user ?? '', role: req.role ?? '' } })),
    UserRevokeRole: change((req: AuthUserRevokeRoleRequest) => ({ auth_user_revoke_role: { name: req.name ?? '', role: req.role ?? '' } })),
    RoleAdd: change((req: { name: string }) => ({ auth_role_add: { name: req.name ?? '' } })),
    RoleDelete: change((req: { role: string }) => ({ auth_role_delete: { role: req.role ?? '' } })),
    RoleGrantPermission: change((req: AuthRoleGrantPermissionRequest) => ({ auth_role_grant_permission: { name: req.name ?? '', perm: req.perm } })),
    RoleRevokePermission: change((req: AuthRoleRevokePermissionRequest) => ({
      auth_role_revoke_permission: { role: req.role ?? '', key: req.key ?? Buffer.alloc(0), range_end: req.range_end ?? Buffer.alloc(0) },
    })),

    UserGet: managed(async (req: { name: string }, caller) => {
      await ctx.readBarrier();
      const name = req.name ?? '';
      const refusal = auth().checkAdmin(caller.username);
      if (refusal && name !== caller.username) throw grpcError(ETCD_ERRORS[refusal]);
      const user = auth().getUser(name);
      if (!user) throw grpcError(ETCD_ERRORS.USER_NOT_FOUND);
      return { header: ctx.header(), roles: user.roles };
    }),

    UserList: managed(async (_req: object, caller) => {
      await guard.requireForRead(caller, ADMIN, false);
      return { header: ctx.header(), users: auth().userNames() };
    }),

    RoleGet: managed(async (req: { role: string }, caller) => {
      await ctx.readBarrier();
      const name = req.role ?? '';
      const refusal = auth().checkAdmin(caller.username);
      if (refusal && !auth().getUser(caller.username)?.roles.includes(name)) throw grpcError(ETCD_ERRORS[refusal]);
      if (!auth().getRole(name)) throw grpcError(ETCD_ERRORS.ROLE_NOT_FOUND);
      const perm = auth().rolePermissions(name).map((p) => ({ permType: p.permType, key: p.key, range_end: p.rangeEnd }));
      return { header: ctx.header(), perm };
    }),

    RoleList: managed(async (_req: object, caller) => {
      await guard.requireForRead(caller, ADMIN, false);
      return { header: ctx.header(), roles: auth().roleNames() };
    }),
  };
}

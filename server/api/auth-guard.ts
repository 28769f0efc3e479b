// Who is calling, and may they: resolves the caller of a gRPC call from its `token` metadata (a token
// from Authenticate, as etcd clients send it) or, with --client-cert-auth, from the common name of its
// verified client certificate, and checks requirements (request-permissions.ts) against the auth store.
// Decisions for reads are taken here, at request time, after a read barrier; writes are decided again
// at apply time (auth-apply.ts) against the state at their place in the log.
import type * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type { ApiContext } from './context.ts';
import { ETCD_ERRORS, grpcError } from '../etcd/errors.ts';
import type { Caller } from '../shard/auth-wire.ts';
import { firstRefusal, type Requirement } from '../shard/request-permissions.ts';
import { verifyToken, type TokenClaims } from '../auth/token.ts';

export interface AuthGuardOptions {
  /** etcd's --client-cert-auth: a verified client certificate's CN names the user. */
  clientCertAuth: boolean;
}

/** The parts of a server call the guard looks at (every grpc-js server call has them). */
export interface CallIdentity {
  metadata: grpc.Metadata;
  getAuthContext(): { sslPeerCertificate?: PeerCertificate };
}

export const ANONYMOUS: Caller = Object.freeze({ username: '' });

type TokenVerdict = { kind: 'user'; name: string; revision: number } | { kind: 'disabled' } | { kind: 'invalid'; retry: boolean };

export class AuthGuard {
  private readonly ctx: ApiContext;
  private readonly opts: AuthGuardOptions;

  constructor(ctx: ApiContext, opts: AuthGuardOptions) {
    this.ctx = ctx;
    this.opts = opts;
  }

  get enabled(): boolean {
    return this.ctx.sm.auth.enabled;
  }

  /**
   * The caller of a call. A token that does not verify against this member's state is checked again
   * after a read barrier before it is refused: this member may not have applied the auth enable or the
   * user change the token depends on yet. A bad token is refused (etcd: "invalid auth token",
   * UNAUTHENTICATED, which makes etcd clients authenticate again); with auth off tokens are ignored.
   */
  /**
   * The caller when it is known without waiting: no token and auth off here (what callerOf would
   * resolve to at once). Null when callerOf must decide.
   */
  callerNow(call: CallIdentity): Caller | null {
    return !this.enabled && tokenOf(call.metadata) === null ? ANONYMOUS : null;
  }

  async callerOf(call: CallIdentity): Promise<Caller> {
    const token = tokenOf(call.metadata);
    if (token === null) {
      if (!this.enabled) return ANONYMOUS;
      const cn = this.opts.clientCertAuth ? commonNameOf(call) : null;
      return cn ? { username: cn } : ANONYMOUS;
    }
    let verdict = this.judgeToken(token);
    if ((verdict.kind === 'invalid' && verdict.retry) || verdict.kind === 'disabled') {
      await this.ctx.readBarrier();
      verdict = this.judgeToken(token);
    }
    if (verdict.kind === 'user') return { username: verdict.name, token_revision: String(verdict.revision) };
    if (verdict.kind === 'disabled') return ANONYMOUS;
    this.ctx.logger.debug('refused an invalid or expired auth token');
    throw grpcError(ETCD_ERRORS.INVALID_AUTH_TOKEN);
  }

  private judgeToken(token: string): TokenVerdict {
    const auth = this.ctx.sm.auth;
    if (!auth.enabled) return { kind: 'disabled' };
    const check = verifyToken(auth.tokenSecret, token, Date.now(), (issuerId) => this.ctx.member.peerClockAheadMs(issuerId));
    if (!check.ok) return { kind: 'invalid', retry: check.reason === 'signature' };
    return this.judgeClaims(check.claims);
  }

  private judgeClaims(claims: TokenClaims): TokenVerdict {
    const auth = this.ctx.sm.auth;
    const user = auth.getUser(claims.user);
    // A token newer than this member's auth state may name a user this member has not applied yet.
    const fromTheFuture = claims.revision > auth.revision;
    if (!user || user.credentialRevision > claims.revision) return { kind: 'invalid', retry: fromTheFuture };
    return { kind: 'user', name: user.name, revision: claims.revision };
  }

  /** Throws etcd's error for the first requirement the caller fails. */
  require(caller: Caller, needs: Requirement[]): void {
    const refusal = firstRefusal(this.ctx.sm.auth, caller.username, needs);
    if (refusal) throw grpcError(ETCD_ERRORS[refusal]);
  }

  /**
   * require() for a read, decided after a read barrier (as etcd checks after its ReadIndex) unless the
   * client asked for a serializable, possibly stale, read anyway: a permission revoked, or auth enabled,
   * before the request arrived is always seen. Resolves true when it passed a barrier, which the
   * request's handler may then skip (caller-context.ts).
   */
  async requireForRead(caller: Caller, needs: Requirement[], serializable: boolean): Promise<boolean> {
    if (serializable) {
      this.require(caller, needs);
      return false;
    }
    await this.ctx.readBarrier();
    this.require(caller, needs);
    return true;
  }
}

function tokenOf(metadata: grpc.Metadata): string | null {
  const values = metadata.get('token');
  const first = values[0];
  if (first === undefined) return null;
  const text = typeof first === 'string' ? first : first.toString('utf8');
  return text === '' ? null : text;
}

function commonNameOf(call: CallIdentity): string | null {
  const cn: unknown = call.getAuthContext().sslPeerCertificate?.subject?.CN;
  const name: unknown = Array.isArray(cn) ? cn[0] : cn;
  return typeof name === 'string' && name !== '' ? name : null;
}

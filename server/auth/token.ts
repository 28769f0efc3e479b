// Auth tokens. etcd's "simple" tokens are random strings remembered by the member that issued them,
// so a client that fails over to another member must authenticate again. Synod's tokens are instead
// self-contained and signed: HMAC-SHA256 over (user, auth revision at issue, expiry) with a secret that
// is drawn when auth is enabled and replicated through Raft. Any member can verify any member's token.
// A token stops working when it expires, when auth is disabled and enabled again (new secret), or when
// its user is deleted or changes password after it was issued (the user's credential revision).
import { createHmac, timingSafeEqual } from 'node:crypto';

const VERSION = 'synod1';

export interface TokenClaims {
  user: string;
  /** Auth revision when the token was issued. */
  revision: number;
  /** Milliseconds since the epoch (issuing member's clock). */
  expiresAtMs: number;
  /** The issuing member, whose clock `expiresAtMs` is in (absent: a token of an older build). */
  issuerId?: number;
}

/** Below this a secret is none at all: an auth store restored from an etcd snapshot has none yet. */
export const MIN_TOKEN_SECRET_BYTES = 16;

function mac(secret: Buffer, payload: string): Buffer {
  if (secret.length < MIN_TOKEN_SECRET_BYTES) throw new Error('no token secret');
  return createHmac('sha256', secret).update(`${VERSION}.${payload}`).digest();
}

/** `synod1.<base64url claims>.<base64url mac>`: printable ASCII, as gRPC metadata values must be. */
export function signToken(secret: Buffer, claims: TokenClaims): string {
  const payload = Buffer.from(JSON.stringify({ u: claims.user, r: claims.revision, e: claims.expiresAtMs, ...(claims.issuerId !== undefined ? { m: claims.issuerId } : {}) })).toString('base64url');
  return `${VERSION}.${payload}.${mac(secret, payload).toString('base64url')}`;
}

export type TokenCheck = { ok: true; claims: TokenClaims } | { ok: false; reason: 'malformed' | 'signature' | 'expired' };

/**
 * Checks `token` at `nowMs` (this member's clock). `clockAheadOf(issuer)`: how far the issuing member's
 * wall clock is ahead of this one's (its peer-stream hello says), so that a token lives its TTL on every
 * member whatever their clocks say; 0 for this member itself or one not heard from.
 */
export function verifyToken(secret: Buffer, token: string, nowMs: number, clockAheadOf: (issuerId: number) => number = () => 0): TokenCheck {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== VERSION) return { ok: false, reason: 'malformed' };
  if (secret.length < MIN_TOKEN_SECRET_BYTES) return { ok: false, reason: 'signature' };
  const given = Buffer.from(parts[2], 'base64url');
  const expected = mac(secret, parts[1]);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'signature' };
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const o = raw as { u?: unknown; r?: unknown; e?: unknown; m?: unknown };
  if (typeof o.u !== 'string' || typeof o.r !== 'number' || typeof o.e !== 'number') return { ok: false, reason: 'malformed' };
  if (o.m !== undefined && !(typeof o.m === 'number' && Number.isSafeInteger(o.m) && o.m > 0)) return { ok: false, reason: 'malformed' };
  const issuerId = o.m as number | undefined;
  // The expiry in this member's clock: the issuer's clock reads `ahead` more than this one's.
  const expiresHereMs = o.e - (issuerId === undefined ? 0 : clockAheadOf(issuerId));
  if (expiresHereMs <= nowMs) return { ok: false, reason: 'expired' };
  return { ok: true, claims: { user: o.u, revision: o.r, expiresAtMs: o.e, ...(issuerId !== undefined ? { issuerId } : {}) } };
}

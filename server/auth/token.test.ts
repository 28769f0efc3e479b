import { describe, expect, it } from 'vitest';
import { signToken, verifyToken } from './token.ts';

describe('auth tokens', () => {
  const secret = Buffer.alloc(32, 1);
  const claims = { user: 'alice', revision: 7, expiresAtMs: 10_000 };

  it('verifies on any holder of the secret until it expires', () => {
    const token = signToken(secret, claims);
    expect(token).toMatch(/^synod1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    expect(verifyToken(secret, token, 9_999)).toEqual({ ok: true, claims });
    expect(verifyToken(secret, token, 10_000)).toEqual({ ok: false, reason: 'expired' });
  });

  it('rejects another secret, edited claims and garbage', () => {
    const token = signToken(secret, claims);
    expect(verifyToken(Buffer.alloc(32, 2), token, 0)).toEqual({ ok: false, reason: 'signature' });
    const [v, , mac] = token.split('.');
    const forged = Buffer.from(JSON.stringify({ u: 'root', r: 7, e: 10_000 })).toString('base64url');
    expect(verifyToken(secret, `${v}.${forged}.${mac}`, 0)).toEqual({ ok: false, reason: 'signature' });
    expect(verifyToken(secret, 'abc', 0)).toEqual({ ok: false, reason: 'malformed' });
    expect(verifyToken(secret, 'simple.token.1', 0)).toEqual({ ok: false, reason: 'malformed' });
  });
});

describe('tokens without a secret', () => {
  it('are never signed, and never verify (an auth store restored from etcd has no secret yet)', () => {
    expect(() => signToken(Buffer.alloc(0), { user: 'root', revision: 1, expiresAtMs: Date.now() + 60_000 })).toThrow(/no token secret/);
    const forged = signToken(Buffer.alloc(32, 1), { user: 'root', revision: 1, expiresAtMs: Date.now() + 60_000 });
    expect(verifyToken(Buffer.alloc(0), forged, Date.now())).toEqual({ ok: false, reason: 'signature' });
  });
});

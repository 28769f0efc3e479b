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

  it('expire after their TTL on every member: the issuer\'s clock is read through how far ahead of the verifier\'s its hello said it is', () => {
    const issued = { ...claims, issuerId: 7 };
    const token = signToken(secret, issued);
    // The issuer's clock is ten minutes ahead of this member's: its 10,000 is this member's -590,000.
    const ahead = (id: number): number => (id === 7 ? 600_000 : 0);
    expect(verifyToken(secret, token, -590_001, ahead)).toEqual({ ok: true, claims: issued });
    expect(verifyToken(secret, token, -590_000, ahead)).toEqual({ ok: false, reason: 'expired' });
    // Ten minutes behind: the token lives on here until this member's 610,000, not only until its 10,000.
    const behind = (id: number): number => (id === 7 ? -600_000 : 0);
    expect(verifyToken(secret, token, 609_999, behind).ok).toBe(true);
    expect(verifyToken(secret, token, 610_000, behind)).toEqual({ ok: false, reason: 'expired' });
    // A token without an issuer (an older build's) is read in this member's clock, as before.
    expect(verifyToken(secret, signToken(secret, claims), 9_999, ahead)).toEqual({ ok: true, claims });
    // A signed token whose issuer is not a member id is malformed.
    for (const m of ['7', -1, 1.5]) expect(verifyToken(secret, signToken(secret, { ...claims, issuerId: m as number }), 0)).toEqual({ ok: false, reason: 'malformed' });
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

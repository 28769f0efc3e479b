import { describe, expect, it } from 'vitest';
import { signToken, verifyToken } from './token.ts';
import { hashPassword, isPasswordHash, verifyPassword } from './password.ts';

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

describe('password hashes', () => {
  it('verify the right password only, with a fresh salt each time', async () => {
    const h1 = await hashPassword('s3cret');
    const h2 = await hashPassword('s3cret');
    expect(h1).not.toBe(h2);
    expect(h1).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(isPasswordHash(h1)).toBe(true);
    expect(await verifyPassword('s3cret', h1)).toBe(true);
    expect(await verifyPassword('s3cret ', h1)).toBe(false);
    expect(await verifyPassword('s3cret', 'not-a-hash')).toBe(false);
    expect(isPasswordHash('$2a$10$abcdefghijklmnopqrstuv')).toBe(false); // a truncated bcrypt hash
  });

  it("verify etcd's bcrypt hashes, and refuse costs that would hold a member's thread too long", async () => {
    // Made by etcd 3.4 (Go's golang.org/x/crypto/bcrypt, cost 10) for the password "pw1".
    const etcdHash = '$2a$10$JGato8F2KshGhOmGQAMeQezajt2XivDl0uu5eVTppKI.Pg1ThG3pW';
    expect(isPasswordHash(etcdHash)).toBe(true);
    expect(await verifyPassword('pw1', etcdHash)).toBe(true);
    expect(await verifyPassword('pw2', etcdHash)).toBe(false);
    expect(isPasswordHash(etcdHash.replace('$10$', '$15$'))).toBe(false);
    expect(isPasswordHash(etcdHash.replace('$10$', '$03$'))).toBe(false);
    expect(await verifyPassword('pw1', etcdHash.replace('$10$', '$15$'))).toBe(false);
  });
});

describe('tokens without a secret', () => {
  it('are never signed, and never verify (an auth store restored from etcd has no secret yet)', () => {
    expect(() => signToken(Buffer.alloc(0), { user: 'root', revision: 1, expiresAtMs: Date.now() + 60_000 })).toThrow(/no token secret/);
    const forged = signToken(Buffer.alloc(32, 1), { user: 'root', revision: 1, expiresAtMs: Date.now() + 60_000 });
    expect(verifyToken(Buffer.alloc(0), forged, Date.now())).toEqual({ ok: false, reason: 'signature' });
  });
});

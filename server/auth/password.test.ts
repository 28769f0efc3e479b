// Password hashes: bcrypt (etcd's form, made on worker threads) and scrypt (Synod's earlier form), both
// verified; what each refuses.
import { describe, expect, it } from 'vitest';
import bcrypt from 'bcryptjs';
import { SCRYPT_HASHING, burnVerification, hashPassword, isBcryptHash, isPasswordHash, passwordHashingFor, verifyPassword } from './password.ts';

describe('password hashes', () => {
  it('scrypt: verify the right password only, with a fresh salt each time', async () => {
    const h1 = await hashPassword('s3cret', SCRYPT_HASHING);
    const h2 = await hashPassword('s3cret', SCRYPT_HASHING);
    expect(h1).not.toBe(h2);
    expect(h1).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(isPasswordHash(h1)).toBe(true);
    expect(await verifyPassword('s3cret', h1)).toBe(true);
    expect(await verifyPassword('s3cret ', h1)).toBe(false);
    expect(await verifyPassword('s3cret', 'not-a-hash')).toBe(false);
    expect(isPasswordHash('$2a$10$abcdefghijklmnopqrstuv')).toBe(false); // a truncated bcrypt hash
  });

  it('bcrypt at the cost asked: the form etcd stores, checked by bcryptjs itself, a fresh salt each time', async () => {
    const h1 = await hashPassword('s3cret', { kind: 'bcrypt', cost: 10 });
    const h2 = await hashPassword('s3cret', { kind: 'bcrypt', cost: 10 });
    expect(h1).toMatch(/^\$2b\$10\$[./A-Za-z0-9]{53}$/);
    expect(h1).not.toBe(h2);
    expect(isBcryptHash(h1)).toBe(true);
    expect(bcrypt.compareSync('s3cret', h1)).toBe(true);
    expect(await verifyPassword('s3cret', h1)).toBe(true);
    expect(await verifyPassword('s3cret ', h1)).toBe(false);
    expect(await hashPassword('x', { kind: 'bcrypt', cost: 4 })).toMatch(/^\$2b\$04\$/);
    await expect(hashPassword('x', { kind: 'bcrypt', cost: 15 })).rejects.toThrow(/outside 4\.\.14/);
    await expect(hashPassword('x', { kind: 'bcrypt', cost: 3 })).rejects.toThrow(/outside 4\.\.14/);
  });

  it('a password longer than bcrypt reads (72 bytes) is hashed with scrypt, so its tail still counts', async () => {
    const long = 'p'.repeat(72) + 'tail';
    const h = await hashPassword(long, { kind: 'bcrypt', cost: 4 });
    expect(h).toMatch(/^scrypt\$/);
    expect(await verifyPassword(long, h)).toBe(true);
    expect(await verifyPassword('p'.repeat(72) + 'other', h)).toBe(false);
    // 72 bytes exactly is still bcrypt's (bytes, not characters: 24 three-byte characters).
    expect(await hashPassword('€'.repeat(24), { kind: 'bcrypt', cost: 4 })).toMatch(/^\$2b\$/);
    expect(await hashPassword('€'.repeat(25), { kind: 'bcrypt', cost: 4 })).toMatch(/^scrypt\$/);
  });

  it("verify etcd's bcrypt hashes, and refuse costs that would hold a worker thread too long", async () => {
    // Made by etcd 3.4 (Go's golang.org/x/crypto/bcrypt, cost 10) for the password "pw1".
    const etcdHash = '$2a$10$JGato8F2KshGhOmGQAMeQezajt2XivDl0uu5eVTppKI.Pg1ThG3pW';
    expect(isPasswordHash(etcdHash)).toBe(true);
    expect(await verifyPassword('pw1', etcdHash)).toBe(true);
    expect(await verifyPassword('pw2', etcdHash)).toBe(false);
    expect(isPasswordHash(etcdHash.replace('$10$', '$15$'))).toBe(false);
    expect(isPasswordHash(etcdHash.replace('$10$', '$03$'))).toBe(false);
    expect(await verifyPassword('pw1', etcdHash.replace('$10$', '$15$'))).toBe(false);
  });

  it('bcrypt runs off the main thread: timers keep firing while a cost-12 hash and compare run', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    try {
      const h = await hashPassword('slow', { kind: 'bcrypt', cost: 12 });
      expect(await verifyPassword('slow', h)).toBe(true);
    } finally {
      clearInterval(timer);
    }
    // Two cost-12 bcrypts are hundreds of milliseconds of JavaScript: on the main thread no timer could
    // fire until both ended (bcryptjs's synchronous form), or only between its 100 ms slices (its async one).
    expect(ticks).toBeGreaterThanOrEqual(10);
  });

  it('many at once all answer, each with its own result', async () => {
    const hashes = await Promise.all(Array.from({ length: 12 }, (_, i) => hashPassword(`pw${i}`, { kind: 'bcrypt', cost: 4 })));
    const verdicts = await Promise.all(hashes.flatMap((h, i) => [verifyPassword(`pw${i}`, h), verifyPassword(`pw${i + 1}`, h)]));
    expect(verdicts).toEqual(hashes.flatMap(() => [true, false]));
  });

  it('bcrypt only once every member checks it (a member of an older build checks scrypt only)', () => {
    expect(passwordHashingFor(true, 10)).toEqual({ kind: 'bcrypt', cost: 10 });
    expect(passwordHashingFor(false, 10)).toEqual(SCRYPT_HASHING);
  });

  it('scrypt runs one at a time: a flood with short deadlines has the late ones dropped unrun, and a bound', async () => {
    const h = await hashPassword('pw', SCRYPT_HASHING);
    const outcomes = await Promise.all(
      Array.from({ length: 80 }, () => verifyPassword('wrong', h, Date.now() + 150).then(
        (ok) => (ok ? 'matched' : 'checked'),
        (err: Error) => err.name,
      )),
    );
    const count = (o: string): number => outcomes.filter((x) => x === o).length;
    expect(count('matched')).toBe(0);
    expect(count('checked')).toBeGreaterThanOrEqual(1);
    expect(count('PasswordDeadlineError')).toBeGreaterThanOrEqual(1);
    expect(count('PasswordBusyError')).toBe(80 - 1 - 64); // one running, 64 waiting, the rest refused
    expect(count('checked') + count('PasswordDeadlineError')).toBe(65);
    expect(await verifyPassword('pw', h)).toBe(true);
  });

  it('an unknown user costs a verification of the kind this member makes', async () => {
    await burnVerification('guess', { kind: 'bcrypt', cost: 4 });
    await burnVerification('guess', SCRYPT_HASHING);
  });
});

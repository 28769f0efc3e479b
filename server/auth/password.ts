// Password hashing for auth users: scrypt (node:crypto, memory-hard and deliberately slow) with a
// random salt per hash. The encoded form carries its own parameters, so they can be raised later
// without invalidating stored hashes. Hashing happens on the member that receives the request, before
// proposing: only the hash ever enters the Raft log or the disk.
//
// A user may also hold a bcrypt hash: etcd's own form, carried over from an etcd snapshot
// (server/cli/etcd-snapshot-import.ts) or given by an etcd client as AuthUserAddRequest.hashedPassword.
// New hashes made here are always scrypt.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import bcrypt from 'bcryptjs';

const PREFIX = 'scrypt';
/** N=2^15, r=8: about 32 MiB and tens of milliseconds per hash on a current core. */
const DEFAULT_PARAMS = { N: 2 ** 15, r: 8, p: 1 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;

function derive(password: string, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  const options: ScryptOptions = { ...params, maxmem: 256 * params.N * params.r };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** `scrypt$N$r$p$<salt b64>$<key b64>` */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, DEFAULT_PARAMS);
  const { N, r, p } = DEFAULT_PARAMS;
  return [PREFIX, N, r, p, salt.toString('base64'), key.toString('base64')].join('$');
}

interface ParsedHash {
  params: { N: number; r: number; p: number };
  salt: Buffer;
  key: Buffer;
}

function parse(encoded: string): ParsedHash | null {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== PREFIX) return null;
  const [N, r, p] = parts.slice(1, 4).map(Number);
  const isPow2 = Number.isInteger(N) && N > 1 && (N & (N - 1)) === 0;
  if (!isPow2 || N > 2 ** 20 || !(r >= 1 && r <= 32) || !(p >= 1 && p <= 16)) return null;
  const salt = Buffer.from(parts[4], 'base64');
  const key = Buffer.from(parts[5], 'base64');
  if (salt.length < 8 || key.length < 16) return null;
  return { params: { N, r, p }, salt, key };
}

/**
 * `$2a$`/`$2b$`/`$2y$`, a two-digit cost, 22 characters of salt and 31 of hash. Costs above 14 are refused:
 * bcryptjs runs on the member's main thread (in slices), and cost 14 is already about a second of it
 * (etcd's default is 10).
 */
const BCRYPT_HASH = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const MAX_BCRYPT_COST = 14;

function isBcryptHash(encoded: string): boolean {
  const m = BCRYPT_HASH.exec(encoded);
  return m !== null && Number(m[1]) >= 4 && Number(m[1]) <= MAX_BCRYPT_COST;
}

/** Whether a string is a hash this module can verify (for AuthUserAddRequest.hashedPassword). */
export function isPasswordHash(encoded: string): boolean {
  return parse(encoded) !== null || isBcryptHash(encoded);
}

/** Constant-time check of `password` against a stored hash; false for a malformed hash. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  if (isBcryptHash(encoded)) return bcrypt.compare(password, encoded);
  const parsed = parse(encoded);
  if (!parsed) return false;
  const key = await derive(password, parsed.salt, parsed.params);
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}

let decoy: Promise<string> | null = null;
/**
 * Spends the time of one verification without a user: Authenticate for an unknown name takes as
 * long as a wrong password, so response times do not reveal which user names exist.
 */
export async function burnVerification(password: string): Promise<void> {
  decoy ??= hashPassword('synod-decoy');
  await verifyPassword(password, await decoy);
}

// Password hashing for auth users. New hashes are bcrypt at etcd's `--bcrypt-cost` (default 10), etcd's own
// form, so that users carry over to etcd in a backup (docs/operations.md, "Moving back to etcd") and from
// it; bcrypt runs on worker threads (bcrypt-pool.ts). scrypt (node:crypto, memory-hard) is what Synod
// made before, and still makes where bcrypt cannot serve: passwords longer than bcrypt's 72 bytes (bcrypt
// would ignore the rest), and clusters with a member built before bcrypt (it could not check the hash).
// Both verify. The encoded forms carry their own parameters, so costs can be raised later without
// invalidating stored hashes. Hashing happens on the member that receives the request, before proposing:
// only the hash ever enters the Raft log or the disk.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { bcryptCompare, bcryptHash } from './bcrypt-pool.ts';
import { JobLane, PasswordBusyError } from './job-lane.ts';

/** How new password hashes are made. */
export type PasswordHashing = { kind: 'bcrypt'; cost: number } | { kind: 'scrypt' };

/** etcd's `--bcrypt-cost` default and bounds (bcrypt's own minimum; see MAX_BCRYPT_COST for the top). */
export const DEFAULT_BCRYPT_COST = 10;
export const MIN_BCRYPT_COST = 4;
/**
 * Costs above 14 are refused, for hashes made here and hashes given: cost 14 is already about a second of
 * a worker thread per Authenticate (etcd allows up to 31).
 */
export const MAX_BCRYPT_COST = 14;
/** bcrypt reads only the first 72 bytes of a password. */
const BCRYPT_MAX_PASSWORD_BYTES = 72;

export const SCRYPT_HASHING: PasswordHashing = { kind: 'scrypt' };

/**
 * How a member makes new hashes: bcrypt at `bcryptCost` once every member of the cluster checks bcrypt
 * (BCRYPT_PASSWORD_RULES), scrypt before that (a rolling upgrade's older members check scrypt only).
 */
export function passwordHashingFor(clusterChecksBcrypt: boolean, bcryptCost: number): PasswordHashing {
  return clusterChecksBcrypt ? { kind: 'bcrypt', cost: bcryptCost } : SCRYPT_HASHING;
}

const PREFIX = 'scrypt';
/** N=2^15, r=8: about 32 MiB and tens of milliseconds per hash on a current core. */
const DEFAULT_PARAMS = { N: 2 ** 15, r: 8, p: 1 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;

/**
 * scrypt runs on libuv's thread pool (4 threads), which classic-level's LevelDB calls share: one scrypt at
 * a time, so a flood of logins against scrypt users leaves the member's disk work three threads, and
 * waits with a deadline and a bound like bcrypt's (job-lane.ts).
 */
const scryptLane = new JobLane();
const MAX_QUEUED_SCRYPT = 64;

function derive(password: string, salt: Buffer, params: { N: number; r: number; p: number }, deadlineMs: number): Promise<Buffer> {
  if (scryptLane.queued >= MAX_QUEUED_SCRYPT) return Promise.reject(new PasswordBusyError());
  const options: ScryptOptions = { ...params, maxmem: 256 * params.N * params.r };
  return scryptLane.run(
    () =>
      new Promise<Buffer>((resolve, reject) => {
        scrypt(password, salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key)));
      }),
    deadlineMs,
  );
}

/**
 * A hash of `password` as `hashing` says: bcrypt (`$2b$<cost>$…`), or `scrypt$N$r$p$<salt b64>$<key b64>`
 * for scrypt and for a password bcrypt would cut short. The work waits for its lane at most until
 * `deadlineMs` (PasswordDeadlineError), and a full queue refuses at once (PasswordBusyError).
 */
export async function hashPassword(password: string, hashing: PasswordHashing, deadlineMs = Infinity): Promise<string> {
  if (hashing.kind === 'bcrypt' && Buffer.byteLength(password) <= BCRYPT_MAX_PASSWORD_BYTES) {
    if (!isBcryptCost(hashing.cost)) throw new Error(`bcrypt cost ${hashing.cost} is outside ${MIN_BCRYPT_COST}..${MAX_BCRYPT_COST}`);
    return bcryptHash(password, hashing.cost, deadlineMs);
  }
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, DEFAULT_PARAMS, deadlineMs);
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

/** `$2a$`/`$2b$`/`$2y$`, a two-digit cost, 22 characters of salt and 31 of hash. */
const BCRYPT_HASH = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

export function isBcryptCost(cost: number): boolean {
  return Number.isInteger(cost) && cost >= MIN_BCRYPT_COST && cost <= MAX_BCRYPT_COST;
}

/** Whether a string is a bcrypt hash this module checks (cost within MIN_BCRYPT_COST..MAX_BCRYPT_COST). */
export function isBcryptHash(encoded: string): boolean {
  const m = BCRYPT_HASH.exec(encoded);
  return m !== null && isBcryptCost(Number(m[1]));
}

/** Whether a string is a hash this module can verify (for AuthUserAddRequest.hashedPassword). */
export function isPasswordHash(encoded: string): boolean {
  return parse(encoded) !== null || isBcryptHash(encoded);
}

/** Constant-time check of `password` against a stored hash; false for a malformed hash. bcrypt as hashPassword's. */
export async function verifyPassword(password: string, encoded: string, deadlineMs = Infinity): Promise<boolean> {
  if (isBcryptHash(encoded)) return bcryptCompare(password, encoded, deadlineMs);
  const parsed = parse(encoded);
  if (!parsed) return false;
  const key = await derive(password, parsed.salt, parsed.params, deadlineMs);
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}

const decoys = new Map<string, Promise<string>>();
/**
 * Spends the time of one verification without a user: Authenticate for an unknown name takes as long as a
 * wrong password for a user whose hash was made as `hashing` says (this member's own users), so response
 * times do not reveal which user names exist.
 */
export async function burnVerification(password: string, hashing: PasswordHashing, deadlineMs = Infinity): Promise<void> {
  const key = hashing.kind === 'bcrypt' ? `bcrypt-${hashing.cost}` : 'scrypt';
  let decoy = decoys.get(key);
  if (decoy === undefined) {
    decoy = hashPassword('synod-decoy', hashing);
    decoys.set(key, decoy);
    decoy.catch(() => decoys.delete(key));
  }
  await verifyPassword(password, await decoy, deadlineMs);
}

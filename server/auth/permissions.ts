// Key-range permissions of etcd's auth model: a role grants READ, WRITE or READWRITE on a single key,
// a range [key, range_end), or everything from a key on (range_end "\0"). A request is allowed when
// the union of the ranges a user's roles grant for that kind of access covers every key it touches,
// as etcd's interval-tree check does. Pure functions over byte strings.

export type PermType = 'READ' | 'WRITE' | 'READWRITE';
export type Access = 'read' | 'write';

export interface KeyPermission {
  permType: PermType;
  key: Buffer;
  /** Empty: the single key. "\0": every key from `key` on. Otherwise the exclusive end. */
  rangeEnd: Buffer;
}

/** A half-open interval of keys; `end === null` is unbounded above. */
export interface KeyInterval {
  start: Buffer;
  end: Buffer | null;
}

const ZERO = Buffer.from([0]);

function isOpenEnd(rangeEnd: Buffer): boolean {
  return rangeEnd.length === 1 && rangeEnd[0] === 0;
}

/**
 * The keys a (key, range_end) pair names, with etcd's conventions. A pair whose end is not after its
 * key names no key in the store, but is treated as the single key `key` here so that a malformed
 * range is never allowed more than its first key would be.
 */
export function intervalOf(key: Buffer, rangeEnd: Buffer): KeyInterval {
  const pointEnd = Buffer.concat([key, ZERO]);
  if (rangeEnd.length === 0) return { start: key, end: pointEnd };
  if (isOpenEnd(rangeEnd)) return { start: key, end: null };
  if (Buffer.compare(key, rangeEnd) >= 0) return { start: key, end: pointEnd };
  return { start: key, end: rangeEnd };
}

function grants(permType: PermType, access: Access): boolean {
  return permType === 'READWRITE' || (access === 'read' ? permType === 'READ' : permType === 'WRITE');
}

/** True when the union of `intervals` contains every key of `wanted`. */
export function coveredBy(intervals: KeyInterval[], wanted: KeyInterval): boolean {
  const sorted = [...intervals].sort((a, b) => Buffer.compare(a.start, b.start));
  let cursor = wanted.start; // every key below `cursor` (from wanted.start) is covered
  for (const iv of sorted) {
    if (Buffer.compare(iv.start, cursor) > 0) break; // a gap at `cursor` that no later interval can fill
    if (iv.end === null) return true;
    if (Buffer.compare(iv.end, cursor) > 0) cursor = iv.end;
    if (wanted.end !== null && Buffer.compare(cursor, wanted.end) >= 0) return true;
  }
  return false;
}

/** Whether `permissions` allow `access` to every key of (key, rangeEnd). */
export function permits(permissions: readonly KeyPermission[], access: Access, key: Buffer, rangeEnd: Buffer): boolean {
  const intervals = permissions.filter((p) => grants(p.permType, access)).map((p) => intervalOf(p.key, p.rangeEnd));
  return coveredBy(intervals, intervalOf(key, rangeEnd));
}

/** etcd's isValidPermissionRange: a non-empty key, and an end that is empty, "\0", or after the key. */
export function isValidPermissionRange(key: Buffer, rangeEnd: Buffer): boolean {
  if (key.length === 0) return false;
  if (rangeEnd.length === 0 || isOpenEnd(rangeEnd)) return true;
  return Buffer.compare(key, rangeEnd) < 0;
}

export function samePermissionRange(a: { key: Buffer; rangeEnd: Buffer }, b: { key: Buffer; rangeEnd: Buffer }): boolean {
  return a.key.equals(b.key) && a.rangeEnd.equals(b.rangeEnd);
}

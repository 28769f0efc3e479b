// What each etcd request needs from the auth store, as etcd's auth applier decides it: reads need
// READ on every key they look at (Range, Txn compares and ranges, prev_kv of writes), writes need
// WRITE on every key they change, a Put with a lease also needs WRITE on the keys already on that lease
// (whoever attaches a key to a lease must be able to revoke it), a lease revoke needs WRITE on every
// attached key; auth management needs the root role. Used at request time for reads and at apply time
// for everything that goes through the log.
import type { Access } from '../auth/permissions.ts';
import type { AuthErrorCode, AuthStore } from '../auth/auth-store.ts';
import type { DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest, WireRequestOp } from '../etcd/wire-types.ts';
import type { InternalRequest } from './request-codec.ts';

export type Requirement =
  | { kind: 'access'; access: Access; key: Buffer; rangeEnd: Buffer }
  | { kind: 'authenticated' }
  | { kind: 'admin' };

/** Keys attached to a lease, in the state the decision is taken against. */
export type LeaseKeys = (leaseId: string) => Buffer[];

const EMPTY = Buffer.alloc(0);

function bytes(b: Buffer | null | undefined): Buffer {
  return b ?? EMPTY;
}

export function access(kind: Access, key: Buffer, rangeEnd: Buffer = EMPTY): Requirement {
  return { kind: 'access', access: kind, key, rangeEnd };
}

export function rangeNeeds(r: Pick<RangeRequest, 'key' | 'range_end'>): Requirement[] {
  return [access('read', bytes(r.key), bytes(r.range_end))];
}

export function leaseIsSet(lease: string | number | undefined | null): lease is string | number {
  return lease !== undefined && lease !== null && String(lease) !== '0' && String(lease) !== '';
}

export function putNeeds(p: PutRequest, leaseKeys: LeaseKeys): Requirement[] {
  const key = bytes(p.key);
  const needs = [access('write', key)];
  if (p.prev_kv) needs.push(access('read', key));
  if (leaseIsSet(p.lease)) for (const k of leaseKeys(String(p.lease))) needs.push(access('write', k));
  return needs;
}

export function deleteNeeds(d: DeleteRangeRequest): Requirement[] {
  const needs = [access('write', bytes(d.key), bytes(d.range_end))];
  if (d.prev_kv) needs.push(access('read', bytes(d.key), bytes(d.range_end)));
  return needs;
}

/** Every branch counts, whichever one the compares pick: the answer must not depend on the data. */
export function txnNeeds(t: TxnRequest, leaseKeys: LeaseKeys): Requirement[] {
  const needs: Requirement[] = [];
  for (const c of t.compare ?? []) needs.push(access('read', bytes(c.key), bytes(c.range_end)));
  const ops = (list: WireRequestOp[] | null | undefined): void => {
    for (const op of list ?? []) {
      if (op.request_range) needs.push(...rangeNeeds(op.request_range));
      else if (op.request_put) needs.push(...putNeeds(op.request_put, leaseKeys));
      else if (op.request_delete_range) needs.push(...deleteNeeds(op.request_delete_range));
      else if (op.request_txn) needs.push(...txnNeeds(op.request_txn, leaseKeys));
    }
  };
  ops(t.success);
  ops(t.failure);
  return needs;
}

export function leaseRevokeNeeds(id: string, leaseKeys: LeaseKeys): Requirement[] {
  return [{ kind: 'authenticated' }, ...leaseKeys(id).map((k) => access('write', k))];
}

/** What a logged request needs; null for an entry the server proposed for itself. */
export function entryNeeds(req: InternalRequest, leaseKeys: LeaseKeys): Requirement[] {
  if ('put' in req && req.put) return putNeeds(req.put, leaseKeys);
  if ('delete_range' in req && req.delete_range) return deleteNeeds(req.delete_range);
  if ('txn' in req && req.txn) return txnNeeds(req.txn, leaseKeys);
  if ('lease_revoke' in req && req.lease_revoke) return leaseRevokeNeeds(String(req.lease_revoke.ID), leaseKeys);
  // A cross-shard transaction's share on this shard (the coordinator checked the whole txn already).
  if ('txn_intent' in req && req.txn_intent) return txnNeeds(req.txn_intent.ops, leaseKeys);
  if (('txn_resolve' in req && req.txn_resolve) || ('txn_recover' in req && req.txn_recover)) return [{ kind: 'authenticated' }];
  if (('lease_grant' in req && req.lease_grant) || ('compaction' in req && req.compaction)) return [{ kind: 'authenticated' }];
  // Auth management, and anything else a client should never be able to put in the log.
  return [{ kind: 'admin' }];
}

/** The first requirement `username` fails, as etcd's error name; null when all pass. */
export function firstRefusal(store: AuthStore, username: string, needs: Requirement[]): AuthErrorCode | null {
  for (const need of needs) {
    const refusal =
      need.kind === 'access'
        ? store.checkAccess(username, need.access, need.key, need.rangeEnd)
        : need.kind === 'authenticated'
          ? store.checkAuthenticated(username)
          : store.checkAdmin(username);
    if (refusal) return refusal;
  }
  return null;
}

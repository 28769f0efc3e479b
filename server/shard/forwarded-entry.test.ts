// A forwarded write is proposed by the host exactly as the forwarding member would have proposed it: for
// every kind of shard write and caller, the entry the host builds from the forwarded bytes (with its own
// proposer and seq) is byte for byte the entry the forwarding member would have built with them.
import { describe, expect, it } from 'vitest';
import { decodeForwardedEntry, encodeForwardedEntry, type ForwardedBody } from './forwarded-entry.ts';
import { encodeInternalRequest } from './request-codec.ts';
import type { Caller } from './auth-wire.ts';

const b = (s: string): Buffer => Buffer.from(s);

const bodies: Array<[string, ForwardedBody]> = [
  ['put', { put: { key: b('{t}k'), value: b('v'), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false } }],
  ['put with prev_kv, binary value and a lease generation', {
    put: { key: b('k'), value: Buffer.from([0, 255, 7]), lease: '7587862243543614978', prev_kv: true, ignore_value: false, ignore_lease: false },
    lease_generations: [{ ID: '7587862243543614978', generation: '41', checked_at: '977' }],
  }],
  ['put ignoring value and lease', { put: { key: b('k'), value: Buffer.alloc(0), lease: '0', prev_kv: false, ignore_value: true, ignore_lease: true } }],
  ['delete range', { delete_range: { key: b('a'), range_end: b('b'), prev_kv: true } }],
  ['txn reading another shard, with a lease', {
    txn: {
      compare: [{ result: 'EQUAL', target: 'VALUE', key: b('q'), range_end: Buffer.alloc(0), value: b('4') }],
      success: [{ request_put: { key: b('{t}x'), value: b('yes'), lease: '9', prev_kv: false, ignore_value: false, ignore_lease: false } }],
      failure: [{ request_range: { key: b('{t}x'), range_end: Buffer.alloc(0) } }, { request_delete_range: { key: b('{t}y'), range_end: Buffer.alloc(0), prev_kv: false } }],
    },
    lease_generations: [{ ID: '9', generation: '3', checked_at: '12' }],
  } as unknown as ForwardedBody],
  ['compaction', { compaction: { revision: '55', physical: true } }],
  ['lease sweep', { lease_sweep: { ID: '9', generation: '3', revoked_at: '20', horizon: '5' } }],
];

const callers: Array<Caller | undefined> = [undefined, { username: '' }, { username: 'alice', token_revision: '12' }, { username: 'root' }];

describe('forwarded entries', () => {
  for (const [name, body] of bodies) {
    it(`${name}: the host proposes the entry the forwarding member would have, for every caller`, () => {
      for (const caller of callers) {
        const forwarded = decodeForwardedEntry(encodeForwardedEntry(body, caller));
        expect(forwarded.caller === undefined, JSON.stringify(caller)).toBe(caller === undefined);
        const asHost = encodeInternalRequest({ proposer: '5', seq: '9', ...forwarded.body, ...(forwarded.caller ? { caller: forwarded.caller } : {}) });
        const asForwarder = encodeInternalRequest({ proposer: '5', seq: '9', ...body, ...(caller ? { caller } : {}) });
        expect(Buffer.from(asHost).equals(Buffer.from(asForwarder)), `${name} as ${JSON.stringify(caller)}`).toBe(true);
        if (caller?.token_revision) expect(forwarded.caller?.token_revision).toBe(caller.token_revision);
      }
    });
  }
});

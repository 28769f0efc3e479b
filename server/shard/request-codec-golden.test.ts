// Pins the bytes of log entries written without a revision (S = 1): a seeded list of every common
// entry kind (puts through the hand-written path, with and without a caller; deletes, txns,
// compactions, lease and member entries through protobufjs) is encoded and hashed. The digest was
// computed with the codec as it was before entries could carry an oracle revision: if it changes, a
// one-shard cluster no longer writes exactly today's log. Never "fix" it. The decoded objects must not
// grow a `revision` field either (everything downstream sees today's shapes).
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Rng } from '../raft/rng.ts';
import { decodeInternalRequest, encodeInternalRequest, type InternalRequest } from './request-codec.ts';

const KEYS = ['a', '', '\0', '\xff', '{t}x', 'k'.repeat(300)];
const VALUES = ['', 'x', '\0\xff', 'v'.repeat(2000)];

export function seededEntries(seed: number, count: number): InternalRequest[] {
  const rng = new Rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[rng.nextInt(xs.length)];
  const b = (s: string): Buffer => Buffer.from(s, 'latin1');
  const out: InternalRequest[] = [];
  for (let i = 0; i < count; i++) {
    const proposer = String(1 + rng.nextInt(1_000_000));
    const seq = String(rng.nextUint32() * 1000 + i);
    const roll = rng.nextInt(9);
    const put = () => ({ key: b(pick(KEYS)), value: b(pick(VALUES)), lease: pick(['0', '7', '-1']), prev_kv: rng.chance(0.5), ignore_value: rng.chance(0.2), ignore_lease: rng.chance(0.2) });
    let req: InternalRequest;
    if (roll < 3) req = { proposer, seq, put: put() };
    else if (roll === 3) req = { proposer, seq, delete_range: { key: b(pick(KEYS)), range_end: b(pick(['', '\0', 'c'])), prev_kv: rng.chance(0.5) } };
    else if (roll === 4)
      req = {
        proposer,
        seq,
        txn: {
          compare: [{ result: 'EQUAL', target: 'VERSION', key: b(pick(KEYS)), target_union: 'version', version: String(rng.nextInt(3)), range_end: b('') }],
          success: [{ request: 'request_put', request_put: put() }],
          failure: [{ request: 'request_delete_range', request_delete_range: { key: b(pick(KEYS)), range_end: b(''), prev_kv: false } }],
        },
      };
    else if (roll === 5) req = { proposer, seq, compaction: { revision: String(rng.nextInt(1000)), physical: rng.chance(0.5) } };
    else if (roll === 6) req = { proposer, seq, lease_grant: { ID: String(rng.nextUint32()), TTL: String(1 + rng.nextInt(60)) } };
    else if (roll === 7) req = { proposer, seq, lease_revoke: { ID: String(rng.nextUint32()) } };
    else req = { proposer, seq, member_attributes: { member_id: proposer, name: `m${i}`, client_urls: [`http://h${i}:2379`], zone: pick(['', 'zone-a']) } };
    if (rng.chance(0.3)) req.caller = { username: pick(['', 'root', 'röot ✓']) };
    out.push(req);
  }
  return out;
}

const PINNED_DIGEST = 'f284e9e42bc577dcd09075eb623e781f6ef42460451c01a01685b8516e87b5ee';

describe('log entries without a revision (S = 1)', () => {
  it('encode to exactly the pinned bytes and decode without a revision field', () => {
    const h = createHash('sha256');
    const entries = seededEntries(14, 400);
    for (const req of entries) {
      const bytes = Buffer.from(encodeInternalRequest(req));
      h.update(`${bytes.length}:`).update(bytes);
      expect('revision' in decodeInternalRequest(bytes)).toBe(false);
    }
    expect(entries.filter((e) => 'put' in e).length).toBeGreaterThan(100);
    expect(h.digest('hex')).toBe(PINNED_DIGEST);
  });
});

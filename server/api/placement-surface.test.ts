// The server-side pieces of the placement surface that need no running member: the /placement query
// parser, zones in the log (old entries without one still decode), and the placement version.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parsePlacementQuery } from './placement-http.ts';
import { decodeInternalRequest, encodeInternalRequest } from '../shard/request-codec.ts';
import { KvStateMachine } from '../shard/kv-state-machine.ts';
import { slotOf } from '../routing/slots.ts';

const SEED = Number(process.env.PLACEMENT_VIEW_SEED ?? 20261203);

describe('parsePlacementQuery', () => {
  it('answers the view for no query and a key for exactly one non-empty key', () => {
    expect(parsePlacementQuery('')).toEqual({ kind: 'view' });
    expect(parsePlacementQuery('key=%2Fapp%2F%7Btenant-7%7D%2Fcfg')).toEqual({ kind: 'key', key: Buffer.from('/app/{tenant-7}/cfg') });
    expect(parsePlacementQuery('key=a+b')).toEqual({ kind: 'key', key: Buffer.from('a b') });
    expect(parsePlacementQuery('key=%E2%82%AC')).toEqual({ kind: 'key', key: Buffer.from('€') });
  });

  it.each([
    ['key=', /key is empty/],
    ['key', /key is empty/],
    ['key=a&key=b', /more than once/],
    ['k=a', /unknown query parameter "k"/],
    ['key=%zz', /percent-encoding/],
    ['key=%4', /percent-encoding/],
    ['key=%FF', /not UTF-8/],
  ])('refuses %p with a message', (search, message) => {
    const q = parsePlacementQuery(search);
    expect(q.kind).toBe('error');
    expect(q.kind === 'error' ? q.message : '').toMatch(message);
  });

  it('round-trips any UTF-8 key through encodeURIComponent', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 30, unit: 'grapheme' }), (key) => {
        const q = parsePlacementQuery(`key=${encodeURIComponent(key)}`);
        expect(q).toEqual({ kind: 'key', key: Buffer.from(key, 'utf8') });
        if (q.kind === 'key') expect(slotOf(q.key)).toBe(slotOf(Buffer.from(key, 'utf8')));
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

describe('zones in the log', () => {
  const attributes = (zone?: string): Uint8Array =>
    encodeInternalRequest({
      proposer: '5',
      seq: '1',
      member_attributes: { member_id: '5', name: 'm5', client_urls: ['http://127.0.0.1:5'], ...(zone === undefined ? {} : { zone }) },
    });

  it('decodes an entry written before zones existed with an empty zone, and a new one with its zone', () => {
    const old = attributes();
    // Nothing of field 4 (zone) on the wire: exactly the bytes older members wrote.
    expect(Buffer.from(old).includes(Buffer.from([0x22]))).toBe(false);
    expect(decodeInternalRequest(old)).toMatchObject({ member_attributes: { member_id: '5', name: 'm5', zone: '' } });
    expect(decodeInternalRequest(attributes('eu-1a'))).toMatchObject({ member_attributes: { zone: 'eu-1a' } });
  });

  it('applies both, and loads a stored record without a zone', () => {
    const sm = new KvStateMachine(1, [], [{ id: 1, peerUrls: ['http://127.0.0.1:1'], isLearner: false }]);
    sm.apply({ term: 1, index: 1, type: 'normal', data: attributes() });
    expect(sm.published.get('5')).toEqual({ name: 'm5', clientUrls: ['http://127.0.0.1:5'], zone: '' });
    sm.apply({ term: 1, index: 2, type: 'normal', data: attributes('eu-1a') });
    expect(sm.published.get('5')?.zone).toBe('eu-1a');
    const legacy = new KvStateMachine(1, [[Buffer.from('m5'), Buffer.from(JSON.stringify({ name: 'm5', clientUrls: [] }))]]);
    expect(legacy.published.get('5')).toEqual({ name: 'm5', clientUrls: [] });
  });
});

describe('placement version', () => {
  it('is the Raft index of the last membership change, removals included, and survives a reload', () => {
    const sm = new KvStateMachine(1, [], [{ id: 1, peerUrls: ['http://127.0.0.1:1'], isLearner: false }]);
    expect(sm.membershipVersion()).toBe(0);
    const conf = (index: number, type: 'addLearner' | 'promoteLearner' | 'removeNode', voters: number[], learners: number[]): void =>
      sm.applyConfChange({ term: 1, index, type: 'confChange', data: new Uint8Array() }, { type, nodeId: 9 }, { voters, learners });
    conf(7, 'addLearner', [1], [9]);
    expect(sm.membershipVersion()).toBe(7);
    conf(12, 'promoteLearner', [1, 9], []);
    expect(sm.membershipVersion()).toBe(12);
    conf(20, 'removeNode', [1], []);
    expect(sm.membershipVersion()).toBe(20);
    expect(sm.members().map((m) => m.id)).toEqual(['1']);
    // Applying the same change again changes nothing (replay after a crash).
    conf(20, 'removeNode', [1], []);
    expect(sm.membershipVersion()).toBe(20);
    const records = sm.drainPersistOps().filter((op) => op.value !== null).map((op): [Buffer, Buffer] => [op.key, op.value!]);
    expect(new KvStateMachine(1, records).membershipVersion()).toBe(20);
  });
});

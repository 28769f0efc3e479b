// The pre-encoded WatchResponse (watch-encoder.ts) against proto-loader's own serializer: both the
// one-buffer form and the parts the stream writer copies once must decode as the object path does.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { KeyValue, MvccEvent } from '../mvcc/types.ts';
import { eventToWire } from './convert.ts';
import { etcdClients } from './proto.ts';
import { WatchEncoder } from './watch-encoder.ts';

const bytes = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
const kv: fc.Arbitrary<KeyValue> = fc.record({
  key: bytes,
  createRevision: fc.nat(),
  modRevision: fc.nat(),
  version: fc.nat(),
  value: bytes,
  lease: fc.constantFrom('0', '1', '7587843239447069953'),
}) as fc.Arbitrary<KeyValue>;
const event: fc.Arbitrary<MvccEvent> = fc.record({ type: fc.constantFrom('PUT' as const, 'DELETE' as const), kv, prevKv: fc.option(kv, { nil: null }) });

describe('watch encoder', () => {
  it('response() and responseParts() decode exactly as the object path does', () => {
    const method = etcdClients().Watch.service.Watch;
    const encoder = new WatchEncoder();
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 40 }), fc.array(event, { maxLength: 5 }), fc.nat({ max: 1000 }), (watchId, events, rev) => {
        const header = { cluster_id: '1', member_id: '2', revision: String(rev), raft_term: '3' };
        const viaObject = method.responseDeserialize(
          method.responseSerialize({ header, watch_id: watchId, events: events.map((e) => eventToWire(e, true)) }),
        );
        const whole = encoder.response(watchId, header, events, 5).subarray(5);
        const parts = encoder.responseParts(watchId, header, events, 5);
        expect(parts).toHaveLength(1 + events.length);
        expect(method.responseDeserialize(whole)).toEqual(viaObject);
        expect(method.responseDeserialize(Buffer.concat(parts).subarray(5))).toEqual(viaObject);
      }),
      { numRuns: 300 },
    );
  });
});

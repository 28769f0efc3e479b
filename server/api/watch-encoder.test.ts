// The pre-encoded WatchResponse (watch-encoder.ts) against proto-loader's own serializer: both the
// one-buffer form and the parts the stream writer copies once must decode as the object path does.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { KeyValue, MvccEvent } from '../mvcc/types.ts';
import { eventToWire } from '../etcd/convert.ts';
import { etcdClients } from '../etcd/proto.ts';
import { WatchEncoder } from './watch-encoder.ts';

// Short bytes are copied; large ones referenced when they own their memory, copied when they are a
// view into a larger buffer (a put's value inside its Raft entry).
const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  fc.uint8Array({ minLength: 1025, maxLength: 3000 }).map((a) => {
    const own = Buffer.alloc(a.length); // never from the shared pool: it owns its ArrayBuffer
    own.set(a);
    return own;
  }),
  fc.uint8Array({ minLength: 1025, maxLength: 3000 }).map((a) => Buffer.concat([Buffer.alloc(7), Buffer.from(a), Buffer.alloc(3)]).subarray(7, 7 + a.length)),
);
const kv: fc.Arbitrary<KeyValue> = fc.record({
  key: bytes,
  createRevision: fc.nat(),
  modRevision: fc.nat(),
  version: fc.nat(),
  value: bytes,
  lease: fc.constantFrom('0', '1', '7587843239447069953', '9223372036854775807'),
}) as fc.Arbitrary<KeyValue>;
const event: fc.Arbitrary<MvccEvent> = fc.record({ type: fc.constantFrom('PUT' as const, 'DELETE' as const), kv, prevKv: fc.option(kv, { nil: null }) });

describe('watch encoder', () => {
  it('response() and responseParts() decode exactly as the object path does', () => {
    const method = etcdClients().Watch.service.Watch;
    const encoder = new WatchEncoder();
    let referencedSeen = 0;
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 40 }), fc.array(event, { maxLength: 5 }), fc.nat({ max: 1000 }), (watchId, events, rev) => {
        const header = { cluster_id: '1', member_id: '2', revision: String(rev), raft_term: '3' };
        const viaObject = method.responseDeserialize(
          method.responseSerialize({ header, watch_id: watchId, events: events.map((e) => eventToWire(e, true)) }),
        );
        const whole = encoder.response(watchId, header, events, 5).subarray(5);
        const parts = encoder.responseParts(watchId, header, events, 5);
        expect(parts.length).toBeGreaterThanOrEqual(1 + events.length);
        expect(method.responseDeserialize(whole)).toEqual(viaObject);
        expect(method.responseDeserialize(Buffer.concat(parts).subarray(5))).toEqual(viaObject);
        // Large values that own their memory are sent as they are; views are never referenced.
        for (const e of events) {
          if (e.kv.value.length > 1024 && e.kv.value.buffer.byteLength === e.kv.value.length) referencedSeen++;
          for (const k of [e.kv, e.prevKv]) {
            if (k === null || k.value.length <= 1024) continue;
            const owns = k.value.byteOffset === 0 && k.value.buffer.byteLength === k.value.length;
            expect(parts.includes(k.value)).toBe(owns);
          }
        }
      }),
      { numRuns: 300 },
    );
    expect(referencedSeen).toBeGreaterThan(0);
  });
});

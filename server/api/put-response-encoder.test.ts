// The hand-written PutResponse against proto-loader's own serializer and deserializer.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { etcdClients } from '../etcd/proto.ts';
import { encodePutResponse } from './put-response-encoder.ts';

const uint64Text = fc.oneof(fc.constantFrom('0', '1', '127', '128', '9007199254740993', '18446744073709551615'), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(String));

describe('put response encoder', () => {
  it('decodes with the client deserializer exactly as the object path does', () => {
    const method = etcdClients().KV.service.Put;
    fc.assert(
      fc.property(fc.record({ cluster_id: uint64Text, member_id: uint64Text, revision: uint64Text, raft_term: uint64Text }), (header) => {
        const viaObject = method.responseDeserialize(method.responseSerialize({ header, prev_kv: null }));
        expect(method.responseDeserialize(encodePutResponse(header))).toEqual(viaObject);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses a header field that is not a uint64', () => {
    expect(() => encodePutResponse({ cluster_id: '-1', member_id: '1', revision: '1', raft_term: '1' })).toThrow(/cluster_id/);
  });
});

// The JSON gateway's pure parts: splitting a streaming body into JSON values, grpc-gateway's HTTP status
// per gRPC code, and fields at their default left out as Go's structs leave them (json-gateway.ts).
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { protoMessageRoot } from '../protobuf/proto-schemas.ts';
import { etcdClients } from '../etcd/proto.ts';
import { GATEWAY_ROUTES, httpStatusOf, requestBytes, splitJsonValues, withoutDefaults } from './json-gateway.ts';

describe('splitJsonValues', () => {
  it('takes whole values, keeps an unfinished one, and is not fooled by braces in strings', () => {
    expect(splitJsonValues('{"a":1} {"b":"}{"}\n{"c":')).toEqual({ values: ['{"a":1}', '{"b":"}{"}'], rest: '{"c":' });
    expect(splitJsonValues('{"k":"\\"}"}')).toEqual({ values: ['{"k":"\\"}"}'], rest: '' });
    expect(splitJsonValues('  ')).toEqual({ values: [], rest: '' });
    expect(splitJsonValues('{"a":1}x')).toEqual({ values: ['{"a":1}'], rest: 'x' }); // left for JSON.parse to refuse
  });
});

describe('httpStatusOf', () => {
  it('maps gRPC codes as grpc-gateway v1 does', () => {
    expect(httpStatusOf(grpc.status.INVALID_ARGUMENT)).toBe(400);
    expect(httpStatusOf(grpc.status.OUT_OF_RANGE)).toBe(400);
    expect(httpStatusOf(grpc.status.UNAUTHENTICATED)).toBe(401);
    expect(httpStatusOf(grpc.status.PERMISSION_DENIED)).toBe(403);
    expect(httpStatusOf(grpc.status.NOT_FOUND)).toBe(404);
    expect(httpStatusOf(grpc.status.FAILED_PRECONDITION)).toBe(412);
    expect(httpStatusOf(grpc.status.RESOURCE_EXHAUSTED)).toBe(429);
    expect(httpStatusOf(grpc.status.UNAVAILABLE)).toBe(503);
    expect(httpStatusOf(grpc.status.DEADLINE_EXCEEDED)).toBe(504);
    expect(httpStatusOf(grpc.status.INTERNAL)).toBe(500);
  });
});

describe('withoutDefaults', () => {
  it('drops zero scalars, the zero enum and empty lists; keeps nested messages and "0" in a string field', () => {
    const watchResponse = protoMessageRoot().lookupType('etcdserverpb.WatchResponse');
    const answer = {
      header: { revision: '5', raft_term: '0' },
      watch_id: '0',
      created: false,
      events: [{ type: 'PUT', kv: { key: 'YQ==', lease: '0', version: '1' } }, { type: 'DELETE', kv: { key: 'YQ==' } }],
      cancel_reason: '',
    };
    expect(withoutDefaults(watchResponse, answer)).toEqual({
      header: { revision: '5' },
      events: [{ kv: { key: 'YQ==', version: '1' } }, { type: 'DELETE', kv: { key: 'YQ==' } }],
    });
    const userAdd = protoMessageRoot().lookupType('etcdserverpb.AuthUserAddRequest');
    expect(withoutDefaults(userAdd, { name: '0', password: '' })).toEqual({ name: '0' });
  });
});

describe('GATEWAY_ROUTES', () => {
  it('routes every path of etcd\'s gateway, the kv/lease aliases included', () => {
    expect(GATEWAY_ROUTES.size).toBe(51); // the 48 RPCs of the API reference with gateway paths, and 3 aliases
    expect(GATEWAY_ROUTES.get('/v3/kv/lease/timetolive')).toEqual({ service: 'Lease', method: 'LeaseTimeToLive' });
    expect(GATEWAY_ROUTES.get('/v3/maintenance/transfer-leadership')).toEqual({ service: 'Maintenance', method: 'MoveLeader' });
  });
});

describe('requestBytes', () => {
  it('encodes an object (or an empty body), and refuses malformed JSON and values that are not objects', () => {
    const range = etcdClients().KV.service.Range as Parameters<typeof requestBytes>[0];
    expect(Buffer.isBuffer(requestBytes(range, '{"key":"Zm9v","limit":"2"}'))).toBe(true);
    expect(requestBytes(range, '')).toEqual(Buffer.alloc(0));
    for (const bad of ['{bad', '[]', '"key"', '3', 'null']) expect(requestBytes(range, bad), bad).toBeInstanceOf(Error);
  });
});

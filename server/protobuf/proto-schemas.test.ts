// The services proto-schemas.ts builds from its one parse must be exactly what @grpc/proto-loader's
// loadSync gives for the same file and options: the same methods, paths, streaming flags and client
// aliases, and, for every request and response type, the same bytes out and the same objects in.
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import * as path from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { LOADER_OPTIONS } from '../etcd/proto.ts';
import { PROTO_ROOT, grpcServiceClient, type MessageConversion } from './proto-schemas.ts';

interface Case {
  readonly file: string;
  readonly service: string;
  readonly conversion: MessageConversion;
}

// Each service with the conversion its production caller uses.
const CASES: readonly Case[] = [
  ...['KV', 'Watch', 'Lease', 'Cluster', 'Maintenance', 'Auth'].map((name) => ({
    file: 'etcd/api/etcdserverpb/rpc.proto',
    service: `etcdserverpb.${name}`,
    conversion: LOADER_OPTIONS,
  })),
  { file: 'etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto', service: 'v3lockpb.Lock', conversion: LOADER_OPTIONS },
  { file: 'etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto', service: 'v3electionpb.Election', conversion: LOADER_OPTIONS },
  { file: 'synod/placement.proto', service: 'synod.v1.Placement', conversion: LOADER_OPTIONS },
  { file: 'synod/shard_peer.proto', service: 'synod.shard.ShardPeer', conversion: LOADER_OPTIONS },
  { file: 'synod/lease_forward.proto', service: 'synod.lease.LeaseForward', conversion: { longs: String, defaults: true } },
  { file: 'synod/transport.proto', service: 'synod.transport.Peer', conversion: { longs: Number, enums: String, bytes: Buffer, defaults: true } },
];

type MethodDef = grpc.MethodDefinition<unknown, unknown>;

function loaderService(c: Case): Record<string, MethodDef> {
  const definition = protoLoader.loadSync(c.file, { ...c.conversion, keepCase: true, includeDirs: [PROTO_ROOT] });
  return definition[c.service] as unknown as Record<string, MethodDef>;
}

/** The case's file on its own, for the message types to fill in. */
function parsed(file: string): protobuf.Root {
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => path.join(PROTO_ROOT, target);
  root.loadSync(file, { keepCase: true });
  root.resolveAll();
  return root;
}

/** A message of `type` with every field set (nested messages `depth` levels down), as a client would pass it. */
function sample(type: protobuf.Type, seed: number, depth = 2): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const oneofsTaken = new Set<string>();
  for (const field of type.fieldsArray) {
    field.resolve();
    if (field.partOf) {
      if (oneofsTaken.has(field.partOf.name)) continue;
      oneofsTaken.add(field.partOf.name);
    }
    const one = (): unknown => {
      if (field.resolvedType && 'fieldsArray' in field.resolvedType) {
        return depth > 0 ? sample(field.resolvedType as protobuf.Type, seed + 1, depth - 1) : {};
      }
      if (field.resolvedType) return Object.keys((field.resolvedType as protobuf.Enum).values).at(-1);
      switch (field.type) {
        case 'string': return `s${seed}-${field.name}`;
        case 'bytes': return Buffer.from([seed & 0xff, 0, 0xfe]);
        case 'bool': return true;
        case 'double': case 'float': return 1.5;
        case 'int64': case 'uint64': case 'sint64': case 'fixed64': case 'sfixed64': return '9007199254740993';
        default: return 7 + seed;
      }
    };
    if (field.map) continue;
    out[field.name] = field.repeated ? [one(), one()] : one();
  }
  return out;
}

describe('services built from one parse', () => {
  for (const c of CASES) {
    it(`${c.service}: as proto-loader's loadSync builds it`, () => {
      const expected = loaderService(c);
      const actual = grpcServiceClient(c.service, c.conversion).service as unknown as Record<string, MethodDef>;
      expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
      const reflected = parsed(c.file).lookupService(c.service);
      for (const [name, want] of Object.entries(expected)) {
        const got = actual[name]!;
        expect(got.path).toBe(want.path);
        expect(got.requestStream).toBe(want.requestStream);
        expect(got.responseStream).toBe(want.responseStream);
        expect(got.originalName).toBe(want.originalName);
        for (const side of ['request', 'response'] as const) {
          const serialize = side === 'request' ? 'requestSerialize' : 'responseSerialize';
          const deserialize = side === 'request' ? 'requestDeserialize' : 'responseDeserialize';
          const typeName = (want as unknown as Record<string, { type: { name: string } }>)[`${side}Type`]!.type.name;
          const method = reflected.methods[name]!;
          const type = side === 'request' ? method.resolvedRequestType! : method.resolvedResponseType!;
          for (const message of [{}, sample(type, name.length)]) {
            const bytes = want[serialize](message);
            expect(got[serialize](message), `${name} ${side} ${typeName}`).toEqual(bytes);
            expect(got[deserialize](bytes), `${name} ${side} ${typeName}`).toEqual(want[deserialize](bytes));
          }
        }
      }
    });
  }
});

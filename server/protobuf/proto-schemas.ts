// The .proto files, parsed once per process. A member used to parse etcd's rpc.proto seven times at
// start (once per service or codec that imports it) and have @grpc/proto-loader build a descriptor for
// every message of every load, ~150 ms of CPU per start; this module parses the files twice:
//  - every gRPC service Synod serves or calls (etcd's eight, Placement, LeaseForward, ShardPeer, the
//    peer transport) from one Root of @grpc/proto-loader's own copy of protobufjs, the copy its
//    loadSync would have used, with method definitions built as loadSync builds them (same
//    serializers, same conversion options) minus the reflection descriptors nothing here reads;
//  - the message types the project's own protobufjs works on directly (the request strictness rules,
//    the Raft entry codec) from one Root of that copy.
// Why not one Root of the project's protobufjs (8.x) for both, which would save ~60 ms per start:
// protobufjs 8 decodes a proto3 string field strictly (the editions feature utf8_validation is VERIFY
// for proto3), and refuses invalid UTF-8 with "Error deserializing request". etcd's gogoproto decoders
// take any bytes in a string, and so must the services; 7.x reads them loosely. test/fuzz-methods.test.ts
// caught it (RoleAdd with a name of invalid UTF-8).
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

/** Absolute path of the repository's proto/ directory (the include root of every import). */
export const PROTO_ROOT: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');

/** etcd's five .proto files, relative to PROTO_ROOT (the import paths etcd uses). */
export const ETCD_PROTO_FILES: readonly string[] = Object.freeze([
  'etcd/api/mvccpb/kv.proto',
  'etcd/api/authpb/auth.proto',
  'etcd/api/etcdserverpb/rpc.proto',
  'etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto',
  'etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto',
]);

/** Synod's own service files; what they import comes along. */
const SYNOD_SERVICE_FILES: readonly string[] = [
  'synod/placement.proto',
  'synod/lease_forward.proto',
  'synod/shard_peer.proto',
  'synod/transport.proto',
];

/** Files whose messages the project's protobufjs encodes and checks: the client API and the Raft entries. */
const MESSAGE_FILES: readonly string[] = [...ETCD_PROTO_FILES, 'synod/placement.proto', 'synod/internal.proto'];

/**
 * How received messages become objects (protobufjs's toObject options, as proto-loader takes them):
 * every Synod service keeps field names as written (`keepCase` is a parse option, fixed here).
 */
export type MessageConversion = protobuf.IConversionOptions;

/** A module as @grpc/proto-loader resolves it: its protobufjs (7.x; same API as ours here), its camelCase. */
export function loaderRequire<T>(id: string): T {
  const projectRequire = createRequire(import.meta.url);
  return createRequire(projectRequire.resolve('@grpc/proto-loader'))(id) as T;
}

function parseFiles(pb: typeof protobuf, files: readonly string[]): protobuf.Root {
  const root = new pb.Root();
  root.resolvePath = (_origin: string, target: string): string =>
    path.isAbsolute(target) ? target : path.join(PROTO_ROOT, target);
  root.loadSync([...files], { keepCase: true });
  root.resolveAll();
  return root;
}

let serviceRoot: protobuf.Root | undefined;
let messageRoot: protobuf.Root | undefined;

/** The project's protobufjs Root of etcd's files, placement.proto and internal.proto (parsed once). */
export function protoMessageRoot(): protobuf.Root {
  messageRoot ??= parseFiles(protobuf, MESSAGE_FILES);
  return messageRoot;
}

function serializer(type: protobuf.Type): (value: unknown) => Buffer {
  return (value: unknown): Buffer => {
    if (Array.isArray(value)) {
      throw new Error(`Failed to serialize message: expected object with ${type.name} structure, got array instead`);
    }
    const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
    // protobufjs writes into a Buffer under Node; Buffer.from(buffer) would copy every message.
    return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(type: protobuf.Type, conversion: MessageConversion): (bytes: Buffer) => unknown {
  return (bytes: Buffer): unknown => type.toObject(type.decode(bytes), conversion);
}

/**
 * The client constructor of the gRPC service `serviceName` (fully qualified, e.g. `etcdserverpb.KV`);
 * its `.service` is the definition a server adds. Received messages are converted with `conversion`.
 */
export function grpcServiceClient(serviceName: string, conversion: MessageConversion): grpc.ServiceClientConstructor {
  serviceRoot ??= parseFiles(loaderRequire<typeof protobuf>('protobufjs'), [...ETCD_PROTO_FILES, ...SYNOD_SERVICE_FILES]);
  const service = serviceRoot.lookupService(serviceName);
  // The name of the client's alias for each method (grpc-js adds it beside the method's own name).
  const camelCase = loaderRequire<(name: string) => string>('lodash.camelcase');
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methodsArray) {
    // resolveAll above resolved every method's request and response types.
    const requestType = method.resolvedRequestType!;
    const responseType = method.resolvedResponseType!;
    definition[method.name] = {
      path: `/${serviceName}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializer(requestType),
      requestDeserialize: deserializer(requestType, conversion),
      responseSerialize: serializer(responseType),
      responseDeserialize: deserializer(responseType, conversion),
      originalName: camelCase(method.name),
    };
  }
  return grpc.makeClientConstructor(definition, serviceName);
}

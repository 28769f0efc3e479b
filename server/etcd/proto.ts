// Synod's etcd-v3 wire-compatible services (proto/etcd/...): the gRPC service definitions (for
// grpc.Server.addService) and client constructors (for tests), built from the schemas
// proto-schemas.ts parses once per process, and cached.

import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { ETCD_PROTO_FILES, PROTO_ROOT, grpcServiceClient, loaderRequire } from '../protobuf/proto-schemas.ts';

export { PROTO_ROOT };

/** The five .proto files, relative to PROTO_ROOT (same import paths etcd uses). */
export const PROTO_FILES: readonly string[] = ETCD_PROTO_FILES;

/**
 * Loader options: snake_case field names kept as in the .proto (`range_end`, `prev_kv`, `TTL`),
 * 64-bit integers as decimal strings, enums as their names, bytes as Buffer, defaults filled in,
 * and a virtual property naming the set member of each oneof (e.g. `request: 'request_put'`).
 * The services come from proto-schemas.ts, which converts messages with these; clients that load
 * the files with @grpc/proto-loader themselves (tests, examples) pass them to loadSync.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  bytes: Buffer,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

/** Fully-qualified gRPC service names, keyed by the short names used in this codebase. */
export const SERVICE_NAMES = Object.freeze({
  KV: 'etcdserverpb.KV',
  Watch: 'etcdserverpb.Watch',
  Lease: 'etcdserverpb.Lease',
  Cluster: 'etcdserverpb.Cluster',
  Maintenance: 'etcdserverpb.Maintenance',
  Auth: 'etcdserverpb.Auth',
  Lock: 'v3lockpb.Lock',
  Election: 'v3electionpb.Election',
} as const);

export type EtcdServiceName = keyof typeof SERVICE_NAMES;

export interface EtcdServices {
  KV: grpc.ServiceDefinition;
  Watch: grpc.ServiceDefinition;
  Lease: grpc.ServiceDefinition;
  Cluster: grpc.ServiceDefinition;
  Maintenance: grpc.ServiceDefinition;
  Auth: grpc.ServiceDefinition;
  Lock: grpc.ServiceDefinition;
  Election: grpc.ServiceDefinition;
}

export interface EtcdClients {
  KV: grpc.ServiceClientConstructor;
  Watch: grpc.ServiceClientConstructor;
  Lease: grpc.ServiceClientConstructor;
  Cluster: grpc.ServiceClientConstructor;
  Maintenance: grpc.ServiceClientConstructor;
  Auth: grpc.ServiceClientConstructor;
  Lock: grpc.ServiceClientConstructor;
  Election: grpc.ServiceClientConstructor;
}

function lookup(fqName: string): grpc.ServiceClientConstructor {
  return grpcServiceClient(fqName, LOADER_OPTIONS);
}

let clients: EtcdClients | undefined;

/** Client constructors of the eight etcd services (cached); mostly for tests. */
export function etcdClients(): EtcdClients {
  if (clients === undefined) {
    clients = {
      KV: lookup(SERVICE_NAMES.KV),
      Watch: lookup(SERVICE_NAMES.Watch),
      Lease: lookup(SERVICE_NAMES.Lease),
      Cluster: lookup(SERVICE_NAMES.Cluster),
      Maintenance: lookup(SERVICE_NAMES.Maintenance),
      Auth: lookup(SERVICE_NAMES.Auth),
      Lock: lookup(SERVICE_NAMES.Lock),
      Election: lookup(SERVICE_NAMES.Election),
    };
  }
  return clients;
}

/**
 * Lets every method of `service` be answered with a Buffer the handler encoded itself (the watch fan-out
 * encodes each event once for all its watchers) as well as with a plain object: the response serializer
 * passes Buffers through untouched. Patched in place, once, so the definition stays the one the client
 * constructor carries (clients only use the request serializer and the response deserializer).
 */
const preEncodedOk = new WeakSet<grpc.ServiceDefinition>();
function allowPreEncodedResponses(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  if (preEncodedOk.has(service)) return service;
  for (const method of Object.values(service as Record<string, grpc.MethodDefinition<unknown, unknown>>)) {
    const serialize = method.responseSerialize;
    method.responseSerialize = (value: unknown) => (Buffer.isBuffer(value) ? value : serialize(value));
  }
  preEncodedOk.add(service);
  return service;
}

/** ServiceDefinitions of the eight etcd services, ready for grpc.Server.addService. */
export function etcdServices(): EtcdServices {
  const c = etcdClients();
  return {
    KV: allowPreEncodedResponses(c.KV.service),
    Watch: allowPreEncodedResponses(c.Watch.service),
    Lease: allowPreEncodedResponses(c.Lease.service),
    Cluster: c.Cluster.service,
    Maintenance: c.Maintenance.service,
    Auth: c.Auth.service,
    Lock: c.Lock.service,
    Election: c.Election.service,
  };
}

interface ProtobufLimits {
  util: { recursionLimit: number };
  Reader: { recursionLimit: number };
}

/**
 * Lets protobufjs decode, convert and encode messages nested `levels` deep. Its default (100, protoc's)
 * is below what etcd accepts: a Txn nested 128 levels (two messages per level, TxnRequest and
 * RequestOp, then its response and the Raft entry around it). etcd has no depth limit, only the
 * op budget (--max-txn-ops), and wire-check.ts cuts anything deeper than that budget allows before
 * protobufjs sees it, so this stays bounded. Applies to both copies of protobufjs: the one
 * @grpc/proto-loader decodes requests and encodes responses with, and the one the Raft entry codec
 * uses. Only ever raises the limits (they are process-wide).
 */
export function allowMessageNesting(levels: number): void {
  const own = protobuf as unknown as ProtobufLimits;
  const loaders = loaderRequire<ProtobufLimits>('protobufjs');
  for (const pb of [own, loaders]) {
    pb.util.recursionLimit = Math.max(pb.util.recursionLimit, levels);
    pb.Reader.recursionLimit = Math.max(pb.Reader.recursionLimit, levels);
  }
}

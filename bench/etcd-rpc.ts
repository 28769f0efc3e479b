// A thin etcd v3 gRPC client for the load generator, built on @grpc/grpc-js and the project's own
// .proto files, so the same bytes go to etcd and to Synod. Each EtcdConnection is one TCP
// connection (a local subchannel pool stops grpc-js from sharing it) carrying KV, Lease, Watch
// and Maintenance.
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../server/etcd/proto.ts';

export type RpcCallback = (err: grpc.ServiceError | null, res: unknown) => void;
type UnaryMethod = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: RpcCallback) => grpc.ClientUnaryCall;
type StreamMethod = () => grpc.ClientDuplexStream<object, unknown>;

/** gRPC status code a server sends for a service or method it does not implement. */
export const UNIMPLEMENTED = grpc.status.UNIMPLEMENTED;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.use_local_subchannel_pool': 1,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
};

const DEFAULT_TIMEOUT_MS = 15_000;

export class EtcdConnection {
  readonly endpoint: string;
  private readonly channel: grpc.Channel;
  private readonly kv: grpc.Client;
  private readonly lease: grpc.Client;
  private readonly watchClient: grpc.Client;
  private readonly maintenance: grpc.Client;
  private readonly methods = new Map<string, UnaryMethod>();

  constructor(endpoint: string) {
    this.endpoint = endpoint;
    const creds = grpc.credentials.createInsecure();
    this.channel = new grpc.Channel(endpoint, creds, CHANNEL_OPTIONS);
    const c = etcdClients();
    const opts = { channelOverride: this.channel };
    this.kv = new c.KV(endpoint, creds, opts);
    this.lease = new c.Lease(endpoint, creds, opts);
    this.watchClient = new c.Watch(endpoint, creds, opts);
    this.maintenance = new c.Maintenance(endpoint, creds, opts);
  }

  private method(client: grpc.Client, name: string): UnaryMethod {
    const cacheKey = `${client === this.kv ? 'kv' : client === this.lease ? 'lease' : 'm'}.${name}`;
    let m = this.methods.get(cacheKey);
    if (m === undefined) {
      const fn = (client as unknown as Record<string, UnaryMethod>)[name];
      if (typeof fn !== 'function') throw new Error(`no gRPC method ${name}`);
      m = fn.bind(client);
      this.methods.set(cacheKey, m);
    }
    return m;
  }

  private call<T>(client: grpc.Client, name: string, req: object, timeoutMs: number): Promise<T> {
    const m = this.method(client, name);
    return new Promise<T>((resolve, reject) => {
      m(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  put(req: PutRequest, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ header: ResponseHeader }> {
    return this.call(this.kv, 'Put', req, timeoutMs);
  }

  range(req: RangeRequest, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RangeResponse> {
    return this.call(this.kv, 'Range', req, timeoutMs);
  }

  txn(req: object, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<TxnResponse> {
    return this.call(this.kv, 'Txn', req, timeoutMs);
  }

  deleteRange(req: RangeRequest, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ header: ResponseHeader; deleted: string }> {
    return this.call(this.kv, 'DeleteRange', req, timeoutMs);
  }

  leaseGrant(ttlSeconds: number, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ ID: string; TTL: string; error: string }> {
    return this.call(this.lease, 'LeaseGrant', { TTL: ttlSeconds, ID: 0 }, timeoutMs);
  }

  leaseRevoke(id: string, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<{ header: ResponseHeader }> {
    return this.call(this.lease, 'LeaseRevoke', { ID: id }, timeoutMs);
  }

  status(timeoutMs = 2_000): Promise<StatusResponse> {
    return this.call(this.maintenance, 'Status', {}, timeoutMs);
  }

  /** A bidirectional Watch stream (etcdserverpb.Watch/Watch). */
  watchStream(): grpc.ClientDuplexStream<object, WatchResponse> {
    const fn = (this.watchClient as unknown as Record<string, StreamMethod>)['Watch'];
    return fn.call(this.watchClient) as grpc.ClientDuplexStream<object, WatchResponse>;
  }

  /** A bidirectional LeaseKeepAlive stream. */
  keepAliveStream(): grpc.ClientDuplexStream<object, KeepAliveResponse> {
    const fn = (this.lease as unknown as Record<string, StreamMethod>)['LeaseKeepAlive'];
    return fn.call(this.lease) as grpc.ClientDuplexStream<object, KeepAliveResponse>;
  }

  close(): void {
    this.kv.close();
    this.lease.close();
    this.watchClient.close();
    this.maintenance.close();
    this.channel.close();
  }
}

export interface ResponseHeader {
  cluster_id: string;
  member_id: string;
  revision: string;
  raft_term: string;
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease?: string;
}

export interface RangeRequest {
  key: Buffer;
  range_end?: Buffer;
  serializable?: boolean;
  count_only?: boolean;
  limit?: number;
}

export interface WireKeyValue {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  create_revision: string;
  version: string;
}

export interface RangeResponse {
  header: ResponseHeader;
  kvs: WireKeyValue[];
  count: string;
}

export interface TxnResponse {
  header: ResponseHeader;
  succeeded: boolean;
  responses: Array<{ response_range?: RangeResponse | null }>;
}

export interface StatusResponse {
  header: ResponseHeader;
  leader: string;
  raftIndex: string;
  raftTerm: string;
  version: string;
}

export interface WatchResponse {
  header: ResponseHeader;
  watch_id: string;
  created: boolean;
  canceled: boolean;
  cancel_reason: string;
  events: Array<{ type: string; kv: WireKeyValue | null }>;
}

export interface KeepAliveResponse {
  ID: string;
  TTL: string;
}

/** The gRPC status code of an error, or undefined when it is not a gRPC error. */
export function grpcCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'number') {
    return (err as { code: number }).code;
  }
  return undefined;
}

/** A short, stable description of an error for the error tally ("DEADLINE_EXCEEDED: ..."). */
export function describeError(err: unknown): string {
  const code = grpcCode(err);
  const text = err instanceof Error ? ((err as grpc.ServiceError).details ?? err.message) : String(err);
  const name = code === undefined ? 'ERROR' : (grpc.status[code] ?? String(code));
  return `${name}: ${text}`.slice(0, 120);
}

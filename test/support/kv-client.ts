// A small promise-based etcd v3 client over the project's own proto files, for tests that need
// concurrency or exact statuses (etcdctl covers the command-line path).
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../../server/etcd/proto.ts';

type Callback<T> = (err: grpc.ServiceError | null, res: T) => void;
type UnaryMethod = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: Callback<unknown>) => void;

export interface WireKv {
  key: Buffer;
  value: Buffer;
  create_revision: string;
  mod_revision: string;
  version: string;
  lease: string;
}

export interface Header {
  cluster_id: string;
  member_id: string;
  revision: string;
  raft_term: string;
}

export class KvClient {
  private readonly kv: grpc.Client;
  private readonly maintenance: grpc.Client;
  readonly endpoint: string;

  constructor(endpoint: string) {
    this.endpoint = endpoint;
    const clients = etcdClients();
    // Own subchannels: grpc-js otherwise shares one per address across clients, and a new client for
    // a member that was just restarted would inherit the old connection's backoff and fail at once.
    const options = { 'grpc.use_local_subchannel_pool': 1 };
    this.kv = new clients.KV(endpoint, grpc.credentials.createInsecure(), options);
    this.maintenance = new clients.Maintenance(endpoint, grpc.credentials.createInsecure(), options);
  }

  private call<T>(client: grpc.Client, method: string, req: object, timeoutMs: number): Promise<T> {
    const fn = (client as unknown as Record<string, UnaryMethod>)[method].bind(client);
    return new Promise<T>((resolve, reject) => {
      fn(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  put(key: string | Buffer, value: string | Buffer, extra: object = {}, timeoutMs = 5_000): Promise<{ header: Header; prev_kv: WireKv | null }> {
    return this.call(this.kv, 'Put', { key: Buffer.from(key), value: Buffer.from(value), ...extra }, timeoutMs);
  }

  range(key: string | Buffer, extra: object = {}, timeoutMs = 5_000): Promise<{ header: Header; kvs: WireKv[]; more: boolean; count: string }> {
    return this.call(this.kv, 'Range', { key: Buffer.from(key), ...extra }, timeoutMs);
  }

  deleteRange(key: string | Buffer, extra: object = {}, timeoutMs = 5_000): Promise<{ header: Header; deleted: string; prev_kvs: WireKv[] }> {
    return this.call(this.kv, 'DeleteRange', { key: Buffer.from(key), ...extra }, timeoutMs);
  }

  txn(req: object, timeoutMs = 5_000): Promise<{ header: Header; succeeded: boolean; responses: unknown[] }> {
    return this.call(this.kv, 'Txn', req, timeoutMs);
  }

  compact(revision: number, timeoutMs = 5_000): Promise<{ header: Header }> {
    return this.call(this.kv, 'Compact', { revision }, timeoutMs);
  }

  status(timeoutMs = 5_000): Promise<{ header: Header; leader: string; raftTerm: string; raftIndex: string }> {
    return this.call(this.maintenance, 'Status', {}, timeoutMs);
  }

  close(): void {
    this.kv.close();
    this.maintenance.close();
  }
}

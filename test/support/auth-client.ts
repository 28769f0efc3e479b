// A raw gRPC etcd client for auth and TLS tests: any unary method of any etcd service, with the
// `token` metadata etcd clients send after Authenticate, optional TLS credentials, and watch streams
// that carry the token too.
import * as grpc from '@grpc/grpc-js';
import { etcdClients, type EtcdClients } from '../../server/etcd/proto.ts';
import { ResponseQueue, type WatchResponse } from './watch-client.ts';

type Unary = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;
type ServiceName = keyof EtcdClients;

export class AuthClient {
  readonly address: string;
  token: string | null = null;
  private readonly credentials: grpc.ChannelCredentials;
  private readonly clients = new Map<ServiceName, grpc.Client>();
  private readonly streams: Array<{ end(): void; cancel(): void }> = [];

  constructor(address: string, credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure()) {
    this.address = address;
    this.credentials = credentials;
  }

  private client(service: ServiceName): grpc.Client {
    let c = this.clients.get(service);
    if (!c) {
      c = new (etcdClients()[service])(this.address, this.credentials);
      this.clients.set(service, c);
    }
    return c;
  }

  metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.token) md.set('token', this.token);
    return md;
  }

  call<T = Record<string, unknown>>(service: ServiceName, method: string, req: object, timeoutMs = 8_000): Promise<T> {
    const c = this.client(service);
    const fn = (c as unknown as Record<string, Unary>)[method].bind(c);
    return new Promise<T>((resolve, reject) => {
      fn(req, this.metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  /** Authenticates and keeps the token for later calls. */
  async login(name: string, password: string): Promise<string> {
    const res = await this.call<{ token: string }>('Auth', 'Authenticate', { name, password });
    this.token = res.token;
    return res.token;
  }

  put(key: string, value: string, extra: object = {}): Promise<{ header: { revision: string } }> {
    return this.call('KV', 'Put', { key: Buffer.from(key), value: Buffer.from(value), ...extra });
  }

  get(key: string, rangeEnd = '', extra: object = {}): Promise<{ kvs: Array<{ key: Buffer; value: Buffer }>; count: string }> {
    return this.call('KV', 'Range', { key: Buffer.from(key), range_end: Buffer.from(rangeEnd), ...extra });
  }

  del(key: string, rangeEnd = ''): Promise<{ deleted: string }> {
    return this.call('KV', 'DeleteRange', { key: Buffer.from(key), range_end: Buffer.from(rangeEnd) });
  }

  /** A watch stream carrying this client's token (as it is now). */
  watch(): AuthWatchStream {
    const c = this.client('Watch');
    const call = (c as unknown as { Watch(md: grpc.Metadata): grpc.ClientDuplexStream<object, WatchResponse> }).Watch(this.metadata());
    const stream = new AuthWatchStream(call);
    this.streams.push(call);
    return stream;
  }

  close(): void {
    for (const s of this.streams) {
      s.end();
      s.cancel();
    }
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

export class AuthWatchStream {
  private readonly call: grpc.ClientDuplexStream<object, WatchResponse>;
  private readonly responses: ResponseQueue<WatchResponse>;

  constructor(call: grpc.ClientDuplexStream<object, WatchResponse>) {
    this.call = call;
    // A refused stream (permission, bad token) ends next() with its error at once.
    this.responses = new ResponseQueue(call, true);
  }

  create(key: string, rangeEnd = '', extra: object = {}): void {
    this.call.write({ create_request: { key: Buffer.from(key), range_end: Buffer.from(rangeEnd), ...extra } });
  }

  next(timeoutMs = 5_000): Promise<WatchResponse> {
    return this.responses.next(timeoutMs);
  }
}

/** Expects `p` to fail with the given gRPC code and exact etcd message; returns the error. */
export async function failure(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as grpc.ServiceError;
    return { code: e.code, details: e.details };
  }
  throw new Error('expected the call to fail, it succeeded');
}

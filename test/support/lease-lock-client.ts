// Promise-based Lease, Lock and KV calls plus a keep-alive stream, for lease and lock tests.
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../../server/etcd/proto.ts';

type Unary = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: unknown) => void) => void;

export class LeaseLockClient {
  private readonly lease: grpc.Client;
  private readonly lock: grpc.Client;
  private readonly kv: grpc.Client;

  constructor(endpoint: string) {
    const c = etcdClients();
    const creds = grpc.credentials.createInsecure();
    this.lease = new c.Lease(endpoint, creds);
    this.lock = new c.Lock(endpoint, creds);
    this.kv = new c.KV(endpoint, creds);
  }

  private call<T>(client: grpc.Client, method: string, req: object, timeoutMs: number): Promise<T> {
    const fn = (client as unknown as Record<string, Unary>)[method].bind(client);
    return new Promise<T>((resolve, reject) => {
      fn(req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
    });
  }

  /** `id`: the client's own choice of lease id (etcd allows any unused one); absent, the server draws one. */
  grant(ttlSeconds: number, timeoutMs = 3_000, id?: string): Promise<{ ID: string; TTL: string }> {
    return this.call(this.lease, 'LeaseGrant', id === undefined ? { TTL: ttlSeconds } : { TTL: ttlSeconds, ID: id }, timeoutMs);
  }

  revoke(id: string, timeoutMs = 3_000): Promise<unknown> {
    return this.call(this.lease, 'LeaseRevoke', { ID: id }, timeoutMs);
  }

  timeToLive(id: string, keys = false, timeoutMs = 3_000): Promise<{ TTL: string; grantedTTL: string; keys: Buffer[] }> {
    return this.call(this.lease, 'LeaseTimeToLive', { ID: id, keys }, timeoutMs);
  }

  lockAcquire(name: string, lease: string, timeoutMs: number): Promise<{ key: Buffer; header: { revision: string } }> {
    return this.call(this.lock, 'Lock', { name: Buffer.from(name), lease }, timeoutMs);
  }

  unlock(key: Buffer, timeoutMs = 3_000): Promise<unknown> {
    return this.call(this.lock, 'Unlock', { key }, timeoutMs);
  }

  put(key: string, value: string, lease = '0', timeoutMs = 3_000): Promise<{ header: { revision: string } }> {
    return this.call(this.kv, 'Put', { key: Buffer.from(key), value: Buffer.from(value), lease }, timeoutMs);
  }

  range(key: string | Buffer, extra: object = {}, timeoutMs = 3_000): Promise<{ header: { revision: string }; kvs: Array<{ key: Buffer; value: Buffer; create_revision: string; mod_revision: string; lease: string }> }> {
    return this.call(this.kv, 'Range', { key: Buffer.from(key), ...extra }, timeoutMs);
  }

  txn(req: object, timeoutMs = 3_000): Promise<{ succeeded: boolean; header: { revision: string } }> {
    return this.call(this.kv, 'Txn', req, timeoutMs);
  }

  /** Sends a keep-alive for `id` every intervalMs until stop(); reconnects after stream errors. */
  keepAlive(id: string, intervalMs: number): { stop: () => void; lastTtl: () => number } {
    let stopped = false;
    let lastTtl = -1;
    let stream: grpc.ClientDuplexStream<object, { TTL: string }> | null = null;
    const open = (): void => {
      if (stopped) return;
      stream = (this.lease as unknown as { LeaseKeepAlive(): grpc.ClientDuplexStream<object, { TTL: string }> }).LeaseKeepAlive();
      stream.on('data', (r: { TTL: string }) => (lastTtl = Number(r.TTL)));
      stream.on('error', () => {
        stream = null;
        setTimeout(open, 100);
      });
    };
    open();
    const timer = setInterval(() => {
      if (!stopped && stream) stream.write({ ID: id });
    }, intervalMs);
    return {
      stop: () => {
        stopped = true;
        clearInterval(timer);
        stream?.cancel();
      },
      lastTtl: () => lastTtl,
    };
  }

  close(): void {
    this.lease.close();
    this.lock.close();
    this.kv.close();
  }
}

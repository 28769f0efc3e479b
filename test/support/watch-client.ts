// A raw etcd Watch stream for tests: send create/cancel/progress requests, await responses.
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../../server/api/proto.ts';
import type { Header, WireKv } from './kv-client.ts';

export interface WatchResponse {
  header: Header;
  watch_id: string;
  created: boolean;
  canceled: boolean;
  compact_revision: string;
  cancel_reason: string;
  events: Array<{ type: 'PUT' | 'DELETE'; kv: WireKv; prev_kv: WireKv | null }>;
}

/**
 * The responses of a client stream, in order, for `await next()`. With `failOnError` a stream error is
 * thrown by next() at once; without it next() waits out its timeout.
 */
export class ResponseQueue<T> {
  private readonly queue: T[] = [];
  private waiters: Array<() => void> = [];
  error: grpc.ServiceError | null = null;

  constructor(call: grpc.ClientDuplexStream<object, T>, failOnError: boolean) {
    call.on('data', (r: T) => {
      this.queue.push(r);
      this.wake();
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (!failOnError) return;
      this.error = err;
      this.wake();
    });
  }

  /** Responses received and not yet taken. */
  pending(): number {
    return this.queue.length;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Next response, or throws after timeoutMs. */
  async next(timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      if (this.error) throw this.error;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no watch response in time');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.queue.shift()!;
  }
}

export class WatchStream {
  private readonly client: grpc.Client;
  private readonly call: grpc.ClientDuplexStream<object, WatchResponse>;
  private readonly responses: ResponseQueue<WatchResponse>;

  constructor(endpoint: string) {
    const { Watch } = etcdClients();
    this.client = new Watch(endpoint, grpc.credentials.createInsecure());
    this.call = (this.client as unknown as { Watch(): grpc.ClientDuplexStream<object, WatchResponse> }).Watch();
    this.responses = new ResponseQueue(this.call, false);
  }

  create(req: object): void {
    this.call.write({ create_request: req });
  }

  cancel(watchId: number | string): void {
    this.call.write({ cancel_request: { watch_id: watchId } });
  }

  progress(): void {
    this.call.write({ progress_request: {} });
  }

  /** Next response, or throws after timeoutMs. */
  next(timeoutMs = 5_000): Promise<WatchResponse> {
    return this.responses.next(timeoutMs);
  }

  /** Resolves true if nothing arrives within ms. */
  async quiet(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.responses.pending() === 0;
  }

  close(): void {
    this.call.end();
    this.call.cancel();
    this.client.close();
  }
}

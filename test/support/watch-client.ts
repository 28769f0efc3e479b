// A raw etcd Watch stream for tests: send create/cancel/progress requests, await responses.
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { etcdClients } from '../../server/etcd/proto.ts';
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
  /** When set, responses go here as they arrive instead of the queue (long streams of big events). */
  sink: ((r: T) => void) | null = null;

  constructor(call: grpc.ClientDuplexStream<object, T>, failOnError: boolean) {
    call.on('data', (r: T) => {
      if (this.sink !== null) {
        this.sink(r);
        return;
      }
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

  /** Hands every later response to `fn` as it arrives (next() then sees none). */
  subscribe(fn: (r: WatchResponse) => void): void {
    this.responses.sink = fn;
  }

  /** Resolves true if nothing arrives within ms. */
  async quiet(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.responses.pending() === 0;
  }

  /** Sends no more requests (gRPC's half-close, Go's CloseSend); responses keep coming. */
  halfClose(): void {
    this.call.end();
  }

  close(): void {
    this.call.end();
    this.call.cancel();
    this.client.close();
  }
}

/**
 * A Watch stream over a bare HTTP/2 connection (node:http2, no gRPC library), for slow-watcher tests:
 * it sends one create request, takes the `created` response, and then can stop reading altogether
 * (pause: the HTTP/2 stream's flow-control window closes and the server has to hold or drop what it
 * would send), then read again later. Responses are handed to `onResponse` as they are decoded, so a
 * catch-up of hundreds of MiB is checked as it streams instead of being held.
 */
export class RawWatchStream {
  private readonly session: http2.ClientHttp2Session;
  private readonly stream: http2.ClientHttp2Stream;
  private buffered: Buffer = Buffer.alloc(0);
  private readonly created: Promise<WatchResponse>;
  /** Called for every response after the `created` one, in arrival order. */
  onResponse: (r: WatchResponse) => void = () => {};
  /** Set when the call ended (trailers or reset). */
  ended = false;

  constructor(address: string, create: object) {
    const method = etcdClients().Watch.service.Watch;
    const decode = method.responseDeserialize as (b: Buffer) => WatchResponse;
    this.session = http2.connect(`http://${address}`);
    this.session.on('error', () => undefined);
    this.stream = this.session.request({
      ':method': 'POST',
      ':path': method.path,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    this.stream.on('error', () => undefined);
    this.stream.on('close', () => {
      this.ended = true;
    });
    let first: ((r: WatchResponse) => void) | null = null;
    this.created = new Promise((resolve) => {
      first = resolve;
    });
    this.stream.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 5) {
        const len = this.buffered.readUInt32BE(1);
        if (this.buffered.length < 5 + len) break;
        const r = decode(this.buffered.subarray(5, 5 + len));
        this.buffered = this.buffered.subarray(5 + len);
        if (first !== null) {
          // Stop at once: nothing more is read until resume().
          if (r.created) this.stream.pause();
          const f = first;
          first = null;
          f(r);
        } else this.onResponse(r);
      }
    });
    const body = method.requestSerialize({ create_request: create }) as Buffer;
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    this.stream.write(frame);
  }

  /** The `created` response; the stream is paused (reads nothing more) from then on. */
  whenCreated(timeoutMs = 10_000): Promise<WatchResponse> {
    return Promise.race([
      this.created,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no created response in time')), timeoutMs).unref()),
    ]);
  }

  /** Reads again: queued and caught-up responses flow to onResponse. */
  resume(): void {
    this.stream.resume();
  }

  close(): void {
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
    this.session.destroy();
  }
}

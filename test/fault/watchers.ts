// Watchers for the fault suite, behaving as etcd clients do: a watch over the key prefix from a
// start revision; when its stream breaks (member killed) or is cancelled, it reconnects to the next
// member with start_revision = last delivered revision + 1. Every delivered event is kept, in order,
// for the watch checker.
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../../server/etcd/proto.ts';
import type { WatchResponse } from '../support/watch-client.ts';
import { KvClient } from '../support/kv-client.ts';
import { eventually } from '../support/eventually.ts';
import type { WatchEvent } from '../checker/watch-checker.ts';

export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]++;
  return end;
}

export function toWatchEvents(res: WatchResponse): WatchEvent[] {
  return res.events.map((e) => ({
    revision: Number(e.kv.mod_revision),
    key: e.kv.key.toString(),
    type: e.type === 'DELETE' ? 'DELETE' : 'PUT',
    value: e.type === 'DELETE' ? '' : e.kv.value.toString(),
  }));
}

export class ResilientWatcher {
  readonly name: string;
  readonly events: WatchEvent[] = [];
  readonly startRevision: number;
  reconnects = 0;
  private readonly endpoints: string[];
  readonly prefix: string;
  private member: number;
  private client: grpc.Client | null = null;
  private call: grpc.ClientDuplexStream<object, WatchResponse> | null = null;
  private stopped = false;
  private redial: NodeJS.Timeout | null = null;

  constructor(opts: { name: string; endpoints: string[]; member: number; prefix: string; startRevision: number }) {
    this.name = opts.name;
    this.endpoints = opts.endpoints;
    this.member = opts.member;
    this.prefix = opts.prefix;
    this.startRevision = opts.startRevision;
  }

  get lastRevision(): number {
    return this.events.at(-1)?.revision ?? this.startRevision - 1;
  }

  start(): void {
    if (this.stopped) return;
    const { Watch } = etcdClients();
    const client = new Watch(this.endpoints[this.member], grpc.credentials.createInsecure());
    const call = (client as unknown as { Watch(): grpc.ClientDuplexStream<object, WatchResponse> }).Watch();
    this.client = client;
    this.call = call;
    call.on('data', (r: WatchResponse) => {
      if (call !== this.call) return;
      if (r.canceled) {
        this.reconnect();
        return;
      }
      this.events.push(...toWatchEvents(r));
    });
    call.on('error', () => {
      if (call === this.call) this.reconnect();
    });
    call.on('end', () => {
      if (call === this.call) this.reconnect();
    });
    call.write({ create_request: { key: Buffer.from(this.prefix), range_end: prefixEnd(this.prefix), start_revision: String(this.lastRevision + 1) } });
  }

  /** Drops the current stream and watches again from the next member, resuming after the last event. */
  reconnect(): void {
    this.close();
    if (this.stopped || this.redial) return;
    this.reconnects++;
    this.member = (this.member + 1) % this.endpoints.length;
    this.redial = setTimeout(() => {
      this.redial = null;
      this.start();
    }, 200);
  }

  /** Waits until the watcher delivered `revision`, moving to another member if it stalls. */
  async catchUp(revision: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let last = this.lastRevision;
    let progressAt = Date.now();
    while (this.lastRevision < revision) {
      if (Date.now() > deadline) return false;
      if (this.lastRevision !== last) {
        last = this.lastRevision;
        progressAt = Date.now();
      } else if (Date.now() - progressAt > 3_000) {
        this.reconnect();
        progressAt = Date.now();
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  private close(): void {
    const call = this.call;
    const client = this.client;
    this.call = null;
    this.client = null;
    if (call) {
      call.removeAllListeners('data');
      call.on('error', () => undefined);
      call.cancel();
    }
    client?.close();
  }

  stop(): void {
    this.stopped = true;
    if (this.redial) clearTimeout(this.redial);
    this.close();
  }
}

/**
 * Every event under `prefix` from revision 1 through the store's revision when called, read with one
 * watch through `endpoint`. Done once a progress answer names that revision (every event up to it was
 * sent, etcd's progress semantics; a merged watch names its delivered revision) — not after a quiet
 * spell, which a watch slow to start on a loaded machine would pass with nothing read. Throws after
 * `timeoutMs`.
 */
export async function readFullHistory(endpoint: string, prefix: string, timeoutMs = 30_000): Promise<WatchEvent[]> {
  const { Watch } = etcdClients();
  const deadline = Date.now() + timeoutMs;
  // The store's revision, by a linearizable read: asked again while the cluster elects (`no leader`), as
  // etcd's clients do.
  const kv = new KvClient(endpoint);
  const untilRevision = await eventually(
    `the store's revision through ${endpoint}`,
    async () => Number((await kv.range(prefix, { range_end: prefixEnd(prefix), count_only: true }, 3_000)).header.revision),
    timeoutMs,
    200,
  ).finally(() => kv.close());
  const client = new Watch(endpoint, grpc.credentials.createInsecure());
  const call = (client as unknown as { Watch(): grpc.ClientDuplexStream<object, WatchResponse> }).Watch();
  const events: WatchEvent[] = [];
  let failure: Error | null = null;
  let progressAt = 0;
  call.on('data', (r: WatchResponse) => {
    if (r.canceled) failure = new Error(`history watch cancelled: ${r.cancel_reason}`);
    events.push(...toWatchEvents(r));
    if (!r.created && r.events.length === 0) progressAt = Math.max(progressAt, Number(r.header.revision));
  });
  call.on('error', (err: Error) => (failure = err));
  call.write({ create_request: { key: Buffer.from(prefix), range_end: prefixEnd(prefix), start_revision: '1' } });
  try {
    while (progressAt < untilRevision && !failure) {
      if (Date.now() > deadline) throw new Error(`history watch of ${prefix} through ${endpoint}: ${events.length} events, delivered through revision ${progressAt} of ${untilRevision} after ${timeoutMs} ms`);
      call.write({ progress_request: {} });
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    call.cancel();
    client.close();
  }
  if (failure) throw failure;
  return events;
}

// Concurrent clients for the fault suite. Each client has its own gRPC connections and talks to one
// chosen member, moving to the next member only after a failure; it issues get / put / delete /
// compare-and-swap on a small key set with a per-request deadline and records every operation with
// invoke and complete times (process.hrtime) and its outcome. A failed request has an unknown
// outcome: its complete time is +Infinity.
import * as grpc from '@grpc/grpc-js';
import { Rng } from '../../server/raft/rng.ts';
import { KvClient, type WireKv } from '../support/kv-client.ts';
import type { CasCompare, Found, KvInput, KvOutput, Operation } from '../checker/history.ts';

/** Milliseconds since a fixed origin, from the monotonic clock. */
export function monotonicClock(): () => number {
  const origin = process.hrtime.bigint();
  return () => Number(process.hrtime.bigint() - origin) / 1e6;
}

export class HistoryRecorder {
  readonly ops: Operation[] = [];
  readonly clock: () => number;

  constructor(clock: () => number) {
    this.clock = clock;
  }

  /** Runs one request and records it; resolves with the output (null when it failed). */
  async record(client: number, input: KvInput, run: () => Promise<KvOutput>): Promise<KvOutput | null> {
    const op: Operation = { id: this.ops.length, client, input, output: null, invoke: this.clock(), complete: Infinity };
    this.ops.push(op);
    try {
      const output = await run();
      op.complete = this.clock();
      op.output = output;
      return output;
    } catch (err) {
      // A request the server refuses as malformed is a bug in the workload, not a fault outcome.
      const code = (err as { code?: unknown }).code;
      if (code === grpc.status.INVALID_ARGUMENT || code === grpc.status.UNIMPLEMENTED) throw err;
      return null;
    }
  }
}

const found = (kv: WireKv | undefined): Found | null => (kv ? { value: kv.value.toString(), modRevision: Number(kv.mod_revision) } : null);

/** Executes one KvInput against a member and turns the response into a KvOutput. */
export async function execute(kv: KvClient, input: KvInput, timeoutMs: number): Promise<KvOutput> {
  switch (input.kind) {
    case 'get': {
      const r = await kv.range(input.key, {}, timeoutMs);
      return { kind: 'get', revision: Number(r.header.revision), found: found(r.kvs[0]) };
    }
    case 'put': {
      const r = await kv.put(input.key, input.value, {}, timeoutMs);
      return { kind: 'put', revision: Number(r.header.revision) };
    }
    case 'delete': {
      const r = await kv.deleteRange(input.key, {}, timeoutMs);
      return { kind: 'delete', revision: Number(r.header.revision), deleted: Number(r.deleted) };
    }
    case 'cas': {
      const key = Buffer.from(input.key);
      const compare =
        input.compare.target === 'value'
          ? { result: 'EQUAL', target: 'VALUE', key, value: Buffer.from(input.compare.value) }
          : { result: 'EQUAL', target: 'MOD', key, mod_revision: String(input.compare.modRevision) };
      const r = await kv.txn(
        { compare: [compare], success: [{ request_put: { key, value: Buffer.from(input.value) } }], failure: [{ request_range: { key } }] },
        timeoutMs,
      );
      const responses = r.responses as Array<{ response_range?: { kvs: WireKv[] } }>;
      return {
        kind: 'cas',
        revision: Number(r.header.revision),
        succeeded: r.succeeded,
        found: r.succeeded ? null : found(responses[0]?.response_range?.kvs[0]),
      };
    }
  }
}

export interface WorkloadOptions {
  seed: number;
  clients: number;
  keys: string[];
  /** Member endpoints, by member index. */
  endpoints: string[];
  requestTimeoutMs: number;
  recorder: HistoryRecorder;
}

/** Starts the clients; stop() makes them finish their current request and return. */
export function startWorkload(o: WorkloadOptions): { stop: () => Promise<void> } {
  let running = true;
  const connections: KvClient[] = [];
  const loops: Promise<void>[] = [];
  for (let c = 0; c < o.clients; c++) {
    const rng = new Rng(o.seed * 1_000 + c);
    const perMember = new Map<number, KvClient>();
    const connect = (m: number): KvClient => {
      let kv = perMember.get(m);
      if (!kv) {
        kv = new KvClient(o.endpoints[m]);
        perMember.set(m, kv);
        connections.push(kv);
      }
      return kv;
    };
    let member = c % o.endpoints.length;
    const lastSeen = new Map<string, Found>();
    let seq = 0;
    loops.push(
      (async () => {
        while (running) {
          const key = o.keys[rng.nextInt(o.keys.length)];
          const input = nextInput(rng, key, `c${c}-${seq++}`, lastSeen.get(key));
          const out = await o.recorder.record(c, input, () => execute(connect(member), input, o.requestTimeoutMs));
          if (out === null) {
            member = (member + 1) % o.endpoints.length;
            await new Promise((r) => setTimeout(r, 50));
          } else if (out.kind === 'get' || (out.kind === 'cas' && !out.succeeded)) {
            if (out.found) lastSeen.set(key, out.found);
            else lastSeen.delete(key);
          }
        }
      })(),
    );
  }
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      for (const kv of connections) kv.close();
    },
  };
}

function nextInput(rng: Rng, key: string, value: string, seen: Found | undefined): KvInput {
  const r = rng.nextFloat();
  if (r < 0.4) return { kind: 'get', key };
  if (r < 0.7) return { kind: 'put', key, value };
  if (r < 0.8) return { kind: 'delete', key };
  let compare: CasCompare;
  if (!seen) compare = { target: 'mod', modRevision: 0 }; // create if absent
  else if (rng.chance(0.5)) compare = { target: 'value', value: seen.value };
  else compare = { target: 'mod', modRevision: seen.modRevision };
  return { kind: 'cas', key, compare, value };
}

// In-process memory probe: bytes of heap + external memory per key for the MVCC store alone and for
// the KV state machine fed Raft entries the way a member applies them (optionally keeping the
// entries, as an uncompacted Raft log does). Run with --expose-gc:
//   node --expose-gc bench/mem-per-key.ts store|sm|sm+log [keys=100000] [valueBytes=256]
import { randomBytes } from 'node:crypto';
import { MvccStore } from '../server/mvcc/store.ts';
import { KvStateMachine } from '../server/shard/kv-state-machine.ts';
import { encodeInternalRequest } from '../server/shard/request-codec.ts';
import type { Entry } from '../server/raft/types.ts';

const mode = process.argv[2] ?? 'store';
const keys = Number(process.argv[3] ?? 100_000);
const valueBytes = Number(process.argv[4] ?? 256);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');

function used(): { heap: number; external: number; rss: number } {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, external: m.external, rss: m.rss };
}

function keyOf(i: number): Buffer {
  return Buffer.from(`k${String(i).padStart(7, '0')}`);
}

function report(what: string, before: ReturnType<typeof used>, after: ReturnType<typeof used>): void {
  const per = (a: number, b: number): string => ((b - a) / keys).toFixed(0);
  console.log(
    `${what}: heap ${per(before.heap, after.heap)} B/key, external ${per(before.external, after.external)} B/key, ` +
      `total ${per(before.heap + before.external, after.heap + after.external)} B/key, rss ${per(before.rss, after.rss)} B/key`,
  );
}

const value = randomBytes(valueBytes);
const held: unknown[] = [];
if (mode === 'store') {
  const b = used();
  const store = new MvccStore();
  for (let i = 0; i < keys; i++) {
    store.put({ key: keyOf(i), value: Buffer.from(value), lease: '0', prevKv: false, ignoreValue: false, ignoreLease: false });
    if (i % 1000 === 999) store.drainPersistOps();
  }
  store.drainPersistOps();
  const a = used();
  report(`MvccStore, ${keys} keys × ${valueBytes} B`, b, a);
  held.push(store);
} else {
  const b = used();
  const sm = new KvStateMachine(1, []);
  const log: Entry[] = [];
  for (let i = 0; i < keys; i++) {
    const data = encodeInternalRequest({ proposer: '2', seq: String(i), put: { key: keyOf(i), value: Buffer.from(value) } as never });
    const entry: Entry = { term: 2, index: i + 1, type: 'normal', data };
    sm.apply(entry);
    log.push(entry);
    if (i % 1000 === 999) sm.drainPersistOps();
  }
  sm.drainPersistOps();
  if (mode === 'sm') log.length = 0;
  const a = used();
  report(mode === 'sm' ? 'KvStateMachine' : 'KvStateMachine + retained Raft entries', b, a);
  held.push(sm, log);
}

// bcrypt off the main thread: a few worker threads (bcrypt-worker.ts) started on first use, each
// running one hash or compare at a time. bcryptjs is JavaScript, and cost 10 (etcd's default) is
// about 100 ms of a core here; run on the main thread it stalls everything the member does meanwhile.
// scrypt needs none of this: node:crypto runs it on libuv's thread pool.
import os from 'node:os';
import { Worker } from 'node:worker_threads';

type Op = { op: 'hash'; password: string; cost: number } | { op: 'compare'; password: string; hash: string };

interface Answer {
  id: number;
  result?: string | boolean;
  error?: string;
}

interface Waiter {
  resolve(result: string | boolean): void;
  reject(err: Error): void;
}

class BcryptThread {
  private worker: Worker | null = null;
  private readonly waiting = new Map<number, Waiter>();

  get load(): number {
    return this.waiting.size;
  }

  run(id: number, op: Op): Promise<string | boolean> {
    const worker = this.started();
    // Referenced only while it works for someone: an idle worker must not keep a CLI or a test alive.
    if (this.waiting.size === 0) worker.ref();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.postMessage({ id, op: op.op, password: op.password, cost: op.op === 'hash' ? op.cost : 0, hash: op.op === 'compare' ? op.hash : '' });
    });
  }

  private started(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(new URL('./bcrypt-worker.ts', import.meta.url));
    worker.on('message', (a: Answer) => {
      const w = this.waiting.get(a.id);
      if (w === undefined) return;
      this.waiting.delete(a.id);
      if (this.waiting.size === 0) worker.unref();
      if (a.error !== undefined || a.result === undefined) w.reject(new Error(`bcrypt: ${a.error ?? 'no result'}`));
      else w.resolve(a.result);
    });
    // A worker that dies fails what it was doing; the next request starts a new one.
    const failAll = (err: Error): void => {
      if (this.worker === worker) this.worker = null;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    };
    worker.on('error', (err) => failAll(err));
    worker.on('exit', (code) => failAll(new Error(`bcrypt worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }
}

/** One thread per spare core, at least one and at most four. */
const THREADS = Math.max(1, Math.min(4, os.availableParallelism() - 1));
const threads: BcryptThread[] = [];
let nextId = 1;

function run(op: Op): Promise<string | boolean> {
  if (threads.length === 0) for (let i = 0; i < THREADS; i++) threads.push(new BcryptThread());
  let least = threads[0];
  for (const t of threads) if (t.load < least.load) least = t;
  return least.run(nextId++, op);
}

/** A bcrypt hash of `password` at `cost` (`$2b$`), made on a worker thread. */
export async function bcryptHash(password: string, cost: number): Promise<string> {
  const result = await run({ op: 'hash', password, cost });
  if (typeof result !== 'string') throw new Error('bcrypt: hash answered with a verdict');
  return result;
}

/** Whether `password` matches the bcrypt `hash`, checked on a worker thread. */
export async function bcryptCompare(password: string, hash: string): Promise<boolean> {
  const result = await run({ op: 'compare', password, hash });
  if (typeof result !== 'boolean') throw new Error('bcrypt: compare answered with a hash');
  return result;
}

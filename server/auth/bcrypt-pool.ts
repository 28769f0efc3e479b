// bcrypt off the main thread: a few worker threads (bcrypt-worker.ts) started on first use, each running
// one hash or compare at a time (a JobLane each: a job whose request deadline passed while it waited is
// dropped unrun, and past MAX_QUEUED_JOBS waiting a new one is refused). bcryptjs is JavaScript, and cost
// 10 (etcd's default) is about 100 ms of a core here; run on the main thread it stalls everything the
// member does meanwhile.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { JobLane, PasswordBusyError } from './job-lane.ts';

type Op = { op: 'hash'; password: string; cost: number } | { op: 'compare'; password: string; hash: string };

interface Answer {
  id: number;
  result?: string | boolean;
  error?: string;
}

// The worker's module: bcrypt-worker.ts beside this one, or bcrypt-worker.mjs beside a bundle of the
// member (the tests' members run one: test/support/member-bundle.ts).
const WORKER_URL = new URL(import.meta.url.endsWith('.ts') ? './bcrypt-worker.ts' : './bcrypt-worker.mjs', import.meta.url);

/** Jobs waiting over all threads before new ones are refused: about 6 s of cost-10 work per thread. */
export const MAX_QUEUED_JOBS = 64;

class BcryptThread {
  readonly lane = new JobLane();
  private worker: Worker | null = null;
  private waiting: { id: number; resolve(result: string | boolean): void; reject(err: Error): void } | null = null;
  private nextId = 1;

  /** Runs `op` on this thread's worker (the lane has made it this job's turn). */
  post(op: Op): Promise<string | boolean> {
    const worker = this.started();
    worker.ref(); // working for someone: keeps the process alive until the answer
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting = { id, resolve, reject };
      worker.postMessage({ id, op: op.op, password: op.password, cost: op.op === 'hash' ? op.cost : 0, hash: op.op === 'compare' ? op.hash : '' });
    });
  }

  private started(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(WORKER_URL);
    worker.on('message', (a: Answer) => {
      const w = this.waiting;
      if (w === null || w.id !== a.id) return;
      this.waiting = null;
      worker.unref(); // idle: must not keep a CLI or a test process alive
      if (a.error !== undefined || a.result === undefined) w.reject(new Error(`bcrypt: ${a.error ?? 'no result'}`));
      else w.resolve(a.result);
    });
    // A worker that dies fails the job it ran; the next job starts a new worker.
    const died = (err: Error): void => {
      if (this.worker !== worker) return;
      this.worker = null;
      const w = this.waiting;
      this.waiting = null;
      w?.reject(err);
    };
    worker.on('error', (err) => died(err));
    worker.on('exit', (code) => died(new Error(`bcrypt worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  /** TEST-ONLY: ends the worker as a crash would. */
  async crashForTest(): Promise<void> {
    await this.worker?.terminate();
  }
}

/** One thread per spare core, at least one and at most four. */
export const THREAD_COUNT = Math.max(1, Math.min(4, os.availableParallelism() - 1));
const threads: BcryptThread[] = [];

function run(op: Op, deadlineMs: number): Promise<string | boolean> {
  if (threads.length === 0) for (let i = 0; i < THREAD_COUNT; i++) threads.push(new BcryptThread());
  if (threads.reduce((sum, t) => sum + t.lane.queued, 0) >= MAX_QUEUED_JOBS) return Promise.reject(new PasswordBusyError());
  let least = threads[0];
  for (const t of threads) if (t.lane.load < least.lane.load) least = t;
  return least.lane.run(() => least.post(op), deadlineMs);
}

/** A bcrypt hash of `password` at `cost` (`$2b$`), made on a worker thread unless `deadlineMs` passes first. */
export async function bcryptHash(password: string, cost: number, deadlineMs = Infinity): Promise<string> {
  const result = await run({ op: 'hash', password, cost }, deadlineMs);
  if (typeof result !== 'string') throw new Error('bcrypt: hash answered with a verdict');
  return result;
}

/** Whether `password` matches the bcrypt `hash`, checked on a worker thread unless `deadlineMs` passes first. */
export async function bcryptCompare(password: string, hash: string, deadlineMs = Infinity): Promise<boolean> {
  const result = await run({ op: 'compare', password, hash }, deadlineMs);
  if (typeof result !== 'boolean') throw new Error('bcrypt: compare answered with a hash');
  return result;
}

/** TEST-ONLY: crashes every started worker; jobs running fail, later ones start new workers. */
export async function crashBcryptWorkersForTest(): Promise<void> {
  await Promise.all(threads.map((t) => t.crashForTest()));
}

// bcrypt off the main thread: a few worker threads (bcrypt-worker.ts) started on first use, each running
// one hash or compare at a time. bcryptjs is JavaScript, and cost 10 (etcd's default) is about 100 ms of
// a core here; run on the main thread it stalls everything the member does meanwhile. scrypt needs none
// of this: node:crypto runs it on libuv's thread pool.
//
// A flood of Authenticate calls must not turn into minutes of queued work nobody waits for: each job
// carries its request's deadline and is dropped unrun once that has passed, and past MAX_QUEUED_JOBS
// waiting jobs a new one is refused at once (BcryptBusyError; the caller answers etcd's "too many
// requests").
import os from 'node:os';
import { Worker } from 'node:worker_threads';

type Op = { op: 'hash'; password: string; cost: number } | { op: 'compare'; password: string; hash: string };

interface Answer {
  id: number;
  result?: string | boolean;
  error?: string;
}

interface Job {
  id: number;
  op: Op;
  deadlineMs: number;
  resolve(result: string | boolean): void;
  reject(err: Error): void;
}

/** Too many bcrypt jobs wait already. */
export class BcryptBusyError extends Error {
  constructor() {
    super('bcrypt: too many jobs waiting');
    this.name = 'BcryptBusyError';
  }
}

/** The job's deadline passed before a thread was free to run it. */
export class BcryptDeadlineError extends Error {
  constructor() {
    super('bcrypt: deadline passed while waiting for a thread');
    this.name = 'BcryptDeadlineError';
  }
}

/** Jobs waiting over all threads before new ones are refused: about 6 s of cost-10 work per thread. */
export const MAX_QUEUED_JOBS = 64;

class BcryptThread {
  private worker: Worker | null = null;
  private readonly queue: Job[] = [];
  private running: Job | null = null;

  get load(): number {
    return this.queue.length + (this.running === null ? 0 : 1);
  }

  get queued(): number {
    return this.queue.length;
  }

  add(job: Job): void {
    this.queue.push(job);
    this.pump();
  }

  /** Starts the next job whose deadline has not passed, if none runs. */
  private pump(): void {
    if (this.running !== null) return;
    let job = this.queue.shift();
    while (job !== undefined && Date.now() >= job.deadlineMs) {
      job.reject(new BcryptDeadlineError());
      job = this.queue.shift();
    }
    if (job === undefined) {
      this.worker?.unref(); // idle: must not keep a CLI or a test process alive
      return;
    }
    const worker = this.started();
    worker.ref();
    this.running = job;
    const { op } = job;
    worker.postMessage({ id: job.id, op: op.op, password: op.password, cost: op.op === 'hash' ? op.cost : 0, hash: op.op === 'compare' ? op.hash : '' });
  }

  private started(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(new URL('./bcrypt-worker.ts', import.meta.url));
    worker.on('message', (a: Answer) => {
      const job = this.running;
      if (job === null || job.id !== a.id) return;
      this.running = null;
      if (a.error !== undefined || a.result === undefined) job.reject(new Error(`bcrypt: ${a.error ?? 'no result'}`));
      else job.resolve(a.result);
      this.pump();
    });
    // A worker that dies fails the job it ran; the next job starts a new worker.
    const died = (err: Error): void => {
      if (this.worker !== worker) return;
      this.worker = null;
      const job = this.running;
      this.running = null;
      job?.reject(err);
      this.pump();
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
let nextId = 1;

function run(op: Op, deadlineMs: number): Promise<string | boolean> {
  if (threads.length === 0) for (let i = 0; i < THREAD_COUNT; i++) threads.push(new BcryptThread());
  if (threads.reduce((sum, t) => sum + t.queued, 0) >= MAX_QUEUED_JOBS) return Promise.reject(new BcryptBusyError());
  let least = threads[0];
  for (const t of threads) if (t.load < least.load) least = t;
  return new Promise((resolve, reject) => least.add({ id: nextId++, op, deadlineMs, resolve, reject }));
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

// One lane of password work (a bcrypt worker thread, or scrypt on libuv's pool): jobs run one at a time, in
// arrival order; a job whose request deadline passed while it waited is dropped unrun
// (PasswordDeadlineError). Callers bound how many wait (PasswordBusyError) over all their lanes. A flood
// of logins thus costs at most a bounded queue of work its callers still wait for.

/** Too many password jobs wait already: the caller answers etcd's "too many requests". */
export class PasswordBusyError extends Error {
  constructor() {
    super('password work: too many jobs waiting');
    this.name = 'PasswordBusyError';
  }
}

/** The job's deadline passed before its lane was free: the caller answers etcd's "request timed out". */
export class PasswordDeadlineError extends Error {
  constructor() {
    super('password work: deadline passed while waiting');
    this.name = 'PasswordDeadlineError';
  }
}

interface Job {
  start(): Promise<unknown>;
  deadlineMs: number;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

export class JobLane {
  private readonly queue: Job[] = [];
  private running = false;

  /** Jobs waiting, the running one not counted. */
  get queued(): number {
    return this.queue.length;
  }

  /** Jobs waiting and running. */
  get load(): number {
    return this.queue.length + (this.running ? 1 : 0);
  }

  /** Runs `start` once the jobs before it ended, unless `deadlineMs` (epoch ms) passes first. */
  run<T>(start: () => Promise<T>, deadlineMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ start, deadlineMs, resolve: resolve as (value: unknown) => void, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.running) return;
    let job = this.queue.shift();
    while (job !== undefined && Date.now() >= job.deadlineMs) {
      job.reject(new PasswordDeadlineError());
      job = this.queue.shift();
    }
    if (job === undefined) return;
    this.running = true;
    const done = (): void => {
      this.running = false;
      this.pump();
    };
    const current = job;
    let started: Promise<unknown>;
    try {
      started = current.start();
    } catch (err) {
      started = Promise.reject(err);
    }
    started.then(
      (value) => {
        current.resolve(value);
        done();
      },
      (err: unknown) => {
        current.reject(err);
        done();
      },
    );
  }
}

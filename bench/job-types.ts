// The messages between the benchmark's main thread and its load workers: a job (what to run), the
// phase handshake (ready → go → result) and a phase's raw result. Plain data only: everything
// here crosses a worker_threads boundary by structured clone.

/** Closed-loop operations: each in-flight slot sends the next request as soon as the last returns. */
export type ClosedLoopOp = 'put' | 'range-linearizable' | 'range-serializable' | 'range-span' | 'txn-cas' | 'txn-one-shard' | 'txn-two-shards' | 'txn-cas-one-shard' | 'txn-cas-two-shards' | 'fill';

export interface ClosedLoopJob {
  kind: 'closed-loop';
  op: ClosedLoopOp;
  /** Requests in flight in this worker. */
  inFlight: number;
  keyspaceSize: number;
  keyBytes: number;
  valueBytes: number;
  warmupMs: number;
  /** For op 'fill': key indexes [fillStart, fillEnd) written once each (count-bound, no deadline). */
  fillStart: number;
  fillEnd: number;
}

export interface LeaseJob {
  kind: 'lease';
  /** Leases this worker grants, keeps alive and revokes. */
  leases: number;
  ttlSeconds: number;
  inFlight: number;
}

export interface WatchJob {
  kind: 'watch';
  /** Watchers this worker opens, all on `key`, on the first endpoint. */
  watchers: number;
  watchersPerStream: number;
  key: string;
}

export type Job = ClosedLoopJob | LeaseJob | WatchJob;

export interface WorkerInput {
  workerIndex: number;
  endpoints: string[];
  connections: number;
  job: Job;
}

/** Phases of each job kind, in order. */
export const JOB_PHASES: Readonly<Record<Job['kind'], readonly string[]>> = {
  'closed-loop': ['measure'],
  lease: ['grant', 'keepalive', 'revoke'],
  watch: ['deliver'],
};

export interface PhaseResult {
  phase: string;
  workerIndex: number;
  /** Successful operations (or deliveries, for watch). */
  ok: number;
  errors: number;
  /** Error description → count (at most a few distinct descriptions). */
  errorSamples: Record<string, number>;
  /** Encoded HDR histogram of latencies in µs. */
  histogram: string;
  /** Wall time of this worker's phase. */
  elapsedMs: number;
  /** Set when the server answered UNIMPLEMENTED: the reason. */
  unsupported?: string;
  /** Workload-specific counters (txn successes, ...). */
  counters: Record<string, number>;
}

export type WorkerMessage =
  | { type: 'ready'; phase: string }
  | { type: 'result'; result: PhaseResult }
  | { type: 'failed'; message: string };

export type MainMessage =
  | { type: 'go'; phase: string; durationMs: number }
  | { type: 'stop' };

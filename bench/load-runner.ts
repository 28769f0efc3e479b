// Main-thread side of the load generator: spreads a job over worker threads, starts every phase
// on all of them at once, and turns their raw results into one measurement per phase (ops/s,
// latency percentiles, errors, the client's and the servers' CPU).
import { Worker } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { encodeHistogram, mergeEncoded, summarise, type LatencySummary } from './histogram.ts';
import { JOB_PHASES, type Job, type MainMessage, type PhaseResult, type WorkerMessage } from './job-types.ts';
import { machineBusyCpuMs, readCpuMs, selfCpuMs } from './proc-stats.ts';

const WORKER_URL = new URL('./load-worker.ts', import.meta.url);

export interface PhaseMeasurement {
  phase: string;
  ok: number;
  errors: number;
  errorSamples: Record<string, number>;
  /** Encoded merged histogram (µs), kept so rounds can be merged later. */
  histogram: string;
  latency: LatencySummary;
  elapsedMs: number;
  opsPerSecond: number;
  /** Client process CPU (all threads) over the phase, in % of one core. */
  clientCpuPercent: number;
  /** All server members' CPU over the phase, in % of one core. */
  serverCpuPercent: number;
  /** CPU used by everything else on the machine over the phase (other processes), in % of one core. */
  otherCpuPercent: number;
  unsupported?: string;
  counters: Record<string, number>;
}

export interface RunJobOptions {
  endpoints: string[];
  /** One job per worker (each worker gets its own share). */
  jobs: Job[];
  connectionsPerWorker: number;
  durationMs: number;
  /** Server PIDs whose CPU is sampled. */
  serverPids: number[];
  /** Called after every worker is ready for `phase` and before it starts. */
  beforePhase?: (phase: string) => Promise<void>;
  /** For phases that end on the main thread's word (watch): runs during the phase; the phase stops when it resolves. */
  drivePhase?: (phase: string) => Promise<void>;
}

interface WorkerHandle {
  worker: Worker;
  messages: WorkerMessage[];
  waiter: (() => void) | null;
  failure: Error | null;
  exited: Promise<void>;
}

async function nextMessage(h: WorkerHandle): Promise<WorkerMessage> {
  for (;;) {
    if (h.messages.length > 0) return h.messages.shift()!;
    if (h.failure) throw h.failure;
    await new Promise<void>((r) => (h.waiter = r));
    h.waiter = null;
  }
}

async function expect<T extends WorkerMessage['type']>(h: WorkerHandle, type: T): Promise<Extract<WorkerMessage, { type: T }>> {
  const m = await nextMessage(h);
  if (m.type === 'failed') throw new Error(`load worker failed: ${m.message}`);
  if (m.type !== type) throw new Error(`load worker: expected ${type}, got ${m.type}`);
  return m as Extract<WorkerMessage, { type: T }>;
}

function spawnWorker(index: number, job: Job, endpoints: string[], connections: number): WorkerHandle {
  const worker = new Worker(WORKER_URL, { workerData: { workerIndex: index, endpoints, connections, job } });
  const h: WorkerHandle = { worker, messages: [], waiter: null, failure: null, exited: Promise.resolve() };
  worker.on('message', (m: WorkerMessage) => {
    h.messages.push(m);
    h.waiter?.();
  });
  worker.on('error', (err) => {
    h.failure = err;
    h.waiter?.();
  });
  h.exited = new Promise<void>((resolve) =>
    worker.once('exit', (code) => {
      if (code !== 0 && !h.failure) h.failure = new Error(`load worker ${index} exited with code ${code}`);
      h.waiter?.();
      resolve();
    }),
  );
  return h;
}

export async function runJob(opts: RunJobOptions): Promise<PhaseMeasurement[]> {
  const handles = opts.jobs.map((job, i) => spawnWorker(i, job, opts.endpoints, opts.connectionsPerWorker));
  const kind = opts.jobs[0].kind;
  const out: PhaseMeasurement[] = [];
  try {
    for (const phase of JOB_PHASES[kind]) {
      for (const h of handles) {
        const m = await expect(h, 'ready');
        if (m.phase !== phase) throw new Error(`worker ready for ${m.phase}, expected ${phase}`);
      }
      await opts.beforePhase?.(phase);
      const cpu0 = selfCpuMs();
      const machine0 = machineBusyCpuMs();
      const server0 = opts.serverPids.map(readCpuMs);
      const t0 = performance.now();
      const go: MainMessage = { type: 'go', phase, durationMs: opts.durationMs };
      for (const h of handles) h.worker.postMessage(go);
      if (opts.drivePhase) {
        await opts.drivePhase(phase);
        const stop: MainMessage = { type: 'stop' };
        for (const h of handles) h.worker.postMessage(stop);
      }
      const results: PhaseResult[] = [];
      for (const h of handles) results.push((await expect(h, 'result')).result);
      const elapsedMs = performance.now() - t0;
      const clientCpuMs = selfCpuMs() - cpu0;
      const serverCpuMs = opts.serverPids.map(readCpuMs).reduce((a, b, i) => a + b - server0[i], 0);
      const otherCpuMs = Math.max(0, machineBusyCpuMs() - machine0 - clientCpuMs - serverCpuMs);
      out.push(combine(phase, results, elapsedMs, clientCpuMs, serverCpuMs, otherCpuMs));
    }
  } finally {
    for (const h of handles) void h.worker.terminate();
    await Promise.all(handles.map((h) => h.exited));
  }
  return out;
}

function combine(phase: string, results: PhaseResult[], wallMs: number, clientCpuMs: number, serverCpuMs: number, otherCpuMs: number): PhaseMeasurement {
  const histogram = mergeEncoded(results.map((r) => r.histogram));
  const ok = results.reduce((a, r) => a + r.ok, 0);
  // Throughput over the longest worker's own phase time (the slowest worker bounds the phase).
  const elapsedMs = Math.max(1, ...results.map((r) => r.elapsedMs));
  const errorSamples: Record<string, number> = {};
  const counters: Record<string, number> = {};
  for (const r of results) {
    for (const [k, v] of Object.entries(r.errorSamples)) errorSamples[k] = (errorSamples[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.counters)) counters[k] = (counters[k] ?? 0) + v;
  }
  const unsupported = results.find((r) => r.unsupported !== undefined)?.unsupported;
  return {
    phase,
    ok,
    errors: results.reduce((a, r) => a + r.errors, 0),
    errorSamples,
    histogram: encodeHistogram(histogram),
    latency: summarise(histogram),
    elapsedMs,
    opsPerSecond: (ok * 1000) / elapsedMs,
    clientCpuPercent: (100 * clientCpuMs) / wallMs,
    serverCpuPercent: (100 * serverCpuMs) / wallMs,
    otherCpuPercent: (100 * otherCpuMs) / wallMs,
    unsupported,
    counters,
  };
}

/** Splits `total` into `parts` near-equal non-negative shares. */
export function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

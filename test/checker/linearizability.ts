// Checks a KV history for linearizability: P-compositionality splits it per key (every operation in
// the workload touches exactly one key, so per-key linearizability of independent objects gives
// linearizability of the whole), each partition goes through the WGL search against the etcd key
// model, and the global revision order is checked across keys.
import { describeOp, type KvInput, type KvOutput, type Operation } from './history.ts';
import { kvKeyModel } from './kv-model.ts';
import { checkRevisionOrder } from './revision-order.ts';
import { searchLinearization, type SearchOp } from './wgl.ts';

export interface LinearizabilityResult {
  ok: boolean;
  /** True when the time budget ran out before every partition was decided. */
  timedOut: boolean;
  /** Operations checked (unknown-outcome reads carry no information and are dropped). */
  operations: number;
  partitions: number;
  violations: string[];
}

export interface CheckOptions {
  /** Time budget for the whole check, in ms. */
  timeoutMs?: number;
  /** A sharded cluster: each key's shard, for the cross-key revision order (revision-order.ts). */
  revisionDomain?: (key: string) => string;
}

export function checkLinearizability(history: ReadonlyArray<Operation>, opts: CheckOptions = {}): LinearizabilityResult {
  for (const op of history) {
    if (op.output === null && op.complete !== Infinity) {
      throw new Error(`operation #${op.id}: an unknown outcome must complete at +Infinity`);
    }
    if (!(op.invoke <= op.complete)) throw new Error(`operation #${op.id} completes before it is invoked`);
  }
  const useful = history.filter((op) => !(op.input.kind === 'get' && op.output === null));
  const byKey = new Map<string, Operation[]>();
  for (const op of useful) {
    const list = byKey.get(op.input.key);
    if (list) list.push(op);
    else byKey.set(op.input.key, [op]);
  }
  const deadline = opts.timeoutMs === undefined ? undefined : Date.now() + opts.timeoutMs;
  const violations: string[] = [];
  let timedOut = false;
  for (const [key, ops] of [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const searchOps: Array<SearchOp<KvInput, KvOutput | null>> = ops.map((op) => ({
      input: op.input,
      output: op.output,
      invoke: op.invoke,
      complete: op.complete,
    }));
    const r = searchLinearization(kvKeyModel(searchOps), searchOps, { deadline });
    if (r.kind === 'timeout') {
      timedOut = true;
      violations.push(`key ${key}: undecided, the time budget ran out`);
      break;
    }
    if (r.kind === 'illegal') {
      const tail = r.longest.slice(-5).map((i) => `    ${describeOp(ops[i])}`);
      violations.push(
        [
          `key ${key}: not linearizable; no linearization can place ${describeOp(ops[r.stuckAt])}`,
          `  longest linearizable prefix has ${r.longest.length} of ${ops.length} ops, ending with:`,
          ...tail,
        ].join('\n'),
      );
    }
  }
  violations.push(...checkRevisionOrder(useful, opts.revisionDomain));
  return { ok: violations.length === 0, timedOut, operations: useful.length, partitions: byKey.size, violations };
}

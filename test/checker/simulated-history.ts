// Generates histories of a correct (linearizable) etcd-like store for the checker's tests: seeded
// concurrent clients, each operation takes effect at a random point inside its interval against one
// global revision counter. Some operations end with an unknown outcome, of which some took effect.
import { Rng } from '../../server/raft/rng.ts';
import type { WatchEvent } from './watch-checker.ts';
import type { Found, KvInput, KvOutput, Operation } from './history.ts';

export interface SimOptions {
  seed: number;
  clients: number;
  opsPerClient: number;
  keys: string[];
  /** Probability that an operation's outcome is unknown to the client. */
  unknownRate?: number;
}

export function simulateHistory(o: SimOptions): Operation[] {
  return simulateRun(o).history;
}

/** The client history and the store's own history of changes (as a full watch would deliver it). */
export function simulateRun(o: SimOptions): { history: Operation[]; reference: WatchEvent[] } {
  const reference: WatchEvent[] = [];
  const rng = new Rng(o.seed);
  const pending: Array<{ op: Operation; at: number; applies: boolean }> = [];
  let id = 0;
  let valueSeq = 0;
  for (let c = 0; c < o.clients; c++) {
    let t = rng.nextFloat();
    for (let k = 0; k < o.opsPerClient; k++) {
      const key = o.keys[rng.nextInt(o.keys.length)];
      const r = rng.nextFloat();
      const value = `v${valueSeq++}`;
      const input: KvInput =
        r < 0.4
          ? { kind: 'get', key }
          : r < 0.7
            ? { kind: 'put', key, value }
            : r < 0.8
              ? { kind: 'delete', key }
              : { kind: 'cas', key, compare: rng.chance(0.5) ? { target: 'value', value: `v${rng.nextInt(valueSeq)}` } : { target: 'mod', modRevision: rng.nextInt(40) }, value };
      const duration = 0.05 + rng.nextFloat() * 2;
      const unknown = rng.chance(o.unknownRate ?? 0);
      const op: Operation = { id: id++, client: c, input, output: null, invoke: t, complete: unknown ? Infinity : t + duration };
      pending.push({ op, at: t + rng.nextFloat() * duration, applies: !unknown || rng.chance(0.5) });
      t += duration + rng.nextFloat() * 0.2;
    }
  }
  pending.sort((a, b) => a.at - b.at);
  const store = new Map<string, Found>();
  let revision = 1;
  for (const p of pending) {
    const i = p.op.input;
    if (!p.applies) continue;
    const cur = store.get(i.key) ?? null;
    let output: KvOutput;
    if (i.kind === 'get') output = { kind: 'get', revision, found: cur };
    else if (i.kind === 'put') {
      store.set(i.key, { value: i.value, modRevision: ++revision });
      reference.push({ revision, key: i.key, type: 'PUT', value: i.value });
      output = { kind: 'put', revision };
    } else if (i.kind === 'delete') {
      if (cur) {
        store.delete(i.key);
        reference.push({ revision: revision + 1, key: i.key, type: 'DELETE', value: '' });
        output = { kind: 'delete', revision: ++revision, deleted: 1 };
      } else output = { kind: 'delete', revision, deleted: 0 };
    } else {
      const holds = i.compare.target === 'value' ? cur !== null && cur.value === i.compare.value : (cur?.modRevision ?? 0) === i.compare.modRevision;
      if (holds) {
        store.set(i.key, { value: i.value, modRevision: ++revision });
        reference.push({ revision, key: i.key, type: 'PUT', value: i.value });
        output = { kind: 'cas', revision, succeeded: true, found: null };
      } else output = { kind: 'cas', revision, succeeded: false, found: cur };
    }
    if (p.op.complete !== Infinity) p.op.output = output;
  }
  return { history: pending.map((p) => p.op).sort((a, b) => a.id - b.id), reference };
}

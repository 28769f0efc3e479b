// Reconciles the client history with the store's own history (every event from revision 1, read
// at the end of a run): every acknowledged change must be in it at its revision (no lost write),
// every value in it must have been written by some client (no phantom write), and unknown-outcome
// writes are resolved from it. Puts and CAS values are unique, so the history says exactly whether
// and at which revision each one took effect: one that did gets its revision (still completing at
// +Infinity), one that did not is dropped. This shrinks the search without weakening it: the
// resolved ops must still fit the real-time order of every read.
//
// Deletes carry no unique value, so an unknown delete cannot be matched to its event. Instead the
// delete events no acknowledged delete explains are each given to a synthetic delete whose interval
// starts no earlier than it could have (the i-th such event of a key needs i unknown deletes of that
// key invoked before it) and ends at +Infinity; the unknown deletes themselves are dropped. That
// only widens where the deletes may sit, so it never rejects a correct history.
import { describeOp, type Operation } from './history.ts';
import type { WatchEvent } from './watch-checker.ts';

export interface Reconciled {
  history: Operation[];
  violations: string[];
  resolvedUnknown: number;
  droppedUnknown: number;
}

export function reconcileWithReference(history: ReadonlyArray<Operation>, reference: ReadonlyArray<WatchEvent>): Reconciled {
  const violations: string[] = [];
  const puts = new Map<string, WatchEvent>();
  const deletes = new Map<string, WatchEvent>();
  for (let i = 0; i < reference.length; i++) {
    const e = reference[i];
    if (i > 0 && e.revision <= reference[i - 1].revision) violations.push(`store history out of order at revision ${e.revision}`);
    if (e.type === 'PUT') {
      const id = `${e.key}\u0000${e.value}`;
      if (puts.has(id)) violations.push(`store history has ${e.key}=${e.value} twice (revisions ${puts.get(id)!.revision} and ${e.revision})`);
      puts.set(id, e);
    } else {
      deletes.set(`${e.key}\u0000${e.revision}`, e);
    }
  }
  const written = new Set<string>();
  const explainedDeletes = new Set<string>();
  const unknownDeletes = new Map<string, Operation[]>();
  const out: Operation[] = [];
  let resolvedUnknown = 0;
  let droppedUnknown = 0;
  for (const op of history) {
    const i = op.input;
    if (i.kind === 'put' || i.kind === 'cas') {
      const id = `${i.key}\u0000${i.value}`;
      written.add(id);
      const ev = puts.get(id);
      if (op.output === null) {
        if (!ev) {
          droppedUnknown++;
          continue;
        }
        resolvedUnknown++;
        out.push({
          ...op,
          output: i.kind === 'put' ? { kind: 'put', revision: ev.revision } : { kind: 'cas', revision: ev.revision, succeeded: true, found: null },
        });
        continue;
      }
      const changed = op.output.kind === 'put' || (op.output.kind === 'cas' && op.output.succeeded);
      if (changed && !ev) violations.push(`acknowledged write lost: ${describeOp(op)} is not in the store's history`);
      else if (changed && ev!.revision !== op.output.revision) {
        violations.push(`acknowledged write at the wrong revision: ${describeOp(op)}, the store's history has it at ${ev!.revision}`);
      } else if (!changed && ev) violations.push(`a CAS reported as failed took effect: ${describeOp(op)} is in the history at ${ev.revision}`);
    } else if (i.kind === 'delete' && op.output === null) {
      const list = unknownDeletes.get(i.key);
      if (list) list.push(op);
      else unknownDeletes.set(i.key, [op]);
      continue;
    } else if (i.kind === 'delete' && op.output?.kind === 'delete' && op.output.deleted > 0) {
      const id = `${i.key}\u0000${op.output.revision}`;
      explainedDeletes.add(id);
      if (!deletes.has(id)) violations.push(`acknowledged delete lost: ${describeOp(op)} is not in the store's history`);
    }
    out.push(op);
  }
  let nextId = Math.max(-1, ...history.map((op) => op.id)) + 1;
  const unexplained = new Map<string, WatchEvent[]>();
  for (const [id, e] of deletes) {
    if (explainedDeletes.has(id)) continue;
    const list = unexplained.get(e.key);
    if (list) list.push(e);
    else unexplained.set(e.key, [e]);
  }
  for (const [key, events] of unexplained) {
    const candidates = (unknownDeletes.get(key) ?? []).sort((a, b) => a.invoke - b.invoke);
    events.sort((a, b) => a.revision - b.revision);
    if (events.length > candidates.length) {
      violations.push(`phantom delete: the store's history deletes ${key} at ${events.map((e) => e.revision).join(', ')}, more than clients asked for`);
      continue;
    }
    events.forEach((e, k) => {
      out.push({ id: nextId++, client: -1, input: { kind: 'delete', key }, output: { kind: 'delete', revision: e.revision, deleted: 1 }, invoke: candidates[k].invoke, complete: Infinity });
      resolvedUnknown++;
    });
    droppedUnknown += candidates.length - events.length;
  }
  for (const key of unknownDeletes.keys()) if (!unexplained.has(key)) droppedUnknown += unknownDeletes.get(key)!.length;
  for (const [id, e] of puts) {
    if (!written.has(id)) violations.push(`phantom write: the store's history has ${e.key}=${e.value} @${e.revision}, which no client wrote`);
  }
  return { history: out, violations, resolvedUnknown, droppedUnknown };
}

// Test support for the shard state machine: what a replica would find on disk after a restart.
import type { KvStateMachine } from './kv-state-machine.ts';

/** The state records `sm` has persisted so far (its drained persist ops, folded), as a restart loads them. */
export function persistedRecords(sm: KvStateMachine): Array<[Buffer, Buffer]> {
  const records = new Map<string, Buffer>();
  for (const op of sm.drainPersistOps()) {
    if (op.value === null) records.delete(op.key.toString('latin1'));
    else records.set(op.key.toString('latin1'), op.value);
  }
  return [...records].map(([k, v]) => [Buffer.from(k, 'latin1'), v]);
}

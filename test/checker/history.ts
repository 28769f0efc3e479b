// The operation history the linearizability checker consumes: one record per client request with
// its input, its outcome (null when unknown: timed out or failed, so it may or may not have taken
// effect) and its invoke/complete times. An unknown outcome completes at +Infinity, as porcupine
// treats Jepsen's "info" operations: it may be linearized anywhere after its invocation.

/** What the value of a key looks like to a reader: absent, or a value with its mod_revision. */
export interface Found {
  value: string;
  modRevision: number;
}

export type CasCompare = { target: 'value'; value: string } | { target: 'mod'; modRevision: number };

export type KvInput =
  | { kind: 'get'; key: string }
  | { kind: 'put'; key: string; value: string }
  | { kind: 'delete'; key: string }
  /** Txn: if compare holds, put value (success branch); otherwise get the key (failure branch). */
  | { kind: 'cas'; key: string; compare: CasCompare; value: string };

/** `revision` is always the response header's revision. */
export type KvOutput =
  | { kind: 'get'; revision: number; found: Found | null }
  | { kind: 'put'; revision: number }
  | { kind: 'delete'; revision: number; deleted: number }
  | { kind: 'cas'; revision: number; succeeded: boolean; found: Found | null };

export interface Operation {
  id: number;
  client: number;
  input: KvInput;
  /**
   * null: the outcome is unknown (complete must then be +Infinity). A known output may also complete
   * at +Infinity: the effect is known (e.g. found in the store's history) but the reply never came.
   */
  output: KvOutput | null;
  /** Milliseconds on any monotonic clock shared by the whole history. */
  invoke: number;
  complete: number;
}

/** Whether a known outcome changed the key (and so consumed a revision of its own). */
export function changedKey(output: KvOutput): boolean {
  switch (output.kind) {
    case 'put':
      return true;
    case 'delete':
      return output.deleted > 0;
    case 'cas':
      return output.succeeded;
    case 'get':
      return false;
  }
}

export function describeOp(op: Operation): string {
  const i = op.input;
  const input =
    i.kind === 'get' || i.kind === 'delete'
      ? `${i.kind}(${i.key})`
      : i.kind === 'put'
        ? `put(${i.key}=${i.value})`
        : `cas(${i.key}: ${i.compare.target === 'value' ? `value==${i.compare.value}` : `mod==${i.compare.modRevision}`} -> ${i.value})`;
  const o = op.output;
  let output = '?';
  if (o) {
    const found = (f: Found | null): string => (f ? `${f.value}@${f.modRevision}` : 'absent');
    if (o.kind === 'get') output = `${found(o.found)} rev=${o.revision}`;
    else if (o.kind === 'put') output = `rev=${o.revision}`;
    else if (o.kind === 'delete') output = `deleted=${o.deleted} rev=${o.revision}`;
    else output = `${o.succeeded ? 'ok' : `failed, saw ${found(o.found)}`} rev=${o.revision}`;
  }
  const end = Number.isFinite(op.complete) ? op.complete.toFixed(3) : 'inf';
  return `#${op.id} c${op.client} ${input} -> ${output} [${op.invoke.toFixed(3)}, ${end}]`;
}

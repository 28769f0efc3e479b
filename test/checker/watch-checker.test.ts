// The watch checker and the reconciliation with the store's history on small known cases.
import { describe, expect, it } from 'vitest';
import { checkWatchDelivery, type WatchEvent } from './watch-checker.ts';
import { reconcileWithReference } from './reference-history.ts';
import type { Operation } from './history.ts';

const put = (revision: number, key: string, value: string): WatchEvent => ({ revision, key, type: 'PUT', value });
const del = (revision: number, key: string): WatchEvent => ({ revision, key, type: 'DELETE', value: '' });
const reference = [put(2, 'a', 'v1'), put(3, 'b', 'v2'), del(4, 'a'), put(5, 'a', 'v3'), put(6, 'b', 'v4')];

describe('watch delivery checker', () => {
  it('accepts exact delivery, from any start revision, and a prefix when not told to expect more', () => {
    expect(checkWatchDelivery('w', reference, reference, { startRevision: 1, untilRevision: 6 })).toEqual([]);
    expect(checkWatchDelivery('w', reference.slice(2), reference, { startRevision: 4, untilRevision: 6 })).toEqual([]);
    expect(checkWatchDelivery('w', reference.slice(0, 3), reference, { startRevision: 1 })).toEqual([]);
    expect(checkWatchDelivery('w', [reference[1], reference[4]], reference, { startRevision: 1, watches: (k) => k === 'b' })).toEqual([]);
  });

  it('rejects a gap, a duplicate, a reordering, a phantom event and a watcher that stopped short', () => {
    expect(checkWatchDelivery('w', [reference[0], reference[2]], reference, { startRevision: 1 })).toEqual([expect.stringMatching(/gap: missed PUT b=v2 @3/)]);
    expect(checkWatchDelivery('w', [reference[0], reference[0], reference[1]], reference, { startRevision: 1 }).join('\n')).toMatch(/duplicate event PUT a=v1 @2/);
    expect(checkWatchDelivery('w', [reference[1], reference[0]], reference, { startRevision: 1 }).join('\n')).toMatch(/out of order/);
    expect(checkWatchDelivery('w', [reference[0], put(3, 'b', 'other')], reference, { startRevision: 1 }).join('\n')).toMatch(/delivered PUT b=other @3/);
    expect(checkWatchDelivery('w', reference.slice(0, 3), reference, { startRevision: 1, untilRevision: 6 })).toEqual([expect.stringMatching(/gap: missed PUT a=v3 @5 \(got nothing/)]);
    expect(checkWatchDelivery('w', reference, reference, { startRevision: 3 }).join('\n')).toMatch(/precedes the start revision/);
  });
});

describe('reconciliation with the store history', () => {
  const op = (id: number, o: Omit<Operation, 'id' | 'client' | 'invoke' | 'complete'>, complete = id + 1): Operation => ({ id, client: 0, invoke: id, complete: o.output ? complete : Infinity, ...o });

  it('resolves unknown writes: found ones get their revision, missing ones are dropped', () => {
    const history = [
      op(0, { input: { kind: 'put', key: 'a', value: 'v1' }, output: { kind: 'put', revision: 2 } }),
      op(1, { input: { kind: 'put', key: 'b', value: 'v2' }, output: null }),
      op(2, { input: { kind: 'put', key: 'b', value: 'never' }, output: null }),
      op(3, { input: { kind: 'delete', key: 'a' }, output: { kind: 'delete', revision: 4, deleted: 1 } }),
      op(4, { input: { kind: 'cas', key: 'a', compare: { target: 'mod', modRevision: 0 }, value: 'v3' }, output: null }),
      op(5, { input: { kind: 'put', key: 'b', value: 'v4' }, output: { kind: 'put', revision: 6 } }),
    ];
    const r = reconcileWithReference(history, reference);
    expect(r.violations).toEqual([]);
    expect(r).toMatchObject({ resolvedUnknown: 2, droppedUnknown: 1 });
    expect(r.history.map((o) => o.output?.revision)).toEqual([2, 3, 4, 5, 6]);
    expect(r.history[1].complete).toBe(Infinity);
  });

  it('reports a lost acknowledged write, a lost delete, a write at the wrong revision and a phantom write', () => {
    const history = [
      op(0, { input: { kind: 'put', key: 'a', value: 'v1' }, output: { kind: 'put', revision: 2 } }),
      op(1, { input: { kind: 'put', key: 'b', value: 'v2' }, output: { kind: 'put', revision: 9 } }),
      op(2, { input: { kind: 'put', key: 'b', value: 'gone' }, output: { kind: 'put', revision: 7 } }),
      op(3, { input: { kind: 'delete', key: 'b' }, output: { kind: 'delete', revision: 8, deleted: 1 } }),
      op(4, { input: { kind: 'put', key: 'a', value: 'v3' }, output: null }),
    ];
    const v = reconcileWithReference(history, reference).violations.join('\n');
    expect(v).toMatch(/wrong revision: #1/);
    expect(v).toMatch(/acknowledged write lost: #2/);
    expect(v).toMatch(/acknowledged delete lost: #3/);
    expect(v).toMatch(/phantom write: .*b=v4 @6/);
  });
});

describe('reconciliation of unknown deletes', () => {
  const unknownDelete = (id: number, invoke: number): Operation => ({ id, client: 1, input: { kind: 'delete', key: 'a' }, output: null, invoke, complete: Infinity });
  const putA = (id: number, value: string, revision: number): Operation => ({ id, client: 0, input: { kind: 'put', key: 'a', value }, output: { kind: 'put', revision }, invoke: id, complete: id + 0.5 });

  it('gives each unexplained delete event to a synthetic delete starting at the earliest possible unknown delete', () => {
    const ref = [put(2, 'a', 'v1'), del(3, 'a'), put(4, 'a', 'v2')];
    const r = reconcileWithReference([putA(0, 'v1', 2), unknownDelete(1, 0.7), unknownDelete(2, 1.5), putA(3, 'v2', 4)], ref);
    expect(r.violations).toEqual([]);
    expect(r).toMatchObject({ resolvedUnknown: 1, droppedUnknown: 1 });
    const synthetic = r.history.find((op) => op.input.kind === 'delete');
    expect(synthetic).toMatchObject({ invoke: 0.7, complete: Infinity, output: { kind: 'delete', revision: 3, deleted: 1 } });
  });

  it('reports a delete event no client could have caused', () => {
    const r = reconcileWithReference([putA(0, 'v1', 2)], [put(2, 'a', 'v1'), del(3, 'a')]);
    expect(r.violations).toEqual([expect.stringMatching(/phantom delete: .* a at 3/)]);
  });
});

// The checker on small known histories: linearizable ones must pass, and each classic violation
// (stale read, lost write, value never written, real-time reordering, wrong revision, a CAS that
// could not have succeeded) must be rejected. Ambiguous (timed-out) writes are accepted whether or
// not they took effect.
import { describe, expect, it } from 'vitest';
import type { KvInput, KvOutput, Operation } from './history.ts';
import { checkLinearizability } from './linearizability.ts';

/** Builds a history: op(client, input, output|null, invoke, complete?) */
function history(): { op: (client: number, input: KvInput, output: KvOutput | null, invoke: number, complete?: number) => void; ops: Operation[] } {
  const ops: Operation[] = [];
  return {
    ops,
    op: (client, input, output, invoke, complete) => {
      ops.push({ id: ops.length, client, input, output, invoke, complete: output === null ? Infinity : (complete ?? invoke + 1) });
    },
  };
}
const put = (key: string, value: string): KvInput => ({ kind: 'put', key, value });
const get = (key: string): KvInput => ({ kind: 'get', key });
const del = (key: string): KvInput => ({ kind: 'delete', key });
const putOk = (revision: number): KvOutput => ({ kind: 'put', revision });
const saw = (value: string, modRevision: number, revision = modRevision): KvOutput => ({ kind: 'get', revision, found: { value, modRevision } });
const absent = (revision: number): KvOutput => ({ kind: 'get', revision, found: null });

describe('linearizability checker: accepted histories', () => {
  it('a sequential history of puts, gets and deletes', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0);
    h.op(0, get('x'), saw('a', 2), 2);
    h.op(1, del('x'), { kind: 'delete', revision: 3, deleted: 1 }, 4);
    h.op(1, get('x'), absent(3), 6);
    h.op(0, del('x'), { kind: 'delete', revision: 3, deleted: 0 }, 8);
    const r = checkLinearizability(h.ops);
    expect(r.violations).toEqual([]);
    expect(r).toMatchObject({ ok: true, operations: 5, partitions: 1 });
  });

  it('a read concurrent with a put may see the old or the new value', () => {
    for (const seen of [saw('a', 2, 2), saw('b', 3, 3)]) {
      const h = history();
      h.op(0, put('x', 'a'), putOk(2), 0, 1);
      h.op(1, put('x', 'b'), putOk(3), 2, 6);
      h.op(2, get('x'), seen, 3, 4);
      expect(checkLinearizability(h.ops).violations).toEqual([]);
    }
  });

  it('concurrent reads may order two overlapping puts either way, as long as they agree', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(3), 0, 10);
    h.op(1, put('x', 'b'), putOk(2), 0, 10);
    h.op(2, get('x'), saw('b', 2, 2), 1, 2);
    h.op(2, get('x'), saw('a', 3, 3), 3, 4);
    expect(checkLinearizability(h.ops).ok).toBe(true);
  });

  it('a timed-out put that took effect and one that did not are both accepted', () => {
    const applied = history();
    applied.op(0, put('x', 'a'), putOk(2), 0);
    applied.op(1, put('x', 'b'), null, 2);
    applied.op(0, get('x'), saw('b', 3), 5);
    expect(checkLinearizability(applied.ops).violations).toEqual([]);

    const lost = history();
    lost.op(0, put('x', 'a'), putOk(2), 0);
    lost.op(1, put('x', 'b'), null, 2);
    lost.op(0, get('x'), saw('a', 2, 2), 5);
    lost.op(0, get('x'), saw('a', 2, 4), 7);
    expect(checkLinearizability(lost.ops).violations).toEqual([]);
  });

  it('a timed-out put may take effect long after its client gave up, but only once', () => {
    const h = history();
    h.op(1, put('x', 'late'), null, 0);
    h.op(0, get('x'), absent(1), 2);
    h.op(0, put('x', 'a'), putOk(2), 4);
    h.op(0, get('x'), saw('late', 3), 6);
    expect(checkLinearizability(h.ops).ok).toBe(true);
    h.op(0, get('x'), saw('a', 2, 3), 8);
    expect(checkLinearizability(h.ops).ok).toBe(false);
  });

  it('timed-out reads carry no information and are not checked', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0);
    h.op(1, get('x'), null, 2);
    const r = checkLinearizability(h.ops);
    expect(r).toMatchObject({ ok: true, operations: 1 });
  });

  it('compare-and-swap on value and on mod_revision, including an ambiguous one', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0);
    h.op(0, { kind: 'cas', key: 'x', compare: { target: 'value', value: 'a' }, value: 'b' }, { kind: 'cas', revision: 3, succeeded: true, found: null }, 2);
    h.op(1, { kind: 'cas', key: 'x', compare: { target: 'value', value: 'a' }, value: 'c' }, { kind: 'cas', revision: 3, succeeded: false, found: { value: 'b', modRevision: 3 } }, 4);
    h.op(1, { kind: 'cas', key: 'x', compare: { target: 'mod', modRevision: 3 }, value: 'd' }, null, 6);
    h.op(0, get('x'), saw('d', 4), 8);
    h.op(0, { kind: 'cas', key: 'y', compare: { target: 'mod', modRevision: 0 }, value: 'e' }, { kind: 'cas', revision: 5, succeeded: true, found: null }, 10);
    h.op(0, { kind: 'cas', key: 'z', compare: { target: 'value', value: '' }, value: 'f' }, { kind: 'cas', revision: 5, succeeded: false, found: null }, 12);
    const r = checkLinearizability(h.ops);
    expect(r.violations).toEqual([]);
    expect(r.partitions).toBe(3);
  });
});

describe('linearizability checker: rejected histories', () => {
  it('a stale read: the value before a write that completed before the read began', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0);
    h.op(0, put('x', 'b'), putOk(3), 2);
    h.op(1, get('x'), saw('a', 2, 2), 4);
    const r = checkLinearizability(h.ops);
    expect(r.ok).toBe(false);
    expect(r.violations.join('\n')).toMatch(/key x: not linearizable/);
    expect(r.violations.join('\n')).toMatch(/revision went back in real time/);
  });

  it('a stale read of another key is caught by the global revision order', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(5), 0);
    h.op(1, get('y'), absent(3), 2);
    const r = checkLinearizability(h.ops);
    expect(r.ok).toBe(false);
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toMatch(/revision went back in real time: #1/);
  });

  it('sharded (a domain per shard): a read of another shard may carry a lower header; a write may not', () => {
    const shardOf = (key: string): string => (key === 'x' ? 'shard-a' : 'shard-b');
    const reads = history();
    reads.op(0, put('x', 'a'), putOk(5), 0);
    reads.op(1, get('y'), absent(3), 2);
    expect(checkLinearizability(reads.ops, { revisionDomain: shardOf }).violations).toEqual([]);

    const sameShard = history();
    sameShard.op(0, put('x', 'a'), putOk(5), 0);
    sameShard.op(1, get('x'), absent(3), 2);
    expect(checkLinearizability(sameShard.ops, { revisionDomain: shardOf }).violations.join('\n')).toMatch(/revision went back in real time: #1/);

    const writes = history();
    writes.op(0, put('x', 'a'), putOk(5), 0);
    writes.op(1, put('y', 'b'), putOk(4), 2);
    const r = checkLinearizability(writes.ops, { revisionDomain: shardOf });
    expect(r.violations).toHaveLength(1);
    expect(r.violations[0]).toMatch(/revision went back in real time: #1/);
  });

  it('a lost write: an acknowledged put that a later read does not see', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0);
    h.op(1, get('x'), absent(2), 2);
    expect(checkLinearizability(h.ops).ok).toBe(false);
  });

  it('a read of a value nobody wrote', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0);
    h.op(1, get('x'), saw('ghost', 2), 2);
    expect(checkLinearizability(h.ops).ok).toBe(false);
  });

  it('real-time order reversed: the later put has the earlier revision and reads see the earlier put last', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(3), 0);
    h.op(1, put('x', 'b'), putOk(2), 2);
    h.op(2, get('x'), saw('a', 3), 4);
    const r = checkLinearizability(h.ops);
    expect(r.ok).toBe(false);
    expect(r.violations.some((v) => v.startsWith('key x'))).toBe(true);
  });

  it('reads that disagree on the order of two concurrent puts', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0, 10);
    h.op(1, put('x', 'b'), putOk(3), 0, 10);
    h.op(2, get('x'), saw('b', 3), 1, 2);
    h.op(3, get('x'), saw('a', 2, 3), 3, 4);
    expect(checkLinearizability(h.ops).ok).toBe(false);
  });

  it('a read reporting the right value with the wrong mod_revision', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0);
    h.op(1, get('x'), saw('a', 7, 7), 2);
    expect(checkLinearizability(h.ops).ok).toBe(false);
  });

  it('a CAS that succeeded although its compare could not hold', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0);
    h.op(1, { kind: 'cas', key: 'x', compare: { target: 'value', value: 'zzz' }, value: 'b' }, { kind: 'cas', revision: 3, succeeded: true, found: null }, 2);
    expect(checkLinearizability(h.ops).ok).toBe(false);
  });

  it('a delete reporting nothing deleted while the key exists', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0);
    h.op(1, del('x'), { kind: 'delete', revision: 2, deleted: 0 }, 2);
    expect(checkLinearizability(h.ops).ok).toBe(false);
  });

  it('two writes with the same revision', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0, 5);
    h.op(1, put('y', 'b'), putOk(2), 0, 5);
    const r = checkLinearizability(h.ops);
    expect(r.violations).toEqual([expect.stringMatching(/two changes at revision 2/)]);
  });

  it('an unknown outcome must complete at +Infinity', () => {
    const ops: Operation[] = [{ id: 0, client: 0, input: put('x', 'a'), output: null, invoke: 0, complete: 1 }];
    expect(() => checkLinearizability(ops)).toThrow(/\+Infinity/);
  });
});

describe('linearizability checker: diagnostics', () => {
  it('names an operation that cannot be placed and the longest linearizable prefix', () => {
    const h = history();
    h.op(0, put('x', 'a'), putOk(2), 0);
    h.op(0, put('x', 'b'), putOk(3), 2);
    h.op(1, get('x'), saw('a', 2, 2), 4);
    const text = checkLinearizability(h.ops).violations[0];
    expect(text).toMatch(/no linearization can place #2 c1 get\(x\) -> a@2 rev=2/);
    expect(text).toMatch(/longest linearizable prefix has 2 of 3 ops/);
  });
});

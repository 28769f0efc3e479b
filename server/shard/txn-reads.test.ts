// A txn writing one shard and reading others, evaluated the sharded way (txn-reads.ts: the other shards
// read at R − 1, the answers carried through the entry's wire form, merged at apply with the write
// shard's own part), must answer and write exactly what one store holding every key answers at R.
// Seeded: random histories over S = 2, 4, 16 shards, random txns (compares of every target over keys and
// ranges, ranges with every sort, limit and filter, puts and deletes on the write shard, both branches).
import { describe, expect, it } from 'vitest';
import { MvccStore } from '../mvcc/store.ts';
import type { Compare, CompareResult, CompareTarget, RangeOp, RequestOp, SortOrder, SortTarget, TxnOp } from '../mvcc/types.ts';
import { Rng } from '../raft/rng.ts';
import { SlotMap } from '../routing/slots.ts';
import { b, cmp, delOp, putOp, rangeOp, rq } from '../mvcc/test-helpers.ts';
import { decodeInternalRequest, encodeInternalRequest } from './request-codec.ts';
import { foreignReadRevision, planTxnReads, readsForStore, txnReadsToWire, type ForeignAnswer } from './txn-reads.ts';

const SEED = Number(process.env.TXN_READS_SEED ?? 20261203);
const KEYS = Array.from({ length: 24 }, (_, i) => `k${i}`);

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.nextInt(xs.length)];
}

/** A key range: one key, a prefix (k1 → k1, k10…k19), or every key. */
function randomRange(rng: Rng): [string, string] {
  const r = rng.nextInt(10);
  if (r < 6) return [pick(rng, KEYS), ''];
  if (r < 9) {
    const p = `k${rng.nextInt(3)}`;
    return [p, p.slice(0, -1) + String.fromCharCode(p.charCodeAt(p.length - 1) + 1)];
  }
  return ['\0', '\0'];
}

function randomCompare(rng: Rng, maxRevision: number): Compare {
  const [key, end] = randomRange(rng);
  const target = pick<CompareTarget>(rng, ['VALUE', 'VERSION', 'CREATE', 'MOD', 'LEASE']);
  const result = pick<CompareResult>(rng, ['EQUAL', 'NOT_EQUAL', 'GREATER', 'LESS']);
  const v = target === 'VALUE' ? `v${rng.nextInt(4)}` : target === 'VERSION' ? rng.nextInt(4) : target === 'LEASE' ? String(rng.nextInt(2)) : rng.nextInt(maxRevision + 2);
  return cmp(key, target, result, v, end);
}

function randomRangeOp(rng: Rng, maxRevision: number): RangeOp {
  const [key, end] = randomRange(rng);
  const filters = rng.chance(0.2) ? { minModRevision: rng.nextInt(maxRevision), maxCreateRevision: rng.chance(0.5) ? rng.nextInt(maxRevision + 2) : 0 } : {};
  return rangeOp(key, end, {
    limit: rng.chance(0.4) ? 1 + rng.nextInt(3) : 0,
    sortOrder: pick<SortOrder>(rng, ['NONE', 'ASCEND', 'DESCEND']),
    sortTarget: pick<SortTarget>(rng, ['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE']),
    keysOnly: rng.chance(0.2),
    countOnly: rng.chance(0.1),
    revision: rng.chance(0.1) ? Math.max(1, maxRevision - rng.nextInt(3)) : 0,
    ...filters,
  });
}

function randomBranch(rng: Rng, writeKeys: string[], maxRevision: number): RequestOp[] {
  const ops: RequestOp[] = [];
  const n = rng.nextInt(4);
  for (let i = 0; i < n; i++) {
    const r = rng.nextInt(3);
    if (r === 0) ops.push(rq.range(randomRangeOp(rng, maxRevision)));
    else if (r === 1) ops.push(rq.put(putOp(pick(rng, writeKeys), `v${rng.nextInt(4)}`, { prevKv: rng.chance(0.3) })));
    else ops.push(rq.del(delOp(pick(rng, writeKeys), '', rng.chance(0.3))));
  }
  return ops;
}

/** The store's answer, or its refusal (an MvccError's code), as something toEqual can compare. */
function outcome(fn: () => unknown): unknown {
  try {
    return { ok: fn() };
  } catch (err) {
    if (err instanceof Error && err.name === 'MvccError') return { refused: (err as Error & { code: string }).code };
    throw err;
  }
}

function run(shardCount: number, seed: number): { txns: number; foreign: number } {
  const rng = new Rng(seed);
  const slots = SlotMap.create(shardCount);
  const shardOf = (key: string): number => slots.shardOfKey(b(key));
  const groupsOf = (key: Buffer, end: Buffer): number[] => [...slots.shardsOfRange(key, end).shards];
  const reference = new MvccStore();
  const shards = Array.from({ length: shardCount }, () => new MvccStore());
  let revision = 1;
  let txns = 0;
  let foreign = 0;
  for (let step = 0; step < 300; step++) {
    revision += 1 + (rng.chance(0.3) ? rng.nextInt(3) : 0); // the oracle's revisions, with gaps
    if (rng.chance(0.4)) {
      // A plain write somewhere (its own shard at its own revision).
      const key = pick(rng, KEYS);
      const op = putOp(key, `v${rng.nextInt(4)}`, { lease: String(rng.nextInt(2)) });
      reference.put(op, revision);
      shards[shardOf(key)].put(op, revision);
      continue;
    }
    if (rng.chance(0.05)) {
      // Compact(C) on every shard, everything written below `revision` applied.
      const at = revision - 1 - rng.nextInt(5);
      if (at <= reference.compactedRevision()) continue;
      reference.compact(at, revision - 1);
      for (const s of shards) s.compact(at, revision - 1);
      continue;
    }
    const own = rng.nextInt(shardCount);
    const writeKeys = KEYS.filter((k) => shardOf(k) === own);
    if (writeKeys.length === 0) continue;
    const op: TxnOp = {
      compare: Array.from({ length: rng.nextInt(3) }, () => randomCompare(rng, revision)),
      success: randomBranch(rng, writeKeys, revision),
      failure: randomBranch(rng, writeKeys, revision),
    };
    txns++;
    const plan = planTxnReads(op, own, groupsOf);
    if (plan.length > 0) foreign++;
    // The write shard's leader: every other shard read at R − 1 (or the op's own revision).
    const answers = plan.map((read): ForeignAnswer | null => {
      const at = foreignReadRevision(read, revision);
      if (at === null) return null;
      try {
        return read.groups.map((g) => shards[g].range({ ...read.op, revision: at }, Math.max(at, shards[g].currentRevision())));
      } catch (err) {
        if (err instanceof Error && err.name === 'MvccError' && (err as Error & { code: string }).code === 'compacted') return 'compacted';
        throw err;
      }
    });
    // Through the entry's wire form, as every replica decodes it.
    const wire = txnReadsToWire(op, plan, answers);
    const decoded = decodeInternalRequest(encodeInternalRequest({ proposer: '1', seq: '1', compaction: { revision: '0', physical: false }, txn_reads: wire }));
    const reads = readsForStore(op, decoded.txn_reads!, revision);
    // The result and events (the header revision is the shard layer's: the entry's own revision).
    const want = outcome(() => {
      const o = reference.txn(op, revision);
      return { result: o.result, events: o.events };
    });
    const got = outcome(() => {
      const o = shards[own].txn(op, revision, reads);
      return { result: o.result, events: o.events };
    });
    expect(got, `seed ${seed}, S=${shardCount}, step ${step}`).toEqual(want);
  }
  // Same history: every key at every revision.
  for (let at = Math.max(1, reference.compactedRevision()); at <= revision; at++) {
    const all = reference.range(rangeOp('\0', '\0', { revision: at }), revision);
    const merged = shards.flatMap((s) => s.range(rangeOp('\0', '\0', { revision: at }), Math.max(revision, s.currentRevision())).kvs).sort((x, y) => Buffer.compare(x.key, y.key));
    expect(merged).toEqual(all.kvs);
  }
  return { txns, foreign };
}

describe('a txn writing one shard and reading others', () => {
  it('answers and writes exactly what one store answers at the same revision (seeded)', () => {
    let txns = 0;
    let foreign = 0;
    for (const shardCount of [2, 4, 16]) {
      for (let i = 0; i < 20; i++) {
        const r = run(shardCount, SEED + 1000 * shardCount + i);
        txns += r.txns;
        foreign += r.foreign;
      }
    }
    console.log(`txn-reads: ${txns} txns, ${foreign} reading other shards, equal to one store`);
    expect(foreign).toBeGreaterThan(1000);
  });

  it('plans nothing for a txn within its own shard (one Raft entry, today’s path)', () => {
    const slots = SlotMap.create(4);
    const groupsOf = (key: Buffer, end: Buffer): number[] => [...slots.shardsOfRange(key, end).shards];
    const own = slots.shardOfKey(b('/a/{t}/x'));
    const op: TxnOp = { compare: [cmp('/a/{t}/x', 'VERSION', 'EQUAL', 0)], success: [rq.put(putOp('/a/{t}/x', 'v')), rq.range(rangeOp('/a/{t}/', '/a/{t}0'))], failure: [] };
    expect(planTxnReads(op, own, groupsOf)).toEqual([]);
  });
});

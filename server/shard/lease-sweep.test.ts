// Leases on a sharded cluster, at apply (docs/sharding.md, "Leases on a sharded cluster"): the cluster
// group gives each lease a generation (its grant's Raft index) and leaves a pending sweep on revoke; a
// shard applies a put naming a generation it has not swept, deletes a lease's keys when it sweeps that
// generation, refuses every later put naming it (the put that raced the revoke), ignores a repeated or
// older sweep (so a re-granted id's keys survive a late duplicate), and keeps all of it across a restart.
import { describe, expect, it } from 'vitest';
import type { Entry } from '../raft/types.ts';
import { rangeOf } from '../mvcc/types.ts';
import { KvStateMachine } from './kv-state-machine.ts';
import { encodeInternalRequest, type InternalRequest } from './request-codec.ts';

const b = (s: string): Buffer => Buffer.from(s);

/** An entry's fields beside proposer and seq. */
type Body = Record<string, unknown>;

class Log {
  private index = 0;
  readonly records = new Map<string, [Buffer, Buffer]>();
  readonly sm: KvStateMachine;
  constructor(sm: KvStateMachine) {
    this.sm = sm;
  }

  /** Applies `req` at the next index; resolves with its outcome, or its refusal's message. */
  async apply(req: Body): Promise<{ index: number; result: unknown; error?: string }> {
    const t = this.sm.track();
    const entry: Entry = { term: 1, index: ++this.index, type: 'normal', data: encodeInternalRequest({ proposer: this.sm.proposer, seq: t.seq, ...req } as unknown as InternalRequest) };
    this.sm.apply(entry);
    for (const op of this.sm.drainPersistOps()) {
      if (op.value === null) this.records.delete(op.key.toString('hex'));
      else this.records.set(op.key.toString('hex'), [op.key, op.value]);
    }
    return t.outcome.then(
      (o) => ({ index: entry.index, result: o.result }),
      (e: Error) => ({ index: entry.index, result: null, error: e.message }),
    );
  }
}

/** A put naming `generation` of `lease`, found alive at cluster-group index `checkedAt` (default: the grant's). */
const put = (key: string, lease: string, revision: number, generation?: number, checkedAt = generation): Body => ({
  put: { key: b(key), value: b('v'), lease, prev_kv: false, ignore_value: false, ignore_lease: false },
  revision: String(revision),
  ...(generation === undefined ? {} : { lease_generations: [{ ID: lease, generation: String(generation), checked_at: String(checkedAt) }] }),
});
const sweep = (id: string, generation: number, revision: number, revokedAt = generation + 1, horizon = 0): Body => ({
  lease_sweep: { ID: id, generation: String(generation), revoked_at: String(revokedAt), horizon: String(horizon) },
  revision: String(revision),
});
const keys = (sm: KvStateMachine): string[] => sm.store.range(rangeOf(b('\0'), b('\0')), sm.appliedRevision()).kvs.map((kv) => kv.key.toString());
const NOT_FOUND = 'etcdserver: requested lease not found';

describe('leases on a sharded cluster, at apply', () => {
  it('sweeps a revoked generation on a shard, refuses the put that raced the revoke, and keeps a re-granted id', async () => {
    const cluster = new Log(new KvStateMachine(1, [], [], { leaseSweeps: true }));
    const shard = new Log(new KvStateMachine(1, [], [], { sharded: true }));

    // Grant: the generation is the grant's index; a revoke leaves a pending sweep of it.
    await cluster.apply({ lease_grant: { ID: '7', TTL: '60' } });
    const g1 = (await cluster.apply({ lease_grant: { ID: '8', TTL: '60' } })).index;
    const lease8 = cluster.sm.leases.get('8')!;
    expect(lease8.generation).toBe(g1);
    expect(cluster.sm.leases.attachable('8')).toEqual({ kind: 'alive', generation: g1 });

    expect((await shard.apply(put('a', '8', 10, g1))).error).toBeUndefined();
    expect((await shard.apply(put('x', '8', 11))).error).toBe(NOT_FOUND); // no generation named: refused
    expect((await shard.apply({ ...put('y', '9', 12), lease_generations: [{ ID: '8', generation: String(g1), checked_at: String(g1) }] })).error).toBe(NOT_FOUND); // another lease's
    expect(shard.sm.leases.keysOf('8').map(String)).toEqual(['a']);

    const revoked = await cluster.apply({ lease_revoke: { ID: '8' } });
    expect(cluster.sm.leases.attachable('8')).toEqual({ kind: 'missing' });
    expect(revoked.result).toEqual({ generation: g1 });
    expect(cluster.sm.leases.pendingSweep('8')).toEqual({ generation: g1, revokedAt: revoked.index });
    expect(cluster.sm.leases.has('8')).toBe(false);

    // A put checked before the revoke reaches the shard before its sweep: attached, then swept.
    expect((await shard.apply(put('b', '8', 13, g1))).error).toBeUndefined();
    await shard.apply(sweep('8', g1, 14));
    expect(keys(shard.sm)).toEqual([]);
    expect(shard.sm.store.currentRevision()).toBe(14); // both keys deleted at the sweep's one revision
    // One checked before the revoke but reaching the shard after its sweep: refused, never attached.
    expect((await shard.apply(put('c', '8', 15, g1))).error).toBe(NOT_FOUND);
    expect(keys(shard.sm)).toEqual([]);

    // The id granted again: a new generation. Its keys survive a late duplicate of the old sweep.
    const g2 = (await cluster.apply({ lease_grant: { ID: '8', TTL: '60' } })).index;
    expect(g2).toBeGreaterThan(g1);
    // A put of g2 may not name it yet: g1's sweep is still pending (sharded-kv.ts waits for it).
    expect(cluster.sm.leases.attachable('8')).toEqual({ kind: 'sweeping', generation: g1 });
    await cluster.apply({ lease_swept: { ID: '8', generation: String(g1), revoked_at: '0' } });
    expect(cluster.sm.leases.pendingSweep('8')).toBeUndefined();
    expect(cluster.sm.leases.attachable('8')).toEqual({ kind: 'alive', generation: g2 });
    expect(cluster.sm.leases.attachable('9')).toEqual({ kind: 'missing' });
    expect((await shard.apply(put('d', '8', 16, g2))).error).toBeUndefined();
    await shard.apply(sweep('8', g1, 17));
    expect(keys(shard.sm)).toEqual(['d']);
    expect(shard.sm.appliedRevision()).toBe(17); // the repeat used its revision up, changing nothing

    // The cluster group's own keys on a lease (the server-side Lock and Election services keep theirs
    // there) still go with the revoke, in the revoke's entry.
    const own = { key: b('lock/own'), value: b(''), lease: '7', prev_kv: false, ignore_value: false, ignore_lease: false };
    expect((await cluster.apply({ put: own })).error).toBeUndefined();
    expect(keys(cluster.sm)).toEqual(['lock/own']);
    // A restart keeps the generations, the pending sweeps and what each shard swept.
    const revoked7 = await cluster.apply({ lease_revoke: { ID: '7' } });
    expect(keys(cluster.sm)).toEqual([]);
    const cluster2 = new KvStateMachine(1, cluster.records.values(), [], { leaseSweeps: true });
    expect(cluster2.leases.get('8')?.generation).toBe(g2);
    expect(cluster2.leases.pendingSweepList()).toEqual([['7', { generation: 1, revokedAt: revoked7.index }]]);
    const shard2 = new Log(new KvStateMachine(1, shard.records.values(), [], { sharded: true }));
    expect(shard2.sm.leases.keysOf('8').map(String)).toEqual(['d']);
    expect((await shard2.apply(put('e', '8', 18, g1))).error).toBe(NOT_FOUND);
    await shard2.apply(sweep('8', g2, 19));
    expect(keys(shard2.sm)).toEqual([]);
  });

  it('a txn put with a lease needs its generation, and only in the branch that runs', async () => {
    const shard = new Log(new KvStateMachine(1, [], [], { sharded: true }));
    const leasedPut = (key: string, lease: string) => ({ request_put: { key: b(key), value: b('v'), lease, prev_kv: false, ignore_value: false, ignore_lease: false } });
    const txn = (success: unknown[], failure: unknown[], generation?: number) => ({
      txn: { compare: [], success, failure } as never,
      revision: '0',
      ...(generation === undefined ? {} : { lease_generations: [{ ID: '5', generation: String(generation), checked_at: String(generation) }] }),
    });
    expect((await shard.apply({ ...txn([leasedPut('t1', '5')], []), revision: '20' })).error).toBe(NOT_FOUND);
    expect((await shard.apply({ ...txn([], [leasedPut('t2', '5')]), revision: '21' })).error).toBeUndefined(); // not run
    expect((await shard.apply({ ...txn([leasedPut('t3', '5')], [], 3), revision: '22' })).error).toBeUndefined();
    expect(shard.sm.leases.keysOf('5').map(String)).toEqual(['t3']);
    await shard.apply(sweep('5', 3, 23));
    expect((await shard.apply({ ...txn([leasedPut('t4', '5')], [], 3), revision: '24' })).error).toBe(NOT_FOUND);
    expect(keys(shard.sm)).toEqual([]);
  });

  it('the horizon refuses puts checked before it and drops the swept records of leases revoked before it', async () => {
    const shard = new Log(new KvStateMachine(1, [], [], { sharded: true }));
    // Leases 1..50 granted at index i, revoked at 100 + i, swept with no horizon: 50 records.
    let revision = 10;
    for (let i = 1; i <= 50; i++) await shard.apply(sweep(String(i), i, ++revision, 100 + i));
    expect(shard.sm.leases.sweptCount()).toBe(50);
    // A horizon of 126: the records of leases revoked before it (1..25) go; the others stay.
    await shard.apply(sweep('99', 99, ++revision, 199, 126));
    expect(shard.sm.leases.sweptCount()).toBe(26);
    // A put checked before the horizon is refused whatever its lease; at or after it, decided as before.
    expect((await shard.apply(put('old', '300', ++revision, 300, 125))).error).toBe(NOT_FOUND);
    expect((await shard.apply(put('new', '300', ++revision, 300, 126))).error).toBeUndefined();
    expect((await shard.apply(put('late', '30', ++revision, 30, 126))).error).toBe(NOT_FOUND); // swept record kept
    // A put of lease 3 naming its dead generation could only have been checked before its revoke (103):
    // refused by the horizon, though its swept record is gone.
    expect((await shard.apply(put('dead', '3', ++revision, 3, 102))).error).toBe(NOT_FOUND);
    // The horizon never goes back, and survives a restart with the records it kept.
    await shard.apply(sweep('98', 98, ++revision, 198, 5));
    const restarted = new Log(new KvStateMachine(1, shard.records.values(), [], { sharded: true }));
    expect(restarted.sm.leases.sweptCount()).toBe(27);
    expect((await restarted.apply(put('old2', '301', ++revision, 301, 125))).error).toBe(NOT_FOUND);
    expect(keys(restarted.sm)).toEqual(['new']);
  });
});

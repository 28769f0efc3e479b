// A deliberately naive reference implementation of the store's semantics, for tests only: it keeps a
// full snapshot (a Map copy) of the keyspace at every revision and answers everything by scanning.
// Writes may carry an explicit (oracle) revision above the last one: the revisions skipped hold the
// previous state and no events, which is what a gap means. Reads and compactions may name the revision
// the caller is caught up through (see MvccStore's header).

import { MvccError } from './types.ts';
import type {
  Compare,
  DeleteRangeOp,
  DeleteRangeResult,
  KeyValue,
  MvccEvent,
  PutOp,
  PutResult,
  RangeOp,
  RangeResult,
  ResponseOp,
  TxnOp,
  TxnResult,
} from './types.ts';

interface MKV {
  create: number;
  mod: number;
  version: number;
  value: Buffer;
  lease: string;
}

type State = Map<string, MKV>;

const s = (b: Buffer): string => b.toString('latin1');

function inRange(k: string, key: string, end: string): boolean {
  if (end === '') return k === key;
  if (end === '\0') return k >= key;
  return k >= key && k < end;
}

function kv(k: string, m: MKV): KeyValue {
  return { key: Buffer.from(k, 'latin1'), createRevision: m.create, modRevision: m.mod, version: m.version, value: m.value, lease: m.lease };
}

interface Ctx {
  main: number;
  state: State;
  events: MvccEvent[];
  /** What reads inside the write treat as current before its first change. */
  through: number;
}

type Outcome<R> = { result: R; revision: number; events: MvccEvent[] };

export class RefModel {
  /** snaps[r] = keyspace at revision r (snaps[0] unused). */
  readonly snaps: State[] = [new Map(), new Map()];
  readonly evs: MvccEvent[][] = [[], []];
  compacted = 0;

  get rev(): number {
    return this.snaps.length - 1;
  }

  private rangeIn(op: RangeOp, cur: number, live: State): RangeResult {
    let at = op.revision;
    if (at > cur) throw new MvccError('futureRev', 'future');
    if (at <= 0) at = cur;
    if (at < this.compacted) throw new MvccError('compacted', 'compacted');
    const snap = at === cur ? live : this.snaps[Math.min(at, this.rev)];
    const key = s(op.key);
    const end = s(op.rangeEnd);
    let list = [...snap.entries()].filter(([k]) => inRange(k, key, end)).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const count = list.length;
    if (op.countOnly) return { kvs: [], more: false, count };
    list = list.filter(
      ([, m]) =>
        (op.maxModRevision === 0 || m.mod <= op.maxModRevision) &&
        (op.minModRevision === 0 || m.mod >= op.minModRevision) &&
        (op.maxCreateRevision === 0 || m.create <= op.maxCreateRevision) &&
        (op.minCreateRevision === 0 || m.create >= op.minCreateRevision),
    );
    let order = op.sortOrder;
    if (order === 'NONE' && op.sortTarget !== 'KEY') order = 'ASCEND';
    if (order !== 'NONE') {
      const field = (e: [string, MKV]): number | string =>
        op.sortTarget === 'KEY'
          ? e[0]
          : op.sortTarget === 'VERSION'
            ? e[1].version
            : op.sortTarget === 'CREATE'
              ? e[1].create
              : op.sortTarget === 'MOD'
                ? e[1].mod
                : s(e[1].value);
      const cmp = (a: [string, MKV], b: [string, MKV]): number => {
        const x = field(a);
        const y = field(b);
        return x < y ? -1 : x > y ? 1 : 0;
      };
      list.sort(order === 'DESCEND' ? (a, b) => cmp(b, a) : cmp);
    }
    const more = op.limit > 0 && list.length > op.limit;
    if (more) list = list.slice(0, op.limit);
    return { kvs: list.map(([k, m]) => (op.keysOnly ? { ...kv(k, m), value: Buffer.alloc(0) } : kv(k, m))), more, count };
  }

  range(op: RangeOp, throughRevision?: number): RangeResult {
    return this.rangeIn(op, this.through(throughRevision), this.snaps[this.rev]);
  }

  private through(throughRevision: number | undefined): number {
    if (throughRevision === undefined) return this.rev;
    if (throughRevision < this.rev) throw new Error('invariant: caught up below the last written revision');
    return throughRevision;
  }

  private doPut(ctx: Ctx, op: PutOp): PutResult {
    const k = s(op.key);
    const prev = ctx.state.get(k);
    if ((op.ignoreValue || op.ignoreLease) && !prev) throw new MvccError('keyNotFound', 'key not found');
    const m: MKV = {
      create: prev ? prev.create : ctx.main,
      mod: ctx.main,
      version: prev ? prev.version + 1 : 1,
      value: op.ignoreValue ? prev!.value : op.value,
      lease: op.ignoreLease ? prev!.lease : op.lease,
    };
    ctx.state.set(k, m);
    ctx.events.push({ type: 'PUT', kv: kv(k, m), prevKv: prev ? kv(k, prev) : null });
    return { prevKv: op.prevKv && prev ? kv(k, prev) : null };
  }

  private doDelete(ctx: Ctx, op: DeleteRangeOp): DeleteRangeResult {
    const key = s(op.key);
    const end = s(op.rangeEnd);
    const victims = [...ctx.state.entries()].filter(([k]) => inRange(k, key, end)).sort((a, b) => (a[0] < b[0] ? -1 : 1));
    for (const [k, m] of victims) {
      ctx.state.delete(k);
      ctx.events.push({
        type: 'DELETE',
        kv: { key: Buffer.from(k, 'latin1'), createRevision: 0, modRevision: ctx.main, version: 0, value: Buffer.alloc(0), lease: '0' },
        prevKv: kv(k, m),
      });
    }
    return { deleted: victims.length, prevKvs: op.prevKv ? victims.map(([k, m]) => kv(k, m)) : [] };
  }

  private begin(atRevision: number | undefined): Ctx {
    if (atRevision !== undefined && (atRevision <= this.rev || atRevision <= this.compacted)) throw new Error('invariant: write at or below history');
    const main = atRevision ?? this.rev + 1;
    return { main, state: new Map(this.snaps[this.rev]), events: [], through: main - 1 };
  }

  private write<R>(ctx: Ctx, body: (ctx: Ctx) => R): Outcome<R> {
    const result = body(ctx);
    if (ctx.events.length > 0) {
      const gapState = this.snaps[this.rev];
      while (this.snaps.length < ctx.main) {
        this.snaps.push(gapState);
        this.evs.push([]);
      }
      this.snaps.push(ctx.state);
      this.evs.push(ctx.events);
    }
    return { result, revision: this.rev, events: ctx.events };
  }

  put(op: PutOp, atRevision?: number): Outcome<PutResult> {
    const ctx = this.begin(atRevision);
    if ((op.ignoreValue || op.ignoreLease) && !this.snaps[this.rev].has(s(op.key))) throw new MvccError('keyNotFound', 'key not found');
    return this.write(ctx, (c) => this.doPut(c, op));
  }

  deleteRange(op: DeleteRangeOp, atRevision?: number): Outcome<DeleteRangeResult> {
    return this.write(this.begin(atRevision), (c) => this.doDelete(c, op));
  }

  private compareHolds(c: Compare): boolean {
    const snap = this.snaps[this.rev];
    const key = s(c.key);
    const end = s(c.rangeEnd);
    const hits = [...snap.entries()].filter(([k]) => inRange(k, key, end)).map(([, m]) => m);
    const test = (x: number): boolean =>
      c.result === 'EQUAL' ? x === 0 : c.result === 'NOT_EQUAL' ? x !== 0 : c.result === 'GREATER' ? x > 0 : x < 0;
    const one = (m: MKV | null): boolean => {
      switch (c.target) {
        case 'VALUE':
          return m !== null && test(Buffer.compare(m.value, c.value));
        case 'VERSION':
          return test(Math.sign((m?.version ?? 0) - c.version));
        case 'CREATE':
          return test(Math.sign((m?.create ?? 0) - c.createRevision));
        case 'MOD':
          return test(Math.sign((m?.mod ?? 0) - c.modRevision));
        case 'LEASE': {
          const a = BigInt(m?.lease ?? '0');
          const b = BigInt(c.lease);
          return test(a < b ? -1 : a > b ? 1 : 0);
        }
      }
    };
    if (hits.length === 0) return one(null);
    return hits.every(one);
  }

  txn(op: TxnOp, atRevision?: number): Outcome<TxnResult> {
    const start = this.begin(atRevision);
    const pre = this.snaps[this.rev];
    const decided = new Map<TxnOp, boolean>();
    const decide = (t: TxnOp): void => {
      const ok = t.compare.every((c) => this.compareHolds(c));
      decided.set(t, ok);
      for (const r of ok ? t.success : t.failure) if (r.type === 'txn') decide(r.txn);
    };
    decide(op);
    const walk = (t: TxnOp, f: (r: Exclude<TxnOp['success'][number], { type: 'txn' }>) => void): void => {
      for (const r of decided.get(t) ? t.success : t.failure) {
        if (r.type === 'txn') walk(r.txn, f);
        else f(r);
      }
    };
    walk(op, (r) => {
      if (r.type === 'put' && (r.put.ignoreValue || r.put.ignoreLease) && !pre.has(s(r.put.key))) throw new MvccError('keyNotFound', 'key not found');
    });
    walk(op, (r) => {
      if (r.type === 'range' && r.range.revision !== 0) {
        if (r.range.revision > start.through) throw new MvccError('futureRev', 'future');
        if (r.range.revision < this.compacted) throw new MvccError('compacted', 'compacted');
      }
    });
    const exec = (ctx: Ctx, t: TxnOp): TxnResult => {
      const succeeded = decided.get(t) === true;
      const responses: ResponseOp[] = [];
      for (const r of succeeded ? t.success : t.failure) {
        // Each op's header revision, as etcd's storeTxnWrite gives it: the revision before the txn until
        // the txn has changed something (this op included), then the txn's.
        const now = (): number => (ctx.events.length > 0 ? ctx.main : ctx.through);
        if (r.type === 'range') {
          const cur = now();
          responses.push({ type: 'range', range: this.rangeIn(r.range, cur, ctx.state), revision: cur });
        } else if (r.type === 'put') responses.push({ type: 'put', put: this.doPut(ctx, r.put), revision: ctx.main });
        else if (r.type === 'deleteRange') {
          const deleteRange = this.doDelete(ctx, r.deleteRange);
          responses.push({ type: 'deleteRange', deleteRange, revision: now() });
        } else responses.push({ type: 'txn', txn: exec(ctx, r.txn) });
      }
      return { succeeded, responses };
    };
    return this.write(start, (ctx) => exec(ctx, op));
  }

  compact(rev: number, throughRevision?: number): void {
    const through = this.through(throughRevision);
    // Compact(0) before any compaction is a no-op that succeeds (etcd's compactMainRev starts at -1).
    if (rev < this.compacted || (rev === this.compacted && rev !== 0)) throw new MvccError('compacted', 'compacted');
    if (rev > through) throw new MvccError('futureRev', 'future');
    this.compacted = rev;
  }

  eventsSince(key: Buffer, rangeEnd: Buffer, startRevision: number): MvccEvent[] {
    const start = Math.max(1, startRevision);
    if (start < this.compacted) throw new MvccError('compacted', 'compacted');
    const out: MvccEvent[] = [];
    for (let r = start; r <= this.rev; r++) {
      const evs = this.evs[r].filter((ev) => inRange(s(ev.kv.key), s(key), s(rangeEnd)));
      if (r !== this.compacted) {
        out.push(...evs);
        continue;
      }
      // At the compaction revision itself only the version compaction kept survives (each key's last
      // event of that revision, if a put), without its previous version.
      evs.forEach((ev, i) => {
        const last = !evs.slice(i + 1).some((later) => later.kv.key.equals(ev.kv.key));
        if (last && ev.type === 'PUT') out.push({ ...ev, prevKv: null });
      });
    }
    return out;
  }
}

/** Structural form for deep equality: Buffers become hex strings, errors become their code. */
export function norm(x: unknown): unknown {
  if (Buffer.isBuffer(x)) return `0x${x.toString('hex')}`;
  if (x instanceof MvccError) return { error: x.code };
  if (Array.isArray(x)) return x.map(norm);
  if (x !== null && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) out[k] = norm(v);
    return out;
  }
  return x;
}

/** Runs f, returning its result or the MvccError it threw (normalized either way). */
export function attempt(f: () => unknown): unknown {
  try {
    return norm(f());
  } catch (e) {
    if (e instanceof MvccError) return norm(e);
    throw e;
  }
}

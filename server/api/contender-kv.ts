// Where the server-side Lock and Election services (concurrency.ts) keep their contender keys: in the
// keyspace clients see, as etcd does. A client reads a lock's key, and guards its writes with the key's
// create revision (the fencing token) in its own Txns, so the key must be where the KV service looks.
//
//   one group   the group's store: txns proposed as one entry, reads from the store after the caller's
//               read barrier, waits on the store's watch hub (synchronous underneath).
//   sharded     the shards, through the same ShardedKv the KV service uses: a txn goes where its keys
//               are (a cross-shard transaction if they span shards), a prefix read is one snapshot at one
//               oracle revision, and a wait watches the key's shard replica on this member — or, for a
//               shard this member does not host, reads the key again every POLL_MS (a remote watch per
//               waiter would cost a stream for every queued contender).
import type { TxnRequest } from '../etcd/wire-types.ts';
import { rangeOf, type KeyValue, type MvccEvent, type RangeOp, type TxnResult } from '../mvcc/types.ts';
import type { WatchHub } from '../mvcc/watch-hub.ts';
import type { ApiContext, ShardedKeyspace } from './context.ts';
import { shardedKvOf } from './sharded-kv.ts';

/** How often a wait on a key of a shard not hosted here reads it again. */
const POLL_MS = 100;

/** A wait for something to happen; cancel() ends it (done then rejects with WaitCancelledError). */
export interface Wait {
  done: Promise<void>;
  cancel: () => void;
}

export class WaitCancelledError extends Error {
  constructor() {
    super('wait cancelled');
    this.name = 'WaitCancelledError';
  }
}

export interface ContenderKv {
  /** A Txn as a client's, answered with its result and revision. */
  txn(req: TxnRequest): Promise<{ result: TxnResult; revision: number }>;
  /**
   * A range, and the revision it read at. Linearizable on a sharded cluster (the keys may be on shards this
   * member's last write did not touch); on one group only with `fresh` — without it the member's store
   * already holds every write up to the caller's own last one, which is all a contender's checks need.
   */
  range(op: RangeOp, fresh?: boolean): Promise<{ kvs: KeyValue[]; revision: number }>;
  /** Ends once `key` is deleted after `afterRevision` (or its history there is compacted: check again). */
  deleted(key: Buffer, afterRevision: number): Wait;
  /** Calls `onChange` after every write under [key, rangeEnd) from now on (possibly more often); returns stop. */
  onWrites(key: Buffer, rangeEnd: Buffer, onChange: () => void): () => void;
  /**
   * The revision an answer's header carries after a read at `readRevision`: on one group the store's
   * (undefined: ApiContext.header's default, as before); on a sharded cluster the read's, for the cluster
   * group's own revision says nothing about the shards.
   */
  headerRevision(readRevision: number): number | undefined;
}

export function contenderKv(ctx: ApiContext): ContenderKv {
  return ctx.shards === null ? oneGroup(ctx) : sharded(ctx, ctx.shards);
}

/** Ends on the first DELETE of `key` after `afterRevision` in `hub` (a store's watch hub). */
function deletedIn(hub: WatchHub, key: Buffer, afterRevision: number): Wait {
  let handle = -1;
  let settled = false;
  let rejectFn: (err: Error) => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => {
    rejectFn = reject;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      if (handle >= 0) hub.cancel(handle);
      resolve();
    };
    handle = hub.watch(
      { key, rangeEnd: Buffer.alloc(0), startRevision: afterRevision + 1, prevKv: false, noPut: false, noDelete: false },
      {
        onEvents: (events: MvccEvent[]) => {
          if (events.some((e) => e.type === 'DELETE')) finish();
        },
        // History after the revision is gone: the caller reads the current state and waits again.
        onCompacted: finish,
      },
    );
    // The hub may have delivered (and we cancelled) synchronously inside watch().
    if (settled && handle >= 0) hub.cancel(handle);
  });
  return {
    done,
    cancel: () => {
      if (settled) return;
      settled = true;
      if (handle >= 0) hub.cancel(handle);
      rejectFn(new WaitCancelledError());
    },
  };
}

function oneGroup(ctx: ApiContext): ContenderKv {
  return {
    txn: async (req) => {
      const out = await ctx.proposeWrite({ txn: req });
      return { result: out.result as TxnResult, revision: out.revision };
    },
    range: async (op, fresh = false) => {
      if (fresh) await ctx.readBarrier();
      return { kvs: ctx.sm.store.range(op).kvs, revision: ctx.sm.store.currentRevision() };
    },
    deleted: (key, afterRevision) => deletedIn(ctx.sm.hub, key, afterRevision),
    onWrites: (key, rangeEnd, onChange) => {
      const handle = ctx.sm.hub.watch(
        { key, rangeEnd, startRevision: 0, prevKv: false, noPut: false, noDelete: false },
        { onEvents: () => onChange(), onCompacted: () => undefined },
      );
      return () => ctx.sm.hub.cancel(handle);
    },
    headerRevision: () => undefined,
  };
}

function sharded(ctx: ApiContext, shards: ShardedKeyspace): ContenderKv {
  const kv = shardedKvOf(ctx, shards);
  const range = async (op: RangeOp): Promise<{ kvs: KeyValue[]; revision: number }> => {
    const { header, result } = await kv.rangeOp(op, false);
    return { kvs: result.kvs, revision: Number(header.revision) };
  };
  return {
    txn: async (req) => {
      const { out } = await kv.txn(req, false);
      return { result: out.result as TxnResult, revision: out.revision };
    },
    range,
    deleted: (key, afterRevision) => {
      const target = shards.shardOf(key);
      if (shards.hosts(target.groupId)) return deletedIn(target.sm.hub, key, afterRevision);
      // Not hosted here: read the key again until it is gone or another key took its place.
      let stopped = false;
      let rejectFn: (err: Error) => void = () => undefined;
      const done = new Promise<void>((resolve, reject) => {
        rejectFn = reject;
        const poll = (): void => {
          if (stopped) return;
          range(rangeOf(key)).then(
            ({ kvs }) => {
              if (stopped) return;
              if (kvs.length === 0 || kvs[0].modRevision > afterRevision) {
                stopped = true;
                resolve();
              } else setTimeout(poll, POLL_MS);
            },
            () => setTimeout(poll, POLL_MS),
          );
        };
        poll();
      });
      return {
        done,
        cancel: () => {
          if (stopped) return;
          stopped = true;
          rejectFn(new WaitCancelledError());
        },
      };
    },
    onWrites: (key, rangeEnd, onChange) => {
      // Every hosted shard's hub, and a periodic look for the shards hosted elsewhere.
      const handles = shards
        .shardsOfRange(key, rangeEnd)
        .filter((t) => shards.hosts(t.groupId))
        .map((t) => ({ hub: t.sm.hub, handle: t.sm.hub.watch({ key, rangeEnd, startRevision: 0, prevKv: false, noPut: false, noDelete: false }, { onEvents: () => onChange(), onCompacted: () => undefined }) }));
      const remote = shards.shardsOfRange(key, rangeEnd).some((t) => !shards.hosts(t.groupId));
      const timer = remote ? setInterval(onChange, POLL_MS * 5) : null;
      return () => {
        for (const { hub, handle } of handles) hub.cancel(handle);
        if (timer !== null) clearInterval(timer);
      };
    },
    headerRevision: (readRevision) => readRevision,
  };
}

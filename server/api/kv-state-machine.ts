// The replicated KV state machine of one Raft group: decodes each committed entry (an etcd write in
// protobuf form), applies it to the MVCC store, feeds the watch hub, and answers the client waiting
// on this member if this member proposed it. Every member applies the same entries in the same
// order, so every member's store is identical at every applied index.
import type { Entry } from '../raft/types.ts';
import { MvccStore } from '../mvcc/store.ts';
import { WatchHub } from '../mvcc/watch-hub.ts';
import type { GroupStateMachine } from '../member/member.ts';
import { decodeInternalRequest, type InternalRequest } from './request-codec.ts';
import { deleteOpFromWire, num, putOpFromWire, txnOpFromWire } from './convert.ts';

/** State-keyspace prefixes: the MVCC store's records and the published member attributes. */
const MVCC_PREFIX = 0x6b; // 'k'
const MEMBER_PREFIX = 0x6d; // 'm'

export interface PublishedMember {
  name: string;
  clientUrls: string[];
}

export interface ApplyOutcome {
  revision: number;
  result: unknown;
}

interface Waiter {
  resolve: (outcome: ApplyOutcome) => void;
  reject: (err: Error) => void;
}

export class KvStateMachine implements GroupStateMachine {
  readonly store: MvccStore;
  readonly hub: WatchHub;
  private readonly memberIdText: string;
  private readonly waiters = new Map<string, Waiter>();
  private nextSeq = 1;

  /** Client URLs each member published through the log, by member id. */
  readonly published = new Map<string, PublishedMember>();
  private readonly memberOps: Array<{ key: Buffer; value: Buffer | null }> = [];

  constructor(memberId: number, stateRecords: Iterable<[Buffer, Buffer]>) {
    this.memberIdText = String(memberId);
    const mvccRecords: Array<[Buffer, Buffer]> = [];
    for (const [key, value] of stateRecords) {
      if (key[0] === MVCC_PREFIX) mvccRecords.push([key.subarray(1), value]);
      else if (key[0] === MEMBER_PREFIX) {
        this.published.set(key.subarray(1).toString('utf8'), JSON.parse(value.toString('utf8')) as PublishedMember);
      } else throw new Error(`unknown state record prefix ${key[0]}`);
    }
    this.store = MvccStore.restore(mvccRecords);
    this.hub = new WatchHub(this.store);
  }

  /** Reserves a sequence number and the promise its apply will settle. */
  track(): { seq: string; outcome: Promise<ApplyOutcome>; forget: () => void } {
    const seq = String(this.nextSeq++);
    const outcome = new Promise<ApplyOutcome>((resolve, reject) => {
      this.waiters.set(seq, { resolve, reject });
    });
    return { seq, outcome, forget: () => this.waiters.delete(seq) };
  }

  get proposer(): string {
    return this.memberIdText;
  }

  pendingCount(): number {
    return this.waiters.size;
  }

  apply(entry: Entry): void {
    const req = decodeInternalRequest(entry.data);
    const mine = req.proposer === this.memberIdText ? this.waiters.get(req.seq) : undefined;
    if (mine) this.waiters.delete(req.seq);
    let outcome: ApplyOutcome;
    try {
      outcome = this.execute(req);
    } catch (err) {
      // A request the store refuses (compacted revision in a txn, ignore_value on a missing key) is
      // refused identically on every member: the error is the result, the state is unchanged.
      if (err instanceof Error && err.name === 'MvccError') {
        mine?.reject(err);
        return;
      }
      throw err;
    }
    mine?.resolve(outcome);
  }

  private execute(req: InternalRequest): ApplyOutcome {
    if ('put' in req && req.put) {
      const out = this.store.put(putOpFromWire(req.put));
      this.publish(out.events, out.revision);
      return { revision: out.revision, result: out.result };
    }
    if ('delete_range' in req && req.delete_range) {
      const out = this.store.deleteRange(deleteOpFromWire(req.delete_range));
      this.publish(out.events, out.revision);
      return { revision: out.revision, result: out.result };
    }
    if ('txn' in req && req.txn) {
      const out = this.store.txn(txnOpFromWire(req.txn));
      this.publish(out.events, out.revision);
      return { revision: out.revision, result: out.result };
    }
    if ('member_attributes' in req && req.member_attributes) {
      const a = req.member_attributes;
      const record: PublishedMember = { name: a.name, clientUrls: a.client_urls ?? [] };
      this.published.set(a.member_id, record);
      this.memberOps.push({
        key: Buffer.concat([Buffer.from([MEMBER_PREFIX]), Buffer.from(a.member_id, 'utf8')]),
        value: Buffer.from(JSON.stringify(record)),
      });
      return { revision: this.store.currentRevision(), result: null };
    }
    if ('compaction' in req && req.compaction) {
      this.store.compact(num(req.compaction.revision));
      return { revision: this.store.currentRevision(), result: null };
    }
    throw new Error('committed entry carries no known request');
  }

  private publish(events: Parameters<WatchHub['notify']>[0], revision: number): void {
    if (events.length > 0) this.hub.notify(events, revision);
  }

  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }> {
    const ops: Array<{ key: Buffer; value: Buffer | null }> = this.store.drainPersistOps().map((op) => ({
      key: Buffer.concat([Buffer.from([MVCC_PREFIX]), op.key]),
      value: op.value,
    }));
    if (this.memberOps.length > 0) ops.push(...this.memberOps.splice(0));
    return ops;
  }

  /** Fails every waiting client, e.g. on shutdown. */
  failAll(err: Error): void {
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
  }
}

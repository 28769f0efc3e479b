// The bank workload and checker for sharded clusters (issue 14: "every multi-shard snapshot consistent";
// issue 15: cross-shard transactions). Accounts `bank/{t<i>}/a<j>` are grouped by hash tag, so the
// accounts of one tag share a shard and the tags spread over several shards. Transfer clients move money
// between two accounts with a Txn that compares both accounts' mod_revisions with what the client read
// (so a transfer either applies whole or not at all): two accounts of one tag (a single-shard Txn), or,
// for a share `crossShardShare` of the transfers, of two tags (a cross-shard Txn: two-phase commit); readers take one Range over every account — a multi-shard
// snapshot at one oracle revision — whose balances must always sum to the total, and remember some of
// them. After the run every remembered snapshot is read again at its revision and must be byte for byte
// the same (history at a revision never changes). Transfers whose answer was lost are fine: the sum
// holds whether or not they applied.
import { Rng } from '../../server/raft/rng.ts';
import { KvClient, type WireKv } from '../support/kv-client.ts';
import { prefixEnd } from './watchers.ts';

export interface BankOptions {
  seed: number;
  endpoints: string[];
  tags: number;
  accountsPerTag: number;
  initialBalance: number;
  transferClients: number;
  readers: number;
  requestTimeoutMs: number;
  /** The share of transfers between accounts of two different tags (cross-shard transactions); 0: none. */
  crossShardShare?: number;
}

export interface BankReport {
  transfersCommitted: number;
  /** Of the committed transfers, those between two tags (cross-shard transactions). */
  crossShardCommitted: number;
  transfersRejected: number;
  transfersUnknown: number;
  snapshotReads: number;
  snapshotReadsFailed: number;
  snapshotsReread: number;
  violations: string[];
}

const PREFIX = 'bank/';

interface Snapshot {
  revision: number;
  member: number;
  /** key → `value@mod_revision`, as read. */
  kvs: Map<string, string>;
}

export function accountKey(tag: number, account: number): string {
  return `${PREFIX}{t${tag}}/a${account}`;
}

const kvsByKey = (kvs: WireKv[]): Map<string, string> => new Map(kvs.map((kv) => [kv.key.toString(), `${kv.value.toString()}@${kv.mod_revision}`]));

/** A client that sticks to one member and moves on to the next after a failure, as the fault workload's. */
class MemberRotation {
  private readonly clients = new Map<number, KvClient>();
  private readonly endpoints: string[];
  member: number;
  constructor(endpoints: string[], first: number) {
    this.endpoints = endpoints;
    this.member = first % endpoints.length;
  }
  get kv(): KvClient {
    let kv = this.clients.get(this.member);
    if (!kv) {
      kv = new KvClient(this.endpoints[this.member]);
      this.clients.set(this.member, kv);
    }
    return kv;
  }
  next(): void {
    this.member = (this.member + 1) % this.endpoints.length;
  }
  close(): void {
    for (const kv of this.clients.values()) kv.close();
  }
}

export class Bank {
  private readonly o: BankOptions;
  private running = false;
  private readonly loops: Promise<void>[] = [];
  private readonly rotations: MemberRotation[] = [];
  private readonly snapshots: Snapshot[] = [];
  private readonly report: BankReport = {
    transfersCommitted: 0,
    crossShardCommitted: 0,
    transfersRejected: 0,
    transfersUnknown: 0,
    snapshotReads: 0,
    snapshotReadsFailed: 0,
    snapshotsReread: 0,
    violations: [],
  };

  constructor(o: BankOptions) {
    this.o = o;
  }

  get total(): number {
    return this.o.tags * this.o.accountsPerTag * this.o.initialBalance;
  }

  /** Opens every account with the initial balance (retrying through the members until it is done). */
  async open(): Promise<void> {
    const rotation = new MemberRotation(this.o.endpoints, 0);
    try {
      for (let t = 0; t < this.o.tags; t++) {
        for (let a = 0; a < this.o.accountsPerTag; a++) {
          for (let attempt = 0; ; attempt++) {
            try {
              await rotation.kv.put(accountKey(t, a), String(this.o.initialBalance), {}, 5_000);
              break;
            } catch (err) {
              if (attempt >= 20) throw err;
              rotation.next();
              await new Promise((r) => setTimeout(r, 200));
            }
          }
        }
      }
    } finally {
      rotation.close();
    }
  }

  start(): void {
    this.running = true;
    for (let c = 0; c < this.o.transferClients; c++) this.loops.push(this.transferLoop(c));
    for (let r = 0; r < this.o.readers; r++) this.loops.push(this.readerLoop(r));
  }

  private stopping: Promise<BankReport> | null = null;

  /** Stops the clients, then re-reads every remembered snapshot at its revision, spread over the members. */
  stop(): Promise<BankReport> {
    this.stopping ??= this.finish();
    return this.stopping;
  }

  private async finish(): Promise<BankReport> {
    this.running = false;
    await Promise.all(this.loops);
    for (const rotation of this.rotations) rotation.close();
    const kvs = this.o.endpoints.map((e) => new KvClient(e));
    try {
      for (const [i, snap] of this.snapshots.entries()) {
        // Right after healing a shard may still be electing a leader: an unavailable or timed-out read is
        // asked again on the next member (what is checked is that history never changes, not availability).
        const again = await rereadWithRetries(kvs, i, snap.revision);
        const now = kvsByKey(again.kvs);
        const same = now.size === snap.kvs.size && [...snap.kvs].every(([k, v]) => now.get(k) === v);
        if (!same) this.report.violations.push(`snapshot at revision ${snap.revision} changed: first ${JSON.stringify([...snap.kvs])}, now ${JSON.stringify([...now])}`);
        this.report.snapshotsReread++;
      }
    } finally {
      for (const kv of kvs) kv.close();
    }
    return this.report;
  }

  private async transferLoop(c: number): Promise<void> {
    const rng = new Rng(this.o.seed * 7_919 + c);
    const rotation = new MemberRotation(this.o.endpoints, c);
    this.rotations.push(rotation);
    while (this.running) {
      const cross = this.o.tags > 1 && rng.chance(this.o.crossShardShare ?? 0);
      const tag = rng.nextInt(this.o.tags);
      const toTag = cross ? (tag + 1 + rng.nextInt(this.o.tags - 1)) % this.o.tags : tag;
      const from = rng.nextInt(this.o.accountsPerTag);
      const to = cross ? rng.nextInt(this.o.accountsPerTag) : (from + 1 + rng.nextInt(this.o.accountsPerTag - 1)) % this.o.accountsPerTag;
      try {
        let a: WireKv | undefined;
        let b: WireKv | undefined;
        if (!cross) {
          // One tag's accounts in one single-shard Range: both balances at one revision.
          const tagPrefix = `${PREFIX}{t${tag}}/`;
          const read = await rotation.kv.range(tagPrefix, { range_end: prefixEnd(tagPrefix) }, this.o.requestTimeoutMs);
          const byKey = new Map(read.kvs.map((kv) => [kv.key.toString(), kv]));
          a = byKey.get(accountKey(tag, from));
          b = byKey.get(accountKey(tag, to));
          if (!a || !b) throw new Error(`account missing in ${tagPrefix}: ${[...byKey.keys()].join(',')}`);
        } else {
          // Two shards: each balance read on its own; the Txn's compares make the pair consistent.
          const [ra, rb] = await Promise.all([rotation.kv.range(accountKey(tag, from), {}, this.o.requestTimeoutMs), rotation.kv.range(accountKey(toTag, to), {}, this.o.requestTimeoutMs)]);
          a = ra.kvs[0];
          b = rb.kvs[0];
          if (!a || !b) throw new Error(`account missing: ${accountKey(tag, from)} or ${accountKey(toTag, to)}`);
        }
        const balanceA = Number(a.value.toString());
        const amount = Math.min(balanceA, 1 + rng.nextInt(10));
        const res = await rotation.kv.txn(
          {
            compare: [
              { result: 'EQUAL', target: 'MOD', key: a.key, mod_revision: a.mod_revision },
              { result: 'EQUAL', target: 'MOD', key: b.key, mod_revision: b.mod_revision },
            ],
            success: [
              { request_put: { key: a.key, value: Buffer.from(String(balanceA - amount)) } },
              { request_put: { key: b.key, value: Buffer.from(String(Number(b.value.toString()) + amount)) } },
            ],
            failure: [],
          },
          this.o.requestTimeoutMs,
        );
        if (res.succeeded) {
          this.report.transfersCommitted++;
          if (cross) this.report.crossShardCommitted++;
        } else this.report.transfersRejected++;
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('account missing')) {
          this.report.violations.push(err.message);
          return;
        }
        this.report.transfersUnknown++;
        rotation.next();
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private async readerLoop(r: number): Promise<void> {
    const rotation = new MemberRotation(this.o.endpoints, r + 1);
    this.rotations.push(rotation);
    const accounts = this.o.tags * this.o.accountsPerTag;
    while (this.running) {
      try {
        const read = await rotation.kv.range(PREFIX, { range_end: prefixEnd(PREFIX) }, this.o.requestTimeoutMs);
        this.report.snapshotReads++;
        const revision = Number(read.header.revision);
        const sum = read.kvs.reduce((s, kv) => s + Number(kv.value.toString()), 0);
        if (read.kvs.length !== accounts || sum !== this.total) {
          this.report.violations.push(`snapshot at revision ${revision} from member ${rotation.member}: ${read.kvs.length} accounts summing to ${sum}, expected ${accounts} summing to ${this.total}`);
        }
        const newest = read.kvs.reduce((m, kv) => Math.max(m, Number(kv.mod_revision)), 0);
        if (newest > revision) this.report.violations.push(`snapshot at revision ${revision} holds a mod_revision ${newest} above its header`);
        if (this.report.snapshotReads % 10 === 1) this.snapshots.push({ revision, member: rotation.member, kvs: kvsByKey(read.kvs) });
      } catch {
        this.report.snapshotReadsFailed++;
        rotation.next();
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
}

/** A snapshot read at `revision`, retried on the next member while a shard is unavailable (at most ~20 s). */
async function rereadWithRetries(kvs: KvClient[], start: number, revision: number): ReturnType<KvClient['range']> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await kvs[(start + attempt) % kvs.length].range(PREFIX, { range_end: prefixEnd(PREFIX), revision: String(revision) }, 10_000);
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (attempt >= 20 || (code !== 14 && code !== 4)) throw err; // UNAVAILABLE, DEADLINE_EXCEEDED only
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

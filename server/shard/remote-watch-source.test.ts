// WatchShard (a merged watch's shard read from another member's replica): the caller's RemoteWatchSource
// against a scripted transport (re-subscription from through + 1 on another member after a break, an end,
// an unanswered ask; duplicates dropped; compaction ends the subscription; no candidate keeps trying and
// is reported), the serving side against a fake call (order of marks after events, the per-stream bound
// and its OVERLOADED end after whole revisions, cleanup of the subscription and the closing-round hold on
// cancel, NOT_HOSTED), and both over real gRPC servers on loopback: two replicas of one shard, the one
// serving the stream shut down mid-stream, and a slow stream past its bound — the caller's sink gets every
// event exactly once, in revision order, with marks that never pass an event.
import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { MvccEvent } from '../mvcc/types.ts';
import type { Entry } from '../raft/types.ts';
import { KvStateMachine } from './kv-state-machine.ts';
import { ShardPeerChannels, shardPeerServiceDefinition, shardPeerServiceImpl, watchShardTransport } from './peer-shard-rpc.ts';
import { RemoteWatchSource, type WatchShardStreamHandlers, type WatchShardTransport } from './remote-watch-source.ts';
import { ReplicaWatchSource } from './replica-watch-source.ts';
import { encodeInternalRequest, type InternalRequest } from './request-codec.ts';
import { watchEventsFromWire, watchEventToWire, type WatchShardResponseWire, type WatchShardSubscribeWire } from './shard-peer-wire.ts';
import type { ShardWatchSink } from './watch-source.ts';
import { WatchShardServer, type WatchShardCall } from './watch-shard-server.ts';

const b = (s: string): Buffer => Buffer.from(s);
const GROUP = 2;

function ev(key: string, revision: number): MvccEvent {
  return { type: 'PUT', kv: { key: b(key), createRevision: revision, modRevision: revision, version: 1, value: b(`v${revision}`), lease: '0' }, prevKv: null };
}
const eventsMsg = (...events: MvccEvent[]): WatchShardResponseWire => ({ response: 'events', events: { events: events.map(watchEventToWire) } });
const resolvedMsg = (revision: number, askId = 0, compacted = 0): WatchShardResponseWire => ({ response: 'resolved', resolved: { revision: String(revision), compacted_revision: String(compacted), ask_id: String(askId) } });
const endMsg = (kind: NonNullable<WatchShardResponseWire['end']>['kind'], compact = 0): WatchShardResponseWire => ({ response: 'end', end: { kind, compact_revision: String(compact), message: kind } });

/** Records what a subscription hands to the merge, and checks the seam's contract as it goes. */
class RecordingSink implements ShardWatchSink {
  readonly revisions: number[] = [];
  readonly marks: number[] = [];
  compacted: number | null = null;
  /** Highest revision delivered or resolved: nothing at or below it may come again. */
  through = 0;
  violations: string[] = [];
  onEvents(events: MvccEvent[]): void {
    for (const e of events) {
      if (e.kv.modRevision <= this.through) this.violations.push(`event ${e.kv.modRevision} at or below ${this.through}`);
      this.revisions.push(e.kv.modRevision);
    }
    this.through = Math.max(this.through, events[events.length - 1].kv.modRevision);
  }
  onResolved(revision: number): void {
    if (revision <= this.through) this.violations.push(`mark ${revision} at or below ${this.through}`);
    this.marks.push(revision);
    this.through = revision;
  }
  onCompacted(c: number): void {
    this.compacted = c;
  }
}

/** A transport whose streams the test drives by hand. */
class ScriptedTransport implements WatchShardTransport {
  readonly opened: Array<{ member: number; from: number; handlers: WatchShardStreamHandlers; asks: number[]; canceled: boolean }> = [];
  refuse = new Set<number>();
  open(member: number, subscribe: WatchShardSubscribeWire, handlers: WatchShardStreamHandlers): { ask(id: number): void; cancel(): void } | string {
    if (this.refuse.has(member)) return `member ${member} unreachable`;
    const s = { member, from: Number(subscribe.from_revision), handlers, asks: [] as number[], canceled: false };
    this.opened.push(s);
    return { ask: (id) => s.asks.push(id), cancel: () => (s.canceled = true) };
  }
  last(): ScriptedTransport['opened'][number] {
    return this.opened[this.opened.length - 1];
  }
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what} not seen in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const request = (fromRevision: number) => ({ key: b('a/'), rangeEnd: b('a0'), fromRevision, prevKv: false, noPut: false, noDelete: false });

describe('RemoteWatchSource (scripted transport)', () => {
  it('re-subscribes on the next member from (highest delivered or resolved) + 1 after a break, an end or an unanswered ask; drops what it already has', async () => {
    const t = new ScriptedTransport();
    const unavailable: string[] = [];
    const source = new RemoteWatchSource({ shard: 0, groupId: GROUP, candidates: () => [1, 2, 3], transport: t, askTimeoutMs: 100, initialBackoffMs: 1, maxBackoffMs: 4, onUnavailable: (_s, r) => unavailable.push(r) });
    const sink = new RecordingSink();
    const sub = source.subscribe(request(3), sink);
    expect(t.opened.map((s) => [s.member, s.from])).toEqual([[1, 3]]);
    expect(t.last().asks).toEqual([1]); // an ask on every subscribe
    t.last().handlers.onMessage(eventsMsg(ev('a/1', 3), ev('a/2', 3), ev('a/1', 5)));
    t.last().handlers.onMessage(resolvedMsg(8, 1));
    expect(sub.resolvedRevision()).toBe(8);
    expect(source.resolvedRevision()).toBe(8);
    // The member dies: next member, from 9.
    t.last().handlers.onClosed('UNAVAILABLE: connection reset');
    await until(() => t.opened.length === 2, 1_000, 'a second stream');
    expect([t.last().member, t.last().from]).toEqual([2, 9]);
    // An overlap the new member sends anyway (8 and below) is dropped; 9 is new.
    t.last().handlers.onMessage(eventsMsg(ev('a/1', 8), ev('a/3', 9)));
    t.last().handlers.onMessage(resolvedMsg(7)); // older than what we have: no mark
    // The member moves the replica away: NOT_HOSTED → the next member, from 10.
    t.last().handlers.onMessage(endMsg('NOT_HOSTED'));
    await until(() => t.opened.length === 3, 1_000, 'a third stream');
    expect([t.last().member, t.last().from]).toEqual([3, 10]);
    // An ask goes unanswered (a member cut off without a reset): the stream is replaced.
    await until(() => t.opened.length === 4, 1_000, 'a stream after the ask timeout');
    expect(t.opened[2].canceled).toBe(true);
    expect([t.last().member, t.last().from]).toEqual([1, 10]);
    expect(source.stats.askTimeouts).toBe(1);
    // OVERLOADED: everything sent was whole; the same member again at once.
    t.last().handlers.onMessage(eventsMsg(ev('a/4', 12)));
    t.last().handlers.onMessage(endMsg('OVERLOADED'));
    await until(() => t.opened.length === 5, 1_000, 'a stream after OVERLOADED');
    expect([t.last().member, t.last().from]).toEqual([1, 13]);
    t.last().handlers.onMessage(eventsMsg(ev('a/5', 13)));
    t.last().handlers.onMessage(resolvedMsg(20, t.last().asks[0]));
    expect(sink.revisions).toEqual([3, 3, 5, 9, 12, 13]);
    expect(sink.marks).toEqual([8, 20]);
    expect(sink.violations).toEqual([]);
    expect(source.stats.duplicateRevisionsDropped).toBe(1);
    expect(unavailable).toEqual([]);
    sub.cancel();
    expect(t.last().canceled).toBe(true);
    expect(source.subscriptionCount()).toBe(0);
  });

  it('a compacted start ends the subscription with onCompacted (no retry); the compacted revision is remembered', () => {
    const t = new ScriptedTransport();
    const source = new RemoteWatchSource({ shard: 1, groupId: GROUP, candidates: () => [1], transport: t });
    const sink = new RecordingSink();
    source.subscribe(request(2), sink);
    t.last().handlers.onMessage(endMsg('COMPACTED', 40));
    expect(sink.compacted).toBe(40);
    expect(source.compactedRevision()).toBe(40);
    expect(source.subscriptionCount()).toBe(0);
    expect(t.opened.length).toBe(1);
  });

  it('no member serving: keeps trying with back-off, reports it once, never invents compaction; resumes when one serves', async () => {
    const t = new ScriptedTransport();
    t.refuse = new Set([1, 2]);
    const unavailable: string[] = [];
    const source = new RemoteWatchSource({ shard: 0, groupId: GROUP, candidates: () => [1, 2], transport: t, initialBackoffMs: 2, maxBackoffMs: 10, unavailableAfterMs: 50, onUnavailable: (_s, r) => unavailable.push(r) });
    const sink = new RecordingSink();
    const sub = source.subscribe(request(5), sink);
    await new Promise((r) => setTimeout(r, 150));
    expect(unavailable.length).toBe(1);
    expect(sink.compacted).toBeNull();
    expect(sub.resolvedRevision()).toBe(4);
    t.refuse.clear();
    await until(() => t.opened.length === 1, 1_000, 'a stream once a member serves');
    expect(t.last().from).toBe(5);
    t.last().handlers.onMessage(eventsMsg(ev('a/1', 5)));
    expect(sink.revisions).toEqual([5]);
    sub.cancel();
  });

  it('a silent stream is asked after idleAskMs, and replaced when the ask goes unanswered (a member cut off without a reset)', async () => {
    const t = new ScriptedTransport();
    const source = new RemoteWatchSource({ shard: 0, groupId: GROUP, candidates: () => [1, 2], transport: t, idleAskMs: 40, askTimeoutMs: 60, initialBackoffMs: 1 });
    const sink = new RecordingSink();
    const sub = source.subscribe(request(1), sink);
    const first = t.last();
    first.handlers.onMessage(resolvedMsg(4, 1));
    await until(() => first.asks.length === 2, 1_000, 'an idle ask');
    await until(() => t.opened.length === 2, 1_000, 'a replacement stream');
    expect(first.canceled).toBe(true);
    expect([t.last().member, t.last().from]).toEqual([2, 5]);
    // A stream that keeps talking is not asked beyond its subscribe ask.
    const second = t.last();
    second.handlers.onMessage(resolvedMsg(5, second.asks[0]));
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 15));
      second.handlers.onMessage(resolvedMsg(6 + i));
    }
    expect(second.asks.length).toBe(1);
    sub.cancel();
  });

  it('a member that answers asks but whose replica stopped resolving is replaced after staleAfterMs', async () => {
    const t = new ScriptedTransport();
    const source = new RemoteWatchSource({ shard: 0, groupId: GROUP, candidates: () => [1, 2], transport: t, staleAfterMs: 60, initialBackoffMs: 1 });
    const sink = new RecordingSink();
    const sub = source.subscribe(request(1), sink);
    const first = t.last();
    first.handlers.onMessage(resolvedMsg(10, 1));
    // Answers that do not move: fine for a while, then the stream is taken for stale.
    let n = 0;
    while (t.opened.length === 1 && n < 50) {
      source.requestResolved();
      await new Promise((r) => setTimeout(r, 25));
      const ask = first.asks[first.asks.length - 1];
      first.handlers.onMessage(resolvedMsg(10, ask));
      n++;
    }
    expect(t.opened.length).toBe(2);
    expect(n).toBeGreaterThanOrEqual(2);
    expect(source.stats.staleStreams).toBe(1);
    expect([t.last().member, t.last().from]).toEqual([2, 11]);
    sub.cancel();
  });

  it('sync() resolves once an ask made after it is answered; asks are not held back by one still out, only spaced by the gap', async () => {
    const t = new ScriptedTransport();
    const source = new RemoteWatchSource({ shard: 0, groupId: GROUP, candidates: () => [1], transport: t });
    const sub = source.subscribe(request(1), new RecordingSink());
    const s = t.last();
    expect(s.asks).toEqual([1]);
    let synced = false;
    void source.sync(5_000).then(() => (synced = true));
    source.requestResolved(); // coalesced with the sync's ask
    // Ask 1 is unanswered (a slow shard on the serving member): ask 2 still goes, after the gap.
    await until(() => s.asks.length === 2, 1_000, 'a second ask');
    await new Promise((r) => setTimeout(r, 40));
    expect(s.asks).toEqual([1, 2]);
    s.handlers.onMessage(resolvedMsg(3, 1));
    await new Promise((r) => setTimeout(r, 10));
    expect(synced).toBe(false); // ask 1 predates the sync
    s.handlers.onMessage(resolvedMsg(4, 2));
    await until(() => synced, 1_000, 'sync');
    sub.cancel();
  });
});

// ---- serving side ------------------------------------------------------------------------------------

const putReq = (key: string, revision: number, value = `v${revision}`): InternalRequest => ({
  proposer: '9',
  seq: '0',
  put: { key: b(key), value: b(value), lease: '0', prev_kv: false, ignore_value: false, ignore_lease: false },
  revision: String(revision),
});

/** One replica of a shard: a sharded state machine applying a shared log. */
class Replica {
  readonly sm = new KvStateMachine(9, [], [], { sharded: true });
  readonly source = new ReplicaWatchSource(0, this.sm);
  holds = 0;
  syncs = 0;
  private index = 0;
  apply(log: readonly Entry[]): void {
    while (this.index < log.length) this.sm.apply(log[this.index++]);
  }
  /** A host whose closing round closes the replica at what it applied (every entry is applied in these tests). */
  host(): ConstructorParameters<typeof WatchShardServer>[0]['host'] {
    return {
      sourceOf: (groupId) => (groupId === GROUP ? this.source : null),
      holdClosingRounds: () => {
        this.holds++;
        let held = true;
        return {
          release: () => {
            if (held) this.holds--;
            held = false;
          },
          sync: () => {
            this.syncs++;
            this.source.close(this.sm.appliedRevision());
            return Promise.resolve();
          },
        };
      },
    };
  }
}

class SharedLog {
  readonly entries: Entry[] = [];
  private revision = 1;
  /** 2: the oracle's gaps; 1: consecutive revisions, so a re-subscription one revision off loses an event. */
  private readonly step: number;
  constructor(step = 2) {
    this.step = step;
  }
  put(key: string, value?: string): number {
    this.revision += this.step;
    this.entries.push({ term: 1, index: this.entries.length + 1, type: 'normal', data: encodeInternalRequest(putReq(key, this.revision, value)) });
    return this.revision;
  }
}

class FakeCall extends EventEmitter {
  readonly written: WatchShardResponseWire[] = [];
  writeResult = true;
  ended = false;
  readonly metadata = new grpc.Metadata();
  write(msg: WatchShardResponseWire): boolean {
    this.written.push(msg);
    return this.writeResult;
  }
  end(): void {
    this.ended = true;
  }
  asCall(): WatchShardCall {
    return this as unknown as WatchShardCall;
  }
}

const subscribeReq = (from: number, groupId = GROUP) => ({ request: 'subscribe' as const, subscribe: { group_id: groupId, key: b('a/'), range_end: b('a0'), from_revision: String(from), prev_kv: false, no_put: false, no_delete: false } });
const revisionsOf = (msgs: WatchShardResponseWire[]): number[] => msgs.flatMap((m) => (m.events ? m.events.events.map((e) => Number(e.kv?.mod_revision)) : []));

describe('WatchShardServer (fake call)', () => {
  it('replays then goes live; marks come after the events they cover; a resolve ask is answered after a closing round; cancel releases everything', async () => {
    const log = new SharedLog();
    const r = new Replica();
    for (let i = 0; i < 5; i++) log.put(`a/${i}`);
    r.apply(log.entries);
    const server = new WatchShardServer({ host: r.host() });
    const call = new FakeCall();
    server.handle(call.asCall());
    call.emit('data', subscribeReq(1));
    expect(revisionsOf(call.written)).toEqual([3, 5, 7, 9, 11]);
    expect(call.written[call.written.length - 1].resolved?.revision).toBe(11);
    expect(r.holds).toBe(1);
    const rev = log.put('a/x');
    log.put('b/outside');
    r.apply(log.entries);
    expect(revisionsOf(call.written)).toEqual([3, 5, 7, 9, 11, rev]);
    call.emit('data', { request: 'resolve', resolve: { ask_id: '7' } });
    await until(() => call.written.some((m) => m.resolved?.ask_id === 7), 1_000, 'the ask answer');
    expect(r.syncs).toBe(1);
    const answer = call.written.find((m) => m.resolved?.ask_id === 7)!;
    expect(answer.resolved!.revision).toBe(rev + 2); // closed through the replica's applied revision
    call.emit('cancelled');
    expect(r.holds).toBe(0);
    expect(r.source.subscriptionCount()).toBe(0);
    expect(server.openStreams()).toBe(0);
    const n = call.written.length;
    log.put('a/after');
    r.apply(log.entries);
    expect(call.written.length).toBe(n);
  });

  it('a slow reader: at most the bound is queued, whole revisions are kept, then OVERLOADED ends the stream; the subscription and hold are gone', () => {
    const log = new SharedLog();
    const r = new Replica();
    const server = new WatchShardServer({ host: r.host(), queueBudgetBytes: 2_000 });
    const call = new FakeCall();
    server.handle(call.asCall());
    call.emit('data', subscribeReq(1));
    call.writeResult = false; // gRPC's buffer is full from now on: the rest queues
    const value = 'x'.repeat(300);
    for (let i = 0; i < 50; i++) log.put(`a/${i}`, value);
    r.apply(log.entries);
    expect(server.stats.overloaded).toBe(1);
    expect(r.source.subscriptionCount()).toBe(0);
    expect(r.holds).toBe(0);
    // Nothing after the end; the queue drains on 'drain', ending with OVERLOADED.
    call.writeResult = true;
    call.emit('drain');
    const end = call.written[call.written.length - 1];
    expect(end.end?.kind).toBe('OVERLOADED');
    expect(call.ended).toBe(true);
    const got = revisionsOf(call.written);
    // A prefix of the history, in order, bounded (~2,000 bytes queued beyond what gRPC took).
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(12);
    expect(got).toEqual(log.entries.slice(0, got.length).map((_, i) => 3 + 2 * i));
  });

  it('resolve asks waiting for a closing round are bounded per stream: past 256 the stream ends OVERLOADED and the hold is released', () => {
    const r = new Replica();
    let released = 0;
    const host = { sourceOf: () => r.source, holdClosingRounds: () => ({ release: () => void released++, sync: () => new Promise<void>(() => undefined) }) };
    const server = new WatchShardServer({ host });
    const call = new FakeCall();
    server.handle(call.asCall());
    call.emit('data', subscribeReq(1));
    for (let i = 1; i <= 256; i++) call.emit('data', { request: 'resolve', resolve: { ask_id: String(i) } });
    expect(call.ended).toBe(false);
    call.emit('data', { request: 'resolve', resolve: { ask_id: '257' } });
    expect(call.written[call.written.length - 1].end?.kind).toBe('OVERLOADED');
    expect(call.ended).toBe(true);
    expect(released).toBe(1);
  });

  it('a shard not hosted here: NOT_HOSTED, nothing held; a bad from_revision: BAD_REQUEST', () => {
    const r = new Replica();
    const server = new WatchShardServer({ host: r.host() });
    const call = new FakeCall();
    server.handle(call.asCall());
    call.emit('data', subscribeReq(1, 7));
    expect(call.written.map((m) => m.end?.kind)).toEqual(['NOT_HOSTED']);
    expect(call.ended).toBe(true);
    expect(r.holds).toBe(0);
    const bad = new FakeCall();
    server.handle(bad.asCall());
    bad.emit('data', subscribeReq(0));
    expect(bad.written.map((m) => m.end?.kind)).toEqual(['BAD_REQUEST']);
  });
});

// ---- both ends over real gRPC ------------------------------------------------------------------------

interface Served {
  server: grpc.Server;
  port: number;
  replica: Replica;
  watch: WatchShardServer;
}

async function serve(replica: Replica, queueBudgetBytes?: number): Promise<Served> {
  const server = new grpc.Server();
  const watch = new WatchShardServer({ host: replica.host(), queueBudgetBytes });
  server.addService(
    shardPeerServiceDefinition(),
    shardPeerServiceImpl({ oracle: () => null, rangeAt: () => Promise.reject(new Error('unused')), leaderOf: () => 0, watchShard: watch }),
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port, replica, watch };
}

describe('WatchShard events on the wire (the service definition\'s own serializers)', () => {
  it("carry a cross-shard transaction's op positions; an event without one reads back without", () => {
    const def = shardPeerServiceDefinition().WatchShard;
    const kv = (key: string): MvccEvent['kv'] => ({ key: Buffer.from(key), createRevision: 9, modRevision: 9, version: 1, value: Buffer.from('v'), lease: '0' });
    const sent: MvccEvent[] = [
      { type: 'PUT', kv: kv('z'), prevKv: null, txnOpIndex: 0 },
      { type: 'DELETE', kv: kv('d'), prevKv: kv('d'), txnOpIndex: 4095 },
      { type: 'PUT', kv: kv('p'), prevKv: null },
    ];
    const bytes = def.responseSerialize({ response: 'events', events: { events: sent.map(watchEventToWire) } } satisfies WatchShardResponseWire);
    const back = def.responseDeserialize(bytes) as WatchShardResponseWire;
    const events = watchEventsFromWire(back.events?.events);
    expect(events.map((e) => [e.kv.key.toString(), e.txnOpIndex])).toEqual([['z', 0], ['d', 4095], ['p', undefined]]);
    expect('txnOpIndex' in events[2]).toBe(false);
  });
});

describe('WatchShard over gRPC (two replicas on loopback)', () => {
  const cleanup: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  it('the serving member goes away mid-stream: the watch continues from the other replica, every event once, in order', async () => {
    const log = new SharedLog(1);
    const a = await serve(new Replica());
    const bServed = await serve(new Replica());
    cleanup.push(() => a.server.forceShutdown(), () => bServed.server.forceShutdown());
    const ports = new Map([
      [1, a.port],
      [2, bServed.port],
    ]);
    const channels = new ShardPeerChannels({ peerAddress: (id) => (ports.has(id) ? `127.0.0.1:${ports.get(id)}` : undefined), selfId: 3 });
    cleanup.push(() => channels.close());
    const source = new RemoteWatchSource({ shard: 0, groupId: GROUP, candidates: () => [1, 2], transport: watchShardTransport(channels), initialBackoffMs: 5 });
    const want: number[] = [];
    for (let i = 0; i < 20; i++) want.push(log.put(`a/${i % 7}`));
    a.replica.apply(log.entries);
    bServed.replica.apply(log.entries);
    const sink = new RecordingSink();
    const sub = source.subscribe(request(1), sink);
    cleanup.push(() => sub.cancel());
    await until(() => sink.revisions.length === want.length, 5_000, 'the replay');
    await until(() => a.replica.holds === 1, 2_000, 'the hold on member 1');
    // Live writes; member 1 is shut down in the middle (its replica stops applying, as a dead member's would).
    for (let i = 0; i < 40; i++) {
      want.push(log.put(`a/${i % 5}`));
      if (i === 20) a.server.forceShutdown();
      if (i < 20) a.replica.apply(log.entries);
      bServed.replica.apply(log.entries);
      await new Promise((r) => setTimeout(r, 2));
    }
    await until(() => sink.revisions.length >= want.length, 10_000, 'every event after the switch');
    await new Promise((r) => setTimeout(r, 50));
    expect(sink.revisions).toEqual(want);
    expect(sink.violations).toEqual([]);
    expect(source.stats.streamsOpened).toBeGreaterThanOrEqual(2);
    expect(bServed.replica.holds).toBe(1);
    // A probe from a cold source learns the shard's resolved revision now, and leaves nothing open.
    const cold = new RemoteWatchSource({ shard: 0, groupId: GROUP, candidates: () => [2], transport: watchShardTransport(channels) });
    expect(cold.resolvedRevision()).toBe(0);
    expect(await cold.probe(2_000)).toBe(want[want.length - 1]);
    expect(cold.subscriptionCount()).toBe(0);
    await until(() => bServed.replica.holds === 1, 2_000, 'the probe stream closed on the serving side');
    // A resolve ask answered by member 2 after a closing round: resolved through its applied revision.
    await source.sync(2_000);
    expect(sub.resolvedRevision()).toBe(want[want.length - 1]);
    sub.cancel();
    await until(() => bServed.replica.holds === 0 && bServed.watch.openStreams() === 0, 2_000, 'the serving side cleaned up after cancel');
  }, 30_000);

  it('a stream past its bound on the serving side ends OVERLOADED and the caller resubscribes from after the last revision: every event once, in order', async () => {
    const log = new SharedLog(1);
    const a = await serve(new Replica(), 1);
    cleanup.push(() => a.server.forceShutdown());
    const channels = new ShardPeerChannels({ peerAddress: (id) => (id === 1 ? `127.0.0.1:${a.port}` : undefined) });
    cleanup.push(() => channels.close());
    const source = new RemoteWatchSource({ shard: 0, groupId: GROUP, candidates: () => [1], transport: watchShardTransport(channels), initialBackoffMs: 1 });
    const sink = new RecordingSink();
    const sub = source.subscribe(request(1), sink);
    cleanup.push(() => sub.cancel());
    await until(() => a.replica.holds === 1, 2_000, 'the subscription');
    const want: number[] = [];
    const value = 'y'.repeat(2_000);
    // Hundreds of live revisions in one synchronous burst: far more than gRPC's buffer takes at once.
    for (let i = 0; i < 400; i++) want.push(log.put(`a/${i}`, value));
    a.replica.apply(log.entries);
    await until(() => sink.revisions.length >= want.length, 15_000, 'every event');
    expect(sink.revisions).toEqual(want);
    expect(sink.violations).toEqual([]);
    expect(a.watch.stats.overloaded).toBeGreaterThan(0);
    expect(source.stats.streamsOpened).toBeGreaterThan(1);
  }, 30_000);
});

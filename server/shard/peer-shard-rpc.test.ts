// The shard peer RPCs over real grpc-js servers on loopback: every oracle answer round-trips, a real
// OracleClient follows a not-leader hint to the right member, dead and silent peers end as
// unavailable/deadline by the deadline (measured), and RangeAt carries random RangeOps and results
// byte for byte (fast-check), maps the shard's refusals and honours its deadline; RangeAt and CloseAt of
// one turn to one member travel as one batch call (each answered alone, by its own deadline; a result
// too large for the batch asked again alone; an older member without the batch calls asked singly).
import { createHash } from 'node:crypto';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { asSent, expectArrivedDeadline } from '../../test/support/arrived-deadline.ts';
import { freePort } from '../../test/support/ports.ts';
import { MvccError, rangeOf, type KeyValue, type RangeOp, type RangeResult, type SortOrder, type SortTarget } from '../mvcc/types.ts';
import type { NodeId } from '../raft/types.ts';
import { OracleClient } from './oracle-client.ts';
import type { OracleRequest, OracleResponse, OracleServer } from './oracle-protocol.ts';
import { GrpcOracleTransport, ShardPeerChannels, ShardUnavailableError, closeAtOnPeer, rangeAtOnPeer, shardStatusOnPeer, shardPeerServiceDefinition, shardPeerServiceImpl, type ShardPeerServiceOptions } from './peer-shard-rpc.ts';
import { ShardDeadlineError, ShardNotReadyError } from './shard-write-path.ts';
import { deadlineFromWire, deadlineToWire } from './shard-peer-wire.ts';

// How late a deadline may be met on a loaded machine (CI runs test files side by side on 2 cores): a
// deadline met that late still shows that nothing waits for ever.
const LATE_MS = 1_000;

const never = <T>(): Promise<T> => new Promise<T>(() => {});

/** A member's peer server whose behaviour each test sets. */
interface Peer {
  server: grpc.Server;
  port: number;
  oracle: OracleServer | null;
  oracleLeader: NodeId;
  rangeAt: ShardPeerServiceOptions['rangeAt'];
  leaders: Map<number, NodeId>;
  closeAt: NonNullable<ShardPeerServiceOptions['closeAt']>;
  /** The replicas this peer hosts: group id → leader and applied revision. */
  hosted: Map<number, { leaderId: NodeId; appliedRevision: number }>;
  maxMessageBytes?: number;
  /** Its leader lookup throws, as a member's does for a group it no longer hosts. */
  replicasGone: boolean;
}

async function startPeer(isBlocked?: (memberId: NodeId) => boolean, options: { maxMessageBytes?: number; withoutBatchCalls?: boolean } = {}): Promise<Peer> {
  const port = await freePort();
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  const peer: Peer = { server, port, oracle: null, oracleLeader: 0, rangeAt: () => never(), leaders: new Map(), closeAt: () => never(), hosted: new Map(), replicasGone: false };
  const impl = shardPeerServiceImpl({
    oracle: () => peer.oracle,
    oracleLeader: () => peer.oracleLeader,
    rangeAt: (g, op, r, d) => peer.rangeAt(g, op, r, d),
    leaderOf: (g) => {
      if (peer.replicasGone) throw new Error(`group ${g} is not hosted by member ${port}`);
      return peer.leaders.get(g) ?? 0;
    },
    isBlocked,
    closeAt: (g, r, d) => peer.closeAt(g, r, d),
    shardStatus: (g) => peer.hosted.get(g) ?? null,
    maxMessageBytes: options.maxMessageBytes,
  });
  // An older version's server: grpc-js answers the methods it lacks UNIMPLEMENTED.
  if (options.withoutBatchCalls) for (const m of ['RangeAtBatch', 'CloseAtBatch']) delete impl[m];
  server.addService(shardPeerServiceDefinition(), impl);
  await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
  return peer;
}

/** Grants consecutive revisions at a fixed term, recording what it was asked. */
class StandInOracle implements OracleServer {
  next = 100;
  readonly seen: OracleRequest[] = [];
  readonly term: number;
  constructor(term: number) {
    this.term = term;
  }
  handle(request: OracleRequest): Promise<OracleResponse> {
    this.seen.push(request);
    const first = this.next;
    this.next += request.count;
    return Promise.resolve({ kind: 'granted', requestId: request.requestId, first, last: first + request.count - 1, term: this.term });
  }
}

let a: Peer; // member 1
let b: Peer; // member 2
let deadPort: number; // member 3: nothing listens
let silent: net.Server; // member 4: accepts connections, never answers
let silentPort: number;
const sockets: net.Socket[] = [];
let channels: ShardPeerChannels;
let transport: GrpcOracleTransport;

beforeAll(async () => {
  a = await startPeer();
  b = await startPeer();
  deadPort = await freePort();
  silentPort = await freePort();
  silent = net.createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => silent.listen(silentPort, '127.0.0.1', resolve));
  const addresses = new Map<NodeId, string>([
    [1, `127.0.0.1:${a.port}`],
    [2, `127.0.0.1:${b.port}`],
    [3, `127.0.0.1:${deadPort}`],
    [4, `127.0.0.1:${silentPort}`],
  ]);
  channels = new ShardPeerChannels({ peerAddress: (id) => addresses.get(id) });
  transport = new GrpcOracleTransport(channels);
});

afterAll(async () => {
  channels.close();
  for (const s of sockets) s.destroy();
  silent.close();
  a.server.forceShutdown();
  b.server.forceShutdown();
});

const req = (requestId: number, count: number, ms = 2_000): OracleRequest => ({ requester: 'shard-7@1', requestId, count, deadlineMs: Date.now() + ms });

describe('Revisions', () => {
  it('carries every OracleResponse variant and the request exactly', async () => {
    const variants: OracleResponse[] = [
      { kind: 'granted', requestId: 1, first: 1, last: 1, term: 1 },
      { kind: 'granted', requestId: 2, first: Number.MAX_SAFE_INTEGER - 9, last: Number.MAX_SAFE_INTEGER, term: 2 ** 40 + 3 },
      { kind: 'not-leader', requestId: 3, leaderId: 2, term: 7 },
      { kind: 'not-leader', requestId: 4, leaderId: 0, term: 0 },
      { kind: 'unavailable', requestId: 5, reason: 'no quorum — réessayer' },
      { kind: 'unavailable', requestId: 6, reason: '' },
      { kind: 'bad-request', requestId: 7, reason: 'revision count must be a positive integer (got 0)' },
      { kind: 'deadline', requestId: Number.MAX_SAFE_INTEGER },
    ];
    const seen: OracleRequest[] = [];
    let answer: OracleResponse = variants[0];
    a.oracle = { handle: (r) => (seen.push(r), Promise.resolve(answer)) };
    for (const v of variants) {
      answer = v;
      const sent = req(v.requestId, 3);
      expect(await transport.request(1, sent)).toEqual(v);
      expect(asSent(seen.at(-1), sent)).toEqual(sent);
    }
    // A count that is not a positive integer reaches the host unchanged (it answers bad-request itself).
    for (const count of [0, -4, 1.5, Number.MAX_SAFE_INTEGER]) {
      await transport.request(1, req(9, count));
      expect(seen.at(-1)?.count).toBe(count);
    }
  });

  it('answers not-leader with the known metadata leader when this member hosts no oracle', async () => {
    a.oracle = null;
    a.oracleLeader = 2;
    expect(await transport.request(1, req(11, 1))).toEqual({ kind: 'not-leader', requestId: 11, leaderId: 2, term: 0 });
  });

  it('a real OracleClient gets grants and follows not-leader to the right member', async () => {
    a.oracle = { handle: (r) => Promise.resolve({ kind: 'not-leader', requestId: r.requestId, leaderId: 2, term: 5 }) };
    const host = new StandInOracle(5);
    b.oracle = host;
    const client = new OracleClient({ requester: 'shard-3@1', transport, members: () => [1, 3, 2], random: () => 0 });
    const g1 = await client.next(4, Date.now() + 3_000);
    expect(g1).toEqual({ first: 100, last: 103, term: 5 });
    const [g2, g3] = await Promise.all([client.next(2, Date.now() + 3_000), client.next(1, Date.now() + 3_000)]);
    expect(g2).toEqual({ first: 104, last: 105, term: 5 });
    expect(g3).toEqual({ first: 106, last: 106, term: 5 });
    // Asked member 1 once, went straight to the named leader (not to member 3, next in rotation and down), stayed.
    expect(client.stats).toMatchObject({ redirects: 1, timeouts: 0, attempts: 3, grants: 2 });
    expect(host.seen.map((r) => r.count)).toEqual([4, 3]);
  });

  it('a down peer answers unavailable at once; a silent peer and a stuck oracle answer deadline by the deadline', async () => {
    let t = Date.now();
    const down = await transport.request(3, req(21, 1, 1_500));
    expect(down.kind).toBe('unavailable');
    expect(Date.now() - t).toBeLessThan(1_000);

    t = Date.now();
    expect(await transport.request(4, req(22, 1, 400))).toEqual({ kind: 'deadline', requestId: 22 });
    const silentMs = Date.now() - t;
    expect(silentMs).toBeGreaterThanOrEqual(380);
    expect(silentMs).toBeLessThan(400 + LATE_MS);

    a.oracle = { handle: () => never() };
    t = Date.now();
    expect(await transport.request(1, req(23, 1, 300))).toEqual({ kind: 'deadline', requestId: 23 });
    const stuckMs = Date.now() - t;
    expect(stuckMs).toBeGreaterThanOrEqual(280);
    expect(stuckMs).toBeLessThan(300 + LATE_MS);

    expect((await transport.request(99, req(24, 1))).kind).toBe('unavailable'); // unknown member
    expect(await transport.request(1, { ...req(25, 1), deadlineMs: Date.now() - 1 })).toEqual({ kind: 'deadline', requestId: 25 });
  });

  it('a throwing or failing oracle answers unavailable', async () => {
    a.oracle = { handle: () => Promise.reject(new Error('disk on fire')) };
    expect(await transport.request(1, req(31, 1))).toMatchObject({ kind: 'unavailable', requestId: 31 });
    a.oracle = {
      handle: () => {
        throw new Error('sync throw');
      },
    };
    expect(await transport.request(1, req(32, 1))).toMatchObject({ kind: 'unavailable', requestId: 32 });
  });
});

const bytesArb = (max: number) => fc.uint8Array({ maxLength: max }).map((u) => Buffer.from(u));
const valueArb = fc.oneof(
  { weight: 12, arbitrary: bytesArb(48) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 1 << 20 }).chain((n) => fc.integer({ min: 0, max: 255 }).map((fill) => Buffer.alloc(n, fill))) },
);
const revArb = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const int64Arb = fc.maxSafeInteger();
const sortOrders: SortOrder[] = ['NONE', 'ASCEND', 'DESCEND'];
const sortTargets: SortTarget[] = ['KEY', 'VERSION', 'CREATE', 'MOD', 'VALUE'];
const rangeOpArb: fc.Arbitrary<RangeOp> = fc.record({
  key: bytesArb(40),
  rangeEnd: fc.oneof(bytesArb(40), fc.constant(Buffer.alloc(0)), fc.constant(Buffer.from([0]))),
  limit: int64Arb,
  revision: revArb,
  sortOrder: fc.constantFrom(...sortOrders),
  sortTarget: fc.constantFrom(...sortTargets),
  keysOnly: fc.boolean(),
  countOnly: fc.boolean(),
  minModRevision: revArb,
  maxModRevision: revArb,
  minCreateRevision: revArb,
  maxCreateRevision: revArb,
});
const kvArb: fc.Arbitrary<KeyValue> = fc.record({
  key: bytesArb(64),
  createRevision: revArb,
  modRevision: revArb,
  version: revArb,
  value: valueArb,
  lease: fc.oneof(fc.constant('0'), fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n).map(String)),
});
const resultArb: fc.Arbitrary<RangeResult> = fc.record({ kvs: fc.array(kvArb, { maxLength: 10 }), more: fc.boolean(), count: revArb });

/** A RangeResult with each value replaced by its length and SHA-256 (deep-comparing MiB Buffers is slow). */
function digest(r: RangeResult): unknown {
  return {
    ...r,
    kvs: r.kvs.map((kv) => ({ ...kv, key: kv.key.toString('hex'), value: `${kv.value.length}:${createHash('sha256').update(kv.value).digest('hex')}`, isBuffer: Buffer.isBuffer(kv.key) && Buffer.isBuffer(kv.value) })),
  };
}

describe('RangeAt', () => {
  it('carries random RangeOps and results exactly (binary keys, empty and 1 MiB values, every sort option)', async () => {
    const groupOf = fc.integer({ min: 1, max: 2 ** 32 - 1 });
    let largest = 0;
    let empty = 0;
    await fc.assert(
      fc.asyncProperty(groupOf, rangeOpArb, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), resultArb, async (groupId, op, revision, result) => {
        let got: [number, RangeOp, number, number] | null = null;
        b.rangeAt = (g, o, r, d) => ((got = [g, o, r, d]), Promise.resolve(result));
        const deadlineMs = Date.now() + 10_000;
        const outcome = await rangeAtOnPeer(channels, 2, groupId, op, revision, deadlineMs);
        expect(got).not.toBeNull();
        const [g, o, r, d] = got!;
        expect([g, o, r]).toEqual([groupId, op, revision]);
        expectArrivedDeadline(d, deadlineMs);
        expect(outcome.kind).toBe('ok');
        if (outcome.kind === 'ok') expect(digest(outcome.result)).toEqual(digest(result));
        for (const kv of result.kvs) {
          largest = Math.max(largest, kv.value.length);
          if (kv.value.length === 0) empty++;
        }
      }),
      { numRuns: 120 },
    );
    expect(largest).toBeGreaterThan(512 * 1024);
    expect(empty).toBeGreaterThan(0);
    // Every sort option on its own, and the empty vs "\0" range end.
    for (const sortOrder of sortOrders) {
      for (const sortTarget of sortTargets) {
        for (const rangeEnd of [Buffer.alloc(0), Buffer.from([0])]) {
          const op: RangeOp = { ...fc.sample(rangeOpArb, 1)[0], sortOrder, sortTarget, rangeEnd };
          let got: RangeOp | null = null;
          b.rangeAt = (_g, o) => ((got = o), Promise.resolve({ kvs: [], more: false, count: 0 }));
          expect(await rangeAtOnPeer(channels, 2, 1, op, 5, Date.now() + 5_000)).toEqual({ kind: 'ok', result: { kvs: [], more: false, count: 0 } });
          expect(got).toEqual(op);
        }
      }
    }
  });

  it('maps the shard refusals: not-leader with the leader id, deadline, compacted / future revision, unavailable, internal', async () => {
    b.leaders.set(9, 1);
    const cases: Array<[Error, unknown]> = [
      [new ShardNotReadyError('not the ready leader of this shard'), { kind: 'not-leader', leaderId: 1 }],
      [new ShardDeadlineError('read deadline passed'), { kind: 'deadline', reason: 'read deadline passed' }],
      [new ShardUnavailableError('shard 9 not hosted here'), { kind: 'unavailable', reason: 'shard 9 not hosted here' }],
      [new Error('boom'), { kind: 'refused', reason: 'INTERNAL: boom' }],
    ];
    for (const [err, want] of cases) {
      b.rangeAt = () => Promise.reject(err);
      expect(await rangeAtOnPeer(channels, 2, 9, fc.sample(rangeOpArb, 1)[0], 7, Date.now() + 2_000)).toEqual(want);
    }
    b.rangeAt = () => Promise.reject(new ShardNotReadyError('x'));
    expect(await rangeAtOnPeer(channels, 2, 10, fc.sample(rangeOpArb, 1)[0], 7, Date.now() + 2_000)).toEqual({ kind: 'not-leader', leaderId: 0 });
    // The replica went away while the read was served (a shard moved off the member): the member no
    // longer knows the group and its leader lookup throws, as Member.leaderId does. Still an answer.
    b.replicasGone = true;
    b.rangeAt = () => Promise.reject(new ShardNotReadyError('shard leadership lost'));
    b.closeAt = () => Promise.reject(new ShardNotReadyError('shard leadership lost'));
    expect(await rangeAtOnPeer(channels, 2, 9, fc.sample(rangeOpArb, 1)[0], 7, Date.now() + 2_000)).toEqual({ kind: 'not-leader', leaderId: 0 });
    expect(await closeAtOnPeer(channels, 2, 9, 7, Date.now() + 2_000)).toEqual({ kind: 'not-leader', leaderId: 0 });
    b.replicasGone = false;
    const leaders = b.leaders;
    leaders.get = (g: number) => {
      throw new Error(`group ${g} is not hosted by member 2`);
    };
    for (const call of [rangeAtOnPeer, closeAtOnPeer] as const) {
      b.rangeAt = () => Promise.reject(new ShardNotReadyError('shard leadership lost'));
      b.closeAt = () => Promise.reject(new ShardNotReadyError('shard leadership lost'));
      const out = call === rangeAtOnPeer ? await rangeAtOnPeer(channels, 2, 9, fc.sample(rangeOpArb, 1)[0], 7, Date.now() + 2_000) : await closeAtOnPeer(channels, 2, 9, 7, Date.now() + 2_000);
      expect(out).toEqual({ kind: 'not-leader', leaderId: 0 });
    }
    b.leaders = new Map();
    for (const code of ['compacted', 'futureRev'] as const) {
      b.rangeAt = () => Promise.reject(new MvccError(code, `etcdserver: mvcc: ${code}`));
      const out = await rangeAtOnPeer(channels, 2, 9, fc.sample(rangeOpArb, 1)[0], 7, Date.now() + 2_000);
      expect(out.kind).toBe('mvcc');
      if (out.kind === 'mvcc') {
        expect(out.error).toBeInstanceOf(MvccError);
        expect(out.error.code).toBe(code);
        expect(out.error.message).toBe(`etcdserver: mvcc: ${code}`);
      }
    }
    expect((await rangeAtOnPeer(channels, 2, 9, fc.sample(rangeOpArb, 1)[0], 0, Date.now() + 2_000)).kind).toBe('refused'); // revision 0
  });

  it('CloseAt carries the close (revision and applied index, 64-bit safe) and maps refusals and deadlines as RangeAt', async () => {
    let got: number[] = [];
    b.closeAt = (g, r, d) => ((got = [g, r, d]), Promise.resolve({ revision: r - 3, appliedIndex: 2 ** 45 + 1 }));
    const deadline = Date.now() + 5_000;
    expect(await closeAtOnPeer(channels, 2, 4_000_000_000, 2 ** 50, deadline)).toEqual({ kind: 'closed', revision: 2 ** 50 - 3, appliedIndex: 2 ** 45 + 1 });
    expect(got.slice(0, 2)).toEqual([4_000_000_000, 2 ** 50]);
    expectArrivedDeadline(got[2], deadline);
    b.leaders.set(9, 1);
    const cases: Array<[Error, unknown]> = [
      [new ShardNotReadyError('not the ready leader of this shard'), { kind: 'not-leader', leaderId: 1 }],
      [new ShardDeadlineError('read deadline passed waiting for proposed revisions'), { kind: 'deadline', reason: 'read deadline passed waiting for proposed revisions' }],
      [new ShardUnavailableError('shard 9 not hosted here'), { kind: 'unavailable', reason: 'shard 9 not hosted here' }],
      [new Error('boom'), { kind: 'refused', reason: 'INTERNAL: boom' }],
    ];
    for (const [err, want] of cases) {
      b.closeAt = () => Promise.reject(err);
      expect(await closeAtOnPeer(channels, 2, 9, 7, Date.now() + 2_000)).toEqual(want);
    }
    expect((await closeAtOnPeer(channels, 2, 9, 0, Date.now() + 2_000)).kind).toBe('refused'); // revision 0
    b.closeAt = () => never();
    let t = Date.now();
    expect((await closeAtOnPeer(channels, 2, 9, 7, Date.now() + 300)).kind).toBe('deadline');
    expect(Date.now() - t).toBeLessThan(300 + LATE_MS);
    t = Date.now();
    expect((await closeAtOnPeer(channels, 4, 9, 7, Date.now() + 300)).kind).toBe('deadline'); // silent peer
    expect(Date.now() - t).toBeLessThan(300 + LATE_MS);
    expect((await closeAtOnPeer(channels, 3, 9, 7, Date.now() + 300)).kind).toBe('unavailable'); // down peer
  });

  it('honours its deadline: a stuck read, a silent peer and a down peer end in time', async () => {
    b.rangeAt = () => never();
    const op = fc.sample(rangeOpArb, 1)[0];
    let t = Date.now();
    expect((await rangeAtOnPeer(channels, 2, 1, op, 3, Date.now() + 300)).kind).toBe('deadline');
    const stuckMs = Date.now() - t;
    expect(stuckMs).toBeGreaterThanOrEqual(280);
    expect(stuckMs).toBeLessThan(300 + LATE_MS);

    t = Date.now();
    expect((await rangeAtOnPeer(channels, 4, 1, op, 3, Date.now() + 300)).kind).toBe('deadline');
    expect(Date.now() - t).toBeLessThan(300 + LATE_MS);

    t = Date.now();
    expect((await rangeAtOnPeer(channels, 3, 1, op, 3, Date.now() + 1_500)).kind).toBe('unavailable');
    expect(Date.now() - t).toBeLessThan(1_000);
  });

  it('refuses a result over the message cap as too-large, and answers unavailable after close()', async () => {
    const port = await freePort();
    const server = new grpc.Server();
    server.addService(
      shardPeerServiceDefinition(),
      shardPeerServiceImpl({
        oracle: () => null,
        rangeAt: () => Promise.resolve({ kvs: [{ key: Buffer.from('k'), createRevision: 2, modRevision: 2, version: 1, value: Buffer.alloc(4096), lease: '0' }], more: false, count: 1 }),
        leaderOf: () => 0,
        maxMessageBytes: 1024,
      }),
    );
    await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    const own = new ShardPeerChannels({ peerAddress: () => `127.0.0.1:${port}` });
    try {
      expect((await rangeAtOnPeer(own, 5, 1, fc.sample(rangeOpArb, 1)[0], 3, Date.now() + 2_000)).kind).toBe('too-large');
      own.close();
      expect((await rangeAtOnPeer(own, 5, 1, fc.sample(rangeOpArb, 1)[0], 3, Date.now() + 2_000)).kind).toBe('unavailable');
      expect((await new GrpcOracleTransport(own).request(5, req(41, 1))).kind).toBe('unavailable');
    } finally {
      own.close();
      server.forceShutdown();
    }
  });
});

describe('test-only partitions (--experimental-fault-injection)', () => {
  it('a member cut off from the caller never answers it; a caller cut off from a member fails at once', async () => {
    const cutOff = await startPeer((id) => id === 9);
    cutOff.oracle = new StandInOracle(1);
    const address = (): string => `127.0.0.1:${cutOff.port}`;
    const fromNine = new ShardPeerChannels({ peerAddress: address, selfId: 9 });
    const fromEight = new ShardPeerChannels({ peerAddress: address, selfId: 8 });
    const eightCutOff = new ShardPeerChannels({ peerAddress: address, selfId: 8, isBlocked: (id) => id === 1 });
    try {
      const started = Date.now();
      expect(await new GrpcOracleTransport(fromNine).request(1, req(1, 1, 300))).toEqual({ kind: 'deadline', requestId: 1 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect((await new GrpcOracleTransport(fromEight).request(1, req(2, 1, 2_000))).kind).toBe('granted');
      const early = Date.now();
      const refused = await new GrpcOracleTransport(eightCutOff).request(1, req(3, 1, 2_000));
      expect(refused).toMatchObject({ kind: 'unavailable', requestId: 3 });
      expect(Date.now() - early).toBeLessThan(LATE_MS); // at once, not at its 2 s deadline
      const range = await rangeAtOnPeer(fromNine, 1, 2, rangeOf(Buffer.from('a')), 5, Date.now() + 300);
      expect(range.kind).toBe('deadline');
    } finally {
      fromNine.close();
      fromEight.close();
      eightCutOff.close();
      cutOff.server.forceShutdown();
    }
  });
});

describe('RangeAt and CloseAt batched per member', () => {
  it('calls to one member in one turn leave as one batch call, each answered with its own outcome', async () => {
    b.closeAt = (g, r) => (g === 5 ? Promise.reject(new ShardNotReadyError('not the ready leader of this shard')) : Promise.resolve({ revision: r - g, appliedIndex: 1000 + g }));
    b.leaders.set(5, 1);
    const before = { ...channels.batchStats };
    const deadline = Date.now() + 5_000;
    const closes = await Promise.all([2, 3, 4, 5, 6].map((g) => closeAtOnPeer(channels, 2, g, 2 ** 40, deadline)));
    expect(closes).toEqual([2, 3, 4, 5, 6].map((g) => (g === 5 ? { kind: 'not-leader', leaderId: 1 } : { kind: 'closed', revision: 2 ** 40 - g, appliedIndex: 1000 + g })));
    expect(channels.batchStats.batches - before.batches).toBe(1);
    expect(channels.batchStats.batchedCalls - before.batchedCalls).toBe(5);

    const results = fc.sample(resultArb, 6);
    b.rangeAt = (g) => (g === 7 ? Promise.reject(new MvccError('compacted', 'etcdserver: mvcc: required revision has been compacted')) : Promise.resolve(results[g]));
    const ops = fc.sample(rangeOpArb, 6);
    const ranges = await Promise.all(ops.map((op, g) => rangeAtOnPeer(channels, 2, g === 5 ? 7 : g, op, 99, deadline)));
    ranges.forEach((out, g) => {
      if (g === 5) expect(out.kind).toBe('mvcc');
      else expect(out).toEqual({ kind: 'ok', result: results[g] });
    });
    expect(channels.batchStats.batches - before.batches).toBe(2);
  });

  it('a slow shard in a batch does not hold the others past their own deadlines', async () => {
    b.closeAt = (g, r) => (g === 3 ? never() : Promise.resolve({ revision: r, appliedIndex: g }));
    const now = Date.now();
    const [fast, slow] = await Promise.all([closeAtOnPeer(channels, 2, 2, 50, now + 5_000), closeAtOnPeer(channels, 2, 3, 50, now + 300)]);
    expect(fast).toEqual({ kind: 'closed', revision: 50, appliedIndex: 2 });
    expect(slow.kind).toBe('deadline');
  });

  it('a range that would push the batch answer past the peer message cap is asked again alone', async () => {
    const small = await startPeer(undefined, { maxMessageBytes: 256 * 1024 });
    const value = Buffer.alloc(100 * 1024, 7);
    const kv: KeyValue = { key: Buffer.from('k'), value, createRevision: 1, modRevision: 1, version: 1, lease: '0' };
    small.rangeAt = () => Promise.resolve({ kvs: [kv], more: false, count: 1 });
    const ch = new ShardPeerChannels({ peerAddress: () => `127.0.0.1:${small.port}` });
    try {
      const op = fc.sample(rangeOpArb, 1)[0];
      const outs = await Promise.all([1, 2, 3].map((g) => rangeAtOnPeer(ch, 9, g, op, 5, Date.now() + 5_000)));
      for (const out of outs) {
        expect(out.kind).toBe('ok');
        if (out.kind === 'ok') expect(Buffer.from(out.result.kvs[0].value).equals(value)).toBe(true);
      }
      expect(ch.batchStats.batches).toBe(1);
    } finally {
      ch.close();
      small.server.forceShutdown();
    }
  });

  it('a member without the batch calls (an older version) is asked one call at a time', async () => {
    const old = await startPeer(undefined, { withoutBatchCalls: true });
    old.closeAt = (g, r) => Promise.resolve({ revision: r, appliedIndex: g });
    const ch = new ShardPeerChannels({ peerAddress: () => `127.0.0.1:${old.port}` });
    try {
      const deadline = Date.now() + 5_000;
      for (let round = 0; round < 2; round++) {
        const outs = await Promise.all([2, 3, 4].map((g) => closeAtOnPeer(ch, 9, g, 70, deadline)));
        expect(outs).toEqual([2, 3, 4].map((g) => ({ kind: 'closed', revision: 70, appliedIndex: g })));
      }
      expect(ch.batchStats.batches).toBe(1); // tried once, then never again
    } finally {
      ch.close();
      old.server.forceShutdown();
    }
  });
});

describe('ShardStatus', () => {
  it('answers leader and applied revision of the asked groups the member hosts (64-bit safe), nothing for the rest', async () => {
    b.hosted.set(3, { leaderId: 2 ** 52 + 7, appliedRevision: 2 ** 50 + 1 });
    b.hosted.set(5, { leaderId: 0, appliedRevision: 0 });
    expect(await shardStatusOnPeer(channels, 2, [3, 4, 5], Date.now() + 2_000)).toEqual([
      { groupId: 3, leaderId: 2 ** 52 + 7, appliedRevision: 2 ** 50 + 1 },
      { groupId: 5, leaderId: 0, appliedRevision: 0 },
    ]);
    expect(await shardStatusOnPeer(channels, 3, [3], Date.now() + 2_000)).toEqual([]); // a down member: nothing, at once
    const t = Date.now();
    expect(await shardStatusOnPeer(channels, 4, [3], Date.now() + 300)).toEqual([]); // a silent one: nothing, by the deadline
    expect(Date.now() - t).toBeLessThan(300 + LATE_MS);
  });
});

describe('deadlines between members', () => {
  it('travel as time left: a receiver whose clock is ten minutes ahead or behind still gives the caller its 5 s; an older sender\'s absolute deadline reads as before', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(1_000_000_000);
      const wire = deadlineToWire(1_000_005_000);
      expect(wire).toEqual({ deadline_ms: 1_000_005_000, timeout_ms: 5_000 });
      vi.setSystemTime(1_000_000_000 + 600_000); // the receiver's clock, ten minutes ahead
      expect(deadlineFromWire(wire)).toBe(1_000_605_000);
      vi.setSystemTime(1_000_000_000 - 600_000); // ten minutes behind
      expect(deadlineFromWire(wire)).toBe(999_405_000);
      // An older sender sends the absolute deadline alone (timeout_ms decodes as 0).
      expect(deadlineFromWire({ deadline_ms: '1000005000', timeout_ms: '0' })).toBe(1_000_005_000);
      expect(deadlineFromWire({ deadline_ms: '1000005000' })).toBe(1_000_005_000);
      vi.setSystemTime(1_000_000_000);
      // A deadline already past arrives as 1 ms left (0 would read as an older sender); "never" as the most.
      expect(deadlineToWire(999_000_000)).toEqual({ deadline_ms: 999_000_000, timeout_ms: 1 });
      expect(deadlineToWire(Infinity)).toEqual({ deadline_ms: Number.MAX_SAFE_INTEGER, timeout_ms: Number.MAX_SAFE_INTEGER });
      expect(() => deadlineFromWire({ deadline_ms: '0', timeout_ms: '-5' })).toThrow(/negative/);
    } finally {
      vi.useRealTimers();
    }
  });
});

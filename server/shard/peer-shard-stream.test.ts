// The ShardPeer calls that ride the peer streams (the oracle's Revisions, CloseAt, CloseAtBatch,
// ShardStatus, RangeAt, RangeAtBatch) between two real PeerTransports on loopback: each answers exactly
// what the same call answers as a unary gRPC call to the same member, the stream is what carried it, a
// read whose answer is too large for the stream is asked again as a unary call, ShardKv stays unary,
// and a call the serving side drops (a partition) ends by its deadline as the unary call would.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asSent } from '../../test/support/arrived-deadline.ts';
import { freePort } from '../../test/support/ports.ts';
import { rangeOf, type RangeOp } from '../mvcc/types.ts';
import type { NodeId } from '../raft/types.ts';
import type { PeerTransport } from '../transport/peer-transport.ts';
import { testPeerTransport } from '../transport/test-peer-transport.ts';
import type { OracleRequest, OracleResponse } from './oracle-protocol.ts';
import {
  GrpcOracleTransport,
  SHARD_PEER_STREAM_SERVICE,
  ShardPeerChannels,
  ShardUnavailableError,
  type ShardPeerStreams,
  closeAtOnPeer,
  rangeAtOnPeer,
  shardPeerServiceDefinition,
  shardPeerServiceImpl,
  shardPeerStreamHandler,
  shardKvOnPeer,
  shardStatusOnPeer,
} from './peer-shard-rpc.ts';

const CLUSTER = 77;
const CALLER: NodeId = 1;
const SERVER: NodeId = 2;

function transportFor(memberId: NodeId, port: number, peers: Map<number, string>): PeerTransport {
  return testPeerTransport({ clusterId: CLUSTER, memberId, listenAddress: `127.0.0.1:${port}`, peers });
}

/** What the serving member answers; each test sets it. */
let oracleAnswer: (r: OracleRequest) => Promise<OracleResponse> = () => new Promise(() => {});
let blockCaller = false;
const oracleSeen: OracleRequest[] = [];

let caller: PeerTransport;
let server: PeerTransport;
let viaStream: ShardPeerChannels;
let viaUnary: ShardPeerChannels;

beforeAll(async () => {
  const callerPort = await freePort();
  const serverPort = await freePort();
  caller = transportFor(CALLER, callerPort, new Map([[SERVER, `127.0.0.1:${serverPort}`]]));
  server = transportFor(SERVER, serverPort, new Map([[CALLER, `127.0.0.1:${callerPort}`]]));
  const impl = shardPeerServiceImpl({
    oracle: () => ({
      handle: (r) => {
        oracleSeen.push(r);
        return oracleAnswer(r);
      },
    }),
    // Group 6 holds one value larger than a stream call carries (a quarter of the 8 MiB frame).
    rangeAt: async (g, op: RangeOp) => ({ kvs: [{ key: op.key, value: g === 6 ? Buffer.alloc(3 * 1024 * 1024, 7) : Buffer.from('v'), createRevision: 3, modRevision: 4, version: 1, lease: '0' }], more: false, count: 1 }),
    leaderOf: (g) => (g === 9 ? 3 : SERVER),
    isBlocked: (id) => blockCaller && id === CALLER,
    closeAt: async (g, revision) => {
      if (g === 5) throw new ShardUnavailableError('group 5 is between placements');
      return { revision: revision - 1, appliedIndex: 2 ** 40 + g };
    },
    shardStatus: (g) => (g === 4 ? { leaderId: SERVER, appliedRevision: 2 ** 50 } : null),
  });
  server.addService(shardPeerServiceDefinition(), impl);
  server.serveOnStream(SHARD_PEER_STREAM_SERVICE, shardPeerStreamHandler(impl));
  await caller.start();
  await server.start();
  const peerAddress = (id: NodeId): string | undefined => (id === SERVER ? `127.0.0.1:${serverPort}` : undefined);
  viaStream = new ShardPeerChannels({ peerAddress, selfId: CALLER, streams: caller });
  viaUnary = new ShardPeerChannels({ peerAddress, selfId: CALLER });
  const started = Date.now();
  while (!caller.streamCallsTo(SERVER, SHARD_PEER_STREAM_SERVICE) || !server.isConnected(CALLER)) {
    if (Date.now() - started > 10_000) throw new Error('streams did not come up');
    await new Promise((r) => setTimeout(r, 10));
  }
});

afterAll(async () => {
  viaStream.close();
  viaUnary.close();
  await caller.stop();
  await server.stop();
});

describe('ShardPeer calls on the peer streams', () => {
  it('answers every oracle variant as the unary call does, and the stream carried it', async () => {
    const variants: OracleResponse[] = [
      { kind: 'granted', requestId: 1, first: Number.MAX_SAFE_INTEGER - 9, last: Number.MAX_SAFE_INTEGER, term: 2 ** 40 + 3 },
      { kind: 'not-leader', requestId: 2, leaderId: 3, term: 7 },
      { kind: 'unavailable', requestId: 3, reason: 'no quorum — réessayer' },
      { kind: 'bad-request', requestId: 4, reason: 'revision count must be a positive integer (got 0)' },
      { kind: 'deadline', requestId: 5 },
    ];
    const sentBefore = caller.streamCallStats.sent;
    for (const v of variants) {
      oracleAnswer = () => Promise.resolve(v);
      const request: OracleRequest = { requester: 'shard-3@1', requestId: v.requestId, count: 10, deadlineMs: Date.now() + 2_000 };
      const streamed = await new GrpcOracleTransport(viaStream).request(SERVER, request);
      const unary = await new GrpcOracleTransport(viaUnary).request(SERVER, request);
      expect(streamed).toEqual(v);
      expect(unary).toEqual(v);
      expect(oracleSeen.slice(-2).map((seen) => asSent(seen, request))).toEqual([request, request]);
    }
    expect(caller.streamCallStats.sent - sentBefore).toBe(variants.length);
  });

  it('closes and reports shard status as the unary calls do, batched closes included', async () => {
    const deadline = Date.now() + 2_000;
    const sentBefore = caller.streamCallStats.sent;
    for (const channels of [viaStream, viaUnary]) {
      // Three closes asked in one turn leave as one CloseAtBatch.
      const closes = await Promise.all([closeAtOnPeer(channels, SERVER, 1, 50, deadline), closeAtOnPeer(channels, SERVER, 5, 50, deadline), closeAtOnPeer(channels, SERVER, 7, 2 ** 52, deadline)]);
      expect(closes).toEqual([
        { kind: 'closed', revision: 49, appliedIndex: 2 ** 40 + 1 },
        { kind: 'unavailable', reason: 'group 5 is between placements' },
        { kind: 'closed', revision: 2 ** 52 - 1, appliedIndex: 2 ** 40 + 7 },
      ]);
      expect(await closeAtOnPeer(channels, SERVER, 8, 10, deadline)).toEqual({ kind: 'closed', revision: 9, appliedIndex: 2 ** 40 + 8 });
      expect(await shardStatusOnPeer(channels, SERVER, [3, 4], deadline)).toEqual([{ groupId: 4, leaderId: SERVER, appliedRevision: 2 ** 50 }]);
    }
    // One batch and one single close and one status went by stream; the unary channels sent none there.
    expect(caller.streamCallStats.sent - sentBefore).toBe(3);
  });

  it('reads a shard at a revision on the stream; an answer too large for it is asked again as a unary call', async () => {
    const deadline = Date.now() + 5_000;
    const sentBefore = caller.streamCallStats.sent;
    const small = await rangeAtOnPeer(viaStream, SERVER, 2, rangeOf(Buffer.from('k')), 6, deadline);
    expect(small).toEqual(await rangeAtOnPeer(viaUnary, SERVER, 2, rangeOf(Buffer.from('k')), 6, deadline));
    expect(small).toMatchObject({ kind: 'ok', result: { count: 1, more: false } });
    expect(caller.streamCallStats.sent - sentBefore).toBe(1);
    // Too large: the stream answers RESOURCE_EXHAUSTED and the caller asks again, unary, in full.
    const large = await rangeAtOnPeer(viaStream, SERVER, 6, rangeOf(Buffer.from('big')), 6, deadline);
    expect(large.kind).toBe('ok');
    if (large.kind === 'ok') expect(large.result.kvs[0].value.equals(Buffer.alloc(3 * 1024 * 1024, 7))).toBe(true);
    expect(caller.streamCallStats.sent - sentBefore).toBe(2);
    // Reads of one turn to one member: one RangeAtBatch on the stream, the large one inside it included.
    const batch = await Promise.all([2, 6, 3].map((g) => rangeAtOnPeer(viaStream, SERVER, g, rangeOf(Buffer.from(`k${g}`)), 6, deadline)));
    expect(batch.map((o) => (o.kind === 'ok' ? o.result.kvs[0].value.length : -1))).toEqual([1, 3 * 1024 * 1024, 1]);
    expect(caller.streamCallStats.sent - sentBefore).toBe(3);
  });

  it('keeps ShardKv unary: a forwarded write must never lose its answer to a size check', async () => {
    const sentBefore = caller.streamCallStats.sent;
    const outcome = await shardKvOnPeer(viaStream, SERVER, { groupId: 2, deadlineMs: Date.now() + 2_000, op: { kind: 'range', op: rangeOf(Buffer.from('k')), serializable: true } });
    expect(outcome.kind).toBe('not-hosted'); // this member serves no ShardKv
    expect(caller.streamCallStats.sent).toBe(sentBefore);
  });

  it('ends a call the serving member drops (a partition) by its deadline, as a unary call', async () => {
    blockCaller = true;
    try {
      oracleAnswer = (r) => Promise.resolve({ kind: 'granted', requestId: r.requestId, first: 1, last: 1, term: 1 });
      const started = Date.now();
      const request: OracleRequest = { requester: 'shard-3@1', requestId: 99, count: 1, deadlineMs: Date.now() + 400 };
      expect(await new GrpcOracleTransport(viaStream).request(SERVER, request)).toEqual({ kind: 'deadline', requestId: 99 });
      const tookMs = Date.now() - started;
      expect(tookMs).toBeGreaterThanOrEqual(390);
      expect(tookMs).toBeLessThan(2_000);
    } finally {
      blockCaller = false;
    }
  });

  it('asks by unary call what the stream could not send after all (it went down since it was chosen)', async () => {
    // A stand-in for the transport at that instant: it said the peer serves the method, then sends nothing.
    const downNow: ShardPeerStreams = {
      streamCallsTo: () => true,
      streamPayloadLimitBytes: 1 << 20,
      callOnStream: async () => ({ kind: 'not-sent', reason: 'no stream to member 2' }),
    };
    const channels = new ShardPeerChannels({ peerAddress: (id) => (id === SERVER ? `127.0.0.1:${server.port}` : undefined), selfId: CALLER, streams: downNow });
    try {
      oracleAnswer = (r) => Promise.resolve({ kind: 'granted', requestId: r.requestId, first: 7, last: 9, term: 4 });
      const request: OracleRequest = { requester: 'shard-3@1', requestId: 5, count: 3, deadlineMs: Date.now() + 2_000 };
      expect(await new GrpcOracleTransport(channels).request(SERVER, request)).toEqual({ kind: 'granted', requestId: 5, first: 7, last: 9, term: 4 });
      expect(asSent(oracleSeen.at(-1), request)).toEqual(request);
    } finally {
      channels.close();
    }
  });

  it('uses the unary call to a member whose streams serve nothing (an older version, or no shards)', async () => {
    // CALLER serves no ShardPeer at all: the call goes unary, and its grpc server answers UNIMPLEMENTED.
    expect(server.streamCallsTo(CALLER, SHARD_PEER_STREAM_SERVICE)).toBe(false);
    const back = new ShardPeerChannels({ peerAddress: (id) => (id === CALLER ? `127.0.0.1:${caller.port}` : undefined), selfId: SERVER, streams: server });
    try {
      const sentBefore = server.streamCallStats.sent;
      const answer = await new GrpcOracleTransport(back).request(CALLER, { requester: 'x', requestId: 1, count: 1, deadlineMs: Date.now() + 2_000 });
      expect(answer).toEqual({ kind: 'unavailable', requestId: 1, reason: expect.stringMatching(/^UNIMPLEMENTED/) });
      expect(server.streamCallStats.sent).toBe(sentBefore);
    } finally {
      back.close();
    }
  });
});

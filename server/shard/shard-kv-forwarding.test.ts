// Forwarding single-shard KV operations: the ShardKv peer RPC over real grpc-js servers on loopback
// (every op and answer round-trips exactly, including nested txn results and binary keys; malformed
// answers are refused; a down, silent or stuck host ends in time as the right outcome), and the
// forwarder's decisions (candidate order, a write never sent twice, reads asked again elsewhere, leader
// hints followed and cached, etcd's errors passed through unchanged, nothing past the deadline).
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectArrivedDeadline } from '../../test/support/arrived-deadline.ts';
import { freePort } from '../../test/support/ports.ts';
import { ETCD_ERRORS } from '../etcd/errors.ts';
import { rangeOf, type KeyValue, type TxnResult } from '../mvcc/types.ts';
import type { NodeId } from '../raft/types.ts';
import { ShardPeerChannels, shardKvOnPeer, shardPeerServiceDefinition, shardPeerServiceImpl, type ShardKvOutcome } from './peer-shard-rpc.ts';
import { DOWN_FOR_MS, ShardForwarder, candidateOrder, judgeAttempt } from './shard-forwarder.ts';
import { shardKvAnswerFromWire, shardKvAnswerToWire, type ShardKvAnswer, type ShardKvRequest, type ShardKvResponseWire } from './shard-kv-wire.ts';

// How late a deadline may be met on a loaded machine (CI runs test files side by side on 2 cores): a
// deadline met that late still shows that nothing waits for ever.
const LATE_MS = 1_000;

const never = <T>(): Promise<T> => new Promise<T>(() => {});

const kv = (key: string, value: Buffer, rev: number, lease = '0'): KeyValue => ({ key: Buffer.from(key), createRevision: rev, modRevision: rev + 1, version: 2, value, lease });

describe('ShardKv over gRPC', () => {
  let serve: (r: ShardKvRequest) => Promise<ShardKvAnswer> = () => never();
  const seen: ShardKvRequest[] = [];
  let server: grpc.Server;
  let port: number;
  let deadPort: number;
  let silent: net.Server;
  let silentPort: number;
  const sockets: net.Socket[] = [];
  let channels: ShardPeerChannels;

  beforeAll(async () => {
    port = await freePort();
    server = new grpc.Server();
    server.addService(
      shardPeerServiceDefinition(),
      shardPeerServiceImpl({
        oracle: () => null,
        rangeAt: () => never(),
        leaderOf: (g) => (g === 5 ? 3 : 0),
        shardKv: (r) => {
          seen.push(r);
          return serve(r);
        },
      }),
    );
    await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    deadPort = await freePort();
    silentPort = await freePort();
    silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(silentPort, '127.0.0.1', resolve));
    const addresses = new Map<NodeId, string>([
      [1, `127.0.0.1:${port}`],
      [2, `127.0.0.1:${deadPort}`],
      [4, `127.0.0.1:${silentPort}`],
    ]);
    channels = new ShardPeerChannels({ peerAddress: (id) => addresses.get(id) });
  });

  afterAll(() => {
    channels.close();
    for (const s of sockets) s.destroy();
    silent.close();
    server.forceShutdown();
  });

  it('carries every op and every answer exactly (binary keys, nested txn results, 64-bit numbers)', async () => {
    const binary = Buffer.from([0, 255, 1, 128]);
    const nested: TxnResult = {
      succeeded: true,
      responses: [
        { type: 'range', range: { kvs: [kv('a', binary, 2 ** 40, '7587862243543614978')], more: true, count: 9 } },
        { type: 'put', put: { prevKv: kv('b', Buffer.alloc(0), 3) } },
        { type: 'put', put: { prevKv: null } },
        { type: 'deleteRange', deleteRange: { deleted: 2, prevKvs: [kv('c', Buffer.from('x'), 4)] } },
        { type: 'txn', txn: { succeeded: false, responses: [{ type: 'deleteRange', deleteRange: { deleted: 0, prevKvs: [] } }] } },
      ],
    };
    const deadlineMs = Date.now() + 5_000;
    const cases: Array<{ request: ShardKvRequest; answer: ShardKvAnswer }> = [
      {
        request: { groupId: 5, deadlineMs, op: { kind: 'range', op: rangeOf(binary, Buffer.from([0]), { limit: 3, revision: 2 ** 41, sortOrder: 'DESCEND', sortTarget: 'MOD', keysOnly: true }), serializable: true } },
        answer: { kind: 'done', revision: 2 ** 45, raftTerm: 7, payload: { kind: 'range', result: { kvs: [kv('k', binary, 5)], more: false, count: 1 } }, leaderId: 3 },
      },
      {
        request: { groupId: 5, deadlineMs, op: { kind: 'write', entry: new Uint8Array([8, 1, 16, 2, 26, 3, 10, 1, 97]), internal: false } },
        answer: { kind: 'done', revision: 12, raftTerm: 2, payload: { kind: 'response', response: { type: 'txn', txn: nested } }, leaderId: 3 },
      },
      {
        request: { groupId: 6, deadlineMs, op: { kind: 'lease-keys', leaseId: '7587862243543614978' } },
        answer: { kind: 'done', revision: 3, raftTerm: 1, payload: { kind: 'keys', keys: [binary, Buffer.from('z')] }, leaderId: 0 },
      },
      {
        request: { groupId: 6, deadlineMs, op: { kind: 'write', entry: new Uint8Array([1]), internal: true } },
        answer: { kind: 'done', revision: 3, raftTerm: 1, payload: { kind: 'nothing' }, leaderId: 0 },
      },
      // txn_recover's answers: committed with the failure branch at C, prepared at P with a compare failing, aborted.
      {
        request: { groupId: 6, deadlineMs, op: { kind: 'write', entry: new Uint8Array([1]), internal: true } },
        answer: { kind: 'done', revision: 2 ** 42, raftTerm: 1, payload: { kind: 'recovery', recovery: { state: 'committed', failureBranch: true } }, leaderId: 0 },
      },
      {
        request: { groupId: 6, deadlineMs, op: { kind: 'write', entry: new Uint8Array([1]), internal: true } },
        answer: { kind: 'done', revision: 17, raftTerm: 1, payload: { kind: 'recovery', recovery: { state: 'prepared', failureBranch: true } }, leaderId: 0 },
      },
      {
        request: { groupId: 6, deadlineMs, op: { kind: 'write', entry: new Uint8Array([1]), internal: true } },
        answer: { kind: 'done', revision: 0, raftTerm: 1, payload: { kind: 'recovery', recovery: { state: 'aborted', failureBranch: false } }, leaderId: 0 },
      },
      { request: { groupId: 6, deadlineMs, op: { kind: 'lease-keys', leaseId: '1' } }, answer: { kind: 'not-hosted', leaderId: 2 ** 50 } },
      { request: { groupId: 6, deadlineMs, op: { kind: 'lease-keys', leaseId: '1' } }, answer: { kind: 'beyond-applied', applied: 44, leaderId: 0 } },
      {
        request: { groupId: 6, deadlineMs, op: { kind: 'lease-keys', leaseId: '1' } },
        answer: { kind: 'error', code: ETCD_ERRORS.COMPACTED.code, message: ETCD_ERRORS.COMPACTED.message, leaderId: 1 },
      },
    ];
    for (const c of cases) {
      serve = () => Promise.resolve(c.answer);
      seen.length = 0;
      const outcome = await shardKvOnPeer(channels, 1, c.request);
      expect(outcome).toEqual(c.answer);
      const got = seen[0];
      expect(got.groupId).toBe(c.request.groupId);
      expectArrivedDeadline(got.deadlineMs, c.request.deadlineMs);
      if (c.request.op.kind === 'write' && got.op.kind === 'write') {
        expect(Buffer.from(got.op.entry).equals(Buffer.from(c.request.op.entry))).toBe(true);
        expect(got.op.internal).toBe(c.request.op.internal);
      } else {
        expect(got.op).toEqual(c.request.op);
      }
    }
    // A read-only txn request arrives as etcd's TxnRequest.
    serve = () => Promise.resolve({ kind: 'not-hosted', leaderId: 0 });
    seen.length = 0;
    const txn = { compare: [], success: [{ request_range: { key: Buffer.from('k'), range_end: Buffer.alloc(0) } }], failure: [] };
    await shardKvOnPeer(channels, 1, { groupId: 5, deadlineMs, op: { kind: 'read-txn', txn: txn as never, serializable: false } });
    const op = seen[0].op;
    expect(op.kind).toBe('read-txn');
    if (op.kind === 'read-txn') {
      expect(op.serializable).toBe(false);
      expect(op.txn.success[0].request_range?.key.toString()).toBe('k');
    }
  });

  it('a recovery answer also travels as the txn members built before TxnRecovery read (succeeded: committed)', () => {
    const wire = shardKvAnswerToWire({ kind: 'done', revision: 9, raftTerm: 1, payload: { kind: 'recovery', recovery: { state: 'committed', failureBranch: false } }, leaderId: 0 });
    expect(wire.done?.response).toMatchObject({ response_txn: { succeeded: true, responses: [] } });
    const { txn_recovery: _new, ...older } = wire.done!;
    // As proto-loader decodes it (the oneofs' names set), without the field an older member does not know.
    const decoded = { ...wire, result: 'done' as const, done: { ...older, payload: 'response' as const, response: { response: 'response_txn' as const, ...older.response } } };
    expect(shardKvAnswerFromWire(decoded)).toMatchObject({ payload: { kind: 'response', response: { type: 'txn', txn: { succeeded: true } } } });
  });

  it('refuses malformed answers (unsafe integers, a status that is not an error, a missing payload)', () => {
    const done = (d: Partial<NonNullable<ShardKvResponseWire['done']>>): ShardKvResponseWire => ({ result: 'done', done: { revision: '1', raft_term: '1', payload: 'nothing', nothing: {}, ...d }, leader_id: '0' });
    expect(() => shardKvAnswerFromWire(done({ revision: '9007199254740993' }))).toThrow(/safe integer/);
    expect(() => shardKvAnswerFromWire(done({ payload: 'range', range: null }))).toThrow(/missing/);
    expect(() => shardKvAnswerFromWire(done({ payload: undefined }))).toThrow(/payload/);
    expect(() => shardKvAnswerFromWire({ result: 'error', error: { code: 0, message: 'ok?' }, leader_id: '0' })).toThrow(/not a gRPC error/);
    expect(() => shardKvAnswerFromWire({ result: 'error', error: { code: 17, message: '' }, leader_id: '0' })).toThrow(/not a gRPC error/);
    expect(() => shardKvAnswerFromWire({ leader_id: '0' })).toThrow(/known result/);
    const recovery = (state: unknown): ShardKvResponseWire => ({ result: 'done', done: { revision: '1', raft_term: '1', payload: 'response', response: { response: 'response_txn', response_txn: { succeeded: false, responses: [] } }, txn_recovery: { state: state as 'ABORTED', failure_branch: false } }, leader_id: '0' });
    expect(() => shardKvAnswerFromWire(recovery('DECIDED'))).toThrow(/not a recovery state/);
    expect(shardKvAnswerFromWire(recovery('PREPARED'))).toMatchObject({ payload: { kind: 'recovery', recovery: { state: 'prepared', failureBranch: false } } });
    expect(() => shardKvAnswerFromWire({ result: 'done', done: { revision: '1', raft_term: '1', payload: 'response', response: { response: undefined } }, leader_id: '0' })).toThrow(/known response/);
  });

  it('ends in time: a down host is unreachable at once, a silent one unreachable after the connect wait, a stuck one answers etcd\'s timeout at the deadline', async () => {
    const request = (ms: number): ShardKvRequest => ({ groupId: 5, deadlineMs: Date.now() + ms, op: { kind: 'lease-keys', leaseId: '1' } });
    let t = Date.now();
    expect((await shardKvOnPeer(channels, 2, request(3_000))).kind).toBe('unreachable');
    expect(Date.now() - t).toBeLessThan(1_000);

    t = Date.now();
    expect((await shardKvOnPeer(channels, 4, request(3_000))).kind).toBe('unreachable');
    expect(Date.now() - t).toBeLessThan(1_000 + 500);

    serve = () => never();
    t = Date.now();
    const stuck = await shardKvOnPeer(channels, 1, request(400));
    // The host's own timeout answer and the call's gRPC deadline fall at the same instant: either comes
    // first, and a forwarder turns both into etcd's "request timed out" (judgeAttempt).
    if (stuck.kind === 'lost') expect(stuck.deadline).toBe(true);
    else expect(stuck).toEqual({ kind: 'error', code: ETCD_ERRORS.TIMEOUT.code, message: ETCD_ERRORS.TIMEOUT.message, leaderId: 3 });
    expect(Date.now() - t).toBeLessThan(400 + LATE_MS);

    // The caller stops waiting before the host's deadline: lost (sent, answer unknown).
    t = Date.now();
    const lost = await shardKvOnPeer(channels, 1, request(5_000), Date.now() + 300);
    expect(lost).toMatchObject({ kind: 'lost', deadline: true });
    expect(Date.now() - t).toBeLessThan(300 + LATE_MS);

    // A host that throws answers INTERNAL with its message, never hangs.
    serve = () => Promise.reject(new Error('boom'));
    expect(await shardKvOnPeer(channels, 1, request(2_000))).toMatchObject({ kind: 'error', code: grpc.status.INTERNAL, message: 'boom' });
  });
});

describe('ShardKv answers over what a member sends a peer', () => {
  it('answer grpc-go\'s ResourceExhausted instead of a message that cannot travel', async () => {
    const port = await freePort();
    const server = new grpc.Server();
    const big: ShardKvAnswer = { kind: 'done', revision: 3, raftTerm: 1, payload: { kind: 'range', result: { kvs: [kv('k', Buffer.alloc(5_000, 1), 2)], more: false, count: 1 } }, leaderId: 0 };
    server.addService(shardPeerServiceDefinition(), shardPeerServiceImpl({ oracle: () => null, rangeAt: () => never(), leaderOf: () => 0, shardKv: () => Promise.resolve(big), maxAnswerBytes: 4_096 }));
    await new Promise<void>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())));
    const channels = new ShardPeerChannels({ peerAddress: () => `127.0.0.1:${port}` });
    try {
      const outcome = await shardKvOnPeer(channels, 1, { groupId: 2, deadlineMs: Date.now() + 3_000, op: { kind: 'range', op: rangeOf(Buffer.from('k')), serializable: true } });
      expect(outcome).toMatchObject({ kind: 'error', code: grpc.status.RESOURCE_EXHAUSTED });
      expect(outcome.kind === 'error' && outcome.message).toMatch(/^grpc: trying to send message larger than max \(\d+ vs\. 4096\)$/);
    } finally {
      channels.close();
      server.forceShutdown();
    }
  });
});

describe('forwarding decisions', () => {
  it('orders candidates: the preferred first, then those up, then those recently down; never this member', () => {
    const down = new Map<NodeId, number>([[2, 1_500], [4, 500]]);
    expect(candidateOrder([1, 2, 3, 4, 5], 1, 5, down, 1_000)).toEqual([5, 3, 4, 2]);
    expect(candidateOrder([1, 2, 3, 4, 5], 1, 2, down, 1_000)).toEqual([3, 4, 5, 2]);
    expect(candidateOrder([3, 3, 0, 2], 1, undefined, down, 2_000)).toEqual([3, 2]);
  });

  it('asks the next member only when the last certainly did not execute a write', () => {
    const lost: ShardKvOutcome = { kind: 'lost', deadline: false, reason: 'reset' };
    expect(judgeAttempt(lost, 'write')).toEqual({ kind: 'fail', error: ETCD_ERRORS.TIMEOUT_DUE_TO_CONNECTION_LOST });
    expect(judgeAttempt({ ...lost, deadline: true }, 'write')).toEqual({ kind: 'fail', error: ETCD_ERRORS.TIMEOUT });
    expect(judgeAttempt(lost, 'range')).toEqual({ kind: 'next', down: true });
    expect(judgeAttempt({ ...lost, deadline: true }, 'read-txn')).toEqual({ kind: 'next', down: false });
    expect(judgeAttempt({ kind: 'unreachable', reason: 'down' }, 'write')).toEqual({ kind: 'next', down: true });
    expect(judgeAttempt({ kind: 'not-hosted', leaderId: 0 }, 'write')).toEqual({ kind: 'next', down: false });
    expect(judgeAttempt({ kind: 'error', code: 14, message: 'etcdserver: no leader', leaderId: 0 }, 'write')).toEqual({ kind: 'answer' });
  });

  const write: ShardKvRequest['op'] = { kind: 'write', entry: new Uint8Array([1]), internal: false };
  const read: ShardKvRequest['op'] = { kind: 'range', op: rangeOf(Buffer.from('k')), serializable: false };
  const ok = (leaderId: NodeId): ShardKvAnswer => ({ kind: 'done', revision: 9, raftTerm: 2, payload: { kind: 'nothing' }, leaderId });

  /** A forwarder over scripted members: each member's answers, in turn (the last repeats). */
  function scripted(script: Record<number, ShardKvOutcome[]>, candidates: NodeId[] = [1, 2, 3, 4]): { f: ShardForwarder; asked: NodeId[] } {
    const asked: NodeId[] = [];
    const f = new ShardForwarder({
      selfId: 1,
      candidates: () => candidates,
      send: (to) => {
        asked.push(to);
        const list = script[to] ?? [{ kind: 'unreachable', reason: 'no such member' }];
        return Promise.resolve(list.length > 1 ? list.shift()! : list[0]);
      },
    });
    return { f, asked };
  }

  it('never sends a write twice: an answer lost after sending fails with etcd\'s connection-lost timeout', async () => {
    const { f, asked } = scripted({ 2: [{ kind: 'lost', deadline: false, reason: 'reset' }], 3: [ok(3)] });
    await expect(f.forward({ groupId: 5, deadlineMs: Date.now() + 2_000, op: write })).rejects.toMatchObject({ code: ETCD_ERRORS.TIMEOUT_DUE_TO_CONNECTION_LOST.code, details: ETCD_ERRORS.TIMEOUT_DUE_TO_CONNECTION_LOST.message });
    expect(asked).toEqual([2]);
  });

  it('a read lost on one member is asked of the next; unreachable members are skipped and asked last afterwards', async () => {
    const { f, asked } = scripted({ 2: [{ kind: 'lost', deadline: true, reason: 'slow' }], 3: [{ kind: 'unreachable', reason: 'down' }], 4: [ok(0)] });
    expect(await f.forward({ groupId: 5, deadlineMs: Date.now() + 2_000, op: read })).toEqual(ok(0));
    expect(asked).toEqual([2, 3, 4]);
    // 4 answered: asked first now; 2 and 3 were down: asked after it.
    asked.length = 0;
    expect(await f.forward({ groupId: 5, deadlineMs: Date.now() + 2_000, op: write })).toEqual(ok(0));
    expect(asked).toEqual([4]);
  });

  it('follows a not-hosted answer to the next member and a named leader first, and remembers the leader', async () => {
    const { f, asked } = scripted({ 2: [{ kind: 'not-hosted', leaderId: 4 }], 3: [ok(3)], 4: [ok(4)] });
    expect(await f.forward({ groupId: 5, deadlineMs: Date.now() + 2_000, op: write })).toEqual(ok(4));
    expect(asked).toEqual([2, 4]);
    asked.length = 0;
    await f.forward({ groupId: 5, deadlineMs: Date.now() + 2_000, op: write });
    expect(asked).toEqual([4]);
    // Another group has its own preference.
    asked.length = 0;
    await f.forward({ groupId: 6, deadlineMs: Date.now() + 2_000, op: write });
    expect(asked[0]).toBe(2);
  });

  it('passes the host\'s etcd error through unchanged', async () => {
    const { f } = scripted({ 2: [{ kind: 'error', code: ETCD_ERRORS.LEASE_NOT_FOUND.code, message: ETCD_ERRORS.LEASE_NOT_FOUND.message, leaderId: 0 }] });
    await expect(f.forward({ groupId: 5, deadlineMs: Date.now() + 2_000, op: write })).rejects.toMatchObject({ code: ETCD_ERRORS.LEASE_NOT_FOUND.code, details: ETCD_ERRORS.LEASE_NOT_FOUND.message });
  });

  it('when no member serves the shard, gives up at the deadline with etcd\'s timeout', async () => {
    const { f, asked } = scripted({ 2: [{ kind: 'not-hosted', leaderId: 0 }], 3: [{ kind: 'not-hosted', leaderId: 0 }], 4: [{ kind: 'unreachable', reason: 'down' }] });
    const t = Date.now();
    await expect(f.forward({ groupId: 5, deadlineMs: Date.now() + 300, op: write })).rejects.toMatchObject({ code: ETCD_ERRORS.TIMEOUT.code, details: ETCD_ERRORS.TIMEOUT.message });
    expect(Date.now() - t).toBeGreaterThanOrEqual(290);
    expect(Date.now() - t).toBeLessThan(300 + LATE_MS);
    expect(asked.length).toBeGreaterThan(3); // asked again, round after round
  });

  it('a read attempt waits at most half the time left (at least a second), a write the whole of it', async () => {
    const deadlines: Array<{ op: string; callMs: number; requestMs: number }> = [];
    const t0 = Date.now();
    const f = new ShardForwarder({
      selfId: 1,
      candidates: () => [2],
      now: () => t0,
      send: (_to, r, call) => {
        deadlines.push({ op: r.op.kind, callMs: call - t0, requestMs: r.deadlineMs - t0 });
        return Promise.resolve(ok(0));
      },
    });
    await f.forward({ groupId: 5, deadlineMs: t0 + 6_000, op: read });
    await f.forward({ groupId: 5, deadlineMs: t0 + 1_500, op: read });
    await f.forward({ groupId: 5, deadlineMs: t0 + 6_000, op: write });
    expect(deadlines).toEqual([
      { op: 'range', callMs: 3_000, requestMs: 6_000 },
      { op: 'range', callMs: 1_000, requestMs: 1_500 },
      { op: 'write', callMs: 6_000, requestMs: 6_000 },
    ]);
    expect(DOWN_FOR_MS).toBeGreaterThan(0);
  });
});

// Checks the peer Stream RPC between a PeerTransport (frame-codec.ts frames) and a peer that still
// speaks through proto-loader (the previous codec), in both directions, over real loopback gRPC:
// members of different versions must keep exchanging Raft messages during a rolling upgrade.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../raft/types.ts';
import { freePort } from '../../test/support/ports.ts';
import type { InboundMessage, PeerTransport, StreamCallHandler } from './peer-transport.ts';
import { testPeerTransport } from './test-peer-transport.ts';
import { messageFromWire, messageToWire, type WireBatch } from './wire.ts';

const PROTO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'proto');
const CLUSTER = 0x1234_5678_9abc;
const NEW_MEMBER = 0x1f_ffff_ffff_fff0;
const OLD_MEMBER = 0x0a_bcde_f012_3456;

function oldPeerService(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync('synod/transport.proto', { keepCase: true, longs: Number, enums: String, bytes: Buffer, defaults: true, includeDirs: [PROTO_ROOT] });
  return (grpc.loadPackageDefinition(def) as unknown as { synod: { transport: { Peer: grpc.ServiceClientConstructor } } }).synod.transport.Peer;
}

function append(from: number, to: number): Message {
  return {
    type: 'app',
    from,
    to,
    term: 3,
    logTerm: 3,
    index: 41_000,
    entries: [
      { term: 3, index: 41_001, type: 'normal', data: Buffer.alloc(300, 7) },
      { term: 3, index: 41_002, type: 'confChange', data: Buffer.from('cc') },
    ],
    commit: 40_999,
    reject: false,
    rejectHint: 0,
    context: Buffer.from([9, 9]),
  };
}

function until<T>(check: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const poll = (): void => {
      const value = check();
      if (value !== undefined) resolve(value);
      else if (Date.now() - started > timeoutMs) reject(new Error('timed out'));
      else setTimeout(poll, 10);
    };
    poll();
  });
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A PeerTransport for NEW_MEMBER (or `memberId`) on a free port (or `listenAddress`), with no snapshots and no removals. */
function newMemberTransport(peers: Map<number, string>, onMessages: (from: number, messages: InboundMessage[]) => void, memberId = NEW_MEMBER, listenAddress = '127.0.0.1:0'): PeerTransport {
  return testPeerTransport({ clusterId: CLUSTER, memberId, listenAddress, peers, onMessages });
}

describe('peer Stream between this version and a proto-loader peer', () => {
  it('exchanges Raft messages in both directions', async () => {
    // The old-version member: a proto-loader server collecting what the new member sends.
    const OldPeer = oldPeerService();
    const oldReceived: WireBatch[] = [];
    const oldServer = new grpc.Server();
    oldServer.addService(OldPeer.service, {
      Stream: (call: grpc.ServerDuplexStream<WireBatch, unknown>) => {
        call.write({ cluster_id: CLUSTER, member_id: OLD_MEMBER });
        call.on('data', (b: WireBatch) => oldReceived.push(b));
        call.on('end', () => call.end());
      },
      Snapshot: () => {},
      ClusterInfo: () => {},
    });
    const oldPort = await new Promise<number>((resolve, reject) =>
      oldServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    cleanups.push(() => new Promise<void>((resolve) => oldServer.tryShutdown(() => resolve())));

    // The new member.
    const received: Array<{ from: number; messages: InboundMessage[] }> = [];
    const transport = newMemberTransport(new Map([[OLD_MEMBER, `127.0.0.1:${oldPort}`]]), (from, messages) => received.push({ from, messages }));
    await transport.start();
    cleanups.push(() => transport.stop());

    // New -> old: the proto-loader peer decodes the codec's frame to the same messages.
    await until(() => (transport.isConnected(OLD_MEMBER) ? true : undefined));
    const sent = append(NEW_MEMBER, OLD_MEMBER);
    const resp: Message = { ...sent, type: 'appResp', entries: [], index: 41_002, reject: true, rejectHint: 40_000, context: Buffer.alloc(0) };
    transport.send(0, sent);
    transport.send(5, resp);
    transport.flush();
    const batch = await until(() => oldReceived[0]);
    expect(Number(batch.cluster_id)).toBe(CLUSTER);
    expect(Number(batch.from_member)).toBe(NEW_MEMBER);
    expect(Number(batch.to_member)).toBe(OLD_MEMBER);
    expect(batch.envelopes.map((e) => e.group_id)).toEqual([0, 5]);
    expect(messageFromWire(batch.envelopes[0].message)).toEqual(sent);
    expect(messageFromWire(batch.envelopes[1].message)).toEqual(resp);

    // Old -> new: a proto-loader client's frame reaches onMessages as Raft messages.
    const client = new OldPeer(`127.0.0.1:${transport.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const call = (client as unknown as { Stream(): grpc.ClientDuplexStream<WireBatch, { cluster_id: number; member_id: number }> }).Stream();
    const hello = new Promise<{ cluster_id: number; member_id: number; unix_ms?: number | string }>((resolve) => call.once('data', resolve));
    call.on('error', () => {});
    cleanups.push(() => void call.end());
    const back = append(OLD_MEMBER, NEW_MEMBER);
    call.write({ cluster_id: CLUSTER, from_member: OLD_MEMBER, to_member: NEW_MEMBER, envelopes: [{ group_id: 2, message: messageToWire(back) }] });
    // proto-loader fills the absent apply_rules (this transport was given none) with its default.
    const said = await hello;
    expect(said).toEqual({ cluster_id: CLUSTER, member_id: NEW_MEMBER, stream_services: [], apply_rules: 0, unix_ms: said.unix_ms });
    // Its wall clock as it answered (what a peer reads times it wrote with: docs/architecture.md, clocks).
    expect(Math.abs(Number(said.unix_ms) - Date.now())).toBeLessThan(10_000);
    // The old peer's hello named no services: nothing is ever called on its stream.
    expect(transport.streamCallsTo(OLD_MEMBER, 'test.Echo')).toBe(false);
    expect(await transport.callOnStream(OLD_MEMBER, '/test.Echo/Upper', Buffer.from('x'), Date.now() + 1_000)).toEqual({ kind: 'not-sent', reason: `member ${OLD_MEMBER} does not serve /test.Echo/Upper on its stream` });
    const got = await until(() => received[0]);
    expect(got.from).toBe(OLD_MEMBER);
    expect(got.messages).toEqual([{ groupId: 2, message: back }]);
  });

  it('says its hello again every helloIntervalMs, and a dialler follows a peer clock stepped since the stream opened', async () => {
    // Acceptor: a PeerTransport repeating its hello every 100 ms, read by a proto-loader client.
    const transport = testPeerTransport({ clusterId: CLUSTER, memberId: NEW_MEMBER, listenAddress: '127.0.0.1:0', peers: new Map(), onMessages: () => {}, helloIntervalMs: 100 });
    await transport.start();
    cleanups.push(() => transport.stop());
    const OldPeer = oldPeerService();
    const client = new OldPeer(`127.0.0.1:${transport.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const call = (client as unknown as { Stream(): grpc.ClientDuplexStream<WireBatch, { member_id: number; unix_ms?: number | string }> }).Stream();
    const hellos: Array<{ member_id: number; unix_ms?: number | string }> = [];
    call.on('data', (h: { member_id: number; unix_ms?: number | string }) => hellos.push(h));
    call.on('error', () => {});
    cleanups.push(() => void call.end());
    call.write({ cluster_id: CLUSTER, from_member: OLD_MEMBER, to_member: NEW_MEMBER, envelopes: [] });
    await until(() => (hellos.length >= 3 ? true : undefined));
    expect(hellos.every((h) => Number(h.member_id) === NEW_MEMBER)).toBe(true);
    expect(Number(hellos[2].unix_ms)).toBeGreaterThan(Number(hellos[0].unix_ms));

    // Dialler: a peer whose clock steps a minute ahead after its first hello is read a minute ahead.
    let aheadMs = 0;
    const peerServer = new grpc.Server();
    peerServer.addService(OldPeer.service, {
      Stream: (inbound: grpc.ServerDuplexStream<WireBatch, unknown>) => {
        const say = (): boolean => inbound.write({ cluster_id: CLUSTER, member_id: OLD_MEMBER, unix_ms: Date.now() + aheadMs });
        say();
        const timer = setInterval(say, 50);
        timer.unref();
        const quiet = (): void => clearInterval(timer);
        inbound.on('data', () => {});
        inbound.on('error', quiet);
        inbound.on('cancelled', quiet);
        inbound.on('close', quiet);
        inbound.on('end', () => {
          quiet();
          inbound.end();
        });
      },
      Snapshot: () => {},
      ClusterInfo: () => {},
    });
    const peerPort = await new Promise<number>((resolve, reject) =>
      peerServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
    );
    cleanups.push(() => new Promise<void>((resolve) => peerServer.tryShutdown(() => resolve())));
    const dialler = newMemberTransport(new Map([[OLD_MEMBER, `127.0.0.1:${peerPort}`]]), () => {});
    await dialler.start();
    cleanups.push(() => dialler.stop());
    await until(() => (dialler.isConnected(OLD_MEMBER) ? true : undefined));
    expect(Math.abs(dialler.peerClockAheadMs(OLD_MEMBER))).toBeLessThan(1_000);
    aheadMs = 60_000;
    await until(() => (Math.abs(dialler.peerClockAheadMs(OLD_MEMBER) - 60_000) < 1_000 ? true : undefined));
  });

  it('closes a stream whose frame does not decode, and the sender sees an error', async () => {
    const transport = newMemberTransport(new Map(), () => {
      throw new Error('nothing should arrive');
    });
    await transport.start();
    cleanups.push(() => transport.stop());
    // A raw client sending bytes that are not a Batch (wire type 3).
    const RawClient = grpc.makeGenericClientConstructor({}, 'Raw');
    const client = new RawClient(`127.0.0.1:${transport.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const call = client.makeBidiStreamRequest('/synod.transport.Peer/Stream', (b: Buffer) => b, (b: Buffer) => b);
    const failed = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    call.on('data', () => {});
    call.write(Buffer.from([0x0b]));
    const err = await failed;
    expect(err.code).toBe(grpc.status.INTERNAL);
  });

  it('dials a peer again at once when that peer dials in (a restarted member hears its leader without waiting out a backoff)', async () => {
    // A port for the peer that is down at first.
    const peerPort = await freePort();

    const leader = newMemberTransport(new Map([[OLD_MEMBER, `127.0.0.1:${peerPort}`]]), () => {});
    await leader.start();
    cleanups.push(() => leader.stop());
    // Its dials fail until the backoff reaches its cap (50 ms doubling to 1 s): a redial timer is then
    // pending nearly all the time.
    await new Promise((r) => setTimeout(r, 2_500));
    expect(leader.isConnected(OLD_MEMBER)).toBe(false);

    // The peer comes up and dials in. If it does so while the leader's own dial is under way (not while
    // its redial timer waits), that dial connects and no early redial is needed: under a loaded `make
    // test` this happened once. So the peer goes down and comes back again, up to three times, until
    // one return meets a waiting timer.
    for (let attempt = 1; attempt <= 3 && leader.earlyRedials === 0; attempt++) {
      const restarted = newMemberTransport(new Map([[NEW_MEMBER, `127.0.0.1:${leader.port}`]]), () => {}, OLD_MEMBER, `127.0.0.1:${peerPort}`);
      await restarted.start();
      await until(() => (leader.isConnected(OLD_MEMBER) ? true : undefined));
      if (leader.earlyRedials > 0 || attempt === 3) {
        cleanups.push(() => restarted.stop());
        break;
      }
      await restarted.stop();
      await until(() => (leader.isConnected(OLD_MEMBER) ? undefined : true));
      await new Promise((r) => setTimeout(r, 2_500)); // back to a capped backoff
    }
    expect(leader.earlyRedials).toBe(1);
  });
});

describe('calls on the peer streams', () => {
  const A = 0x0a;
  const B = 0x0b;

  /** Two members, each dialling the other; B serves `test.Echo` with `handler`. */
  async function pair(handler: StreamCallHandler, onB: (from: number, messages: InboundMessage[]) => void = () => {}): Promise<{ a: PeerTransport; b: PeerTransport; bPort: number }> {
    const aPort = await freePort();
    const bPort = await freePort();
    const a = newMemberTransport(new Map([[B, `127.0.0.1:${bPort}`]]), () => {}, A, `127.0.0.1:${aPort}`);
    const b = newMemberTransport(new Map([[A, `127.0.0.1:${aPort}`]]), onB, B, `127.0.0.1:${bPort}`);
    b.serveOnStream('test.Echo', handler);
    await a.start();
    await b.start();
    cleanups.push(() => a.stop());
    cleanups.push(() => b.stop());
    await until(() => (a.streamCallsTo(B, 'test.Echo') && b.isConnected(A) ? true : undefined));
    return { a, b, bPort };
  }

  const echo: StreamCallHandler = async (from, method, payload) => {
    if (method === '/test.Echo/Upper') return { payload: Buffer.from(`${from}:${payload.toString().toUpperCase()}`) };
    if (method === '/test.Echo/Fail') return { code: grpc.status.FAILED_PRECONDITION, details: 'refused on purpose' };
    if (method === '/test.Echo/Throw') throw new Error('a handler bug');
    return { code: grpc.status.UNIMPLEMENTED, details: `no ${method}` };
  };

  it('answers a call with its reply or its status, and calls leave with the turn\'s Raft messages', async () => {
    const inbound: InboundMessage[] = [];
    const { a, b } = await pair(echo, (_from, messages) => inbound.push(...messages));
    expect(a.streamCallsTo(B, 'other.Service')).toBe(false);
    expect(b.streamCallsTo(A, 'test.Echo')).toBe(false); // A serves nothing
    const deadline = Date.now() + 5_000;
    // A Raft message queued in the same turn as the call travels in the same frame.
    a.send(4, append(A, B));
    const [upper, failed, unknown] = await Promise.all([
      a.callOnStream(B, '/test.Echo/Upper', Buffer.from('abc'), deadline),
      a.callOnStream(B, '/test.Echo/Fail', Buffer.from(''), deadline),
      a.callOnStream(B, '/test.Echo/Nope', Buffer.from(''), deadline),
    ]);
    expect(upper).toEqual({ kind: 'reply', payload: Buffer.from(`${A}:ABC`) });
    expect(failed).toEqual({ kind: 'error', code: grpc.status.FAILED_PRECONDITION, details: 'refused on purpose' });
    expect(unknown).toEqual({ kind: 'error', code: grpc.status.UNIMPLEMENTED, details: 'no /test.Echo/Nope' });
    expect(a.streamCallStats.framesSent).toBe(1); // the message and the three calls: one frame
    // A handler that fails instead of answering a status: the caller hears INTERNAL, the member goes on.
    expect(await a.callOnStream(B, '/test.Echo/Throw', Buffer.from(''), deadline)).toEqual({ kind: 'error', code: grpc.status.INTERNAL, details: 'a handler bug' });
    expect(inbound).toEqual([{ groupId: 4, message: append(A, B) }]);
    // A service B does not serve is answered UNIMPLEMENTED by the transport itself.
    expect(await a.callOnStream(B, '/other.Service/X', Buffer.from(''), deadline)).toMatchObject({ kind: 'not-sent' });
    expect(a.streamCallStats).toMatchObject({ sent: 4, lost: 0, timedOut: 0 });
    expect(b.streamCallStats.served).toBe(4);
    // A call too large for a stream frame is never sent (the caller uses a unary call instead).
    expect(await a.callOnStream(B, '/test.Echo/Upper', Buffer.alloc(a.streamPayloadLimitBytes + 1), deadline)).toMatchObject({ kind: 'not-sent' });
  });

  it('calls by stream only once the peer\'s own stream back is up (it carries the reply)', async () => {
    const aPort = await freePort();
    const bPort = await freePort();
    const a = newMemberTransport(new Map([[B, `127.0.0.1:${bPort}`]]), () => {}, A, `127.0.0.1:${aPort}`);
    // B does not know A's address yet (a member that just joined, say): it cannot dial back.
    const b = newMemberTransport(new Map(), () => {}, B, `127.0.0.1:${bPort}`);
    b.serveOnStream('test.Echo', echo);
    await a.start();
    await b.start();
    cleanups.push(() => a.stop());
    cleanups.push(() => b.stop());
    await until(() => (a.isConnected(B) ? true : undefined));
    await new Promise((r) => setTimeout(r, 200));
    expect(a.streamCallsTo(B, 'test.Echo')).toBe(false);
    b.setPeer(A, `127.0.0.1:${aPort}`);
    await until(() => (a.streamCallsTo(B, 'test.Echo') ? true : undefined));
    expect(await a.callOnStream(B, '/test.Echo/Upper', Buffer.from('back'), Date.now() + 5_000)).toEqual({ kind: 'reply', payload: Buffer.from(`${A}:BACK`) });
    // B gone: its stream back is gone too, and A calls by stream no more.
    await b.stop();
    await until(() => (a.streamCallsTo(B, 'test.Echo') ? undefined : true));
  });

  it('ends a call by its deadline when no reply comes, and as lost when its stream breaks', async () => {
    const never: StreamCallHandler = () => new Promise(() => {});
    const { a, b } = await pair(never);
    const started = Date.now();
    expect(await a.callOnStream(B, '/test.Echo/Upper', Buffer.from('x'), Date.now() + 300)).toEqual({ kind: 'deadline' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(a.streamCallStats.timedOut).toBe(1);
    const pending = a.callOnStream(B, '/test.Echo/Upper', Buffer.from('y'), Date.now() + 30_000);
    await new Promise((r) => setTimeout(r, 100)); // sent
    await b.stop();
    const lost = await pending;
    expect(lost.kind).toBe('lost');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(a.streamCallStats.lost).toBe(1);
    // With the stream down, a call is refused at once: it never leaves.
    await until(() => (a.isConnected(B) ? undefined : true));
    expect(await a.callOnStream(B, '/test.Echo/Upper', Buffer.from('z'), Date.now() + 1_000)).toMatchObject({ kind: 'not-sent' });
  });
});

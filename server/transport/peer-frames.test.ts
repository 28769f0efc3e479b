// The peer stream under a catch-up burst: one flush of far more than the gRPC message limit to one
// peer arrives whole and in order, in frames within the budget, on the stream that was already up (it
// never breaks and redials). And a peer whose stream is down is reported unreachable to Raft.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { newMessage } from '../raft/raft.ts';
import { DEFAULT_REPLICATION_LIMITS } from '../raft/replication-limits.ts';
import type { Message } from '../raft/types.ts';
import { PEER_GRPC_MAX_MESSAGE_BYTES, frameBudgetBytes } from './frame-budget.ts';
import { PeerTransport, type InboundMessage } from './peer-transport.ts';

const CLUSTER = 0x5e1f;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const MAX_FRAME_BYTES = frameBudgetBytes(DEFAULT_REPLICATION_LIMITS, 1.5 * 1024 * 1024);

function transport(memberId: number, peers: Map<number, string>, hooks: { onMessages?: (from: number, m: InboundMessage[]) => void; onUnreachable?: (id: number) => void } = {}): PeerTransport {
  const t = new PeerTransport({
    clusterId: CLUSTER,
    memberId,
    listenAddress: '127.0.0.1:0',
    peers,
    onMessages: hooks.onMessages ?? (() => {}),
    maxFrameBytes: MAX_FRAME_BYTES,
    ...(hooks.onUnreachable ? { onUnreachable: hooks.onUnreachable } : {}),
    logger: pino({ level: 'silent' }),
    snapshots: { dir: '/nonexistent', chunks: async function* () {}, report: () => {}, received: () => {} },
    clusterInfo: () => '{}',
    isRemoved: () => false,
    onRemoved: () => {},
  });
  cleanups.push(() => t.stop());
  return t;
}

async function until(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function bigAppend(index: number): Message {
  const m = newMessage('app', 1, 2, 3);
  m.index = index - 1;
  m.logTerm = 3;
  m.entries = [{ term: 3, index, type: 'normal', data: new Uint8Array(1024 * 1024).fill(index & 0xff) }];
  return m;
}

describe('peer stream frames', () => {
  it('carries 96 MiB flushed at once to one peer (over the 64 MiB gRPC limit) in order, without breaking the stream', async () => {
    const received: Message[] = [];
    const follower = transport(2, new Map(), { onMessages: (_from, ms) => received.push(...ms.map((m) => m.message)) });
    await follower.start();
    const leader = transport(1, new Map([[2, `127.0.0.1:${follower.port}`]]));
    await leader.start();
    await until(() => leader.isConnected(2), 5_000);
    const count = 96;
    expect(count * 1024 * 1024).toBeGreaterThan(PEER_GRPC_MAX_MESSAGE_BYTES);
    for (let i = 1; i <= count; i++) leader.send(0, bigAppend(i));
    leader.flush();
    await until(() => received.length === count, 30_000);
    expect(received.map((m) => m.entries[0].index)).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    expect(received.every((m) => m.entries[0].data.byteLength === 1024 * 1024 && m.entries[0].data[0] === (m.entries[0].index & 0xff))).toBe(true);
    expect(leader.isConnected(2)).toBe(true);
    expect(leader.droppedMessages()).toBe(0);
  }, 60_000);

  it('reports a peer whose stream is down as unreachable when messages to it are dropped', async () => {
    const unreachable: number[] = [];
    // Port 1 on loopback: nothing listens there, the stream never comes up.
    const leader = transport(1, new Map([[2, '127.0.0.1:1']]), { onUnreachable: (id) => unreachable.push(id) });
    await leader.start();
    leader.send(0, newMessage('heartbeat', 1, 2, 3));
    leader.flush();
    expect(unreachable).toEqual([2]);
    expect(leader.droppedMessages()).toBe(1);
  });
});

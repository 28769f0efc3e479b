// Quiescence in the pure Raft core, message by message: a busy group's messages are exactly those of
// a group without quiescence (what S = 1 puts on the wire does not change while it works), an idle
// group quiesces in one heartbeat, and each waking rule holds.
import { describe, expect, it } from 'vitest';
import { RawNode } from './raw-node.ts';
import type { Message, NodeId, RaftConfig } from './types.ts';

const IDS = [1, 2, 3];

function config(id: NodeId, quiesce: boolean): RaftConfig {
  return { id, voters: IDS, electionTimeoutTicks: 10, heartbeatTicks: 1, preVote: true, checkQuorum: true, maxInflightMsgs: 64, maxSizePerMsgBytes: 1 << 20, randomSeed: 99, quiesce };
}

/** Three RawNodes with instant delivery; every message sent is recorded. */
class Trio {
  readonly nodes = new Map<NodeId, RawNode>();
  readonly sent: Message[] = [];
  /** Messages matching this are dropped (still recorded as sent). */
  drop: (m: Message) => boolean = () => false;
  constructor(quiesce: boolean) {
    for (const id of IDS) this.nodes.set(id, new RawNode(config(id, quiesce)));
  }
  node(id: NodeId): RawNode {
    return this.nodes.get(id) as RawNode;
  }
  settle(): void {
    for (let round = 0; round < 1000; round++) {
      const inFlight: Message[] = [];
      for (const n of this.nodes.values()) {
        while (n.hasReady()) {
          const rd = n.ready();
          inFlight.push(...rd.messages);
          n.advance(rd);
        }
      }
      if (inFlight.length === 0) return;
      for (const m of inFlight) {
        this.sent.push(m);
        if (!this.drop(m)) this.node(m.to).step(m);
      }
    }
    throw new Error('did not settle');
  }
  tickAll(): void {
    for (const n of this.nodes.values()) n.tick();
    this.settle();
  }
  elect(id: NodeId): void {
    this.node(id).campaign();
    this.settle();
    expect(this.node(id).role()).toBe('leader');
  }
}

const wireView = (m: Message): string => JSON.stringify({ ...m, context: [...m.context], entries: m.entries.map((e) => ({ ...e, data: [...e.data] })) });

describe('raft quiescence', () => {
  it('a busy group sends exactly the messages it sends without quiescence', () => {
    const runs = [false, true].map((quiesce) => {
      const t = new Trio(quiesce);
      t.elect(1);
      // Busy: at every heartbeat tick the leader has a proposal in flight (a proposal made at a
      // follower reaches it only after the tick: the leader idles then, and quiescing is right).
      for (let i = 0; i < 200; i++) {
        t.node(1).propose(new Uint8Array([i & 0xff, 7]));
        if (i % 5 === 0) t.node(2).readIndex(new Uint8Array([0, i & 0xff]));
        t.tickAll();
      }
      return t.sent.map(wireView);
    });
    expect(runs[1].length).toBeGreaterThan(1000);
    expect(runs[1]).toEqual(runs[0]);
  });

  it('an idle group quiesces at its next heartbeat and then sends nothing', () => {
    const t = new Trio(true);
    t.elect(1);
    t.node(1).propose(new Uint8Array([1]));
    t.settle();
    t.tickAll();
    for (const n of t.nodes.values()) expect(n.isQuiesced()).toBe(true);
    const quiesceMsgs = t.sent.filter((m) => m.quiesce === true);
    expect(quiesceMsgs.map((m) => m.type).sort()).toEqual(['heartbeat', 'heartbeat', 'heartbeatResp', 'heartbeatResp']);
    const before = t.sent.length;
    for (let i = 0; i < 100; i++) t.tickAll();
    expect(t.sent.length).toBe(before);
  });

  it('a proposal, a read at a follower, and a message from another term each wake the group', () => {
    const t = new Trio(true);
    t.elect(1);
    t.tickAll();
    expect(t.node(1).isQuiesced()).toBe(true);
    t.node(1).propose(new Uint8Array([2]));
    expect(t.node(1).isQuiesced()).toBe(false);
    t.settle();
    t.tickAll();
    for (const n of t.nodes.values()) expect(n.isQuiesced()).toBe(true);
    // A read at a follower: the follower wakes, forwards it, the leader wakes and answers.
    t.node(3).readIndex(new Uint8Array([9]));
    expect(t.node(3).isQuiesced()).toBe(false);
    t.settle();
    expect(t.node(1).isQuiesced()).toBe(false);
    t.tickAll();
    t.tickAll();
    for (const n of t.nodes.values()) expect(n.isQuiesced()).toBe(true);
    // A campaign (a message of a higher term) wakes everyone it reaches; a new leader is elected.
    t.node(2).campaign();
    t.settle();
    expect(t.node(1).isQuiesced()).toBe(false);
    expect(t.node(3).isQuiesced()).toBe(false);
    for (let i = 0; i < 50 && ![1, 2, 3].some((id) => t.node(id).role() === 'leader'); i++) t.tickAll();
    expect([1, 2, 3].filter((id) => t.node(id).role() === 'leader').length).toBe(1);
  });

  it('a follower that missed the commit index learns it from the quiesce heartbeat, then quiesces', () => {
    const t = new Trio(true);
    t.elect(1);
    // Node 3 misses a commit index: the quiesce heartbeat brings it, so it still quiesces.
    t.drop = (m) => m.to === 3 && m.type === 'app' && m.entries.length === 0;
    t.node(1).propose(new Uint8Array([3]));
    t.settle();
    t.drop = () => false;
    t.tickAll();
    for (const n of t.nodes.values()) expect(n.isQuiesced()).toBe(true);
    expect(t.node(3).status().commit).toBe(t.node(1).status().commit);
  });

  it('a follower that stops hearing from its leader member wakes with a lapsed lease and campaigns within one election timeout', () => {
    const t = new Trio(true);
    t.elect(1);
    t.tickAll();
    for (const n of t.nodes.values()) expect(n.isQuiesced()).toBe(true);
    t.nodes.delete(1); // the leader's member dies
    t.drop = (m) => m.to === 1;
    for (const id of [2, 3]) t.node(id).wakeLeaderUnreachable();
    let ticks = 0;
    while (t.node(2).role() !== 'leader' && t.node(3).role() !== 'leader') {
      t.tickAll();
      ticks++;
      expect(ticks).toBeLessThanOrEqual(30);
    }
  });

  it('a quiesced leader never heartbeats, and asserts its invariants on every tick', () => {
    const t = new Trio(true);
    t.elect(1);
    t.tickAll();
    const leader = t.node(1);
    expect(leader.isQuiesced()).toBe(true);
    for (let i = 0; i < 30; i++) leader.tick();
    expect(leader.hasReady()).toBe(false);
  });
});

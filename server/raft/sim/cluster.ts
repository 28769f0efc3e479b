// In-process raft cluster simulator (in the spirit of etcd-io/raft's rafttest interaction
// environment). Owns N RawNodes, their simulated durable storage and state machines, and a
// faulty network; drives Ready handling exactly as the server must (persist, send, apply,
// advance) with optional crashes between those steps; reports every event to a SafetyChecker.
// Manual controls (tick/deliver/partition/crash/...) serve scripted tests; chaos.ts drives it
// randomly from a seed.

import type { Entry, Message, NodeId, RaftConfig, ReadState } from '../types.ts';
import { RawNode, ProposalDroppedError } from '../raw-node.ts';
import { Rng } from '../rng.ts';
import { SimNetwork, NO_FAULTS } from './network.ts';
import type { NetworkFaults } from './network.ts';
import { SimStorage } from './storage.ts';
import { SafetyChecker } from './checker.ts';

/** Where a node crashes while handling its next Ready. */
export type CrashPoint = 'beforePersist' | 'afterPersist' | 'afterSend';

export interface SimClusterOptions {
  nodeCount: number;
  seed: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  electionTimeoutTicks?: number;
  heartbeatTicks?: number;
  maxInflightMsgs?: number;
  maxSizePerMsgBytes?: number;
  faults?: NetworkFaults;
}

interface SimNode {
  id: NodeId;
  raw: RawNode | null;
  incarnation: number;
  storage: SimStorage;
  /** Durable state machine: applied entries in order (index i at position i - 1). */
  applied: Entry[];
  readStates: ReadState[];
  /** Crash at this point while handling the next Ready. */
  pendingCrash: CrashPoint | null;
}

export function encodeCtx(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, n);
  return b;
}

export function decodeCtx(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(0);
}

export class SimCluster {
  readonly ids: NodeId[];
  readonly rng: Rng;
  readonly network: SimNetwork;
  readonly checker = new SafetyChecker();
  /** Current simulated step (one step = at most one tick per node). */
  nowStep = 0;
  /** Rolling hash of every observable event: equal seeds must give equal traces. */
  traceHash = 0x811c9dc5;
  traceEvents = 0;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly baseConfig: Omit<RaftConfig, 'id' | 'randomSeed'>;
  private readonly seed: number;
  private nextReadCtx = 1;

  constructor(opts: SimClusterOptions) {
    this.seed = opts.seed;
    this.rng = new Rng(opts.seed);
    this.network = new SimNetwork(this.rng, opts.faults ?? NO_FAULTS);
    this.ids = Array.from({ length: opts.nodeCount }, (_, i) => i + 1);
    this.baseConfig = {
      voters: this.ids,
      electionTimeoutTicks: opts.electionTimeoutTicks ?? 10,
      heartbeatTicks: opts.heartbeatTicks ?? 1,
      preVote: opts.preVote ?? true,
      checkQuorum: opts.checkQuorum ?? true,
      maxInflightMsgs: opts.maxInflightMsgs ?? 4,
      maxSizePerMsgBytes: opts.maxSizePerMsgBytes ?? 64,
    };
    for (const id of this.ids) {
      const node: SimNode = { id, raw: null, incarnation: 0, storage: new SimStorage(), applied: [], readStates: [], pendingCrash: null };
      this.nodes.set(id, node);
      this.start(node);
    }
  }

  get electionTimeoutTicks(): number {
    return this.baseConfig.electionTimeoutTicks;
  }

  private start(node: SimNode): void {
    node.incarnation++;
    const config: RaftConfig = { ...this.baseConfig, id: node.id, randomSeed: this.seed * 7919 + node.incarnation };
    node.raw = node.incarnation === 1 ? new RawNode(config) : new RawNode(config, node.storage.toPersisted());
    node.pendingCrash = null;
  }

  private trace(a: number, b: number, c: number, d: number): void {
    let h = this.traceHash;
    for (const x of [a, b, c, d]) {
      h ^= x & 0xffffffff;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    this.traceHash = h;
    this.traceEvents++;
  }

  // ---- node access ----------------------------------------------------------------------

  private sim(id: NodeId): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  isUp(id: NodeId): boolean {
    return this.sim(id).raw !== null;
  }

  upIds(): NodeId[] {
    return this.ids.filter((id) => this.isUp(id));
  }

  node(id: NodeId): RawNode {
    const raw = this.sim(id).raw;
    if (raw === null) throw new Error(`node ${id} is down`);
    return raw;
  }

  storage(id: NodeId): SimStorage {
    return this.sim(id).storage;
  }

  /** Entries applied by node `id`'s state machine, in order. */
  applied(id: NodeId): readonly Entry[] {
    return this.sim(id).applied;
  }

  /** ReadStates delivered to node `id` so far (cleared by the caller if desired). */
  readStates(id: NodeId): ReadState[] {
    return this.sim(id).readStates;
  }

  /** The leader with the highest term among up nodes, or 0. */
  leader(): NodeId {
    let best: NodeId = 0;
    let bestTerm = -1;
    for (const id of this.upIds()) {
      const s = this.node(id).status();
      if (s.role === 'leader' && s.term > bestTerm) {
        best = id;
        bestTerm = s.term;
      }
    }
    return best;
  }

  // ---- client operations ----------------------------------------------------------------

  /** Proposes `data` at node `id`; returns false if it was dropped (no leader). */
  propose(id: NodeId, data: Uint8Array): boolean {
    try {
      this.node(id).propose(data);
      this.observe(id);
      return true;
    } catch (err) {
      if (err instanceof ProposalDroppedError) return false;
      throw err;
    }
  }

  /** Issues a ReadIndex at node `id`; returns its numeric context, or 0 if dropped. */
  readIndex(id: NodeId): number {
    const ctxId = this.nextReadCtx++;
    this.checker.onReadRequest(ctxId);
    try {
      this.node(id).readIndex(encodeCtx(ctxId));
      this.observe(id);
      return ctxId;
    } catch (err) {
      if (err instanceof ProposalDroppedError) return 0;
      throw err;
    }
  }

  campaign(id: NodeId): void {
    this.node(id).campaign();
    this.observe(id);
  }

  // ---- time, faults ---------------------------------------------------------------------

  tick(id: NodeId): void {
    this.node(id).tick();
    this.observe(id);
  }

  tickAll(): void {
    for (const id of this.upIds()) this.tick(id);
  }

  /** Crashes node `id` now: the in-memory RawNode (and anything not persisted) is lost. */
  crash(id: NodeId): void {
    const n = this.sim(id);
    n.raw = null;
    n.readStates = [];
    this.trace(9, id, this.nowStep, 0);
  }

  /** Arms a crash at a given point of the node's next Ready handling. */
  crashDuringNextReady(id: NodeId, point: CrashPoint): void {
    this.sim(id).pendingCrash = point;
  }

  /** Cancels all armed crashes (used when faults stop). */
  disarmCrashes(): void {
    for (const n of this.nodes.values()) n.pendingCrash = null;
  }

  restart(id: NodeId): void {
    const n = this.sim(id);
    if (n.raw !== null) throw new Error(`node ${id} is already up`);
    this.start(n);
    this.trace(10, id, this.nowStep, n.incarnation);
  }

  // ---- Ready handling and delivery ------------------------------------------------------

  /**
   * Handles node `id`'s pending Ready batches the way the server must:
   * 1. persist entries (truncating at entries[0].index) and hardState, synced;
   * 2. send messages; 3. apply committedEntries, record readStates; 4. advance(ready).
   */
  processReady(id: NodeId): void {
    const n = this.sim(id);
    for (;;) {
      const raw = n.raw;
      if (raw === null || !raw.hasReady()) return;
      const rd = raw.ready();
      if (n.pendingCrash === 'beforePersist') return this.crash(id);
      n.storage.append(rd.entries);
      if (rd.hardState !== null) n.storage.setHardState(rd.hardState);
      this.checker.onPersist(id, rd.entries, rd.hardState, n.storage.entries);
      if (n.pendingCrash === 'afterPersist') return this.crash(id);
      for (const m of rd.messages) this.network.send(m, this.nowStep);
      if (n.pendingCrash === 'afterSend') return this.crash(id);
      for (const e of rd.committedEntries) {
        this.checker.onApply(id, e);
        n.applied.push(e);
        n.storage.applied = e.index;
        this.trace(1, id, e.index, e.term);
      }
      for (const rs of rd.readStates) {
        this.checker.onReadState(id, decodeCtx(rs.requestCtx), rs);
        n.readStates.push(rs);
        this.trace(2, id, rs.index, 0);
      }
      raw.advance(rd);
      this.observe(id);
    }
  }

  processAllReady(): void {
    for (const id of this.ids) this.processReady(id);
  }

  private deliverOne(m: Message): void {
    const n = this.sim(m.to);
    if (n.raw === null) return; // destination down: message lost
    this.trace(3, m.from * 64 + m.to, m.term, m.index);
    n.raw.step(m);
    this.observe(m.to);
  }

  /** Delivers the messages due by now. */
  deliverDue(): void {
    for (const m of this.network.takeDue(this.nowStep)) this.deliverOne(m);
  }

  /**
   * Runs Ready handling and delivers every in-flight message (ignoring delays) until the
   * cluster is quiescent. Partitions, filters and drop rates still apply. No ticks.
   */
  stabilize(maxRounds = 10_000): void {
    for (let round = 0; round < maxRounds; round++) {
      this.processAllReady();
      const msgs = this.network.takeDue(Infinity);
      if (msgs.length === 0) return;
      for (const m of msgs) this.deliverOne(m);
    }
    throw new Error(`cluster did not stabilize within ${maxRounds} rounds`);
  }

  /** One simulated step: tick every up node, deliver due messages, handle Ready batches. */
  step(): void {
    this.nowStep++;
    this.tickAll();
    this.deliverDue();
    this.processAllReady();
  }

  /** Ticks + stabilizes until some node is leader (at most `maxTicks` ticks); returns it or 0. */
  electLeader(maxTicks = 20 * this.baseConfig.electionTimeoutTicks): NodeId {
    for (let i = 0; i < maxTicks; i++) {
      this.stabilize();
      const l = this.leader();
      if (l !== 0) return l;
      this.tickAll();
    }
    this.stabilize();
    return this.leader();
  }

  /** Runs the safety checker's per-node status checks (also done after every event). */
  observe(id: NodeId): void {
    const raw = this.sim(id).raw;
    if (raw === null) return;
    const s = raw.status();
    this.checker.onStatus(id, s.role, s.term, (i) => raw.termAt(i));
  }
}

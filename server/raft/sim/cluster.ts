// In-process raft cluster simulator (in the spirit of etcd-io/raft's rafttest interaction
// environment). Owns N RawNodes, their simulated durable storage and state machines, and a
// faulty network; drives Ready handling exactly as the server must (persist snapshot/entries/
// hardState, send, install snapshot, apply incl. conf changes, advance) with optional crashes
// between those steps; reports every event to a SafetyChecker. It also plays the operator and
// transport of membership and snapshots: a node is started once its addition is applied
// somewhere and retired for good once its removal is; snap messages carry the sender's stored
// snapshot data, and the sender hears reportSnapshot('finish' | 'failure').
// Manual controls (tick/deliver/partition/crash/...) serve scripted tests; chaos.ts drives it
// randomly from a seed.
// With `quiesce`, nodes quiesce idle groups and the cluster plays the member-level liveness too: every
// up node sends every other node a liveness ping per heartbeat interval through the same faulty
// network, each node remembers the step it last heard from each peer (pings or Raft messages), and
// quiesced nodes are woken by the rule in liveness-wake.ts, exactly as Member does.

import type { ConfChange, Entry, Message, NodeId, RaftConfig, ReadState, Ready, SnapshotMeta } from '../types.ts';
import { RawNode, ProposalDroppedError, ConfChangeInProgressError, decodeConfChange } from '../raw-node.ts';
import { Rng } from '../rng.ts';
import { SimNetwork, NO_FAULTS } from './network.ts';
import type { NetworkFaults } from './network.ts';
import { SimStorage } from './storage.ts';
import type { SimSnapshot } from './storage.ts';
import { SafetyChecker } from './checker.ts';
import { wakeIfPeersSilent } from '../liveness-wake.ts';

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
  maxInflightBytes?: number;
  faults?: NetworkFaults;
  /**
   * Model the member's asynchronous disk write (0..1, default 0): with this probability a Ready is
   * handled as Member.runTurn does it: a leader whose term and vote are already durable sends its
   * appends and heartbeats BEFORE persisting, and messages arriving meanwhile are stepped between
   * ready() and advance(); a crash 'beforePersist' then loses the Ready's writes after they were sent.
   */
  writeOverlapRate?: number;
  /** Retire (stop for good) a node once any node applies its removal, as etcd's peers do. Default true. */
  retireRemovedNodes?: boolean;
  /** Quiesce idle groups, with member-level liveness pings (see the header). Default false. */
  quiesce?: boolean;
  /**
   * TEST-ONLY deliberate bug, to prove the quiescence tests catch it: quiesced followers ignore the
   * member-level liveness (never woken when their leader's member goes silent).
   */
  unsafeIgnoreLivenessWhileQuiesced?: boolean;
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
  /** Only crash on a Ready that installs a snapshot. */
  pendingCrashOnSnapshot: boolean;
  /** Snapshot data received with snap messages (in memory, like a transport's temp files), by index. */
  receivedSnaps: Map<number, readonly Entry[]>;
  /** Quiescence: the step this node last heard from each peer (in this incarnation), and when it started. */
  heardAtStep: Map<NodeId, number>;
  startedAtStep: number;
  wasQuiesced: boolean;
}

/** What the simulated transport attaches to a snap message. */
interface SnapAttachment {
  data: readonly Entry[];
  senderIncarnation: number;
}

export type ConfChangeResult = 'proposed' | 'dropped' | 'inProgress';

export function encodeCtx(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, n);
  return b;
}

export function decodeCtx(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(0);
}

export class SimCluster {
  /** Live (not retired) nodes, up or down, in creation order. */
  readonly ids: NodeId[];
  /** Nodes retired after their removal was applied; they never come back. */
  readonly retired = new Set<NodeId>();
  private nextNodeId: number;
  private readonly snapData = new WeakMap<Message, SnapAttachment>();
  /** Membership side effects found while applying, run after the Ready loop. */
  private readonly pendingMembership: ConfChange[] = [];
  readonly rng: Rng;
  readonly network: SimNetwork;
  readonly checker: SafetyChecker;
  /** Current simulated step (one step = at most one tick per node). */
  nowStep = 0;
  /** Rolling hash of every observable event: equal seeds must give equal traces. */
  traceHash = 0x811c9dc5;
  traceEvents = 0;
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly baseConfig: Omit<RaftConfig, 'id' | 'randomSeed'>;
  private readonly seed: number;
  private readonly retireRemovedNodes: boolean;
  private readonly writeOverlapRate: number;
  private nextReadCtx = 1;
  private readonly quiesce: boolean;
  private readonly ignoreLiveness: boolean;
  /** Liveness pings in flight (not Raft messages: never stepped). */
  private readonly livenessPings = new WeakSet<Message>();
  /** Times a node entered quiescence, and woke through the liveness rule. */
  quiesceEvents = 0;
  livenessWakes = 0;
  livenessPingsSent = 0;

  constructor(opts: SimClusterOptions) {
    this.seed = opts.seed;
    this.retireRemovedNodes = opts.retireRemovedNodes ?? true;
    this.writeOverlapRate = opts.writeOverlapRate ?? 0;
    this.quiesce = opts.quiesce ?? false;
    this.ignoreLiveness = opts.unsafeIgnoreLivenessWhileQuiesced ?? false;
    this.rng = new Rng(opts.seed);
    this.network = new SimNetwork(this.rng, opts.faults ?? NO_FAULTS);
    this.ids = Array.from({ length: opts.nodeCount }, (_, i) => i + 1);
    this.nextNodeId = opts.nodeCount + 1;
    this.checker = new SafetyChecker(this.ids);
    this.network.onDrop = (m) => {
      if (m.type === 'snap') this.reportSnapshot(m, 'failure');
    };
    this.baseConfig = {
      voters: this.ids.slice(),
      electionTimeoutTicks: opts.electionTimeoutTicks ?? 10,
      heartbeatTicks: opts.heartbeatTicks ?? 1,
      preVote: opts.preVote ?? true,
      checkQuorum: opts.checkQuorum ?? true,
      maxInflightMsgs: opts.maxInflightMsgs ?? 4,
      maxSizePerMsgBytes: opts.maxSizePerMsgBytes ?? 64,
      maxInflightBytes: opts.maxInflightBytes ?? 0,
      ...(this.quiesce ? { quiesce: true } : {}),
    };
    for (const id of this.ids) this.createNode(id);
  }

  private createNode(id: NodeId): void {
    const node: SimNode = {
      id,
      raw: null,
      incarnation: 0,
      storage: new SimStorage(),
      applied: [],
      readStates: [],
      pendingCrash: null,
      pendingCrashOnSnapshot: false,
      receivedSnaps: new Map(),
      heardAtStep: new Map(),
      startedAtStep: 0,
      wasQuiesced: false,
    };
    this.nodes.set(id, node);
    this.start(node);
  }

  get electionTimeoutTicks(): number {
    return this.baseConfig.electionTimeoutTicks;
  }

  private start(node: SimNode): void {
    node.incarnation++;
    const config: RaftConfig = { ...this.baseConfig, id: node.id, randomSeed: this.seed * 7919 + node.id * 131 + node.incarnation };
    const st = node.storage;
    // A snapshot persisted but not yet installed (crash in between): install it first.
    if (st.snapshot !== null && st.snapshot.meta.index > st.applied) this.installSnapshot(node, st.snapshot);
    node.raw = node.incarnation === 1 ? new RawNode(config) : new RawNode(config, st.toPersisted());
    node.pendingCrash = null;
    node.receivedSnaps = new Map();
    node.heardAtStep = new Map();
    node.startedAtStep = this.nowStep;
    node.wasQuiesced = false;
  }

  private installSnapshot(n: SimNode, snap: SimSnapshot): void {
    this.checker.onInstallSnapshot(n.id, snap.meta, snap.data);
    n.applied = snap.data.slice();
    n.storage.applied = snap.meta.index;
    n.storage.confState = snap.meta.confState;
    this.trace(11, n.id, snap.meta.index, snap.meta.term);
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

  /** Creates a fresh id for a node to be added (it is started when its addition is applied). */
  allocateNodeId(): NodeId {
    return this.nextNodeId++;
  }

  /** Proposes a membership change at node `id`. */
  proposeConfChange(id: NodeId, cc: ConfChange): ConfChangeResult {
    try {
      this.node(id).proposeConfChange(cc);
      this.observe(id);
      return 'proposed';
    } catch (err) {
      if (err instanceof ConfChangeInProgressError) return 'inProgress';
      if (err instanceof ProposalDroppedError) return 'dropped';
      throw err;
    }
  }

  /**
   * The application of node `id` snapshots its state machine at its applied index and
   * compacts its log (storage first, then raft). Returns the snapshot index, or 0 if nothing to do.
   */
  compact(id: NodeId): number {
    const n = this.sim(id);
    const raw = this.node(id);
    // At the applied index, so raw.confState() (membership after everything applied) is exact.
    const index = n.storage.applied;
    if (index < n.storage.firstIndex()) return 0;
    const term = raw.termAt(index);
    if (term === undefined) throw new Error(`node ${id} has no term for applied index ${index}`);
    const meta: SnapshotMeta = { index, term, confState: raw.confState() };
    n.storage.compact({ meta, data: n.applied.slice(0, index) });
    raw.compact(index, meta.confState);
    this.trace(12, id, index, term);
    return index;
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
    n.receivedSnaps = new Map();
    this.trace(9, id, this.nowStep, 0);
  }

  /** Arms a crash at a given point of the node's next Ready handling. */
  crashDuringNextReady(id: NodeId, point: CrashPoint, onlyIfSnapshot = false): void {
    const n = this.sim(id);
    n.pendingCrash = point;
    n.pendingCrashOnSnapshot = onlyIfSnapshot;
  }

  /** Cancels all armed crashes (used when faults stop). */
  disarmCrashes(): void {
    for (const n of this.nodes.values()) n.pendingCrash = null;
  }

  restart(id: NodeId): void {
    const n = this.sim(id);
    if (this.retired.has(id)) throw new Error(`node ${id} was removed and retired`);
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
      const crashAt = n.pendingCrashOnSnapshot && rd.snapshot === null ? null : n.pendingCrash;
      if (this.writeOverlapRate > 0 && this.rng.chance(this.writeOverlapRate)) {
        this.overlapWrite(n, raw, rd);
        if (n.raw !== raw) return; // crashed while stepping (cannot happen today; kept honest)
      }
      if (crashAt === 'beforePersist') return this.crash(id);
      let snap: SimSnapshot | null = null;
      if (rd.snapshot !== null) {
        const data = n.receivedSnaps.get(rd.snapshot.index);
        if (data === undefined) throw new Error(`node ${id}: Ready.snapshot ${rd.snapshot.index} without received data`);
        snap = { meta: rd.snapshot, data };
        n.storage.applySnapshot(snap);
        this.checker.onPersistSnapshot(id, rd.snapshot);
      }
      n.storage.append(rd.entries);
      if (rd.hardState !== null) n.storage.setHardState(rd.hardState);
      this.checker.onPersist(id, rd.entries, rd.hardState, n.storage);
      if (crashAt === 'afterPersist') return this.crash(id);
      for (const m of rd.messages) this.send(n, m);
      if (crashAt === 'afterSend') return this.crash(id);
      if (snap !== null) {
        this.installSnapshot(n, snap);
        n.receivedSnaps.clear();
      }
      for (const e of rd.committedEntries) {
        this.checker.onApply(id, e);
        n.applied.push(e);
        n.storage.applied = e.index;
        if (e.type === 'confChange') {
          const cc = decodeConfChange(e.data);
          const cs = raw.applyConfChange(cc);
          n.storage.confState = cs;
          this.checker.onConfApplied(id, e.index, cs);
          this.pendingMembership.push(cc);
          this.trace(13, id, e.index, cc.nodeId);
        }
        this.trace(1, id, e.index, e.term);
      }
      for (const rs of rd.readStates) {
        this.checker.onReadState(id, decodeCtx(rs.requestCtx), rs);
        n.readStates.push(rs);
        this.trace(2, id, rs.index, 0);
      }
      raw.advance(rd);
      this.observe(id);
      if (this.pendingMembership.length > 0) {
        this.runMembershipEffects();
        if (n.raw !== raw) return; // this node was retired
      }
    }
  }

  /**
   * What happens while the member's batch for `rd` is being written: the leader's early sends
   * (Member.runTurn sends 'app' and 'heartbeat' before its own fsync when its term and vote are
   * durable) and the messages that arrive meanwhile, stepped before advance(rd).
   */
  private overlapWrite(n: SimNode, raw: RawNode, rd: Ready): void {
    const leading = (rd.softState?.role ?? raw.role()) === 'leader';
    const durable = n.storage.hardState;
    if (leading && (rd.hardState === null || (rd.hardState.term === durable.term && rd.hardState.vote === durable.vote))) {
      const rest: Message[] = [];
      for (const m of rd.messages) {
        if (m.type === 'app' || m.type === 'heartbeat') this.send(n, m);
        else rest.push(m);
      }
      rd.messages = rest;
    }
    for (const m of this.network.takeDueFor(n.id, this.nowStep + 1)) this.deliverOne(m);
  }

  /** Operator side of membership: start added nodes, retire removed ones (etcd stops a removed member). */
  private runMembershipEffects(): void {
    while (this.pendingMembership.length > 0) {
      const cc = this.pendingMembership.shift() as ConfChange;
      const id = cc.nodeId;
      if (cc.type === 'removeNode') {
        if (!this.retireRemovedNodes) continue;
        if (!this.nodes.has(id) || this.retired.has(id)) continue;
        const raw = this.sim(id).raw;
        if (raw !== null) this.crash(id);
        this.retired.add(id);
        this.ids.splice(this.ids.indexOf(id), 1);
        this.trace(14, id, this.nowStep, 0);
      } else if (!this.nodes.has(id)) {
        this.ids.push(id);
        this.createNode(id);
        this.trace(15, id, this.nowStep, 0);
      }
    }
  }

  private send(from: SimNode, m: Message): void {
    if (m.type === 'snap') {
      const meta = m.snapshot;
      const stored = from.storage.snapshot;
      if (meta === undefined || stored === null || stored.meta.index !== meta.index) {
        // The stored snapshot moved on: this transfer fails; raft retries with the new one.
        this.reportSnapshot(m, 'failure');
        return;
      }
      this.snapData.set(m, { data: stored.data, senderIncarnation: from.incarnation });
    }
    this.network.send(m, this.nowStep);
  }

  private reportSnapshot(m: Message, status: 'finish' | 'failure'): void {
    const sender = this.nodes.get(m.from);
    if (sender === undefined || sender.raw === null) return;
    const att = this.snapData.get(m);
    if (att !== undefined && att.senderIncarnation !== sender.incarnation) return;
    sender.raw.reportSnapshot(m.to, status);
    this.trace(16, m.from * 64 + m.to, status === 'finish' ? 1 : 0, m.snapshot?.index ?? 0);
    this.observe(m.from);
  }

  processAllReady(): void {
    for (const id of this.ids) this.processReady(id);
  }

  private deliverOne(m: Message): void {
    const n = this.nodes.get(m.to);
    if (n === undefined || n.raw === null) {
      // Destination down or retired: message lost.
      if (m.type === 'snap') this.reportSnapshot(m, 'failure');
      return;
    }
    if (this.quiesce) n.heardAtStep.set(m.from, this.nowStep);
    if (this.livenessPings.has(m)) {
      this.trace(17, m.from * 64 + m.to, this.nowStep, 0);
      return;
    }
    this.trace(3, m.from * 64 + m.to, m.term, m.index);
    if (m.type === 'snap') {
      const att = this.snapData.get(m);
      const meta = m.snapshot;
      if (att === undefined || meta === undefined) throw new Error('snap message without attached data');
      n.receivedSnaps.set(meta.index, att.data);
    }
    n.raw.step(m);
    this.observe(m.to);
    if (m.type === 'snap') this.reportSnapshot(m, 'finish');
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
    if (this.quiesce) this.sendLivenessPings();
    this.deliverDue();
    if (this.quiesce) this.applyLivenessRule();
    this.processAllReady();
  }

  /** Member-level liveness: each up node pings every other node once per heartbeat interval. */
  private sendLivenessPings(): void {
    if (this.nowStep % this.baseConfig.heartbeatTicks !== 0) return;
    for (const from of this.upIds()) {
      for (const to of this.ids) {
        if (to === from) continue;
        const m: Message = { type: 'heartbeat', from, to, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0) };
        this.livenessPings.add(m);
        this.livenessPingsSent++;
        this.network.send(m, this.nowStep);
      }
    }
  }

  /** Whether node `id` heard from `peer` within the last election timeout (this incarnation). */
  heardRecently(id: NodeId, peer: NodeId): boolean {
    const n = this.sim(id);
    return this.nowStep - (n.heardAtStep.get(peer) ?? n.startedAtStep) <= this.baseConfig.electionTimeoutTicks;
  }

  /** Wakes quiesced nodes whose leader (follower) or quorum (leader) went silent: liveness-wake.ts. */
  private applyLivenessRule(): void {
    for (const id of this.upIds()) {
      const raw = this.node(id);
      if (!raw.isQuiesced()) continue;
      if (this.ignoreLiveness && raw.role() === 'follower') continue;
      const woke = wakeIfPeersSilent(raw, id, (peer) => this.heardRecently(id, peer));
      if (woke !== 'none') {
        this.livenessWakes++;
        this.trace(18, id, this.nowStep, woke === 'leader' ? 1 : 0);
        this.observe(id);
      }
    }
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
    const n = this.sim(id);
    const q = raw.isQuiesced();
    if (q && !n.wasQuiesced) this.quiesceEvents++;
    n.wasQuiesced = q;
    const s = raw.status();
    this.checker.onStatus(id, s.role, s.term, (i) => raw.termAt(i), s.voters, s.firstIndex);
  }
}

// Hosting a sharded cluster's groups on this member (`--shards S`, S > 1; issue 14). Beside the cluster
// group (DATA_GROUP_ID 0: membership, published attributes, leases, auth, alarms — today's KV state
// machine, holding no user keys here), every member hosts:
//   - the metadata group (METADATA_GROUP_ID): the revision oracle's high-water marks
//     (server/shard/metadata-state-machine.ts), served by an OracleHost on the member that leads it;
//   - S shard groups (FIRST_SHARD_GROUP_ID + i for shard i): a KV state machine in sharded mode each,
//     whose write entries carry oracle revisions stamped by the shard leader's ShardWritePath; every
//     proposal for a shard this member leads is intercepted (Member.interceptProposals) and stamped,
//     whether it was made here or forwarded by a follower's Raft. A txn writing a shard and reading
//     others is stamped by the write shard's leader, which reads the others at its revision − 1 through
//     rangeAt below (server/shard/txn-reads.ts).
// Shard leaderships are kept spread over the members (server/shard/leader-balancer.ts).
// Every member is a voter of every group (the cluster's bootstrap members): placement on a subset of
// members, and moves, are not wired yet (docs/sharding.md). Keys map to shards through the slot map
// created with S equal ranges (server/routing/slots.ts).
import type { Logger } from 'pino';
import { Member } from '../member/member.ts';
import type { NodeId } from '../raft/types.ts';
import type { MemberStore } from '../storage/member-store.ts';
import type { ClosingHold, GroupTarget, ShardedKeyspace } from '../api/context.ts';
import type { RangeOp, RangeResult } from '../mvcc/types.ts';
import { SlotMap } from '../routing/slots.ts';
import { KvStateMachine } from '../shard/kv-state-machine.ts';
import { MetadataStateMachine } from '../shard/metadata-state-machine.ts';
import { OracleHost } from '../shard/oracle-host.ts';
import { OracleClient } from '../shard/oracle-client.ts';
import type { OracleTransport } from '../shard/oracle-protocol.ts';
import { ShardDeadlineError, ShardNotReadyError, ShardWritePath, type ReadsElsewhere } from '../shard/shard-write-path.ts';
import { planTxnReads } from '../shard/txn-reads.ts';
import { txnOpFromWire } from '../etcd/convert.ts';
import { ReplicaWatchSource, resolvedApart } from '../shard/replica-watch-source.ts';
import { ShardCloser } from '../shard/shard-closer.ts';
import type { ShardWatchSource } from '../shard/watch-source.ts';
import { GrpcOracleTransport, closeAtOnPeer, rangeAtOnPeer, watchShardTransport, type ShardPeerChannels } from '../shard/peer-shard-rpc.ts';
import { RemoteWatchSource, type WatchShardTransport } from '../shard/remote-watch-source.ts';
import { WatchShardServer } from '../shard/watch-shard-server.ts';
import { GroupMembershipReconciler } from '../shard/group-membership.ts';
import { LeaderBalancer } from '../shard/leader-balancer.ts';

/** The cluster group (membership, leases, auth): its membership is the one every other group follows. */
const CLUSTER_GROUP_ID = 0;
export const METADATA_GROUP_ID = 1;
export const FIRST_SHARD_GROUP_ID = 2;

/** How this member reaches the shard leaders and the oracle on other members (the peer port). */
export interface ShardPeers {
  oracle: OracleTransport;
  /** `op` read at `revision` by the leader of `groupId` on member `to`; `notLeader` names who leads there. */
  rangeAt(to: NodeId, groupId: number, op: RangeOp, revision: number, deadlineMs: number): Promise<RangeResult | { notLeader: NodeId }>;
  /** The leader of `groupId` on member `to` closes at `revision` or below (ShardWritePath.closeAt). */
  closeAt(to: NodeId, groupId: number, revision: number, deadlineMs: number): Promise<ShardClose | { notLeader: NodeId }>;
  /** WatchShard streams to members hosting a shard (a merged watch's remote shards); absent: none. */
  watchShard?: WatchShardTransport;
}

/** A close on a shard's leader: the revision closed, and the leader's applied index of the group after it. */
export interface ShardClose {
  revision: number;
  appliedIndex: number;
}

interface BootstrapMember {
  id: number;
  peerUrls: string[];
  isLearner: boolean;
}

interface HostedShard extends GroupTarget {
  readonly index: number;
  path: ShardWritePath | null;
  /** This replica as a merged watch sees it (closed revisions from the closing rounds). */
  readonly source: ReplicaWatchSource;
}

/** ShardPeers over the peer port's ShardPeer service (server/shard/peer-shard-rpc.ts). */
export function shardPeersOverGrpc(channels: ShardPeerChannels): ShardPeers {
  return {
    oracle: new GrpcOracleTransport(channels),
    watchShard: watchShardTransport(channels),
    async rangeAt(to, groupId, op, revision, deadlineMs) {
      const outcome = await rangeAtOnPeer(channels, to, groupId, op, revision, deadlineMs);
      switch (outcome.kind) {
        case 'ok':
          return outcome.result;
        case 'not-leader':
          return { notLeader: outcome.leaderId };
        case 'mvcc':
          throw outcome.error; // compacted or future revision: the client's answer
        case 'deadline':
          throw new ShardDeadlineError(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
        case 'unavailable':
          throw new ShardNotReadyError(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
        default:
          throw new Error(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
      }
    },
    async closeAt(to, groupId, revision, deadlineMs) {
      const outcome = await closeAtOnPeer(channels, to, groupId, revision, deadlineMs);
      switch (outcome.kind) {
        case 'closed':
          return { revision: outcome.revision, appliedIndex: outcome.appliedIndex };
        case 'not-leader':
          return { notLeader: outcome.leaderId };
        case 'deadline':
          throw new ShardDeadlineError(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
        case 'unavailable':
          throw new ShardNotReadyError(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
        default:
          throw new Error(`shard group ${groupId} on member ${to.toString(16)}: ${outcome.reason}`);
      }
    },
  };
}

/** Longest pause between attempts when a shard's leader is unknown or moved during a read. */
const RETRY_PAUSE_MS = 20;

export class ShardHosting implements ShardedKeyspace {
  readonly shardCount: number;
  readonly slotMap: SlotMap;
  readonly metadata: MetadataStateMachine;
  private readonly shards: HostedShard[] = [];
  private oracleHost: OracleHost | null = null;
  private readClient: OracleClient | null = null;
  private member: Member | null = null;
  private peers: ShardPeers | null = null;
  private membership: GroupMembershipReconciler | null = null;
  private leaders: LeaderBalancer | null = null;
  private closer: ShardCloser | null = null;
  private closeFailuresLogged = 0;
  /** Remote sources made by remoteWatchSource(), by shard index: merged watches here read them. */
  private readonly remoteSources = new Map<number, RemoteWatchSource>();
  /** Remote sources dropped (a replica was placed here) that open merged watches still follow. */
  private readonly retiredRemoteSources = new Set<RemoteWatchSource>();
  /** TEST-ONLY (--experimental-test-remote-watch-shards): shards read through a remote source though hosted. */
  private testRemoteWatchShards: readonly number[] = [];
  /** Serves WatchShard streams from this member's replicas (created on attach). */
  private watchServer: WatchShardServer | null = null;

  private readonly logger: Logger;

  private constructor(shardCount: number, metadata: MetadataStateMachine, logger: Logger) {
    this.logger = logger;
    this.shardCount = shardCount;
    this.slotMap = SlotMap.create(shardCount);
    this.metadata = metadata;
  }

  /** Loads the metadata group and every shard group from the store and adds them to `member`. */
  static async load(opts: {
    member: Member;
    db: MemberStore;
    snapshotDir: string;
    memberId: NodeId;
    bootstrap: readonly BootstrapMember[];
    shardCount: number;
    randomSeed: () => number;
    logger: Logger;
    /**
     * TEST-ONLY: merged watches on this member read these shards from a replica on another member over
     * WatchShard (remote-watch-source.ts) although this member hosts them — the path of a shard not
     * placed here, testable while every member hosts every shard.
     */
    testRemoteWatchShards?: readonly number[];
  }): Promise<ShardHosting> {
    const { member, db, snapshotDir, bootstrap, logger } = opts;
    const voters = bootstrap.filter((m) => !m.isLearner).map((m) => m.id);
    const metaLoaded = await Member.recoverSnapshot(db, METADATA_GROUP_ID, snapshotDir, await db.loadGroup(METADATA_GROUP_ID), logger);
    const metadata = new MetadataStateMachine(metaLoaded.stateRecords, bootstrap);
    metaLoaded.stateRecords = [];
    member.addGroup({ groupId: METADATA_GROUP_ID, voters, stateMachine: metadata, loaded: metaLoaded, randomSeed: opts.randomSeed() });
    const hosting = new ShardHosting(opts.shardCount, metadata, logger);
    for (const i of opts.testRemoteWatchShards ?? []) {
      if (!Number.isSafeInteger(i) || i < 0 || i >= opts.shardCount) throw new RangeError(`--experimental-test-remote-watch-shards: no shard ${i} (shards 0..${opts.shardCount - 1})`);
    }
    hosting.testRemoteWatchShards = opts.testRemoteWatchShards ?? [];
    for (let index = 0; index < opts.shardCount; index++) {
      const groupId = FIRST_SHARD_GROUP_ID + index;
      const loaded = await Member.recoverSnapshot(db, groupId, snapshotDir, await db.loadGroup(groupId), logger);
      const sm = new KvStateMachine(opts.memberId, loaded.stateRecords, [...bootstrap], { sharded: true });
      loaded.stateRecords = [];
      member.addGroup({ groupId, voters, stateMachine: sm, loaded, randomSeed: opts.randomSeed() });
      hosting.shards.push({ index, groupId, sm, path: null, source: new ReplicaWatchSource(index, sm) });
    }
    return hosting;
  }

  /**
   * Starts serving: the oracle host, each shard's write path, the clients reaching other members, and
   * the metadata and shard groups' membership following the cluster group's (group-membership.ts).
   * `maxEntryBytes`: the member's --max-request-bytes (a txn's reads on other shards must fit in it).
   */
  attach(member: Member, peers: ShardPeers, membership: { peerUrlsOf: (id: NodeId) => string[]; logger: Logger }, maxEntryBytes: number): void {
    this.member = member;
    this.membership = new GroupMembershipReconciler({
      member,
      groupIds: [METADATA_GROUP_ID, ...this.shards.map((s) => s.groupId)],
      desired: () => member.confState(CLUSTER_GROUP_ID),
      peerUrlsOf: membership.peerUrlsOf,
      logger: membership.logger,
    });
    this.membership.start();
    this.leaders = new LeaderBalancer({ member, groupIds: this.shards.map((s) => s.groupId), logger: membership.logger });
    this.leaders.start();
    this.peers = peers;
    const host = new OracleHost(member, this.metadata, { groupId: METADATA_GROUP_ID });
    this.oracleHost = host;
    const self = member.memberId;
    // Requests to this member's own oracle host skip the network.
    const transport: OracleTransport = { request: (to, req) => (to === self ? host.handle(req) : peers.oracle.request(to, req)) };
    const metadataMembers = (): readonly NodeId[] => member.confState(METADATA_GROUP_ID).voters;
    // One oracle client for every shard this member leads and for its multi-shard reads: a turn's needs
    // leave as one request (the client splits the grant among its callers, each part above the last).
    const oracle = new OracleClient({ requester: `member-${self.toString(16)}`, transport, members: metadataMembers });
    this.readClient = oracle;
    const groupsOf = (key: Buffer, rangeEnd: Buffer): number[] => this.shardsOfRange(key, rangeEnd).map((t) => t.groupId);
    for (const shard of this.shards) {
      // A txn writing here and reading other shards reads them at its revision − 1 on their leaders.
      const readsElsewhere: ReadsElsewhere = {
        plan: (body) => ('txn' in body && body.txn ? planTxnReads(txnOpFromWire(body.txn), shard.groupId, groupsOf) : []),
        read: (groupId, op, revision, deadlineMs) => this.rangeAt(this.shards[groupId - FIRST_SHARD_GROUP_ID], op, revision, deadlineMs),
      };
      const path = new ShardWritePath({ member, groupId: shard.groupId, sm: shard.sm, oracle, readsElsewhere, maxEntryBytes });
      shard.path = path;
      member.interceptProposals(shard.groupId, (data) => path.intercept(data));
    }
    this.closer = new ShardCloser({
      shards: this.shards,
      freshRevision: (deadlineMs) => this.freshRevision(deadlineMs),
      closeOnLeader: (groupId, revision, deadlineMs) =>
        this.onLeader(
          groupId,
          deadlineMs,
          () => this.closeAtHere(groupId, revision, deadlineMs),
          (to) => peers.closeAt(to, groupId, revision, deadlineMs),
        ),
      waitApplied: (groupId, index, deadlineMs) => member.waitApplied(groupId, index, deadlineMs),
      needsRound: () => this.needsRound(),
      onCloseFailed: (groupId, err) => {
        // A shard electing a leader fails a few rounds in a row: a handful of lines, not one per round.
        if (this.closeFailuresLogged++ < 20) this.logger.warn({ group: groupId, err: err instanceof Error ? err.message : String(err) }, 'closing round failed for a shard (tried again next round)');
      },
    });
    for (const shard of this.shards) shard.source.onActivity = () => this.activity(null);
    this.watchServer = new WatchShardServer({
      host: {
        sourceOf: (groupId) => this.shards[groupId - FIRST_SHARD_GROUP_ID]?.source ?? null,
        holdClosingRounds: () => this.holdLocalClosingRounds(),
      },
    });
    for (const index of this.testRemoteWatchShards) {
      const groupId = FIRST_SHARD_GROUP_ID + index;
      // Every other voter of the group hosts a replica (every member hosts every shard today).
      this.remoteWatchSource(index, () => member.confState(groupId).voters.filter((id) => id !== member.memberId));
      this.logger.warn({ shard: index }, 'TEST ONLY: merged watches here read this shard from another member (--experimental-test-remote-watch-shards)');
    }
  }

  /**
   * A merged watch's source for shard `shardIndex` over WatchShard streams to `candidates()` (members
   * hosting a replica, this one excluded, in preference order). From then on watchSources() gives it for
   * that shard. For a shard not placed on this member (the lead's placement wiring), and for the test-only
   * option. Call after attach().
   */
  remoteWatchSource(shardIndex: number, candidates: () => readonly NodeId[]): RemoteWatchSource {
    const transport = this.peers?.watchShard;
    if (transport === undefined) throw new ShardNotReadyError('shards not attached yet (no WatchShard transport)');
    const known = this.remoteSources.get(shardIndex);
    if (known !== undefined) return known;
    let unavailableLogged = 0;
    const source = new RemoteWatchSource({
      shard: shardIndex,
      groupId: FIRST_SHARD_GROUP_ID + shardIndex,
      candidates,
      transport,
      onUnavailable: (shard, reason) => {
        if (unavailableLogged++ < 20) this.logger.warn({ shard, reason }, 'no member serves a remote shard to a merged watch (still trying; the watch holds its frontier)');
      },
    });
    source.onActivity = () => this.activity(source);
    this.remoteSources.set(shardIndex, source);
    return source;
  }

  /**
   * Merged watches opened from now on read shard `shardIndex` from the local replica again (a replica was
   * placed here). Watches already open keep their remote subscriptions until they end or park.
   */
  dropRemoteWatchSource(shardIndex: number): void {
    const source = this.remoteSources.get(shardIndex);
    if (source === undefined) return;
    this.remoteSources.delete(shardIndex);
    // Still asked for marks (activity, heartbeat) while open watches follow it.
    if (source.subscriptionCount() > 0) this.retiredRemoteSources.add(source);
  }

  /** Every remote source some merged watch may still follow (retired ones are let go once unfollowed). */
  private followedRemoteSources(): RemoteWatchSource[] {
    for (const r of this.retiredRemoteSources) if (r.subscriptionCount() === 0) this.retiredRemoteSources.delete(r);
    return [...this.remoteSources.values(), ...this.retiredRemoteSources].filter((r) => r.subscriptionCount() > 0);
  }

  /** The WatchShard server of this member's replicas (the peer service's WatchShard; null before attach). */
  watchShardServer(): WatchShardServer | null {
    return this.watchServer;
  }

  /**
   * A shard delivered an event to a merged watch here (`from`: a remote source, null: a local replica):
   * the merge releases it once every other shard is resolved past it — a closing round for the local
   * replicas, a resolve ask for the other remote shards.
   */
  private activity(from: RemoteWatchSource | null): void {
    this.closer?.request();
    for (const r of this.followedRemoteSources()) if (r !== from) r.requestResolved();
  }

  /** The closer's heartbeat check, over local and remote sources; lagging remote shards are asked again. */
  private needsRound(): boolean {
    const remotes = this.followedRemoteSources();
    const followed = [...this.shards.map((s) => s.source).filter((s) => s.subscriptionCount() > 0), ...remotes];
    if (!resolvedApart(followed)) return false;
    let high = 0;
    for (const s of followed) high = Math.max(high, s.resolvedRevision());
    for (const r of remotes) if (r.resolvedRevision() < high) r.requestResolved();
    return resolvedApart(this.shards.map((s) => s.source));
  }

  /** The oracle host, for the peer service (null before attach). */
  oracle(): OracleHost | null {
    return this.oracleHost;
  }

  /** The read at `revision` this member serves as the leader of `groupId` (the peer service's RangeAt). */
  readAtHere(groupId: number, op: RangeOp, revision: number, deadlineMs: number): Promise<RangeResult> {
    const shard = this.shards[groupId - FIRST_SHARD_GROUP_ID];
    if (shard?.path == null) return Promise.reject(new ShardNotReadyError(`group ${groupId} is not a shard hosted here`));
    return shard.path.readAt(op, revision, deadlineMs);
  }

  stop(): void {
    this.membership?.stop();
    this.leaders?.stop();
    this.closer?.stop();
    this.watchServer?.stop();
    for (const s of this.shards) s.path?.stop();
  }

  /** The close this member serves as the leader of `groupId` (the peer service's CloseAt), with its applied index after it. */
  async closeAtHere(groupId: number, revision: number, deadlineMs: number): Promise<ShardClose> {
    const shard = this.shards[groupId - FIRST_SHARD_GROUP_ID];
    if (shard?.path == null || this.member === null) throw new ShardNotReadyError(`group ${groupId} is not a shard hosted here`);
    const closed = await shard.path.closeAt(revision, deadlineMs);
    return { revision: closed, appliedIndex: this.member.status(groupId).applied };
  }

  // ---- ShardedKeyspace ---------------------------------------------------------------------

  targets(): readonly GroupTarget[] {
    return this.shards;
  }

  oracleStatus(): ReturnType<ShardedKeyspace['oracleStatus']> {
    const h = this.oracleHost;
    const st = h?.stats;
    return {
      serving: h?.serving ?? false,
      requests: st?.requests ?? 0,
      grants: st?.grants ?? 0,
      revisionsGranted: st?.revisionsGranted ?? 0,
      persists: st?.persists ?? 0,
      establishments: st?.establishments ?? 0,
      unavailable: st?.unavailable ?? 0,
      deadlines: st?.deadlines ?? 0,
    };
  }

  groupsFollowCluster(): boolean {
    const member = this.member;
    if (member === null) return false;
    const want = member.confState(CLUSTER_GROUP_ID);
    const same = (a: readonly NodeId[], b: readonly NodeId[]): boolean => a.length === b.length && [...a].sort((x, y) => x - y).every((v, i) => v === [...b].sort((x, y) => x - y)[i]);
    return this.readinessGroups().every((g) => {
      const cs = member.confState(g);
      return same(cs.voters, want.voters) && same(cs.learners, want.learners);
    });
  }

  readinessGroups(): number[] {
    return [METADATA_GROUP_ID, ...this.shards.map((s) => s.groupId)];
  }

  shardOf(key: Buffer): GroupTarget {
    return this.shards[this.slotMap.shardOfKey(key)];
  }

  shardsOfRange(key: Buffer, rangeEnd: Buffer): GroupTarget[] {
    return this.slotMap.shardsOfRange(key, rangeEnd).shards.map((i) => this.shards[i]);
  }

  async freshRevision(deadlineMs: number): Promise<number> {
    if (this.readClient === null) throw new ShardNotReadyError('shards not attached yet');
    return (await this.readClient.next(1, deadlineMs)).last;
  }

  /** On the shard's leader: here, or on the peer that leads it (following a moved leadership until the deadline). */
  async rangeAt(target: GroupTarget, op: RangeOp, revision: number, deadlineMs: number): Promise<RangeResult> {
    return this.onLeader(
      target.groupId,
      deadlineMs,
      () => this.readAtHere(target.groupId, op, revision, deadlineMs),
      (to) => this.peers!.rangeAt(to, target.groupId, op, revision, deadlineMs),
    );
  }

  /** Every shard replica on this member as a merged watch's source, by shard index. */
  watchSources(): ReadonlyMap<number, ShardWatchSource> {
    const sources = new Map<number, ShardWatchSource>(this.shards.map((s) => [s.index, s.source]));
    for (const [index, remote] of this.remoteSources) sources.set(index, remote);
    return sources;
  }

  /**
   * A merged watch opened: closing rounds run until every returned release was called. Its sync also
   * waits for a resolve answer from every remote shard it follows (a progress header covers them too).
   */
  holdClosingRounds(): ClosingHold {
    const local = this.holdLocalClosingRounds();
    if (this.remoteSources.size === 0) return local;
    const remotes = [...this.remoteSources.values()];
    return {
      release: local.release,
      sync: (timeoutMs) => Promise.all([local.sync(timeoutMs), ...remotes.map((r) => r.sync(timeoutMs))]).then(() => undefined),
    };
  }

  /** This member's closing rounds alone (a WatchShard stream served here holds them for its caller). */
  private holdLocalClosingRounds(): ClosingHold {
    const closer = this.closer;
    if (closer === null) throw new ShardNotReadyError('shards not attached yet');
    return { release: closer.acquire(), sync: (timeoutMs) => closer.sync(timeoutMs) };
  }


  closingStatus(): ReturnType<ShardedKeyspace['closingStatus']> {
    const c = this.closer;
    return { active: c?.active() ?? false, rounds: c?.stats.rounds ?? 0, closes: c?.stats.closes ?? 0, closeFailures: c?.stats.closeFailures ?? 0 };
  }

  /** `here` when this member leads `groupId`, else `there` on the member that does (following a moved leadership until the deadline). */
  private async onLeader<T extends object>(groupId: number, deadlineMs: number, here: () => Promise<T>, there: (to: NodeId) => Promise<T | { notLeader: NodeId }>): Promise<T> {
    const member = this.member;
    if (member === null || this.peers === null) throw new ShardNotReadyError('shards not attached yet');
    let lastError: unknown = new ShardNotReadyError(`no leader for shard group ${groupId}`);
    let hint: NodeId = 0;
    while (Date.now() < deadlineMs) {
      const leader = hint !== 0 ? hint : member.leaderId(groupId);
      hint = 0;
      try {
        if (leader === member.memberId) return await here();
        if (leader !== 0) {
          const answer = await there(leader);
          if (!('notLeader' in answer)) return answer;
          hint = answer.notLeader;
          lastError = new ShardNotReadyError(`member ${leader.toString(16)} no longer leads shard group ${groupId}`);
        }
      } catch (err) {
        // A shard still getting ready, or a leader lost mid-read: try again while time remains. Anything
        // else (a compacted or future revision) is the answer.
        if (!(err instanceof ShardNotReadyError)) throw err;
        lastError = err;
      }
      if (hint === 0) await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
    }
    throw lastError;
  }


}

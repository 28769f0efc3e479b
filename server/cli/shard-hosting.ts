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
// Which members host which shard: with --replication-factor 0 (the default) every member hosts every
// shard, following the cluster group's membership. With R > 0 the placer on the metadata group's leader
// (server/shard/placer.ts) writes R desired replicas per shard into the metadata group; each shard's
// leader moves its group there (group-membership.ts: learner, promote, hand over, remove) and reports
// where it is; this member creates a replica when it is placed here (its leader's log or snapshot fills
// it) and deletes one once its own removal from that shard is the last thing it applied
// (Member.removeGroup). A KV request on a shard this member does not host is forwarded to a member that
// does (server/shard/shard-forwarder.ts, the ShardKv peer RPC; the TEST-ONLY --test-forward-shards
// makes hosted shards forwarded too). Keys map to shards through the slot map created with S equal
// ranges (server/routing/slots.ts).
import type { Logger } from 'pino';
import { Member } from '../member/member.ts';
import type { NodeId } from '../raft/types.ts';
import type { MemberStore } from '../storage/member-store.ts';
import type { ClosingHold, GroupTarget, ShardedKeyspace } from '../api/context.ts';
import type { RangeOp, RangeResult } from '../mvcc/types.ts';
import { SlotMap } from '../routing/slots.ts';
import { KvStateMachine } from '../shard/kv-state-machine.ts';
import type { DecidedTxn, PreparedTxn } from '../txn/shard-txn-table.ts';
import { MetadataStateMachine, type MetadataApplied, type ShardConf } from '../shard/metadata-state-machine.ts';
import { OracleHost } from '../shard/oracle-host.ts';
import { OracleClient } from '../shard/oracle-client.ts';
import type { OracleTransport } from '../shard/oracle-protocol.ts';
import { ShardDeadlineError, ShardNotReadyError, ShardWritePath, type ReadsElsewhere } from '../shard/shard-write-path.ts';
import { planTxnReads } from '../shard/txn-reads.ts';
import { txnOpFromWire } from '../etcd/convert.ts';
import { ReplicaWatchSource, resolvedApart } from '../shard/replica-watch-source.ts';
import { ShardCloser } from '../shard/shard-closer.ts';
import { LoopLoad } from '../member/loop-load.ts';
import type { ShardWatchSource } from '../shard/watch-source.ts';
import { ShardForwarder, type ForwardedAnswer } from '../shard/shard-forwarder.ts';
import type { ShardKvOp } from '../shard/shard-kv-wire.ts';
import { RemoteWatchSource } from '../shard/remote-watch-source.ts';
import { WatchShardServer } from '../shard/watch-shard-server.ts';
import { GroupMembershipReconciler } from '../shard/group-membership.ts';
import { LeaderBalancer } from '../shard/leader-balancer.ts';
import { Placer, movesAllowed, shardSettled } from '../shard/placer.ts';
import { place } from '../placement/ring.ts';
import { encodeMetadataEntry } from '../shard/metadata-entry-codec.ts';
import type { ConfState } from '../raft/types.ts';
import type { LoadedGroup } from '../storage/member-db.ts';
import type { ShardClose, ShardPeers } from './shard-peers.ts';
import { desiredMembership, looksLeftBehind, mayDeleteReplica, placedHere, servesFromReplica, shardRemovalBlocker, type ShardFacts, type ShardRemovalBlock } from '../shard/replica-decisions.ts';

/** The cluster group (membership, leases, auth): its membership is the one every other group follows. */
const CLUSTER_GROUP_ID = 0;
export const METADATA_GROUP_ID = 1;
export const FIRST_SHARD_GROUP_ID = 2;

export interface BootstrapMember {
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

/** What creating a shard replica needs after load (placement may put one here at any time). */
interface ReplicaDeps {
  db: MemberStore;
  snapshotDir: string;
  memberId: NodeId;
  bootstrap: readonly BootstrapMember[];
  randomSeed: () => number;
}

/** The write-path counts /metrics shows (writePathStatus). */
type PathCounts = Omit<ReturnType<ShardedKeyspace['writePathStatus']>, 'preparedNow'>;

/** Adds a hosted shard's counts: its write path's (while it led) and its proposals lost with a leadership. */
function addShardStats(into: PathCounts, shard: { readonly path: ShardWritePath | null; readonly sm: { readonly proposalsLost: number; readonly writesDeferred: number; readonly writesAnsweredEarly: number } }): void {
  into.writesLost += shard.sm.proposalsLost;
  into.writesDeferred += shard.sm.writesDeferred;
  into.writesAnsweredEarly += shard.sm.writesAnsweredEarly;
  if (shard.path === null) return;
  const s = shard.path.stats;
  into.writesProposed += s.writesProposed;
  into.oracleRequests += s.oracleRequests;
  into.txnPrepares += s.txnIntents;
  into.txnPreparesBeside += s.txnIntentsBeside;
  into.txnPreparesRefused += s.txnIntentsRefused;
  into.writesBesideTxns += s.writesBesideTxns;
  into.writesParked += s.writesParked;
  into.txnRecoveries += s.txnRecoveries;
  const r = shard.path.resolveCounts;
  into.resolvesHeld += r.held;
  into.resolvesAlone += r.alone;
}

/** How often this member checks which replicas it should host and reports its shards' memberships. */
const HOSTING_INTERVAL_MS = 500;
/** How long a committed transaction's record may stay before a shard leader finishes it (its forgets take ≤ 200 ms). */
const STALE_COMMIT_MS = 5_000;
/**
 * How old a transaction must be for its fences to go (and its prepares to be refused): far past any
 * client deadline, and past any clock difference between members worth tolerating.
 */
const FENCE_KEEP_MS = 5 * 60_000;
/** How often a shard leader moves the fence horizon of a shard holding fences. */
const FENCE_HORIZON_EVERY_MS = 60_000;
/** Shards moving at once, cluster-wide (snapshot traffic, shards with an extra replica). */
const MAX_MOVING_SHARDS = 4;

/**
 * After TransferLeaderships, how long this member declines leaderships handed back to it: the operator
 * stops it next (a rolling upgrade's pod delete follows within a reconcile or two); a member still
 * running afterwards takes its share again.
 */
const HANDED_OVER_DECLINE_MS = 60_000;

/** A drain mark not applied yet is proposed again after this long (a lost proposal). */
const DRAIN_RESEND_MS = 1_000;

/** How long a hosting member's answer about a shard (refreshRemoteViews) is shown in shardViews(). */
const REMOTE_VIEW_FRESH_MS = 10_000;

/** A placement request this cluster cannot carry out (the API answers FailedPrecondition). */
export class PlacementRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlacementRefusedError';
  }
}

/** A shard's membership report not yet applied is made again after this long. */
const REPORT_RESEND_MS = 3_000;

const sameMembers = (a: readonly NodeId[], b: readonly NodeId[]): boolean => a.length === b.length && [...a].sort((x, y) => x - y).every((v, i) => v === [...b].sort((x, y) => x - y)[i]);

/** A group holds something: a log, a snapshot or applied state (a tombstone of a removed replica does not count). */
/**
 * Every shard's bootstrap voters (ShardHosting.bootstrapVoters): all bootstrap voters with replication
 * factor 0, else the R the placement function picks among them. Pure; `synod snapshot restore` uses it to
 * seed exactly the replicas a member will create.
 */
export function bootstrapPlacement(bootstrap: readonly BootstrapMember[], shardCount: number, replicationFactor: number): Map<number, NodeId[]> {
  const voters = bootstrap.filter((m) => !m.isLearner).map((m) => m.id);
  const shards = Array.from({ length: shardCount }, (_, i) => i);
  if (replicationFactor === 0) return new Map(shards.map((s) => [s, [...voters]]));
  const placed = place({ members: voters.map((id) => ({ id, zone: '', weight: 1, state: 'up' as const })), shards, replicationFactor });
  const byShard = new Map(placed.shards.map((p) => [p.shard, [...p.replicas]]));
  return new Map(shards.map((s) => [s, byShard.get(s) ?? [...voters]]));
}

function holdsData(loaded: LoadedGroup): boolean {
  return loaded.entries.length > 0 || loaded.snapshot !== undefined || loaded.applied > 0 || loaded.appliedLogSkipped !== undefined;
}


/** Longest pause between attempts when a shard's leader is unknown or moved during a read. */
const RETRY_PAUSE_MS = 20;

export class ShardHosting implements ShardedKeyspace {
  txnRecoverer: ((p: PreparedTxn, groupId: number) => Promise<void>) | null = null;
  /** Finishes a committed transaction whose record outlived its coordinator (TxnCoordinator.finishCommitted). */
  txnFinisher: ((d: DecidedTxn) => Promise<boolean>) | null = null;
  /** Committed records on shards led here, by transaction: when this member first saw each. */
  private readonly committedSeenMs = new Map<string, number>();
  /** Transactions being finished now. */
  private readonly finishing = new Set<string>();
  /** Set by the API: moves a shard's fence horizon (TxnCoordinator.advanceFenceHorizon). */
  txnFenceHorizon: ((groupId: number, horizonMs: number) => Promise<void>) | null = null;
  /** How old a transaction must be for its fences to go, and how often the horizon moves (test knob: --test-txn-fence-keep-ms). */
  fenceKeepMs = FENCE_KEEP_MS;
  fenceHorizonEveryMs = FENCE_HORIZON_EVERY_MS;
  /** The write-path counts of replicas that left this member (writePathStatus stays monotonic). */
  private readonly retiredPathStats: PathCounts = { writesProposed: 0, writesLost: 0, oracleRequests: 0, txnPrepares: 0, txnPreparesBeside: 0, txnPreparesRefused: 0, writesBesideTxns: 0, writesParked: 0, writesDeferred: 0, writesAnsweredEarly: 0, txnRecoveries: 0, resolvesHeld: 0, resolvesAlone: 0 };
  /** When this member last moved each led shard's fence horizon. */
  private readonly horizonMovedMs = new Map<number, number>();
  readonly shardCount: number;
  readonly slotMap: SlotMap;
  readonly metadata: MetadataStateMachine;
  /** Replicas per shard (0: every member hosts every shard). */
  readonly replicationFactor: number;
  /** The shard replicas this member hosts, by shard index. */
  private readonly hosted = new Map<number, HostedShard>();
  /** The same, as a list the closing rounds iterate (kept in step with `hosted`). */
  private readonly shards: HostedShard[] = [];
  private readonly deps: ReplicaDeps;
  private readonly creating = new Set<number>();
  private readonly dropping = new Set<number>();
  private readonly reported = new Map<number, { text: string; atMs: number }>();
  private hostingTimer: NodeJS.Timeout | null = null;
  private placer: Placer | null = null;
  private stopped = false;
  private maxEntryBytes = 0;
  private deadMemberGraceMs: number | undefined;
  /** Shards this member saw reach their desired replicas after a move (since it started). */
  private movesDone = 0;
  private oracleHost: OracleHost | null = null;
  private readClient: OracleClient | null = null;
  private member: Member | null = null;
  private peers: ShardPeers | null = null;
  private membership: GroupMembershipReconciler | null = null;
  private leaders: LeaderBalancer | null = null;
  private closer: ShardCloser | null = null;
  /** Whether this member's event loop is busy: its closing rounds are spaced further apart then. */
  private readonly loopLoad = new LoopLoad();
  private closeFailuresLogged = 0;
  private forwarder: ShardForwarder | null = null;
  /**
   * TEST-ONLY (--test-forward-shards): shard indexes this member's API treats as not hosted, forwarding
   * their KV requests, while it still hosts their Raft replicas. Exercises forwarding before placement
   * on a subset of members exists.
   */
  private forwardShards: ReadonlySet<number> = new Set();
  /** Remote sources made by remoteWatchSource(), by shard index: merged watches here read them. */
  private readonly remoteSources = new Map<number, RemoteWatchSource>();
  /** TEST-ONLY (--experimental-test-remote-watch-shards): shards read through a remote source though hosted. */
  private testRemoteWatchShards: readonly number[] = [];
  /** Serves WatchShard streams from this member's replicas (created on attach). */
  private watchServer: WatchShardServer | null = null;

  private readonly logger: Logger;

  private constructor(shardCount: number, replicationFactor: number, metadata: MetadataStateMachine, deps: ReplicaDeps, logger: Logger) {
    this.logger = logger;
    this.shardCount = shardCount;
    this.replicationFactor = replicationFactor;
    this.slotMap = SlotMap.create(shardCount);
    this.metadata = metadata;
    this.deps = deps;
  }

  /**
   * Loads the metadata group and the shard replicas this member hosts (those holding data, and those
   * placed here) from the store and adds them to `member`.
   */
  static async load(opts: {
    member: Member;
    db: MemberStore;
    snapshotDir: string;
    memberId: NodeId;
    bootstrap: readonly BootstrapMember[];
    shardCount: number;
    /** Replicas per shard; 0 (the default): every member hosts every shard. */
    replicationFactor?: number;
    /** How long a member may be unreachable before its replicas are placed elsewhere (placer.ts). */
    deadMemberGraceMs?: number;
    randomSeed: () => number;
    logger: Logger;
    /** TEST-ONLY: see `forwardShards`. */
    testForwardShards?: readonly number[] | 'all';
    /**
     * TEST-ONLY: merged watches on this member read these shards from a replica on another member over
     * WatchShard (remote-watch-source.ts) although this member hosts them — the path of a shard not
     * placed here, testable while every member hosts every shard.
     */
    testRemoteWatchShards?: readonly number[];
    /** TEST-ONLY (--test-txn-fence-keep-ms; 0 or absent: FENCE_KEEP_MS). */
    testTxnFenceKeepMs?: number;
  }): Promise<ShardHosting> {
    const { member, db, snapshotDir, bootstrap, logger, memberId } = opts;
    const voters = bootstrap.filter((m) => !m.isLearner).map((m) => m.id);
    const metaLoaded = await Member.recoverSnapshot(db, METADATA_GROUP_ID, snapshotDir, await db.loadGroup(METADATA_GROUP_ID), logger);
    const metadata = new MetadataStateMachine(metaLoaded.stateRecords, bootstrap);
    metaLoaded.stateRecords = [];
    member.addGroup({ groupId: METADATA_GROUP_ID, voters, stateMachine: metadata, loaded: metaLoaded, randomSeed: opts.randomSeed() });
    const deps: ReplicaDeps = { db, snapshotDir, memberId, bootstrap, randomSeed: opts.randomSeed };
    const hosting = new ShardHosting(opts.shardCount, opts.replicationFactor ?? 0, metadata, deps, logger);
    hosting.deadMemberGraceMs = opts.deadMemberGraceMs;
    metadata.onApplied((a) => hosting.countMove(a));
    hosting.loadMember = member;
    const inBootstrap = bootstrap.some((m) => m.id === memberId);
    for (const i of opts.testRemoteWatchShards ?? []) {
      if (!Number.isSafeInteger(i) || i < 0 || i >= opts.shardCount) throw new RangeError(`--experimental-test-remote-watch-shards: no shard ${i} (shards 0..${opts.shardCount - 1})`);
    }
    hosting.testRemoteWatchShards = opts.testRemoteWatchShards ?? [];
    if ((opts.testTxnFenceKeepMs ?? 0) > 0) {
      hosting.fenceKeepMs = opts.testTxnFenceKeepMs!;
      hosting.fenceHorizonEveryMs = Math.min(FENCE_HORIZON_EVERY_MS, opts.testTxnFenceKeepMs!);
      logger.warn({ fenceKeepMs: hosting.fenceKeepMs }, 'TEST ONLY: cross-shard transaction fences go after --test-txn-fence-keep-ms');
    }
    for (let index = 0; index < opts.shardCount; index++) {
      const groupId = FIRST_SHARD_GROUP_ID + index;
      const loaded = await Member.recoverSnapshot(db, groupId, snapshotDir, await db.loadGroup(groupId), logger);
      // Placed here, or (before any placement) the cluster's members host every shard, starting from the
      // membership they were given; a replica placed here later starts empty and learns it from its leader.
      const desired = metadata.desiredReplicas(index);
      const boot = hosting.bootstrapVoters(index);
      const wanted = desired === null ? inBootstrap && boot.includes(memberId) : desired.includes(memberId);
      if (!holdsData(loaded) && !wanted) continue;
      // Every replica, whenever it is created, starts from the shard's bootstrap membership (startVoters).
      hosting.host(index, loaded, boot);
    }
    const forward = opts.testForwardShards;
    if (forward !== undefined) {
      const indexes = forward === 'all' ? Array.from({ length: opts.shardCount }, (_, i) => i) : [...forward];
      for (const i of indexes) if (!Number.isInteger(i) || i < 0 || i >= opts.shardCount) throw new RangeError(`--test-forward-shards: no shard ${i} (shards 0..${opts.shardCount - 1})`);
      hosting.forwardShards = new Set(indexes);
      logger.warn({ shards: [...hosting.forwardShards].sort((a, b) => a - b) }, 'TEST-ONLY --test-forward-shards: this member forwards every KV request on these shards to another member');
    }
    return hosting;
  }

  /** A shard's new membership report that settles a move (a report that changes nothing settles none). */
  private readonly settledShards = new Map<number, boolean>();

  private countMove(a: MetadataApplied): void {
    if (a.kind !== 'shard-conf' && a.kind !== 'placement') return;
    for (const shard of a.kind === 'shard-conf' ? [a.shard] : a.shards) {
      const settled = shardSettled(this.metadata.desiredReplicas(shard), this.metadata.observedConf(shard));
      const before = this.settledShards.get(shard) ?? true;
      if (settled && !before) {
        this.movesDone++;
        this.logger.info({ shard, replicas: this.metadata.observedConf(shard)?.voters.map((id) => id.toString(16)) }, 'placement: shard move done');
      }
      this.settledShards.set(shard, settled);
    }
  }

  /**
   * Adds shard `index`'s replica to the member (and, once attached, to the write path and watches).
   * `voters`: the shard's bootstrap membership, which every replica starts from whenever it is created.
   * That membership is not in the log: a replica that replays the log from index 1 (its leader still holds
   * it) must start where every replica started, or the changes it replays build another membership —
   * from an empty one, a replica replaying its own promotion became the only voter of a group of its own;
   * started as a learner, a bootstrap voter restarted with no membership change stored never voted again.
   * A replica created on a member that hosted the shard before cannot campaign on an empty log: its
   * tombstone's vote floor and term fence (Member.removeGroup) hold it back.
   */
  private host(index: number, loaded: LoadedGroup, voters: NodeId[]): HostedShard {
    const groupId = FIRST_SHARD_GROUP_ID + index;
    const { memberId, bootstrap, randomSeed } = this.deps;
    const sm = new KvStateMachine(memberId, loaded.stateRecords, [...bootstrap], { sharded: true, groupId });
    loaded.stateRecords = [];
    this.memberForHosting().addGroup({ groupId, voters, stateMachine: sm, loaded, randomSeed: randomSeed() });
    const shard: HostedShard = { index, groupId, sm, path: null, source: new ReplicaWatchSource(index, sm) };
    this.hosted.set(index, shard);
    this.shards.push(shard);
    this.shards.sort((a, b) => a.index - b.index);
    if (this.member !== null) this.startServing(shard);
    return shard;
  }

  private loadMember: Member | null = null;

  private bootPlacement: Map<number, NodeId[]> | null = null;

  /**
   * The voters shard `index` was created with: every bootstrap member with --replication-factor 0; else
   * the R the placement function picks among the bootstrap members (zones are not known yet: they are
   * published later, and the placer moves replicas if the zone rule wants it). Pure and the same on every
   * member of every version, so every bootstrap member creates exactly the replicas placed on it and
   * every replica created later starts from the same membership.
   */
  private bootstrapVoters(index: number): NodeId[] {
    this.bootPlacement ??= bootstrapPlacement(this.deps.bootstrap, this.shardCount, this.replicationFactor);
    return [...this.bootPlacement.get(index)!];
  }

  private memberForHosting(): Member {
    const m = this.member ?? this.loadMember;
    if (m === null) throw new Error('shard hosting has no member');
    return m;
  }

  /**
   * Starts serving: the oracle host, each shard's write path, the clients reaching other members, and
   * the metadata and shard groups' membership following the cluster group's (group-membership.ts).
   * `maxEntryBytes`: the member's --max-request-bytes (a txn's reads on other shards must fit in it).
   */
  attach(
    member: Member,
    peers: ShardPeers,
    membership: { peerUrlsOf: (id: NodeId) => string[]; zoneOf?: (id: NodeId) => string; logger: Logger },
    maxEntryBytes: number,
  ): void {
    this.member = member;
    this.maxEntryBytes = maxEntryBytes;
    const inCluster = (id: NodeId): boolean => {
      const cs = member.confState(CLUSTER_GROUP_ID);
      return cs.voters.includes(id) || cs.learners.includes(id);
    };
    this.membership = new GroupMembershipReconciler({
      member,
      groupIds: () => [METADATA_GROUP_ID, ...this.shards.map((s) => s.groupId)],
      desired: (groupId) => this.desiredConf(groupId),
      inCluster,
      peerUrlsOf: membership.peerUrlsOf,
      logger: membership.logger,
    });
    this.membership.start();
    // With placement on a subset no member sees every shard: the placer writes a preferred leader per
    // shard and each shard's leader hands over to it; otherwise every member computes the same from its
    // view of every shard.
    this.leaders = new LeaderBalancer({
      member,
      groupIds: () => (this.replicationFactor > 0 || this.shards.length === this.shardCount ? this.shards.map((s) => s.groupId) : []),
      ...(this.replicationFactor > 0 ? { preferred: (groupId: number) => this.metadata.preferredLeader(groupId - FIRST_SHARD_GROUP_ID) } : {}),
      logger: membership.logger,
    });
    this.leaders.start();
    if (this.replicationFactor > 0) {
      this.placer = new Placer({
        member,
        metadataGroupId: METADATA_GROUP_ID,
        logger: membership.logger,
        ...(this.deadMemberGraceMs !== undefined ? { deadMemberGraceMs: this.deadMemberGraceMs } : {}),
        state: () => ({
          members: member.confState(CLUSTER_GROUP_ID).voters.map((id) => ({ id, zone: membership.zoneOf?.(id) ?? '' })),
          draining: new Set(this.metadata.drainingMembers()),
          shardCount: this.shardCount,
          replicationFactor: this.replicationFactor,
          desired: (shard) => this.metadata.desiredReplicas(shard),
          observed: (shard) => this.metadata.observedConf(shard),
          preferredLeader: (shard) => this.metadata.preferredLeader(shard),
        }),
      });
      this.placer.start();
    }
    // A removal of this member is acted on in hostingRound, not here: a replica replaying its log can
    // apply an old removal of itself that a later entry undoes (it was placed here again).
    this.peers = peers;
    this.forwarder = new ShardForwarder({
      selfId: member.memberId,
      candidates: (groupId) => this.replicaCandidates(groupId),
      send: (to, request, callDeadlineMs) => peers.shardKv(to, request, callDeadlineMs),
    });
    const host = new OracleHost(member, this.metadata, { groupId: METADATA_GROUP_ID });
    this.oracleHost = host;
    const self = member.memberId;
    // Requests to this member's own oracle host skip the network.
    const transport: OracleTransport = { request: (to, req) => (to === self ? host.handle(req) : peers.oracle.request(to, req)) };
    const metadataMembers = (): readonly NodeId[] => member.confState(METADATA_GROUP_ID).voters;
    // One oracle client for every shard this member leads and for its multi-shard reads: a turn's needs
    // leave as one request (the client splits the grant among its callers, each part above the last).
    this.readClient = new OracleClient({ requester: `member-${self.toString(16)}`, transport, members: metadataMembers });
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
      busy: () => this.loopLoad.busy(),
      onCloseFailed: (groupId, err) => {
        // A shard electing a leader fails a few rounds in a row: a handful of lines, not one per round.
        if (this.closeFailuresLogged++ < 20) this.logger.warn({ group: groupId, err: err instanceof Error ? err.message : String(err) }, 'closing round failed for a shard (tried again next round)');
      },
    });
    for (const shard of this.shards) this.startServing(shard);
    this.watchServer = new WatchShardServer({
      host: {
        // Only a voting replica here serves streams (a learner's store may not be the shard's yet);
        // NOT_HOSTED sends the caller to another member.
        sourceOf: (groupId) => {
          const hosted = this.hosted.get(groupId - FIRST_SHARD_GROUP_ID);
          return hosted === undefined || member.isLearner(groupId) ? null : hosted.source;
        },
        holdClosingRounds: () => this.holdLocalClosingRounds(),
      },
    });
    for (const index of this.testRemoteWatchShards) {
      // Every other voter of the group hosts a replica (every member hosts every shard in that test).
      this.remoteWatchSource(index, () => this.replicaCandidates(FIRST_SHARD_GROUP_ID + index).filter((id) => id !== member.memberId));
      this.logger.warn({ shard: index }, 'TEST ONLY: merged watches here read this shard from another member (--experimental-test-remote-watch-shards)');
    }
    this.hostingTimer = setInterval(() => this.hostingRound(), HOSTING_INTERVAL_MS);
    this.hostingTimer.unref();
  }

  /** A hosted replica starts taking writes (stamped by its write path when it leads) and feeding watches. */
  private startServing(shard: HostedShard): void {
    const member = this.member;
    const oracle = this.readClient;
    const closer = this.closer;
    if (member === null || oracle === null || closer === null) return;
    const groupsOf = (key: Buffer, rangeEnd: Buffer): number[] => this.slotMap.shardsOfRange(key, rangeEnd).shards.map((i) => FIRST_SHARD_GROUP_ID + i);
    // A txn writing here and reading other shards reads them at its revision − 1 on their leaders.
    const readsElsewhere: ReadsElsewhere = {
      plan: (body) => ('txn' in body && body.txn ? planTxnReads(txnOpFromWire(body.txn), shard.groupId, groupsOf) : []),
      read: (groupId, op, revision, deadlineMs) => this.rangeAtGroup(groupId, op, revision, deadlineMs),
    };
    const recoverTxn = (p: PreparedTxn): Promise<void> => (this.txnRecoverer === null ? Promise.resolve() : this.txnRecoverer(p, shard.groupId));
    const path = new ShardWritePath({ member, groupId: shard.groupId, sm: shard.sm, oracle, readsElsewhere, maxEntryBytes: this.maxEntryBytes, recoverTxn });
    shard.path = path;
    member.interceptProposals(shard.groupId, (data) => path.intercept(data));
    shard.source.onActivity = () => this.activity(null);
  }

  /**
   * What `groupId`'s membership should be. The metadata group: the cluster group's. A shard: its desired
   * replicas as voters (those still in the cluster); before any placement, the cluster group's (R = 0) or
   * the voters it was created with.
   */
  private desiredConf(groupId: number): ConfState {
    const member = this.memberForHosting();
    const cluster = member.confState(CLUSTER_GROUP_ID);
    if (groupId === METADATA_GROUP_ID) return cluster;
    const index = groupId - FIRST_SHARD_GROUP_ID;
    // Its membership as this member knows it: its own replica's, else what its leader reported.
    const facts = this.facts(index);
    const current = this.hosted.has(index) ? member.confState(groupId) : (facts.reported ?? { voters: [], learners: [] });
    return desiredMembership(facts, cluster, { voters: [...current.voters], learners: [...current.learners] }, this.allowedMoves().has(index));
  }

  private facts(index: number): ShardFacts {
    return {
      desired: this.metadata.desiredReplicas(index),
      reported: this.metadata.observedConf(index),
      bootstrapVoters: this.bootstrapVoters(index),
      replicationFactor: this.replicationFactor,
    };
  }


  /**
   * One round: create the replicas placed here, drop those never added that are no longer placed here,
   * and report the membership of every shard this member leads to the metadata group.
   */
  private hostingRound(): void {
    const member = this.member;
    if (member === null || this.stopped) return;
    const self = member.memberId;
    const cluster = member.confState(CLUSTER_GROUP_ID);
    for (let index = 0; index < this.shardCount; index++) {
      const facts = this.facts(index);
      const shard = this.hosted.get(index);
      if (placedHere(facts, self, cluster)) {
        if (!shard && !this.creating.has(index) && !this.dropping.has(index)) void this.create(index);
        continue;
      }
      if (shard && facts.desired !== null && this.mayDelete(shard, facts.reported)) void this.drop(index, 'placed elsewhere, and removed from the shard');
    }
    for (const shard of this.shards) this.report(shard);
    this.finishStaleCommits(member);
  }

  /**
   * A committed transaction's records go once every participant resolved it (the coordinator's forgets).
   * A coordinator that vanished in between leaves them; the leader of a shard holding one finishes it
   * once it has looked stale for STALE_COMMIT_MS, well past the forgets' own delay.
   */
  private finishStaleCommits(member: Member): void {
    const finish = this.txnFinisher;
    if (finish === null) return;
    const now = Date.now();
    const present = new Set<string>();
    for (const shard of this.shards) {
      if (member.leaderId(shard.groupId) !== member.memberId) continue;
      for (const d of shard.sm.txns.committedTxns()) {
        present.add(d.txnId);
        const seen = this.committedSeenMs.get(d.txnId) ?? now;
        this.committedSeenMs.set(d.txnId, seen);
        if (now - seen < STALE_COMMIT_MS || this.finishing.has(d.txnId)) continue;
        this.finishing.add(d.txnId);
        void finish(d)
          .catch(() => false) // tried again at a later round while the record stays
          .finally(() => this.finishing.delete(d.txnId));
      }
    }
    for (const id of this.committedSeenMs.keys()) if (!present.has(id)) this.committedSeenMs.delete(id);
    this.dropOldFences(member, now);
  }

  /**
   * A recoverer's fence (an aborted record) refuses its transaction's late prepare; nothing bounds how
   * late a proposal can apply, so it cannot simply expire. Instead the leader of a shard holding fences
   * moves the shard's fence horizon to FENCE_KEEP_MS ago, at most every FENCE_HORIZON_EVERY_MS: prepares
   * of transactions older than that are refused from then on, and their fences go.
   */
  private dropOldFences(member: Member, now: number): void {
    const move = this.txnFenceHorizon;
    if (move === null) return;
    for (const shard of this.shards) {
      if (member.leaderId(shard.groupId) !== member.memberId || shard.sm.txns.decidedCount('aborted') === 0) continue;
      const horizon = now - this.fenceKeepMs;
      if (now - (this.horizonMovedMs.get(shard.groupId) ?? 0) < this.fenceHorizonEveryMs || horizon <= shard.sm.txns.fenceHorizon()) continue;
      this.horizonMovedMs.set(shard.groupId, now);
      void move(shard.groupId, horizon).catch(() => this.horizonMovedMs.delete(shard.groupId));
    }
  }


  /** mayDeleteReplica (replica-decisions.ts) over this replica's Raft state and how long it has looked left behind. */
  private mayDelete(shard: HostedShard, reported: ShardConf | null): boolean {
    const member = this.memberForHosting();
    const st = member.status(shard.groupId);
    const leaderId = member.leaderId(shard.groupId);
    // How long it has looked left behind (no leader while its group's report excludes it).
    let leftBehindForMs = 0;
    if (looksLeftBehind(leaderId, reported, member.memberId)) {
      const since = this.leaderlessSinceMs.get(shard.index) ?? Date.now();
      this.leaderlessSinceMs.set(shard.index, since);
      leftBehindForMs = Date.now() - since;
    } else this.leaderlessSinceMs.delete(shard.index);
    const unappliedNamesSelf = member.unappliedConfChangeNames(shard.groupId, member.memberId);
    return mayDeleteReplica({ lastIndex: st.lastIndex, conf: member.confState(shard.groupId), leaderId, leftBehindForMs, unappliedNamesSelf }, member.memberId);
  }

  private readonly leaderlessSinceMs = new Map<number, number>();

  /** Tells the metadata group where a shard this member leads is now (when that changed). */
  private report(shard: HostedShard): void {
    const member = this.memberForHosting();
    if (member.role(shard.groupId) !== 'leader') return;
    const conf = member.confState(shard.groupId);
    const known = this.metadata.observedConf(shard.index);
    if (known !== null && sameMembers(known.voters, conf.voters) && sameMembers(known.learners, conf.learners)) return;
    const text = JSON.stringify(conf);
    const last = this.reported.get(shard.index);
    if (last !== undefined && last.text === text && Date.now() - last.atMs < REPORT_RESEND_MS) return;
    try {
      member.propose(METADATA_GROUP_ID, encodeMetadataEntry({ kind: 'shard-conf', shard: shard.index, voters: conf.voters, learners: conf.learners }));
      this.reported.set(shard.index, { text, atMs: Date.now() });
    } catch {
      // No metadata leader right now: the next round reports again.
    }
  }

  /** Creates the replica of shard `index` placed on this member: empty; its leader's snapshot fills it. */
  private async create(index: number): Promise<void> {
    this.creating.add(index);
    try {
      const { db, snapshotDir } = this.deps;
      const groupId = FIRST_SHARD_GROUP_ID + index;
      const loaded = await Member.recoverSnapshot(db, groupId, snapshotDir, await db.loadGroup(groupId), this.logger);
      if (this.stopped || this.hosted.has(index)) return;
      this.host(index, loaded, this.bootstrapVoters(index));
      this.logger.info({ shard: index, group: groupId }, 'shard replica created: placed on this member');
    } catch (err) {
      this.logger.warn({ shard: index, err: String(err) }, 'creating a shard replica failed (tried again next round)');
    } finally {
      this.creating.delete(index);
    }
  }

  /** Stops hosting shard `index` and deletes its data (Member.removeGroup). */
  private async drop(index: number, why: string): Promise<void> {
    const shard = this.hosted.get(index);
    if (!shard || this.dropping.has(index)) return;
    this.dropping.add(index);
    this.hosted.delete(index);
    this.shards.splice(this.shards.indexOf(shard), 1);
    shard.path?.stop();
    addShardStats(this.retiredPathStats, shard); // counters never go back
    // Merged watches following this replica go on from a replica elsewhere.
    if (shard.source.subscriptionCount() > 0) {
      const self = this.memberForHosting().memberId;
      shard.source.retire(this.remoteWatchSource(index, () => this.replicaCandidates(shard.groupId).filter((id) => id !== self)));
    }
    try {
      await this.memberForHosting().removeGroup(shard.groupId);
      this.logger.info({ shard: index, group: shard.groupId, why }, 'shard replica removed from this member; its data is deleted');
    } catch (err) {
      this.logger.warn({ shard: index, err: String(err) }, 'removing a shard replica failed');
    } finally {
      this.dropping.delete(index);
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

  /** Every remote source some merged watch follows now. */
  private followedRemoteSources(): RemoteWatchSource[] {
    return [...this.remoteSources.values()].filter((r) => r.subscriptionCount() > 0);
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
    const shard = this.hosted.get(groupId - FIRST_SHARD_GROUP_ID);
    if (shard?.path == null) return Promise.reject(new ShardNotReadyError(`group ${groupId} is not a shard hosted here`));
    return shard.path.readAt(op, revision, deadlineMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.hostingTimer) clearInterval(this.hostingTimer);
    this.placer?.stop();
    this.membership?.stop();
    this.leaders?.stop();
    this.closer?.stop();
    this.watchServer?.stop();
    for (const s of this.shards) s.path?.stop();
  }

  /** The close this member serves as the leader of `groupId` (the peer service's CloseAt), with its applied index after it. */
  async closeAtHere(groupId: number, revision: number, deadlineMs: number): Promise<ShardClose> {
    const shard = this.hosted.get(groupId - FIRST_SHARD_GROUP_ID);
    if (shard?.path == null || this.member === null) throw new ShardNotReadyError(`group ${groupId} is not a shard hosted here`);
    const closed = await shard.path.closeAt(revision, deadlineMs);
    // The replica may have left this member while the close waited (its shard moved): the caller asks
    // the shard's leader elsewhere, as for any member that is not (or no longer) the ready leader.
    if (!this.member.hostsGroup(groupId)) throw new ShardNotReadyError(`group ${groupId} left this member during the close`);
    return { revision: closed, appliedIndex: this.member.status(groupId).applied };
  }

  // ---- ShardedKeyspace ---------------------------------------------------------------------

  shardViews(): ReturnType<ShardedKeyspace['shardViews']> {
    const member = this.memberForHosting();
    return Array.from({ length: this.shardCount }, (_, shard) => {
      const hosted = this.hosted.get(shard);
      if (hosted !== undefined) {
        const conf = member.confState(hosted.groupId);
        return { shard, voters: conf.voters, learners: conf.learners, leader: member.leaderId(hosted.groupId), revision: hosted.sm.appliedRevision() };
      }
      const conf = this.metadata.observedConf(shard) ?? { voters: this.metadata.desiredReplicas(shard) ?? [], learners: [] };
      const remote = this.remoteViews.get(shard);
      if (remote !== undefined && Date.now() - remote.atMs <= REMOTE_VIEW_FRESH_MS) return { shard, voters: conf.voters, learners: conf.learners, leader: remote.leaderId, revision: remote.appliedRevision };
      return { shard, voters: conf.voters, learners: conf.learners, leader: this.learnedLeaders.get(FIRST_SHARD_GROUP_ID + shard) ?? 0, revision: 0 };
    });
  }

  async refreshRemoteViews(deadlineMs: number): Promise<void> {
    const peers = this.peers;
    if (peers === null) return;
    const self = this.memberForHosting().memberId;
    // Each member hosting shards this one does not is asked once, for all of them.
    const asks = new Map<NodeId, number[]>();
    for (let shard = 0; shard < this.shardCount; shard++) {
      if (this.hosted.has(shard)) continue;
      const conf = this.metadata.observedConf(shard);
      for (const id of conf?.voters ?? this.metadata.desiredReplicas(shard) ?? []) {
        if (id === self) continue;
        asks.set(id, [...(asks.get(id) ?? []), FIRST_SHARD_GROUP_ID + shard]);
      }
    }
    const answers = await Promise.all([...asks].map(async ([to, groupIds]) => ({ to, statuses: await peers.shardStatus(to, groupIds, deadlineMs) })));
    const atMs = Date.now();
    // Per shard: the leader's own answer if it gave one (its revision is the shard's newest), else the
    // answer with the highest applied revision.
    const best = new Map<number, { leaderId: NodeId; appliedRevision: number; fromLeader: boolean }>();
    for (const { to, statuses } of answers) {
      for (const st of statuses) {
        const shard = st.groupId - FIRST_SHARD_GROUP_ID;
        const fromLeader = st.leaderId === to;
        const prev = best.get(shard);
        if (prev === undefined || (fromLeader && !prev.fromLeader) || (fromLeader === prev.fromLeader && st.appliedRevision > prev.appliedRevision)) {
          best.set(shard, { leaderId: st.leaderId, appliedRevision: st.appliedRevision, fromLeader });
        }
      }
    }
    for (const [shard, b] of best) this.remoteViews.set(shard, { leaderId: b.leaderId, appliedRevision: b.appliedRevision, atMs });
  }

  /** What this member's replica of `groupId` knows (ShardStatus), or null when it hosts none. */
  shardStatusHere(groupId: number): { leaderId: NodeId; appliedRevision: number } | null {
    const hosted = this.hosted.get(groupId - FIRST_SHARD_GROUP_ID);
    if (hosted === undefined) return null;
    return { leaderId: this.memberForHosting().leaderId(hosted.groupId), appliedRevision: hosted.sm.appliedRevision() };
  }

  async drain(memberId: NodeId, cancel: boolean, deadlineMs: number): Promise<{ draining: boolean; replicasRemaining: number }> {
    if (this.replicationFactor === 0) throw new PlacementRefusedError('synod: drain needs placement on a subset (--replication-factor R > 0): with 0 every member hosts every shard');
    const member = this.memberForHosting();
    const want = !cancel;
    let proposedAtMs = 0;
    while (this.metadata.drainingMembers().includes(memberId) !== want) {
      if (Date.now() >= deadlineMs) throw new ShardDeadlineError('the drain mark was not applied in time');
      if (Date.now() - proposedAtMs > DRAIN_RESEND_MS) {
        try {
          // At the placement version seen now: a copy resent below, or one still on its way when a later
          // drain or undrain applies, changes nothing when it lands (a late "up" once undid a drain).
          member.propose(METADATA_GROUP_ID, encodeMetadataEntry({ kind: 'member-state', memberId, state: want ? 'draining' : 'up', ifVersion: this.metadata.placementVersion }));
          proposedAtMs = Date.now();
        } catch {
          // No metadata leader yet: proposed again on the next pass.
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    let replicasRemaining = 0;
    for (let shard = 0; shard < this.shardCount; shard++) {
      const conf = this.metadata.observedConf(shard);
      if (conf !== null && (conf.voters.includes(memberId) || conf.learners.includes(memberId))) replicasRemaining++;
    }
    return { draining: want, replicasRemaining };
  }

  async transferLeaderships(deadlineMs: number): Promise<{ transferred: number; remaining: number }> {
    const member = this.memberForHosting();
    const groups = [METADATA_GROUP_ID, ...[...this.hosted.values()].map((h) => h.groupId)];
    // A shard replica may leave this member during the handovers (a move): it is no longer led here.
    const led = (): number[] => groups.filter((g) => member.hostsGroup(g) && member.role(g) === 'leader');
    // Only a group with another voter can lose its leader to a handover; a lone voter keeps it.
    const movable = (): number[] => led().filter((g) => member.confState(g).voters.some((v) => v !== member.memberId));
    // Before the first handover: the balancers of the new leaders would hand them back within seconds.
    member.declineLeadershipHandovers(HANDED_OVER_DECLINE_MS);
    let transferred = 0;
    // In parallel: each transfer is one group's own Raft handover (the target campaigns with consent),
    // independent of the others; sequential handovers of 16 shards would take 16 round trips.
    await Promise.all(movable().map(async (groupId) => {
      const target = member.bestTransferee(groupId);
      if (target === 0) return;
      try {
        await member.transferLeadership(groupId, target, Math.max(0, deadlineMs - Date.now()));
        transferred++;
      } catch {
        // Deposed meanwhile, the target fell behind, or out of time: counted below if still led here.
      }
    }));
    return { transferred, remaining: movable().length };
  }

  metadataLeaderId(): NodeId {
    return this.memberForHosting().leaderId(METADATA_GROUP_ID);
  }

  placementProgress(): ReturnType<ShardedKeyspace['placementProgress']> {
    let unsettled = 0;
    for (let shard = 0; shard < this.shardCount; shard++) if (!shardSettled(this.metadata.desiredReplicas(shard), this.metadata.observedConf(shard))) unsettled++;
    const inProgress = this.allowedMoves().size;
    return { version: this.metadata.placementVersion, pending: unsettled - inProgress, inProgress, done: this.movesDone };
  }

  /** The shards whose leaders may move them now (placer.ts movesAllowed, over this member's metadata). */
  private allowedMoves(): Set<number> {
    return movesAllowed(this.shardCount, (s) => this.metadata.desiredReplicas(s), (s) => this.metadata.observedConf(s), MAX_MOVING_SHARDS);
  }

  appliedRevision(): number {
    let newest = 0;
    for (const hosted of this.hosted.values()) newest = Math.max(newest, hosted.sm.appliedRevision());
    return newest;
  }

  /** Every shard in order: the replica hosted here, or a target whose state machine is elsewhere. */
  targets(): readonly GroupTarget[] {
    return Array.from({ length: this.shardCount }, (_, i) => this.targetOf(i));
  }

  /**
   * Shard `index` as a request target. Not hosted here: the API checks hosts() and forwards before it
   * would touch the state machine, so reading it is a bug, and it says so instead of answering wrongly.
   */
  private targetOf(index: number): GroupTarget {
    const hosted = this.hosted.get(index);
    if (hosted !== undefined) return hosted;
    const groupId = FIRST_SHARD_GROUP_ID + index;
    const notHosted = (): ShardNotReadyError => this.notHosted(index);
    return {
      groupId,
      get sm(): KvStateMachine {
        throw notHosted();
      },
    };
  }

  private notHosted(index: number): ShardNotReadyError {
    const conf = this.metadata.observedConf(index);
    const where = conf === null ? 'elsewhere' : `on ${conf.voters.map((id) => id.toString(16)).join(',')}`;
    return new ShardNotReadyError(`shard ${index} is not hosted on this member (it is ${where}); ask a member hosting it`);
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

  /**
   * Whether every group is where it should be: the metadata group has the cluster group's membership, and
   * every shard its desired one (the cluster's before any placement). A shard hosted here is judged by
   * its membership as applied here; one hosted elsewhere by what its leader last reported.
   */
  private groupsFollowCluster(): boolean {
    const member = this.member;
    if (member === null) return false;
    const settled = (groupId: number, cs: { voters: readonly NodeId[]; learners: readonly NodeId[] } | null): boolean => {
      const want = this.desiredConf(groupId);
      return cs !== null && sameMembers(cs.voters, want.voters) && sameMembers(cs.learners, want.learners);
    };
    if (!settled(METADATA_GROUP_ID, member.confState(METADATA_GROUP_ID))) return false;
    for (let index = 0; index < this.shardCount; index++) {
      const groupId = FIRST_SHARD_GROUP_ID + index;
      if (!settled(groupId, this.hosted.has(index) ? member.confState(groupId) : this.metadata.observedConf(index))) return false;
    }
    return true;
  }

  removalBlock(memberId: NodeId): ShardRemovalBlock | null {
    const block = this.removalBlocker(memberId);
    if (block !== null) this.logger.warn({ member: memberId.toString(16), why: block.why }, 'member remove refused for now');
    return block;
  }

  /**
   * Why removing voter `memberId` now could leave a group without a quorum, or null when it cannot.
   * Asked at the cluster group's leader, whose view of which members run is the one etcd's check uses.
   */
  private removalBlocker(memberId: NodeId): ShardRemovalBlock | null {
    const member = this.member;
    if (member === null) return { kind: 'unhealthy', why: 'shards not attached yet' };
    if (this.replicationFactor === 0) return this.groupsFollowCluster() ? null : { kind: 'unhealthy', why: 'some group has not caught up with the last membership change' };
    // The metadata group follows the cluster group on every member, as with R = 0.
    const cluster = member.confState(CLUSTER_GROUP_ID);
    const meta = member.confState(METADATA_GROUP_ID);
    if (!sameMembers(meta.voters, cluster.voters) || !sameMembers(meta.learners, cluster.learners)) return { kind: 'unhealthy', why: 'the metadata group has not caught up with the cluster membership' };
    const staying = (id: NodeId): boolean => id !== memberId && (cluster.voters.includes(id) || cluster.learners.includes(id));
    const views = Array.from({ length: this.shardCount }, (_, index) => ({
      index,
      facts: this.facts(index),
      local: this.hosted.has(index) ? member.confState(FIRST_SHARD_GROUP_ID + index) : null,
    }));
    const active = new Set(member.activeMembers(CLUSTER_GROUP_ID));
    return shardRemovalBlocker(memberId, views, staying, (id) => active.has(id));
  }

  readinessGroups(): number[] {
    // A replica left behind (removed from its shard while this member was away or cut off) never hears
    // a leader again and is deleted after LEFT_BEHIND_AFTER_MS; it serves nothing meanwhile (requests on
    // its shard are forwarded), so the member's readiness does not wait for it.
    const member = this.member;
    const current = this.shards.filter((s) => member === null || !looksLeftBehind(member.leaderId(s.groupId), this.metadata.observedConf(s.index), member.memberId));
    return [METADATA_GROUP_ID, ...current.map((s) => s.groupId)];
  }

  shardOf(key: Buffer): GroupTarget {
    return this.targetOf(this.slotMap.shardOfKey(key));
  }

  shardsOfRange(key: Buffer, rangeEnd: Buffer): GroupTarget[] {
    return this.slotMap.shardsOfRange(key, rangeEnd).shards.map((i) => this.targetOf(i));
  }

  async freshRevision(deadlineMs: number): Promise<number> {
    if (this.readClient === null) throw new ShardNotReadyError('shards not attached yet');
    return (await this.readClient.next(1, deadlineMs)).last;
  }

  /** On the shard's leader: here, or on the peer that leads it (following a moved leadership until the deadline). */
  async rangeAt(target: GroupTarget, op: RangeOp, revision: number, deadlineMs: number): Promise<RangeResult> {
    return this.rangeAtGroup(target.groupId, op, revision, deadlineMs);
  }

  /** rangeAt by group id: the shard need not be hosted here. */
  rangeAtGroup(groupId: number, op: RangeOp, revision: number, deadlineMs: number): Promise<RangeResult> {
    return this.onLeader(
      groupId,
      deadlineMs,
      () => this.readAtHere(groupId, op, revision, deadlineMs),
      (to) => this.peers!.rangeAt(to, groupId, op, revision, deadlineMs),
    );
  }

  /**
   * Who to ask for `groupId`'s leader: this member's Raft view when it hosts the shard; otherwise the
   * leader last learned from an answer, else the shard's reported voters in turn.
   */
  private leaderGuess(groupId: number, attempt: number): NodeId {
    const member = this.memberForHosting();
    const index = groupId - FIRST_SHARD_GROUP_ID;
    if (groupId === METADATA_GROUP_ID || this.hosted.has(index)) return member.leaderId(groupId);
    const cluster = member.confState(CLUSTER_GROUP_ID);
    const inCluster = (id: NodeId): boolean => cluster.voters.includes(id) || cluster.learners.includes(id);
    const learned = this.learnedLeaders.get(groupId);
    if (learned !== undefined && attempt === 0 && inCluster(learned)) return learned;
    // Members that left the cluster are not asked (a call to one may hang until the deadline).
    const voters = (this.metadata.observedConf(index)?.voters ?? []).filter(inCluster);
    return voters.length === 0 ? 0 : voters[attempt % voters.length];
  }

  private readonly learnedLeaders = new Map<number, NodeId>();
  /** Leader and applied revision of shards hosted elsewhere, as their hosts last answered (refreshRemoteViews). */
  private readonly remoteViews = new Map<number, { leaderId: NodeId; appliedRevision: number; atMs: number }>();

  /** Every shard replica on this member as a merged watch's source, by shard index. */
  watchSources(): ReadonlyMap<number, ShardWatchSource> {
    const sources = new Map<number, ShardWatchSource>();
    const self = this.memberForHosting().memberId;
    for (let index = 0; index < this.shardCount; index++) {
      const groupId = FIRST_SHARD_GROUP_ID + index;
      const hosted = this.hosted.get(index);
      // A voting replica here (a learner may still be catching up: its store is not the shard's yet),
      // unless the test switch reads it remotely; otherwise a replica on another member.
      if (hosted !== undefined && this.hosts(groupId) && !this.testRemoteWatchShards.includes(index)) sources.set(index, hosted.source);
      else sources.set(index, this.remoteWatchSource(index, () => this.replicaCandidates(groupId).filter((id) => id !== self)));
    }
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


  writePathStatus(): ReturnType<ShardedKeyspace['writePathStatus']> {
    const total = { ...this.retiredPathStats };
    for (const s of this.shards) addShardStats(total, s);
    return { ...total, preparedNow: this.shards.reduce((sum, s) => sum + s.sm.txns.preparedCount(), 0) };
  }

  closingStatus(): ReturnType<ShardedKeyspace['closingStatus']> {
    const c = this.closer;
    return { active: c?.active() ?? false, rounds: c?.stats.rounds ?? 0, closes: c?.stats.closes ?? 0, closeFailures: c?.stats.closeFailures ?? 0 };
  }

  /** Whether this member serves `groupId`'s requests: it hosts a voting replica of the group (and no test switch says otherwise). */
  hosts(groupId: number): boolean {
    const index = groupId - FIRST_SHARD_GROUP_ID;
    if (!this.hosted.has(index) || this.forwardShards.has(index) || this.member === null) return false;
    // A learner is no voter: servesFromReplica refuses it.
    const facts = { conf: this.member.confState(groupId), desired: this.metadata.desiredReplicas(index), reported: this.metadata.observedConf(index) };
    return servesFromReplica(facts, this.member.memberId);
  }

  /**
   * The members to forward `groupId`'s requests to: its voters as its leader last reported them (the
   * metadata group), then those placed there; the cluster group's voters before any report.
   */
  replicaCandidates(groupId: number): NodeId[] {
    if (this.member === null) return [];
    const index = groupId - FIRST_SHARD_GROUP_ID;
    const reported = this.metadata.observedConf(index)?.voters ?? [];
    const desired = this.metadata.desiredReplicas(index) ?? [];
    const out = [...new Set([...reported, ...desired])];
    return out.length > 0 ? out : [...this.member.confState(CLUSTER_GROUP_ID).voters];
  }

  forwardKv(groupId: number, op: ShardKvOp, deadlineMs: number): Promise<ForwardedAnswer> {
    if (this.forwarder === null) return Promise.reject(new ShardNotReadyError('shards not attached yet'));
    return this.forwarder.forward({ groupId, deadlineMs, op });
  }

  readPagesStatus(): number {
    return this.peers?.readPages?.() ?? 0;
  }

  forwardStatus(): ReturnType<ShardedKeyspace['forwardStatus']> {
    const st = this.forwarder?.stats;
    return { forwards: st?.forwards ?? 0, attempts: st?.attempts ?? 0, notHosted: st?.notHosted ?? 0, unreachable: st?.unreachable ?? 0, lost: st?.lost ?? 0 };
  }

  /** `here` when this member leads `groupId`, else `there` on the member that does (following a moved leadership until the deadline). */
  private async onLeader<T extends object>(groupId: number, deadlineMs: number, here: () => Promise<T>, there: (to: NodeId) => Promise<T | { notLeader: NodeId }>): Promise<T> {
    const member = this.member;
    if (member === null || this.peers === null) throw new ShardNotReadyError('shards not attached yet');
    // Built only when needed: an Error captures a stack, and closing rounds and multi-shard reads come
    // through here for every shard, many times a second.
    let lastError: unknown = null;
    let hint: NodeId = 0;
    for (let attempt = 0; Date.now() < deadlineMs; attempt++) {
      const leader = hint !== 0 ? hint : this.leaderGuess(groupId, attempt);
      hint = 0;
      try {
        if (leader === member.memberId) return await here();
        if (leader !== 0) {
          const answer = await there(leader);
          if (!('notLeader' in answer)) {
            this.learnedLeaders.set(groupId, leader);
            return answer;
          }
          hint = answer.notLeader;
          if (hint !== 0) this.learnedLeaders.set(groupId, hint);
          lastError = new ShardNotReadyError(`member ${leader.toString(16)} no longer leads shard group ${groupId}`);
        }
      } catch (err) {
        // A shard still getting ready, or a leader lost mid-read: try again while time remains. Anything
        // else (a compacted or future revision) is the answer.
        if (!(err instanceof ShardNotReadyError)) throw err;
        lastError = err;
        // A leader learned earlier that does not answer is not asked first again.
        if (this.learnedLeaders.get(groupId) === leader) this.learnedLeaders.delete(groupId);
      }
      if (hint === 0) await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
    }
    throw lastError ?? new ShardNotReadyError(`no leader for shard group ${groupId}`);
  }


}

// The member's HTTP side: /healthz and /livez (the process serves), /readyz (part of a quorum with a
// known leader and caught up on what is committed), /health and /version (etcd's, etcd-health.ts),
// /metrics (Prometheus text via prom-client) and /placement (where the keyspace lives, as JSON:
// placement-http.ts). On the metrics port, and on the client ports for HTTP/1.x connections, as etcd
// serves /health, /version and /metrics on its client port.
import { crossShardStats } from './cross-shard-txn.ts';
import { clockBehindNowMs } from '../txn/coordinator.ts';
import type { SendRateStats } from '../transport/send-rate-limiter.ts';
import type { StreamCallStats } from '../transport/peer-transport.ts';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { checkHealth, parseHealthQuery } from './etcd-health.ts';
import { injectHttp1Connection } from './client-listener.ts';
import type { JsonGateway } from './json-gateway.ts';
import { ETCD_COMPAT_VERSION } from './maintenance-service.ts';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import client from 'prom-client';
import type { ApiContext } from './context.ts';
import { DATA_GROUP_ID } from './context.ts';
import type { FaultInjector } from '../transport/fault-injector.ts';
import { answerPlacement } from './placement-http.ts';
import { observePlacement } from './placement-source.ts';
import { registerPlacementMetrics } from './placement-metrics.ts';
import type { WorkSlots } from './work-slots.ts';

// node:http through process.getBuiltinModule, not an ESM import: the ESM facade of a builtin reads every
// export once, and node:http's WebSocket, EventSource and fetch-related exports are getters that load
// undici (~50 ms of CPU at every member start, for a client this server never uses).
const { createServer } = process.getBuiltinModule('node:http');

/** A member is caught up when it is at most this many committed entries behind in applying. */
const READY_MAX_APPLY_LAG_ENTRIES = 100;

/** Longest /placement waits for the members hosting shards this one does not to answer ShardStatus. */
const REMOTE_VIEW_WAIT_MS = 1_000;

export function readiness(ctx: ApiContext): { ready: boolean; reason: string } {
  // A sharded cluster's member serves once every group it hosts has a leader and is caught up.
  const groups = [DATA_GROUP_ID, ...(ctx.shards?.readinessGroups() ?? [])];
  for (const groupId of groups) {
    const s = ctx.member.status(groupId);
    const which = groupId === DATA_GROUP_ID ? '' : ` in group ${groupId}`;
    if (s.leaderId === 0) return { ready: false, reason: `no leader${which}` };
    if (s.commit - s.applied > READY_MAX_APPLY_LAG_ENTRIES) {
      return { ready: false, reason: `applying${which}: ${s.commit - s.applied} committed entries behind` };
    }
  }
  return { ready: true, reason: 'ok' };
}

export function buildRegistry(ctx: ApiContext, snapshotSend?: SendRateStats, streamCalls?: StreamCallStats, slots: { backups?: WorkSlots; hashes?: WorkSlots } = {}): client.Registry {
  const registry = new client.Registry();
  // Unprefixed, as every Prometheus client library names them and as etcd exports them: dashboards and
  // `etcdctl check datascale` read process_resident_memory_bytes from 2379/metrics.
  client.collectDefaultMetrics({ register: registry });
  const status = (): ReturnType<typeof ctx.member.status> => ctx.member.status(DATA_GROUP_ID);
  const gauge = (name: string, help: string, read: () => number): void => {
    new client.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  const counter = (name: string, help: string, read: () => number): void => {
    new client.Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };
  gauge('synod_server_has_leader', 'Whether the data group has a known leader (1) or not (0).', () => (status().leaderId ? 1 : 0));
  gauge('synod_server_is_leader', 'Whether this member leads the data group.', () => (status().role === 'leader' ? 1 : 0));
  gauge('synod_raft_term', 'Current Raft term of the data group.', () => status().term);
  gauge('synod_raft_commit_index', 'Committed Raft index of the data group.', () => status().commit);
  gauge('synod_raft_applied_index', 'Applied Raft index of the data group.', () => status().applied);
  gauge('synod_mvcc_revision', 'Current MVCC revision.', () => ctx.sm.store.currentRevision());
  gauge('synod_mvcc_compact_revision', 'Last compacted MVCC revision.', () => ctx.sm.store.compactedRevision());
  gauge('synod_watchers', 'Live watchers on this member.', () => ctx.sm.hub.watcherCount());
  gauge('synod_watchers_slow', 'Watchers parked because their stream exceeded its send budget (caught up from the store when it drains).', () => ctx.sm.hub.parkedCount());
  gauge('synod_proposals_pending', 'Client writes proposed by this member and not yet applied.', () => ctx.sm.pendingCount());
  counter('synod_proposals_retried_total', 'Writes this member proposed again because their previous attempt was known lost with a leadership (it can no longer apply anywhere: docs/architecture.md, "Proposals fenced to a term").', () => ctx.proposalsRetried);
  const stats = ctx.member.stats;
  counter('synod_server_leader_changes_seen_total', 'Leader changes seen by this member.', () => stats.leaderChanges);
  counter('synod_read_index_retries_total', 'Linearizable read rounds asked again after half an election timeout unanswered (a leader change dropped them).', () => stats.readIndexRetries);
  counter('synod_raft_reads_on_lease_total', 'Linearizable reads (ReadIndex requests, this member\'s and those its followers passed on) answered on a leader lease, without a heartbeat round.', () => ctx.member.readsOnLease());
  counter('synod_member_turns_total', 'Turns of this member\'s Raft loop (each collects every group\'s Ready and writes one batch).', () => stats.turns);
  counter('synod_disk_synced_batches_total', 'Synced LevelDB batches written (one per loop turn with Raft data).', () => stats.syncedBatches);
  counter('synod_raft_entries_persisted_total', 'Raft entries written to the log.', () => stats.entriesPersisted);
  counter('synod_raft_entries_applied_total', 'Raft entries applied to the state machine.', () => stats.entriesApplied);
  counter('synod_raft_messages_sent_total', 'Raft messages handed to the peer transport.', () => stats.messagesSent);
  counter('synod_raft_messages_sent_at_once_total', 'Of those, sent outside the member loop\'s turns: proposals and read requests a follower passed on, read answers a leader gave on its lease.', () => stats.messagesSentAtOnce);
  counter('synod_raft_read_answers_taken_on_arrival_total', 'Answers to this member\'s read rounds taken as they arrived, outside the member loop\'s turns.', () => stats.readAnswersTakenOnArrival);
  counter('synod_snapshots_taken_total', 'Snapshot points taken (every --snapshot-count applied entries).', () => stats.snapshotsTaken);
  counter('synod_snapshots_sent_total', 'Snapshots streamed to members behind the compacted log.', () => stats.snapshotsSent);
  if (snapshotSend) {
    counter('synod_snapshot_sent_bytes_total', 'Snapshot bytes sent to peers (paced by --max-snapshot-send-bytes-per-second).', () => snapshotSend.bytes);
    counter('synod_snapshot_send_throttled_seconds_total', 'Time snapshot chunks waited for the send pace, summed over transfers.', () => snapshotSend.throttledMs / 1000);
  }
  counter('synod_client_connections_authority_repaired_total', 'Client connections whose requests named an :authority Node\'s HTTP/2 refuses (etcdctl 3.4 sends "http://host:port" from --cluster commands), served with it repaired.', () => ctx.clientConnections.repaired);
  counter('synod_snapshots_installed_total', 'Snapshots received from the leader and installed.', () => stats.snapshotsInstalled);
  if (streamCalls) {
    // Calls riding the peer streams beside Raft's messages (the oracle's requests, the closing rounds).
    counter('synod_peer_stream_calls_sent_total', 'Calls this member made to peers on the peer streams.', () => streamCalls.sent);
    counter('synod_peer_stream_calls_served_total', 'Calls from peers this member served on the peer streams.', () => streamCalls.served);
    counter('synod_peer_stream_calls_lost_total', 'Calls sent on a peer stream that broke before their reply came.', () => streamCalls.lost);
    counter('synod_peer_frames_sent_total', 'Frames this member wrote to its peer streams (Raft messages, calls and replies, batched per peer and flush).', () => streamCalls.framesSent);
    counter('synod_peer_stream_calls_timed_out_total', 'Calls on the peer streams whose reply did not come by their deadline.', () => streamCalls.timedOut);
  }
  // Shard proposals forwarded here while a leadership or a replica moved (server/member/forwarded-proposal.ts).
  counter('synod_forwarded_proposal_retries_total', 'Forwarded shard proposals routed again after a pause because no leader was known here.', () => stats.forwardedProposalRetries);
  counter('synod_forwarded_proposals_passed_on_total', 'Forwarded proposals for a shard replica removed from this member, passed to the leader it had.', () => stats.forwardedProposalsPassedOn);
  counter('synod_forwarded_proposals_dropped_total', 'Forwarded shard proposals dropped: no leader known within the hold time, or none to pass them to.', () => stats.forwardedProposalsDropped);
  counter('synod_proposals_to_unreachable_leader_total', 'Proposal attempts this member refused (its caller tries again) because its stream to the leader had not come up since it started: the transport would have dropped them unsent.', () => stats.proposalsToUnreachableLeader);
  gauge('synod_raft_first_index', 'First Raft log index still stored (the log is compacted before it).', () => status().firstIndex);
  const { backups, hashes } = slots;
  if (backups !== undefined) {
    gauge('synod_backups_running', 'Backups (Maintenance.Snapshot streams) this member is making now.', () => backups.runningCount);
    gauge('synod_backups_waiting', 'Backups waiting for one of the running ones to end (past the bound, refused as too many requests).', () => backups.waitingCount);
  }
  if (hashes !== undefined) {
    gauge('synod_hashes_running', 'Hash and HashKV computations this member runs now.', () => hashes.runningCount);
    gauge('synod_hashes_waiting', 'Hash and HashKV calls waiting for the running one to end (past the bound, refused as too many requests).', () => hashes.waitingCount);
  }
  gauge('synod_server_is_learner', 'Whether this member is a learner (replicates, does not vote).', () => (ctx.isLearner() ? 1 : 0));
  // Stalls of the one event loop that runs Raft ticks, heartbeats, peer I/O and requests alike
  // (docs/architecture.md, "Bounded work per turn"): the longest delay since the previous scrape.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  gauge('synod_event_loop_delay_max_seconds', 'Longest event-loop delay since the previous scrape.', () => {
    const max = loopDelay.max / 1e9;
    loopDelay.reset();
    return max;
  });
  gauge('synod_disk_batch_write_max_seconds', 'Longest turn batch write (with its fsync) since the previous scrape; the next turn waits for it.', () => ctx.member.takeBatchWriteMaxMs() / 1000);
  gauge('synod_raft_leader_message_gap_max_seconds', 'Longest silence from the leader seen by this follower since the previous scrape.', () => ctx.member.takeLeaderGapMaxMs() / 1000);
  registerPlacementMetrics(registry, () => observePlacement(ctx));
  const shards = ctx.shards;
  if (shards !== null) {
    // The revision oracle of a sharded cluster, as this member hosts it (it serves on the metadata leader).
    gauge('synod_oracle_serving', 'Whether this member serves revision batches (leads the metadata group, oracle established).', () => (shards.oracleStatus().serving ? 1 : 0));
    // Cross-shard transactions coordinated here (server/txn/coordinator.ts): attempts above txns are
    // retries after a refused prepare (wait-die) or a lost decision.
    const txnStats = crossShardStats(ctx);
    counter('synod_cross_shard_txns_total', 'Cross-shard transactions (and lease sweeps over several shards) coordinated by this member.', () => txnStats.txns);
    counter('synod_cross_shard_txn_attempts_total', 'Attempts of those transactions (a refused prepare or a lost decision starts another).', () => txnStats.attempts);
    counter('synod_cross_shard_txn_aborts_total', 'Attempts aborted before their decision.', () => txnStats.aborts);
    counter('synod_cross_shard_txns_committed_total', 'Cross-shard transactions committed by this member\'s decision.', () => txnStats.committed);
    counter('synod_cross_shard_txns_decided_at_prepare_total', 'Committed cross-shard transactions coordinated here whose prepares decided the branch (their compares evaluated at the prepares, no read before).', () => txnStats.decidedAtPrepare);
    counter('synod_cross_shard_txns_finished_total', 'Committed cross-shard transactions this member finished for a coordinator that vanished before its forgets.', () => txnStats.finished);
    gauge('synod_cross_shard_txn_clock_behind_seconds', 'How far this member\'s wall clock is behind the shard leaders\', as a fence horizon that refused one of its prepares showed (0: never refused so; forgotten 10 minutes after it was learnt, and learnt again if still so): its transactions\' ages are moved up by as much. Fix its clock.', () => clockBehindNowMs(txnStats) / 1_000);
    const recordsHere = (state: 'committed' | 'aborted'): number => shards.targets().filter((t) => shards.hosts(t.groupId)).reduce((sum, t) => sum + t.sm.txns.decidedCount(state), 0);
    gauge('synod_cross_shard_txn_committed_records', 'Records of committed cross-shard transactions held by the shard replicas here (each goes once every participant resolved).', () => recordsHere('committed'));
    gauge('synod_cross_shard_txn_aborted_records', 'Fences of cross-shard transactions a recoverer aborted, held by the shard replicas here (they refuse a late prepare; kept).', () => recordsHere('aborted'));
    // The shard leaders' write paths here (server/shard/shard-write-path.ts): contention on shards shows as
    // refused prepares (wait-die) and transactions left prepared.
    counter('synod_shard_writes_proposed_total', 'Writes stamped with oracle revisions and proposed by the shard leaders here.', () => shards.writePathStatus().writesProposed);
    counter('synod_shard_writes_lost_total', 'Attempts of writes proposed through the shard replicas here known lost with a leadership (an entry of a later term applied first): proposed again, or answered "leader changed" at their deadline.', () => shards.writePathStatus().writesLost);
    counter('synod_shard_oracle_requests_total', 'Revision requests the shard leaders here made (one per write turn, for all its writes).', () => shards.writePathStatus().oracleRequests);
    counter('synod_cross_shard_txn_prepares_total', 'Cross-shard transaction prepares proposed by the shard leaders here.', () => shards.writePathStatus().txnPrepares);
    counter('synod_cross_shard_txn_prepares_beside_total', 'Cross-shard transaction prepares the shard leaders here proposed while another transaction was prepared on the shard (on disjoint keys).', () => shards.writePathStatus().txnPreparesBeside);
    counter('synod_cross_shard_txn_prepares_refused_total', 'Prepares the shard leaders here refused: another transaction held keys they meet (the younger side of wait-die) or the prepare waited past its deadline.', () => shards.writePathStatus().txnPreparesRefused);
    counter('synod_shard_writes_parked_total', 'Writes the shard leaders here took out of their outbox to wait for cross-shard transactions prepared on the shard (an ordinary write, for those on its keys; a lease sweep or a txn reading a past revision, for all of them), stamped again once those are resolved, so that the writes behind them did not wait.', () => shards.writePathStatus().writesParked);
    counter('synod_shard_writes_beside_txns_total', 'Ordinary writes (puts, deletes, single-shard txns) the shard leaders here proposed while a cross-shard transaction was prepared on the shard, on other keys: deferred at apply until the transactions below them are decided.', () => shards.writePathStatus().writesBesideTxns);
    counter('synod_shard_writes_deferred_total', 'Writes the shard replicas here deferred behind a cross-shard transaction undecided on their shard (each replica counts each).', () => shards.writePathStatus().writesDeferred);
    counter('synod_shard_writes_answered_early_total', 'Of the deferred writes proposed through this member, those answered at apply (nothing before them touched their keys) rather than when made.', () => shards.writePathStatus().writesAnsweredEarly);
    counter('synod_cross_shard_txn_recoveries_total', 'Overdue prepared transactions the shard leaders here recovered.', () => shards.writePathStatus().txnRecoveries);
    counter('synod_cross_shard_txn_resolves_held_total', 'Cross-shard transaction resolutions the shard leaders here held back to ride with a later entry.', () => shards.writePathStatus().resolvesHeld);
    counter('synod_cross_shard_txn_resolves_alone_total', 'Of those, the ones nothing came for within 20 ms: proposed on their own.', () => shards.writePathStatus().resolvesAlone);
    gauge('synod_cross_shard_txns_prepared', 'Cross-shard transactions prepared on the shard replicas here now, waiting for their resolution.', () => shards.writePathStatus().preparedNow);
    counter('synod_oracle_requests_total', 'Revision requests this member\'s oracle host received.', () => shards.oracleStatus().requests);
    counter('synod_oracle_grants_total', 'Revision batches this member\'s oracle host granted.', () => shards.oracleStatus().grants);
    counter('synod_oracle_revisions_granted_total', 'Revisions this member\'s oracle host granted.', () => shards.oracleStatus().revisionsGranted);
    counter('synod_oracle_marks_persisted_total', 'High-water marks this member\'s oracle host persisted through the metadata group.', () => shards.oracleStatus().persists);
    counter('synod_oracle_establishments_total', 'Times this member\'s oracle became the serving one after an election.', () => shards.oracleStatus().establishments);
    counter('synod_oracle_unavailable_total', 'Revision requests answered unavailable.', () => shards.oracleStatus().unavailable);
    counter('synod_oracle_deadlines_total', 'Revision requests that passed their deadline on the host.', () => shards.oracleStatus().deadlines);
    // Closing rounds for watches over several shards (server/shard/shard-closer.ts): only while one is open here.
    gauge('synod_shard_closing_active', 'Whether this member runs closing rounds (it holds a watch over several shards).', () => (shards.closingStatus().active ? 1 : 0));
    counter('synod_shard_closing_rounds_total', 'Closing rounds this member started (one oracle revision each).', () => shards.closingStatus().rounds);
    counter('synod_shard_closes_total', 'Shard replicas this member closed at a round\'s revision.', () => shards.closingStatus().closes);
    counter('synod_shard_close_failures_total', 'Closes that failed (a shard without a ready leader; retried next round).', () => shards.closingStatus().closeFailures);
    // Reads at R on other members too large for one peer message come in pages (server/shard/range-pages.ts).
    counter('synod_shard_read_pages_total', 'Pages after the first of reads on other members larger than one peer message (64 MiB): each asked for on its own.', () => shards.readPagesStatus());
    // KV requests on shards this member's API does not serve, executed by a member that does (shard-forwarder.ts).
    counter('synod_shard_forwards_total', 'KV requests this member forwarded to a member hosting their shard.', () => shards.forwardStatus().forwards);
    counter('synod_shard_forward_attempts_total', 'Members asked for forwarded KV requests (one request may ask several).', () => shards.forwardStatus().attempts);
    counter('synod_shard_forward_not_hosted_total', 'Forwarded KV requests a member answered "not hosted here".', () => shards.forwardStatus().notHosted);
    counter('synod_shard_forward_unreachable_total', 'Members skipped for a forwarded KV request because they were not connected.', () => shards.forwardStatus().unreachable);
    counter('synod_shard_forward_lost_total', 'Forwarded KV requests sent whose answer never came (reads asked again elsewhere; writes failed).', () => shards.forwardStatus().lost);
  }
  return registry;
}

/**
 * TEST-ONLY, served only with --experimental-fault-injection: POST /debug/fault/partition with
 * {"blockedPeers": ["<member id hex>", ...]} sets the peers this member is cut off from ([] heals).
 */
function handleFaultPartition(faults: FaultInjector, ctx: ApiContext, req: http.IncomingMessage, res: http.ServerResponse): void {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (body += chunk));
  req.on('end', () => {
    let ids: number[];
    try {
      const parsed = JSON.parse(body) as { blockedPeers?: unknown };
      if (!Array.isArray(parsed.blockedPeers) || !parsed.blockedPeers.every((x) => typeof x === 'string' && /^[0-9a-f]+$/i.test(x))) {
        throw new Error('blockedPeers must be a list of member ids in hex');
      }
      ids = parsed.blockedPeers.map((x: string) => parseInt(x, 16));
    } catch (err) {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`${err instanceof Error ? err.message : String(err)}\n`);
      return;
    }
    faults.setBlockedPeers(ids);
    ctx.logger.warn({ blockedPeers: ids.map((id) => id.toString(16)) }, 'fault injection: blocked peers set');
    res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify({ blockedPeers: ids.map((id) => id.toString(16)) })}\n`);
  });
}

/** What a member answers over HTTP/1.1, on its metrics port and (as etcd does) on its client ports. */
export interface MemberHttp {
  /** Listens on the metrics address (the fault-injection door included when it is on). */
  listen(host: string, port: number): Promise<http.Server>;
  /**
   * Serves one connection that arrived on a client port speaking HTTP/1.x (authority-repair.ts tells it
   * from HTTP/2), with `head` the bytes already read from it.
   */
  serveClientConnection(socket: Duplex, head: Buffer): void;
  /** Ends the client ports' HTTP connections (the metrics server is closed by whoever listened). */
  close(): void;
}

export interface MemberHttpOptions {
  /** TEST-ONLY fault injection: POST /debug/fault/partition on the metrics port. */
  faults?: FaultInjector;
  snapshotSend?: SendRateStats;
  streamCalls?: StreamCallStats;
  backupSlots?: WorkSlots;
  hashSlots?: WorkSlots;
  /** etcd's JSON gateway (/v3/...), on the client ports only, as etcd serves it. */
  gateway?: JsonGateway;
}

export function memberHttp(ctx: ApiContext, opts: MemberHttpOptions = {}): MemberHttp {
  const registry = buildRegistry(ctx, opts.snapshotSend, opts.streamCalls, { backups: opts.backupSlots, hashes: opts.hashSlots });
  // The client ports serve etcd's paths and Synod's read-only ones; never the fault-injection door.
  const clientPortServer = createServer(withCors(requestHandler(ctx, registry, { gateway: opts.gateway })));
  return {
    listen(host, port) {
      const server = createServer(requestHandler(ctx, registry, { faults: opts.faults }));
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve(server));
      });
    },
    serveClientConnection(socket, head) {
      injectHttp1Connection(clientPortServer, socket, head);
    },
    close() {
      clientPortServer.closeAllConnections();
    },
  };
}

/**
 * etcd's CORS on its client port (its --cors, every origin by default): these headers on every answer, and
 * an empty 200 for a preflight OPTIONS, so a browser page can call the gateway and /health.
 */
function withCors(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  return (req, res) => {
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-allow-methods', 'POST, GET, OPTIONS, PUT, DELETE');
    res.setHeader('access-control-allow-headers', 'accept, content-type, authorization');
    if (req.method === 'OPTIONS') {
      res.statusCode = 200;
      res.end();
      return;
    }
    handler(req, res);
  };
}

function requestHandler(ctx: ApiContext, registry: client.Registry, serves: { faults?: FaultInjector; gateway?: JsonGateway }): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const { faults, gateway } = serves;
  return (req, res) => {
    const [url, ...rest] = (req.url ?? '/').split('?');
    const search = rest.join('?');
    if (gateway?.handles(url)) {
      gateway.handle(url, req, res);
    } else if (faults && url === '/debug/fault/partition' && req.method === 'POST') {
      handleFaultPartition(faults, ctx, req, res);
    } else if (url === '/health') {
      answerHealth(ctx, search, req, res);
    } else if (url === '/version') {
      sendWhole(res, 200, { 'content-type': 'application/json' }, JSON.stringify({ etcdserver: ETCD_COMPAT_VERSION, etcdcluster: clusterVersionOf(ETCD_COMPAT_VERSION) }));
    } else if (url === '/healthz' || url === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url === '/readyz') {
      const r = readiness(ctx);
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' }).end(`${r.reason}\n`);
    } else if (url === '/placement' && (req.method === 'GET' || req.method === 'HEAD')) {
      answerPlacementRequest(ctx, search, res);
    } else if (url === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: unknown) => res.writeHead(500).end(String(err)),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };
}

/** etcd's /health: GET only; 200 with the JSON when healthy, 503 with it (and a newline, as Go's http.Error) when not. */
function answerHealth(ctx: ApiContext, search: string, req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method !== 'GET') {
    res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8', allow: 'GET' }).end('Method Not Allowed\n');
    return;
  }
  void checkHealth(ctx, parseHealthQuery(search)).then((answer) => {
    const body = JSON.stringify(answer);
    if (answer.health === 'true') sendWhole(res, 200, { 'content-type': 'text/plain; charset=utf-8' }, body);
    else sendWhole(res, 503, { 'content-type': 'text/plain; charset=utf-8', 'x-content-type-options': 'nosniff' }, `${body}\n`);
  });
}

/** A whole body with its Content-Length, as etcd sends these (writeHead first would make it chunked). */
function sendWhole(res: http.ServerResponse, status: number, headers: Record<string, string>, body: string): void {
  res.statusCode = status;
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.end(body);
}

/** "3.5.2" → "3.5.0": the cluster version etcd reports is the major.minor its members agree on. */
function clusterVersionOf(serverVersion: string): string {
  const [major, minor] = serverVersion.split('.');
  return `${major}.${minor}.0`;
}

function answerPlacementRequest(ctx: ApiContext, search: string, res: http.ServerResponse): void {
  // Leaders and revisions of shards hosted elsewhere come from their hosts (at most a second's wait).
  void Promise.resolve()
    .then(() => ctx.shards?.refreshRemoteViews(Date.now() + REMOTE_VIEW_WAIT_MS))
    .catch(() => undefined) // the view is then this member's own knowledge
    .then(() => {
      let answer: ReturnType<typeof answerPlacement>;
      try {
        answer = answerPlacement(search, () => observePlacement(ctx));
      } catch (err) {
        answer = { status: 500, body: { error: err instanceof Error ? err.message : String(err) } };
      }
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(`${JSON.stringify(answer.body)}\n`);
    });
}

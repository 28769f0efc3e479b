// Joining a running cluster (--initial-cluster-state existing), as etcd does: the member was added
// with `member add` beforehand; it asks the members named in --initial-cluster for the cluster's
// identity, finds itself among the current members by its peer URLs, and takes the cluster's
// bootstrap membership as its own log-index-0 view (it then learns everything since from the log
// or from a snapshot).
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { fetchClusterInfo } from '../transport/peer-transport.ts';
import { hostPort, parseInitialCluster, type ClusterRecord, type MemberInfo } from '../api/cluster-info.ts';

interface ClusterInfoReply {
  clusterId: number;
  token: string;
  bootstrap: MemberInfo[];
  members: MemberInfo[];
  /** Absent from members that predate --shards: 1. */
  shards?: number;
  /** Absent from members that predate --replication-factor: 0. */
  replicationFactor?: number;
}

export interface JoinConfig {
  name: string;
  initialCluster: string;
  initialClusterToken: string;
  initialAdvertisePeerUrls: string[];
}

const JOIN_TIMEOUT_MS = 60_000;
const RETRY_MS = 500;

const sameUrl = (a: string, b: string): boolean => hostPort(a) === hostPort(b) && new URL(a).protocol === new URL(b).protocol;

/** `peerCredentials`: how to dial the peer ports (peer TLS), as the member itself will. */
export async function joinExistingCluster(cfg: JoinConfig, log: Logger, peerCredentials?: grpc.ChannelCredentials): Promise<ClusterRecord> {
  const mine = cfg.initialAdvertisePeerUrls;
  const peers = parseInitialCluster(cfg.initialCluster)
    .flatMap((m) => m.peerUrls)
    .filter((url) => !mine.some((own) => sameUrl(own, url)));
  if (peers.length === 0) throw new Error('--initial-cluster-state existing: --initial-cluster names no other member to join through');
  const deadline = Date.now() + JOIN_TIMEOUT_MS;
  let lastError = '';
  while (Date.now() < deadline) {
    for (const url of peers) {
      let info: ClusterInfoReply;
      try {
        info = JSON.parse(await fetchClusterInfo(hostPort(url), 2_000, peerCredentials)) as ClusterInfoReply;
      } catch (err) {
        lastError = `${url}: ${err instanceof Error ? err.message : String(err)}`;
        continue;
      }
      if (info.token !== cfg.initialClusterToken) {
        throw new Error(`--initial-cluster-token ${cfg.initialClusterToken} does not match the running cluster's (${info.token})`);
      }
      const self = info.members.find((m) => m.peerUrls.some((u) => mine.some((own) => sameUrl(own, u))));
      if (!self) {
        lastError = `${url}: the cluster has no member with peer URLs ${mine.join(',')} (run "etcdctl member add ${cfg.name} --peer-urls=${mine.join(',')}" first)`;
        continue;
      }
      log.info({ via: url, memberId: self.id.toString(16), clusterId: info.clusterId.toString(16), members: info.members.length }, 'joining the running cluster');
      return { clusterId: info.clusterId, token: info.token, members: info.bootstrap, selfId: self.id, joinMembers: info.members, shards: info.shards ?? 1, ...((info.replicationFactor ?? 0) > 0 ? { replicationFactor: info.replicationFactor } : {}) };
    }
    await new Promise((r) => setTimeout(r, RETRY_MS));
  }
  throw new Error(`could not join the running cluster: ${lastError}`);
}

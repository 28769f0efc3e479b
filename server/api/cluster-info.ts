// Cluster identity: member and cluster ids derived the way etcd derives them (a hash of the peer URLs
// and the cluster token), so the same flags always give the same ids, and a member of another
// cluster is recognisable. Ids are kept below 2^53 so they stay exact as JS numbers end to end.
import { createHash } from 'node:crypto';

export interface MemberInfo {
  id: number;
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
  /** `--zone` as the member published it ('' until it has, or when it has none). */
  zone?: string;
}

export interface ClusterRecord {
  clusterId: number;
  token: string;
  /** The bootstrap membership (log index 0): the same on every member, including later joiners. */
  members: MemberInfo[];
  /** This member's id when it joined a running cluster (bootstrap members find themselves by name). */
  selfId?: number;
  /** Members the running cluster reported when this member joined: peers to talk to until the log says more. */
  joinMembers?: MemberInfo[];
  /** Set once this member applied its own removal: the data dir may not serve again. */
  removed?: boolean;
  /** The cluster's shard count, fixed at creation (absent: 1, a record from before --shards existed). */
  shards?: number;
  /** Replicas per shard, fixed at creation (absent or 0: every member hosts every shard). */
  replicationFactor?: number;
}

/**
 * The shard count a member serves: the cluster's (stored, or learned when joining). `--shards` only
 * matters when the cluster is created; given later, it must agree, or the member refuses to start
 * (a member that hashed keys over another count would route them to the wrong shards).
 */
export function clusterShardCount(record: ClusterRecord, flag: number | undefined): number {
  const shards = record.shards ?? 1;
  if (flag !== undefined && flag !== shards) {
    throw new Error(`--shards ${flag} differs from this cluster's shard count ${shards} (fixed when the cluster was created)`);
  }
  return shards;
}

const ID_MASK = (1n << 53n) - 1n;

function hashToId(parts: string[]): number {
  const digest = createHash('sha1').update(parts.join('\n')).digest();
  const id = Number(digest.readBigUInt64BE(0) & ID_MASK);
  return id === 0 ? 1 : id;
}

export function memberIdFor(peerUrls: string[], token: string): number {
  return hashToId([...peerUrls].sort().concat(token));
}

export function clusterIdFor(memberIds: number[], token: string): number {
  return hashToId([...memberIds].sort((a, b) => a - b).map(String).concat(token));
}

/** Parses etcd's --initial-cluster form: name=http://host:port,name2=http://... */
export function parseInitialCluster(spec: string): Array<{ name: string; peerUrls: string[] }> {
  const byName = new Map<string, string[]>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`--initial-cluster: "${part}" is not name=url`);
    const name = part.slice(0, eq);
    const url = part.slice(eq + 1);
    new URL(url); // throws on a malformed URL
    byName.set(name, [...(byName.get(name) ?? []), url]);
  }
  return [...byName].map(([name, peerUrls]) => ({ name, peerUrls }));
}

/**
 * The cluster record a member bootstraps from etcd's --initial-cluster and --initial-cluster-token
 * (`synod server` on first start, `synod snapshot restore` for the member it prepares): the same flags
 * always give the same ids. Only `selfName`'s client URLs are known at bootstrap.
 */
/**
 * The replication factor a member uses: the cluster's (stored, or learned when joining). Like --shards,
 * `--replication-factor` only matters when the cluster is created; given later it must agree (every
 * member's placer and every shard's bootstrap membership depend on it).
 */
export function clusterReplicationFactor(record: ClusterRecord, flag: number | undefined): number {
  const r = record.replicationFactor ?? 0;
  if (flag !== undefined && flag !== r) {
    throw new Error(`--replication-factor ${flag} differs from this cluster's ${r} (fixed when the cluster was created)`);
  }
  return r;
}

/**
 * Replicas per shard of a sharded cluster created without --replication-factor: three, the design
 * brief's default (every member when fewer). One group has no shards to place, and its record stays as
 * it always was. 0 (every member hosts every shard) must be asked for.
 */
export const DEFAULT_REPLICATION_FACTOR = 3;

export function defaultReplicationFactor(shards: number): number {
  return shards > 1 ? DEFAULT_REPLICATION_FACTOR : 0;
}

export function bootstrapClusterRecord(initialCluster: string, token: string, selfName: string, selfClientUrls: string[], shards = 1, replicationFactor = defaultReplicationFactor(shards)): ClusterRecord {
  const parsed = parseInitialCluster(initialCluster);
  if (!parsed.some((m) => m.name === selfName)) throw new Error(`--initial-cluster has no member named "${selfName}"`);
  const members: MemberInfo[] = parsed.map((m) => ({
    id: memberIdFor(m.peerUrls, token),
    name: m.name,
    peerUrls: m.peerUrls,
    clientUrls: m.name === selfName ? selfClientUrls : [],
    isLearner: false,
  }));
  if (new Set(members.map((m) => m.id)).size !== members.length) throw new Error('--initial-cluster has duplicate peer URLs');
  return { clusterId: clusterIdFor(members.map((m) => m.id), token), token, members, shards, ...(replicationFactor > 0 ? { replicationFactor } : {}) };
}

/** host:port of an http(s) URL, as gRPC dials and binds it. */
export function hostPort(url: string): string {
  const u = new URL(url);
  if (!u.port) throw new Error(`URL ${url} has no port`);
  return `${u.hostname}:${u.port}`;
}

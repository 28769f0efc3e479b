// A ProcessCluster with the fault suite's extra powers: members start with
// --experimental-fault-injection, and can be paused (SIGSTOP/SIGCONT), killed (-9) and restarted,
// and partitioned through each member's POST /debug/fault/partition. The partition each member
// should have is remembered and re-applied when a killed member comes back (the hook is in memory).
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { ProcessCluster, type ClusterOptions } from '../support/process-cluster.ts';
import { memberIdFor } from '../../server/api/cluster-info.ts';
import { etcdClients } from '../../server/etcd/proto.ts';

interface ClusterReply {
  member?: { ID: string };
  members?: Array<{ ID: string; peerURLs: string[] }>;
}
type ClusterCall = (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: ClusterReply) => void) => void;

const CLUSTER_TOKEN = 'it'; // ProcessCluster's --initial-cluster-token
const FAULT_SNAPSHOT_COUNT = 200;

export class FaultCluster {
  readonly cluster: ProcessCluster;
  /** Member ids in hex, by member index. */
  readonly memberIds: string[];
  private readonly paused = new Set<number>();
  /** Member index → indices of the peers it must not hear from or talk to. */
  private readonly blocked = new Map<number, Set<number>>();
  /**
   * Member index → the rule (request body) its running process acknowledged. A heal that did not reach a
   * member would leave its side of a cut in place, silently, into the next fault: a later MemberRemove
   * then found a member "not started" (the leader could not hear it) and gave up.
   */
  private readonly applied = new Map<number, string>();

  private constructor(cluster: ProcessCluster) {
    this.cluster = cluster;
    this.memberIds = cluster.members.map((m) => memberIdFor([`http://127.0.0.1:${m.peerPort}`], CLUSTER_TOKEN).toString(16));
  }

  /** Shards of a sharded cluster (`--shards`), or 1. */
  private shards = 1;

  static async start(options: ClusterOptions & { shards?: number } = {}): Promise<FaultCluster> {
    // A small --snapshot-count: logs are compacted every few hundred writes, so members that were
    // down, cut off or wiped catch up through snapshot transfers under the same faults.
    const cluster = await ProcessCluster.start({
      ...options,
      extraArgs: ['--experimental-fault-injection', '--snapshot-count', String(FAULT_SNAPSHOT_COUNT), ...(options.extraArgs ?? [])],
    });
    const c = new FaultCluster(cluster);
    c.shards = options.shards ?? 1;
    return c;
  }

  get size(): number {
    return this.cluster.members.length;
  }

  name(i: number): string {
    return this.cluster.members[i].name;
  }

  endpointOf(i: number): string {
    return this.cluster.endpointOf(i);
  }

  isUp(i: number): boolean {
    return this.cluster.isRunning(i) && !this.paused.has(i);
  }

  pause(i: number): void {
    if (!this.cluster.isRunning(i) || this.paused.has(i)) return;
    this.cluster.members[i].child!.kill('SIGSTOP');
    this.paused.add(i);
  }

  /** Resumes a paused member; a rule change it missed while stopped is pushed to it now. */
  async resume(i: number): Promise<void> {
    if (!this.paused.delete(i)) return;
    this.cluster.members[i].child?.kill('SIGCONT');
    await this.pushPartition(i, 15_000);
  }

  async kill(i: number): Promise<void> {
    await this.cluster.kill9(i);
    this.paused.delete(i);
  }

  /** Restarts a killed member and re-applies its side of any partition in force. */
  async restart(i: number): Promise<void> {
    if (this.cluster.isRunning(i)) return;
    this.startProcess(i);
    await this.pushPartition(i, 10_000);
  }

  /**
   * Sets the network to the given groups: members in different groups cannot exchange messages.
   * Members not listed keep full connectivity with everyone. Both sides of every cut get the rule,
   * so one unreachable (paused) member does not leave a cut open.
   */
  async partition(cuts: Array<[number, number]>): Promise<void> {
    this.blocked.clear();
    for (const [a, b] of cuts) {
      if (!this.blocked.has(a)) this.blocked.set(a, new Set());
      if (!this.blocked.has(b)) this.blocked.set(b, new Set());
      this.blocked.get(a)!.add(b);
      this.blocked.get(b)!.add(a);
    }
    // A new cut is held by both its sides, so one side busy past 2 s still cuts it; a rule lifted must
    // reach its member, or that side of the old cut stays.
    await Promise.all(this.cluster.members.map((_, i) => this.pushPartition(i, (this.blocked.get(i)?.size ?? 0) > 0 ? 2_000 : 15_000)));
  }

  /** Starts member i's process, which holds no partition rule yet. */
  private startProcess(i: number): void {
    this.cluster.startMember(i);
    this.applied.set(i, this.ruleOf(new Set()));
  }

  /** The partition endpoint's request body for member i's blocked set. */
  private ruleOf(blocked: Set<number>): string {
    return JSON.stringify({ blockedPeers: [...blocked].map((j) => this.memberIds[j]) });
  }

  /** Cuts every link between the two groups. */
  static cutsBetween(left: number[], right: number[]): Array<[number, number]> {
    return left.flatMap((a) => right.map((b): [number, number] => [a, b]));
  }

  /** Heals everything: resumes paused members, restarts killed ones, removes every partition. */
  async healAll(): Promise<void> {
    this.blocked.clear();
    await Promise.all([...this.paused].map((i) => this.resume(i)));
    for (let i = 0; i < this.size; i++) if (!this.cluster.isRunning(i)) this.startProcess(i);
    await Promise.all(this.cluster.members.map((_, i) => this.pushPartition(i, 15_000)));
  }

  /** Calls etcdserverpb.Cluster/<method> on any running member, retrying until it succeeds or the deadline. */
  private async clusterCall(
    method: string,
    req: object,
    timeoutMs: number,
    avoid = -1,
    doneAlready?: (err: grpc.ServiceError) => boolean,
  ): Promise<ClusterReply> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    let attempts = 0;
    while (Date.now() < deadline) {
      for (let j = 0; j < this.size; j++) {
        if (j === avoid || !this.isUp(j)) continue;
        const client = new (etcdClients().Cluster)(this.endpointOf(j), grpc.credentials.createInsecure());
        try {
          return await new Promise((resolve, reject) =>
            ((client as unknown as Record<string, ClusterCall>)[method]).call(client, req, { deadline: Date.now() + 5_000 }, (err, res) => (err ? reject(err) : resolve(res ?? {}))),
          );
        } catch (err) {
          last = err instanceof Error ? err.message : String(err);
          // An earlier attempt whose answer was lost (deadline under load) may have done it already.
          if (attempts > 0 && doneAlready?.(err as grpc.ServiceError)) return {};
        } finally {
          attempts++;
          client.close();
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${method} kept failing: ${last}`);
  }

  /**
   * Membership fault: removes member i (MemberRemove; it stops by itself), wipes its data. The heal
   * adds it back as a new learner on the same URLs, starts it empty with --initial-cluster-state
   * existing (it catches up from the log or a snapshot) and promotes it once it has caught up.
   */
  async removeMember(i: number): Promise<void> {
    await this.clusterCall('MemberRemove', { ID: BigInt(`0x${this.memberIds[i]}`).toString() }, 15_000, i, (err) => err.code === grpc.status.NOT_FOUND);
    const m = this.cluster.members[i];
    if (!(await this.cluster.waitExit(i, 10_000))) await this.cluster.kill9(i);
    this.paused.delete(i);
    fs.rmSync(m.dataDir, { recursive: true, force: true });
    m.joins = true;
  }

  async addBackMember(i: number): Promise<void> {
    const url = this.cluster.peerUrlOf(i);
    const added = await this.clusterCall('MemberAdd', { peerURLs: [url], isLearner: true }, 15_000, i, (err) => err.details === 'etcdserver: Peer URLs already exists');
    // An attempt whose answer was lost added it already: find it by its URL.
    const idText = added.member?.ID ?? (await this.clusterCall('MemberList', {}, 10_000, i)).members?.find((m) => m.peerURLs.includes(url))?.ID;
    if (idText === undefined) throw new Error(`member with peer URL ${url} neither added nor listed`);
    const id = BigInt(idText);
    this.memberIds[i] = id.toString(16);
    this.startProcess(i);
    await this.pushPartition(i, 10_000);
    await this.clusterCall('MemberPromote', { ID: id.toString() }, 30_000, i, (err) => err.details === 'etcdserver: can only promote a learner member');
  }

  /** Snapshots sent and installed so far, summed over the running members' /metrics. */
  /**
   * The members (still up) that learnt their wall clock is behind the shard leaders' from a fence horizon
   * (synod_cross_shard_txn_clock_behind_seconds), as "m4 480 s"; empty when none did.
   */
  async clocksBehindLearnt(): Promise<string[]> {
    const learnt: string[] = [];
    for (let i = 0; i < this.size; i++) {
      if (!this.isUp(i)) continue;
      try {
        const seconds = Number(/^synod_cross_shard_txn_clock_behind_seconds (\S+)/m.exec(await this.cluster.metrics(i))?.[1] ?? 0);
        if (seconds > 0) learnt.push(`${this.cluster.members[i].name} ${seconds.toFixed(0)} s`);
      } catch {
        // a member that is restarting
      }
    }
    return learnt;
  }

  async snapshotCounts(): Promise<{ sent: number; installed: number }> {
    let sent = 0;
    let installed = 0;
    for (let i = 0; i < this.size; i++) {
      if (!this.isUp(i)) continue;
      try {
        const text = await this.cluster.metrics(i);
        sent += Number(/^synod_snapshots_sent_total (\d+)/m.exec(text)?.[1] ?? 0);
        installed += Number(/^synod_snapshots_installed_total (\d+)/m.exec(text)?.[1] ?? 0);
      } catch {
        // a member that is restarting
      }
    }
    return { sent, installed };
  }

  /** The leader; on a sharded cluster, the member leading the most shards (from an up member's /placement). */
  async leaderIndex(timeoutMs = 3_000): Promise<number | null> {
    if (this.shards > 1) return this.busiestShardLeader(timeoutMs);
    try {
      return await this.cluster.leaderIndex(timeoutMs);
    } catch {
      return null;
    }
  }

  private async busiestShardLeader(timeoutMs: number): Promise<number | null> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (let i = 0; i < this.size; i++) {
        if (!this.isUp(i)) continue;
        try {
          const res = await fetch(`http://127.0.0.1:${this.cluster.members[i].metricsPort}/placement`, { signal: AbortSignal.timeout(1_000) });
          const view = (await res.json()) as { shards: Array<{ leader: string | null }> };
          const led = new Map<string, number>();
          for (const s of view.shards) if (s.leader !== null) led.set(s.leader, (led.get(s.leader) ?? 0) + 1);
          const [top] = [...led].sort((a, b) => b[1] - a[1]);
          const index = top ? this.memberIds.indexOf(top[0]) : -1;
          if (index >= 0) return index;
        } catch {
          // restarting or paused: ask another member
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return null;
  }

  /**
   * Posts member i's blocked set unless its process holds it already, retrying while it starts; a paused
   * or dead member is skipped (resume and restart push it again).
   */
  private async pushPartition(i: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const body = this.ruleOf(this.blocked.get(i) ?? new Set());
    if (this.applied.get(i) === body) return;
    while (this.isUp(i)) {
      try {
        const res = await fetch(`http://127.0.0.1:${this.cluster.members[i].metricsPort}/debug/fault/partition`, {
          method: 'POST',
          body,
          signal: AbortSignal.timeout(1_000),
        });
        if (res.status !== 200) throw new Error(`partition endpoint answered ${res.status}: ${await res.text()}`);
        this.applied.set(i, body);
        return;
      } catch (err) {
        if (err instanceof Error && err.message.startsWith('partition endpoint')) throw err;
        if (Date.now() > deadline) {
          // A new cut is held by its other side too; a rule lifted and not heard stays until the next push.
          this.applied.delete(i);
          console.warn(`[fault] ${this.name(i)} did not take its partition rule ${body} within ${timeoutMs} ms`);
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async destroy(): Promise<void> {
    for (const i of [...this.paused]) {
      this.paused.delete(i);
      this.cluster.members[i].child?.kill('SIGCONT');
    }
    await this.cluster.destroy();
  }
}

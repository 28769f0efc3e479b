// Idle cost of many shards: 3 member processes on loopback, each hosting the same IDLE_GROUPS Raft
// groups (3 voters each, leaders spread over the members) over the real peer transport (gRPC stream,
// frame codec) and real LevelDB, and nothing written. Prints each member's CPU in % of one core over
// a measuring window, with quiescence off (every group ticks and its leader heartbeats every tick)
// and on (idle groups quiesce; one liveness message per member pair per heartbeat interval).
// The brief's target: <= 3% of a core per member with 256 idle shards.
//
//   node_modules/.bin/node bench/idle-shards.ts [--groups 256] [--warmup-s 8] [--measure-s 10]
//
// Not in `make test` (about a minute). Each member is its own process so that its CPU is its own.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Member, type GroupStateMachine } from '../server/member/member.ts';
import { MemberDb } from '../server/storage/member-db.ts';
import { PeerTransport } from '../server/transport/peer-transport.ts';
import { DEFAULT_REPLICATION_LIMITS } from '../server/raft/replication-limits.ts';
import { frameBudgetBytes } from '../server/transport/frame-budget.ts';

const IDS = [1, 2, 3];
/** The server's defaults (DEFAULT_SERVER_TIMING): 100 ms ticks, heartbeat every tick, election after 10. */
const TICK_MS = 100;
const ELECTION_TICKS = 10;
const CLUSTER_ID = 7;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** An idle shard's state machine: nothing is ever written, so there is nothing to keep. */
class IdleStateMachine implements GroupStateMachine {
  apply(): void {}
  drainPersistOps(): Array<{ key: Buffer; value: Buffer | null }> {
    return [];
  }
  applyConfChange(): void {}
  restore(): void {}
}

interface MemberReport {
  id: number;
  cpuPctOfCore: number;
  groups: number;
  leading: number;
  quiesced: number;
  livenessSent: number;
  messagesSent: number;
}

async function runMember(id: number, ports: number[], groups: number, quiesce: boolean, warmupS: number, measureS: number): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `synod-idle-${id}-`));
  const logger = pino({ level: 'warn' });
  const db = await MemberDb.open(path.join(dir, 'db'));
  const member = new Member({
    memberId: id,
    db,
    tickMs: TICK_MS,
    electionTimeoutTicks: ELECTION_TICKS,
    heartbeatTicks: 1,
    logger,
    snapshotDir: path.join(dir, 'snap'),
    snapshotCount: 10_000,
    quiesce,
  });
  for (let g = 1; g <= groups; g++) {
    member.addGroup({ groupId: g, voters: IDS, stateMachine: new IdleStateMachine(), loaded: await db.loadGroup(g), randomSeed: id * 100_003 + g });
  }
  const peers = new Map(IDS.filter((p) => p !== id).map((p) => [p, `127.0.0.1:${ports[p - 1]}`]));
  const transport = new PeerTransport({
    clusterId: CLUSTER_ID,
    memberId: id,
    listenAddress: `127.0.0.1:${ports[id - 1]}`,
    peers,
    onMessages: (_from, messages) => member.step(messages),
    logger,
    maxFrameBytes: frameBudgetBytes(DEFAULT_REPLICATION_LIMITS, 1.5 * 1024 * 1024),
    snapshots: { dir: path.join(dir, 'snap'), chunks: async function* () {}, report: () => {}, received: () => {} },
    clusterInfo: () => '{}',
    isRemoved: () => false,
    onRemoved: () => {},
    onUnreachable: (to) => {
      for (let g = 1; g <= groups; g++) member.reportUnreachable(g, to);
    },
  });
  await transport.start();
  member.setSink(transport);
  member.start();
  // Spread leaders: this member campaigns for its third of the groups once the peers are up.
  await new Promise((r) => setTimeout(r, 1_500));
  for (let g = 1; g <= groups; g++) if (g % IDS.length === id - 1) member.campaign(g);
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  const sentBefore = member.stats.livenessSent;
  const msgsBefore = member.stats.messagesSent;
  const cpuBefore = process.cpuUsage();
  const wallBefore = performance.now();
  await new Promise((r) => setTimeout(r, measureS * 1000));
  const cpu = process.cpuUsage(cpuBefore);
  const wallMs = performance.now() - wallBefore;
  const report: MemberReport = {
    id,
    cpuPctOfCore: ((cpu.user + cpu.system) / 1000 / wallMs) * 100,
    groups,
    leading: member.groupIds().filter((g) => member.role(g) === 'leader').length,
    quiesced: member.groupIds().filter((g) => member.isQuiesced(g)).length,
    livenessSent: member.stats.livenessSent - sentBefore,
    messagesSent: member.stats.messagesSent - msgsBefore,
  };
  process.stdout.write(`REPORT ${JSON.stringify(report)}\n`);
  // Keep serving until every member has measured, then leave.
  await new Promise((r) => setTimeout(r, 2_000));
  await member.stop();
  await transport.stop();
  await db.close();
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function runCluster(groups: number, quiesce: boolean, warmupS: number, measureS: number): Promise<MemberReport[]> {
  const ports = [await freePort(), await freePort(), await freePort()];
  const self = fileURLToPath(import.meta.url);
  const children = IDS.map((id) =>
    spawn(process.execPath, [self, '--member', String(id), '--ports', ports.join(','), '--groups', String(groups), '--quiesce', quiesce ? '1' : '0', '--warmup-s', String(warmupS), '--measure-s', String(measureS)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  return Promise.all(
    children.map(
      (child) =>
        new Promise<MemberReport>((resolve, reject) => {
          let out = '';
          child.stdout.on('data', (b: Buffer) => (out += b.toString()));
          child.on('exit', (code) => {
            const line = out.split('\n').find((l) => l.startsWith('REPORT '));
            if (code !== 0 || !line) reject(new Error(`member exited ${code}: ${out}`));
            else resolve(JSON.parse(line.slice('REPORT '.length)) as MemberReport);
          });
        }),
    ),
  );
}

async function main(): Promise<void> {
  const memberArg = process.argv.indexOf('--member');
  const warmupS = arg('warmup-s', 8);
  const measureS = arg('measure-s', 10);
  const groups = arg('groups', 256);
  if (memberArg >= 0) {
    const ports = process.argv[process.argv.indexOf('--ports') + 1].split(',').map(Number);
    await runMember(Number(process.argv[memberArg + 1]), ports, groups, arg('quiesce', 0) === 1, warmupS, measureS);
    return;
  }
  console.log(`idle shards: 3 member processes on loopback, ${groups} idle groups each, tick ${TICK_MS} ms, ${os.cpus().length} cores; CPU over ${measureS} s after ${warmupS} s warm-up`);
  console.log('quiescence  member  cpu %core  leading  quiesced  raft msgs/s  liveness msgs/s');
  const summary: string[] = [];
  for (const quiesce of [false, true]) {
    const reports = await runCluster(groups, quiesce, warmupS, measureS);
    for (const r of reports.sort((a, b) => a.id - b.id)) {
      console.log(
        `${(quiesce ? 'on' : 'off').padEnd(10)}  ${String(r.id).padStart(6)}  ${r.cpuPctOfCore.toFixed(2).padStart(9)}  ${String(r.leading).padStart(7)}  ${String(r.quiesced).padStart(8)}  ` +
          `${(r.messagesSent / measureS).toFixed(0).padStart(11)}  ${(r.livenessSent / measureS).toFixed(1).padStart(15)}`,
      );
    }
    const max = Math.max(...reports.map((r) => r.cpuPctOfCore));
    summary.push(`quiescence ${quiesce ? 'on' : 'off'}: max ${max.toFixed(2)}% of a core per member`);
  }
  console.log(summary.join('; ') + ' (target <= 3%)');
}

await main();

// What a put costs a member's JavaScript by the number of Raft groups its load spreads over, with no
// processes, gRPC or other cores in the way: 3 Members in this one process on real LevelDB, wired by the
// in-process network of runtime-groups-harness.ts (messages delivered on a later turn, not encoded), a
// recording state machine. `c` puts in flight, spread round-robin over the groups, each proposed at its
// group's leader and done when that leader applies it. Prints puts a second and this process's CPU per
// put (all threads: the main thread and LevelDB's) for each group count. With a rate, each worker paces
// its puts so the whole load offers that many a second: thin rounds, as a real sharded load has them.
//
//   node bench/groups-cost.ts [seconds=5] [in flight=64] [group counts=1,16] [puts a second=unpaced]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InProcessNetwork, type Node } from '../server/member/runtime-groups-harness.ts';

const seconds = Number(process.argv[2] ?? 5);
const inFlight = Number(process.argv[3] ?? 64);
const groupCounts = (process.argv[4] ?? '1,16').split(',').map(Number);
const offeredPerSecond = Number(process.argv[5] ?? 0);

interface Figures {
  rate: number;
  cpuUsPerPut: number;
  turns: number;
  syncedBatches: number;
  messages: number;
}

async function run(groups: number): Promise<Figures> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'groups-cost-'));
  const net = new InProcessNetwork(root, { tickMs: 100, electionTimeoutTicks: 10, heartbeatTicks: 1, snapshotCount: 100_000, quiesce: true });
  const ids = [1, 2, 3];
  const spec: Record<number, number[]> = {};
  for (let g = 1; g <= groups; g++) spec[g] = ids;
  try {
    for (const id of ids) await net.startNode(id, spec);
    const leaders = new Map<number, Node>();
    for (let g = 1; g <= groups; g++) leaders.set(g, await net.leaderOf(g));
    let seq = 0;
    let done = 0;
    let measuring = false;
    let stop = false;
    const gapMs = offeredPerSecond > 0 ? (1_000 * inFlight) / offeredPerSecond : 0;
    const worker = async (w: number): Promise<void> => {
      let nextAtMs = performance.now() + (gapMs * w) / inFlight;
      for (let i = w; !stop; i += inFlight) {
        if (gapMs > 0) {
          const waitMs = nextAtMs - performance.now();
          if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
          nextAtMs += gapMs;
        }
        const g = (i % groups) + 1;
        const lead = leaders.get(g)!;
        const key = `k${++seq}`;
        const applied = lead.sms.get(g)!.whenApplied(key);
        lead.member.propose(g, Buffer.from(key));
        await applied;
        if (measuring) done++;
      }
    };
    const workers = Array.from({ length: inFlight }, (_, w) => worker(w));
    await new Promise((r) => setTimeout(r, 1_000)); // warm up
    const total = (f: (s: Node['member']['stats']) => number): number => ids.reduce((n, id) => n + f(net.nodes.get(id)!.member.stats), 0);
    const turns0 = total((s) => s.turns);
    const synced0 = total((s) => s.syncedBatches);
    const messages0 = total((s) => s.messagesSent);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    measuring = true;
    await new Promise((r) => setTimeout(r, seconds * 1_000));
    measuring = false;
    const elapsedS = (performance.now() - t0) / 1_000;
    const cpu = process.cpuUsage(cpu0);
    const turns = total((s) => s.turns) - turns0;
    const synced = total((s) => s.syncedBatches) - synced0;
    const messages = total((s) => s.messagesSent) - messages0;
    stop = true;
    await Promise.allSettled(workers.map((p) => Promise.race([p, new Promise((r) => setTimeout(r, 2_000))])));
    return { rate: done / elapsedS, cpuUsPerPut: (cpu.user + cpu.system) / done, turns: turns / done, syncedBatches: synced / done, messages: messages / done };
  } finally {
    await net.stopAll();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

for (const groups of groupCounts) {
  const r = await run(groups);
  console.log(`${groups} group(s), ${inFlight} in flight${offeredPerSecond > 0 ? `, ${offeredPerSecond} offered a second` : ''}: ${Math.round(r.rate)} puts/s, ${Math.round(r.cpuUsPerPut)} µs CPU per put; ${r.turns.toFixed(2)} member turns, ${r.syncedBatches.toFixed(2)} synced batches, ${r.messages.toFixed(2)} Raft messages`);
}

// In-process probe: memory a Synod member spends per idle watch, with the watches spread over
// streams as a client spreads them. The member runs in this process (so it can be measured after a
// full GC: heap + external, not RSS, which GC timing moves by more than the watches cost); the
// client runs in a child process. Watches are added in two equal steps and the cost is the growth
// of the second step, so one-off costs (the connection, code warm-up) are left out.
//   node --expose-gc --max-semi-space-size=8 bench/watch-memory.ts [watchesPerStep=10000] [perStream=100] [shared|distinct]
// (WATCH_MEM_JSON=1: one JSON line; `make bench` runs it this way.)
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import v8 from 'node:v8';
import { startServer, DEFAULT_SERVER_TIMING } from '../server/cli/start-server.ts';
import { DEFAULT_LIMITS } from '../server/api/context.ts';
import { freePort } from '../test/support/ports.ts';
import { settlePauseMs } from './bench-config.ts';
import { EtcdConnection } from './etcd-rpc.ts';

interface Step {
  type: 'step';
  watches: number;
  perStream: number;
  /** 'shared': the watches of a stream use 100 keys shared by every stream; 'distinct': each watch its own key. */
  keys: 'shared' | 'distinct';
  step: number;
}

async function client(endpoint: string): Promise<void> {
  const conn = new EtcdConnection(endpoint);
  const streams: unknown[] = [];
  process.on('message', (m: Step) => {
    let created = 0;
    for (let left = m.watches; left > 0; left -= m.perStream) {
      const stream = conn.watchStream();
      streams.push(stream);
      stream.on('data', (res: { created?: boolean }) => {
        if (res.created && ++created === m.watches) process.send!('created');
      });
      for (let i = 0; i < Math.min(left, m.perStream); i++) {
        const key = m.keys === 'distinct' ? `idle/${m.step}/${left}/${i}` : `idle/${i}`;
        stream.write({ create_request: { key: Buffer.from(key) } });
      }
    }
  });
  process.send!('ready');
}

async function main(): Promise<void> {
  const watchesPerStep = Number(process.argv[2] ?? 10_000);
  const perStream = Number(process.argv[3] ?? 100);
  const keys = process.argv[4] === 'distinct' ? 'distinct' : 'shared';
  let stepNo = 0;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-watch-mem-'));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const server = await startServer({
    name: 'm1',
    dataDir,
    listenClientUrls: [`http://127.0.0.1:${clientPort}`],
    advertiseClientUrls: [`http://127.0.0.1:${clientPort}`],
    listenPeerUrls: [`http://127.0.0.1:${peerPort}`],
    initialAdvertisePeerUrls: [`http://127.0.0.1:${peerPort}`],
    initialCluster: `m1=http://127.0.0.1:${peerPort}`,
    initialClusterToken: 'watch-mem',
    listenMetricsAddress: '',
    ...DEFAULT_SERVER_TIMING,
    leaseCheckpointIntervalMs: 300_000,
    limits: DEFAULT_LIMITS,
    logger: pino({ level: 'warn' }),
  });
  const child: ChildProcess = fork(new URL(import.meta.url).pathname, ['client', `127.0.0.1:${clientPort}`]);
  const next = (): Promise<string> => new Promise((r) => child.once('message', (m) => r(String(m))));
  await next();
  const used = (): { heap: number; external: number; rss: number } => {
    gc();
    gc();
    const m = process.memoryUsage();
    return { heap: m.heapUsed, external: m.external, rss: m.rss };
  };
  const step = async (): Promise<void> => {
    child.send({ type: 'step', watches: watchesPerStep, perStream, keys, step: stepNo++ } satisfies Step);
    if ((await next()) !== 'created') throw new Error('client failed');
    await new Promise((r) => setTimeout(r, settlePauseMs(1000)));
  };
  await step();
  const a = used();
  if (process.env.WATCH_MEM_SNAPSHOTS) v8.writeHeapSnapshot(path.join(process.env.WATCH_MEM_SNAPSHOTS, 'a.heapsnapshot'));
  await step();
  const b = used();
  if (process.env.WATCH_MEM_SNAPSHOTS) v8.writeHeapSnapshot(path.join(process.env.WATCH_MEM_SNAPSHOTS, 'b.heapsnapshot'));
  const per = (x: number, y: number): number => Math.round((y - x) / watchesPerStep);
  const result = {
    watches: watchesPerStep,
    perStream: perStream,
    keys,
    heapBytesPerWatch: per(a.heap, b.heap),
    externalBytesPerWatch: per(a.external, b.external),
    totalBytesPerWatch: per(a.heap + a.external, b.heap + b.external),
    rssBytesPerWatch: per(a.rss, b.rss),
  };
  if (process.env.WATCH_MEM_JSON) console.log(JSON.stringify(result));
  else
    console.log(
      `${watchesPerStep} watches, ${perStream} per stream, ${keys} keys: heap ${result.heapBytesPerWatch} B/watch, external ${result.externalBytesPerWatch} B/watch, ` +
        `total ${result.totalBytesPerWatch} B/watch, RSS ${result.rssBytesPerWatch} B/watch (watchers in the hub: ${server.ctx.sm.hub.watcherCount()})`,
    );
  child.kill();
  await server.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
  process.exit(0);
}

if (process.argv[2] === 'client') await client(process.argv[3]);
else await main();

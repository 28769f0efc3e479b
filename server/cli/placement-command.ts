// `synod placement`: asks a member over gRPC (synod.v1.Placement) where the keyspace lives and prints a
// table (shard, slots, replicas, learners, leader, revision, and a moves line), the slot and shard of
// one key (--key), or the /placement JSON (--json). Endpoints are tried in order until one answers.
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { placementClientConstructor, wireToView, type GetPlacementWire, type LocateKeyWire } from '../api/placement-service.ts';
import { formatKeyLocation, formatPlacementTable } from '../placement/placement-table.ts';

export interface PlacementCommandOptions {
  /** Comma-separated host:port (an http:// or https:// prefix is accepted). */
  endpoints: string;
  key?: string;
  json?: boolean;
  /** Mark this member (hex, as `etcdctl member list` prints it) draining; with `undrain`, up again. */
  drain?: string;
  undrain?: boolean;
  /** Per endpoint, for the whole call. */
  timeoutMs: number;
  /** TLS: CA bundle, and a client certificate when the cluster asks for one. */
  cacert?: string;
  cert?: string;
  keyFile?: string;
}

interface Target {
  address: string;
  tls: boolean;
}

function targets(endpoints: string, forceTls: boolean): Target[] {
  return endpoints
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((e) => ({ address: e.replace(/^https?:\/\//, ''), tls: forceTls || e.startsWith('https://') }));
}

function credentials(t: Target, o: PlacementCommandOptions): grpc.ChannelCredentials {
  if (!t.tls) return grpc.credentials.createInsecure();
  const read = (f: string | undefined): Buffer | null => (f ? fs.readFileSync(f) : null);
  return grpc.credentials.createSsl(read(o.cacert), read(o.keyFile), read(o.cert));
}

function call<Res>(client: grpc.Client, method: 'GetPlacement' | 'LocateKey' | 'Drain', request: object, timeoutMs: number): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (req: object, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: Res) => void) => void>)[method];
    fn.call(client, request, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** Runs the command; returns the process exit code (0 when some endpoint answered). */
export async function runPlacementCommand(o: PlacementCommandOptions, out: (text: string) => void = (t) => process.stdout.write(t)): Promise<number> {
  const Client = placementClientConstructor();
  const list = targets(o.endpoints, Boolean(o.cacert));
  if (list.length === 0) {
    process.stderr.write('synod placement: --endpoints names no endpoint\n');
    return 2;
  }
  if (o.key === '') {
    process.stderr.write('synod placement: --key is empty; etcd keys are never empty\n');
    return 2;
  }
  if (o.drain !== undefined && !/^[0-9a-f]{1,16}$/.test(o.drain)) {
    process.stderr.write(`synod placement: --drain takes a member id in hex, as etcdctl member list prints it (got ${JSON.stringify(o.drain)})\n`);
    return 2;
  }
  const failures: string[] = [];
  for (const t of list) {
    const client = new Client(t.address, credentials(t, o));
    try {
      if (o.drain !== undefined) {
        const res = await call<{ draining: boolean; replicas_remaining: number }>(client, 'Drain', { member_id: BigInt(`0x${o.drain}`).toString(), cancel: Boolean(o.undrain) }, o.timeoutMs);
        const line = res.draining ? `member ${o.drain} draining: ${res.replicas_remaining} shard replicas still on it` : `member ${o.drain} up: placement may put replicas on it again`;
        out(o.json ? `${JSON.stringify({ member: o.drain, draining: res.draining, replicasRemaining: res.replicas_remaining })}\n` : `${line}\n`);
      } else if (o.key !== undefined) {
        const res = await call<LocateKeyWire>(client, 'LocateKey', { key: Buffer.from(o.key, 'utf8') }, o.timeoutMs);
        const loc = { key: res.key.toString('utf8'), slot: res.slot, shard: res.shard };
        out(o.json ? `${JSON.stringify(loc)}\n` : formatKeyLocation(loc));
      } else {
        const view = wireToView(await call<GetPlacementWire>(client, 'GetPlacement', {}, o.timeoutMs));
        out(o.json ? `${JSON.stringify(view)}\n` : formatPlacementTable(view));
      }
      return 0;
    } catch (err) {
      failures.push(`${t.address}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      client.close();
    }
  }
  process.stderr.write(`synod placement: no endpoint answered\n${failures.map((f) => `  ${f}\n`).join('')}`);
  return 1;
}

// Child process of no-stall.ts: puts small keys to one member one at a time and times each put, in
// its own process so the latencies are not those of the parent's event loop (which decodes the
// large Range replies). Started with fork(); "stop" over IPC ends it; it answers with the latencies.
import * as grpc from '@grpc/grpc-js';
import { etcdClients } from '../../server/etcd/proto.ts';

const [address, prefix] = process.argv.slice(2);
type Unary = (req: object, meta: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null) => void) => void;
const kv = new (etcdClients().KV)(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
const put = (kv as unknown as Record<string, Unary>).Put.bind(kv);
let stop = false;
process.on('message', () => (stop = true));
process.send?.('started');
const latencies: number[] = [];
const errors: string[] = [];
for (let seq = 0; !stop; seq++) {
  const started = performance.now();
  await new Promise<void>((resolve) =>
    put({ key: Buffer.from(`${prefix}${seq % 100}`), value: Buffer.alloc(100, 0x62) }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err) => {
      if (err) errors.push(err.message);
      resolve();
    }),
  );
  latencies.push(performance.now() - started);
  await new Promise((r) => setTimeout(r, 5));
}
kv.close();
process.send?.({ latencies, errors }, () => process.exit(0));

// Probe: CPU per message on a grpc-js bidi stream (raw Buffer serializers) vs a plain TCP socket.
import * as grpc from '@grpc/grpc-js';
import net from 'node:net';
import { fork } from 'node:child_process';
import fs from 'node:fs';
const ticks = (pid: number): number => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); };
const id = (b: Buffer): Buffer => b;
const def: grpc.ServiceDefinition = { Echo: { path: '/p.P/Echo', requestStream: true, responseStream: true, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } };
if (process.argv[2] === 'grpc-server') {
  const s = new grpc.Server();
  s.addService(def, { Echo: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => call.on('data', (b: Buffer) => call.write(b)) } as never);
  s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (_e, port) => process.send!(port));
} else if (process.argv[2] === 'tcp-server') {
  const srv = net.createServer((s) => s.on('data', (d) => s.write(d)));
  srv.listen(0, '127.0.0.1', () => process.send!((srv.address() as net.AddressInfo).port));
} else {
  const n = 5000; const buf = Buffer.alloc(300, 7);
  for (const kind of ['grpc', 'tcp']) {
    const child = fork(new URL(import.meta.url).pathname, [`${kind}-server`]);
    const port = await new Promise<number>((r) => child.once('message', (m) => r(m as number)));
    let send: () => void; let onMsg: (f: () => void) => void;
    if (kind === 'grpc') {
      const C = grpc.makeGenericClientConstructor(def, 'P');
      const c = new C(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      const call = (c as unknown as { Echo(): grpc.ClientDuplexStream<Buffer, Buffer> }).Echo();
      call.on('error', () => {}); // the server is killed under it at the end
      send = () => call.write(buf); onMsg = (f) => call.on('data', f);
    } else {
      const sock = net.connect(port, '127.0.0.1'); await new Promise((r) => sock.once('connect', r));
      send = () => sock.write(buf); onMsg = (f) => sock.on('data', f);
    }
    let i = 0; let done!: () => void; const finished = new Promise<void>((r) => (done = r));
    let t0 = 0; let c0 = process.cpuUsage(); let s0 = 0;
    onMsg(() => { i++; if (i === 500) { t0 = performance.now(); c0 = process.cpuUsage(); s0 = ticks(child.pid!); } if (i === 500 + n) done(); else send(); });
    send(); await finished;
    const el = performance.now() - t0; const c = process.cpuUsage(c0); const s1 = ticks(child.pid!);
    console.log(`${kind}: rtt ${(el * 1000 / n).toFixed(0)} µs, client cpu ${((c.user + c.system) / n).toFixed(0)} µs/roundtrip, server cpu ${((s1 - s0) * 10000 / n).toFixed(0)} µs/roundtrip`);
    child.kill();
  }
  process.exit(0);
}

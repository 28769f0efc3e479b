// The plaintext client port: a node:net server whose connections reach grpc-js through its connection
// injector, after admitClientConnection (authority-repair.ts) has seen each one's first request. grpc-js's
// own bind would hand the socket straight to nghttp2, which refuses etcdctl 3.4's `--cluster` requests.
// (The TLS ports do the same after the handshake, server/tls/tls-listener.ts.)
import * as grpc from '@grpc/grpc-js';
import net from 'node:net';
import { closeInjectingListener, splitHostPort } from '../tls/tls-listener.ts';
import { admitClientConnection, type AdmissionCounters } from './authority-repair.ts';

export interface ClientListener {
  port: number;
  close(): Promise<void>;
}

export async function listenPlain(server: grpc.Server, address: string, counters?: AdmissionCounters): Promise<ClientListener> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const netServer = net.createServer((socket) => {
    socket.setNoDelay(true);
    admitClientConnection(socket, (connection) => injector.injectConnection(connection), counters);
  });
  const [host, port] = splitHostPort(address);
  await new Promise<void>((resolve, reject) => {
    netServer.once('error', reject);
    netServer.listen(Number(port), host, () => {
      netServer.off('error', reject);
      resolve();
    });
  });
  return {
    port: (netServer.address() as net.AddressInfo).port,
    close: () => closeInjectingListener(injector, netServer),
  };
}

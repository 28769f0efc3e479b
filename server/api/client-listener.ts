// The plaintext client port: a node:net server whose connections reach grpc-js through its connection
// injector, after admitClientConnection (authority-repair.ts) has seen each one's first request. grpc-js's
// own bind would hand the socket straight to nghttp2, which refuses etcdctl 3.4's `--cluster` requests.
// (The TLS ports do the same after the handshake, server/tls/tls-listener.ts.) A connection that opens
// with an HTTP/1.x request goes to `http1` instead: etcd serves /health, /version and /metrics there.
import * as grpc from '@grpc/grpc-js';
import type http from 'node:http';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { closeInjectingListener, splitHostPort } from '../tls/tls-listener.ts';
import { admitClientConnection, type AdmissionCounters, type Http1Server } from './authority-repair.ts';

export interface ClientListener {
  port: number;
  close(): Promise<void>;
}

export async function listenPlain(server: grpc.Server, address: string, counters?: AdmissionCounters, http1?: Http1Server): Promise<ClientListener> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const netServer = net.createServer((socket) => {
    socket.setNoDelay(true);
    admitClientConnection(socket, (connection) => injector.injectConnection(connection), counters, http1);
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

/**
 * `server` on a Unix socket in a fresh directory only this user may enter (mkdtemp makes it 0700): the
 * JSON gateway's way into its own member (json-gateway.ts). Not a client port: nothing but this process
 * dials it, so it needs neither TLS nor the admission.
 */
export async function listenPrivateUnix(server: grpc.Server): Promise<{ target: string; close(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-gw-'));
  const socketPath = path.join(dir, 'grpc.sock');
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const netServer = net.createServer((socket) => injector.injectConnection(socket));
  await new Promise<void>((resolve, reject) => {
    netServer.once('error', reject);
    netServer.listen(socketPath, () => {
      netServer.off('error', reject);
      resolve();
    });
  });
  return {
    target: `unix:${socketPath}`,
    close: async () => {
      await closeInjectingListener(injector, netServer);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Gives `server` (a node:http server that never listens) one client-port connection that opened with an
 * HTTP/1.x request, `head` being the bytes already read from it. A TCP or TLS socket's handle is read by
 * the HTTP parser natively once the server takes it, so bytes put back with unshift() would never reach
 * the parser; the server's 'data' listener, which it keeps for exactly such injected bytes, takes them
 * instead, before any later read of the handle.
 */
export function injectHttp1Connection(server: http.Server, socket: Duplex, head: Buffer): void {
  server.emit('connection', socket);
  if (head.length > 0) socket.emit('data', head);
  socket.resume();
}

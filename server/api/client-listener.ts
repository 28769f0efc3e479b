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

/** Longest socket path Linux's sockaddr_un takes (108 bytes with its NUL), less a margin. */
const MAX_UNIX_SOCKET_PATH_BYTES = 100;

/**
 * `server` on a Unix socket only this user may reach: the JSON gateway's way into its own member
 * (json-gateway.ts). Not a client port: nothing but this process dials it, so it needs neither TLS nor
 * the admission. The socket lives in `<dataDir>/gateway/` (made 0700), so a member killed with -9 leaves
 * nothing behind but a socket file its next start replaces: the data dir is this member's alone (its
 * LevelDB lock), so a socket found there is a dead run's. A data dir whose path is too long for a socket
 * gets a fresh 0700 directory under the system's temp dir instead, removed on close.
 */
export async function listenPrivateUnix(server: grpc.Server, dataDir: string): Promise<{ target: string; close(): Promise<void> }> {
  const { dir, removeDirOnClose } = privateSocketDir(dataDir);
  const socketPath = path.join(dir, 'grpc.sock');
  fs.rmSync(socketPath, { force: true });
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
      fs.rmSync(removeDirOnClose ? dir : socketPath, { recursive: true, force: true });
    },
  };
}

function privateSocketDir(dataDir: string): { dir: string; removeDirOnClose: boolean } {
  const dir = path.resolve(dataDir, 'gateway');
  if (Buffer.byteLength(path.join(dir, 'grpc.sock')) > MAX_UNIX_SOCKET_PATH_BYTES) {
    return { dir: fs.mkdtempSync(path.join(os.tmpdir(), 'synod-gw-')), removeDirOnClose: true };
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // mkdir leaves an existing directory's mode alone.
  fs.chmodSync(dir, 0o700);
  return { dir, removeDirOnClose: false };
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

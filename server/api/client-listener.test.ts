// The JSON gateway's private socket: where it lives, who may reach it, and that a killed member's leftover
// neither blocks the next start nor piles up under the system's temp dir.
import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listenPrivateUnix } from './client-listener.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh data dir (removed after the test), `suffix` below the temp dir when given. */
function tempDataDir(suffix = ''): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'synod-listener-test-'));
  dirs.push(dir);
  return dir + suffix;
}

/** A unary call of a method no one serves: UNIMPLEMENTED proves the call reached grpc-js through the socket. */
async function statusThrough(target: string): Promise<grpc.status> {
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  try {
    return await new Promise<grpc.status>((resolve) => {
      client.makeUnaryRequest(
        '/synod.test.Nothing/Call',
        (b: Buffer) => b,
        (b: Buffer) => b,
        Buffer.alloc(0),
        { deadline: Date.now() + 5_000 },
        (err) => resolve(err?.code ?? grpc.status.OK),
      );
    });
  } finally {
    client.close();
  }
}

describe('listenPrivateUnix', () => {
  it('serves gRPC on a socket in <dataDir>/gateway, a directory only this user may enter, and removes the socket on close', async () => {
    const dataDir = tempDataDir();
    const server = new grpc.Server();
    const listener = await listenPrivateUnix(server, dataDir);
    const socketPath = path.join(dataDir, 'gateway', 'grpc.sock');
    expect(listener.target).toBe(`unix:${socketPath}`);
    expect(fs.statSync(path.join(dataDir, 'gateway')).mode & 0o777).toBe(0o700);
    expect(fs.statSync(socketPath).isSocket()).toBe(true);
    expect(await statusThrough(listener.target)).toBe(grpc.status.UNIMPLEMENTED);
    await listener.close();
    server.forceShutdown();
    expect(fs.existsSync(socketPath)).toBe(false);
  });

  it("replaces a socket a killed member left behind, and narrows a directory's mode it finds wider", async () => {
    const dataDir = tempDataDir();
    const gatewayDir = path.join(dataDir, 'gateway');
    fs.mkdirSync(gatewayDir, { mode: 0o755 });
    fs.chmodSync(gatewayDir, 0o755);
    fs.writeFileSync(path.join(gatewayDir, 'grpc.sock'), 'left by a member killed with -9');
    const server = new grpc.Server();
    const listener = await listenPrivateUnix(server, dataDir);
    expect(fs.statSync(gatewayDir).mode & 0o777).toBe(0o700);
    expect(await statusThrough(listener.target)).toBe(grpc.status.UNIMPLEMENTED);
    await listener.close();
    server.forceShutdown();
  });

  it('falls back to a fresh temp directory, removed on close, when the data dir path is too long for a socket', async () => {
    const dataDir = tempDataDir('/' + 'd'.repeat(120));
    fs.mkdirSync(dataDir, { recursive: true });
    const server = new grpc.Server();
    const listener = await listenPrivateUnix(server, dataDir);
    const socketPath = listener.target.slice('unix:'.length);
    expect(socketPath.startsWith(path.join(os.tmpdir(), 'synod-gw-'))).toBe(true);
    expect(fs.statSync(path.dirname(socketPath)).mode & 0o777).toBe(0o700);
    expect(fs.existsSync(path.join(dataDir, 'gateway'))).toBe(false);
    expect(await statusThrough(listener.target)).toBe(grpc.status.UNIMPLEMENTED);
    await listener.close();
    server.forceShutdown();
    expect(fs.existsSync(path.dirname(socketPath))).toBe(false);
  });
});

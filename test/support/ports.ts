// Free loopback ports for tests, picked at random below the kernel's ephemeral range, so parallel test
// files never clash on fixed ports and no outgoing connection can take a test server's port.
//
// Why not `listen(0)`: the kernel draws those ports from the ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768–60999 by default), the same range every outgoing
// connection's local port comes from. A member a test kills and restarts keeps its ports (its peers know
// them), and while it was down an outgoing connection of any process could take one of them: `make test`
// once saw a restarted member exit on EADDRINUSE, twice, for a port it had held a second before. Ports
// below the range are only ever taken by a listener that asked for them by number.
import fs from 'node:fs';
import net from 'node:net';

/** Lowest port handed out (below it sit the well-known and registered ports a developer may run). */
const LOWEST_PORT = 20_000;
/** Picks tried before falling back to a kernel-chosen port. */
const MAX_PICKS = 200;

/** First port of the kernel's ephemeral range (32768 when it cannot be read). */
function ephemeralRangeStart(): number {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 1024 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether 127.0.0.1:`port` can be listened on now (it is closed again before this resolves). */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A port the kernel picks (ephemeral): only when no port below the range could be found. */
function kernelPickedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export async function freePort(): Promise<number> {
  const highest = ephemeralRangeStart() - 1;
  if (highest - LOWEST_PORT >= 1_000) {
    for (let pick = 0; pick < MAX_PICKS; pick++) {
      const port = LOWEST_PORT + Math.floor(Math.random() * (highest - LOWEST_PORT + 1));
      if (await canListen(port)) return port;
    }
  }
  return kernelPickedPort();
}

export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

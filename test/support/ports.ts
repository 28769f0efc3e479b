// Free loopback ports for tests, picked at random below the kernel's ephemeral range, so parallel test
// files never clash on fixed ports and no outgoing connection can take a test server's port.
//
// Why not `listen(0)`: the kernel draws those ports from the ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range, 32768–60999 by default), the same range every outgoing
// connection's local port comes from. A member a test kills and restarts keeps its ports (its peers know
// them), and while it was down an outgoing connection of any process could take one of them: `make test`
// once saw a restarted member exit on EADDRINUSE, twice, for a port it had held a second before. Ports
// below the range are only ever taken by a listener that asked for them by number.
//
// Why claims: `make test` runs several test processes at once, and two of them could pick the same free
// port in the second or so before either's server binds it (a fresh-clone run once saw a member exit on
// EADDRINUSE at start, its cluster then short of a member). So a pick is also claimed, by creating a
// file named after the port with O_EXCL in a folder shared by every test process. A claim lasts 10 to
// 20 minutes: folders are per 10-minute epoch, a pick must find no claim in the current or the previous
// epoch's folder, and older folders are deleted.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Lowest port handed out (below it sit the well-known and registered ports a developer may run). */
const LOWEST_PORT = 20_000;
/** Picks tried before falling back to a kernel-chosen port. */
const MAX_PICKS = 200;

const CLAIMS_DIR = path.join(os.tmpdir(), 'synod-test-port-claims');
const CLAIM_EPOCH_MS = 10 * 60_000;

function epochDir(epoch: number): string {
  return path.join(CLAIMS_DIR, String(epoch));
}

let staleClaimsSwept = false;

/** Deletes claim folders older than the previous epoch (once per process; a concurrent sweep is harmless). */
function sweepStaleClaims(epoch: number): void {
  if (staleClaimsSwept) return;
  staleClaimsSwept = true;
  let names: string[];
  try {
    names = fs.readdirSync(CLAIMS_DIR);
  } catch {
    return;
  }
  for (const name of names) if (Number(name) < epoch - 1) fs.rmSync(path.join(CLAIMS_DIR, name), { recursive: true, force: true });
}

/** Claims `port` for this process unless another test process claimed it within the last 10–20 minutes. */
function claim(port: number): boolean {
  const epoch = Math.floor(Date.now() / CLAIM_EPOCH_MS);
  sweepStaleClaims(epoch);
  if (fs.existsSync(path.join(epochDir(epoch - 1), String(port)))) return false;
  fs.mkdirSync(epochDir(epoch), { recursive: true });
  try {
    fs.closeSync(fs.openSync(path.join(epochDir(epoch), String(port)), 'wx'));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

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
      if ((await canListen(port)) && claim(port)) return port;
    }
  }
  return kernelPickedPort();
}

export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

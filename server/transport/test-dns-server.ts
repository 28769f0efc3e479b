// Test support: a tiny authoritative DNS server on 127.0.0.1 (UDP) whose A records a test changes
// while it runs, so a name can move from one loopback address to another as a recreated pod's does.
// gRPC channels reach it with the target `dns://127.0.0.1:<port>/<name>:<port>`; grpc-js honours the
// authority only with GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true (read when grpc-js loads), so a test
// sets that before importing grpc-js. Answers A queries from `records`, NXDOMAIN for unknown names,
// and an empty answer for other types (AAAA, TXT). TTL 0: nothing may cache an old address.
import * as dgram from 'node:dgram';

export class TestDnsServer {
  /** Name (no trailing dot, lower case) → IPv4 address; absent names answer NXDOMAIN. */
  readonly records = new Map<string, string>();
  /** A queries answered so far, per name (shows how often a channel re-resolved). */
  readonly queries = new Map<string, number>();
  readonly #socket = dgram.createSocket('udp4');
  #port = 0;

  get port(): number {
    return this.#port;
  }

  /** A gRPC target for `name:port` resolved through this server. */
  target(name: string, port: number): string {
    return `dns://127.0.0.1:${this.#port}/${name}:${port}`;
  }

  async start(): Promise<void> {
    this.#socket.on('message', (query, from) => {
      const reply = this.#answer(query);
      if (reply !== null) this.#socket.send(reply, from.port, from.address);
    });
    await new Promise<void>((resolve) => this.#socket.bind(0, '127.0.0.1', () => resolve()));
    this.#port = this.#socket.address().port;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  #answer(query: Buffer): Buffer | null {
    if (query.length < 12 || query.readUInt16BE(4) !== 1) return null;
    // One question: labels, then QTYPE and QCLASS.
    let offset = 12;
    const labels: string[] = [];
    while (offset < query.length && query[offset] !== 0) {
      const length = query[offset]!;
      labels.push(query.subarray(offset + 1, offset + 1 + length).toString('ascii'));
      offset += 1 + length;
    }
    offset += 1;
    if (offset + 4 > query.length) return null;
    const qtype = query.readUInt16BE(offset);
    const questionEnd = offset + 4;
    const name = labels.join('.').toLowerCase();
    const address = this.records.get(name);
    if (qtype === 1) this.queries.set(name, (this.queries.get(name) ?? 0) + 1);
    const answer = qtype === 1 && address !== undefined ? aRecord(address) : Buffer.alloc(0);
    const header = Buffer.alloc(12);
    header.writeUInt16BE(query.readUInt16BE(0), 0);
    const rcode = address === undefined ? 3 : 0; // NXDOMAIN : NOERROR
    header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2); // QR, AA, RD echoed, RA
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answer.length > 0 ? 1 : 0, 6);
    return Buffer.concat([header, query.subarray(12, questionEnd), answer]);
  }
}

function aRecord(address: string): Buffer {
  const record = Buffer.alloc(16);
  record.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  record.writeUInt16BE(1, 2); // A
  record.writeUInt16BE(1, 4); // IN
  record.writeUInt32BE(0, 6); // TTL
  record.writeUInt16BE(4, 10);
  address.split('.').forEach((octet, i) => record.writeUInt8(Number(octet), 12 + i));
  return record;
}

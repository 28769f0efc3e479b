// authority-repair.ts: the header-block repair against a real HPACK encoder (hpack.js's compressor: Huffman
// strings, a dynamic table shared by a connection's blocks), and the admission in front of a real Node
// HTTP/2 server (nghttp2) with real Node HTTP/2 clients — one naming an :authority nghttp2 refuses.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import hpack from 'hpack.js';
import { afterEach, describe, expect, it } from 'vitest';
import {
  admitClientConnection,
  encodeLiteralBlock,
  frameAt,
  HeaderBlockRepairer,
  headersFrames,
  isValidAuthority,
  repairedAuthority,
  startsLikeHttp1,
  type AdmissionCounters,
} from './authority-repair.ts';
import { injectHttp1Connection } from './client-listener.ts';

interface Compressor {
  write(fields: Array<{ name: string; value: string }>): void;
  read(): Buffer | null;
}

/** One header block from hpack.js's compressor, which indexes what it sends and Huffman-codes strings. */
function compress(compressor: Compressor, fields: Array<{ name: string; value: string }>): Buffer {
  compressor.write(fields);
  const chunks: Buffer[] = [];
  for (let c = compressor.read(); c !== null; c = compressor.read()) chunks.push(c);
  return Buffer.concat(chunks);
}

function newCompressor(): Compressor {
  return (hpack as unknown as { compressor: { create(o: { table: { maxSize: number } }): Compressor } }).compressor.create({ table: { maxSize: 4096 } });
}

describe(':authority values', () => {
  it('accepts what nghttp2 accepts and repairs the rest to the same length', () => {
    for (const ok of ['127.0.0.1:2379', 'etcd-0.etcd.default.svc:2379', '[::1]:2379', 'user@host:1', 'a%20b']) expect(isValidAuthority(ok), ok).toBe(true);
    for (const bad of ['http://127.0.0.1:2379', 'https://h:1', 'h/p', 'a b']) expect(isValidAuthority(bad), bad).toBe(false);
    expect(repairedAuthority('http://127.0.0.1:2379')).toBe('http:__127.0.0.1:2379');
    expect(repairedAuthority('http://127.0.0.1:2379')).toHaveLength('http://127.0.0.1:2379'.length);
    expect(isValidAuthority(repairedAuthority('https://x/y z'))).toBe(true);
  });
});

describe('HeaderBlockRepairer', () => {
  it('decodes a connection\'s blocks against one dynamic table and re-encodes them with :authority repaired', () => {
    const client = newCompressor();
    const first = [
      { name: ':method', value: 'POST' },
      { name: ':scheme', value: 'http' },
      { name: ':path', value: '/etcdserverpb.Maintenance/Status' },
      { name: ':authority', value: 'http://127.0.0.1:2379' },
      { name: 'content-type', value: 'application/grpc' },
      { name: 'grpc-timeout', value: '4999854u' },
    ];
    const second = [...first.slice(0, 2), { name: ':path', value: '/etcdserverpb.KV/Range' }, ...first.slice(3, 5), { name: 'grpc-timeout', value: '4999001u' }];
    const blocks = [compress(client, first), compress(client, second)];
    // The second block refers to the first's fields through the dynamic table: it is smaller.
    expect(blocks[1].length).toBeLessThan(blocks[0].length);
    const repairer = new HeaderBlockRepairer();
    const server = new HeaderBlockRepairer(); // a fresh decoder: the repaired blocks need no table
    for (const [i, fields] of [first, second].entries()) {
      const repaired = server.decode(repairer.repair(blocks[i]));
      expect(repaired).toEqual(fields.map((f) => (f.name === ':authority' ? { name: f.name, value: 'http:__127.0.0.1:2379' } : f)));
    }
  });

  it('keeps bytes that are not ASCII as they were sent', () => {
    const value = Buffer.from([0xe2, 0x82, 0xac, 0x01]).toString('latin1');
    const decoded = new HeaderBlockRepairer().decode(encodeLiteralBlock([{ name: 'x-bin', value }]));
    expect(Buffer.from(decoded[0].value, 'latin1')).toEqual(Buffer.from([0xe2, 0x82, 0xac, 0x01]));
  });
});

describe('headersFrames', () => {
  it('splits a block larger than the default frame size into HEADERS and CONTINUATION frames', () => {
    const block = Buffer.alloc(40_000, 7);
    const bytes = headersFrames(block, 5, true);
    const frames = [];
    for (let offset = 0, f = frameAt(bytes, 0); f !== null; offset += f.bytes.length, f = frameAt(bytes, offset)) frames.push(f);
    expect(frames.map((f) => [f.type, f.flags, f.streamId, f.payload.length])).toEqual([
      [0x1, 0x1, 5, 16_384],
      [0x9, 0x0, 5, 16_384],
      [0x9, 0x4, 5, 40_000 - 2 * 16_384],
    ]);
    expect(Buffer.concat(frames.map((f) => f.payload))).toEqual(block);
  });
});

describe('admitClientConnection in front of a Node HTTP/2 server', () => {
  const closers: Array<() => void> = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  /** An HTTP/2 server answering each request with the :authority it saw, behind the admission (or not). */
  async function serve(admit: boolean, counters: AdmissionCounters): Promise<number> {
    const h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      stream.respond({ ':status': 200 });
      stream.end(String(headers[':authority']));
    });
    const sockets = new Set<net.Socket>();
    const tcp = net.createServer((socket) => {
      sockets.add(socket);
      if (admit) admitClientConnection(socket, (connection) => h2.emit('connection', connection), counters);
      else h2.emit('connection', socket);
    });
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    closers.push(() => {
      for (const s of sockets) s.destroy();
      tcp.close();
    });
    return (tcp.address() as net.AddressInfo).port;
  }

  /** `requests` requests on one connection naming `authority`; each one's answer or error. */
  async function ask(port: number, authority: string, requests: number): Promise<string[]> {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    closers.push(() => session.destroy());
    const answers: string[] = [];
    for (let i = 0; i < requests; i++) {
      answers.push(
        await new Promise<string>((resolve) => {
          const req = session.request({ ':method': 'POST', ':path': `/r${i}`, ':authority': authority, 'x-n': String(i) });
          let body = '';
          req.on('data', (d: Buffer) => (body += d.toString()));
          req.on('end', () => resolve(body));
          req.on('error', (err: Error & { code?: string }) => resolve(`error ${err.code ?? err.message}`));
          req.end('x');
        }),
      );
    }
    session.close();
    return answers;
  }

  it('without it, nghttp2 refuses the request whose :authority is a URL (what etcdctl 3.4 met)', async () => {
    const port = await serve(false, { repaired: 0 });
    expect(await ask(port, 'http://127.0.0.1:2379', 1)).toEqual(['error ERR_HTTP2_STREAM_ERROR']);
  });

  it('with it, every request of that connection is served with :authority repaired, and the connection counted', async () => {
    const counters = { repaired: 0 };
    const port = await serve(true, counters);
    expect(await ask(port, 'http://127.0.0.1:2379', 5)).toEqual(Array(5).fill('http:__127.0.0.1:2379'));
    expect(counters.repaired).toBe(1);
  });

  it('hands a connection with a valid :authority over as it is, and it serves many requests', async () => {
    const counters = { repaired: 0 };
    const port = await serve(true, counters);
    expect(await ask(port, `127.0.0.1:${port}`, 20)).toEqual(Array(20).fill(`127.0.0.1:${port}`));
    expect(counters.repaired).toBe(0);
  });

  it('hands over a connection whose first request waits past the peek (its SETTINGS acknowledged)', async () => {
    const counters = { repaired: 0 };
    const port = await serve(true, counters);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    closers.push(() => session.destroy());
    await new Promise((r) => setTimeout(r, 1_300));
    const body = await new Promise<string>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/late' });
      let b = '';
      req.on('data', (d: Buffer) => (b += d.toString()));
      req.on('end', () => resolve(b));
      req.on('error', reject);
      req.end();
    });
    expect(body).toBe(`127.0.0.1:${port}`);
    expect(counters.repaired).toBe(0);
  });
});

describe('admitClientConnection and a client that resets its connection while being admitted', () => {
  it('takes the error (no unhandled error event) and closes the socket', async () => {
    const injected: unknown[] = [];
    const closed = new Promise<void>((resolve) => {
      const tcp = net.createServer((socket) => {
        socket.on('close', () => {
          tcp.close();
          resolve();
        });
        admitClientConnection(socket, (c) => injected.push(c));
      });
      tcp.listen(0, '127.0.0.1', () => {
        const client = net.connect((tcp.address() as net.AddressInfo).port, '127.0.0.1', () => {
          client.write(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'));
          setTimeout(() => client.resetAndDestroy(), 50);
        });
        client.on('error', () => undefined);
      });
    });
    await closed;
    expect(injected).toEqual([]);
  });
});

describe('admitClientConnection with HTTP/1.x beside HTTP/2 (etcd serves /health, /version, /metrics on its client port)', () => {
  const closers: Array<() => void> = [];
  afterEach(() => {
    for (const close of closers.splice(0)) close();
  });

  /** One port: HTTP/2 to a Node HTTP/2 server, HTTP/1.x to a Node HTTP/1 server, each answering who it is. */
  async function serveBoth(): Promise<number> {
    const h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      stream.respond({ ':status': 200 });
      stream.end(`h2 ${String(headers[':path'])}`);
    });
    const h1 = http.createServer((req, res) => res.end(`h1 ${req.method} ${req.url}`));
    const sockets = new Set<net.Socket>();
    const tcp = net.createServer((socket) => {
      sockets.add(socket);
      admitClientConnection(socket, (connection) => h2.emit('connection', connection), { repaired: 0 }, (s, head) => injectHttp1Connection(h1, s, head));
    });
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    closers.push(() => {
      for (const s of sockets) s.destroy();
      h1.closeAllConnections();
      tcp.close();
    });
    return (tcp.address() as net.AddressInfo).port;
  }

  /** Writes `parts` to a fresh connection, 20 ms apart; everything the server sends until it closes. */
  function raw(port: number, parts: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let out = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (out += d));
      socket.on('close', () => resolve(out));
      socket.on('error', reject);
      parts.forEach((p, i) => setTimeout(() => socket.write(p), i * 20));
    });
  }

  it('tells a request line from the preface by its first byte', () => {
    expect(startsLikeHttp1(Buffer.from('GET / HTTP/1.1'))).toBe(true);
    expect(startsLikeHttp1(Buffer.from('P'))).toBe(true); // POST or PUT: already not "PRI * HTTP/2.0" when it differs
    expect(startsLikeHttp1(Buffer.from([0x16, 0x03, 0x01]))).toBe(false); // a TLS ClientHello on a plaintext port
    expect(startsLikeHttp1(Buffer.alloc(0))).toBe(false);
  });

  it('serves HTTP/1.1 requests, one split after its first byte, and keeps a connection alive; HTTP/2 on the same port is unchanged', async () => {
    const port = await serveBoth();
    const split = await raw(port, ['G', 'ET /split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n']);
    expect(split).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(split.endsWith('h1 GET /split')).toBe(true);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    closers.push(() => agent.destroy());
    const ports: number[] = [];
    for (const path of ['/health', '/version']) {
      const body = await new Promise<string>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
          ports.push(res.socket.localPort ?? 0);
          let b = '';
          res.on('data', (d: Buffer) => (b += d.toString()));
          res.on('end', () => resolve(b));
        }).on('error', reject);
      });
      expect(body).toBe(`h1 GET ${path}`);
    }
    expect(ports[1]).toBe(ports[0]);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    closers.push(() => session.destroy());
    const h2body = await new Promise<string>((resolve) => {
      const req = session.request({ ':path': '/grpc' });
      let b = '';
      req.on('data', (d: Buffer) => (b += d.toString()));
      req.on('end', () => resolve(b));
      req.end();
    });
    expect(h2body).toBe('h2 /grpc');
  });

  it('hands bytes that are neither to nghttp2, which refuses them', async () => {
    const port = await serveBoth();
    const answer = await raw(port, ['\x16\x03\x01\x00\x05hello']);
    expect(answer.startsWith('HTTP/1.1')).toBe(false);
  });
});

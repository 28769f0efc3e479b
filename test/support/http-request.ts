// One HTTP/1.1 request from a test, as curl would send it, and the whole answer (the client port's etcd
// paths and JSON gateway: test/client-port-http.test.ts, test/json-gateway.test.ts).
import http from 'node:http';

export interface HttpAnswer {
  status: number;
  contentType: string;
  body: string;
  /** The local port of the connection that carried it (the same for requests kept alive on one). */
  socketPort: number;
}

export interface HttpRequestOptions {
  method?: string;
  body?: string;
  headers?: Record<string, string>;
  /** Through this agent (keep-alive); a fresh connection without. */
  agent?: http.Agent;
}

/** `address` is host:port, with or without an http:// in front. */
export function httpRequest(address: string, path: string, opts: HttpRequestOptions = {}): Promise<HttpAnswer> {
  const [host, port] = address.replace(/^https?:\/\//, '').split(':');
  const method = opts.method ?? 'GET';
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: Number(port), path, method, headers: opts.headers, agent: opts.agent ?? false, timeout: 10_000 }, (res) => {
      let body = '';
      const socketPort = res.socket.localPort ?? 0; // read now: a kept-alive socket leaves the response at its end
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body, socketPort }));
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

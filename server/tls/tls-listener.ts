// Serves a grpc-js server over TLS on a listener this module owns. grpc-js's own secure bind hides its
// TLS server, so a failed handshake (a plaintext client on a TLS port, a client certificate from an
// unknown CA) would vanish without a trace; here TLS is terminated by a node:tls server whose failures
// are logged in plain words, and established connections are handed to grpc-js through its connection
// injector. Reloaded certificates (certificate-files.ts) apply to new connections at once.
import * as grpc from '@grpc/grpc-js';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { CertificateFiles } from './certificate-files.ts';

export interface TlsListenerOptions {
  files: CertificateFiles;
  /** etcd's --client-cert-auth / --peer-client-cert-auth: require a certificate signed by the trusted CA. */
  requireClientCert: boolean;
  /** Names the port in log lines: "client" or "peer". */
  role: string;
  logger: Logger;
  /** Where an established connection goes before grpc-js takes it (the client port: authority-repair.ts). */
  admit?: (socket: Duplex, inject: (connection: Duplex) => void) => void;
  /**
   * Where a connection that negotiated HTTP/1.1 goes (the client port: etcd answers /health, /version and
   * /metrics there). Without it only h2 is offered.
   */
  http1?: (socket: Duplex, head: Buffer) => void;
}

/**
 * The protocol a client port picks from what a client offers: HTTP/1.1 whenever offered, else h2. gRPC
 * clients offer h2 alone (grpc-go, grpc-js, grpc-java, grpc's C core with its "grpc-exp"); curl, Go's
 * net/http (Prometheus) and browsers offer both, and what they ask for on 2379 is /health or /metrics.
 */
export function pickClientPortProtocol(offered: readonly string[]): string | undefined {
  if (offered.includes('http/1.1')) return 'http/1.1';
  return offered.includes('h2') ? 'h2' : undefined;
}

export interface TlsListener {
  port: number;
  close(): Promise<void>;
}

const LOG_EVERY_MS = 10_000;

/** Why a handshake failed, in words an operator can act on. */
export function describeHandshakeFailure(err: Error & { code?: string }, requireClientCert: boolean): string {
  const text = `${err.code ?? ''} ${err.message}`.toLowerCase();
  if (/wrong.version.number|http.request|https.proxy.request|unknown.protocol|packet.length.too.long|record.layer.failure/.test(text)) {
    return 'not TLS: a plaintext client on a TLS port (use an https:// endpoint and the CA certificate)';
  }
  if (/did.not.return.a.certificate|certificate.required/.test(text)) {
    return 'no client certificate, but client certificate authentication is on';
  }
  if (/certificate.verify.failed|unknown.ca|self.signed|unable.to.get.issuer|unable.to.verify|bad.certificate|unsupported.certificate/.test(text)) {
    return requireClientCert
      ? 'client certificate rejected: not signed by the trusted CA (or expired, or not for client use)'
      : 'the client rejected this server\'s certificate (is it signed by the CA the client trusts?)';
  }
  if (/certificate.expired|certificate.has.expired/.test(text)) return 'certificate expired';
  if (/no.application.protocol|alpn/.test(text)) return 'the client does not speak HTTP/2 over TLS (ALPN h2)';
  if (/econnreset|socket hang up|epipe/.test(text)) return 'connection closed during the TLS handshake';
  return `TLS handshake failed: ${err.message.split('\n')[0]}`;
}

/** Why a verified handshake's client certificate is not accepted (node's authorizationError codes). */
export function describeCertificateRejection(code: string): string {
  if (/EXPIRED|NOT_YET_VALID/.test(code)) return `client certificate rejected: outside its validity period (${code})`;
  if (/PURPOSE/.test(code)) return `client certificate rejected: not issued for client use (${code})`;
  return `client certificate rejected: not signed by the trusted CA (${code})`;
}

export async function listenTls(server: grpc.Server, address: string, opts: TlsListenerOptions): Promise<TlsListener> {
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const contextOptions = (): tls.SecureContextOptions => opts.files.secureContextOptions();
  const tlsServer = tls.createServer({
    ...contextOptions(),
    requestCert: opts.requireClientCert,
    // Client certificates are verified below, after the handshake: node's own rejection closes the
    // socket with a bare "socket hang up" (TLS 1.3 finishes the client's side of the handshake before
    // the server has checked its certificate), which would leave nothing to log.
    rejectUnauthorized: false,
    ...(opts.http1 !== undefined ? { ALPNCallback: ({ protocols }: { protocols: string[] }) => pickClientPortProtocol(protocols) } : { ALPNProtocols: ['h2'] }),
    // A client that connects and never finishes the handshake must not hold a socket for ever.
    handshakeTimeout: 10_000,
  });
  const stopWatching = opts.files.onReload(() => tlsServer.setSecureContext(contextOptions()));

  // One line per kind of failure per interval: a misconfigured client retries forever.
  const lastLogged = new Map<string, { at: number; suppressed: number }>();
  const logRefusal = (reason: string, remote: string, detail: string): void => {
    const now = Date.now();
    const seen = lastLogged.get(reason);
    if (seen && now - seen.at < LOG_EVERY_MS) {
      seen.suppressed++;
      return;
    }
    lastLogged.set(reason, { at: now, suppressed: 0 });
    opts.logger.warn({ port: opts.role, remote, reason, detail, similarSinceLastLine: seen?.suppressed ?? 0 }, `refused a connection on the TLS ${opts.role} port: ${reason}`);
  };

  tlsServer.on('secureConnection', (socket: tls.TLSSocket) => {
    if (opts.requireClientCert && !socket.authorized) {
      const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
      const cert = socket.getPeerCertificate();
      const presented = !!cert && Object.keys(cert).length > 0;
      const code = String(socket.authorizationError ?? 'unauthorized');
      const reason = presented ? describeCertificateRejection(code) : 'no client certificate, but client certificate authentication is on';
      const who = presented ? `subject ${JSON.stringify(cert.subject ?? {})}, issuer ${JSON.stringify(cert.issuer ?? {})}` : 'no certificate';
      logRefusal(reason, remote, `${code}; ${who}`);
      socket.destroy();
      return;
    }
    if (opts.http1 !== undefined && socket.alpnProtocol === 'http/1.1') opts.http1(socket, Buffer.alloc(0));
    else if (opts.admit) opts.admit(socket, (connection) => injector.injectConnection(connection));
    else injector.injectConnection(socket);
  });

  tlsServer.on('tlsClientError', (err: Error & { code?: string }, socket: tls.TLSSocket) => {
    logRefusal(describeHandshakeFailure(err, opts.requireClientCert), `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`, err.code ?? err.message);
  });

  const [host, portText] = splitHostPort(address);
  await new Promise<void>((resolve, reject) => {
    tlsServer.once('error', reject);
    tlsServer.listen(Number(portText), host, () => {
      tlsServer.off('error', reject);
      resolve();
    });
  });
  const port = (tlsServer.address() as { port: number }).port;
  return {
    port,
    close: () => {
      stopWatching();
      return closeInjectingListener(injector, tlsServer);
    },
  };
}

/**
 * Closes a listener that hands its connections to grpc-js through `injector` (this one, and the plaintext
 * client port's, api/client-listener.ts).
 */
export function closeInjectingListener(injector: { destroy(): void }, server: net.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    injector.destroy();
    server.close(() => resolve());
    // Sockets grpc-js still holds end with its own shutdown; do not wait on them here.
    setTimeout(resolve, 1_000).unref();
  });
}

export function splitHostPort(address: string): [string, string] {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`not a host:port address: ${address}`);
  return [m[1], m[2]];
}

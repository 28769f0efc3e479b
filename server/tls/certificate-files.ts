// A certificate, its key and a CA bundle read from files, and read again when the files change, so
// certificates can be rotated without a restart (etcd re-reads them for every handshake). The files are
// polled; a new set is adopted only once it loads as a valid TLS context, so a half-written file never
// replaces a working certificate. Implements grpc-js's CertificateProvider for client channels.
import fs from 'node:fs';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';

export interface CertificateFilesConfig {
  certFile: string;
  keyFile: string;
  /** CA bundle that peers' certificates must chain to; empty: the system's roots. */
  trustedCaFile: string;
}

export interface CertificateSet {
  cert: Buffer;
  key: Buffer;
  /** null: no CA file configured (use the system's roots). */
  ca: Buffer | null;
}

type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;
type CaListener = (update: { caCertificate: Buffer } | null) => void;

function stamp(file: string): string {
  if (!file) return '';
  try {
    const s = fs.statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

export class CertificateFiles {
  readonly config: CertificateFilesConfig;
  private readonly logger: Logger;
  private current: CertificateSet;
  private stamps: string;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<(set: CertificateSet) => void>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly caListeners = new Set<CaListener>();

  /** Loads the files now; throws with the file's name when one is missing or does not load. */
  constructor(config: CertificateFilesConfig, logger: Logger, reloadIntervalMs = 1_000) {
    this.config = config;
    this.logger = logger;
    this.stamps = this.stampAll();
    this.current = this.load();
    this.describe('loaded TLS certificate');
    if (reloadIntervalMs > 0) {
      this.timer = setInterval(() => this.poll(), reloadIntervalMs);
      this.timer.unref();
    }
  }

  get certificates(): CertificateSet {
    return this.current;
  }

  /** Options for tls.createSecureContext / setSecureContext. */
  secureContextOptions(): tls.SecureContextOptions {
    return { cert: this.current.cert, key: this.current.key, ...(this.current.ca ? { ca: this.current.ca } : {}) };
  }

  /** Called with the new set after every successful reload. */
  onReload(listener: (set: CertificateSet) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Checks the files now (the timer calls this too); true when a new set was adopted. */
  poll(): boolean {
    const now = this.stampAll();
    if (now === this.stamps) return false;
    let next: CertificateSet;
    try {
      next = this.load();
    } catch (err) {
      // Possibly mid-rotation: keep serving with the old set and look again on the next poll.
      this.logger.warn({ err: (err as Error).message }, 'TLS certificate files changed but do not load yet; keeping the previous certificate');
      return false;
    }
    this.stamps = now;
    this.current = next;
    this.describe('reloaded TLS certificate from disk');
    for (const l of this.listeners) l(next);
    for (const l of this.identityListeners) l({ certificate: next.cert, privateKey: next.key });
    for (const l of this.caListeners) l({ caCertificate: this.caBundle() });
    return true;
  }

  // grpc-js CertificateProvider (experimental API), for channel credentials that follow reloads.
  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(listener, { certificate: this.current.cert, privateKey: this.current.key });
  }
  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(listener, { caCertificate: this.caBundle() });
  }
  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  private caBundle(): Buffer {
    return this.current.ca ?? Buffer.from(tls.rootCertificates.join('\n'));
  }

  private stampAll(): string {
    return [this.config.certFile, this.config.keyFile, this.config.trustedCaFile].map(stamp).join('|');
  }

  private load(): CertificateSet {
    const read = (file: string, what: string): Buffer => {
      try {
        return fs.readFileSync(file);
      } catch (err) {
        throw new Error(`cannot read ${what} ${file}: ${(err as Error).message}`);
      }
    };
    const set: CertificateSet = {
      cert: read(this.config.certFile, 'certificate'),
      key: read(this.config.keyFile, 'private key'),
      ca: this.config.trustedCaFile ? read(this.config.trustedCaFile, 'trusted CA file') : null,
    };
    try {
      // Throws when the key does not match the certificate or a file is not PEM.
      tls.createSecureContext({ cert: set.cert, key: set.key, ...(set.ca ? { ca: set.ca } : {}) });
    } catch (err) {
      throw new Error(`TLS files ${this.config.certFile} / ${this.config.keyFile} do not load: ${(err as Error).message}`);
    }
    return set;
  }

  private describe(msg: string): void {
    try {
      const x = new X509Certificate(this.current.cert);
      this.logger.info({ certFile: this.config.certFile, subject: x.subject.replace(/\n/g, ', '), validTo: x.validTo, serial: x.serialNumber }, msg);
    } catch {
      this.logger.info({ certFile: this.config.certFile }, msg);
    }
  }
}

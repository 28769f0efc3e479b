// Development and test certificates, made with Debian's openssl binary: a throw-away CA, a server
// certificate for loopback (also used as the peer certificate, so it allows both server and client
// use), and client certificates whose common name is an auth user name. For `synod local --tls` and the
// tests; production certificates come from the operator's own CA.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

export interface CertificatePair {
  certFile: string;
  keyFile: string;
}

export interface DevCertificates {
  dir: string;
  ca: CertificatePair;
  /** CN=synod, SANs for 127.0.0.1, ::1 and localhost; server and client use (peer TLS). */
  server: CertificatePair;
  /** Client certificates by common name. */
  clients: Record<string, CertificatePair>;
}

export interface IssueOptions {
  commonName: string;
  /** Subject alternative names, e.g. ['IP:127.0.0.1', 'DNS:localhost']; none for client certificates. */
  altNames?: string[];
  usage: 'server' | 'client' | 'server+client';
  days?: number;
}

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(new Error(missing ? 'openssl not found: install it (Debian: apt-get install openssl; `make system-deps` does)' : `openssl ${args[0]} failed: ${stderr}`));
    });
  });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export async function createCa(dir: string, name: string, commonName = 'Synod development CA'): Promise<CertificatePair> {
  fs.mkdirSync(dir, { recursive: true });
  const pair = { certFile: path.join(dir, `${name}.pem`), keyFile: path.join(dir, `${name}-key.pem`) };
  await openssl(['req', '-x509', '-new', ...EC_KEY, '-keyout', pair.keyFile, '-out', pair.certFile, '-days', '3650', '-subj', `/CN=${commonName}`], dir);
  fs.chmodSync(pair.keyFile, 0o600);
  return pair;
}

/** A key and a certificate signed by `ca`, written as <name>.pem and <name>-key.pem in `dir`. */
export async function issueCertificate(ca: CertificatePair, dir: string, name: string, opts: IssueOptions): Promise<CertificatePair> {
  fs.mkdirSync(dir, { recursive: true });
  const pair = { certFile: path.join(dir, `${name}.pem`), keyFile: path.join(dir, `${name}-key.pem`) };
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  const eku = opts.usage === 'server' ? 'serverAuth' : opts.usage === 'client' ? 'clientAuth' : 'serverAuth,clientAuth';
  const lines = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${eku}`];
  if (opts.altNames && opts.altNames.length > 0) lines.push(`subjectAltName=${opts.altNames.join(',')}`);
  fs.writeFileSync(ext, `${lines.join('\n')}\n`);
  // Write to temporary names and rename: a running server polling these files never sees half of a pair.
  const tmpCert = `${pair.certFile}.tmp`;
  const tmpKey = `${pair.keyFile}.tmp`;
  try {
    await openssl(['req', '-new', ...EC_KEY, '-keyout', tmpKey, '-out', csr, '-subj', `/CN=${opts.commonName}`], dir);
    const serial = `0x01${randomBytes(12).toString('hex')}`; // leading 01: positive and never zero
    await openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', serial, '-days', String(opts.days ?? 825), '-extfile', ext, '-out', tmpCert], dir);
    fs.chmodSync(tmpKey, 0o600);
    fs.renameSync(tmpKey, pair.keyFile);
    fs.renameSync(tmpCert, pair.certFile);
  } finally {
    fs.rmSync(csr, { force: true });
    fs.rmSync(ext, { force: true });
    fs.rmSync(tmpCert, { force: true });
    fs.rmSync(tmpKey, { force: true });
  }
  return pair;
}

export const LOOPBACK_ALT_NAMES = ['IP:127.0.0.1', 'IP:::1', 'DNS:localhost'];

/** A CA, a loopback server/peer certificate and one client certificate per name, in `dir`. */
export async function generateDevCertificates(dir: string, clientNames: string[] = ['root']): Promise<DevCertificates> {
  const ca = await createCa(dir, 'ca');
  const server = await issueCertificate(ca, dir, 'server', { commonName: 'synod', altNames: LOOPBACK_ALT_NAMES, usage: 'server+client' });
  const clients: Record<string, CertificatePair> = {};
  for (const name of clientNames) clients[name] = await issueCertificate(ca, dir, `client-${name}`, { commonName: name, usage: 'client' });
  return { dir, ca, server, clients };
}

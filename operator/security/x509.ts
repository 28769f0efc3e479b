// Issues X.509 v3 certificates with node:crypto alone: ECDSA P-256 keys, ecdsa-with-SHA256 signatures,
// and a DER encoder for exactly the structures the operator's generated certificates need (RFC 5280:
// names with a common name, validity, basic constraints, key usage, extended key usage, subject
// alternative names, subject and authority key identifiers). Reading certificates back is left to
// node:crypto's X509Certificate (certificateFacts). No third-party X.509 library: the one well-kept
// candidate needs a global Reflect polyfill, and node:crypto already signs and parses.

import { createHash, createPrivateKey, createPublicKey, generateKeyPair, randomBytes, sign, X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';

const generateKeyPairAsync = promisify(generateKeyPair);

const OID = {
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

// ---- DER ----

function lengthBytes(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length]);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), lengthBytes(content.length), content]);
}

const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const octetString = (content: Buffer): Buffer => tlv(0x04, content);
const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'));
const booleanTrue = (): Buffer => tlv(0x01, Buffer.from([0xff]));
/** [n] EXPLICIT: a constructed context-specific tag around an encoded value. */
const explicit = (n: number, content: Buffer): Buffer => tlv(0xa0 | n, content);

function bitString(content: Buffer, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), content]));
}

/** A non-negative INTEGER from big-endian magnitude bytes (minimal, with a 0x00 when the top bit is set). */
function unsignedInteger(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  return tlv(0x02, trimmed[0] >= 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
}

function objectIdentifier(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const bytes: number[] = [parts[0] * 40 + parts[1]];
  for (const part of parts.slice(2)) {
    const chunk: number[] = [part & 0x7f];
    for (let n = Math.floor(part / 128); n > 0; n = Math.floor(n / 128)) chunk.unshift(0x80 | (n & 0x7f));
    bytes.push(...chunk);
  }
  return tlv(0x06, Buffer.from(bytes));
}

/** UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5); whole seconds, UTC. */
function time(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = date.getUTCFullYear();
  return year < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii')) : tlv(0x18, Buffer.from(digits, 'ascii'));
}

function name(commonName: string, organization?: string): Buffer {
  const rdns = [];
  if (organization !== undefined) rdns.push(set(sequence(objectIdentifier(OID.organization), utf8String(organization))));
  rdns.push(set(sequence(objectIdentifier(OID.commonName), utf8String(commonName))));
  return sequence(...rdns);
}

function extension(oid: string, critical: boolean, value: Buffer): Buffer {
  return sequence(objectIdentifier(oid), ...(critical ? [booleanTrue()] : []), octetString(value));
}

/** KeyUsage bits (RFC 5280 4.2.1.3), first bit = most significant bit of the first byte. */
function keyUsage(bits: readonly number[]): Buffer {
  let value = 0;
  for (const bit of bits) value |= 0x80 >> bit;
  let unused = 0;
  while (unused < 7 && (value & (1 << unused)) === 0) unused++;
  return bitString(Buffer.from([value]), unused);
}

function ipAddressBytes(address: string): Buffer {
  if (isIP(address) === 4) return Buffer.from(address.split('.').map(Number));
  // IPv6: expand "::" and write eight 16-bit groups.
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function subjectAltNames(dnsNames: readonly string[], ipAddresses: readonly string[]): Buffer {
  return sequence(
    ...dnsNames.map((d) => tlv(0x82, Buffer.from(d, 'ascii'))),
    ...ipAddresses.map((ip) => tlv(0x87, ipAddressBytes(ip))),
  );
}

// ---- keys and certificates ----

export interface KeyAndCertificate {
  /** PEM, PKCS#8. */
  keyPem: string;
  certPem: string;
}

export type CertificateUsage = 'server' | 'client' | 'server+client';

export interface CertificateRequest {
  commonName: string;
  organization?: string;
  notBefore: Date;
  notAfter: Date;
  /** For leaf certificates: what the key may authenticate. */
  usage?: CertificateUsage;
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

function keyIdentifier(spkiDer: Buffer): Buffer {
  // RFC 5280 4.2.1.2 method (1) hashes the BIT STRING's bits; the whole SPKI is as unique and simpler.
  return createHash('sha1').update(spkiDer).digest();
}

function serialNumber(): Buffer {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] & 0x7f) | 0x01; // positive, and never a leading zero byte
  return bytes;
}

function toPem(label: string, der: Buffer): string {
  const base64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${base64}\n-----END ${label}-----\n`;
}

async function newKey(): Promise<{ keyPem: string; spkiDer: Buffer }> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    spkiDer: publicKey.export({ type: 'spki', format: 'der' }),
  };
}

function signCertificate(request: CertificateRequest, spkiDer: Buffer, issuer: { name: Buffer; keyPem: string; spkiDer: Buffer }, isCa: boolean): string {
  const algorithm = sequence(objectIdentifier(OID.ecdsaWithSha256));
  const extensions: Buffer[] = [
    extension(OID.basicConstraints, true, isCa ? sequence(booleanTrue(), unsignedInteger(Buffer.from([0]))) : sequence()),
    // CA: keyCertSign(5), cRLSign(6), digitalSignature(0). Leaf: digitalSignature (ECDHE key exchange needs no more).
    extension(OID.keyUsage, true, keyUsage(isCa ? [0, 5, 6] : [0])),
    extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(spkiDer))),
    extension(OID.authorityKeyIdentifier, false, sequence(tlv(0x80, keyIdentifier(issuer.spkiDer)))),
  ];
  if (!isCa) {
    const usage = request.usage ?? 'server+client';
    const purposes = [...(usage !== 'client' ? [OID.serverAuth] : []), ...(usage !== 'server' ? [OID.clientAuth] : [])];
    extensions.push(extension(OID.extKeyUsage, false, sequence(...purposes.map(objectIdentifier))));
  }
  const dnsNames = request.dnsNames ?? [];
  const ipAddresses = request.ipAddresses ?? [];
  if (dnsNames.length + ipAddresses.length > 0) {
    // Critical only when the subject is empty (RFC 5280 4.2.1.6); ours always has a CN.
    extensions.push(extension(OID.subjectAltName, false, subjectAltNames(dnsNames, ipAddresses)));
  }
  const tbs = sequence(
    explicit(0, unsignedInteger(Buffer.from([2]))), // v3
    unsignedInteger(serialNumber()),
    algorithm,
    issuer.name,
    sequence(time(request.notBefore), time(request.notAfter)),
    name(request.commonName, request.organization),
    spkiDer,
    explicit(3, sequence(...extensions)),
  );
  const signature = sign('sha256', tbs, { key: createPrivateKey(issuer.keyPem), dsaEncoding: 'der' });
  return toPem('CERTIFICATE', sequence(tbs, algorithm, bitString(signature)));
}

/** A self-signed CA certificate (path length 0: it signs leaf certificates only). */
export async function createCertificateAuthority(request: CertificateRequest): Promise<KeyAndCertificate> {
  const { keyPem, spkiDer } = await newKey();
  const subject = name(request.commonName, request.organization);
  return { keyPem, certPem: signCertificate(request, spkiDer, { name: subject, keyPem, spkiDer }, true) };
}

/** A new key and a leaf certificate for it, signed by `ca`. */
export async function issueLeafCertificate(ca: KeyAndCertificate, request: CertificateRequest): Promise<KeyAndCertificate> {
  const { keyPem, spkiDer } = await newKey();
  const caCert = new X509Certificate(ca.certPem);
  const issuerName = Buffer.from(caSubjectDer(caCert));
  const caSpki = createPublicKey(ca.certPem).export({ type: 'spki', format: 'der' });
  return { keyPem, certPem: signCertificate(request, spkiDer, { name: issuerName, keyPem: ca.keyPem, spkiDer: caSpki }, false) };
}

/**
 * The DER of a certificate's subject Name, read from the certificate itself (node:crypto exposes the
 * subject only as text): Certificate → tbsCertificate → the sixth field (after version, serial,
 * signature algorithm, issuer, validity). The issuer field of certificates we sign must be these bytes.
 */
function caSubjectDer(cert: X509Certificate): Buffer {
  const der = cert.raw;
  const read = (offset: number): { start: number; end: number; contentStart: number } => {
    let cursor = offset + 1;
    let length = der[cursor++];
    if (length & 0x80) {
      const count = length & 0x7f;
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + der[cursor++];
    }
    return { start: offset, contentStart: cursor, end: cursor + length };
  };
  const certificate = read(0);
  const tbs = read(certificate.contentStart);
  let field = read(tbs.contentStart);
  // Field 0 is the [0] version when present; then serial, signature, issuer, validity, subject.
  const fieldsBeforeSubject = der[field.start] === 0xa0 ? 5 : 4;
  for (let i = 0; i < fieldsBeforeSubject; i++) field = read(field.end);
  return der.subarray(field.start, field.end);
}

// ---- reading certificates ----

/** What the operator's rotation decisions need to know about a certificate. */
export interface CertificateFacts {
  /** SHA-256 fingerprint, as node:crypto prints it. */
  fingerprint: string;
  notBeforeMs: number;
  notAfterMs: number;
  isCa: boolean;
  dnsNames: string[];
  ipAddresses: string[];
}

export function certificateFacts(pem: string | Buffer): CertificateFacts {
  const cert = new X509Certificate(pem);
  const san = cert.subjectAltName ?? '';
  const entries = san === '' ? [] : san.split(', ');
  return {
    fingerprint: cert.fingerprint256,
    notBeforeMs: cert.validFromDate.getTime(),
    notAfterMs: cert.validToDate.getTime(),
    isCa: cert.ca,
    dnsNames: entries.filter((e) => e.startsWith('DNS:')).map((e) => e.slice(4)),
    ipAddresses: entries.filter((e) => e.startsWith('IP Address:')).map((e) => e.slice('IP Address:'.length)),
  };
}

/** Splits a PEM bundle into its certificates (anything that is not a CERTIFICATE block is ignored). */
export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((c) => (c.endsWith('\n') ? c : `${c}\n`)) ?? [];
}

/** Whether `leafPem` was signed by the CA certificate `caPem` (issuer name and signature both match). */
export function isSignedBy(leafPem: string, caPem: string): boolean {
  try {
    const leaf = new X509Certificate(leafPem);
    const ca = new X509Certificate(caPem);
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  } catch {
    return false;
  }
}

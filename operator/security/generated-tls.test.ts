// The operator's generated certificates through their whole life, against the in-memory API double
// (a stand-in for the API server's Secret storage, with server-side apply): created once, idempotent,
// leaf renewal when a third of the lifetime is left, CA renewal in two steps (trusted first, signing
// only after the bundle had time to reach every pod), expired CAs dropped. The certificates themselves
// are checked with node:crypto and with Debian's openssl (chain, names, usages).

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { V1Secret } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import type { TlsSpec } from '../api/types.ts';
import { generatedSecretNames } from '../api/types.ts';
import { InMemoryApiDouble } from '../testing/in-memory-api-double.ts';
import type { CaState, GeneratedTlsState, LeafState, LeafWant } from './certificate-rotation.ts';
import { DAY_MS, TRUST_PROPAGATION_MS, decideGeneratedTls, renewalDue, renewalDueAtMs } from './certificate-rotation.ts';
import { leafWants, reconcileGeneratedTls } from './generated-tls.ts';
import type { CertificateFacts } from './x509.ts';
import { isSignedBy, splitPemBundle } from './x509.ts';

const REF = { name: 'demo', namespace: 'team-a', uid: 'uid-1' };
const TLS: TlsSpec = { generate: true, certificateValidityDays: 90 };
const NAMES = generatedSecretNames(REF.name);
const T0 = Date.UTC(2027, 0, 1);
const scratch = mkdtempSync(path.join(tmpdir(), 'synod-gen-tls-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function data(api: InMemoryApiDouble, name: string, key: string): string {
  const secret = api.get<V1Secret & { kind: string }>('Secret', REF.namespace, name);
  const value = secret?.data?.[key];
  if (value === undefined) throw new Error(`Secret ${name} has no ${key}`);
  return Buffer.from(value, 'base64').toString('utf8');
}

function secretApplies(api: InMemoryApiDouble): number {
  return api.calls.filter((c) => c === 'apply:Secret').length;
}

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('generated TLS Secrets (in-memory API double for the Secrets, real certificates)', () => {
  it('creates a CA and the server, peer and operator certificates once; a second pass writes nothing', async () => {
    const api = new InMemoryApiDouble();
    const first = await reconcileGeneratedTls(api, REF, TLS, T0);
    expect(first.changes).toHaveLength(4);
    const ca = data(api, NAMES.ca, 'ca.crt');
    expect(splitPemBundle(data(api, NAMES.ca, 'trust.crt'))).toEqual([ca]);
    for (const name of [NAMES.server, NAMES.peer, NAMES.operatorClient]) {
      const secret = api.get<V1Secret & { kind: string }>('Secret', REF.namespace, name);
      expect(secret?.type).toBe('kubernetes.io/tls');
      expect(secret?.metadata?.ownerReferences?.[0]).toMatchObject({ kind: 'SynodCluster', name: 'demo', uid: 'uid-1', controller: true });
      expect(isSignedBy(data(api, name, 'tls.crt'), ca)).toBe(true);
      expect(data(api, name, 'ca.crt')).toBe(ca);
      const cert = new X509Certificate(data(api, name, 'tls.crt'));
      expect(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(data(api, name, 'tls.key')))).toBe(true);
      expect(cert.validToDate.getTime() - T0).toBe(90 * DAY_MS);
    }
    // A pod's DNS name, the client Service's, and loopback (kubectl port-forward) are on the server certificate.
    const server = new X509Certificate(data(api, NAMES.server, 'tls.crt'));
    expect(server.checkHost('demo-2.demo-peer.team-a.svc')).toBe('*.demo-peer.team-a.svc');
    expect(server.checkHost('demo-client.team-a.svc')).toBe('demo-client.team-a.svc');
    expect(server.checkHost('demo-client.other.svc')).toBeUndefined();
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(new X509Certificate(data(api, NAMES.peer, 'tls.crt')).checkHost('demo-0.demo-peer.team-a.svc.cluster.local')).toBeDefined();
    expect(new X509Certificate(data(api, NAMES.operatorClient, 'tls.crt')).subject).toContain('CN=synod-operator');

    // openssl agrees: the chain verifies for the purpose each certificate serves.
    const files = (name: string, key: string): string => {
      const file = path.join(scratch, `${name}-${key}`);
      writeFileSync(file, data(api, name, key));
      return file;
    };
    const caFile = files(NAMES.ca, 'ca.crt');
    expect(openssl(['verify', '-attime', String(T0 / 1000 + 60), '-purpose', 'sslserver', '-CAfile', caFile, files(NAMES.server, 'tls.crt')])).toMatch(/: OK/);
    expect(openssl(['verify', '-attime', String(T0 / 1000 + 60), '-purpose', 'sslclient', '-CAfile', caFile, files(NAMES.peer, 'tls.crt')])).toMatch(/: OK/);
    expect(openssl(['verify', '-attime', String(T0 / 1000 + 60), '-purpose', 'sslclient', '-CAfile', caFile, files(NAMES.operatorClient, 'tls.crt')])).toMatch(/: OK/);
    expect(() => openssl(['verify', '-attime', String(T0 / 1000 + 60), '-purpose', 'sslserver', '-CAfile', caFile, files(NAMES.operatorClient, 'tls.crt')])).toThrow();

    const before = secretApplies(api);
    const again = await reconcileGeneratedTls(api, REF, TLS, T0 + 60_000);
    expect(again.changes).toEqual([]);
    expect(secretApplies(api)).toBe(before);
    expect(again.reviewAtMs).toBe(T0 - 5 * 60_000 + Math.floor(((90 * DAY_MS + 5 * 60_000) * 2) / 3));
  });

  it('renews the leaf certificates when a third of their lifetime is left, keeping the CA', async () => {
    const api = new InMemoryApiDouble();
    await reconcileGeneratedTls(api, REF, TLS, T0);
    const ca = data(api, NAMES.ca, 'ca.crt');
    const serverBefore = data(api, NAMES.server, 'tls.crt');
    expect((await reconcileGeneratedTls(api, REF, TLS, T0 + 59 * DAY_MS)).changes).toEqual([]);
    const renewed = await reconcileGeneratedTls(api, REF, TLS, T0 + 61 * DAY_MS);
    expect(renewed.changes.filter((c) => c.startsWith('issued'))).toHaveLength(3);
    expect(renewed.changes.join('\n')).toMatch(/a third of its lifetime is left/);
    expect(data(api, NAMES.ca, 'ca.crt')).toBe(ca);
    expect(data(api, NAMES.server, 'tls.crt')).not.toBe(serverBefore);
    expect(isSignedBy(data(api, NAMES.server, 'tls.crt'), ca)).toBe(true);
  });

  it('renews the CA in two steps: trusted everywhere first, signing only after the bundle had time to reach the pods', async () => {
    const api = new InMemoryApiDouble();
    await reconcileGeneratedTls(api, REF, TLS, T0);
    const oldCa = data(api, NAMES.ca, 'ca.crt');
    // Keep the leaves fresh on the way (they renew every 60 days), as a running operator would.
    let now = T0;
    const caDue = renewalDueAtMs({ notBeforeMs: T0 - 5 * 60_000, notAfterMs: T0 + 3650 * DAY_MS });
    while (now + 60 * DAY_MS < caDue) {
      now += 60 * DAY_MS;
      await reconcileGeneratedTls(api, REF, TLS, now);
    }
    const leafBefore = data(api, NAMES.peer, 'tls.crt');

    // Step 1: the next CA joins the bundle; the leaves keep their certificates, with the new bundle.
    now = caDue + 1;
    const prepared = await reconcileGeneratedTls(api, REF, TLS, now);
    expect(prepared.changes[0]).toMatch(/made the next CA and added it to the trust bundle/);
    const trust = splitPemBundle(data(api, NAMES.ca, 'trust.crt'));
    expect(trust).toHaveLength(2);
    expect(trust[0]).toBe(oldCa);
    expect(data(api, NAMES.ca, 'ca.crt')).toBe(oldCa);
    expect(data(api, NAMES.peer, 'tls.crt')).toBe(leafBefore);
    expect(splitPemBundle(data(api, NAMES.peer, 'ca.crt'))).toEqual(trust);
    expect(prepared.reviewAtMs).toBe(now + TRUST_PROPAGATION_MS);

    // Not yet: the bundle may not have reached every pod.
    expect((await reconcileGeneratedTls(api, REF, TLS, now + TRUST_PROPAGATION_MS - 1)).changes).toEqual([]);

    // Step 2: the next CA signs; every leaf is re-issued by it; the old CA stays trusted.
    const promoted = await reconcileGeneratedTls(api, REF, TLS, now + TRUST_PROPAGATION_MS);
    expect(promoted.changes[0]).toBe('the next CA now signs the certificates');
    const newCa = data(api, NAMES.ca, 'ca.crt');
    expect(newCa).toBe(trust[1]);
    for (const name of [NAMES.server, NAMES.peer, NAMES.operatorClient]) {
      expect(isSignedBy(data(api, name, 'tls.crt'), newCa)).toBe(true);
      expect(splitPemBundle(data(api, name, 'ca.crt'))).toEqual(trust);
    }
    expect(api.get<V1Secret & { kind: string }>('Secret', REF.namespace, NAMES.ca)?.data?.['next.crt']).toBeUndefined();

    // Once the old CA expires, it leaves the bundle.
    const pruned = await reconcileGeneratedTls(api, REF, TLS, T0 + 3650 * DAY_MS + 1);
    expect(pruned.changes.join('\n')).toMatch(/removed 1 expired CA/);
    expect(splitPemBundle(data(api, NAMES.ca, 'trust.crt'))).toEqual([newCa]);
  });

  it('re-issues a certificate that is missing, damaged or from another CA', async () => {
    const api = new InMemoryApiDouble();
    await reconcileGeneratedTls(api, REF, TLS, T0);
    const peer = api.get<V1Secret & { kind: string }>('Secret', REF.namespace, NAMES.peer)!;
    api.put({ ...peer, data: { ...peer.data, 'tls.crt': Buffer.from('not a certificate').toString('base64') } } as never);
    const repaired = await reconcileGeneratedTls(api, REF, TLS, T0 + 1000);
    expect(repaired.changes).toEqual([`issued the peer certificate (Secret ${NAMES.peer}): no certificate yet`]);
    expect(isSignedBy(data(api, NAMES.peer, 'tls.crt'), data(api, NAMES.ca, 'ca.crt'))).toBe(true);
  });
});

describe('certificate rotation decisions (pure)', () => {
  const facts = (notBeforeMs: number, notAfterMs: number, fingerprint = 'f'): CertificateFacts => ({ fingerprint, notBeforeMs, notAfterMs, isCa: false, dnsNames: [], ipAddresses: [] });
  const wants: Record<'server' | 'peer' | 'operator', LeafWant> = { server: { dnsNames: [], ipAddresses: [] }, peer: { dnsNames: [], ipAddresses: [] }, operator: { dnsNames: [], ipAddresses: [] } };
  const leaf = (f: CertificateFacts, over: Partial<LeafState> = {}): LeafState => ({ facts: f, signedBySigner: true, bundleCurrent: true, ...over });
  const ca = (over: Partial<CaState> = {}): CaState => {
    const signer = { ...facts(0, 3000 * DAY_MS, 'ca1'), isCa: true };
    return { signer, next: null, trust: [signer], trustChangedAtMs: 0, ...over };
  };
  const state = (c: CaState | null, l: LeafState | null): GeneratedTlsState => ({ ca: c, leaves: { server: l, peer: l, operator: l } });

  it('is due at two thirds of the lifetime', () => {
    expect(renewalDue(facts(0, 90), 59)).toBe(false);
    expect(renewalDue(facts(0, 90), 60)).toBe(true);
  });

  it('keeps what is fresh, renews what is due, re-signs what another CA signed, fixes names and bundles', () => {
    const fresh = facts(0, 90 * DAY_MS);
    expect(decideGeneratedTls(state(ca(), leaf(fresh)), wants, DAY_MS).leaves.server).toEqual({ type: 'keep' });
    expect(decideGeneratedTls(state(ca(), leaf(fresh)), wants, 61 * DAY_MS).leaves.server.type).toBe('issue');
    expect(decideGeneratedTls(state(ca(), leaf(fresh, { signedBySigner: false })), wants, DAY_MS).leaves.peer).toEqual({ type: 'issue', reason: 'not signed by the current CA' });
    expect(decideGeneratedTls(state(ca(), leaf(fresh, { bundleCurrent: false })), wants, DAY_MS).leaves.peer.type).toBe('refresh-bundle');
    const named = { ...wants, server: { dnsNames: ['*.x-peer.ns.svc'], ipAddresses: ['::1'] } };
    expect(decideGeneratedTls(state(ca(), leaf(fresh)), named, DAY_MS).leaves.server).toEqual({ type: 'issue', reason: 'its names differ from the cluster\'s' });
    const withNames = leaf({ ...fresh, dnsNames: ['*.x-peer.ns.svc'], ipAddresses: ['0:0:0:0:0:0:0:1'] });
    expect(decideGeneratedTls({ ca: ca(), leaves: { server: withNames, peer: leaf(fresh), operator: leaf(fresh) } }, named, DAY_MS).leaves.server).toEqual({ type: 'keep' });
  });

  it('creates everything without a CA; prepares, waits, promotes and prunes CAs in order', () => {
    expect(decideGeneratedTls(state(null, null), wants, 0)).toMatchObject({ ca: { type: 'create' }, leaves: { server: { type: 'issue' } } });
    const young = facts(1999 * DAY_MS, 2089 * DAY_MS);
    expect(decideGeneratedTls(state(ca(), leaf(young)), wants, 2001 * DAY_MS)).toMatchObject({ ca: { type: 'prepare-next' }, leaves: { server: { type: 'refresh-bundle' } } });
    const next = { ...facts(2001 * DAY_MS, 5001 * DAY_MS, 'ca2'), isCa: true };
    const preparing = ca({ next, trust: [ca().signer, next], trustChangedAtMs: 2001 * DAY_MS });
    expect(decideGeneratedTls(state(preparing, leaf(young)), wants, 2001 * DAY_MS + TRUST_PROPAGATION_MS - 1)).toMatchObject({ ca: { type: 'keep' }, leaves: { server: { type: 'keep' } } });
    expect(decideGeneratedTls(state(preparing, leaf(young)), wants, 2001 * DAY_MS + TRUST_PROPAGATION_MS)).toMatchObject({ ca: { type: 'promote-next' }, leaves: { server: { type: 'issue' } } });
    const promoted = ca({ signer: next, trust: [ca().signer, next], trustChangedAtMs: 2001 * DAY_MS });
    expect(decideGeneratedTls(state(promoted, leaf(facts(2002 * DAY_MS, 2092 * DAY_MS))), wants, 3000 * DAY_MS - 1).ca).toEqual({ type: 'keep' });
    expect(decideGeneratedTls(state(promoted, leaf(facts(2999 * DAY_MS, 3089 * DAY_MS))), wants, 3000 * DAY_MS)).toMatchObject({
      ca: { type: 'prune-trust', expiredFingerprints: ['ca1'] }, leaves: { server: { type: 'refresh-bundle' } },
    });
  });
});

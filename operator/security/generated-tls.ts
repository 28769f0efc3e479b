// The Secrets of spec.tls.generate: reads them, asks certificate-rotation.ts what to do, makes the
// certificates (x509.ts) and applies the Secrets, owned by the SynodCluster (deleted with it).
//
//   <cluster>-tls-ca        Opaque: ca.crt + ca.key (the signing CA), next.crt + next.key (a CA being
//                           rolled in), trust.crt (every CA members trust); annotation
//                           synod.dev/trust-changed-at
//   <cluster>-tls-server    kubernetes.io/tls: the client port's certificate (server and client usage:
//                           a joining member presents it to ask MemberList), names of every pod, the
//                           client Service and localhost
//   <cluster>-tls-peer      kubernetes.io/tls: the peer port's certificate (server and client usage)
//   <cluster>-tls-operator  kubernetes.io/tls: the operator's client certificate (CN synod-operator)
// Each kubernetes.io/tls Secret's ca.crt is the trust bundle.

import type { V1Secret } from '@kubernetes/client-node';
import { DEFAULT_CERTIFICATE_VALIDITY_DAYS } from '../api/spec-defaults.ts';
import type { TlsSpec } from '../api/types.ts';
import { SECRET_KEY_CA, SECRET_KEY_CERT, SECRET_KEY_KEY, generatedSecretNames } from '../api/types.ts';
import type { KubeApi } from '../kube/kube-api.ts';
import { clientServiceName, peerServiceName } from '../planner/naming.ts';
import type { ClusterRef, ManifestObject } from '../render/children.ts';
import { commonLabels, ownerReference } from '../render/children.ts';
import type { CaState, GeneratedTlsState, LeafRole, LeafState, LeafWant, TlsDecision } from './certificate-rotation.ts';
import { CA_VALIDITY_DAYS, DAY_MS, LEAF_ROLES, decideGeneratedTls, nextTlsReviewAtMs } from './certificate-rotation.ts';
import type { KeyAndCertificate } from './x509.ts';
import { certificateFacts, createCertificateAuthority, isSignedBy, issueLeafCertificate, splitPemBundle } from './x509.ts';

export const ANNOTATION_TRUST_CHANGED_AT = 'synod.dev/trust-changed-at';
/** The common name of the operator's own client certificate. */
export const OPERATOR_CLIENT_COMMON_NAME = 'synod-operator';
/** Certificates are valid from a little before they are made: members' clocks differ slightly. */
const BACKDATE_MS = 5 * 60_000;

const CA_KEY_CERT = 'ca.crt';
const CA_KEY_KEY = 'ca.key';
const CA_KEY_NEXT_CERT = 'next.crt';
const CA_KEY_NEXT_KEY = 'next.key';
const CA_KEY_TRUST = 'trust.crt';

/** The names each generated certificate carries (wildcards cover every pod of the StatefulSet). */
export function leafWants(ref: Pick<ClusterRef, 'name' | 'namespace'>): Record<LeafRole, LeafWant> {
  const peers = `${peerServiceName(ref.name)}.${ref.namespace}.svc`;
  const client = clientServiceName(ref.name);
  return {
    server: {
      dnsNames: [`*.${peers}`, `*.${peers}.cluster.local`, client, `${client}.${ref.namespace}`, `${client}.${ref.namespace}.svc`, `${client}.${ref.namespace}.svc.cluster.local`, 'localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
    },
    peer: { dnsNames: [`*.${peers}`, `*.${peers}.cluster.local`], ipAddresses: [] },
    operator: { dnsNames: [], ipAddresses: [] },
  };
}

function leafSecretName(cluster: string, role: LeafRole): string {
  const names = generatedSecretNames(cluster);
  return role === 'server' ? names.server : role === 'peer' ? names.peer : names.operatorClient;
}

function decode(secret: V1Secret | null, key: string): string | null {
  const value = secret?.data?.[key];
  return value === undefined ? null : Buffer.from(value, 'base64').toString('utf8');
}

interface CaMaterial {
  signer: KeyAndCertificate;
  next: KeyAndCertificate | null;
  trustPems: string[];
  trustChangedAtMs: number;
}

function readCa(secret: V1Secret | null): CaMaterial | null {
  const cert = decode(secret, CA_KEY_CERT);
  const key = decode(secret, CA_KEY_KEY);
  const trust = decode(secret, CA_KEY_TRUST);
  if (cert === null || key === null || trust === null) return null;
  const nextCert = decode(secret, CA_KEY_NEXT_CERT);
  const nextKey = decode(secret, CA_KEY_NEXT_KEY);
  const changedAt = Date.parse(secret?.metadata?.annotations?.[ANNOTATION_TRUST_CHANGED_AT] ?? '');
  return {
    signer: { certPem: cert, keyPem: key },
    next: nextCert !== null && nextKey !== null ? { certPem: nextCert, keyPem: nextKey } : null,
    trustPems: splitPemBundle(trust),
    trustChangedAtMs: Number.isNaN(changedAt) ? 0 : changedAt,
  };
}

/** The decision's input, from the Secrets as read; a Secret that does not parse counts as missing. */
function tlsStateOf(ca: CaMaterial | null, leafSecrets: Readonly<Record<LeafRole, V1Secret | null>>): GeneratedTlsState {
  let caState: CaState | null = null;
  try {
    if (ca !== null) {
      caState = {
        signer: certificateFacts(ca.signer.certPem),
        next: ca.next === null ? null : certificateFacts(ca.next.certPem),
        trust: ca.trustPems.map((p) => certificateFacts(p)),
        trustChangedAtMs: ca.trustChangedAtMs,
      };
    }
  } catch {
    caState = null;
  }
  const bundle = ca?.trustPems.join('') ?? '';
  const leaves = {} as Record<LeafRole, LeafState | null>;
  for (const role of LEAF_ROLES) {
    const cert = decode(leafSecrets[role], SECRET_KEY_CERT);
    const key = decode(leafSecrets[role], SECRET_KEY_KEY);
    leaves[role] = null;
    if (cert === null || key === null || ca === null) continue;
    try {
      leaves[role] = { facts: certificateFacts(cert), signedBySigner: isSignedBy(cert, ca.signer.certPem), bundleCurrent: decode(leafSecrets[role], SECRET_KEY_CA) === bundle };
    } catch {
      leaves[role] = null;
    }
  }
  return { ca: caState, leaves };
}

function secretManifest(ref: ClusterRef, name: string, type: string, data: Record<string, string>, annotations?: Record<string, string>): ManifestObject {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name,
      namespace: ref.namespace,
      labels: { ...commonLabels(ref.name), 'app.kubernetes.io/component': 'tls' },
      ...(annotations === undefined ? {} : { annotations }),
      ownerReferences: [ownerReference(ref)],
    },
    type,
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'utf8').toString('base64')])),
  };
}

export interface GeneratedTlsResult {
  /** What was done, one line each (for Events); empty when nothing changed. */
  changes: string[];
  /** When to look again at the latest (a renewal falls due), ms since the epoch; null when unknown. */
  reviewAtMs: number | null;
}

function caCommonName(ref: ClusterRef, nowMs: number): string {
  // A new name per CA: a client's bundle with the old and the new CA tells them apart.
  return `synod ${ref.namespace}/${ref.name} CA ${new Date(nowMs).toISOString().slice(0, 10)}`;
}

/**
 * Makes, renews and re-signs the generated certificates as decideGeneratedTls says, and applies the
 * Secrets that changed. Idempotent: a second call with nothing due writes nothing.
 */
export async function reconcileGeneratedTls(api: KubeApi, ref: ClusterRef, tls: TlsSpec, nowMs: number): Promise<GeneratedTlsResult> {
  const names = generatedSecretNames(ref.name);
  const [caSecret, server, peer, operator] = await Promise.all([
    api.getSecret(ref.namespace, names.ca),
    ...LEAF_ROLES.map((role) => api.getSecret(ref.namespace, leafSecretName(ref.name, role))),
  ]);
  const leafSecrets: Record<LeafRole, V1Secret | null> = { server, peer, operator };
  let ca = readCa(caSecret);
  const state = tlsStateOf(ca, leafSecrets);
  if (state.ca === null) ca = null;
  const wants = leafWants(ref);
  const decision: TlsDecision = decideGeneratedTls(state, wants, nowMs);
  const changes: string[] = [];

  const newCa = async (): Promise<KeyAndCertificate> => createCertificateAuthority({
    commonName: caCommonName(ref, nowMs), organization: 'synod', notBefore: new Date(nowMs - BACKDATE_MS), notAfter: new Date(nowMs + CA_VALIDITY_DAYS * DAY_MS),
  });
  let caChanged = true;
  switch (decision.ca.type) {
    case 'create': {
      const signer = await newCa();
      ca = { signer, next: null, trustPems: [signer.certPem], trustChangedAtMs: nowMs };
      changes.push(`created the cluster's CA (Secret ${names.ca})`);
      break;
    }
    case 'prepare-next': {
      const next = await newCa();
      ca = { ...ca!, next, trustPems: [...ca!.trustPems, next.certPem], trustChangedAtMs: nowMs };
      changes.push(`made the next CA and added it to the trust bundle: ${decision.ca.reason}`);
      break;
    }
    case 'promote-next':
      ca = { signer: ca!.next!, next: null, trustPems: ca!.trustPems, trustChangedAtMs: ca!.trustChangedAtMs };
      changes.push('the next CA now signs the certificates');
      break;
    case 'prune-trust': {
      const expired = new Set(decision.ca.expiredFingerprints);
      ca = { ...ca!, trustPems: ca!.trustPems.filter((p) => !expired.has(certificateFacts(p).fingerprint)), trustChangedAtMs: nowMs };
      changes.push(`removed ${expired.size} expired CA(s) from the trust bundle`);
      break;
    }
    case 'keep':
      caChanged = false;
      break;
  }
  const material = ca!;
  if (caChanged) {
    const data: Record<string, string> = {
      [CA_KEY_CERT]: material.signer.certPem, [CA_KEY_KEY]: material.signer.keyPem, [CA_KEY_TRUST]: material.trustPems.join(''),
    };
    if (material.next !== null) Object.assign(data, { [CA_KEY_NEXT_CERT]: material.next.certPem, [CA_KEY_NEXT_KEY]: material.next.keyPem });
    await api.apply(secretManifest(ref, names.ca, 'Opaque', data, { [ANNOTATION_TRUST_CHANGED_AT]: new Date(material.trustChangedAtMs).toISOString() }));
  }

  const bundle = material.trustPems.join('');
  const validityDays = tls.certificateValidityDays ?? DEFAULT_CERTIFICATE_VALIDITY_DAYS;
  for (const role of LEAF_ROLES) {
    const step = decision.leaves[role];
    const name = leafSecretName(ref.name, role);
    let pair: KeyAndCertificate;
    if (step.type === 'issue') {
      pair = await issueLeafCertificate(material.signer, {
        commonName: role === 'operator' ? OPERATOR_CLIENT_COMMON_NAME : `${ref.name}-${role}`,
        organization: 'synod',
        notBefore: new Date(nowMs - BACKDATE_MS),
        notAfter: new Date(nowMs + validityDays * DAY_MS),
        usage: role === 'operator' ? 'client' : 'server+client',
        dnsNames: wants[role].dnsNames,
        ipAddresses: wants[role].ipAddresses,
      });
      changes.push(`issued the ${role} certificate (Secret ${name}): ${step.reason}`);
    } else if (step.type === 'refresh-bundle') {
      pair = { certPem: decode(leafSecrets[role], SECRET_KEY_CERT)!, keyPem: decode(leafSecrets[role], SECRET_KEY_KEY)! };
      changes.push(`updated the trust bundle in Secret ${name}: ${step.reason}`);
    } else {
      continue;
    }
    await api.apply(secretManifest(ref, name, 'kubernetes.io/tls', { [SECRET_KEY_CERT]: pair.certPem, [SECRET_KEY_KEY]: pair.keyPem, [SECRET_KEY_CA]: bundle }));
  }
  const after = changes.length === 0 ? state : tlsStateOf(material, await readLeaves(api, ref));
  return { changes, reviewAtMs: nextTlsReviewAtMs(after) };
}

async function readLeaves(api: KubeApi, ref: ClusterRef): Promise<Record<LeafRole, V1Secret | null>> {
  const [server, peer, operator] = await Promise.all(LEAF_ROLES.map((role) => api.getSecret(ref.namespace, leafSecretName(ref.name, role))));
  return { server, peer, operator };
}
